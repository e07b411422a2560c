"""Wrap a plain nn.Module in a DeepSpeed engine: process group, optimizer, schedule, ZeRO stage and precision.

The model code knows nothing of this module. Where a rank trains follows the run's ``devices``: with
``gpus_per_node > 0`` and CUDA present, NCCL and GPU ``LOCAL_RANK``; otherwise (a CPU machine, or a CPU-shaped spec
with ``gpus_per_node: 0`` on a GPU machine, whose ``cpu_ranks`` processes must not all grab GPUs) gloo on the CPU,
with DeepSpeed told to use its CPU accelerator (``DS_ACCELERATOR=cpu``, set before DeepSpeed picks one). DeepSpeed
picks its accelerator once per process: the placement follows the one it actually uses, so a process whose
DeepSpeed already chose differently still gets a consistent device and backend.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass

import torch

from pretrainflow.errors import ConfigError
from pretrainflow.launch import World

# What torch.distributed's env:// rendezvous reads; without all of them deepspeed.init_distributed tries MPI discovery.
_WORLD_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(kw_only=True, slots=True)
class Placement:
    """Device of this rank and what it is called in rows (e.g. ``cpu`` or ``NVIDIA H200``)."""

    device: torch.device
    backend: str
    device_name: str


def wants_cuda(use_gpu: bool | None) -> bool:
    """Train on CUDA: the spec asks for GPUs (``use_gpu``; None = whenever CUDA is present) and CUDA is present."""
    return torch.cuda.is_available() and use_gpu is not False


def setup_distributed(world: World, *, use_gpu: bool | None = None) -> Placement:
    """Initialise torch.distributed through DeepSpeed for ``world`` (also for a single process).

    ``use_gpu``: ``devices.gpus_per_node > 0`` of the run (None: use CUDA when present, e.g. benchmarks and tests).
    """
    if not wants_cuda(use_gpu):
        os.environ["DS_ACCELERATOR"] = "cpu"
    from deepspeed.accelerator import get_accelerator

    on_gpu = get_accelerator().device_name() == "cuda"
    if not on_gpu:
        # Ranks share the cores: 2 ranks on 2 cores get 1 intra-op thread each (oversubscription costs ~2x).
        cores = len(os.sched_getaffinity(0))
        torch.set_num_threads(max(1, cores // max(1, world.local_world_size)))
    elif world.local_rank >= torch.cuda.device_count():
        raise ConfigError(
            f"devices.gpus_per_node: rank {world.rank} wants GPU {world.local_rank} "
            f"({world.local_world_size} ranks per node), but this node has {torch.cuda.device_count()} visible GPU(s)"
        )
    if any(name not in os.environ for name in _WORLD_VARS):
        # Started without a launcher's variables: export this world (one process: on a port that is free now).
        if world.world_size == 1 and "MASTER_PORT" not in os.environ:
            from pretrainflow.launch.local import free_port

            world = dataclasses.replace(world, master_port=free_port())
        os.environ.update(world.env())
    import deepspeed

    backend = "nccl" if on_gpu else "gloo"
    if on_gpu:
        torch.cuda.set_device(world.local_rank)
    deepspeed.init_distributed(dist_backend=backend, verbose=False)
    device = torch.device("cuda", world.local_rank) if on_gpu else torch.device("cpu")
    name = torch.cuda.get_device_name(device) if on_gpu else "cpu"
    return Placement(device=device, backend=backend, device_name=name)


def make_engine(model: torch.nn.Module, optimizer, scheduler, ds_config: dict):
    """``deepspeed.initialize`` with our client optimizer and scheduler; returns the engine."""
    import deepspeed

    engine, _opt, _loader, _sched = deepspeed.initialize(
        model=model, optimizer=optimizer, lr_scheduler=scheduler, config=ds_config, dist_init_required=False
    )
    if engine.zero_optimization_stage() == 0 and engine.dp_world_size == 1:
        # ZeRO-0's backward all-reduces every gradient over the data-parallel group even when it holds one rank:
        # flatten, a gloo all-reduce of one tensor, x 1/1, copy back, ~3 % of a CPU step of the default study's ViT
        # (bench/bench_deepspeed_overhead.py). Summing one rank is the identity, so the weights stay bitwise the same;
        # DeepSpeed turns the same switch off itself when it has no process group. ZeRO 1-3 reduce into their own
        # partitions and keep their path.
        engine.enable_backward_allreduce = False
    return engine


def input_dtype(ds_config: dict) -> torch.dtype:
    """The dtype DeepSpeed casts the module to: inputs must match it."""
    if ds_config["bf16"]["enabled"]:
        return torch.bfloat16
    if ds_config["fp16"]["enabled"]:
        return torch.float16
    return torch.float32


def full_state_dict(engine) -> dict[str, torch.Tensor]:
    """The whole model's weights as fp32 CPU tensors (collective under ZeRO-3: every rank must call it)."""
    import deepspeed

    module = engine.module
    params = list(module.parameters())
    zero3 = engine.zero_optimization_stage() == 3
    with deepspeed.zero.GatheredParameters(params, modifier_rank=None, enabled=zero3):
        return {name: t.detach().float().cpu().clone() for name, t in module.state_dict().items()}


