"""Gather every result row file into a study's summary.parquet (results/studies/<study>/, study/layout.py), carrying
the study that produced it, and write the statistics over replicates next to it (statistics.parquet: one row per cell
x task x split x metric with n, mean, std, ci95_low, ci95_high; see pretrainflow.results.stats); gather the Snakemake
benchmark file of every benchmarked job into the study's benchmarks.parquet (``job_benchmarks``: wall seconds, max RSS
and CPU seconds per job). ``study_summaries`` finds the summaries ``pretrainflow results`` reads.
"""

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
from pretrainflow.study import layout

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
    """statistics.parquet: ``stats.statistics_table`` of the summary, atomically, with the study as metadata."""
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


def studies_present(root: str | Path = ".") -> list[str]:
    """The studies with a summary under ``root``'s results/studies/ (study/layout.py), sorted."""
    found = Path(root).glob(layout.study_path(layout.SUMMARY, "*"))
    return sorted(path.parent.name for path in found)


def study_summaries(
    studies: Sequence[str] | None, summaries: Sequence[str] | None = None, root: str | Path = "."
) -> list[str]:
    """The summary files ``pretrainflow results`` reads: each named study's under ``root`` (the working directory the
    workflow ran in; an unknown name is an error listing the studies there), then the ``summaries`` paths as given;
    with neither, the only study there (none or several: an error saying what to pass)."""
    present, where = studies_present(root), Path(root) / layout.STUDIES_ROOT
    unknown = [name for name in studies or [] if name not in present]
    if unknown:
        raise PretrainflowError(f"--study {' '.join(unknown)}: no summary under {where}/; studies there: {present}")
    if not studies and not summaries:
        if len(present) > 1:
            raise PretrainflowError(f"several studies under {where}/: {present}; name one or more with --study")
        if not present:
            raise PretrainflowError(f"no study results under {where}/; run a study first (snakemake) or pass --summary")
        studies = present
    return [str(Path(root) / layout.study_path(layout.SUMMARY, name)) for name in studies or []] + list(summaries or [])


def read_summaries(paths: Sequence[str | Path]) -> pd.DataFrame:
    """Several summaries as one DataFrame with a ``study`` column (``study_tags``), so studies can be compared."""
    frames = [read_summary(path).assign(study=tag) for path, tag in zip(paths, study_tags(paths), strict=True)]
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def study_of(path: str | Path) -> str | None:
    """The canonical study JSON stored in a summary file, if any."""
    metadata = pq.read_schema(path).metadata or {}
    value = metadata.get(STUDY_METADATA_KEY)
    return value.decode() if value else None


# One row per benchmarked job and repeat (README "Measured jobs"). Snakemake samples the job's process tree (children
# included) every 0.5 s for its first ~15 s, then every 30 s: max_* are the largest samples (a peak between two samples
# is missed) and null where the job ended before the first sample; sizes in MiB (Snakemake's "MB").
BENCHMARK_COLUMNS = {
    "rule": (pa.string(), None, "the Snakemake rule"),
    "unit": (pa.string(), None, "the job's wildcard values joined by '/', e.g. fdb-tiny/00000"),
    "run": (pa.string(), None, "the job's run wildcard (joins run_id of the summary); null for data jobs"),
    "wildcards": (pa.string(), None, "the job's wildcards as a JSON object"),
    "repeat": (pa.int64(), None, "0, or the repeat index of a benchmark: repeat(..., n) rule"),
    "seconds": (pa.float64(), "s", "wall-clock seconds of the job"),
    "max_rss_mb": (pa.float64(), "max_rss", "largest sampled resident set size, MiB"),
    "max_vms_mb": (pa.float64(), "max_vms", "largest sampled virtual memory size, MiB"),
    "max_uss_mb": (pa.float64(), "max_uss", "largest sampled unique set size, MiB"),
    "max_pss_mb": (pa.float64(), "max_pss", "largest sampled proportional set size, MiB"),
    "io_in_mb": (pa.float64(), "io_in", "MiB read (last sample)"),
    "io_out_mb": (pa.float64(), "io_out", "MiB written (last sample)"),
    "mean_load": (pa.float64(), "mean_load", "mean CPU load in percent of one core (250 = 2.5 cores busy)"),
    "cpu_seconds": (pa.float64(), "cpu_time", "user + system CPU seconds of the sampled processes"),
}
BENCHMARK_SCHEMA = pa.schema([(name, dtype) for name, (dtype, _, _) in BENCHMARK_COLUMNS.items()])
# The columns a benchmark file must have (snakemake/benchmark.py BenchmarkRecord.get_header); others are optional.
REQUIRED_TSV_COLUMNS = ("s", "max_rss", "cpu_time")


