"""Wrap a plain nn.Module in a DeepSpeed engine: process group, optimizer, schedule, ZeRO stage and precision.

The model code knows nothing of this module. On machines without a GPU DeepSpeed is told to use its CPU accelerator
(``DS_ACCELERATOR=cpu``, set before deepspeed is imported) and the gloo backend; with GPUs, NCCL and one GPU per rank
(LOCAL_RANK).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from pretrainflow.launch import World


@dataclass(kw_only=True, slots=True)
class Placement:
    """Device of this rank and what it is called in rows (e.g. ``cpu`` or ``NVIDIA H200``)."""

    device: torch.device
    backend: str
    device_name: str


def setup_distributed(world: World) -> Placement:
    """Initialise torch.distributed through DeepSpeed for ``world`` (also for a single process)."""
    on_gpu = torch.cuda.is_available()
    if not on_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
        # Ranks share the cores: 2 ranks on 2 cores get 1 intra-op thread each (oversubscription costs ~2x).
        cores = len(os.sched_getaffinity(0))
        torch.set_num_threads(max(1, cores // max(1, world.local_world_size)))
    if world.world_size == 1 and "RANK" not in os.environ:
        from pretrainflow.launch.local import free_port

        os.environ.update(World(master_port=free_port()).env())
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
    """fp32 weights for export. With bf16/fp16 the module holds half-precision copies; the fp32 master weights of
    ZeRO 1-3 live in the optimizer, so consolidate them; with fp32 the module is exact."""
    if engine.bfloat16_enabled() or engine.fp16_enabled():
        from deepspeed.utils import safe_get_full_fp32_param

        sd = full_state_dict(engine)
        named = dict(engine.module.named_parameters())
        for name in sd:
            if name in named:
                full = safe_get_full_fp32_param(named[name])
                if full is not None:
                    sd[name] = full.detach().float().cpu().reshape(sd[name].shape).clone()
        return sd
    return full_state_dict(engine)
