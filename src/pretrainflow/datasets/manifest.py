"""manifest.json of a rendered dataset: the resolved spec, per-shard counts and sha256, and the dataset checksum.

A dataset directory (results/datasets/{dataset}/)::

    categories.parquet      one row per category (the family's search output)
    shards/shard-00000.tar  WebDataset tar shards (see shards.py)
    shards/shard-00000.tar.idx  each shard's member offset index, written with it (see shard_index.py)
    manifest.json           {"spec", "shards": [{"name", "count", "sha256", "bytes", "first", "degenerate",
                             "index": {"name", "sha256"}}], ...}
    config.json             the resolved spec, its hash and where it was made (provenance.config_record)

``dataset_checksum`` = sha256 of the shard checksums joined by newlines, in shard order: one string that changes when
any image changes, stored in every result row. It covers the tars only: an index says where the bytes of a tar are,
and the manifest checks it against a scan of that tar, so adding indexes changed no dataset checksum. A shard rendered
before indexes existed has no ``index`` entry, and its readers scan it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from pretrainflow.datasets import shard_index
from pretrainflow.datasets import shards as sh
from pretrainflow.datasets.categories import read_categories
from pretrainflow.datasets.generic_spec import DatasetSpec
from pretrainflow.datasets.spec import resolve, resolved_dict
from pretrainflow.errors import PretrainflowError
from pretrainflow.io import atomic_write_json, config_hash, read_json, sha256_file
from pretrainflow.provenance import config_record

MANIFEST_VERSION = 1


def checksum_of(shard_checksums: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(shard_checksums).encode()).hexdigest()


def build_manifest(
    spec, shard_paths: Sequence[str | os.PathLike], out: str | os.PathLike, categories: str | os.PathLike | None = None
) -> dict:
    """Check the shards against the spec, then write manifest.json (``out``) and config.json next to it, atomically.

    A shard's offset index, where its render wrote one, is checked against the scan of the tar made here and listed
    with its sha256."""
    ds, family, params = resolve(spec)
    out = Path(out)
    root = out.parent
    categories = Path(categories) if categories else root / "categories.parquet"
    by_index = {}
    for path in map(Path, shard_paths):
        header, samples = sh.index_shard(path)
        if header is None:
            raise PretrainflowError(f"{path}: no pretrainflow shard header; was it written by `datasets render-shard`?")
        by_index[header.shard] = (path, header, samples)
    expected = set(range(ds.num_shards))
    if set(by_index) != expected:
        missing = sorted(expected - set(by_index)) or sorted(set(by_index) - expected)
        raise PretrainflowError(
            f"{out}: shards do not match {ds.where}.num_shards = {ds.num_shards} (shard {missing[0]})"
        )
    resolved = resolved_dict(ds, params)
    if not categories.is_file():
        raise PretrainflowError(f"{categories}: missing; expected the output of `datasets search` for {ds.where}")
    read_categories(categories, resolved)  # searched for this very spec
    entries = []
    for k in sorted(by_index):
        path, header, samples = by_index[k]
        if header.spec_hash != config_hash(resolved):
            raise PretrainflowError(
                f"{path}: rendered from another spec (spec hash {header.spec_hash[:12]}, "
                f"expected {config_hash(resolved)[:12]}); render it again"
            )
        want = sh.shard_range(ds, k)
        if header.num_shards != ds.num_shards or header.first != want.start or len(samples) != len(want):
            raise PretrainflowError(
                f"{path}: holds {len(samples)} images from index {header.first} of "
                f"{header.num_shards} shards; the spec expects {len(want)} from {want.start}"
            )
        entry = {
            "name": os.path.relpath(path, root),
            "count": len(samples),
            "first": header.first,
            "sha256": sha256_file(path),
            "bytes": path.stat().st_size,
            "degenerate": header.degenerate,
        }
        idx = shard_index.index_path(path)
        if idx.is_file():
            shard_index.check_index_matches_scan(path, samples, entry["sha256"])
            entry["index"] = {"name": os.path.relpath(idx, root), "sha256": sha256_file(idx)}
        entries.append(entry)
    manifest = {
        "version": MANIFEST_VERSION,
        "layout": "webdataset-tar: {class:05d}_{instance:06d}.{png|npy} + .cls; class-major deterministic slices",
        "spec": resolved,
        "family": family.name,
        "num_classes": ds.num_classes,
        "num_images": sum(e["count"] for e in entries),
        "image": {"size": ds.image_size, "channels": family.channels, "format": ds.image_format},
        "categories": {"name": os.path.relpath(categories, root), "sha256": sha256_file(categories)},
        "shards": entries,
        "degenerate": sum(len(e["degenerate"]) for e in entries),
        "dataset_checksum": checksum_of([e["sha256"] for e in entries]),
    }
    atomic_write_json(root / "config.json", config_record(resolved))
    atomic_write_json(out, manifest)
    return manifest


def read_manifest(dataset_dir: str | os.PathLike) -> dict:
    path = Path(dataset_dir) / "manifest.json"
    if not path.is_file():
        raise PretrainflowError(f"{path}: no manifest; expected a dataset directory made by `datasets manifest`")
    return read_json(path)


def dataset_checksum(dataset_dir: str | os.PathLike) -> str:
    """sha256 over the manifest's shard checksums (as stored; ``verify_dataset`` checks them against the files)."""
    return checksum_of([e["sha256"] for e in read_manifest(dataset_dir)["shards"]])


