"""Shards, manifest, verify and the torch datasets: determinism across shard splits, tamper detection, pixel identity."""

from __future__ import annotations

import json
import shutil
import tarfile

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from pretrainflow.datasets import OnTheFlyDataset, dataset_checksum, open_dataset
from pretrainflow.datasets.build import build_dataset, render_shard
from pretrainflow.datasets.categories import read_categories, write_categories
from pretrainflow.datasets.manifest import build_manifest, verify_dataset
from pretrainflow.datasets.spec import resolve, resolved_dict
from pretrainflow.errors import PretrainflowError


def members(path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def all_members(root) -> dict[str, bytes]:
    out = {}
    for path in sorted((root / "shards").glob("*.tar")):
        out.update(members(path))
    return out


def test_dataset_directory_is_complete_and_verifies(tiny_dataset):
    root, spec = tiny_dataset
    manifest = verify_dataset(root)
    assert sorted(p.name for p in root.iterdir()) == ["categories.parquet", "config.json", "manifest.json", "shards"]
    assert [e["count"] for e in manifest["shards"]] == [6, 6, 6] and manifest["num_images"] == 18
    assert manifest["spec"]["params"]["num_points"] == 2000 and manifest["spec"]["params"]["fill_rate"] == 0.2
    assert dataset_checksum(root) == manifest["dataset_checksum"] and len(manifest["dataset_checksum"]) == 64
    assert json.loads(pq.read_schema(root / "categories.parquet").metadata[b"pretrainflow.spec"]) == manifest["spec"]
    config = json.loads((root / "config.json").read_text())
    assert config["config"] == manifest["spec"] and "git_commit" in config["provenance"]
    names = list(members(root / "shards" / "shard-00001.tar"))
    assert names[:4] == ["00001_000000.png", "00001_000000.cls", "00001_000001.png", "00001_000001.cls"]


def test_same_images_in_any_shard_split(tiny_dataset, tmp_path):
    root, spec = tiny_dataset
    one = tmp_path / "one"
    build_dataset({**spec, "num_shards": 1}, one)
    split, whole = all_members(root), all_members(one)
    assert split == whole  # byte-identical PNGs and labels, whatever the number of shards (jobs)
    assert len(whole) == 36
    # and rendering one shard in a fresh process state gives the same bytes again
    ds, family, params = resolve({**spec, "num_shards": 1})
    from pretrainflow.datasets import fractaldb

    fractaldb._category_coverages.cache_clear()
    render_shard(ds, family, params, read_categories(root / "categories.parquet"), 0, tmp_path / "again.tar")
    assert members(tmp_path / "again.tar") == whole


@pytest.fixture()
def copy(tiny_dataset, tmp_path):
    root, spec = tiny_dataset
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst, spec


def test_verify_names_a_corrupt_shard(copy):
    root, _ = copy
    path = root / "shards" / "shard-00001.tar"
    data = bytearray(path.read_bytes())
    data[1500] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(PretrainflowError, match=r"shard-00001.tar: sha256 differs from the manifest"):
        verify_dataset(root)


def test_verify_names_a_missing_shard_and_a_wrong_count(copy):
    root, _ = copy
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["shards"][2]["count"] = 7
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PretrainflowError, match=r"shard-00002.tar: 6 samples, the manifest says 7"):
        verify_dataset(root)
    (root / "shards" / "shard-00000.tar").unlink()
    with pytest.raises(PretrainflowError, match=r"shard-00000.tar: listed in the manifest but missing"):
        verify_dataset(root)


def test_manifest_rejects_missing_and_stale_shards(copy, tmp_path):
    root, spec = copy
    shards = sorted((root / "shards").glob("*.tar"))
    with pytest.raises(PretrainflowError, match=r"num_shards = 3 \(shard 2\)"):
        build_manifest(spec, shards[:2], tmp_path / "m.json", root / "categories.parquet")
    other = {**spec, "seed": 99}  # same categories, other masks: the shards on disk are stale for it
    ds, _, params = resolve(other)
    write_categories(read_categories(root / "categories.parquet"), ds, params, tmp_path / "categories.parquet")
    with pytest.raises(PretrainflowError, match=r"shard-00000.tar: rendered from another spec"):
        build_manifest(other, shards, tmp_path / "m.json", tmp_path / "categories.parquet")
    assert not (tmp_path / "m.json").exists()


def test_render_shard_rejects_an_index_out_of_range(tiny_dataset, tmp_path):
    root, spec = tiny_dataset
    ds, family, params = resolve(spec)
    with pytest.raises(PretrainflowError, match=r"shard: expected a shard index in \[0, 2\]"):
        render_shard(ds, family, params, read_categories(root / "categories.parquet"), 3, tmp_path / "x.tar")
    assert not (tmp_path / "x.tar").exists()


def test_shard_dataset_equals_on_the_fly_rendering(tiny_dataset):
    root, spec = tiny_dataset
    stored = open_dataset(root)
    fly = OnTheFlyDataset(
        json.loads((root / "manifest.json").read_text())["spec"], pd.read_parquet(root / "categories.parquet")
    )
    assert len(stored) == len(fly) == 18 and stored.num_classes == fly.num_classes == 3
    assert stored.labels == fly.labels == [i // 6 for i in range(18)]
    for i in range(len(stored)):
        (a, la), (b, lb) = stored[i], fly[i]
        assert a.dtype == torch.uint8 and a.shape == (1, 32, 32)
        assert torch.equal(a, b) and la == lb


def test_shard_dataset_in_forked_workers(tiny_dataset):
    root, _ = tiny_dataset
    ds = open_dataset(root)
    serial = torch.cat([x for x, _ in torch.utils.data.DataLoader(ds, batch_size=5)])
    loader = torch.utils.data.DataLoader(ds, batch_size=5, num_workers=2, multiprocessing_context="fork")
    parallel = torch.cat([x for x, _ in loader])
    assert torch.equal(serial, parallel) and serial.shape == (18, 1, 32, 32)
    assert np.count_nonzero(serial.numpy()) > 0


def test_npy_shards_hold_the_same_pixels(tiny_dataset, tmp_path):
    root, spec = tiny_dataset
    raw = tmp_path / "npy"
    build_dataset({**spec, "image_format": "npy"}, raw)
    assert next(iter(members(raw / "shards" / "shard-00000.tar"))) == "00000_000000.npy"
    png, npy = open_dataset(root), open_dataset(raw)
    assert all(torch.equal(png[i][0], npy[i][0]) for i in range(len(png)))


def test_categories_of_another_spec_are_refused(tiny_dataset, tmp_path):
    root, spec = tiny_dataset
    other = {**spec, "params": {**spec["params"], "num_points": 2001}}
    ds, _, params = resolve(other)
    with pytest.raises(PretrainflowError, match=r"categories.parquet: searched for another dataset spec"):
        read_categories(root / "categories.parquet", resolved_dict(ds, params))
    with pytest.raises(PretrainflowError, match=r"searched for another dataset spec"):
        build_manifest(other, sorted((root / "shards").glob("*.tar")), tmp_path / "m.json", root / "categories.parquet")
    with pytest.raises(PretrainflowError, match=r"nothing.parquet: missing"):
        build_manifest(spec, sorted((root / "shards").glob("*.tar")), tmp_path / "m.json", tmp_path / "nothing.parquet")
