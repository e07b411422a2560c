"""The study's plots: downstream accuracy by pretraining source, training loss curves, and a metric against any
numeric column or config key (``plot_metric_against``, `pretrainflow results --x KEY --plot PNG`). Where a cell has
several replicates the plots show their mean with a 95 % confidence interval (pretrainflow.results.stats).

Each PNG carries the canonical study JSON in its metadata (PNG text chunk "Description"), like every other output.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from pretrainflow.errors import PretrainflowError  # noqa: E402
from pretrainflow.io import atomic_path, canonical_json  # noqa: E402
from pretrainflow.results.columns import with_columns  # noqa: E402
from pretrainflow.results.stats import describe  # noqa: E402
from pretrainflow.results.table import metric_label  # noqa: E402


def _save(fig: plt.Figure, path: str | Path, study: Mapping[str, Any]) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(
            tmp,
            dpi=120,
            bbox_inches="tight",
            metadata={"Software": "pretrainflow", "Description": canonical_json(study)},
        )
    plt.close(fig)


def _error_bars(stats: pd.DataFrame) -> np.ndarray:
    """(2, k) distances from the mean to the 95 % CI bounds; NaN (no bar) where a group has one run (no interval)."""
    return np.vstack([stats["mean"] - stats["ci95_low"], stats["ci95_high"] - stats["mean"]])


def plot_downstream(summary: pd.DataFrame, path: str | Path, study: Mapping[str, Any], metric: str = "top1") -> None:
    """One panel per task: the metric of every fine-tuned cell on the test split, coloured by pretraining source;
    the mean over a cell's replicates with its 95 % CI as an error bar where n > 1."""
    rows = summary[(summary["metric"] == metric) & (summary["split"] == "test") & (summary["stage"] == "evaluate")]
    stats = describe(rows, ["cell", "pretrain_source"])
    tasks = sorted(stats["task"].unique()) or ["(no rows)"]
    fig, axes = plt.subplots(1, len(tasks), figsize=(4 + 3 * len(tasks), 4), squeeze=False)
    sources = sorted(stats["pretrain_source"].unique())
    colors = {source: f"C{i}" for i, source in enumerate(sources)}
    for ax, task in zip(axes[0], tasks, strict=True):
        cell = stats[stats["task"] == task].sort_values("mean", kind="stable")
        y = np.arange(len(cell))
        ax.barh(y, cell["mean"], color=[colors[s] for s in cell["pretrain_source"]])
        ax.set_yticks(y, cell["cell"])
        if (cell["n"] > 1).any():
            ax.errorbar(cell["mean"], y, xerr=_error_bars(cell), fmt="none", ecolor="black", capsize=3)
        for position, row in zip(y, cell.itertuples(), strict=True):
            spread = f" [{row.ci95_low:.1f}, {row.ci95_high:.1f}] n={row.n}" if row.n > 1 else ""  # the CI, not sd
            end = row.ci95_high if row.n > 1 else row.mean  # the label starts where the error bar ends
            ax.text(end, position, f" {row.mean:.1f}{spread}", va="center", fontsize=8)
        ax.set_title(task)
        ax.set_xlabel(f"{metric_label(metric)}, test split")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[s]) for s in sources]
    if handles:
        fig.legend(handles, sources, title="pretrained on", loc="center left", bbox_to_anchor=(1.0, 0.5))
    spread = " (mean and 95 % CI over replicates)" if (stats["n"] > 1).any() else ""
    fig.suptitle(f"Downstream {metric} by pretraining source{spread}")
    _save(fig, path, study)


def plot_metric_against(
    frame: pd.DataFrame,
    x: str,
    path: str | Path,
    study: Mapping[str, Any],
    *,
    metric: str = "top1",
    series: Sequence[str] = (),
) -> int:
    """``metric`` against the numeric column or config key ``x`` (e.g. ``config.pretrain_spec.dataset_spec.num_classes``):
    one panel per task and split, one line per ``series`` group, mean and 95 % CI over the rows at each x.

    Rows without a value for ``x`` (a scratch run has no pretraining dataset) are left out; returns how many.
    A logarithmic x axis is used when the values are positive and span two decades or more (learning rates).
    """
    series = list(series)
    rows = with_columns(frame[frame["metric"] == metric], [x, *series])
    if rows.empty:
        raise PretrainflowError(f"--plot: no rows of metric {metric!r}")
    numeric = pd.to_numeric(rows[x], errors="coerce")
    alien = rows[x][numeric.isna() & rows[x].notna()]
    if not alien.empty:
        raise PretrainflowError(f"--x {x!r}: expected numbers, got {sorted(set(map(str, alien)))[:5]}")
    left_out = int(numeric.isna().sum())
    rows = rows[numeric.notna()].assign(**{x: numeric[numeric.notna()]})
    if rows.empty:
        raise PretrainflowError(f"--x {x!r}: no row of metric {metric!r} has a value for it")
    stats = describe(rows, [*series, x])
    panels = list(stats[["task", "split"]].drop_duplicates().itertuples(index=False))
    fig, axes = plt.subplots(1, len(panels), figsize=(1 + 4.5 * len(panels), 4), squeeze=False)
    for ax, (task, split) in zip(axes[0], panels, strict=True):
        panel = stats[(stats["task"] == task) & (stats["split"] == split)]
        groups = panel.groupby(series, dropna=False, sort=False) if series else [((), panel)]
        for key, line in groups:
            line = line.sort_values(x)
            label = " / ".join(map(str, key if isinstance(key, tuple) else (key,))) or None
            ax.errorbar(line[x], line["mean"], yerr=_error_bars(line), marker="o", capsize=3, label=label)
        values = stats[x]
        if (values > 0).all() and values.max() >= 100 * values.min():
            ax.set_xscale("log")
        ax.set_title(f"{task} ({split})")
        ax.set_xlabel(x)
        ax.set_ylabel(metric_label(metric))
        ax.grid(alpha=0.3)
        if series:
            ax.legend(title=" / ".join(series), fontsize=8)
    fig.suptitle(f"{metric} against {x} (mean, 95 % CI where n > 1)")
    _save(fig, path, study)
    return left_out


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
