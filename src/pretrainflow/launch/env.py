"""The environment every training process starts with: its world, and what must reach every rank of a job.

``worker_env(base, world)`` is the one builder the launchers use (local.py on one node, multinode.py's node launchers
under srun, and worker.py itself under mpirun, whose ranks start with Open MPI's OMPI_COMM_WORLD_* only):

- RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT, always. Without them
  ``deepspeed.init_distributed`` falls into its MPI discovery (needs mpi4py, rewrites MASTER_ADDR/PORT), and
  megatron's setup would read a world of its own.
- TORCHINDUCTOR_CACHE_DIR, unless the user set one: ``$XDG_CACHE_HOME`` (or ``~/.cache``)/pretrainflow/torchinductor,
  shared by all runs of this user. On CUDA megatron's ``jit_fuser`` is ``torch.compile`` (tens of seconds of compiling
  per fresh process); torch's default cache lives under $TMPDIR, which PBS, Grid Engine and many Slurm sites make per
  job, so every job would compile again. Triton's cache lives inside it unless TRITON_CACHE_DIR says otherwise.

``forwarded_names(env)``: the variables mpirun must pass on by name (``-x``) to the ranks on other nodes.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from pretrainflow.launch.world import World, world_from_env

# Passed on by mpirun when set: rendezvous, paths (PATH carries the venv's bin, which the job wrapper puts first;
# VIRTUAL_ENV names the venv), the libraries the `module load`-ed CUDA / cuDNN / NCCL / HPC-X put on LD_LIBRARY_PATH,
# caches, threads. Open MPI starts the ranks of other nodes from the environment its remote launch gives them (ssh,
# PBS's or Grid Engine's own), not from ours: a name not passed on is missing there (the CUDA libraries, the venv)
# while the ranks of the first node still see it, so a one-node test cannot catch the omission.
FORWARDED = (
    "MASTER_ADDR",
    "MASTER_PORT",
    "PATH",
    "VIRTUAL_ENV",
    "PYTHONPATH",
    "LD_LIBRARY_PATH",
    "TORCHINDUCTOR_CACHE_DIR",
    "TRITON_CACHE_DIR",
    "TORCH_EXTENSIONS_DIR",  # where DeepSpeed's JIT-built ops live: one build for the job, not one per node's default
    "OMP_NUM_THREADS",
    # node-local staging (launch/staging.py) on ABCI: ranks mpirun starts on the other nodes must find the job's
    # local directory too (PBS gives each node the same path)
    "PBS_LOCALDIR",
)
# By prefix: CUDA_* (CUDA_HOME, CUDA_DEVICE_MAX_CONNECTIONS ... from the modules and the site profile's site_env),
# NCCL_* (interface, IB and debug settings of the site profile), GLOO_* (GLOO_SOCKET_IFNAME: gloo's NCCL_SOCKET_IFNAME,
# for CPU ranks and DeepSpeed's CPU collectives) and PRETRAINFLOW_* (site, walltime, GPUs per node).
FORWARDED_PREFIXES = ("CUDA_", "NCCL_", "GLOO_", "PRETRAINFLOW_")
# Never passed on: the scheduler sets the devices of each node itself (cgroup / its own CUDA_VISIBLE_DEVICES); the
# launching node's list may name devices another node does not give this job.
NOT_FORWARDED = frozenset({"CUDA_VISIBLE_DEVICES"})


def inductor_cache_dir(env: Mapping[str, str]) -> str | None:
    """TorchInductor's cache for processes started from ``env``: the user's own, else one shared per user.

    >>> inductor_cache_dir({"HOME": "/home/me"})
    '/home/me/.cache/pretrainflow/torchinductor'
    >>> inductor_cache_dir({"TORCHINDUCTOR_CACHE_DIR": "/fast/c", "HOME": "/home/me"})
    '/fast/c'
    """
    if env.get("TORCHINDUCTOR_CACHE_DIR"):
        return env["TORCHINDUCTOR_CACHE_DIR"]
    root = env.get("XDG_CACHE_HOME") or (os.path.join(env["HOME"], ".cache") if env.get("HOME") else None)
    return os.path.join(root, "pretrainflow", "torchinductor") if root else None  # no home: torch's default


def worker_env(base: Mapping[str, str], world: World | None = None) -> dict[str, str]:
    """``base`` plus the torchrun-style variables of ``world`` (default: the world ``base`` describes, e.g. Open MPI's
    variables under mpirun) and the shared TorchInductor cache.

    >>> env = worker_env({"OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
    ...                   "OMPI_COMM_WORLD_LOCAL_SIZE": "4", "MASTER_ADDR": "n1", "MASTER_PORT": "10012", "HOME": "/h"})
    >>> [env[k] for k in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "TORCHINDUCTOR_CACHE_DIR")]
    ['5', '1', '8', 'n1', '10012', '/h/.cache/pretrainflow/torchinductor']
    """
    world = world_from_env(base) if world is None else world
    env = {**base, **world.env()}
    cache = inductor_cache_dir(base)
    if cache is not None:
        env["TORCHINDUCTOR_CACHE_DIR"] = cache
    return env


def forwarded_names(env: Mapping[str, str]) -> list[str]:
    """Names of the variables of ``env`` that mpirun passes on with ``-x``: those of FORWARDED and FORWARDED_PREFIXES
    that are set (an unset name has nothing to pass on), without NOT_FORWARDED. Only names: the values travel in
    mpirun's environment, never in its argv, so no value is ever parsed by a shell or by mpirun's option parser.

    >>> forwarded_names({"PATH": "/bin", "NCCL_SOCKET_IFNAME": "ib0", "HOME": "/h", "LD_LIBRARY_PATH": "/l",
    ...                  "CUDA_HOME": "/c", "CUDA_VISIBLE_DEVICES": "0,1", "VIRTUAL_ENV": "/v"})
    ['PATH', 'VIRTUAL_ENV', 'LD_LIBRARY_PATH', 'CUDA_HOME', 'NCCL_SOCKET_IFNAME']
    """
    fixed = [name for name in FORWARDED if name in env]
    by_prefix = (name for name in env if name.startswith(FORWARDED_PREFIXES) and name not in fixed)
    return fixed + sorted(name for name in by_prefix if name not in NOT_FORWARDED)
