"""The one mapping from a rule's abstract resources to each site's resource types.

Rules declare what a job needs, never where it runs:
    gpus           GPUs of the whole job (as the Slurm plugin's ``gpu``, accepted as an alias); spread evenly over
                   ``nodes``: gpus=16, nodes=2 -> 8 per node (one process per GPU on every node)
    nodes          number of nodes (multi-node jobs always get whole nodes)
    cpus_per_task  CPU cores per node
    mem_mb         memory per node in MB
    runtime        walltime in minutes
``place(site, request)`` turns that into a Placement on ABCI 3.0, TSUBAME 4.0 or Slurm, or raises ConfigError naming the
value the site cannot satisfy (9 GPUs on one ABCI node ...) before anything is submitted.

ABCI 3.0 (H200 nodes): rt_HF = whole node (8 GPUs, 192 cores, 1,920 GB; the only type for multi-node), rt_HG = 1 GPU +
16 cores + 160 GB, rt_HC = 32 cores + 320 GB without GPU.
TSUBAME 4.0 (H100 nodes): node_f = whole node (4 GPUs, 192 cores, 768 GB), node_h = half (2 GPUs, 96 cores),
node_q = quarter (1 GPU, 48 cores), gpu_1 = 1 GPU + 8 cores, cpu_N = N cores without GPU (N in 4, 8, 16, 40, 80, 160).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pretrainflow.errors import ConfigError


@dataclass(kw_only=True, slots=True, frozen=True)
class ResourceRequest:
    """What one job asks for, per node (see module docstring for units)."""

    gpus_per_node: int = 0
    nodes: int = 1
    cpus_per_task: int = 1
    mem_mb: int = 1000
    runtime_min: int = 60

    def __post_init__(self) -> None:
        checks = (
            ("gpus_per_node", self.gpus_per_node, 0),
            ("nodes", self.nodes, 1),
            ("cpus_per_task", self.cpus_per_task, 1),
            ("mem_mb", self.mem_mb, 1),
            ("runtime", self.runtime_min, 1),
        )
        for key, value, low in checks:
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"resources.{key}: expected an integer >= {low}, got {value!r}")

    @classmethod
    def from_resources(cls, resources: Mapping[str, object], rule: str = "?") -> ResourceRequest:
        """Read a Snakemake job's resources (``gpus`` = the job's total; ``gpu``, the Slurm plugin's name, is an alias)."""

        def as_int(key: str, default: int) -> int:
            value = resources.get(key, default)
            try:
                return int(value)  # snakemake may hand over "8" for resources set on the command line
            except (TypeError, ValueError):
                raise ConfigError(f"rule {rule}: resources.{key}: expected an integer, got {value!r}") from None

        gpus, nodes = as_int("gpus", 0) or as_int("gpu", 0), max(1, as_int("nodes", 1))
        if gpus % nodes:
            raise ConfigError(f"rule {rule}: resources.gpus: {gpus} GPUs do not split evenly over {nodes} nodes")
        return cls(
            gpus_per_node=gpus // nodes,
            nodes=nodes,
            cpus_per_task=as_int("cpus_per_task", max(1, as_int("_cores", 1), as_int("threads", 1))),
            mem_mb=as_int("mem_mb", 1000),
            runtime_min=as_int("runtime", 60),
        )


@dataclass(kw_only=True, slots=True, frozen=True)
class Placement:
    """Where a request lands on a site: one resource type, how many of it, and the walltime."""

    site: str
    resource_type: str  # rt_HF | rt_HG | rt_HC; node_f | node_h | node_q | gpu_1 | cpu_N; Slurm: "gpu" or "cpu"
    count: int  # ABCI select=N, TSUBAME node_f=N, Slurm --nodes=N
    gpus_per_node: int
    cpus_per_node: int
    mem_mb_per_node: int
    runtime_min: int

    @property
    def walltime(self) -> str:
        """HH:MM:SS as qsub's walltime / h_rt want it (runtime 90 -> 01:30:00)."""
        return f"{self.runtime_min // 60:02d}:{self.runtime_min % 60:02d}:00"


@dataclass(kw_only=True, slots=True, frozen=True)
class NodeType:
    """One resource type of a site: what a single unit of it provides."""

    name: str
    gpus: int
    cpus: int
    mem_mb: int
    multi_node: bool = False  # may be requested with count > 1 (whole nodes)


