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

import pandas as pd
import pytest
import torch
from vit_runs import cli_env, pretrain_argv, pretrain_spec, run_cli, weights

from pretrainflow.export.timm import timm_state_shapes
from pretrainflow.train.checkpoint import complete_tags
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
    """One uninterrupted 2-rank ZeRO-2 run: 32 images / 2 ranks / micro 4 = 4 steps per epoch x 3 epochs = 12 steps."""
    root = tmp_path_factory.mktemp("reference")
    spec = pretrain_spec(DATASET)
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
    assert metrics["step"].tolist() == [2, 4, 6, 8, 10, 12]
    assert str(metrics["step"].dtype) == "int64" and str(metrics["loss"].dtype) == "float64"
    assert metrics["epoch"].iloc[-1] == pytest.approx(3.0) and metrics["lr"].iloc[-1] == pytest.approx(1e-5)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["global_batch"] == 8 and summary["steps"] == 12
    assert summary["devices"] == "2 x cpu" and summary["throughput"] > 0 and summary["zero_stage"] == 2
    assert summary["images_seen"] == 12 * 8
    assert summary["device_hours"] == pytest.approx(summary["wall_seconds"] * 2 / 3600)
    stored = json.loads((out / "config.json").read_text())
    assert stored["config"]["run_id"] == "vit-test-fdb" and stored["config"]["zero_stage"] == 2
    assert (out / "loss.png").is_file() and any((out / "tensorboard").iterdir())
    tags = complete_tags(next((root / "ckpt").iterdir()))
    assert tags == ["step-00000010", "step-00000012"]  # keep: 2


def _kill_after_first_checkpoint(argv, ckpt_root, delay_s: float) -> None:
    proc = subprocess.Popen(
        argv, env=cli_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if any(complete_tags(p) for p in ckpt_root.glob("*") if p.is_dir()):
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
    _kill_after_first_checkpoint(argv, ckpt, delay_s=random.uniform(0.0, 1.5))
    assert not out.exists()  # a killed run leaves no output directory behind
    # Also a save killed half-way: a newer tag with files but no COMPLETE.json marker. It must never be loaded.
    digest_dir = next(ckpt.iterdir())
    fake = digest_dir / "step-00000011"
    fake.mkdir()
    (fake / "mp_rank_00_model_states.pt").write_bytes(b"truncated")
    proc = run_cli(argv)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "resumed from step" in proc.stdout and "resumed from step 11" not in proc.stdout
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
    while time.monotonic() < deadline and not any(complete_tags(p) for p in ckpt.glob("*") if p.is_dir()):
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)  # to the launcher, which forwards it to both ranks
    stdout, _ = proc.communicate(timeout=240)
    assert proc.returncode == EXIT_CHECKPOINTED, stdout[-3000:]
    assert "checkpointed at step" in stdout and not out.exists()
    step = int(stdout.split("checkpointed at step ")[1].split(",")[0])
    assert 2 <= step < 12 and complete_tags(next(ckpt.iterdir()))[-1] == f"step-{step:08d}"
    rerun = run_cli(argv)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    ref, got = weights(ref_root / "out" / "model.safetensors"), weights(out / "model.safetensors")
    assert all(torch.equal(ref[k], got[k]) for k in ref)
