"""Other engine paths through real DeepSpeed on 2 gloo ranks (slow): ZeRO-3 + bf16 + gradient accumulation + clipping,
with the images rendered on the fly."""

from __future__ import annotations

import json

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
    "num_shards": 1,
    "seed": 1,
    "params": {"num_points": 5000},  # 5k points fill 16 px: rendering on the fly stays cheap
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from pretrainflow.datasets.build import build_dataset

    out = tmp_path_factory.mktemp("datasets") / "fdb-fly"
    build_dataset(DATASET, out)
    return out


def test_zero3_bf16_accumulation_on_the_fly(dataset, tmp_path):
    from pretrainflow.datasets.spec import check_spec

    spec = pretrain_spec(
        check_spec(DATASET, "datasets.fdb-fly"),
        zero_stage=3,
        precision="bf16",
        on_the_fly=True,
        batch={"micro": 2, "global": 8},  # accumulation 2 on 2 ranks
        schedule={"epochs": 2, "warmup_epochs": 0.5},
        checkpoint={"every_steps": 100},
    )
    proc = run_cli(pretrain_argv(spec, dataset, tmp_path / "out", tmp_path / "ckpt"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    # 32 images / 2 ranks = 16 per rank / micro 2 = 8 micro-batches / accumulation 2 = 4 steps per epoch
    assert "global batch 8 = micro 2 x accumulation 2 x 2 rank(s)" in proc.stdout and "ZeRO 3, bf16" in proc.stdout
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["steps"] == 8 and summary["zero_stage"] == 3 and summary["precision"] == "bf16"
    w = weights(tmp_path / "out" / "model.safetensors")
    # ZeRO-3 partitions the parameters over the ranks; the file still holds every full fp32 tensor (master weights)
    assert w["blocks.0.attn.qkv.weight"].shape == (96, 32) and w["pos_embed"].dtype == torch.float32
    assert all(torch.isfinite(v).all() for v in w.values())
    assert not torch.equal(w["blocks.0.mlp.fc1.weight"].bfloat16().float(), w["blocks.0.mlp.fc1.weight"])
    metrics = pd.read_parquet(tmp_path / "out" / "metrics.parquet")
    assert metrics["loss"].notna().all() and metrics["step"].iloc[-1] == 8
