"""Filter the summary and format statistics as text, Markdown, LaTeX, CSV or JSON (what `pretrainflow results` prints).

Text, Markdown and LaTeX are for reading and pasting into a paper: a title line naming the metric, its unit and the
split, then one row per group and one column per task, each cell ``mean ± sd (n=N)`` (a plain value when every cell
is a single run); the column headers name the metric and unit too (``digits top1 (%)``), since a pasted LaTeX table
keeps only its header. CSV and JSON are for programs: the tidy statistics (group columns, metric, unit, n, mean, std,
ci95_low, ci95_high) at full precision; JSON is a list of one object per row, a missing value as null.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pandas as pd

from pretrainflow.errors import PretrainflowError
from pretrainflow.results.columns import order_key, shown_values, unique
from pretrainflow.results.stats import describe

TABLE_FORMATS = ("text", "markdown", "latex")  # for reading: render()
TIDY_FORMATS = ("csv", "json")  # for programs: tidy()
# What each metric the stages write is measured in (the title names it); top-k accuracies are percent of test images.
METRIC_UNITS = {
    "top1": "%",
    "top5": "%",
    "acc": "%",  # lm-evaluation-harness rows are written in percent (pretrainflow.benchmarks.harness)
    "acc_norm": "%",
    "exact_match": "%",
    "loss": "nats",
    "perplexity": "exp(loss), no unit",
    "tokens_seen": "tokens",
    "eval_tokens": "tokens",
}
LATEX_SPECIALS = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
}


def select(
    frame: pd.DataFrame,
    *,
    metric: str | None = None,
    tasks: Sequence[str] = (),
    runs: Sequence[str] = (),
    cells: Sequence[str] = (),
    split: str | None = None,
) -> pd.DataFrame:
    """Rows matching every given filter (an empty filter keeps everything).

    A filter value that no row has, or filters that hold only apart, are an error naming the filter (as the
    `pretrainflow results` option) and the values that exist, so that a typo is told at once.

    >>> df = pd.DataFrame({"metric": ["top1", "top5"], "task": ["digits"] * 2, "split": ["test"] * 2})
    >>> len(select(df, metric="top1", split="test"))
    1
    >>> select(df, tasks=["digts"])
    Traceback (most recent call last):
    ...
    pretrainflow.errors.PretrainflowError: --task 'digts' matches no row; task values present: digits
    """
    given = {  # option -> (column, values asked for)
        "--metric": ("metric", [metric] if metric else []),
        "--task": ("task", list(tasks)),
        "--run": ("run_id", list(runs)),
        "--cell": ("cell", list(cells)),
        "--split": ("split", [split] if split else []),
    }
    given = {option: pair for option, pair in given.items() if pair[1]}
    masks = {}
    for option, (column, values) in given.items():
        present = set(frame[column].dropna())
        for value in values:
            if value not in present:
                raise PretrainflowError(
                    f"{option} {value!r} matches no row; {column} values present: {shown_values(present)}"
                )
        masks[option] = frame[column].isin(values)
    mask = pd.Series(True, index=frame.index)
    for term in masks.values():
        mask &= term
    if given and not mask.any():
        asked = " ".join(f"{option} {' '.join(map(repr, values))}" for option, (_, values) in given.items())
        hints = []
        for option, (column, _) in given.items():  # what this filter could be, given the others
            others = pd.Series(True, index=frame.index)
            for other, term in masks.items():
                if other != option:
                    others &= term
            fits = set(frame.loc[others, column].dropna())
            hints.append(f"{option} is one of {shown_values(fits)}" if fits else f"no {option} value fits")
        raise PretrainflowError(f"no row matches {asked} together; given the other filters, {'; '.join(hints)}")
    return frame[mask]


def metric_label(metric: str) -> str:
    """The metric with its unit, e.g. ``top1 (%)``.

    >>> metric_label("top1"), metric_label("bleu")
    ('top1 (%)', 'bleu (unit not recorded)')
    """
    return f"{metric} ({METRIC_UNITS.get(metric, 'unit not recorded')})"


def title(metric: str, splits: Sequence[str], what: str) -> str:
    """``top1 (%), test split: <what>`` (the line above every table; no metric filter: ``every metric``)."""
    where = f"{splits[0]} split" if len(splits) == 1 else "splits " + ", ".join(sorted(map(str, splits)))
    return f"{metric_label(metric) if metric else 'every metric'}, {where}: {what}"


def latex_escape(text: str) -> str:
    r"""Text safe inside a LaTeX table cell.

    >>> print(latex_escape("fdb_1k & 50% {x}"))
    fdb\_1k \& 50\% \{x\}
    """
    return "".join(LATEX_SPECIALS.get(char, char) for char in text)


def _number(text: str, fmt: str) -> str:
    return f"${text}$" if fmt == "latex" else text


def mean_sd(mean: float, std: float, n: int, fmt: str, with_n: bool) -> str:
    r"""One table cell: ``89.33 ± 1.20 (n=3)``; a single run shows its value (and ``(n=1)`` when others have more).

    >>> mean_sd(89.333, 1.2, 3, "text", True), mean_sd(46.44, math.nan, 1, "markdown", False)
    ('89.33 ± 1.20 (n=3)', '46.44')
    >>> mean_sd(89.333, 1.2, 3, "latex", True)
    '$89.33 \\pm 1.20$ ($n=3$)'
    """
    pm = r" \pm " if fmt == "latex" else " ± "
    core = f"{mean:.2f}{pm}{std:.2f}" if n > 1 else f"{mean:.2f}"
    text = _number(core, fmt)
    if with_n:
        text += f" ($n={n}$)" if fmt == "latex" else f" (n={n})"
    return text


def _show(value: object) -> str:
    """A group key as text: null for a missing config value, integers without a trailing .0."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "null"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _column_label(keys: Sequence[str], row: Sequence[object], metric: str | None) -> str:
    """``digits top1 (%)``: the column's values joined by `` / ``, a metric with its unit, and the one ``metric`` of
    the table (None: the metric is among ``keys`` or a row key) at the end."""
    parts = [
        metric_label(str(value)) if key == "metric" else _show(value) for key, value in zip(keys, row, strict=True)
    ]
    return " / ".join(parts) + (f" {metric_label(metric)}" if metric else "")


