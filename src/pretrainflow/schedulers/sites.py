"""The sites a study can be submitted to, in one table: scheduler family, resource types (node shapes), walltime limit
and how the site charges. Everything else about a site is per user and lives in its profile (profiles/<site>/:
group, queue, modules, Slurm's node shape and the points rates, schedulers/settings.py).

ABCI 3.0 (H200 nodes; ABCI 3.0 user guide, job-execution.md): rt_HF = whole node (8 GPUs, 192 cores, 1,920 GB; the
only type for multi-node jobs), rt_HG = 1 GPU + 16 cores + 160 GB, rt_HC = 32 cores + 320 GB without GPU.
TSUBAME 4.0 (H100 nodes; reference/clusters.md, a third-party guide): node_f = whole node (4 GPUs, 192 cores, 768 GB),
node_h = half (2 GPUs, 96 cores), node_q = quarter (1 GPU, 48 cores), gpu_1 = 1 GPU + 8 cores, cpu_N = N cores without
GPU (N in 4, 8, 16, 40, 80, 160).
Slurm: no fixed types; the partition decides the hardware and the profile states the GPUs of a node
(``site_gpus_per_node``), which shapes a request for a total of GPUs.
"""

from __future__ import annotations

from dataclasses import dataclass

from pretrainflow.errors import ConfigError


@dataclass(kw_only=True, slots=True, frozen=True)
class NodeType:
    """One resource type of a site: what a single unit of it provides."""

    name: str
    gpus: int
    cpus: int
    mem_mb: int
    multi_node: bool = False  # may be requested with count > 1 (whole nodes)


@dataclass(kw_only=True, slots=True, frozen=True)
class Site:
    """A site's fixed facts (the per-user ones are in its profile)."""

    name: str
    scheduler: str  # pbs | sge | slurm
    types: tuple[NodeType, ...]  # smallest first, the whole node last (the mapping takes the first that fits)
    max_runtime_min: int | None  # walltime limit of one job; a profile may change it (site_max_runtime)
    points: str  # what the site charges for, and where its rates are published (see docs/clusters.md)

    @property
    def whole_node(self) -> NodeType | None:
        """The type multi-node jobs and GPU totals are shaped into (rt_HF, node_f); None on Slurm."""
        return self.types[-1] if self.types else None

    def node_share(self, type_name: str) -> float:
        """The part of a whole node one unit of ``type_name`` holds, by GPUs or cores (whichever is larger): the
        weight of a shared type in node-hours. rt_HG -> 1/8, rt_HC -> 32/192, node_q -> 1/4; 1 on Slurm.

        >>> SITES["abci"].node_share("rt_HG"), SITES["tsubame"].node_share("node_q")
        (0.125, 0.25)
        """
        node = self.whole_node
        if node is None:
            return 1.0
        unit = next(t for t in self.types if t.name == type_name)
        return max(unit.gpus / node.gpus, unit.cpus / node.cpus)


GB = 1024  # MB per GB in the site tables below
# TSUBAME memory per type is not in our reference: assume the node's 768 GB shared per core, 768 / 192 = 4 GB per core
# (cpu_4 -> 16 GB, gpu_1 -> 32 GB, node_q -> 192 GB); check the site documentation before relying on the boundaries.
SITES = {
    "abci": Site(
        name="abci",
        scheduler="pbs",
        types=(
            NodeType(name="rt_HC", gpus=0, cpus=32, mem_mb=320 * GB),
            NodeType(name="rt_HG", gpus=1, cpus=16, mem_mb=160 * GB),
            NodeType(name="rt_HF", gpus=8, cpus=192, mem_mb=1920 * GB, multi_node=True),
        ),
        max_runtime_min=12 * 60,  # on-demand 12 h; spot jobs up to 168 h (profile: site_max_runtime)
        points="ABCI points per resource type and hour (service coefficient 1.0 on-demand/spot, 1.5 reserved); "
        "rates: ABCI's tariff table https://abci.ai/en/how_to_use/tariffs.html",
    ),
    "tsubame": Site(
        name="tsubame",
        scheduler="sge",
        types=(
            *(NodeType(name=f"cpu_{n}", gpus=0, cpus=n, mem_mb=n * 4 * GB) for n in (4, 8, 16, 40, 80, 160)),
            NodeType(name="gpu_1", gpus=1, cpus=8, mem_mb=8 * 4 * GB),
            NodeType(name="node_q", gpus=1, cpus=48, mem_mb=192 * GB),
            NodeType(name="node_h", gpus=2, cpus=96, mem_mb=384 * GB),
            NodeType(name="node_f", gpus=4, cpus=192, mem_mb=768 * GB, multi_node=True),
        ),
        max_runtime_min=24 * 60,  # about 24 h
        points="TSUBAME points per resource type, priority and hour; rates: Charging Rules of TSUBAME4.0 "
        "(2024-10-01), Appended Tables 2-5, https://www.t4.cii.isct.ac.jp/node/281",
    ),
    "slurm": Site(name="slurm", scheduler="slurm", types=(), max_runtime_min=None, points="set by your cluster"),
}
SITE_NAMES = tuple(SITES)


def site(name: str) -> Site:
    """The Site called ``name``, or a ConfigError listing the known ones."""
    if name not in SITES:
        raise ConfigError(f"site: expected one of {', '.join(SITES)}, got {name!r}")
    return SITES[name]
