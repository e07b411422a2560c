"""Gather every result row file into results/summary.parquet, carrying the study that produced it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from pretrainflow.io import atomic_path, canonical_json
from pretrainflow.results.rows import read_rows

# Key of the Parquet file metadata entry holding the resolved study (so the summary carries the config that made it).
STUDY_METADATA_KEY = b"pretrainflow.study"


def aggregate(row_files: Iterable[str | Path], out: str | Path, study: dict[str, Any]) -> pa.Table:
    """Concatenate row files (schema-checked), sort them, and write them atomically with the study as metadata."""
    table = read_rows(row_files)
    table = table.sort_by([("run_id", "ascending"), ("task", "ascending"), ("metric", "ascending")])
    metadata = dict(table.schema.metadata or {})
    metadata[STUDY_METADATA_KEY] = canonical_json(study).encode()
    table = table.replace_schema_metadata(metadata)
    with atomic_path(out) as tmp:
        pq.write_table(table, tmp)
    return table


def read_summary(path: str | Path) -> pd.DataFrame:
    """The summary as a DataFrame (errors name the file)."""
    from pretrainflow.errors import PretrainflowError

    if not Path(path).exists():
        raise PretrainflowError(f"{path}: no summary yet; run the study first (snakemake) or pass --summary")
    return pq.read_table(path).to_pandas()


def study_of(path: str | Path) -> str | None:
    """The canonical study JSON stored in a summary file, if any."""
    metadata = pq.read_schema(path).metadata or {}
    value = metadata.get(STUDY_METADATA_KEY)
    return value.decode() if value else None