def stats_grid(described: pd.DataFrame, by: Sequence[str], columns: str, fmt: str) -> pd.DataFrame:
    """Statistics (pretrainflow.results.stats.describe) as a flat table of text: the ``by`` columns, then one column
    per value of ``columns`` (and of task / split / metric where more than one remains), cells from ``mean_sd``.
    Each column header names the metric and its unit unless the metric is a row key."""
    by = list(by)
    spread = bool((described["n"] > 1).any())
    varying = [col for col in ("task", "split", "metric") if col not in by and described[col].nunique(dropna=False) > 1]
    label_keys = unique([columns, *varying])
    single = None if "metric" in [*by, *label_keys] or described.empty else str(described["metric"].iloc[0])
    labels = [_column_label(label_keys, row, single) for row in described[label_keys].itertuples(index=False)]
    order = {
        label: tuple(map(order_key, row))
        for label, row in zip(labels, described[label_keys].itertuples(index=False), strict=True)
    }
    columns_in_order = sorted(dict.fromkeys(labels), key=order.__getitem__)
    texts = [mean_sd(row.mean, row.std, row.n, fmt, spread) for row in described[["mean", "std", "n"]].itertuples()]
    keys = [tuple(_show(v) for v in row) for row in described[by].itertuples(index=False)]
    cells = dict(zip(zip(keys, labels, strict=True), texts, strict=True))
    blank = "--" if fmt == "latex" else "-"
    rows = [[*key, *(cells.get((key, label), blank) for label in columns_in_order)] for key in unique(keys)]
    return pd.DataFrame(rows, columns=[*by, *columns_in_order])


def compare_grid(table: pd.DataFrame, keys: Sequence[str], fmt: str) -> pd.DataFrame:
    """A paired comparison (pretrainflow.results.stats.compare) as a flat table of text."""
    blank = "--" if fmt == "latex" else "-"

    def num(value: float, spec: str) -> str:
        return blank if math.isnan(value) else _number(format(value, spec), fmt)

    rows = []
    for row in table.to_dict("records"):
        interval = f"[{row['ci95_low']:.2f}, {row['ci95_high']:.2f}]"
        rows.append(
            [_show(row[key]) for key in keys]
            + [str(row["n"]), num(row["mean_a"], ".2f"), num(row["mean_b"], ".2f"), num(row["mean_diff"], "+.2f")]
            + [blank if math.isnan(row["ci95_low"]) else _number(interval, fmt)]
            + [num(row["t"], ".2f"), num(row["p_value"], ".3g")]
        )
    return pd.DataFrame(rows, columns=[*keys, "n", "A mean", "B mean", "A - B", "95% CI", "t", "p"])


