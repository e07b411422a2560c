"""Filter and pivot the summary table, and format it as text, CSV or Markdown (what `pretrainflow results` prints)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd


def select(
    frame: pd.DataFrame,
    *,
    metric: str | None = None,
    tasks: Sequence[str] = (),
    runs: Sequence[str] = (),
    split: str | None = None,
) -> pd.DataFrame:
    """Rows matching every given filter (an empty filter keeps everything)."""
    mask = pd.Series(True, index=frame.index)
    if metric:
        mask &= frame["metric"] == metric
    if tasks:
        mask &= frame["task"].isin(list(tasks))
    if runs:
        mask &= frame["run_id"].isin(list(runs))
    if split:
        mask &= frame["split"] == split
    return frame[mask]


def pivot(
    frame: pd.DataFrame, by: Sequence[str] = ("run_id", "pretrain_source"), columns: str = "task"
) -> pd.DataFrame:
    """One row per ``by`` group, one column per ``columns`` value, cells = mean value (over seeds/duplicates).

    >>> df = pd.DataFrame({"run_id": ["a", "b"], "pretrain_source": ["fdb", "scratch"], "task": ["digits"] * 2,
    ...                    "value": [91.0, 80.0]})
    >>> pivot(df).to_dict()
    {'digits': {('a', 'fdb'): 91.0, ('b', 'scratch'): 80.0}}
    """
    if frame.empty:
        return pd.DataFrame()
    table = frame.pivot_table(index=list(by), columns=columns, values="value", aggfunc="mean")
    table.columns.name = None
    return table


def to_markdown(table: pd.DataFrame, float_format: str = "{:.2f}") -> str:
    """A GitHub-flavoured Markdown table (index columns first), without extra dependencies."""
    flat = table.reset_index()
    header = [str(col) for col in flat.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for _, row in flat.iterrows():
        cells = [float_format.format(v) if isinstance(v, float) else str(v) for v in row]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render(table: pd.DataFrame, fmt: str) -> str:
    """Format ``table`` as ``text`` (aligned columns), ``csv`` or ``markdown``."""
    if fmt == "csv":
        return table.to_csv(float_format="%.6g")
    if fmt == "markdown":
        return to_markdown(table)
    if fmt == "text":
        with pd.option_context("display.max_rows", 500, "display.max_columns", 50, "display.width", 200):
            return table.to_string(float_format=lambda v: f"{v:.2f}")
    raise ValueError(f"format {fmt!r}: expected text, csv or markdown")
