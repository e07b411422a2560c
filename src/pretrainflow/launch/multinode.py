"""Start one process per device on every node of a job (torchrun-style per node, or mpirun with a hostfile).

``run_job(entry, args, procs_per_node)`` is what training commands call inside a job:
    already launched (RANK/WORLD_SIZE or OMPI_COMM_WORLD_* set)  -> run ``entry`` here, once
    one node                                                      -> pretrainflow.launch.local.run_distributed
    several nodes, Slurm   -> ``srun --overlap --nodes N --ntasks-per-node 1 python -m pretrainflow.launch.node ...``:
                              one node launcher per node, each starting ``procs_per_node`` workers (ranks
                              node_rank * procs_per_node + local_rank)
    several nodes, PBS/SGE -> ``mpirun -np N*G --npernode G -hostfile F -x MASTER_ADDR -x MASTER_PORT ... python -m
                              pretrainflow.launch.worker entry args``; ranks come from OMPI_COMM_WORLD_* (as the lab
                              recipes on ABCI and TSUBAME do; ABCI's hpcx module provides Open MPI), and each worker
                              exports them as RANK/LOCAL_RANK/WORLD_SIZE before training starts (launch/worker.py)
Every process gets MASTER_ADDR = first host, MASTER_PORT = 10000 + job id mod 50000 (pretrainflow.launch.discover),
and the environment of pretrainflow.launch.env (world variables, shared TorchInductor cache); mpirun forwards
LD_LIBRARY_PATH, CUDA_*, NCCL_*, VIRTUAL_ENV, PATH (the venv's bin first) and the rest of ``env.forwarded_names`` to
the other nodes, by name (``-x NAME``, Open MPI's option: ABCI's hpcx module is Open MPI; an MPICH/Hydra mpirun,
whose option is -genv, is not supported), so that no value ever appears in a command line. The job wrapper exports
the site profile's ``site_env`` (the site's CUDA/NCCL settings) before this runs (schedulers/jobscript.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from pretrainflow.launch.discover import JobLayout, discover_job
from pretrainflow.launch.env import forwarded_names, inductor_cache_dir, worker_env
from pretrainflow.launch.local import _launched, _wait_all, _worker_argv, run_distributed
from pretrainflow.launch.world import World


def node_worlds(layout: JobLayout, procs_per_node: int) -> list[World]:
    """The World of each local process on this node: global rank = node_rank * procs_per_node + local_rank."""
    size = layout.num_nodes * procs_per_node
    return [
        World(
            rank=layout.node_rank * procs_per_node + local,
            local_rank=local,
            world_size=size,
            local_world_size=procs_per_node,
            master_addr=layout.master_addr,
            master_port=layout.master_port,
        )
        for local in range(procs_per_node)
    ]


def spawn_node(entry: str, args: Sequence[str], layout: JobLayout, procs_per_node: int) -> int:
    """Start this node's workers with their global ranks; wait for all; return the first failure's exit code."""
    procs = [
        subprocess.Popen(_worker_argv(entry, args), env=worker_env(os.environ, world))
        for world in node_worlds(layout, procs_per_node)
    ]
    return _wait_all(procs)


def write_hostfile(layout: JobLayout, procs_per_node: int, path: str | os.PathLike) -> Path:
    """An Open MPI hostfile, one "<host> slots=<G>" line per node."""
    path = Path(path)
    path.write_text("".join(f"{host} slots={procs_per_node}\n" for host in layout.hosts))
    return path


def mpirun_argv(
    layout: JobLayout,
    procs_per_node: int,
    hostfile: Path,
    entry: str,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
) -> list[str]:
    """mpirun over all nodes; the variables of ``env`` (default: os.environ) that ``forwarded_names`` picks are passed
    on by name (-x), never spelled into a shell line."""
    forward = [item for name in forwarded_names(os.environ if env is None else env) for item in ("-x", name)]
    return [
        "mpirun", "-np", str(layout.num_nodes * procs_per_node), "--npernode", str(procs_per_node),
        "-hostfile", str(hostfile), "-bind-to", "none", *forward,
        *_worker_argv(entry, args),
    ]  # fmt: skip


def launcher_env(base: Mapping[str, str], layout: JobLayout) -> dict[str, str]:
    """The environment of srun / mpirun: ``base`` plus the job's rendezvous and the shared TorchInductor cache (the
    per-rank variables are added on each node: node.py under srun, worker.py under mpirun)."""
    env = {
        **base,
        "MASTER_ADDR": layout.master_addr,
        "MASTER_PORT": str(layout.master_port),
        "CUDA_DEVICE_MAX_CONNECTIONS": "1",
    }
    cache = inductor_cache_dir(base)
    if cache is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
    return env


def srun_argv(layout: JobLayout, procs_per_node: int, entry: str, args: Sequence[str]) -> list[str]:
    """One node launcher per node inside the current Slurm allocation (--overlap: we may already be in a step)."""
    return [
        "srun", "--overlap", "--nodes", str(layout.num_nodes), "--ntasks-per-node", "1", "--kill-on-bad-exit=1",
        sys.executable, "-m", "pretrainflow.launch.node", "--procs-per-node", str(procs_per_node), entry, *args,
    ]  # fmt: skip


def run_job(entry: str, args: Sequence[str], procs_per_node: int, env: Mapping[str, str] | None = None) -> int:
    """Run ``entry`` with ``procs_per_node`` processes on every node of the current job (see module docstring)."""
    env = os.environ if env is None else env
    layout = discover_job(env)
    if _launched(env) or layout.num_nodes == 1:
        return run_distributed(entry, args, procs_per_node)
    child_env = launcher_env(env, layout)
    if layout.scheduler in ("slurm", "submitit"):
        return subprocess.run(srun_argv(layout, procs_per_node, entry, args), env=child_env).returncode
    hostfile = write_hostfile(layout, procs_per_node, Path(env.get("TMPDIR", "/tmp")) / f"hostfile.{layout.job_id}")
    argv = mpirun_argv(layout, procs_per_node, hostfile, entry, args, child_env)
    return subprocess.run(argv, env=child_env).returncode
