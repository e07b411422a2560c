"""The results row schema and its atomic Parquet writer.

One row per (run, task, split, metric). Every row carries the resolved config that produced it (``config_json`` and its
sha256 ``config_hash``) and the provenance of the process that wrote it, so a summary table can always be traced back.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pretrainflow.io import atomic_path, canonical_json, config_hash
from pretrainflow.provenance import provenance

# Column -> (arrow type, meaning). The README's "Results rows" table is generated from this (`pretrainflow results --schema`).
ROW_SCHEMA: dict[str, tuple[pa.DataType, str]] = {
    "run_id": (pa.string(), "run identity: base run name plus ablation overrides, e.g. vit-micro-fdb.optimizer-sam"),
    "cell": (pa.string(), "the cell the run belongs to: its run id without the replicate part, e.g. vit-micro-fdb"),
    "replicate": (pa.int64(), "replicate index within the cell, 0..N-1 (own pretraining and fine-tuning seeds)"),
    "stage": (pa.string(), "pretrain, finetune or evaluate"),
    "model": (pa.string(), "registered model variant, e.g. vit_micro, gpt_micro"),
    "pretrain_source": (pa.string(), "dataset or corpus the model was pretrained on, or 'scratch'"),
    "task": (pa.string(), "downstream task (digits, cifar10, ...), 'pretrain' or 'heldout' (LLM validation)"),
    "split": (pa.string(), "train, valid or test"),
    "metric": (pa.string(), "top1, top5 (percent), loss, perplexity, ..."),
    "value": (pa.float64(), "the metric's value"),
    "stderr": (pa.float64(), "standard error of value, same unit (lm-eval's <metric>_stderr); null if not measured"),
    "epoch": (pa.float64(), "epoch at which the metric was taken (null if not epoch-based)"),
    "step": (pa.int64(), "optimizer step at which the metric was taken"),
    "seed": (pa.int64(), "the run's seed"),
    "config_hash": (pa.string(), "sha256 of the canonical resolved config of this unit of work"),
    "config_json": (pa.string(), "the canonical resolved config itself"),
    "dataset_checksum": (
        pa.string(),
        "sha256 of the dataset's shard checksums (on the fly: of spec hash + categories; LLM: corpus)",
    ),
    "git_commit": (pa.string(), "pretrainflow commit that produced the row (+dirty when modified)"),
    "host": (pa.string(), "host name of the process that wrote the row"),
    "site": (pa.string(), "site from the profile (PRETRAINFLOW_SITE): local, slurm, abci, tsubame"),
    "scheduler": (pa.string(), "local, slurm, pbs or gridengine"),
    "job_id": (pa.string(), "scheduler job id, null when local"),
    "world_size": (pa.int64(), "number of training processes"),
    "devices": (pa.string(), "what the processes ran on, e.g. '2 x cpu' or '8 x NVIDIA H200'"),
    "wall_seconds": (pa.float64(), "wall-clock seconds of the stage that produced the metric"),
    "device_hours": (pa.float64(), "wall_seconds x world_size / 3600"),
    "throughput": (pa.float64(), "training throughput of that stage"),
    "throughput_unit": (pa.string(), "images/s or tokens/s"),
    "mfu": (pa.float64(), "model FLOPs utilisation (0-1), null where no peak is known (CPU)"),
    "versions": (pa.string(), "JSON of package versions (torch, deepspeed, megatron-core, ...)"),
    "created_at": (pa.timestamp("us", tz="UTC"), "when the row was written"),
}

ARROW_SCHEMA = pa.schema([(name, dtype) for name, (dtype, _) in ROW_SCHEMA.items()])

REQUIRED = ("run_id", "stage", "model", "pretrain_source", "task", "split", "metric", "value")

# Columns added after rows were first written, with the value an older file means: a run that is its own cell, the one
# replicate 0, no standard error. Readers fill them (conform) so summaries and row files from before stay readable.
LATER_COLUMNS = ("cell", "replicate", "stderr")


def make_row(*, config: Mapping[str, Any], **fields: Any) -> dict[str, Any]:
    """A complete result row: ``fields`` plus config hash/JSON and provenance; unknown or missing fields are errors.

    >>> row = make_row(config={"lr": 1e-3}, run_id="r", stage="evaluate", model="vit_micro",
    ...                pretrain_source="fdb", task="digits", split="test", metric="top1", value=91.5)
    >>> row["config_hash"][:8], row["metric"], row["cell"], row["replicate"]
    ('d368ce5a', 'top1', 'r', 0)
    """
    unknown = set(fields) - set(ROW_SCHEMA)
    if unknown:
        raise KeyError(
            f"unknown result row fields {sorted(unknown)}; the schema is pretrainflow.results.rows.ROW_SCHEMA"
        )
    missing = [name for name in REQUIRED if fields.get(name) is None]
    if missing:
        raise KeyError(f"result row is missing {missing}")
    row: dict[str, Any] = dict.fromkeys(ROW_SCHEMA)
    info = provenance()
    row.update({key: info[key] for key in ("git_commit", "host", "site", "scheduler", "job_id")})
    row["versions"] = json.dumps(info["versions"], sort_keys=True)
    row["config_json"] = canonical_json(config)
    row["config_hash"] = config_hash(config)
    row["created_at"] = dt.datetime.now(dt.UTC)
    row.update(fields)
    if row["cell"] is None:  # a study without replicates: every run is its own cell
        row["cell"] = row["run_id"]
    if row["replicate"] is None:
        row["replicate"] = 0
    if row["device_hours"] is None and row["wall_seconds"] is not None and row["world_size"]:
        row["device_hours"] = row["wall_seconds"] * row["world_size"] / 3600.0
    return row


def stage_cost_fields(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The row fields that say what a training stage cost, read from its summary.json (train/publish.py writes it).

    >>> stage_cost_fields({"world_size": 2, "devices": "2 x cpu", "wall_seconds": 36, "device_hours": 0.02,
    ...                    "throughput": 10, "throughput_unit": "images/s", "mfu": None})["wall_seconds"]
    36.0
    """
    return {
        "world_size": int(summary["world_size"]),
        "devices": summary["devices"],
        "wall_seconds": float(summary["wall_seconds"]),
        "device_hours": float(summary["device_hours"]),
        "throughput": None if summary["throughput"] is None else float(summary["throughput"]),
        "throughput_unit": summary["throughput_unit"],
        "mfu": summary.get("mfu"),
    }


