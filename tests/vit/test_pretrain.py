"""ViT pretraining through real DeepSpeed engines on a real (tiny) FractalDB dataset, 2 gloo ranks (slow: CI runs it).

- the 2-rank ZeRO-2 run writes the contracted outputs (timm names, typed metrics, summary, config) and checkpoints;
- a run SIGKILLed at an arbitrary moment and rerun ends with bitwise the same weights as an uninterrupted run;
- SIGUSR1 (a scheduler's walltime warning) -> checkpoint + exit 75; the rerun resumes and ends identical too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from vit_runs import CLI, cli_env, pretrain_argv, pretrain_spec, run_cli, weights

from pretrainflow.export.timm import timm_state_shapes
from pretrainflow.train.checkpoints import complete_tags
from pretrainflow.train.signals import EXIT_CHECKPOINTED

pytestmark = pytest.mark.slow

DATASET = {
    "name": "fdb-test",
    "family": "fractaldb",
    "num_classes": 4,
    "instances_per_class": 8,
    "image_size": 16,
    "num_shards": 2,
    "seed": 0,
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from pretrainflow.datasets.build import build_dataset

    out = tmp_path_factory.mktemp("datasets") / "fdb-test"
    build_dataset(DATASET, out)
    return out


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory):
    """One uninterrupted 2-rank ZeRO-2 run: 32 images / 2 ranks / micro 4 = 4 steps per epoch x 6 epochs = 24 steps
    (long enough that a kill after the first checkpoint always lands before the end)."""
    root = tmp_path_factory.mktemp("reference")
    spec = pretrain_spec(DATASET, schedule={"epochs": 6})
    proc = run_cli(pretrain_argv(spec, dataset, root / "out", root / "ckpt"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return spec, root, proc


def test_two_rank_zero2_outputs(reference):
    spec, root, proc = reference
    out = root / "out"
    assert "global batch 8 = micro 4 x accumulation 1 x 2 rank(s)" in proc.stdout
    w = weights(out / "model.safetensors")
    expected = timm_state_shapes(
        embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0, patch_size=4, image_size=16, in_chans=3, num_classes=4
    )
    assert {k: tuple(v.shape) for k, v in w.items()} == expected
    assert all(v.dtype == torch.float32 for v in w.values())
    metrics = pd.read_parquet(out / "metrics.parquet")
    assert metrics["step"].tolist() == list(range(2, 25, 2))
    assert str(metrics["step"].dtype) == "int64" and str(metrics["loss"].dtype) == "float64"
    assert metrics["epoch"].iloc[-1] == pytest.approx(6.0) and metrics["lr"].iloc[-1] == pytest.approx(1e-5)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_batch"] == 8 and summary["steps"] == 24
    assert summary["devices"] == "2 x cpu" and summary["throughput"] > 0 and summary["zero_stage"] == 2
    assert summary["images_seen"] == 24 * 8
    assert summary["device_hours"] == pytest.approx(summary["wall_seconds"] * 2 / 3600)
    stored = json.loads((out / "config.json").read_text())
    assert stored["config"]["run_id"] == "vit-test-fdb" and stored["config"]["zero_stage"] == 2
    assert (out / "loss.png").is_file() and any((out / "tensorboard").iterdir())
    tags = complete_tags(hash_dir(root / "ckpt"))
    assert tags == ["step-00000022", "step-00000024"]  # keep: 2


def hash_dir(ckpt_root: Path) -> Path:
    """The run's only checkpoint directory, {root}/{run}/{config hash12} (train/checkpoints.py)."""
    (run_dir,) = ckpt_root.iterdir()
    (digest_dir,) = run_dir.iterdir()
    return digest_dir


