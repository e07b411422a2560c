"""Filter the summary and format statistics as text, Markdown, LaTeX or CSV (what `pretrainflow results` prints).

Text, Markdown and LaTeX are for reading and pasting into a paper: a title line naming the metric, its unit and the
split, then one row per group and one column per task, each cell ``mean ± sd (n=N)`` (a plain value when every cell
is a single run). CSV is for programs: the tidy statistics (group columns, n, mean, std, ci95_low, ci95_high) at full
precision.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from pretrainflow.results.columns import order_key, unique
from pretrainflow.results.stats import describe

FORMATS = ("text", "markdown", "latex", "csv")
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

    >>> df = pd.DataFrame({"metric": ["top1", "top5"], "task": ["digits"] * 2, "split": ["test"] * 2})
    >>> len(select(df, metric="top1", split="test"))
    1
    """
    mask = pd.Series(True, index=frame.index)
    if metric:
        mask &= frame["metric"] == metric
    if tasks:
        mask &= frame["task"].isin(list(tasks))
    if runs:
        mask &= frame["run_id"].isin(list(runs))
    if cells:
        mask &= frame["cell"].isin(list(cells))
    if split:
        mask &= frame["split"] == split
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


def stats_grid(described: pd.DataFrame, by: Sequence[str], columns: str, fmt: str) -> pd.DataFrame:
    """Statistics (pretrainflow.results.stats.describe) as a flat table of text: the ``by`` columns, then one column
    per value of ``columns`` (and of task / split / metric where more than one remains), cells from ``mean_sd``."""
    by = list(by)
    spread = bool((described["n"] > 1).any())
    varying = [col for col in ("task", "split", "metric") if col not in by and described[col].nunique(dropna=False) > 1]
    label_keys = unique([columns, *varying])
    labels = [" / ".join(map(_show, row)) for row in described[label_keys].itertuples(index=False)]
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
    raise ValueError(f"format {fmt!r}: expected one of {FORMATS}")


def stats_table(
    chosen: pd.DataFrame, by: Sequence[str], columns: str, metric: str, fmt: str
) -> tuple[pd.DataFrame, str]:
    """The statistics of ``chosen`` (rows of one metric) grouped by ``by`` x ``columns``: a flat text table and its
    title line, ready for ``render``."""
    described = describe(chosen, [*by, columns])
    what = "mean ± sd (n runs)" if (described["n"] > 1).any() else "single runs (n = 1, no spread)"
    return stats_grid(described, by, columns, fmt), title(metric, sorted(set(chosen["split"])), what)
