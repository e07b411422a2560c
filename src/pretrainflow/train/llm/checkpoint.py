"""megatron-core dist_checkpointing for LLM runs under the shared protocol (train/checkpoints.py).

A tag ``step-00000040/`` holds one dist checkpoint: model + Adam moments as ShardedTensors (layout-independent, so a
run resumes under another tensor-parallel degree and publishing consolidates to TP=1) plus the common state (step,
tokens, scheduler, config), and ``COMPLETE.json``. Beside the tags the loop keeps ``metrics.jsonl`` (one JSON line per
logged step, trimmed back to the resumed step on resume) and ``final.json`` (what publishing needs).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from pretrainflow.train import checkpoints


def init_adam_state(optimizer: torch.optim.Optimizer) -> None:
    """Create Adam moments (zeros) for every parameter, so a sharded state dict exists before the first step."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state[param]
            if not state:
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)


def sharded_checkpoint(model, optimizer, common: dict[str, Any], *, is_loading: bool = False) -> dict[str, Any]:
    """Model and optimizer as one sharded state dict; Adam moments shard exactly like their parameters."""
    from megatron.core.dist_checkpointing.optimizer import (
        get_param_id_to_sharded_param_map,
        optim_state_to_sharding_state,
    )

    model_sd = model.sharded_state_dict()
    if hasattr(optimizer, "sharded_state_dict"):  # megatron-core optimizer (GPU engine): it shards itself
        optim_sd = optimizer.sharded_state_dict(model_sd, is_loading=is_loading)
        return {"model": model_sd, "optimizer": optim_sd, "adam_step": None, "common": common}
    init_adam_state(optimizer)
    optim_sd = optimizer.state_dict()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    steps = {float(state["step"]) for state in optim_sd["state"].values()}
    if len(steps) > 1:
        raise RuntimeError(f"Adam step differs between parameters {sorted(steps)}: cannot store one common step")
    id_map = get_param_id_to_sharded_param_map(model_sd, params)
    optim_state_to_sharding_state(optim_sd, id_map, exclude_keys=("step",))
    return {"model": model_sd, "optimizer": optim_sd, "adam_step": steps.pop() if steps else 0.0, "common": common}


@contextlib.contextmanager
def _cpu_safe_dist_checkpointing():
    """On a machine without CUDA, let megatron-core's torch_dist strategy run on CPU tensors over gloo.

    Its save path calls ``torch.cuda.synchronize()`` after copying tensors to host and builds one status tensor with
    ``device=torch.cuda.current_device()``; both raise without CUDA although the data is on CPU already. For the
    duration of a save/load (and only when CUDA is absent) ``synchronize`` is a no-op and ``current_device`` answers
    "cpu". The files written are the same torch_dist checkpoint a GPU run writes (and reads back under another layout).
    """
    if torch.cuda.is_available():
        yield
        return
    saved = torch.cuda.synchronize, torch.cuda.current_device
    torch.cuda.synchronize = lambda *args, **kwargs: None
    torch.cuda.current_device = lambda: "cpu"
    try:
        yield
    finally:
        torch.cuda.synchronize, torch.cuda.current_device = saved


def save(root: Path, step: int, model, optimizer, common: dict[str, Any], *, keep: int) -> Path:
    """Save a complete checkpoint of ``step`` under ``root`` (all ranks call this)."""
    from megatron.core import dist_checkpointing

    path = checkpoints.begin_save(root, step)
    with _cpu_safe_dist_checkpointing():
        dist_checkpointing.save(sharded_checkpoint(model, optimizer, common), str(path))
    return checkpoints.commit(root, step, config_digest=common.get("config_hash"), keep=keep)


def load(path: Path, model, optimizer) -> dict[str, Any]:
    """Load model + optimizer in place from ``path`` (any TP layout); returns the common state."""
    from megatron.core import dist_checkpointing

    template = sharded_checkpoint(model, optimizer, common={}, is_loading=True)
    with _cpu_safe_dist_checkpointing():
        state = dist_checkpointing.load(template, str(path))
    model.load_state_dict(state["model"], strict=False)
    optim_sd = state["optimizer"]
    if hasattr(optimizer, "sharded_state_dict"):
        optimizer.load_state_dict(optim_sd)
        return state["common"]
    for param_state in optim_sd["state"].values():
        param_state["step"] = torch.tensor(float(state["adam_step"]))
    optimizer.load_state_dict(optim_sd)
    return state["common"]


def load_model_only(path: Path, model) -> dict[str, Any]:
    """Load only the weights (for evaluation / consolidation under any layout); returns the common state."""
    from megatron.core import dist_checkpointing

    with _cpu_safe_dist_checkpointing():
        state = dist_checkpointing.load({"model": model.sharded_state_dict(), "common": {}}, str(path))
    missing, unexpected = model.load_state_dict(state["model"], strict=False)
    missing = [key for key in missing if not key.endswith("_extra_state")]
    if missing:
        raise RuntimeError(f"{path}: checkpoint lacks {missing[:5]}")
    return state["common"]
