"""Atomic outputs: complete or absent, never half-written; readable like any other file."""

import os
import stat

import pytest

from pretrainflow.io import atomic_dir, atomic_path, atomic_write_json, canonical_json, config_hash


def test_failed_write_leaves_previous_file_intact(tmp_path):
    target = tmp_path / "summary.json"
    atomic_write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert target.read_text().strip() == '{\n  "v": 1\n}'
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_atomic_dir_replaces_whole_directory(tmp_path):
    target = tmp_path / "shards"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError("killed")
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shards"]


def test_outputs_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "x.json", {})
    finally:
        os.umask(old)
    mode = stat.S_IMODE((tmp_path / "x.json").stat().st_mode)
    assert mode & 0o044 == 0o044, oct(mode)


def test_canonical_json_and_hash_ignore_key_order():
    assert canonical_json({"b": 1, "a": [1.5, None]}) == '{"a":[1.5,null],"b":1}'
    assert config_hash({"b": 1, "a": 2}) == config_hash({"a": 2, "b": 1})
    with pytest.raises(ValueError):
        canonical_json({"lr": float("nan")})
