"""The study's plots: downstream accuracy by pretraining source, and training loss curves.

Each PNG carries the canonical study JSON in its metadata (PNG text chunk "Description"), like every other output.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pretrainflow.io import atomic_path, canonical_json  # noqa: E402


def _save(fig: plt.Figure, path: str | Path, study: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(
            tmp,
            dpi=120,
            bbox_inches="tight",
            metadata={"Software": "pretrainflow", "Description": canonical_json(study)},
        )
    plt.close(fig)


def plot_downstream(summary: pd.DataFrame, path: str | Path, study: Mapping[str, Any], metric: str = "top1") -> None:
    """One panel per task: the metric of every fine-tuned run on the test split, coloured by pretraining source."""
    rows = summary[(summary["metric"] == metric) & (summary["split"] == "test") & (summary["stage"] == "evaluate")]
    tasks = sorted(rows["task"].unique()) or ["(no rows)"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 + 3 * len(tasks), 4), squeeze=False)
    sources = sorted(rows["pretrain_source"].unique())
    colors = {source: f"C{i}" for i, source in enumerate(sources)}
    for ax, task in zip(axes[0], tasks, strict=True):
        cell = rows[rows["task"] == task].groupby(["run_id", "pretrain_source"], as_index=False)["value"].mean()
        cell = cell.sort_values("value")
        ax.barh(cell["run_id"], cell["value"], color=[colors[s] for s in cell["pretrain_source"]])
        for y, value in enumerate(cell["value"]):
            ax.text(value, y, f" {value:.1f}", va="center", fontsize=8)
        ax.set_title(task)
        ax.set_xlabel(f"{metric} (test)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[s]) for s in sources]
    if handles:
        fig.legend(handles, sources, title="pretrained on", loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(f"Downstream {metric} by pretraining source")
    _save(fig, path, study)


def plot_loss_curves(
    curves: Mapping[str, pd.DataFrame], path: str | Path, study: Mapping[str, Any], title: str
) -> None:
    """Training loss against optimizer step, one line per run (``curves``: label -> metrics with step and loss)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for label, frame in sorted(curves.items()):
        if {"step", "loss"} <= set(frame.columns) and not frame.empty:
            ax.plot(frame["step"], frame["loss"], label=label, linewidth=1.2)
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("training loss")
    ax.set_title(title)
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no curves in this study", ha="center", transform=ax.transAxes)
    ax.grid(alpha=0.3)
    _save(fig, path, study)
