"""The output directory of a training stage (ViT pretraining or fine-tuning, GPT pretraining), written as a whole.

    model.safetensors   fp32 weights with the stage's metadata (format, architecture, shape, config_hash, ...)
    metrics.parquet     one row per logged optimizer step: step, loss, lr, and the stage's own columns
    summary.json        wall time, throughput, world size, devices, device-hours, MFU, and the stage's own fields
    config.json         {"config", "config_hash", "provenance"} (provenance.config_record: one shape everywhere;
                        provenance.study: the study whose workflow built it)
    loss.png            the training-loss curve
    tensorboard/        TensorBoard event files (copied from the checkpoint directory, where they survive resumes)

``atomic_dir`` builds it beside the target and renames it into place: a killed job leaves no partial directory.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from pretrainflow.io import atomic_dir, atomic_write_json, save_safetensors
from pretrainflow.provenance import config_record
from pretrainflow.train.mfu import mfu
from pretrainflow.train.runlog import metrics_frame, plot_loss


@dataclass(frozen=True, slots=True)
class LossAxis:
    """What the loss plot shows along x: optimizer steps (ViT) or tokens seen (GPT)."""

    column: str = "step"
    label: str = "optimizer step"
    loss_label: str = "training loss"


def write_stage_dir(
    out: Path,
    *,
    state_dict: dict,
    weights_meta: dict[str, str],
    metrics: list[dict],
    summary: dict,
    config: dict,
    tb_dir: Path | None,
    title: str,
    axis: LossAxis = LossAxis(),
) -> None:
    """Write the whole output directory of a training stage atomically (see the module docstring)."""
    with atomic_dir(out) as tmp:
        save_safetensors(state_dict, tmp / "model.safetensors", weights_meta)
        frame = metrics_frame(metrics)
        frame.to_parquet(tmp / "metrics.parquet", index=False)
        atomic_write_json(tmp / "summary.json", summary)
        atomic_write_json(tmp / "config.json", config_record(config))
        if len(frame):
            plot_loss(frame, tmp / "loss.png", title, x=axis.column, xlabel=axis.label, ylabel=axis.loss_label)
        if tb_dir is not None and tb_dir.is_dir():
            shutil.copytree(tb_dir, tmp / "tensorboard")


def device_fields(
    *, world_size: int, device_name: str, wall: float, train_flops_per_item: float, items_per_s: float | None
) -> dict:
    """Summary fields of every training stage: devices, wall time, device-hours and MFU.

    >>> device_fields(world_size=2, device_name="cpu", wall=36.0, train_flops_per_item=1e6, items_per_s=10.0)
    {'devices': '2 x cpu', 'wall_seconds': 36.0, 'device_hours': 0.02, 'mfu': None}
    """
    return {
        "devices": f"{world_size} x {device_name}",
        "wall_seconds": wall,
        "device_hours": wall * world_size / 3600.0,
        "mfu": mfu(
            train_flops_per_item=train_flops_per_item,
            items_per_s=items_per_s,
            world_size=world_size,
            device_name=device_name,
        ),
    }


def read_config(stage_dir: Path) -> dict:
    """The resolved config a stage directory was made from (its ``config.json``)."""
    return json.loads((stage_dir / "config.json").read_text())["config"]
