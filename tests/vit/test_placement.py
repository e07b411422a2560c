"""Where a ViT rank trains on a GPU machine, with CUDA faked (this machine has none): a CPU-shaped spec
(``gpus_per_node: 0``, ``cpu_ranks: 2``) trains on the CPU instead of every rank calling set_device(local_rank), and a
spec asking for more GPUs per node than the node has is refused before any process starts."""

from __future__ import annotations

import argparse
import json
import os

import pytest
import torch
from vit_runs import pretrain_spec

from pretrainflow.errors import ConfigError
from pretrainflow.launch import World
from pretrainflow.train.devices import DevicesSpec, check_visible_gpus


@pytest.fixture
def one_gpu_box(monkeypatch):
    """torch reports one CUDA device; any CUDA call that would touch it fails the test."""

    def no_cuda(*_args, **_kwargs):
        raise AssertionError("a CPU-shaped spec touched CUDA")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", no_cuda)


def test_cpu_shaped_spec_trains_on_the_cpu_of_a_gpu_box(one_gpu_box, monkeypatch):
    import torch.distributed as dist

    from pretrainflow.launch.local import free_port
    from pretrainflow.train.vit.engine import setup_distributed, wants_cuda

    assert wants_cuda(None) and wants_cuda(True) and not wants_cuda(False)
    for key, value in World(master_port=free_port()).env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    try:
        placement = setup_distributed(World(), use_gpu=False)  # what pretrain.py passes for gpus_per_node 0
        assert (placement.device.type, placement.backend, placement.device_name) == ("cpu", "gloo", "cpu")
        assert os.environ["DS_ACCELERATOR"] == "cpu"
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        from deepspeed.utils import groups

        groups._WORLD_GROUP = None
        groups._DATA_PARALLEL_GROUP = None
        groups._ZERO_PARAM_INTRA_PARALLEL_GROUP = None


def test_more_gpus_per_node_than_the_node_has_is_refused(one_gpu_box, monkeypatch):
    from pretrainflow.train.vit import cli

    check_visible_gpus(DevicesSpec(gpus_per_node=1), 1)
    check_visible_gpus(DevicesSpec(gpus_per_node=8), 0)  # no GPU at all: the ranks run on the CPU
    check_visible_gpus(DevicesSpec(gpus_per_node=0, cpu_ranks=4), 1)
    with pytest.raises(ConfigError, match=r"pretrain\.x\.devices\.gpus_per_node: 2 ranks per node, .* 1 visible GPU"):
        check_visible_gpus(DevicesSpec(gpus_per_node=2), 1, "pretrain.x.devices")

    started = []
    monkeypatch.setattr("pretrainflow.launch.run_distributed", lambda entry, argv, procs: started.append(procs) or 0)
    dataset = {"name": "d", "family": "fractaldb"}

    def pretrain(devices: dict) -> int:
        spec = pretrain_spec(dataset, devices=devices)
        args = argparse.Namespace(spec=json.dumps(spec), dataset="d", out="o", checkpoints=None)
        return cli.cmd_pretrain_vit(args)

    with pytest.raises(ConfigError, match=r"--spec devices\.gpus_per_node: 2 ranks per node"):
        pretrain({"gpus_per_node": 2})
    assert started == []  # refused before any process started
    pretrain({"gpus_per_node": 0, "cpu_ranks": 2})  # CPU ranks on the GPU box: two processes, no GPU check
    pretrain({"gpus_per_node": 1})
    assert started == [2, 1]


def test_fp32_masters_of_deepspeeds_zero0_half_optimizers():
    # ZeRO-0 with bf16/fp16: DeepSpeed's (un)fused fp16 optimizer holds the fp32 masters that export must read
    from types import SimpleNamespace

    from torch._utils import _flatten_dense_tensors

    from pretrainflow.train.vit.engine import _fp16_optimizer_masters

    half = [torch.nn.Parameter(torch.ones(2, 3, dtype=torch.bfloat16)), torch.nn.Parameter(torch.ones(4))]
    masters = [torch.full((2, 3), 1.001), torch.full((4,), 2.0)]
    unfused = _fp16_optimizer_masters(SimpleNamespace(fp16_groups=[half], fp32_groups=[masters]))
    assert unfused[id(half[0])] is masters[0] and unfused[id(half[1])] is masters[1]
    fused = _fp16_optimizer_masters(
        SimpleNamespace(fp16_groups=[half], fp32_groups_flat=[_flatten_dense_tensors(masters)])
    )
    assert torch.equal(fused[id(half[0])], masters[0]) and torch.equal(fused[id(half[1])], masters[1])
    assert _fp16_optimizer_masters(SimpleNamespace()) == {}  # ZeRO 1-3 and the bf16 optimizer: DeepSpeed's helper