def _kill_after_first_checkpoint(argv, ckpt_root, delay_s: float) -> None:
    proc = subprocess.Popen(
        argv, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if any(complete_tags(p) for p in ckpt_root.glob("*/*") if p.is_dir()):
            break
        time.sleep(0.05)
    time.sleep(delay_s)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # launcher and both ranks, no chance to clean up
    proc.wait()


def test_sigkill_and_resume_is_bitwise_identical(reference, dataset, tmp_path):
    spec, ref_root, _ = reference
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    argv = pretrain_argv(spec, dataset, out, ckpt)
    _kill_after_first_checkpoint(argv, ckpt, delay_s=random.uniform(0.0, 0.5))
    assert not out.exists()  # a killed run leaves no output directory behind
    # Also a save killed half-way: a newer tag with files but no COMPLETE.json marker. It must never be loaded.
    digest_dir = hash_dir(ckpt)
    fake = digest_dir / "step-00000023"
    fake.mkdir()
    (fake / "mp_rank_00_model_states.pt").write_bytes(b"truncated")
    proc = run_cli(argv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from step" in proc.stdout and "resumed from step 23" not in proc.stdout
    assert not fake.exists()  # pruned by the next complete save
    ref, got = weights(ref_root / "out" / "model.safetensors"), weights(out / "model.safetensors")
    assert all(torch.equal(ref[k], got[k]) for k in ref)
    ref_metrics = pd.read_parquet(ref_root / "out" / "metrics.parquet")
    got_metrics = pd.read_parquet(out / "metrics.parquet")
    assert got_metrics[["step", "loss", "lr"]].equals(ref_metrics[["step", "loss", "lr"]])


def test_walltime_signal_checkpoints_and_exits_75(reference, dataset, tmp_path):
    spec, ref_root, _ = reference
    out, ckpt = tmp_path / "out", tmp_path / "ckpt"
    argv = pretrain_argv(spec, dataset, out, ckpt)
    proc = subprocess.Popen(argv, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and not any(complete_tags(p) for p in ckpt.glob("*/*") if p.is_dir()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)  # to the launcher, which forwards it to both ranks
    stdout, _ = proc.communicate(timeout=240)
    assert proc.returncode == EXIT_CHECKPOINTED, stdout[-3000:]
    assert "checkpointed at step" in stdout and not out.exists()
    step = int(stdout.split("checkpointed at step ")[1].split(",")[0])
    assert 2 <= step < 24 and complete_tags(hash_dir(ckpt))[-1] == f"step-{step:08d}"
    rerun = run_cli(argv)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    ref, got = weights(ref_root / "out" / "model.safetensors"), weights(out / "model.safetensors")
    assert all(torch.equal(ref[k], got[k]) for k in ref)


def _finetune_spec(pretrain: dict | None, model: dict) -> dict:
    return {
        "run_id": pretrain["run_id"] if pretrain else "scratch-vit-test",
        "source": "pretrained" if pretrain else "scratch",
        "model": model,
        "task": "digits",
        "task_spec": {
            "kind": "digits",
            "name": "digits",
            "image_size": 16,
            "train_limit": 256,
            "test_fraction": 0.25,
            "split_seed": 0,
        },
        "recipe": {
            "epochs": 1,
            "optimizer": {"name": "adamw", "lr": 5e-4},
            "batch": {"micro": 32},
            "augment": {"randaugment_ops": 0, "mixup": 0.0, "cutmix": 0.0, "random_erasing": 0.0},
        },
        "seed": 0,
        "pretrain_spec": pretrain,
    }


@pytest.mark.parametrize("source", ["pretrained", "scratch"])
def test_finetune_evaluate_rows_and_export(reference, tmp_path, source):
    import pyarrow.parquet as pq

    from pretrainflow.results.rows import ARROW_SCHEMA
    from pretrainflow.train.vit.spec import VitRunSpec

    spec, ref_root, _ = reference
    resolved = VitRunSpec.from_dict(spec).to_dict()
    ft = _finetune_spec(resolved if source == "pretrained" else None, resolved["model"])
    pretrained = ["--pretrained", str(ref_root / "out" / "model.safetensors")] if source == "pretrained" else []
    out = tmp_path / "ft"

    proc = run_cli([*CLI, "finetune", "--spec", json.dumps(ft), *pretrained, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_images"] == 256 and summary["steps"] == 8 and summary["world_size"] == 1
    w = weights(out / "model.safetensors")
    assert w["head.weight"].shape == (10, 32)
    if source == "pretrained":  # the body moved on from the pretrained weights; the head is new
        ref = weights(ref_root / "out" / "model.safetensors")
        assert ref["head.weight"].shape == (4, 32) and not torch.equal(ref["pos_embed"], w["pos_embed"])

    rows_path = tmp_path / "rows.parquet"
    proc = run_cli([*CLI, "evaluate", "--spec", json.dumps(ft), "--finetuned", str(out), "--out", str(rows_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    table = pq.read_table(rows_path)
    assert table.schema.equals(ARROW_SCHEMA, check_metadata=False)
    rows = {r["metric"]: r for r in table.to_pylist()}
    assert set(rows) == {"top1", "top5"} and 0 <= rows["top1"]["value"] <= rows["top5"]["value"] <= 100
    top1 = rows["top1"]
    assert top1["pretrain_source"] == ("fdb-test" if source == "pretrained" else "scratch")
    assert top1["task"] == "digits" and top1["split"] == "test" and top1["stage"] == "evaluate"
    assert top1["throughput"] == pytest.approx(summary["throughput"]) and top1["throughput_unit"] == "images/s"
    assert json.loads(top1["config_json"])["task"] == "digits"

    other = {**ft, "seed": 1}  # the rows must come from the spec that made the model
    proc = run_cli([*CLI, "evaluate", "--spec", json.dumps(other), "--finetuned", str(out), "--out", str(rows_path)])
    assert proc.returncode == 2 and "made by another spec" in proc.stderr


def test_pretrain_rows_and_timm_export(reference, tmp_path):
    import pyarrow.parquet as pq

    _, ref_root, _ = reference
    rows_path = tmp_path / "pretrain.parquet"
    proc = run_cli([*CLI, "pretrain-rows", "--pretrained", str(ref_root / "out"), "--out", str(rows_path)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    (row,) = pq.read_table(rows_path).to_pylist()
    summary = json.loads((ref_root / "out" / "summary.json").read_text())
    assert (row["stage"], row["task"], row["metric"]) == ("pretrain", "pretrain", "loss")
    assert row["value"] == pytest.approx(summary["final_loss"]) and row["world_size"] == 2 and row["step"] == 24
    assert row["dataset_checksum"] and len(row["dataset_checksum"]) == 64

    exported = tmp_path / "timm.safetensors"
    proc = run_cli(
        [*CLI, "export-timm", "--model", str(ref_root / "out" / "model.safetensors"), "--out", str(exported)]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours, theirs = weights(ref_root / "out" / "model.safetensors"), weights(exported)
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert_same_logits_in_timm(ref_root / "out" / "model.safetensors", exported)


def assert_same_logits_in_timm(model_path: Path, exported: Path) -> None:
    """The trained export in the real timm: built from the file's own metadata, loaded with strict=True, it gives the
    logits our model gives (bit for bit: the same operations in the same order)."""
    from timm_standin import real_timm

    from pretrainflow.io import load_safetensors
    from pretrainflow.models import VisionTransformer, ViTConfig

    weights_ours, meta_ours = load_safetensors(model_path)
    ours = VisionTransformer(ViTConfig(**json.loads(meta_ours["vit_config"])))
    ours.load_state_dict(weights_ours)
    weights_timm, meta = load_safetensors(exported)
    with real_timm() as timm:
        theirs = timm.create_model(meta["timm_architecture"], pretrained=False, **json.loads(meta["timm_kwargs"]))
    theirs.load_state_dict(weights_timm, strict=True)
    images = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        mine, timms = ours.eval()(images), theirs.eval()(images)
    assert mine.shape == (4, 4) and torch.equal(mine, timms), float((mine - timms).abs().max())