def master_state_dict(engine) -> dict[str, torch.Tensor]:
    """fp32 weights for export. With bf16/fp16 the module holds half-precision copies and the fp32 master weights
    live in the optimizer: ZeRO 1-3 and DeepSpeed's bf16 optimizer consolidate them (``safe_get_full_fp32_param``);
    ZeRO-0's (un)fused fp16 optimizer, which DeepSpeed also uses for bf16 at ZeRO-0, keeps them in its own fp32
    groups, which that helper does not see (it returns None). With fp32 the module is exact."""
    if not (engine.bfloat16_enabled() or engine.fp16_enabled()):
        return full_state_dict(engine)
    from deepspeed.utils import safe_get_full_fp32_param

    sd = full_state_dict(engine)
    groups = _fp16_optimizer_masters(engine.optimizer)
    for name, param in engine.module.named_parameters():
        if name not in sd:
            continue
        full = safe_get_full_fp32_param(param)
        if full is None:
            full = groups.get(id(param))
        if full is None and not param.requires_grad:
            continue  # frozen: no optimizer holds it; the module's copy is all there is
        if full is None:
            raise RuntimeError(
                f"{name}: no fp32 master weight found in {type(engine.optimizer).__name__} "
                f"(ZeRO {engine.zero_optimization_stage()}); refusing to export rounded half-precision weights"
            )
        sd[name] = full.detach().float().cpu().reshape(sd[name].shape).clone()
    return sd


def _fp16_optimizer_masters(optimizer) -> dict[int, torch.Tensor]:
    """id(model parameter) -> fp32 master of DeepSpeed's ZeRO-0 fp16/bf16 optimizers (empty for any other).

    FP16_UnfusedOptimizer keeps one fp32 copy per parameter (``fp32_groups``, aligned with ``fp16_groups``);
    FP16_Optimizer (fused, with FusedAdam) one flat fp32 tensor per group (``fp32_groups_flat``).
    """
    half_groups = getattr(optimizer, "fp16_groups", None)
    if half_groups is None:
        return {}
    if hasattr(optimizer, "fp32_groups"):
        masters = optimizer.fp32_groups
    elif hasattr(optimizer, "fp32_groups_flat"):
        from torch._utils import _unflatten_dense_tensors

        masters = [
            _unflatten_dense_tensors(flat, group)
            for flat, group in zip(optimizer.fp32_groups_flat, half_groups, strict=True)
        ]
    else:
        return {}
    return {
        id(p): m for group, fp32 in zip(half_groups, masters, strict=True) for p, m in zip(group, fp32, strict=True)
    }
