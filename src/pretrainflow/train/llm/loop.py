"""The LLM training loop: resume -> steps (run log: progress bar, TensorBoard; metrics.jsonl) -> checkpoints.

metrics.jsonl lines (rank 0, one per logged step): step, loss (nats/token), lr, grad_norm, tokens (seen so far),
tokens_per_s (this step), wall (seconds since the run started, summed over resumed segments).
final.json (rank 0, at the end): what the launcher needs for summary.json.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch.distributed as dist

from pretrainflow.io import atomic_write_json, config_hash
from pretrainflow.study.layout import checkpoint_unit
from pretrainflow.train import checkpoints
from pretrainflow.train.llm import checkpoint as llm_checkpoint
from pretrainflow.train.llm.spec import LLMRunSpec
from pretrainflow.train.runlog import RunLog
from pretrainflow.train.signals import EXIT_CHECKPOINTED, WalltimeGuard
from pretrainflow.train.tracking import TrackingSpec, tracked_run


@dataclass(kw_only=True)
class TrainLoop:
    run: LLMRunSpec
    spec: dict[str, Any]  # the --spec JSON as given: hashed into the checkpoint (and its directory)
    engine: Any
    stream: Any
    root: Path
    device: str
    step: int = 0
    wall_before: float = 0.0  # training seconds of earlier (killed / checkpointed) segments
    tracking: TrackingSpec | None = None  # W&B (train/tracking.py): how the run is observed, not part of ``spec``
    _lines: list[str] = field(default_factory=list)

    @property
    def is_main(self) -> bool:
        return dist.get_rank() == 0

    def resume(self) -> None:
        """Load the latest complete checkpoint if there is one (any tensor-parallel layout)."""
        found = checkpoints.latest(self.root)
        if found is None:
            return
        step, path = found
        model, optimizer = self.engine.state_for_checkpoint()
        common = llm_checkpoint.load(path, model, optimizer)
        self.engine.scheduler.load_state_dict(common["scheduler"])
        self.step, self.wall_before = int(common["step"]), float(common["wall_seconds"])
        if self.is_main:
            self._trim_metrics(self.step)
            print(f"[pretrain-llm] resumed from {path} at step {step}", flush=True)

    def _trim_metrics(self, step: int) -> None:
        # Steps after the checkpoint will be redone: drop their lines so the curve has each step once.
        path = self.root / "metrics.jsonl"
        if path.is_file():
            keep = [line for line in path.read_text().splitlines() if json.loads(line)["step"] <= step]
            path.write_text("".join(line + "\n" for line in keep))

    def save(self, wall: float) -> None:
        import torch

        # Common (non-sharded) state must be identical on every rank: take rank 0's clock.
        wall_t = torch.tensor([wall], dtype=torch.float64, device=self.device)
        dist.broadcast(wall_t, src=0)
        wall = float(wall_t)
        model, optimizer = self.engine.state_for_checkpoint()
        common = {
            "step": self.step,
            "tokens": self.step * self.run.tokens_per_step,
            "wall_seconds": wall,
            "scheduler": self.engine.scheduler.state_dict(),
            "config_hash": config_hash(self.spec),
            "spec": json.dumps(self.spec, sort_keys=True),
        }
        llm_checkpoint.save(self.root, self.step, model, optimizer, common, keep=self.run.checkpoint.keep)

    def train(self, *, max_steps: int | None) -> int:
        """Resume, train up to ``max_steps`` (or train_steps), checkpoint; 0 when finished, 75 when stopped early."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.resume()
        run = self.run
        last = min(run.schedule.train_steps, max_steps or run.schedule.train_steps)
        log = RunLog(
            is_main=self.is_main,
            total_steps=last,
            initial_step=self.step,
            desc=f"{'sft' if run.sft is not None else 'pretrain'} {run.run_id}",
            tb_dir=self.root / "tensorboard",
            tb_purge_step=self.step + 1,
            tracking=tracked_run(
                self.tracking,
                unit=checkpoint_unit(run.run_id),
                config=self.spec,
                directory=self.root,
                job_type="sft" if run.sft is not None else "pretrain",
            ),
        )
        segment_start, trained_tokens, step_seconds = time.time(), 0, 0.0
        try:
            with WalltimeGuard() as guard:
                while self.step < last:
                    t0 = time.time()
                    loss, grad_norm = self.engine.train_step(list(self.stream.step(self.step)))
                    self.step += 1
                    seconds = time.time() - t0
                    step_seconds += seconds
                    trained_tokens += run.tokens_per_step
                    wall = self.wall_before + time.time() - segment_start
                    if self.is_main and (self.step % run.log.every_steps == 0 or self.step == last):
                        self._log(log, loss, grad_norm, run.tokens_per_step / seconds, wall)
                    every = run.checkpoint.every_steps
                    if every and self.step % every == 0 and self.step < last:
                        self.save(wall)
                    if guard.agreed():
                        self.save(wall)
                        return EXIT_CHECKPOINTED
            wall = self.wall_before + time.time() - segment_start
            self.save(wall)
        finally:
            log.close()
        if self.is_main:
            atomic_write_json(self.root / "final.json", {
                "step": self.step, "tokens": self.step * run.tokens_per_step, "wall_seconds": wall,
                # training steps only (data loading included, checkpoint saves excluded), last segment
                "tokens_per_s": trained_tokens / step_seconds if trained_tokens else None,
                "world_size": dist.get_world_size(), "device": self.device,
            })  # fmt: skip
        return 0 if self.step >= run.schedule.train_steps else EXIT_CHECKPOINTED

    def _log(self, log: RunLog, loss: float, grad_norm: float, tokens_per_s: float, wall: float) -> None:
        """One metrics row (rank 0): appended to metrics.jsonl, which survives resumes, and shown by the run log."""
        lr = self.engine.scheduler.get_lr(self.engine.optimizer.param_groups[0])
        record = {"step": self.step, "loss": loss, "lr": lr, "grad_norm": grad_norm,
                  "tokens": self.step * self.run.tokens_per_step, "tokens_per_s": tokens_per_s, "wall": wall}  # fmt: skip
        with open(self.root / "metrics.jsonl", "a") as handle:
            handle.write(json.dumps(record) + "\n")
        log.advance(self.step)
        log.record(record)
