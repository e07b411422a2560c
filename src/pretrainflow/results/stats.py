"""Statistics over replicates: mean, sd, n and a 95 % confidence interval per group, and paired comparisons.

A study runs N replicates of each cell (independent pretraining and fine-tuning seeds); a row's ``cell`` names the cell
and ``replicate`` the index 0..N-1. ``describe`` groups rows by any columns (``cell``, ``pretrain_source``, a config key;
see pretrainflow.results.columns) plus task, split and metric, so different metrics are never mixed:

    mean = sum(x) / n,  sd = sqrt(sum((x - mean)^2) / (n - 1)),  CI = mean +- t(0.975, n - 1) * sd / sqrt(n)

(Student t, scipy.stats.t). One replicate gives n = 1 and a null sd and interval: a single run has no spread to report.
A replicate whose value is NaN (a diverged run) makes its group's statistics NaN instead of being dropped silently.

``compare`` pairs the rows of two selectors replicate by replicate (same replicate index, task, split, metric and every
other grouping column) and reports the mean difference A - B, its 95 % CI and a paired t-test (scipy.stats.ttest_rel).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as scipy_stats

from pretrainflow.errors import PretrainflowError
from pretrainflow.results.columns import Selector, order_key, unique

CONFIDENCE = 0.95
# Every statistic is per (group, task, split, metric): a mean of top-1 over two tasks would mean nothing.
METRIC_KEYS = ("task", "split", "metric")
# The groups of a study's statistics.parquet: one per cell and metric; stage, model and source describe the cell.
STATISTICS_BY = ("cell", "stage", "model", "pretrain_source")
STAT_COLUMNS = ("n", "mean", "std", "ci95_low", "ci95_high")
COMPARE_COLUMNS = ("n", "mean_a", "mean_b", "mean_diff", "std_diff", "ci95_low", "ci95_high", "t", "p_value")
# Columns that tell rows apart when a selector is ambiguous (named in the error).
DESCRIBING = ("study", "cell", "run_id", "stage", "model", "pretrain_source")


def t_quantile(n: int) -> float:
    """The two-sided 95 % Student t quantile for n observations (n - 1 degrees of freedom).

    >>> round(t_quantile(3), 6)  # df = 2
    4.302653
    """
    return float(scipy_stats.t.ppf(0.5 + CONFIDENCE / 2, n - 1))


def describe_values(values: Sequence[float]) -> dict[str, float | int]:
    """n, mean, sample sd (ddof = 1) and the 95 % CI of the mean; sd and CI are NaN for n = 1.

    >>> describe_values([1.0, 2.0, 3.0])["std"], describe_values([5.0])["ci95_low"]
    (1.0, nan)
    """
    x = np.asarray(values, dtype=float)
    n = len(x)
    mean = float(np.mean(x)) if n else math.nan
    std = float(np.std(x, ddof=1)) if n > 1 else math.nan
    half = t_quantile(n) * std / math.sqrt(n) if n > 1 else math.nan
    return {"n": n, "mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half}


def _sorted(frame: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    # A config column may mix numbers, text and nulls, which do not compare with each other: order_key orders them.
    if frame.empty:
        return frame.reset_index(drop=True)
    return frame.sort_values(list(columns), key=lambda col: col.map(order_key), kind="stable").reset_index(drop=True)


def describe(frame: pd.DataFrame, by: Sequence[str]) -> pd.DataFrame:
    """One row per (``by`` group, task, split, metric): the group columns, then n, mean, std, ci95_low, ci95_high.

    >>> df = pd.DataFrame({"cell": ["a", "a", "b"], "task": "digits", "split": "test", "metric": "top1",
    ...                    "value": [1.0, 3.0, 5.0]})
    >>> describe(df, ["cell"])[["cell", "n", "mean", "std"]].values.tolist()
    [['a', 2, 2.0, 1.4142135623730951], ['b', 1, 5.0, nan]]
    """
    groups = unique([*by, *METRIC_KEYS])
    rows = [
        {**dict(zip(groups, key, strict=True)), **describe_values(part["value"].to_numpy(float))}
        for key, part in frame.groupby(groups, dropna=False, sort=False)
    ]
    table = pd.DataFrame(rows, columns=[*groups, *STAT_COLUMNS])
    return _sorted(table.astype({"n": "int64"}), groups)


def paired_values(a: Sequence[float], b: Sequence[float]) -> dict[str, float | int]:
    """Paired statistics of a - b: n pairs, both means, mean and sd of the differences, its 95 % CI, t and p.

    t and p come from scipy.stats.ttest_rel; with one pair, or differences without spread, they are NaN (undefined).

    >>> out = paired_values([1.0, 2.0, 4.0], [0.0, 1.0, 2.0])
    >>> out["mean_diff"], out["t"], round(out["p_value"], 6)
    (1.3333333333333333, 4.0, 0.057191)
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    diff = describe_values(x - y)
    t = p = math.nan
    if diff["n"] > 1 and diff["std"] > 0:
        with warnings.catch_warnings():  # nearly equal differences warn of precision loss; the numbers still stand
            warnings.simplefilter("ignore", RuntimeWarning)
            result = scipy_stats.ttest_rel(x, y)
        t, p = float(result.statistic), float(result.pvalue)
    return {
        "n": diff["n"],
        "mean_a": float(np.mean(x)),
        "mean_b": float(np.mean(y)),
        "mean_diff": diff["mean"],
        "std_diff": diff["std"],
        "ci95_low": diff["ci95_low"],
        "ci95_high": diff["ci95_high"],
        "t": t,
        "p_value": p,
    }


