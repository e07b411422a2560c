"""The dataset rules through Snakemake: search -> one render job per shard -> manifest, then a rerun does nothing."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pretrainflow.datasets.manifest import verify_dataset

REPO = Path(__file__).resolve().parents[2]


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(REPO / "Snakefile"),
        "-d",
        str(workdir),
        "--configfile",
        str(workdir / "study.yaml"),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.slow
def test_dataset_rules_scatter_and_gather(tmp_path):
    if shutil.which("snakemake", path=str(Path(sys.executable).parent)) is None:
        pytest.skip("snakemake is not installed in this environment")
    study = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    study["datasets"] = {
        "fdb-wf": {
            "family": "fractaldb",
            "num_classes": 2,
            "instances_per_class": 5,
            "image_size": 16,
            "num_shards": 3,
            "seed": 3,
            "params": {"num_points": 500, "pad": 1, "draw": "point", "search_batch": 64},
        }
    }
    for run in study["pretrain"].values():
        if run.get("kind") == "vit":
            run["dataset"] = "fdb-wf"
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(study))
    target = "results/datasets/fdb-wf/manifest.json"
    done = snakemake(tmp_path, target)
    assert done.returncode == 0, done.stderr[-3000:]
    for rule, count in (("search_categories", 1), ("render_shard", 3), ("dataset_manifest", 1)):
        assert f"{rule}" in done.stderr
        assert len(list((tmp_path / "results" / "logs" / rule).glob("*.log"))) == count
    manifest = verify_dataset(tmp_path / "results" / "datasets" / "fdb-wf")
    assert [e["count"] for e in manifest["shards"]] == [3, 3, 4]
    again = snakemake(tmp_path, target)
    assert again.returncode == 0 and "Nothing to be done" in again.stderr + again.stdout
