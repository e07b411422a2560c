"""Learning-rate schedule: linear warmup from 0, then half-cosine down to an absolute floor, per optimizer step."""

from __future__ import annotations

import math

import torch


def lr_at(step: int, *, total_steps: int, warmup_steps: int, peak: float, floor: float) -> float:
    """Learning rate of optimizer step ``step`` (0-based).

    warmup: peak * (step + 1) / warmup_steps for step < warmup_steps (never exactly 0, so step 0 already learns);
    then floor + (peak - floor) * (1 + cos(pi * t)) / 2 with t = (step - warmup) / (total - warmup) in [0, 1].
    """
    if step < warmup_steps:
        return peak * (step + 1) / warmup_steps
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_cosine(optimizer: torch.optim.Optimizer, *, total_steps: int, warmup_steps: int, floor: float):
    """A ``LambdaLR`` over ``optimizer`` whose groups start at the peak lr; DeepSpeed steps it once per optimizer step."""
    peak = optimizer.param_groups[0]["lr"]
    floor = min(floor, peak)

    def factor(step: int) -> float:
        return lr_at(step, total_steps=total_steps, warmup_steps=warmup_steps, peak=peak, floor=floor) / peak

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
