"""Walltime and preemption signals: finish the current step, checkpoint, exit with ``EXIT_CHECKPOINTED``.

Schedulers warn a job before killing it: Slurm ``--signal=USR1@120`` / SIGTERM at the limit, PBS SIGTERM then
SIGKILL after ``kill_delay``, Grid Engine SIGUSR1/SIGUSR2 with ``-notify``. ``WalltimeGuard`` only records the signal;
the training loop polls ``guard.requested`` after each optimizer step (all ranks agree through ``agreed()``), saves a
complete checkpoint and returns ``EXIT_CHECKPOINTED``. Rerunning the same command resumes from that checkpoint.

Usage (also by train/llm/loop.py)::

    with WalltimeGuard() as guard:
        for step in ...:
            train_step()
            if guard.agreed():
                save_checkpoint(); return EXIT_CHECKPOINTED
"""

from __future__ import annotations

import signal
from types import FrameType

# 75 = EX_TEMPFAIL in sysexits.h: "try again later" - the run is incomplete but safely resumable.
EXIT_CHECKPOINTED = 75
GUARDED_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)


class WalltimeGuard:
    """Context manager that turns SIGTERM/SIGUSR1/SIGUSR2 into a flag (``requested``: the signal number or 0)."""

    def __init__(self, signals: tuple[int, ...] = GUARDED_SIGNALS) -> None:
        self.signals = signals
        self.requested = 0
        self._previous: dict[int, object] = {}
        self._group = None

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.requested = signum

    def __enter__(self) -> WalltimeGuard:
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def agreed(self) -> bool:
        """True on every rank when any rank got a signal (a max all-reduce of one integer when distributed).

        The all-reduce runs over a CPU (gloo) group of its own, so on GPUs it never waits for the CUDA stream: asking
        every step costs about as much as one small message.
        """
        import torch
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return bool(self.requested)
        if self._group is None:  # collective: every rank reaches its first agreed() at the same step
            self._group = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else dist.group.WORLD
        flag = torch.tensor([self.requested], dtype=torch.int64)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
        return bool(flag.item())