def rows_table(rows: Iterable[Mapping[str, Any]]) -> pa.Table:
    """Rows -> an Arrow table with exactly ARROW_SCHEMA (raises if a value does not fit its column type)."""
    return pa.Table.from_pylist([dict(row) for row in rows], schema=ARROW_SCHEMA)


def write_rows(rows: Iterable[Mapping[str, Any]], path: str | Path) -> None:
    """Write rows as one Parquet file, atomically (temp file + rename)."""
    table = rows_table(rows)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def conform(table: pa.Table, source: str | Path) -> pa.Table:
    """``table`` with exactly ARROW_SCHEMA: a file from before LATER_COLUMNS gets their defaults, anything else alien
    is an error naming ``source`` (schema metadata is kept).

    >>> conform(ARROW_SCHEMA.empty_table().drop_columns(["cell", "replicate"]), "old.parquet").schema.names[:3]
    ['run_id', 'cell', 'replicate']
    """
    missing = [name for name in ARROW_SCHEMA.names if name not in table.schema.names]
    if missing and set(missing) <= set(LATER_COLUMNS) and "run_id" in table.schema.names:
        metadata = table.schema.metadata
        if "cell" in missing:
            table = table.append_column("cell", table["run_id"].cast(pa.string()))
        if "replicate" in missing:
            table = table.append_column("replicate", pa.array([0] * table.num_rows, pa.int64()))
        if "stderr" in missing:
            table = table.append_column("stderr", pa.nulls(table.num_rows, pa.float64()))
        table = table.select(ARROW_SCHEMA.names).replace_schema_metadata(metadata)
    if not table.schema.equals(ARROW_SCHEMA, check_metadata=False):
        raise ValueError(f"{source}: not a pretrainflow rows file (schema differs from ROW_SCHEMA)")
    return table


def read_rows(paths: Iterable[str | Path]) -> pa.Table:
    """Concatenate row files; each is checked against ARROW_SCHEMA so an alien file is named, not silently mixed in."""
    tables = [conform(pq.read_table(path), path) for path in paths]
    if not tables:
        return ARROW_SCHEMA.empty_table()
    return pa.concat_tables(tables)
