"""Where a training stage runs and what its jobs ask the scheduler for: one ``devices`` spec for ViT and LLM stages.

A run states what it needs in one of three forms (workflow/schemas/train.schema.yaml, ``devices``)::

    devices: {gpus: 32, cpus_per_rank: 8, mem_mb: 400000}    the job's total: each site picks its node shape
    devices: {nodes: 4, gpus_per_node: 8, ...}                the node shape itself, kept on every site
    devices: {cpu_ranks: 2}                                   gloo ranks on one node, no GPU

On GPUs the world size is ``gpus`` (= nodes x gpus_per_node) whatever the site, so ``batch.global`` = micro x
accumulation x data-parallel ranks is checked once, at load time, for every site. The total form leaves the node shape
out of the resolved spec (``omitted_keys``): its config hash is the same on every site, and a run moved from ABCI to
TSUBAME resumes from the same checkpoint directory. The shape is decided at submission from the site's whole node
(pretrainflow.schedulers.resources.place: ABCI 32 -> 4 x rt_HF with 8 GPUs each, TSUBAME 32 -> 8 x node_f with 4), and
inside the job the spec reads it back from the allocation (``allocation_shape``), so the launcher starts
``gpus_per_node`` ranks on each node. The per-node form keeps the resolved spec (and hash) it had before ``gpus``
existed.

One task per node runs the launcher, which starts one rank per GPU (or per CPU rank), so a job asks for
cpus_per_task = cpus_per_rank x ranks per node (with a total: ``cpus_per_gpu`` = cpus_per_rank, multiplied by the
site's GPUs per node at submission); Snakemake's ``threads`` (the local executor's core budget) is the number of CPU
ranks, or 1 on GPU nodes where the cores belong to data loading.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pretrainflow.errors import ConfigError
from pretrainflow.spec_fields import positive_int


def allocation_shape(total: int, env: Mapping[str, str]) -> tuple[int, int]:
    """(nodes, gpus_per_node) of a job that asked for ``total`` GPUs, read from the allocation it runs in.

    Our job wrapper (schedulers/jobscript.py, for ABCI, TSUBAME and our Slurm path; mpirun forwards it to the other
    nodes) exports the placement's GPUs per node; a job of the Snakemake Slurm plugin or submitit has Slurm's node
    count. Anywhere else (a workstation, the login node planning the study, a one-GPU evaluation job reading the run's
    spec) the total counts as one node: the launcher then checks the node really has that many GPUs.

    >>> allocation_shape(32, {"PRETRAINFLOW_GPUS_PER_NODE": "4"})  # TSUBAME: 8 x node_f
    (8, 4)
    >>> allocation_shape(32, {"SLURM_JOB_NUM_NODES": "4"})
    (4, 8)
    >>> allocation_shape(8, {})
    (1, 8)
    """
    per_node = _count(env.get("PRETRAINFLOW_GPUS_PER_NODE"))
    if per_node and total % per_node == 0:
        return total // per_node, per_node
    nodes = _count(env.get("SLURM_JOB_NUM_NODES"))
    if nodes and total % nodes == 0:
        return nodes, total // nodes
    return 1, total


def _count(text: str | None) -> int:
    return int(text) if text and text.strip().isdigit() else 0


@dataclass(kw_only=True, slots=True)
class DevicesSpec:
    """The ``devices`` section of a run or fine-tune recipe: ``gpus`` (a total), or ``nodes`` x ``gpus_per_node``."""

    gpus: int = 0  # GPUs of the whole job, node shape left to the site; 0: the per-node form below
    nodes: int | None = None  # per-node form: nodes of the job (default 1); with `gpus`: from the allocation
    gpus_per_node: int | None = None  # per-node form: GPUs (= ranks) per node (default 0: CPU ranks)
    cpu_ranks: int = 1
    cpus_per_rank: int = 1  # cores per rank (data loading workers + the training process)
    mem_mb: int = 4000  # memory per node, MB
    runtime_minutes: int = 60  # walltime asked for per job; longer runs resume from checkpoints across jobs

    def __post_init__(self) -> None:
        positive_int("gpus", self.gpus, minimum=0)
        if self.gpus:
            for key in ("nodes", "gpus_per_node"):
                if getattr(self, key) is not None:
                    raise ValueError(
                        f"{key}: give the job's total (gpus: {self.gpus}, node shape left to the site) or its node "
                        f"shape (nodes, gpus_per_node), not both"
                    )
            self.nodes, self.gpus_per_node = allocation_shape(self.gpus, os.environ)
        else:
            self.nodes = 1 if self.nodes is None else self.nodes
            self.gpus_per_node = 0 if self.gpus_per_node is None else self.gpus_per_node
        positive_int("nodes", self.nodes)
        positive_int("gpus_per_node", self.gpus_per_node, minimum=0)
        positive_int("cpu_ranks", self.cpu_ranks)
        positive_int("cpus_per_rank", self.cpus_per_rank)
        positive_int("mem_mb", self.mem_mb, minimum=100)
        positive_int("runtime_minutes", self.runtime_minutes)

    def omitted_keys(self) -> tuple[str, ...]:
        """Study keys left out of the resolved spec (spec_fields.to_dict): the total form's node shape belongs to the
        site and the job, not to what the run means; the per-node form reads as it did before ``gpus`` existed."""
        return ("nodes", "gpus_per_node") if self.gpus else ("gpus",)

    @property
    def procs_per_node(self) -> int:
        """Processes the launcher starts on each node: one per GPU, else ``cpu_ranks``."""
        return self.gpus_per_node or self.cpu_ranks

    def world_size(self, *, cuda: bool) -> int:
        """Ranks of the whole job: nodes x gpus_per_node (= gpus) on GPUs, nodes x cpu_ranks on CPUs (gloo ranks on
        every node of a CPU cluster job, as the launcher starts them: ``procs_per_node`` per node)."""
        assert self.nodes is not None and self.gpus_per_node is not None  # filled in by __post_init__
        return self.nodes * (self.gpus_per_node if cuda else self.cpu_ranks)


def trains_on_gpus(devices: Mapping[str, Any]) -> bool:
    """Whether a resolved ``devices`` mapping asks for GPUs (either form).

    >>> trains_on_gpus({"gpus": 8}), trains_on_gpus({"nodes": 1, "gpus_per_node": 0, "cpu_ranks": 2})
    (True, False)
    """
    return bool(devices.get("gpus") or devices.get("gpus_per_node"))


def check_visible_gpus(spec: DevicesSpec, visible: int, where: str = "devices") -> None:
    """ConfigError when this node has GPUs but fewer than ``gpus_per_node`` (rank r takes GPU r of its node).

    A node with no GPU at all runs the ranks on the CPU (gloo), and ``gpus_per_node: 0`` never touches a GPU: both
    pass. ``visible``: ``torch.cuda.device_count()`` (what CUDA_VISIBLE_DEVICES leaves).

    >>> check_visible_gpus(DevicesSpec(gpus_per_node=2), 1, "pretrain.vit-b.devices")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    pretrainflow.errors.ConfigError: pretrain.vit-b.devices.gpus_per_node: 2 ranks per node, but this node has 1 ...
    """
    assert spec.gpus_per_node is not None  # filled in by __post_init__
    if visible and spec.gpus_per_node > visible:
        if spec.gpus:
            raise ConfigError(
                f"{where}.gpus: {spec.gpus} GPUs as {spec.nodes} node(s) x {spec.gpus_per_node} (this job's "
                f"allocation), but this node has {visible} visible GPU(s); submit it through a site profile, which "
                f"shapes the total into whole nodes, or ask for at most {visible}"
            )
        raise ConfigError(
            f"{where}.gpus_per_node: {spec.gpus_per_node} ranks per node, but this node has {visible} visible GPU(s); "
            f"ask for at most {visible} or run where there are more"
        )


def job_resources(devices: Mapping[str, Any] | DevicesSpec) -> dict[str, int | None]:
    """Abstract Snakemake resources of a training job from its resolved ``devices`` mapping.

    The per-node form names its nodes; the total form leaves ``nodes`` out (None drops a Snakemake resource) and
    states the cores per GPU, so that the site shapes the job (pretrainflow.schedulers.resources.place).

    >>> job_resources({"nodes": 2, "gpus_per_node": 8, "cpus_per_rank": 8, "mem_mb": 400000, "runtime_minutes": 720})
    {'nodes': 2, 'gpus': 16, 'cpus_per_task': 64, 'mem_mb': 400000, 'runtime': 720, 'threads': 1}
    >>> job_resources({"gpus": 32, "cpus_per_rank": 8, "mem_mb": 400000, "runtime_minutes": 720})
    {'nodes': None, 'gpus': 32, 'cpus_per_gpu': 8, 'cpus_per_task': 8, 'mem_mb': 400000, 'runtime': 720, 'threads': 1}
    """
    spec = devices if isinstance(devices, DevicesSpec) else DevicesSpec(**devices)
    common = {"mem_mb": spec.mem_mb, "runtime": spec.runtime_minutes}
    if spec.gpus:
        return {"nodes": None, "gpus": spec.gpus, "cpus_per_gpu": spec.cpus_per_rank,
                "cpus_per_task": spec.cpus_per_rank, **common, "threads": 1}  # fmt: skip
    assert spec.nodes is not None and spec.gpus_per_node is not None  # filled in by __post_init__
    return {
        "nodes": spec.nodes,
        "gpus": spec.gpus_per_node * spec.nodes,
        "cpus_per_task": spec.cpus_per_rank * spec.procs_per_node,
        **common,
        "threads": 1 if spec.gpus_per_node else spec.procs_per_node,
    }
