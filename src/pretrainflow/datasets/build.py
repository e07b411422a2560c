"""The dataset stage as functions: search -> render shards -> manifest (the CLI and the rules call these).

``build_dataset`` runs the whole stage in one process (tests, benchmarks, a laptop); the workflow runs the same steps as
separate jobs, one per shard.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path

from pretrainflow.datasets import shard_index
from pretrainflow.datasets import shards as sh
from pretrainflow.datasets.categories import write_categories
from pretrainflow.datasets.generic_spec import DatasetSpec
from pretrainflow.datasets.manifest import build_manifest
from pretrainflow.datasets.spec import resolve, resolved_dict
from pretrainflow.io import atomic_dir, config_hash, read_json


def search_categories(ds: DatasetSpec, family, params, progress: bool = False):
    """Run the family's search and check its contract (one row per class, class_id 0..n-1)."""
    kwargs = {"progress": progress} if "progress" in inspect.signature(family.search).parameters else {}
    df = family.search(ds, params, **kwargs)
    if len(df) != ds.num_classes or list(df["class_id"]) != list(range(ds.num_classes)):
        raise RuntimeError(f"{family.name}.search returned {len(df)} rows; expected class_id 0..{ds.num_classes - 1}")
    return df


def render_shard(
    ds: DatasetSpec, family, params, categories, shard: int, out: str | os.PathLike, progress: bool = False
) -> sh.ShardHeader:
    """Render shard ``shard`` (tagged with the hash of the resolved spec, checked by the manifest step), then its
    offset index beside it (shard_index.py), from the offsets known while writing."""
    shard_index.index_path(out).unlink(missing_ok=True)  # a crash below leaves no index of an older tar beside the new
    spec_hash = config_hash(resolved_dict(ds, params))
    header, samples = sh.write_shard(ds, family, params, categories, shard, out, progress=progress, spec_hash=spec_hash)
    shard_index.write_index(out, header, samples)
    return header


def build_dataset(spec, out_dir: str | os.PathLike, progress: bool = False) -> dict:
    """Search, render every shard and write the manifest into ``out_dir`` (replaced as a whole, atomically)."""
    ds, family, params = resolve(spec)
    with atomic_dir(out_dir) as tmp:
        df = search_categories(ds, family, params, progress)
        write_categories(df, ds, params, tmp / "categories.parquet")
        paths = []
        for k in range(ds.num_shards):
            paths.append(tmp / "shards" / sh.shard_name(k))
            render_shard(ds, family, params, df, k, paths[-1], progress)
        build_manifest(ds, paths, tmp / "manifest.json")
    return read_json(Path(out_dir) / "manifest.json")


# Job sizes for the workflow rules (Snakemake resources; profiles map them onto each scheduler). Conservative figures:
# the search holds one batch of search_batch x search_points x 16 bytes (820 MB for FractalDB); a render job holds one
# category's point sets (FractalDB: 26 x 200,000 points x 16 bytes = 83 MB) and the shard's images until written.
SEARCH_SECONDS_PER_CLASS = 2.0  # FractalDB: 0.4 CPU s per category measured; x5 for slow or shared nodes
RENDER_IMAGES_PER_SECOND = 20.0  # per core, at 362 px; measured >= 100 for FractalDB, x5 margin for other families


def job_resources(spec: dict, step: str) -> dict:
    """``{"mem_mb", "runtime"}`` (runtime in minutes) of one dataset job: step = search | render | manifest."""
    images_per_shard = -(-spec["num_classes"] * spec["instances_per_class"] // spec["num_shards"])
    pixels = (spec["image_size"] / 362) ** 2
    if step == "search":
        return {"mem_mb": 3000, "runtime": 10 + int(spec["num_classes"] * SEARCH_SECONDS_PER_CLASS / 60)}
    if step == "render":
        seconds = images_per_shard * max(pixels, 0.05) / RENDER_IMAGES_PER_SECOND
        return {
            "mem_mb": 2000 + int(images_per_shard * spec["image_size"] ** 2 * 3 / 2**20),
            "runtime": 10 + int(seconds / 60),
        }
    if step == "manifest":  # reads every shard once for its sha256 and member index
        return {"mem_mb": 1000, "runtime": 10 + int(spec["num_classes"] * spec["instances_per_class"] / 50_000)}
    raise ValueError(f"step: expected search, render or manifest, got {step!r}")