def verify_dataset(dataset_dir: str | os.PathLike, progress: bool = False) -> dict:
    """Check every shard and the categories file against the manifest; raise naming the first mismatch.

    Returns the manifest. Checks: file present, byte size, sha256, sample count, labels in range, spec readable, and
    each listed offset index (present, sha256, equal to the scan of its tar).
    """
    from tqdm import tqdm

    root = Path(dataset_dir)
    manifest = read_manifest(root)
    ds = DatasetSpec.from_dict(manifest["spec"], f"{root}/manifest.json: spec")
    cats = manifest["categories"]
    if sha256_file(_exists(root / cats["name"])) != cats["sha256"]:
        raise PretrainflowError(f"{root / cats['name']}: sha256 differs from the manifest")
    for entry in tqdm(manifest["shards"], desc=f"verify {ds.name}", unit="shard", disable=not progress):
        path = _exists(root / entry["name"])
        if path.stat().st_size != entry["bytes"]:
            raise PretrainflowError(f"{path}: {path.stat().st_size} bytes, the manifest says {entry['bytes']}")
        if sha256_file(path) != entry["sha256"]:
            raise PretrainflowError(f"{path}: sha256 differs from the manifest (the shard changed or is corrupt)")
        _, samples = sh.index_shard(path)
        if len(samples) != entry["count"]:
            raise PretrainflowError(f"{path}: {len(samples)} samples, the manifest says {entry['count']}")
        if entry.get("index"):
            idx = _exists(root / entry["index"]["name"])
            if sha256_file(idx) != entry["index"]["sha256"]:
                raise PretrainflowError(f"{idx}: sha256 differs from the manifest (the index of {path.name} changed)")
            shard_index.check_index_matches_scan(path, samples, entry["sha256"])
        bad = [s.key for s in samples if not 0 <= s.label < ds.num_classes]
        if bad:
            raise PretrainflowError(f"{path}: sample {bad[0]} has a label outside [0, {ds.num_classes - 1}]")
    if checksum_of([e["sha256"] for e in manifest["shards"]]) != manifest["dataset_checksum"]:
        raise PretrainflowError(f"{root}/manifest.json: dataset_checksum does not match its shard checksums")
    return manifest


def _exists(path: Path) -> Path:
    if not path.is_file():
        raise PretrainflowError(f"{path}: listed in the manifest but missing")
    return path
