"""Discover the job a process runs in: its nodes, this node's index, and a deterministic rendezvous address.

Sources, first match wins (the scheduler's own variables first: they are there whoever submitted the job):
    slurm      SLURM_JOB_ID: SLURM_JOB_NODELIST (compressed, e.g. "gpu[01-03,07]"), SLURM_NODEID
    pbs        PBS_JOBID: $PBS_NODEFILE (one line per MPI slot: the same host repeated mpiprocs times)
    sge        JOB_ID (+ PE_HOSTFILE: "<host> <slots> <queue> <processors>" per line)
    submitit   SUBMITIT_EXECUTOR set (e.g. submitit's local executor): submitit.JobEnvironment()
    local      one node, this host
MASTER_ADDR is the first host of the job; MASTER_PORT = 10000 + (numeric job id mod 50000), as the Swallow /
llm-jp recipes do: every node computes the same address without talking to the others, and two jobs sharing a node
(shared rt_HG / node_q types) get different ports unless their ids differ by a multiple of 50,000.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(kw_only=True, slots=True, frozen=True)
class JobLayout:
    """The nodes of one job as this process sees them."""

    scheduler: str  # submitit | slurm | pbs | sge | local
    job_id: str
    hosts: tuple[str, ...]  # unique, in the scheduler's order (the first one is the rendezvous host)
    node_rank: int  # index of this node in ``hosts``
    slots: tuple[int, ...] = field(default=())  # slots per host as the scheduler granted them (PBS mpiprocs, SGE slots)

    def __post_init__(self) -> None:
        if not self.hosts:
            raise ValueError(f"{self.scheduler} job {self.job_id}: empty host list")
        if not 0 <= self.node_rank < len(self.hosts):
            raise ValueError(f"node rank {self.node_rank} outside {len(self.hosts)} hosts {self.hosts}")

    @property
    def num_nodes(self) -> int:
        return len(self.hosts)

    @property
    def master_addr(self) -> str:
        return self.hosts[0]

    @property
    def master_port(self) -> int:
        return master_port_for(self.job_id)


def master_port_for(job_id: str) -> int:
    """10000 + (job id mod 50000); the numeric part of ids like ``1234.pbs1`` or ``56_7``; 29500 without a job.

    >>> master_port_for("1234.pbs1"), master_port_for("123456"), master_port_for("")
    (11234, 33456, 29500)
    """
    digits = re.match(r"\d+", job_id or "")
    return 10000 + int(digits.group()) % 50000 if digits else 29500


def expand_nodelist(nodelist: str) -> list[str]:
    """Expand Slurm's compressed host list, keeping zero padding.

    >>> expand_nodelist("gpu[01-03,07],cpu5,a[9-10]-ib")
    ['gpu01', 'gpu02', 'gpu03', 'gpu07', 'cpu5', 'a9-ib', 'a10-ib']
    """
    hosts: list[str] = []
    for match in re.finditer(r"([^,\[]+)(?:\[([^\]]+)\])?([^,\[]*)", nodelist):
        prefix, ranges, suffix = match.groups()
        if not ranges:
            hosts.append(prefix + suffix)
            continue
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            for number in range(int(low), int(high or low) + 1):
                hosts.append(f"{prefix}{number:0{len(low)}d}{suffix}")
    return hosts


def read_pbs_nodefile(path: str | os.PathLike) -> tuple[list[str], list[int]]:
    """Unique hosts of $PBS_NODEFILE in order, with how many lines (MPI slots) each has."""
    return _count_ordered(line.strip() for line in Path(path).read_text().splitlines() if line.strip())


def read_pe_hostfile(path: str | os.PathLike) -> tuple[list[str], list[int]]:
    """Hosts and slots of Grid Engine's $PE_HOSTFILE ("host slots queue processors" per line)."""
    hosts, slots = [], []
    for line in Path(path).read_text().splitlines():
        fields = line.split()
        if len(fields) >= 2:
            hosts.append(fields[0])
            slots.append(int(fields[1]))
    return hosts, slots


def _count_ordered(items) -> tuple[list[str], list[int]]:
    counts: dict[str, int] = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return list(counts), list(counts.values())


def _this_node(hosts: list[str], hostname: str | None = None) -> int:
    """Index of this machine in ``hosts``: exact name, else the short name (hnode001 vs hnode001.abci.local)."""
    name = hostname or socket.gethostname()
    short = name.split(".")[0]
    for index, host in enumerate(hosts):
        if host == name or host.split(".")[0] == short:
            return index
    return 0  # the job script runs on the first node (PBS mother superior, SGE master host)


def discover_job(env: Mapping[str, str] | None = None, hostname: str | None = None) -> JobLayout:
    """The JobLayout of the current process (see the module docstring for the order of sources)."""
    env = os.environ if env is None else env
    if "SLURM_JOB_ID" in env:
        hosts = expand_nodelist(env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or socket.gethostname())
        node = int(env["SLURM_NODEID"]) if "SLURM_NODEID" in env else _this_node(hosts, hostname)
        return JobLayout(scheduler="slurm", job_id=env["SLURM_JOB_ID"], hosts=tuple(hosts), node_rank=node)
    if "PBS_JOBID" in env and env.get("PBS_NODEFILE"):
        hosts, slots = read_pbs_nodefile(env["PBS_NODEFILE"])
        return JobLayout(
            scheduler="pbs",
            job_id=env["PBS_JOBID"],
            hosts=tuple(hosts),
            node_rank=_this_node(hosts, hostname),
            slots=tuple(slots),
        )
    if "JOB_ID" in env and env.get("PE_HOSTFILE"):
        hosts, slots = read_pe_hostfile(env["PE_HOSTFILE"])
        return JobLayout(
            scheduler="sge",
            job_id=env["JOB_ID"],
            hosts=tuple(hosts),
            node_rank=_this_node(hosts, hostname),
            slots=tuple(slots),
        )
    if "JOB_ID" in env:  # a Grid Engine job without a parallel environment: one node
        return JobLayout(scheduler="sge", job_id=env["JOB_ID"], hosts=(hostname or socket.gethostname(),), node_rank=0)
    if env.get("SUBMITIT_EXECUTOR"):
        layout = _submitit_layout()
        if layout is not None:
            return layout
    return JobLayout(scheduler="local", job_id="", hosts=(hostname or socket.gethostname(),), node_rank=0)


def _submitit_layout() -> JobLayout | None:
    """The layout from submitit's JobEnvironment, or None where submitit cannot tell (no matching plugin)."""
    import submitit

    try:
        job = submitit.JobEnvironment()
    except RuntimeError:
        return None
    return JobLayout(scheduler="submitit", job_id=str(job.job_id), hosts=tuple(job.hostnames), node_rank=job.node)
