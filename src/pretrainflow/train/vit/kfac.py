"""K-FAC (Kronecker-factored approximate curvature) as the optimizer a DeepSpeed engine steps (``optimizer.name: kfac``).

The model is left alone except for hooks: a forward hook on every ``nn.Linear`` / ``nn.Conv2d`` records the layer's
input, a tensor hook on its output records the gradient that reaches it during the loop's own ``engine.backward``, so
DeepSpeed's backward, gradient accumulation, all-reduce and clipping run unchanged. ``step()`` (called by
``engine.step()`` at accumulation boundaries, on gradients DeepSpeed has already averaged and clipped) then

1. every ``cov_update_every`` steps: averages this step's factors over the data-parallel ranks (one all-reduce of a
   flat buffer) and folds them into an exponential moving average;
2. every ``inv_update_every`` steps: damped inverses of the averaged factors, by eigendecomposition in fp64, layer i on
   rank i mod world, broadcast to the others (every rank holds bitwise the same preconditioner);
3. preconditions each layer's [weight | bias] gradient in place, optionally KL-clipped;
4. ``base.step()``: AdamW / SGD / LAMB over the same ``param_groups`` (LR schedule, weight decay unchanged).
LayerNorm gains and biases, cls_token and pos_embed keep their plain gradients.

The math, per layer s = W a + b (a: one row of the input: a token for a Linear, an unfolded k x k patch for the
patch-embedding Conv2d; W_ = [W | b] of shape out x (in + 1); a_ = [a, 1]), "K-FAC expand" for weight sharing over the
T tokens / patches of an example (Martens & Grosse 2015; Eschenhagen et al. 2023), N examples:

    A = 1/(N T) sum_rows a_ a_^T                       (in+1) x (in+1)
    G = 1/N     sum_rows e e^T,  e = d loss_n / d s    out x out       (empirical Fisher: the loss actually trained,
                                                                        mixup / label smoothing included)
    F ~ A (x) G,   damped by factored Tikhonov with pi = sqrt((tr A / dim A) / (tr G / dim G)):
    A_d = A + pi sqrt(damping) I,   G_d = G + sqrt(damping) / pi I     (the convention of ASDL's Kron.update_inv)
    preconditioned gradient  P = G_d^-1 grad(W_) A_d^-1
    EMA: F <- (1 - ema_decay) F + ema_decay F_new   (the first update takes F_new)
    KL clip (Ba et al. 2017): P <- P min(1, sqrt(kl_clip / (lr^2 sum_layers <P, grad>)))

The loop's loss is a mean over the micro-batch and DeepSpeed divides it by the accumulation steps, so the gradient at
an output row is e / N (N: examples of this rank's step); G is therefore N x sum_rows (grad_out grad_out^T).

Refused (spec check + a backstop in ``step()``): ZeRO 1/2/3, whose optimizers hand the client optimizer flat gradient
partitions instead of the layers' gradients, and bf16/fp16, whose wrappers step fp32 master copies instead of the
layers' own parameters. ASDL (``asdfghjkl``) is not called directly: see docs/CONTRACTS.md "ViT optimizers".
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

_FACTORS = ("A", "G", "A_inv", "G_inv")


def kfac_layers(model: nn.Module) -> dict[str, nn.Module]:
    """The layers K-FAC preconditions: trainable Linear, and Conv2d that unfold into patches (no groups/dilation)."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear | nn.Conv2d)
        and m.weight.requires_grad
        and (m.bias is None or m.bias.requires_grad)
        and (
            not isinstance(m, nn.Conv2d) or (m.groups == 1 and m.dilation == (1, 1) and not isinstance(m.padding, str))
        )
    }


def damped_inverse(factor: torch.Tensor, damping: float) -> torch.Tensor:
    """(factor + damping I)^-1 of a symmetric PSD factor via its eigendecomposition in fp64 (Cholesky of an
    ill-conditioned fp32 factor fails); round-off negative eigenvalues count as 0."""
    evals, evecs = torch.linalg.eigh(factor.double())
    return ((evecs / (evals.clamp_min(0) + damping)) @ evecs.T).to(factor.dtype)


