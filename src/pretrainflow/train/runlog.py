"""Training logs of rank 0: a tqdm progress bar, metric rows every N steps, TensorBoard events, a loss-curve plot, and
W&B when the study or the site asks (train/tracking.py): the one place both engines send their scalars."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

from pretrainflow.io import atomic_path
from pretrainflow.train.tracking import TrackedRun, scalars


class RunLog:
    """Collects metric rows (step, epoch, loss, lr, images_per_s, ...); the bar, TensorBoard and W&B only on rank 0."""

    def __init__(
        self,
        *,
        is_main: bool,
        total_steps: int,
        initial_step: int,
        desc: str,
        tb_dir: Path | None,
        rows: list[dict] | None = None,
        tb_purge_step: int | None = None,
        tracking: TrackedRun | None = None,
    ) -> None:
        self.is_main = is_main
        self.rows: list[dict] = list(rows or [])
        self.bar = None
        self.tb = None
        self.wandb = None
        if is_main:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_steps,
                initial=initial_step,
                desc=desc,
                unit="step",
                file=sys.stderr,
                dynamic_ncols=True,
                mininterval=1.0,
            )
            if tb_dir is not None:
                from torch.utils.tensorboard import SummaryWriter

                # purge_step: a resumed run drops the events logged after its checkpoint (they are redone)
                self.tb = SummaryWriter(log_dir=str(tb_dir), purge_step=tb_purge_step)
            if tracking is not None:
                from pretrainflow.train.wandb_log import WandbLog  # imports wandb: only when tracking is on

                self.wandb = WandbLog(tracking)

    def advance(self, step: int) -> None:
        """Move the bar to optimizer step ``step``."""
        if self.bar is not None:
            self.bar.update(step - self.bar.n)

    def record(self, row: dict) -> None:
        """Add one metrics row (all ranks keep them: the row list travels in checkpoints)."""
        self.rows.append(row)
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{row['loss']:.4f}", lr=f"{row['lr']:.2e}", refresh=False)
        values = scalars(row)  # the same scalars for TensorBoard and W&B
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(key, value, row["step"])
        if self.wandb is not None:
            self.wandb.log(values, row["step"])

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.tb is not None:
            self.tb.flush()
            self.tb.close()
        if self.wandb is not None:
            self.wandb.close()


def metrics_frame(rows: list[dict]) -> pd.DataFrame:
    """Rows as a typed frame: step int64, every other column float64 (an empty run still has step, loss and lr)."""
    frame = pd.DataFrame(rows, columns=sorted({k for r in rows for k in r} | {"step", "loss", "lr"}))
    frame["step"] = frame["step"].astype("int64")
    for key in frame.columns.drop("step"):
        frame[key] = frame[key].astype("float64")
    return frame


def plot_loss(
    frame: pd.DataFrame,
    path: Path,
    title: str,
    *,
    x: str = "step",
    xlabel: str = "optimizer step",
    ylabel: str = "training loss",
) -> None:
    """Training loss against column ``x`` (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(frame[x], frame["loss"], marker="." if len(frame) < 200 else None, lw=1.2)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
