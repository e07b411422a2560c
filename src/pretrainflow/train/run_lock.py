"""One writer per checkpoint directory: a training job holds an OS lock on ``{checkpoint dir}/run.lock`` while it runs.

Why: Snakemake on a login node dies with the session, while the jobs it submitted keep running on the cluster. After
``snakemake --unlock`` the same command may submit a second copy of a run that is still training; both would write
``results/checkpoints/{run}/{hash12}/`` (and the second would prune the first's tags). With the lock the second copy
waits a bounded time (``PRETRAINFLOW_RUN_LOCK_WAIT_S``, default 60 s: long enough for a job killed by the scheduler to
finish dying) and then exits with ``EXIT_RUN_LOCKED`` and one line naming the run and the holder (host, pid, scheduler
job id, start time), before it has written anything there.

    with hold_run_lock(checkpoint_dir, run="vit-micro-fdb"):   # collective: every rank of the job calls it
        train(...)                                             # rank 0 holds the lock until the block ends

What it guarantees:
- The lock is ``flock(LOCK_EX)`` on ``run.lock`` held by global rank 0, which creates each checkpoint tag, marks it
  complete, prunes and publishes (the other ranks only write into a tag rank 0 created, after a barrier). The kernel drops it when that process dies, however it dies (SIGKILL, OOM, node job teardown):
  a killed holder never leaves a stale lock, so there is nothing to clean by hand. The file itself stays (its text is
  only information about the last holder); it is never replaced, because a lock lives on the inode.
- The other ranks learn the outcome from rank 0 (one broadcast) and leave together: no rank of a refused copy writes.
- Across nodes it is as good as the shared file system's flock: NFS (Linux client, v3 via NLM and v4) turns flock
  into a whole-file lock the server arbitrates, so it holds across nodes; if the holder's whole node dies, NFSv4
  frees the lock when the client's lease expires (about 90 s), NFSv3 only once that node reboots (statd). Lustre arbitrates it across nodes only when the client
  mounts with ``-o flock``; with ``localflock`` it holds between processes of one node only, and with ``noflock`` the
  call fails: we stop with an error saying so rather than train unlocked. Local disks: one node only, by nature.
- Fork-started children (DataLoader workers) share the lock's open file: after a SIGKILL of rank 0 it is free once
  they have exited too (PyTorch's workers notice a dead parent within seconds; the bounded wait covers that).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from pretrainflow.errors import PretrainflowError

LOCK_NAME = "run.lock"
WAIT_ENV = "PRETRAINFLOW_RUN_LOCK_WAIT_S"
DEFAULT_WAIT_S = 60.0
# 73 = EX_CANTCREAT in sysexits.h ("cannot create output"): this copy wrote nothing. Distinct from 75 (checkpointed).
EXIT_RUN_LOCKED = 73
# The scheduler's id of this job, named in the holder record (so a user can qstat/squeue/qdel it).
_JOB_ID_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "JOB_ID")


class RunLocked(SystemExit):
    """This copy of the run did not get the lock. A SystemExit so that every rank of a refused copy ends with
    ``EXIT_RUN_LOCKED`` and no traceback, through the launcher's worker processes and the CLI alike (the message is
    printed once, by rank 0)."""

    def __init__(self, message: str) -> None:
        super().__init__(EXIT_RUN_LOCKED)
        self.message = message

    def __str__(self) -> str:
        return self.message


def wait_seconds(env: dict[str, str] | os._Environ = os.environ) -> float:
    """The bounded wait for a busy lock, from ``PRETRAINFLOW_RUN_LOCK_WAIT_S`` (seconds >= 0).

    >>> wait_seconds({}), wait_seconds({"PRETRAINFLOW_RUN_LOCK_WAIT_S": "5"})
    (60.0, 5.0)
    """
    text = env.get(WAIT_ENV, "")
    if not text:
        return DEFAULT_WAIT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also rejects nan
        raise PretrainflowError(f"{WAIT_ENV}: expected seconds >= 0, got {text!r}")
    return value


def holder_record(run: str) -> dict:
    """What the lock file says about its holder: run, host, pid, scheduler job id, start time (UTC)."""
    job = next((os.environ[name] for name in _JOB_ID_VARIABLES if os.environ.get(name)), None)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    return {"run": run, "host": socket.gethostname(), "pid": os.getpid(), "job": job, "started": started}


def describe_holder(path: Path) -> str:
    """The holder as one phrase, from the lock file's text (best effort: it may be mid-write)."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return "another process (its record is unreadable)"
    job = f", scheduler job {record['job']}" if record.get("job") else ""
    return f"pid {record.get('pid')} on host {record.get('host')}{job}, started {record.get('started')}"


class RunLock:
    """The lock of one checkpoint directory in this process (no distributed logic: see ``hold_run_lock``)."""

    def __init__(self, directory: Path, run: str) -> None:
        self.directory = Path(directory)
        self.run = run
        self.path = self.directory / LOCK_NAME
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock without blocking; True when this process holds it now."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.ENOLCK, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
                raise PretrainflowError(
                    f"run {self.run}: cannot lock {self.path} ({err.strerror}): this file system does not support "
                    "flock (Lustre: mount with -o flock); refusing to train without the one-writer guarantee"
                ) from None
            raise
        # Written in place, not atomically: replacing the file would give a new inode that a second copy could lock.
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder_record(self.run)) + "\n").encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return True

    def acquire(self, wait_s: float) -> None:
        """Take the lock, polling for up to ``wait_s`` seconds; RunLocked naming the holder if it stays busy."""
        deadline = time.monotonic() + wait_s
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                raise RunLocked(self.refusal(wait_s))
            time.sleep(min(1.0, max(0.05, deadline - time.monotonic())))

    def refusal(self, wait_s: float) -> str:
        return (
            f"run {self.run}: another copy of this run holds {self.path} ({describe_holder(self.path)}); waited "
            f"{wait_s:g} s ({WAIT_ENV}). This copy wrote nothing and stops. If that job is still running, let it "
            "finish (or cancel it) and run the same command again: it resumes from the newest complete checkpoint"
        )

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def _agree(outcome: tuple[str, str] | None) -> tuple[str, str] | None:
    """Rank 0's outcome on every rank (one broadcast when a process group is up)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return outcome
    box = [outcome]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def hold_run_lock(directory: Path | None, run: str, *, wait_s: float | None = None) -> Iterator[RunLock | None]:
    """Collective: global rank 0 holds ``{directory}/run.lock`` for the block; every rank raises RunLocked when it
    stays busy for ``wait_s`` seconds (default: ``wait_seconds()``). ``directory`` None (no checkpoints): no lock."""
    if directory is None:
        yield None
        return
    from pretrainflow.launch import world_from_env

    lock = RunLock(directory, run) if world_from_env().rank == 0 else None
    outcome = None  # (kind, message) when rank 0 did not get the lock: every rank must leave, not only rank 0
    if lock is not None:
        try:
            lock.acquire(wait_seconds() if wait_s is None else wait_s)
        except RunLocked as err:
            outcome = ("locked", err.message)
            print(f"[run-lock] {err.message}", file=sys.stderr, flush=True)
        except PretrainflowError as err:
            outcome = ("error", str(err))
    outcome = _agree(outcome)
    if outcome is not None:
        kind, message = outcome
        raise RunLocked(message) if kind == "locked" else PretrainflowError(message)
    try:
        yield lock
    finally:
        if lock is not None:
            lock.release()
