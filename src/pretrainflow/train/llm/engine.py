"""One optimizer step of a megatron-core GPTModel: a CPU engine (gloo) and a GPU engine (megatron DDP + schedules).

Why two: megatron-core's pipeline schedules (``get_forward_backward_func``), its DDP grad buffers, its grad-norm
clipping and its distributed optimizer allocate CUDA tensors unconditionally, so on CPU they cannot run. The CPU engine
keeps the model (megatron-core's tensor-parallel layers, vocab-parallel cross entropy, gloo collectives) and does the
step itself: micro-batch accumulation, data-parallel gradient all-reduce, global grad-norm clipping across the
model-parallel group (counting tensor-parallel duplicates once), AdamW, megatron's OptimizerParamScheduler.
The GPU engine uses megatron-core throughout: DistributedDataParallel, get_megatron_optimizer (distributed optimizer,
bf16 with fp32 main params), get_forward_backward_func (pipeline schedules). GPU numbers are not measured here (no GPU).
"""

from __future__ import annotations

import math
from functools import partial

import torch
import torch.distributed as dist

from pretrainflow.train.llm.spec import LLMRunSpec


def masked_mean_loss(per_token_loss: torch.Tensor, loss_mask: torch.Tensor) -> torch.Tensor:
    """Mean cross entropy (nats/token) over the tokens that count."""
    mask = loss_mask.float()
    return (per_token_loss.float() * mask).sum() / mask.sum().clamp(min=1.0)


def forward_loss(model, batch: dict[str, torch.Tensor], device: str) -> torch.Tensor:
    """Mean next-token loss of one micro-batch (GPTModel returns per-token loss [b, s] when given labels)."""
    batch = {key: value.to(device, non_blocking=True) for key, value in batch.items()}
    per_token = model(batch["tokens"], batch["position_ids"], None, labels=batch["labels"])
    return masked_mean_loss(per_token, batch["loss_mask"])


