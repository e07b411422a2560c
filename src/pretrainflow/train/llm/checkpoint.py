"""megatron-core dist_checkpointing for LLM runs under the shared protocol (train/checkpoints.py).

A tag ``step-00000040/`` holds one dist checkpoint: model + Adam moments as ShardedTensors plus the common state (step,
tokens, scheduler, config), and ``COMPLETE.json``. The model tensors are layout-independent (publishing consolidates
any layout to TP=1). So are the CPU engine's Adam moments (a CPU run resumes under another tensor-parallel degree);
the GPU engine's distributed optimizer stores its moments "dp_reshardable" (megatron-LM's default: every rank writes
and reads its own buffers in parallel), so a GPU run resumes under the same tensor/pipeline degrees and any data
parallelism. Beside the tags the loop keeps ``metrics.jsonl`` (one JSON line per logged step, trimmed back to the
resumed step on resume) and ``final.json`` (what publishing needs).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import torch

from pretrainflow.train import checkpoints

# How megatron-core's DistributedOptimizer shards its state, on save and load alike. Its default,
# "fully_sharded_model_space", builds ShardedTensors with a flattened_range, which dist_checkpointing (megatron-core
# 0.16) rejects: "ShardedTensor.flattened_range is not supported".
DISTRIBUTED_OPTIMIZER_METADATA = {"distrib_optim_sharding_type": "dp_reshardable"}


def init_adam_state(optimizer: torch.optim.Optimizer) -> None:
    """Create Adam moments (zeros) for every parameter, so a sharded state dict exists before the first step."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state[param]
            if not state:
                state["step"] = torch.tensor(0.0)
                state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)


def init_inner_adam_state(optimizer) -> None:
    """Adam state (step 0, zero moments) in every torch Adam/AdamW inside a megatron-core optimizer.

    Loading asks the optimizer for ``state_dict()`` before it has taken a step; with torch's Adam (no Transformer
    Engine or Apex FusedAdam) megatron's DistributedOptimizer then asserts one ``step`` value across a state that is
    still empty. The zeros are overwritten by the checkpoint's moments and step. Fused Adams keep no per-parameter
    ``step`` and are left alone.
    """
    for inner in getattr(optimizer, "chained_optimizers", None) or [optimizer]:
        torch_optimizer = getattr(inner, "optimizer", None)
        if isinstance(torch_optimizer, torch.optim.Adam | torch.optim.AdamW):
            init_adam_state(torch_optimizer)


def sharded_checkpoint(model, optimizer, common: dict[str, Any], *, is_loading: bool = False) -> dict[str, Any]:
    """Model and optimizer as one sharded state dict; Adam moments shard exactly like their parameters."""
    from megatron.core.dist_checkpointing.optimizer import (
        get_param_id_to_sharded_param_map,
        optim_state_to_sharding_state,
    )

    model_sd = model.sharded_state_dict()
    if hasattr(optimizer, "sharded_state_dict"):  # megatron-core optimizer (GPU engine): it shards itself
        if is_loading:
            init_inner_adam_state(optimizer)
        optim_sd = optimizer.sharded_state_dict(
            model_sd, is_loading=is_loading, metadata=DISTRIBUTED_OPTIMIZER_METADATA
        )
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