def to_text(flat: pd.DataFrame, n_keys: int) -> str:
    """Aligned columns: group columns to the left, numbers to the right."""
    columns = [[str(name), *map(str, flat[name])] for name in flat.columns]
    widths = [max(map(len, col)) for col in columns]
    lines = []
    for i in range(len(flat) + 1):
        cells = [
            col[i].ljust(width) if j < n_keys else col[i].rjust(width)
            for j, (col, width) in enumerate(zip(columns, widths, strict=True))
        ]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def to_markdown(flat: pd.DataFrame, n_keys: int) -> str:
    """A GitHub-flavoured Markdown table (numbers right-aligned), without extra dependencies."""

    def cell(value: object) -> str:
        return str(value).replace("|", r"\|")

    lines = ["| " + " | ".join(cell(name) for name in flat.columns) + " |"]
    lines.append("|" + "|".join("---" if j < n_keys else "---:" for j in range(len(flat.columns))) + "|")
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in flat.itertuples(index=False)]
    return "\n".join(lines)


def to_latex(flat: pd.DataFrame, n_keys: int) -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); names escaped, number cells already LaTeX."""
    spec = "l" * n_keys + "r" * (len(flat.columns) - n_keys)
    head = " & ".join(latex_escape(str(name)) for name in flat.columns)
    body = [
        " & ".join(latex_escape(str(v)) if j < n_keys else str(v) for j, v in enumerate(row)) + r" \\"
        for row in flat.itertuples(index=False)
    ]
    return "\n".join([rf"\begin{{tabular}}{{{spec}}}", r"\toprule", head + r" \\", r"\midrule", *body, r"\bottomrule",
                      r"\end{tabular}"])  # fmt: skip


def render(flat: pd.DataFrame, n_keys: int, fmt: str, heading: str) -> str:
    """``heading`` and the table in ``fmt`` (text, markdown or latex; the heading is a comment in LaTeX)."""
    if fmt == "text":
        return heading + "\n" + to_text(flat, n_keys)
    if fmt == "markdown":
        return heading + "\n\n" + to_markdown(flat, n_keys)
    if fmt == "latex":
        return "% " + heading + "\n" + to_latex(flat, n_keys)
    raise ValueError(f"format {fmt!r}: expected one of {TABLE_FORMATS}")


def _plain(value: object) -> object:
    """A cell as a JSON value: numpy scalars as Python numbers, NaN / NA as null."""
    value = value.item() if hasattr(value, "item") else value
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


def tidy(frame: pd.DataFrame, fmt: str) -> str:
    """Statistics for programs at full precision, with a ``unit`` column after ``metric`` (empty / null when the
    metric's unit is not recorded): CSV with a header line, or JSON, a list of one object per row.

    >>> print(tidy(pd.DataFrame({"metric": ["top1"], "n": [1], "std": [math.nan]}), "json"), end="")
    [
    {"metric": "top1", "unit": "%", "n": 1, "std": null}
    ]
    """
    if "metric" in frame.columns and "unit" not in frame.columns:
        frame = frame.copy()
        frame.insert(frame.columns.get_loc("metric") + 1, "unit", frame["metric"].map(METRIC_UNITS))
    if fmt == "csv":
        return frame.to_csv(index=False)
    if fmt == "json":
        # one object per line: greppable, and `jq` reads it whole; allow_nan=False: strict JSON or an error here
        records = [{key: _plain(value) for key, value in row.items()} for row in frame.to_dict("records")]
        return "[\n" + ",\n".join(json.dumps(record, allow_nan=False) for record in records) + "\n]\n"
    raise ValueError(f"format {fmt!r}: expected one of {TIDY_FORMATS}")


def stats_table(
    chosen: pd.DataFrame, by: Sequence[str], columns: str, metric: str, fmt: str
) -> tuple[pd.DataFrame, str]:
    """The statistics of ``chosen`` (rows of one metric) grouped by ``by`` x ``columns``: a flat text table and its
    title line, ready for ``render``."""
    described = describe(chosen, [*by, columns])
    what = "mean ± sd (n runs)" if (described["n"] > 1).any() else "single runs (n = 1, no spread)"
    return stats_grid(described, by, columns, fmt), title(metric, sorted(set(chosen["split"])), what)
