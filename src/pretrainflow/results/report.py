"""The files Snakemake's own report shows beside the plots (`snakemake --report results/studies/<study>/report.zip`;
report() flags in workflow/rules/results.smk, captions in workflow/report/): the results tables and the measured jobs
as HTML pages, and the study as JSON. The report itself (rule graph, runtimes, code, config files, these files with
their captions) is Snakemake's; nothing here renders a report of its own.
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pretrainflow.io import atomic_write_text
from pretrainflow.results import table

# Columns of the measured-jobs page (pretrainflow.results.aggregate.BENCHMARK_COLUMNS) and how they are shown.
JOB_COLUMNS = {
    "unit": "job",
    "repeat": "repeat",
    "seconds": "wall s",
    "cpu_seconds": "CPU s",
    "mean_load": "mean load (% of a core)",
    "max_rss_mb": "max RSS (MiB)",
    "io_in_mb": "read (MiB)",
    "io_out_mb": "written (MiB)",
}


def statistics_tables(summary: pd.DataFrame, primary: str) -> list[tuple[str, pd.DataFrame]]:
    """(title line, table of text cells) per metric of the summary, ``primary`` first: cells x tasks, each cell
    ``mean ± sd (n=N)`` over replicates (pretrainflow.results.table.stats_table, what `pretrainflow results` prints)."""
    present = set(summary["metric"]) if "metric" in summary else set()
    metrics = [primary] * (primary in present) + sorted(present - {primary})
    tables = []
    for metric in metrics:
        grid, heading = table.stats_table(table.select(summary, metric=metric), ["cell", "pretrain_source"], "task",
                                          metric, "text")  # fmt: skip
        tables.append((heading, grid))
    return tables


def jobs_tables(jobs: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    """One table per benchmarked rule: every job's wall and CPU seconds, mean load, max RSS and I/O (rounded)."""
    tables = []
    for rule, frame in jobs.groupby("rule", sort=True):
        shown = frame[[column for column in JOB_COLUMNS if column != "repeat" or frame["repeat"].max() > 0]]
        shown = shown.round({"seconds": 1, "cpu_seconds": 1, "mean_load": 0, "max_rss_mb": 0, "io_in_mb": 1,
                             "io_out_mb": 1}).rename(columns=JOB_COLUMNS)  # fmt: skip
        tables.append((f"{rule}: {len(frame)} job(s), {frame['seconds'].sum():.0f} wall s in all", shown))
    return tables


def write_tables_page(tables: Sequence[tuple[str, pd.DataFrame]], title: str, path: str | Path) -> None:
    """An HTML page (atomically) of titled tables; an empty list gives a page that says so."""
    body = "\n".join(
        f"<h2>{html.escape(heading)}</h2>\n{frame.to_html(index=False, na_rep='-')}" for heading, frame in tables
    )
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:1em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head><body>
<h1>{html.escape(title)}</h1>
{body or "<p>nothing to show: no rows</p>"}
</body></html>
"""
    atomic_write_text(path, page)


def write_study(study: Mapping[str, Any], path: str | Path) -> None:
    """The study as the aggregate received it, as indented JSON (a valid study file: `--configfile` accepts it)."""
    atomic_write_text(path, json.dumps(study, indent=2, sort_keys=True) + "\n")