def benchmark_job(path: str | Path) -> tuple[str, dict[str, str]]:
    """(rule, wildcards) of a benchmark file laid out as ``layout.job_benchmark`` names it (under any root).

    >>> benchmark_job("/tmp/x/results/benchmarks/jobs/render_shard/fdb-tiny/00000.tsv")
    ('render_shard', {'dataset': 'fdb-tiny', 'shard': '00000'})
    """
    parts = Path(path).with_suffix("").parts
    root = tuple(Path(layout.JOB_BENCHMARKS_ROOT).parts[-2:])  # ("benchmarks", "jobs")
    for i in range(len(parts) - 3, -1, -1):
        rule = parts[i + 2]
        if parts[i : i + 2] == root and len(parts) - i - 3 == len(layout.JOB_BENCHMARKS.get(rule, ())) > 0:
            return rule, dict(zip(layout.JOB_BENCHMARKS[rule], parts[i + 3 :], strict=True))
    raise PretrainflowError(
        f"{path}: not a job benchmark file; expected {layout.JOB_BENCHMARKS_ROOT}/<rule>/<wildcard values>.tsv "
        f"with <rule> one of {sorted(layout.JOB_BENCHMARKS)}"
    )


def read_job_benchmark(path: str | Path) -> pd.DataFrame:
    """One benchmark file as BENCHMARK_COLUMNS rows (one per repeat); errors name the file."""
    rule, wildcards = benchmark_job(path)
    try:
        tsv = pd.read_csv(path, sep="\t", na_values=["NA", "-"], keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise PretrainflowError(f"{path}: cannot read the benchmark file ({err})") from err
    missing = [column for column in REQUIRED_TSV_COLUMNS if column not in tsv.columns]
    if missing:
        raise PretrainflowError(
            f"{path}: not a Snakemake benchmark file: no column(s) {missing} in {list(tsv.columns)}"
        )
    frame = pd.DataFrame(
        {
            "rule": rule,
            "unit": "/".join(wildcards.values()),
            "run": wildcards.get("run"),
            "wildcards": json.dumps(wildcards),
            "repeat": range(len(tsv)),
        }
    )
    for name, (_, source, _) in BENCHMARK_COLUMNS.items():
        if source is not None:
            values = tsv[source] if source in tsv.columns else None
            frame[name] = pd.to_numeric(values, errors="coerce").to_numpy() if values is not None else float("nan")
    return frame


def job_benchmarks(paths: Iterable[str | Path]) -> pa.Table:
    """Every benchmark file as one table with BENCHMARK_SCHEMA, sorted by rule, unit and repeat."""
    frames = [read_job_benchmark(path) for path in paths]
    if not frames:
        return BENCHMARK_SCHEMA.empty_table()
    frame = pd.concat(frames, ignore_index=True).sort_values(["rule", "unit", "repeat"], kind="stable")
    return pa.Table.from_pandas(frame, schema=BENCHMARK_SCHEMA, preserve_index=False)


def write_job_benchmarks(paths: Iterable[str | Path], out: str | Path, study: dict[str, Any]) -> pa.Table:
    """benchmarks.parquet: ``job_benchmarks(paths)`` atomically, with the study as metadata."""
    table = _with_study(job_benchmarks(paths), study)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return table
