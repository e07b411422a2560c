"""The one mapping from a rule's abstract resources to each site's resource types.

Rules declare what a job needs, never where it runs:
    gpus           GPUs of the whole job (as the Slurm plugin's ``gpu``, accepted as an alias). With ``nodes`` they
                   are spread evenly over those nodes (gpus=16, nodes=2 -> 8 per node, the shape kept on every site);
                   without ``nodes`` the site shapes the total into its own nodes (``shape_total``)
    nodes          number of nodes (multi-node jobs always get whole nodes)
    cpus_per_task  CPU cores per node
    cpus_per_gpu   cores per GPU of a total (the node's cores follow the site's GPUs per node)
    mem_mb         memory per node in MB
    runtime        walltime in minutes
``place(site, request)`` turns that into a Placement on ABCI 3.0, TSUBAME 4.0 or Slurm (their resource types are in
sites.py), or raises ConfigError naming the value the site cannot satisfy (9 GPUs on one ABCI node ...) before
anything is submitted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass

from pretrainflow.errors import ConfigError
from pretrainflow.schedulers.sites import SITE_NAMES, NodeType, Site, site

SITES = SITE_NAMES  # the names `--site` accepts


@dataclass(kw_only=True, slots=True, frozen=True)
class ResourceRequest:
    """What one job asks for, per node (see module docstring for units); ``total_gpus`` leaves the shape to the site."""

    gpus_per_node: int = 0
    nodes: int = 1
    cpus_per_task: int = 1
    mem_mb: int = 1000
    runtime_min: int = 60
    total_gpus: int = 0  # GPUs of a job whose node shape the site decides (gpus_per_node and nodes then unset)
    cpus_per_gpu: int = 0  # cores per GPU; 0: cpus_per_task is the node's

    def __post_init__(self) -> None:
        checks = (
            ("gpus_per_node", self.gpus_per_node, 0),
            ("nodes", self.nodes, 1),
            ("cpus_per_task", self.cpus_per_task, 1),
            ("mem_mb", self.mem_mb, 1),
            ("runtime", self.runtime_min, 1),
            ("gpus", self.total_gpus, 0),
            ("cpus_per_gpu", self.cpus_per_gpu, 0),
        )
        for key, value, low in checks:
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ConfigError(f"resources.{key}: expected an integer >= {low}, got {value!r}")
        if self.total_gpus and (self.gpus_per_node or self.nodes != 1):
            raise ConfigError("resources: a total of GPUs leaves nodes and gpus_per_node to the site; give one form")

    @classmethod
    def from_resources(cls, resources: Mapping[str, object], rule: str = "?") -> ResourceRequest:
        """Read a Snakemake job's resources (``gpus`` = the job's total; ``gpu``, the Slurm plugin's name, is an alias).
        Without ``nodes`` a job with GPUs is a total that the site shapes."""

        def as_int(key: str, default: int) -> int:
            value = resources.get(key, default)
            try:
                return int(value)  # snakemake may hand over "8" for resources set on the command line
            except (TypeError, ValueError):
                raise ConfigError(f"rule {rule}: resources.{key}: expected an integer, got {value!r}") from None

        gpus = as_int("gpus", 0) or as_int("gpu", 0)
        cores = dict(
            cpus_per_task=as_int("cpus_per_task", max(1, as_int("_cores", 1), as_int("threads", 1))),
            cpus_per_gpu=as_int("cpus_per_gpu", 0),
            mem_mb=as_int("mem_mb", 1000),
            runtime_min=as_int("runtime", 60),
        )
        if gpus and resources.get("nodes") is None:
            return cls(total_gpus=gpus, **cores)
        nodes = max(1, as_int("nodes", 1))
        if gpus % nodes:
            raise ConfigError(f"rule {rule}: resources.gpus: {gpus} GPUs do not split evenly over {nodes} nodes")
        return cls(gpus_per_node=gpus // nodes, nodes=nodes, **cores)


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


def shape_total(where: Site, req: ResourceRequest, node_gpus: int | None = None) -> ResourceRequest:
    """``req`` with a total of GPUs shaped into ``where``'s nodes: one node when a node holds it, else whole nodes of
    the site's largest type (``node_gpus`` for Slurm, from the profile; without it one node). A total that does not
    fill whole nodes is an error: the launcher starts the same number of ranks on every node.

    >>> from pretrainflow.schedulers.sites import SITES
    >>> [(r.nodes, r.gpus_per_node) for r in (shape_total(SITES[s], ResourceRequest(total_gpus=32)) for s in
    ...  ("abci", "tsubame"))]
    [(4, 8), (8, 4)]
    """
    if req.cpus_per_gpu and req.gpus_per_node:
        req = dataclasses.replace(req, cpus_per_task=req.cpus_per_gpu * req.gpus_per_node, cpus_per_gpu=0)
    if not req.total_gpus:
        return req
    whole = where.whole_node
    per_node = whole.gpus if whole is not None else node_gpus
    total = req.total_gpus
    if per_node is None or total <= per_node:
        nodes, gpus = 1, total
    elif total % per_node:
        name = whole.name if whole is not None else "a node (site_gpus_per_node)"
        raise ConfigError(
            f"resources.gpus: {total} GPUs do not fill whole {where.name} nodes ({name}: {per_node} GPUs each); "
            f"ask for a multiple of {per_node}, or give nodes and gpus_per_node"
        )
    else:
        nodes, gpus = total // per_node, per_node
    cores = req.cpus_per_gpu * gpus if req.cpus_per_gpu else req.cpus_per_task
    return dataclasses.replace(req, total_gpus=0, nodes=nodes, gpus_per_node=gpus, cpus_per_task=cores, cpus_per_gpu=0)


def _place_on_types(where: Site, req: ResourceRequest, packed: bool = False) -> Placement:
    types, whole = where.types, where.types[-1]
    if packed and not req.gpus_per_node:
        # a Snakemake group of CPU jobs (packed shards): on a CPU type or not at all, never on a GPU node
        cpu_types = [t for t in types if t.gpus == 0]
        chosen_cpu = next((t for t in cpu_types if t.cpus >= req.cpus_per_task and t.mem_mb >= req.mem_mb), None)
        if chosen_cpu is None or req.nodes > 1:
            largest = cpu_types[-1]
            raise ConfigError(
                f"resources: a packed group of CPU jobs needs {req.cpus_per_task} cores and {req.mem_mb} MB, more than "
                f"{where.name}'s largest CPU type {largest.name} ({largest.cpus} cores, {largest.mem_mb} MB); lower its "
                f"group-components in profiles/{where.name} (a group never takes a GPU node)"
            )
        return Placement(site=where.name, resource_type=chosen_cpu.name, count=1, gpus_per_node=0,
                         cpus_per_node=req.cpus_per_task, mem_mb_per_node=req.mem_mb, runtime_min=req.runtime_min)  # fmt: skip
    if req.nodes > 1:
        fits: list[NodeType] = [t for t in types if t.multi_node]
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
            f"resources: {where.name} cannot give one node {req.gpus_per_node} GPUs, {req.cpus_per_task} cores and "
            f"{req.mem_mb} MB (largest node type {whole.name}: {whole.gpus} GPUs, {whole.cpus} cores, {whole.mem_mb} "
            f"MB); use nodes=N with at most {whole.gpus} gpus per node, or give the total as gpus"
        )
    return Placement(
        site=where.name,
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


def place(
    site_name: str,
    req: ResourceRequest,
    max_runtime_min: int | None = None,
    *,
    node_gpus: int | None = None,
    packed: bool = False,
) -> Placement:
    """Map ``req`` onto the site's resource types (``node_gpus``: GPUs of a Slurm node, from the profile). ``packed``:
    the summed request of a Snakemake group job; without GPUs it must fit a CPU type (rt_HC, cpu_N), else ConfigError.

    >>> place("abci", ResourceRequest(gpus_per_node=8)).resource_type
    'rt_HF'
    >>> place("abci", ResourceRequest(gpus_per_node=1)).resource_type
    'rt_HG'
    >>> place("tsubame", ResourceRequest(gpus_per_node=4, nodes=2)).resource_type
    'node_f'
    >>> p = place("tsubame", ResourceRequest(total_gpus=32, cpus_per_gpu=8)); (p.resource_type, p.count, p.cpus_per_node)
    ('node_f', 8, 32)
    >>> place("abci", ResourceRequest(cpus_per_task=32, mem_mb=76000), packed=True).resource_type
    'rt_HC'
    """
    where = site(site_name)
    limit = max_runtime_min if max_runtime_min is not None else where.max_runtime_min
    if limit is not None and req.runtime_min > limit:
        raise ConfigError(
            f"resources.runtime: {site_name} allows at most {limit} minutes per job, got {req.runtime_min}"
        )
    req = shape_total(where, req, node_gpus)
    return _place_on_types(where, req, packed) if where.types else _place_slurm(req)