GB = 1024  # MB per GB in the site tables below
ABCI_TYPES = (  # smallest first: the mapping takes the first that fits
    NodeType(name="rt_HC", gpus=0, cpus=32, mem_mb=320 * GB),
    NodeType(name="rt_HG", gpus=1, cpus=16, mem_mb=160 * GB),
    NodeType(name="rt_HF", gpus=8, cpus=192, mem_mb=1920 * GB, multi_node=True),
)
# TSUBAME memory per type is not in our reference: assume the node's 768 GB shared per core, 768 / 192 = 4 GB per core
# (cpu_4 -> 16 GB, gpu_1 -> 32 GB, node_q -> 192 GB); check the site documentation before relying on the boundaries.
TSUBAME_TYPES = (
    *(NodeType(name=f"cpu_{n}", gpus=0, cpus=n, mem_mb=n * 4 * GB) for n in (4, 8, 16, 40, 80, 160)),
    NodeType(name="gpu_1", gpus=1, cpus=8, mem_mb=8 * 4 * GB),
    NodeType(name="node_q", gpus=1, cpus=48, mem_mb=192 * GB),
    NodeType(name="node_h", gpus=2, cpus=96, mem_mb=384 * GB),
    NodeType(name="node_f", gpus=4, cpus=192, mem_mb=768 * GB, multi_node=True),
)
# Site walltime limits in minutes (ABCI on-demand 12 h, spot 168 h: the profile may raise it; TSUBAME about 24 h).
DEFAULT_MAX_RUNTIME = {"abci": 12 * 60, "tsubame": 24 * 60, "slurm": None}


def _place_on_types(site: str, types: tuple[NodeType, ...], req: ResourceRequest) -> Placement:
    whole = types[-1]
    if req.nodes > 1:
        fits = [t for t in types if t.multi_node]
    else:
        fits = [
            t for t in types if t.gpus >= req.gpus_per_node and t.cpus >= req.cpus_per_task and t.mem_mb >= req.mem_mb
        ]
        # a CPU-only job never takes a GPU share when a CPU type fits; a GPU job never takes a CPU type
        fits = [t for t in fits if (t.gpus == 0) == (req.gpus_per_node == 0) or t is whole]
    chosen = next(
        (t for t in fits if t.gpus >= req.gpus_per_node and t.cpus >= req.cpus_per_task and t.mem_mb >= req.mem_mb),
        None,
    )
    if chosen is None:
        raise ConfigError(
            f"resources: {site} cannot give one node {req.gpus_per_node} GPUs, {req.cpus_per_task} cores and {req.mem_mb} MB "
            f"(largest node type {whole.name}: {whole.gpus} GPUs, {whole.cpus} cores, {whole.mem_mb} MB); "
            f"use nodes=N with at most {whole.gpus} gpus per node"
        )
    return Placement(
        site=site,
        resource_type=chosen.name,
        count=req.nodes,
        gpus_per_node=req.gpus_per_node,
        cpus_per_node=req.cpus_per_task,
        mem_mb_per_node=req.mem_mb,
        runtime_min=req.runtime_min,
    )


def _place_slurm(req: ResourceRequest) -> Placement:
    # Slurm has no fixed node types: the partition (from the profile) decides the hardware; gres asks for the GPUs.
    return Placement(
        site="slurm",
        resource_type="gpu" if req.gpus_per_node else "cpu",
        count=req.nodes,
        gpus_per_node=req.gpus_per_node,
        cpus_per_node=req.cpus_per_task,
        mem_mb_per_node=req.mem_mb,
        runtime_min=req.runtime_min,
    )


SITES = ("abci", "tsubame", "slurm")


def place(site: str, req: ResourceRequest, max_runtime_min: int | None = None) -> Placement:
    """Map ``req`` onto ``site``'s resource types.

    >>> place("abci", ResourceRequest(gpus_per_node=8)).resource_type
    'rt_HF'
    >>> place("abci", ResourceRequest(gpus_per_node=1)).resource_type
    'rt_HG'
    >>> place("tsubame", ResourceRequest(gpus_per_node=4, nodes=2)).resource_type
    'node_f'
    """
    if site not in SITES:
        raise ConfigError(f"site: expected one of {', '.join(SITES)}, got {site!r}")
    limit = max_runtime_min if max_runtime_min is not None else DEFAULT_MAX_RUNTIME[site]
    if limit is not None and req.runtime_min > limit:
        raise ConfigError(f"resources.runtime: {site} allows at most {limit} minutes per job, got {req.runtime_min}")
    if site == "abci":
        return _place_on_types(site, ABCI_TYPES, req)
    if site == "tsubame":
        return _place_on_types(site, TSUBAME_TYPES, req)
    return _place_slurm(req)
