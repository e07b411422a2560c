"""Start the worker processes of one node (torchrun-style), wait for all, and return one exit code.

Rendezvous on one node uses a port that is free now (never a fixed 29500): two runs on one machine, or two
single-node jobs sharing a node, do not collide. A single process gets its world exported too, so that DeepSpeed and
megatron read RANK/WORLD_SIZE/MASTER_PORT instead of guessing (pretrainflow.launch.env).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence

from pretrainflow.launch.env import worker_env
from pretrainflow.launch.world import World, world_from_env


def free_port() -> int:
    """A TCP port that is free now on this host (for single-node rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _worker_argv(entry: str, args: Sequence[str]) -> list[str]:
    # `python -m pretrainflow.launch.worker module:function args...` keeps every value a separate argv item:
    # nothing is ever parsed by a shell.
    return [sys.executable, "-m", "pretrainflow.launch.worker", entry, *args]


def _launched(env: Mapping[str, str]) -> bool:
    """An outer launcher (torchrun, srun's node launcher, mpirun) already gave this process its world."""
    return ("RANK" in env and "WORLD_SIZE" in env) or "OMPI_COMM_WORLD_RANK" in env


def in_process_world(env: Mapping[str, str]) -> World:
    """The world of a run in this process: the outer launcher's, else one process on a free port (or $MASTER_PORT).

    >>> in_process_world({"MASTER_PORT": "12345"}).master_port, in_process_world({}).master_port != 29500
    (12345, True)
    """
    if _launched(env):
        return world_from_env(env)
    return World(master_port=int(env["MASTER_PORT"]) if env.get("MASTER_PORT") else free_port())


def local_worlds(procs_per_node: int, port: int) -> list[World]:
    """The World of each of ``procs_per_node`` processes on this node, meeting on ``port``."""
    return [
        World(rank=rank, local_rank=rank, world_size=procs_per_node, local_world_size=procs_per_node, master_port=port)
        for rank in range(procs_per_node)
    ]


@contextlib.contextmanager
def exported(env: Mapping[str, str]) -> Iterator[None]:
    """Set ``env`` in os.environ for the block, then restore the variables it changed."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_distributed(entry: str, args: Sequence[str], procs_per_node: int) -> int:
    """Run ``entry`` ("package.module:function", called with ``args``) in ``procs_per_node`` processes on this node.

    With ``procs_per_node == 1`` and no outer launcher the function runs in this process. If a launcher already set
    RANK/WORLD_SIZE (torchrun, srun, mpirun) the function runs once here with that world. Either way the world is
    exported (RANK, ..., MASTER_PORT; pretrainflow.launch.env) while it runs. Returns the first non-zero exit code of
    the workers (so a walltime checkpoint exit code propagates), or 0.
    """
    if world_from_env().world_size > 1 or procs_per_node == 1:
        from pretrainflow.launch.worker import call_entry

        with exported(worker_env(os.environ, in_process_world(os.environ))):
            return call_entry(entry, list(args))
    procs = [
        subprocess.Popen(_worker_argv(entry, args), env=worker_env(os.environ, world))
        for world in local_worlds(procs_per_node, free_port())
    ]
    return _wait_all(procs)


def _wait_all(procs: list[subprocess.Popen]) -> int:
    """Wait for all workers; forward SIGTERM/SIGUSR1/SIGUSR2 to them; if one fails, stop the others."""

    def forward(signum, _frame):
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)}
    try:
        first_failure = 0
        while any(proc.poll() is None for proc in procs):
            for proc in procs:
                code = proc.poll()
                if code not in (None, 0) and first_failure == 0:
                    first_failure = code
                    # A failed rank leaves the others blocked in a collective: give them a moment, then stop them.
                    deadline = time.monotonic() + 30
                    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
                        time.sleep(0.2)
                    for other in procs:
                        if other.poll() is None:
                            other.kill()
            time.sleep(0.1)
        codes = [proc.returncode for proc in procs]
        return first_failure or next((c for c in codes if c != 0), 0)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