@dataclass(frozen=True, slots=True)
class Comparison:
    """``table``: one row per matched (task, split, metric, other grouping columns) with COMPARE_COLUMNS;
    ``matched_on``: the columns pairs agree on (besides replicate); ``unpaired``: rows of A and of B left without a
    partner (a replicate that ran on one side only)."""

    table: pd.DataFrame
    matched_on: tuple[str, ...]
    unpaired: tuple[int, int]


def _one_per_replicate(side: pd.DataFrame, keys: list[str], selector: Selector, where: str) -> None:
    duplicated = side[side.duplicated([*keys, "replicate"], keep=False)]
    if duplicated.empty:
        return
    group = duplicated.groupby([*keys, "replicate"], dropna=False, sort=False).ngroup()
    first = duplicated[group == group.iloc[0]]
    differ = [col for col in DESCRIBING if col in first.columns and first[col].map(str).nunique() > 1]
    where_rows = ", ".join(f"{key} {first.iloc[0][key]}" for key in [*keys, "replicate"])
    raise PretrainflowError(
        f"{where} {selector.text!r}: several rows for one replicate ({where_rows}); they differ in "
        f"{', '.join(differ) or 'values only'}: narrow the selector or add --by {' '.join(differ[:1]) or 'COLUMN'}"
    )


def compare(frame: pd.DataFrame, a: Selector, b: Selector, by: Sequence[str] = ()) -> Comparison:
    """Pair A's and B's rows on replicate, task, split, metric and every ``by`` column no selector uses; A - B per group.

    ``frame`` must hold every selector key and ``by`` column (pretrainflow.results.columns.with_columns adds config
    keys). Errors name the selectors: one that matches nothing, one that matches two rows of one replicate, or no
    replicate of A that has a partner in B.
    """
    used = {*a.keys, *b.keys}
    keys = [col for col in unique([*METRIC_KEYS, *by]) if col not in used and col not in ("replicate", "value")]
    side_a = frame[a.mask(frame, "--compare A")]
    side_b = frame[b.mask(frame, "--compare B")]
    _one_per_replicate(side_a, keys, a, "--compare A")
    _one_per_replicate(side_b, keys, b, "--compare B")
    on = [*keys, "replicate"]
    pairs = side_a[[*on, "value"]].merge(side_b[[*on, "value"]], on=on, suffixes=("_a", "_b"))
    if pairs.empty:
        raise PretrainflowError(
            f"--compare {a.text!r} {b.text!r}: no replicate of A has a partner in B with the same "
            f"{', '.join(on)} (A: {len(side_a)} rows, replicates {sorted(set(side_a['replicate']))}; "
            f"B: {len(side_b)} rows, replicates {sorted(set(side_b['replicate']))})"
        )
    rows = [
        {**dict(zip(keys, key, strict=True)), **paired_values(part["value_a"], part["value_b"])}
        for key, part in pairs.groupby(keys, dropna=False, sort=False)
    ]
    table = _sorted(pd.DataFrame(rows, columns=[*keys, *COMPARE_COLUMNS]).astype({"n": "int64"}), keys)
    return Comparison(table, tuple(keys), (len(side_a) - len(pairs), len(side_b) - len(pairs)))


def statistics_table(summary: pd.DataFrame) -> pd.DataFrame:
    """The table a study's statistics.parquet holds: ``describe`` by cell (with its stage, model and source)."""
    return describe(summary, STATISTICS_BY)