class KFAC(torch.optim.Optimizer):
    """K-FAC around ``base`` (an optimizer over ``model``'s parameters), sharing its param_groups and state."""

    is_kfac = True

    def __init__(
        self,
        model: nn.Module,
        base: torch.optim.Optimizer,
        *,
        damping: float = 1e-3,
        cov_update_every: int = 1,
        inv_update_every: int = 10,
        ema_decay: float = 0.05,
        kl_clip: float | None = None,
    ) -> None:
        if not (damping > 0 and 0 < ema_decay <= 1 and (kl_clip is None or kl_clip > 0)):
            raise ValueError(
                f"kfac: need damping > 0, 0 < ema_decay <= 1, kl_clip > 0 or None ({damping}, {ema_decay}, {kl_clip})"
            )
        if cov_update_every < 1 or inv_update_every < 1 or inv_update_every % cov_update_every:
            raise ValueError("kfac: inv_update_every must be a positive multiple of cov_update_every")
        self.base = base
        super().__init__(base.param_groups, base.defaults)
        # One set of groups and state: the LR schedule and DeepSpeed change the groups base.step() reads.
        self.param_groups, self.state = base.param_groups, base.state
        self.damping, self.ema_decay, self.kl_clip = damping, ema_decay, kl_clip
        self.cov_update_every, self.inv_update_every = cov_update_every, inv_update_every
        self.layers = kfac_layers(model)
        self.factors: dict[str, dict[str, torch.Tensor]] = {name: {} for name in self.layers}
        self.kfac_steps = 0  # optimizer steps taken
        self._acc: dict[str, dict] = {}  # this step's sums: A, rows, G, examples
        self._hooks = [module.register_forward_hook(self._record(name)) for name, module in self.layers.items()]

    @property
    def collecting(self) -> bool:
        """Whether the micro-batches of the coming step feed the factors (steps 0, c, 2c, ... of cov_update_every c)."""
        return self.kfac_steps % self.cov_update_every == 0

    # --- hooks: factor sums of this step -------------------------------------------------------------------------------
    def _record(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
            if not (self.collecting and module.training and torch.is_grad_enabled() and output.requires_grad):
                return
            x, dtype = inputs[0].detach(), module.weight.dtype
            if isinstance(module, nn.Conv2d):  # [B, C, H, W] -> patches [B * L, C * kh * kw] (weight.reshape order)
                x = F.unfold(x, module.kernel_size, padding=module.padding, stride=module.stride).transpose(1, 2)
            x = x.reshape(-1, x.shape[-1]).to(dtype)
            if module.bias is not None:
                x = torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)
            acc = self._acc.setdefault(name, {"A": 0, "rows": 0, "G": 0, "examples": 0})
            acc["A"] = acc["A"] + x.T @ x
            acc["rows"] += x.shape[0]
            examples = inputs[0].shape[0]

            def grad_hook(grad: torch.Tensor) -> None:
                g = grad.detach().movedim(1, -1) if isinstance(module, nn.Conv2d) else grad.detach()
                g = g.reshape(-1, g.shape[-1]).to(dtype)
                acc["G"] = acc["G"] + g.T @ g
                acc["examples"] += examples

            output.register_hook(grad_hook)

        return hook

    # --- step ----------------------------------------------------------------------------------------------------------
    def _check_params(self) -> None:
        held = {id(p) for group in self.param_groups for p in group["params"]}
        missing = [n for n, m in self.layers.items() if id(m.weight) not in held]
        if missing:
            raise RuntimeError(
                f"kfac: the optimizer no longer holds the layers' parameters ({missing[0]} and {len(missing) - 1} more): "
                "DeepSpeed replaced them by flat ZeRO partitions or fp32 master copies; K-FAC needs zero_stage 0 and "
                "precision fp32"
            )

    @staticmethod
    def _world() -> int:
        return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1

    @torch.no_grad()
    def _update_factors(self) -> None:
        missing = [n for n in self.layers if self._acc.get(n, {}).get("examples", 0) == 0]
        if missing:
            raise RuntimeError(f"kfac: no factors recorded for {missing[:3]} (layer unused, or no backward pass)")
        mats = []
        for name in self.layers:
            acc = self._acc[name]
            # A: mean over rows; G: sum_rows grad_out grad_out^T of a mean loss x N = 1/N sum_rows e e^T
            mats += [acc["A"] / acc["rows"], acc["G"] * acc["examples"]]
        world = self._world()
        if world > 1:  # mean over the data-parallel ranks, one all-reduce
            flat = torch.cat([m.flatten() for m in mats])
            dist.all_reduce(flat)
            flat /= world
            mats = [part.view_as(m) for part, m in zip(torch.split(flat, [m.numel() for m in mats]), mats, strict=True)]
        for i, name in enumerate(self.layers):
            state = self.factors[name]
            for key, new in (("A", mats[2 * i]), ("G", mats[2 * i + 1])):
                if key in state:
                    state[key].mul_(1 - self.ema_decay).add_(new, alpha=self.ema_decay)
                else:
                    state[key] = new.clone()
        self._acc.clear()

    @torch.no_grad()
    def _update_inverses(self) -> None:
        world = self._world()
        rank = dist.get_rank() if world > 1 else 0
        names = list(self.layers)
        root = math.sqrt(self.damping)
        for name in names[rank::world]:  # layer i is inverted on rank i mod world
            state = self.factors[name]
            A, G = state["A"], state["G"]
            pi = math.sqrt((A.trace() / A.shape[0]).item() / max((G.trace() / G.shape[0]).item(), 1e-30))
            pi = pi if math.isfinite(pi) and pi > 0 else 1.0
            state["A_inv"], state["G_inv"] = damped_inverse(A, root * pi), damped_inverse(G, root / pi)
        for owner in range(world if world > 1 else 0):  # each owner broadcasts its layers' inverses in one buffer
            mine = names[owner::world]
            likes = [self.factors[n][k] for n in mine for k in ("A", "G")]
            if owner == rank:
                flat = torch.cat([self.factors[n][k].flatten() for n in mine for k in ("A_inv", "G_inv")])
            else:
                flat = likes[0].new_empty(sum(m.numel() for m in likes))
            dist.broadcast(flat, src=owner)
            parts = iter(torch.split(flat, [m.numel() for m in likes]))
            for n in mine:
                for key, like in (("A_inv", "A"), ("G_inv", "G")):
                    self.factors[n][key] = next(parts).view_as(self.factors[n][like]).clone()

    @torch.no_grad()
    def _precondition(self) -> None:
        updates, inner = {}, 0  # inner = sum_layers <P, grad> (the KL clip's g^T F^-1 g), one host sync
        for name, module in self.layers.items():
            w = module.weight
            if w.grad is None:
                continue
            grad = w.grad.reshape(w.shape[0], -1)
            if module.bias is not None:
                grad = torch.cat([grad, module.bias.grad.reshape(-1, 1)], dim=1)
            state = self.factors[name]
            updates[name] = state["G_inv"] @ grad @ state["A_inv"]
            if self.kl_clip is not None:
                inner = inner + (updates[name] * grad).sum()
        scale, lr, inner = 1.0, self.param_groups[0]["lr"], float(inner)
        if self.kl_clip is not None and inner > 0 and lr > 0:
            scale = min(1.0, math.sqrt(self.kl_clip / (lr**2 * inner)))
        for name, update in updates.items():
            module = self.layers[name]
            update = update * scale if scale != 1.0 else update
            module.weight.grad.copy_(update[:, : module.weight[0].numel()].reshape_as(module.weight))
            if module.bias is not None:
                module.bias.grad.copy_(update[:, -1])

    def step(self, closure=None):
        if closure is not None:
            raise RuntimeError("kfac: closures are not supported (the loop's engine.backward computes the gradient)")
        self._check_params()
        if self.collecting:
            self._update_factors()
        if self.kfac_steps % self.inv_update_every == 0:
            self._update_inverses()
        self._precondition()
        self.base.step()
        self.kfac_steps += 1
        return None

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.base.zero_grad(set_to_none=set_to_none)

    def remove_hooks(self) -> None:
        """Detach from the model (a model outliving this optimizer stops feeding it)."""
        for handle in self._hooks:
            handle.remove()

    # --- checkpoints: DeepSpeed ZeRO-0 saves optimizer.state_dict() in mp_rank_00_model_states.pt --------------------
    def state_dict(self) -> dict:
        return {
            "base": self.base.state_dict(),
            "kfac_steps": self.kfac_steps,
            "factors": {n: {k: v for k, v in s.items() if k in _FACTORS} for n, s in self.factors.items()},
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.base.load_state_dict(state_dict["base"])
        self.param_groups, self.state = self.base.param_groups, self.base.state  # torch rebuilt the groups
        self.kfac_steps = state_dict["kfac_steps"]
        for name, saved in state_dict["factors"].items():
            device = self.layers[name].weight.device
            self.factors[name] = {k: v.to(device).clone() for k, v in saved.items()}
