"""The offset index written beside each shard at render time: equal to a scan of the tar, listed in the manifest with
its sha256, used by readers instead of the scan, and refused (naming the shard) when it does not match."""

from __future__ import annotations

import json
import shutil

import pytest

from pretrainflow.datasets import open_dataset
from pretrainflow.datasets import shard_index as si
from pretrainflow.datasets import shards as sh
from pretrainflow.datasets.manifest import build_manifest, verify_dataset
from pretrainflow.errors import PretrainflowError
from pretrainflow.io import canonical_json, sha256_file


@pytest.fixture()
def copy(tiny_dataset, tmp_path):
    root, spec = tiny_dataset
    dst = tmp_path / "copy"
    shutil.copytree(root, dst)
    return dst, spec


def manifest_of(root) -> dict:
    return json.loads((root / "manifest.json").read_text())


def test_index_written_at_render_time_equals_a_scan_and_is_listed(tiny_dataset):
    root, _ = tiny_dataset
    manifest = manifest_of(root)
    for entry in manifest["shards"]:
        tar = root / entry["name"]
        header, scanned = sh.index_shard(tar)
        record, indexed = si.load_index(si.index_path(tar))
        assert indexed == scanned and len(indexed) == entry["count"] == 6
        assert record["tar"] == {"name": tar.name, "bytes": tar.stat().st_size, "sha256": entry["sha256"]}
        assert record["header"]["shard"] == header.shard and record["header"]["first"] == entry["first"]
        assert entry["index"] == {"name": f"{entry['name']}.idx", "sha256": sha256_file(si.index_path(tar))}
        with open(tar, "rb") as handle:  # the offsets point at the PNG bytes themselves
            handle.seek(indexed[0].offset)
            assert handle.read(8) == sh.PNG_SIGNATURE


def test_reader_uses_the_index_without_scanning(tiny_dataset, monkeypatch):
    root, _ = tiny_dataset
    scanned = open_dataset(root)
    expected = [(s.key, s.label, s.offset) for _, s in scanned.samples]

    def no_scan(path):
        raise AssertionError(f"scanned {path}")

    monkeypatch.setattr(sh, "index_shard", no_scan)
    indexed = open_dataset(root)
    assert [(s.key, s.label, s.offset) for _, s in indexed.samples] == expected
    image, label = indexed[7]
    assert label == scanned[7][1] and image.equal(scanned[7][0])


def test_a_dataset_without_indexes_is_scanned_as_before(copy, tmp_path):
    root, spec = copy
    before = manifest_of(root)
    for idx in (root / "shards").glob("*.idx"):
        idx.unlink()
    rebuilt = build_manifest(spec, sorted((root / "shards").glob("*.tar")), root / "manifest.json")
    assert all("index" not in entry for entry in rebuilt["shards"])
    assert rebuilt["dataset_checksum"] == before["dataset_checksum"]  # indexes are outside the checksum
    assert len(open_dataset(root)) == 18
    verify_dataset(root)


def test_a_corrupted_index_is_an_error_naming_the_shard(copy):
    root, _ = copy
    idx = root / "shards" / "shard-00001.tar.idx"
    data = bytearray(idx.read_bytes())
    data[data.index(b'"samples"') + 20] ^= 0x01
    idx.write_bytes(bytes(data))
    with pytest.raises(PretrainflowError, match=r"shard-00001.tar.idx: sha256 differs from the manifest"):
        open_dataset(root)
    with pytest.raises(PretrainflowError, match=r"shard-00001.tar.idx: sha256 differs from the manifest"):
        verify_dataset(root)
    idx.unlink()
    with pytest.raises(PretrainflowError, match=r"shard-00001.tar.idx: the index of shard-00001.tar is listed"):
        open_dataset(root)


def test_an_index_that_does_not_match_its_tar_is_refused(copy):
    """An index whose own sha256 the manifest vouches for, but whose offsets are wrong: the reader's check of the tar
    headers catches it, and so do `datasets manifest` and `datasets verify` (full comparison with a scan)."""
    root, spec = copy
    idx = root / "shards" / "shard-00002.tar.idx"
    record = json.loads(idx.read_text())
    record["samples"][-1][2] += 512  # the last image's offset, one block off
    idx.write_text(canonical_json(record))
    manifest = manifest_of(root)
    manifest["shards"][2]["index"]["sha256"] = sha256_file(idx)
    (root / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(PretrainflowError, match=r"shard-00002.tar: does not match its index at byte"):
        open_dataset(root)
    with pytest.raises(PretrainflowError, match=r"shard-00002.tar.idx: does not match the members of shard-00002"):
        verify_dataset(root)
    with pytest.raises(PretrainflowError, match=r"shard-00002.tar.idx: does not match the members of shard-00002"):
        build_manifest(spec, sorted((root / "shards").glob("*.tar")), root / "m.json")
    assert not (root / "m.json").exists()


def test_an_index_of_another_tar_is_refused(copy):
    """A tar replaced after its index was written (e.g. a crash between the two renames of an earlier render)."""
    root, spec = copy
    shards = root / "shards"
    shutil.copyfile(shards / "shard-00000.tar.idx", shards / "shard-00001.tar.idx")
    with pytest.raises(PretrainflowError, match=r"shard-00001.tar.idx: indexes another version of shard-00001.tar"):
        build_manifest(spec, sorted(shards.glob("*.tar")), root / "m.json")
