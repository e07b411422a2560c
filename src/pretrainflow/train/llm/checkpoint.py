"""megatron-core dist_checkpointing for LLM runs under the shared protocol (train/checkpoints.py).

A tag ``step-00000040/`` holds one dist checkpoint: model + Adam moments as ShardedTensors plus the common state (step,
tokens, scheduler, config), and ``COMPLETE.json``. The model tensors are layout-independent (publishing consolidates
any layout to TP=1). So are the CPU engine's Adam moments (a CPU run resumes under another tensor-parallel degree);
the GPU engine's distributed optimizer stores its moments "dp_reshardable" (megatron-LM's default: every rank writes
and reads its own buffers in parallel), so a GPU run resumes under the same tensor/pipeline degrees and any data
parallelism. Beside the tags the loop keeps ``metrics.jsonl`` (one JSON line per logged step, trimmed back to the
resumed step on resume) and ``final.json`` (what publishing needs).

A continued run (``init:``) starts without a checkpoint from a TP=1 model.safetensors (an import or a published run):
``load_initial_weights`` gives every rank its tensor-parallel slice by megatron's partitioning (``tp_partition``),
reading only those bytes, and grows the vocabulary tensors for an extended tokenizer (``extended_vocab``).
"""

from __future__ import annotations

import contextlib
import re
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


# ------------------------------------------------------------------------------------------ initial weights (init:)

# Transformer Engine fuses each layer's norms into the next linear; the TP=1 files use the local spec's names.
TE_NORM_NAMES = {
    "self_attention.linear_qkv.layer_norm_weight": "input_layernorm.weight",
    "self_attention.linear_qkv.layer_norm_bias": "input_layernorm.bias",
    "mlp.linear_fc1.layer_norm_weight": "pre_mlp_layernorm.weight",
    "mlp.linear_fc1.layer_norm_bias": "pre_mlp_layernorm.bias",
}
VOCAB_TENSORS = ("embedding.word_embeddings.weight", "output_layer.weight")


def tp_partition(name: str, swiglu: bool) -> tuple[int, int] | None:
    """(dimension, stride) along which megatron-core splits the TP=1 tensor ``name`` over tensor-parallel ranks, or
    None for a tensor every rank holds whole (norms).

    Column-parallel (QKV, FC1, output layer) and vocab-parallel (embedding) tensors split their rows, row-parallel ones
    (attention output, FC2) their columns. Stride 2 for SwiGLU's FC1: rank r holds [gate_r; up_r] (megatron's
    ``partition_stride``), not a contiguous block of [gate; up].
    """
    if name.endswith(("linear_qkv.weight", "output_layer.weight", "word_embeddings.weight")):
        return 0, 1
    if name.endswith("linear_fc1.weight"):
        return 0, 2 if swiglu else 1
    if name.endswith(("linear_proj.weight", "linear_fc2.weight")):
        return 1, 1
    return None


def tp_shard_ranges(size: int, stride: int, rank: int, world: int) -> list[tuple[int, int]]:
    """Index ranges of rank ``rank``'s shard of a dimension of ``size``: ``stride`` blocks, each 1/world of a part.

    >>> tp_shard_ranges(8, 2, 1, 2)   # fc1 [gate 0:4 | up 4:8] at TP=2: rank 1 holds gate[2:4] and up[2:4]
    [(2, 4), (6, 8)]
    """
    block = size // (stride * world)
    return [((s * world + rank) * block, (s * world + rank + 1) * block) for s in range(stride)]


def source_name(name: str, layer_offset: int) -> str:
    """The TP=1 name of this rank's parameter ``name``: global layer number (pipeline stages count from 0), local spec."""
    for te_name, local in TE_NORM_NAMES.items():
        name = name.replace(te_name, local)
    match = re.match(r"decoder\.layers\.(\d+)\.(.*)", name)
    return f"decoder.layers.{int(match[1]) + layer_offset}.{match[2]}" if match else name


def extended_vocab(tensor: torch.Tensor, old_vocab: int, rows: int) -> torch.Tensor:
    """``tensor``'s first ``old_vocab`` rows, then new rows up to ``rows``, each the mean of those old rows.

    The documented rule for a tokenizer extension (``init.tokenizer: extend``): ids the old tokenizer lacks (its
    padding rows included) start at the mean embedding / output row, so new tokens begin as an "average" token.
    """
    old = tensor[:old_vocab]
    return torch.cat([old, old.mean(dim=0, keepdim=True).expand(rows - old_vocab, -1)], dim=0)


@torch.no_grad()
def load_initial_weights(model, path: Path, *, swiglu: bool, old_vocab: int) -> None:
    """Fill this rank's ``model`` (any tensor/pipeline layout) from a TP=1 megatron-core model.safetensors (a published
    run or an import), reading only this rank's slices; vocabulary tensors longer than the file's are extended.

    ``old_vocab``: the tokenizer size of the file (rows past it are padding, replaced when the vocabulary grows).
    """
    from megatron.core import parallel_state
    from safetensors import safe_open

    rank, world = parallel_state.get_tensor_model_parallel_rank(), parallel_state.get_tensor_model_parallel_world_size()
    layers = getattr(getattr(model, "decoder", None), "layers", None)
    offset = layers[0].layer_number - 1 if layers else 0  # first global layer of this pipeline stage
    with safe_open(str(path), "pt") as handle:
        available = set(handle.keys())
        for name, param in model.named_parameters():
            src = source_name(name, offset)
            if src == "output_layer.weight" and src not in available:  # tied in the file: the embedding is the output
                src = "embedding.word_embeddings.weight"
            if src not in available:
                raise RuntimeError(f"{path}: has no tensor {src} for this model's {name}")
            partition = tp_partition(src, swiglu)
            if src in VOCAB_TENSORS and param.shape[0] * world != handle.get_slice(src).get_shape()[0]:
                full = extended_vocab(handle.get_tensor(src), old_vocab, param.shape[0] * world)
                value = torch.cat([full[a:b] for a, b in tp_shard_ranges(full.shape[0], 1, rank, world)])
            elif partition is None or world == 1:
                value = handle.get_tensor(src)
            else:
                dim, stride = partition
                piece = handle.get_slice(src)
                size = piece.get_shape()[dim]
                ranges = tp_shard_ranges(size, stride, rank, world)
                value = torch.cat([piece[a:b] if dim == 0 else piece[:, a:b] for a, b in ranges], dim=dim)
            if tuple(value.shape) != tuple(param.shape):
                raise RuntimeError(f"{path}: {src} gives {list(value.shape)} on tensor-parallel rank {rank}, "
                                   f"{name} is {list(param.shape)}")  # fmt: skip
            param.copy_(value.to(dtype=param.dtype, device=param.device))
