"""Gather every result row file into results/summary.parquet, carrying the study that produced it, and write the
statistics over replicates next to it (results/statistics.parquet: one row per cell x task x split x metric with n,
mean, std, ci95_low, ci95_high; see pretrainflow.results.stats)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pretrainflow.errors import PretrainflowError
from pretrainflow.io import atomic_path, canonical_json
from pretrainflow.results.rows import conform, read_rows
from pretrainflow.results.stats import statistics_table

# Key of the Parquet file metadata entry holding the resolved study (so the summary carries the config that made it).
STUDY_METADATA_KEY = b"pretrainflow.study"


def _with_study(table: pa.Table, study: dict[str, Any]) -> pa.Table:
    metadata = dict(table.schema.metadata or {})
    metadata[STUDY_METADATA_KEY] = canonical_json(study).encode()
    return table.replace_schema_metadata(metadata)


def aggregate(
    row_files: Iterable[str | Path],
    out: str | Path,
    study: dict[str, Any],
    statistics: str | Path | None = None,
    cells: Mapping[str, tuple[str, int]] | None = None,
) -> pa.Table:
    """Concatenate row files (schema-checked), sort them, and write them atomically with the study as metadata;
    the statistics over replicates go to ``statistics`` (default: statistics.parquet next to ``out``).

    ``cells`` (run id -> (cell, replicate), from the loaded study's ``Study.cells``) sets the rows' ``cell`` and
    ``replicate`` columns: the study decides which runs are replicates of one cell, not the process that wrote a row.
    """
    table = read_rows(row_files)
    if cells:
        table = with_cells(table, cells)
    order = ["run_id", "task", "split", "metric"]
    table = _with_study(table.sort_by([(column, "ascending") for column in order]), study)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    if statistics is None:
        statistics = Path(out).with_name("statistics.parquet")
    write_statistics(table.to_pandas(), statistics, study)
    return table


def with_cells(table: pa.Table, cells: Mapping[str, tuple[str, int]]) -> pa.Table:
    """``table`` with ``cell`` and ``replicate`` taken from ``cells`` for every run it names (others unchanged)."""
    runs = table.column("run_id").to_pylist()
    for column, index, dtype in (("cell", 0, pa.string()), ("replicate", 1, pa.int64())):
        old = table.column(column).to_pylist()
        new = [cells[run][index] if run in cells else value for run, value in zip(runs, old, strict=True)]
        table = table.set_column(table.schema.get_field_index(column), column, pa.array(new, dtype))
    return table


def write_statistics(summary: pd.DataFrame, path: str | Path, study: dict[str, Any]) -> pd.DataFrame:
    """results/statistics.parquet: ``stats.statistics_table`` of the summary, atomically, with the study as metadata."""
    stats = statistics_table(summary)
    table = _with_study(pa.Table.from_pandas(stats, preserve_index=False), study)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return stats


def read_summary(path: str | Path) -> pd.DataFrame:
    """The summary as a DataFrame (errors name the file); a summary from before replicates gets cell = run_id and
    replicate = 0 (pretrainflow.results.rows.conform)."""
    if not Path(path).exists():
        raise PretrainflowError(f"{path}: no summary yet; run the study first (snakemake) or pass --summary")
    try:
        table = conform(pq.read_table(path), path)
    except ValueError as err:
        raise PretrainflowError(str(err)) from err
    return table.to_pandas()


def study_tags(paths: Sequence[str | Path]) -> list[str]:
    """A short name per summary: the study's ``study`` name, else its folder's name, else the path as given.

    >>> study_tags(["no/such/a/summary.parquet", "no/such/b/summary.parquet"])
    ['a', 'b']
    """
    names = []
    for path in paths:
        stored = study_of(path) if Path(path).exists() else None
        name = json.loads(stored).get("study") if stored else None
        names.append(str(name) if name else Path(path).resolve().parent.name)
    if len(set(names)) < len(names):  # two studies of one name (or two results/ folders): the paths tell them apart
        return [str(path) for path in paths]
    return names


def read_summaries(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Several summaries as one DataFrame with a ``study`` column (``study_tags``), so studies can be compared."""
    frames = [read_summary(path).assign(study=tag) for path, tag in zip(paths, study_tags(paths), strict=True)]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def study_of(path: str | Path) -> str | None:
    """The canonical study JSON stored in a summary file, if any."""
    metadata = pq.read_schema(path).metadata or {}
    value = metadata.get(STUDY_METADATA_KEY)
    return value.decode() if value else None
