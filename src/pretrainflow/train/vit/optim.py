"""Optimizer registry (AdamW, SGD-momentum, LAMB, SAM around any of them, Shampoo, K-FAC around AdamW/SGD/LAMB) with
weight-decay exclusions."""

from __future__ import annotations

import inspect
from collections.abc import Callable

import torch
from torch import nn

from pretrainflow.train.vit.spec import OptimizerSpec

# Parameters that never get weight decay besides biases and norm gains (timm's ``no_weight_decay``).
NO_DECAY_NAMES = ("cls_token", "pos_embed")


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Two groups: matrices with ``weight_decay``; biases, LayerNorm gains, cls_token, pos_embed with 0 (DeiT/timm)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        skip = param.ndim <= 1 or name.endswith(".bias") or name.split(".")[-1] in NO_DECAY_NAMES
        (no_decay if skip else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _adamw(groups, spec: OptimizerSpec, lr: float):
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(spec.betas), eps=spec.eps)


def _sgd(groups, spec: OptimizerSpec, lr: float):
    return torch.optim.SGD(groups, lr=lr, momentum=spec.momentum)


def _lamb(groups, spec: OptimizerSpec, lr: float):
    from pytorch_optimizer import Lamb

    return Lamb(groups, lr=lr, betas=tuple(spec.betas), eps=spec.eps)


def _shampoo(groups, spec: OptimizerSpec, lr: float):
    from pytorch_optimizer import Shampoo

    return Shampoo(groups, lr=lr, momentum=spec.momentum)


_BASES: dict[str, Callable] = {"adamw": _adamw, "sgd": _sgd, "lamb": _lamb, "shampoo": _shampoo}


def _sam(groups, spec: OptimizerSpec, lr: float):
    from pytorch_optimizer import SAM

    class EngineSAM(SAM):
        """SAM whose closure-less ``step()`` is the second step: the training loop does the first step itself
        (ascent to w + e(w) after the first backward), then a second forward/backward, then ``engine.step()``."""

        is_sam = True

        def step(self, closure=None):
            if closure is not None:
                return super().step(closure)
            self.second_step()
            return None

    base = _BASES[spec.base](groups, spec, lr)
    # SAM builds its own base optimizer from the class and the base's defaults over the same groups (only the
    # defaults its constructor accepts: torch's AdamW records some that it does not take back).
    accepted = inspect.signature(type(base).__init__).parameters
    defaults = {k: v for k, v in base.defaults.items() if k in accepted and k not in ("lr", "weight_decay")}
    return EngineSAM(groups, type(base), rho=spec.rho, lr=lr, **defaults)


def _kfac(groups, spec: OptimizerSpec, lr: float, model: nn.Module):
    from pretrainflow.train.vit.kfac import KFAC

    return KFAC(
        model,
        _BASES[spec.base](groups, spec, lr),
        damping=spec.damping,
        cov_update_every=spec.cov_update_every,
        inv_update_every=spec.inv_update_every,
        ema_decay=spec.ema_decay,
        kl_clip=spec.kl_clip,
    )


# name -> builder(groups, spec, lr[, model]); only K-FAC takes the model (it hooks the model's layers)
OPTIMIZERS: dict[str, Callable] = {**_BASES, "sam": _sam, "kfac": _kfac}
_NEEDS_MODEL = ("kfac",)


def build_optimizer(model: nn.Module, spec: OptimizerSpec, lr: float) -> torch.optim.Optimizer:
    """Optimizer ``spec.name`` over ``model`` at learning rate ``lr`` (already scaled to the global batch)."""
    groups = param_groups(model, spec.weight_decay)
    if spec.name in _NEEDS_MODEL:
        return OPTIMIZERS[spec.name](groups, spec, lr, model)
    return OPTIMIZERS[spec.name](groups, spec, lr)
