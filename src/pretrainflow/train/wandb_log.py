"""The W&B sink of the run log (train/runlog.py), rank 0 only; the settings and run identity are train/tracking.py's.

Imported only when tracking is on: importing ``wandb`` takes about a second. One ``wandb.init`` per attempt of a run
(offline: one ``{checkpoint dir}/wandb/offline-run-<time>-<id>/`` each, same id, synced in order by ``wandb sync``), one
``log`` per metrics row at its optimizer step. ``logged_step.json`` beside them records the last step sent, so steps an
attempt redoes after its checkpoint (the attempt before died after sending them) are not sent twice.
"""

from __future__ import annotations

import json

from pretrainflow.io import atomic_write_json
from pretrainflow.train.tracking import TrackedRun, missing_wandb


class WandbLog:
    """The W&B sink of a run log (rank 0 only): one ``wandb.init`` per attempt, one ``log`` per metrics row."""

    def __init__(self, run: TrackedRun) -> None:
        try:
            import wandb
        except ImportError:
            missing_wandb(run.source, run.wandb.mode)
        self.run_id = run.run_id
        self._marker = run.directory / "wandb" / "logged_step.json"
        self.last_step = self._logged_step()
        run.directory.mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(
            mode=run.wandb.mode,
            project=run.wandb.project,
            entity=run.wandb.entity,
            tags=list(run.wandb.tags) or None,
            id=run.run_id,
            resume="allow",  # a resumed attempt continues the same W&B run
            name=run.name,
            job_type=run.job_type,
            config=run.config,
            dir=str(run.directory),  # wandb writes {dir}/wandb/
            # the job's stdout/stderr already go to its Snakemake log; W&B would copy the progress bar line by line
            settings=wandb.Settings(console="off"),
        )

    def _logged_step(self) -> int:
        """The last step an earlier attempt of this run sent (-1 when none)."""
        if not self._marker.is_file():
            return -1
        record = json.loads(self._marker.read_text())
        return int(record["step"]) if record.get("run_id") == self.run_id else -1

    def log(self, values: dict[str, float], step: int) -> None:
        if step <= self.last_step:
            return  # redone after a resume: the attempt that died sent this step already
        self.run.log(values, step=step)
        self.last_step = step
        atomic_write_json(self._marker, {"run_id": self.run_id, "step": step})

    def close(self) -> None:
        import wandb

        self.run.finish()
        # finish() returns before the W&B service has written everything: stop the service, so that the offline
        # files are complete when training returns (otherwise only at interpreter exit), ready for `wandb sync`
        wandb.teardown()
