"""A real 2-rank DeepSpeed pretraining run rendering FractalDB on the fly with the torch renderer, from a directory that
holds only categories.parquet, against the same run reading the stored shards: bitwise the same losses and weights
(the same pixels in the same order, and rendering draws nothing from torch's random streams). Slow: CI runs it."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch
from vit_runs import pretrain_argv, pretrain_spec, run_cli, weights

pytestmark = pytest.mark.slow

DATASET = {
    "name": "fdb-fly",
    "family": "fractaldb",
    "num_classes": 4,
    "instances_per_class": 8,
    "image_size": 16,
    "num_shards": 2,
    "seed": 1,
    "params": {"num_points": 5000},  # 5k points fill 16 px with 3x3 patches: cheap to render each step
}


def test_torch_on_the_fly_run_equals_the_shard_run_bitwise(tmp_path):
    from pretrainflow.datasets.build import build_dataset
    from pretrainflow.datasets.spec import check_spec

    stored = tmp_path / "stored"
    build_dataset(DATASET, stored)
    bare = tmp_path / "bare"  # no shards, no manifest: what a study with no dataset on disk gives the run
    bare.mkdir()
    shutil.copy(stored / "categories.parquet", bare / "categories.parquet")
    resolved = check_spec(DATASET, "datasets.fdb-fly")
    common = {
        "schedule": {"epochs": 2, "warmup_epochs": 0.5},
        "checkpoint": {"every_steps": 100},
        "log": {"every_steps": 1},
    }

    outs = {}
    for name, dataset, keys in (("shards", stored, {}), ("torch", bare, {"on_the_fly": True, "renderer": "torch"})):
        spec = pretrain_spec(resolved, **common, **keys)
        proc = run_cli(pretrain_argv(spec, dataset, tmp_path / name, tmp_path / f"ckpt-{name}"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        outs[name] = tmp_path / name

    got, want = (pd.read_parquet(outs[k] / "metrics.parquet") for k in ("torch", "shards"))
    # 32 images / 2 ranks / micro 4 = 4 steps per epoch, 2 epochs, a row per step
    assert got["step"].tolist() == want["step"].tolist() == list(range(1, 9))
    assert want["loss"].notna().all() and want["loss"].nunique() > 1  # real, changing losses
    assert got["loss"].tolist() == want["loss"].tolist()  # float equality of every logged loss: bitwise
    w_got, w_want = weights(outs["torch"] / "model.safetensors"), weights(outs["shards"] / "model.safetensors")
    assert w_got.keys() == w_want.keys() and all(torch.equal(w_got[k], w_want[k]) for k in w_want)
    summaries = {k: json.loads((outs[k] / "summary.json").read_text()) for k in outs}
    # the row names its data: the shards' checksum, or (on the fly) the hash of the spec and categories rendered from
    assert summaries["torch"]["dataset_checksum"] != summaries["shards"]["dataset_checksum"]
    assert len(summaries["torch"]["dataset_checksum"]) == 64