def param_groups(model, weight_decay: float) -> list[dict]:
    """Decay matrices only; norms/biases (1-D) get wd_mult 0 (OptimizerParamScheduler multiplies by it)."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.requires_grad:
            (decay if param.dim() >= 2 else no_decay).append(param)
    return [
        {"params": decay, "weight_decay": weight_decay, "wd_mult": 1.0},
        {"params": no_decay, "weight_decay": 0.0, "wd_mult": 0.0},
    ]


def make_scheduler(optimizer, run: LLMRunSpec):
    """Linear warmup to ``lr`` over warmup_steps, then cosine to ``min_lr`` at train_steps (megatron-core's own)."""
    from megatron.core.optimizer_param_scheduler import OptimizerParamScheduler

    opt, schedule = run.optimizer, run.schedule
    return OptimizerParamScheduler(
        optimizer, init_lr=0.0, max_lr=opt.lr, min_lr=schedule.min_lr, lr_warmup_steps=schedule.warmup_steps,
        lr_decay_steps=schedule.train_steps, lr_decay_style="cosine", start_wd=opt.weight_decay,
        end_wd=opt.weight_decay, wd_incr_steps=schedule.train_steps, wd_incr_style="constant",
    )  # fmt: skip


class CpuEngine:
    """Gradient accumulation + DP all-reduce + TP-aware clipping + AdamW on CPU (see module docstring)."""

    device = "cpu"

    def __init__(self, model, run: LLMRunSpec) -> None:
        opt = run.optimizer
        self.model, self.run = model, run
        self.optimizer = torch.optim.AdamW(
            param_groups(model, opt.weight_decay), lr=opt.lr, betas=tuple(opt.betas), eps=opt.eps
        )
        self.scheduler = make_scheduler(self.optimizer, run)

    def train_step(self, micro_batches: list[dict[str, torch.Tensor]]) -> tuple[float, float]:
        """One optimizer step over this rank's micro-batches; returns (mean loss over the DP group, grad norm)."""
        from megatron.core import parallel_state

        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total = torch.zeros(())
        for batch in micro_batches:
            loss = forward_loss(self.model, batch, self.device) / len(micro_batches)
            loss.backward()
            total += loss.detach()
        dp_group = parallel_state.get_data_parallel_group()
        if dist.get_world_size(dp_group) > 1:
            for param in self.model.parameters():
                if param.grad is not None:
                    dist.all_reduce(param.grad, group=dp_group)
                    param.grad /= dist.get_world_size(dp_group)
            dist.all_reduce(total, group=dp_group)
            total /= dist.get_world_size(dp_group)
        grad_norm = self._clip(self.run.optimizer.grad_clip)
        self.optimizer.step()
        self.scheduler.step(increment=1)
        return float(total), grad_norm

    def _clip(self, max_norm: float) -> float:
        """Global L2 norm over the model-parallel group; TP-replicated params (norms) are counted once."""
        from megatron.core import parallel_state
        from megatron.core.tensor_parallel import param_is_not_tensor_parallel_duplicate

        grads = [p.grad for p in self.model.parameters() if p.grad is not None]
        unique = [
            p.grad for p in self.model.parameters() if p.grad is not None and param_is_not_tensor_parallel_duplicate(p)
        ]
        sq = torch.stack([g.float().pow(2).sum() for g in unique]).sum() if unique else torch.zeros(())
        dist.all_reduce(sq, group=parallel_state.get_model_parallel_group())
        norm = math.sqrt(float(sq))
        if max_norm and norm > max_norm:
            for grad in grads:
                grad.mul_(max_norm / (norm + 1e-6))
        return norm

    def state_for_checkpoint(self):
        return self.model, self.optimizer


class GpuEngine:
    """megatron-core end to end: DDP (overlapped grad reduce), distributed optimizer, pipeline schedules.

    Not exercised on this CPU-only machine; written against megatron-core 0.16's public API
    (examples/run_simple_mcore_train_loop.py and megatron/training/training.py use the same calls).
    """

    device = "cuda"

    def __init__(self, model, run: LLMRunSpec) -> None:
        from megatron.core.distributed import DistributedDataParallel, DistributedDataParallelConfig
        from megatron.core.optimizer import OptimizerConfig, get_megatron_optimizer

        opt = run.optimizer
        ddp_config = DistributedDataParallelConfig(
            grad_reduce_in_fp32=True, overlap_grad_reduce=True, use_distributed_optimizer=True
        )
        self.model = DistributedDataParallel(config=model.config, ddp_config=ddp_config, module=model)
        self.optimizer = get_megatron_optimizer(
            OptimizerConfig(
                optimizer="adam", lr=opt.lr, min_lr=run.schedule.min_lr, weight_decay=opt.weight_decay,
                adam_beta1=opt.betas[0], adam_beta2=opt.betas[1], adam_eps=opt.eps, clip_grad=opt.grad_clip,
                bf16=run.precision == "bf16", params_dtype=model.config.params_dtype, use_distributed_optimizer=True,
            ),
            [self.model],
        )  # fmt: skip
        self.scheduler = make_scheduler(self.optimizer, run)
        self.run = run
        model.config.no_sync_func = self.model.no_sync
        model.config.grad_sync_func = None
        model.config.finalize_model_grads_func = _finalize_grads()

    def train_step(self, micro_batches: list[dict[str, torch.Tensor]]) -> tuple[float, float]:
        from megatron.core import parallel_state
        from megatron.core.pipeline_parallel import get_forward_backward_func

        self.model.train()
        self.model.zero_grad_buffer()
        self.optimizer.zero_grad()
        losses = get_forward_backward_func()(
            forward_step_func=partial(_gpu_forward_step, device=self.device),
            data_iterator=iter(micro_batches),
            model=[self.model],
            num_microbatches=len(micro_batches),
            seq_length=self.run.seq_length,
            micro_batch_size=self.run.batch.micro,
            forward_only=False,
        )
        _, grad_norm, _ = self.optimizer.step()
        self.scheduler.step(increment=1)
        loss = torch.zeros((), device=self.device)
        if parallel_state.is_pipeline_last_stage():
            loss = mean_micro_batch_loss(losses)
        # Everyone reports the loss of the last pipeline stage, averaged over data-parallel replicas.
        dist.all_reduce(loss, group=parallel_state.get_pipeline_model_parallel_group())
        dist.all_reduce(loss, group=parallel_state.get_data_parallel_group())
        return float(loss) / parallel_state.get_data_parallel_world_size(), float(grad_norm or 0.0)

    def state_for_checkpoint(self):
        # The sharded state dict of the plain GPTModel inside DDP; the megatron optimizer shards itself.
        return self.model.module, self.optimizer


def _finalize_grads():
    from megatron.core.distributed import finalize_model_grads

    return finalize_model_grads


def _gpu_forward_step(data_iterator, model, device):
    batch = {key: value.to(device, non_blocking=True) for key, value in next(data_iterator).items()}
    output = model(batch["tokens"], batch["position_ids"], None, labels=batch["labels"])

    def loss_func(per_token_loss):
        loss = masked_mean_loss(per_token_loss, batch["loss_mask"])
        # A copy: megatron's schedule divides the returned loss in place by the number of micro-batches (for the
        # backward pass); a plain .detach() shares that storage and would log loss / micro-batches.
        return loss, {"lm loss": loss.detach().clone()}

    return output, loss_func


def mean_micro_batch_loss(losses: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """The step's loss on this rank: the mean of the micro-batch losses ``_gpu_forward_step`` reported."""
    return torch.stack([item["lm loss"] for item in losses]).mean()


def make_engine(model, run: LLMRunSpec, device: str):
    return GpuEngine(model, run) if device == "cuda" else CpuEngine(model, run)
