"""Start the worker processes of one node (torchrun-style), wait for all, and return one exit code."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

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


def run_distributed(entry: str, args: Sequence[str], procs_per_node: int) -> int:
    """Run ``entry`` ("package.module:function", called with ``args``) in ``procs_per_node`` processes on this node.

    With ``procs_per_node == 1`` and no outer launcher the function runs in this process. If a launcher already set
    RANK/WORLD_SIZE (torchrun, srun, mpirun) the function runs once here with that world. Returns the first non-zero
    exit code of the workers (so a walltime checkpoint exit code propagates), or 0.
    """
    outer = world_from_env()
    if outer.world_size > 1 or procs_per_node == 1:
        from pretrainflow.launch.worker import call_entry

        return call_entry(entry, list(args))
    world = World(world_size=procs_per_node, local_world_size=procs_per_node, master_port=free_port())
    procs = []
    for rank in range(procs_per_node):
        rank_world = World(
            rank=rank,
            local_rank=rank,
            world_size=procs_per_node,
            local_world_size=procs_per_node,
            master_addr=world.master_addr,
            master_port=world.master_port,
        )
        procs.append(subprocess.Popen(_worker_argv(entry, args), env={**os.environ, **rank_world.env()}))
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
