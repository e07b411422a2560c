"""Where a training stage runs and what its jobs ask the scheduler for: one ``devices`` spec for ViT and LLM stages.

A stage trains on ``gpus_per_node`` GPUs on each of ``nodes`` nodes, or (no GPUs) on ``cpu_ranks`` gloo ranks on one
node. One task per node runs the launcher, which starts one rank per GPU (or per CPU rank), so a job asks for
cpus_per_task = cpus_per_rank x ranks per node; Snakemake's ``threads`` (the local executor's core budget) is the
number of CPU ranks, or 1 on GPU nodes where the cores belong to data loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pretrainflow.errors import ConfigError
from pretrainflow.spec_fields import positive_int


@dataclass(kw_only=True, slots=True)
class DevicesSpec:
    """The ``devices`` section of a run or fine-tune recipe."""

    nodes: int = 1
    gpus_per_node: int = 0
    cpu_ranks: int = 1
    cpus_per_rank: int = 1  # cores per rank (data loading workers + the training process)
    mem_mb: int = 4000  # memory per node, MB
    runtime_minutes: int = 60  # walltime asked for per job; longer runs resume from checkpoints across jobs

    def __post_init__(self) -> None:
        positive_int("nodes", self.nodes)
        positive_int("gpus_per_node", self.gpus_per_node, minimum=0)
        positive_int("cpu_ranks", self.cpu_ranks)
        positive_int("cpus_per_rank", self.cpus_per_rank)
        positive_int("mem_mb", self.mem_mb, minimum=100)
        positive_int("runtime_minutes", self.runtime_minutes)

    @property
    def procs_per_node(self) -> int:
        """Processes the launcher starts on each node: one per GPU, else ``cpu_ranks``."""
        return self.gpus_per_node or self.cpu_ranks

    def world_size(self, *, cuda: bool) -> int:
        """Ranks of the whole job: nodes x gpus_per_node on GPUs, cpu_ranks on a CPU machine (one node)."""
        return self.nodes * self.gpus_per_node if cuda else self.cpu_ranks


def check_visible_gpus(spec: DevicesSpec, visible: int, where: str = "devices") -> None:
    """ConfigError when this node has GPUs but fewer than ``gpus_per_node`` (rank r takes GPU r of its node).

    A node with no GPU at all runs the ranks on the CPU (gloo), and ``gpus_per_node: 0`` never touches a GPU: both
    pass. ``visible``: ``torch.cuda.device_count()`` (what CUDA_VISIBLE_DEVICES leaves).

    >>> check_visible_gpus(DevicesSpec(gpus_per_node=2), 1, "pretrain.vit-b.devices")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pretrainflow.errors.ConfigError: pretrain.vit-b.devices.gpus_per_node: 2 ranks per node, but this node has 1 ...
    """
    if visible and spec.gpus_per_node > visible:
        raise ConfigError(
            f"{where}.gpus_per_node: {spec.gpus_per_node} ranks per node, but this node has {visible} visible GPU(s); "
            f"ask for at most {visible} or run where there are more"
        )


def job_resources(devices: dict[str, Any] | DevicesSpec) -> dict[str, int]:
    """Abstract Snakemake resources of a training job from its resolved ``devices`` mapping.

    >>> job_resources({"nodes": 2, "gpus_per_node": 8, "cpus_per_rank": 8, "mem_mb": 400000, "runtime_minutes": 720})
    {'nodes': 2, 'gpus': 16, 'cpus_per_task': 64, 'mem_mb': 400000, 'runtime': 720, 'threads': 1}
    """
    spec = devices if isinstance(devices, DevicesSpec) else DevicesSpec(**devices)
    return {
        "nodes": spec.nodes,
        "gpus": spec.gpus_per_node * spec.nodes,
        "cpus_per_task": spec.cpus_per_rank * spec.procs_per_node,
        "mem_mb": spec.mem_mb,
        "runtime": spec.runtime_minutes,
        "threads": 1 if spec.gpus_per_node else spec.procs_per_node,
    }
