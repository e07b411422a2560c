"""The `pretrainflow datasets ...` commands as the rules call them, and their one-line errors."""

from __future__ import annotations

import json

import pytest
from dataset_testlib import tiny_spec

from pretrainflow.cli import main


def test_rule_commands_make_a_verified_dataset(tmp_path, capsys):
    spec = json.dumps(tiny_spec(num_classes=2, instances_per_class=3))
    root = tmp_path / "results" / "datasets" / "fdb-test"
    assert main(["datasets", "search", "--spec", spec, "--out", str(root / "categories.parquet")]) == 0
    for k in (0, 1):
        out = root / "shards" / f"shard-{k:05d}.tar"
        assert (
            main(
                [
                    "datasets",
                    "render-shard",
                    "--spec",
                    spec,
                    "--categories",
                    str(root / "categories.parquet"),
                    "--shard",
                    str(k),
                    "--out",
                    str(out),
                ]
            )
            == 0
        )
    shards = [str(p) for p in sorted((root / "shards").glob("*.tar"))]
    assert (
        main(["datasets", "manifest", "--spec", spec, "--shards", *shards, "--out", str(root / "manifest.json")]) == 0
    )
    capsys.readouterr()
    assert main(["datasets", "verify", str(root)]) == 0
    assert "OK (6 images, 2 shards" in capsys.readouterr().out


def test_spec_from_file_and_bad_spec_exit_2(tmp_path, capsys):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(tiny_spec(image_size=4)))
    assert main(["datasets", "search", "--spec", f"@{path}", "--out", str(tmp_path / "c.parquet")]) == 2
    err = capsys.readouterr().err
    assert "datasets.fdb-test.image_size: expected an integer >= 8, got 4" in err and "Traceback" not in err
    assert not (tmp_path / "c.parquet").exists()


def test_verify_of_a_non_dataset_directory(tmp_path, capsys):
    assert main(["datasets", "verify", str(tmp_path)]) == 2
    assert "manifest.json: no manifest" in capsys.readouterr().err


def test_preview_writes_a_contact_sheet(tmp_path):
    from PIL import Image

    out = tmp_path / "sheet.png"
    spec = json.dumps(tiny_spec(num_classes=2, instances_per_class=4))
    assert main(["datasets", "preview", "--spec", spec, "--classes", "2", "--instances", "3", "--out", str(out)]) == 0
    with Image.open(out) as img:
        assert img.size == (3 * 34 + 2, 2 * 34 + 2) and img.mode == "RGB"


def test_preview_needs_exactly_one_source(tmp_path, capsys):
    assert main(["datasets", "preview", "--out", str(tmp_path / "x.png")]) == 2
    assert "exactly one of --spec JSON or --family NAME" in capsys.readouterr().err


@pytest.mark.slow
def test_preview_of_the_published_family(tmp_path):
    out = tmp_path / "fdb.png"
    assert (
        main(
            [
                "datasets",
                "preview",
                "--family",
                "fractaldb",
                "--classes",
                "2",
                "--instances",
                "2",
                "--size",
                "64",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert out.stat().st_size > 1000
