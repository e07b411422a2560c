"""bench/bench_vit.py follows the machine's device (it used to force DeepSpeed's CPU accelerator while the engine
picked NCCL and CUDA on a GPU box) and writes its figures as JSON; here it runs a few steps on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_bench_vit_runs_on_this_device_and_writes_json(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DS_ACCELERATOR", "RANK", "WORLD_SIZE", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    out = tmp_path / "vit.json"
    argv = [
        sys.executable, str(REPO / "bench" / "bench_vit.py"), "--model", "vit_test", "--micro", "8",
        "--steps", "4", "--repeats", "1", "--zero", "0", "--log-every", "2", "--num-classes", "10", "--threads", "1",
        "--json", str(out),
    ]  # fmt: skip
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["device"] == "cpu" and figures["precision"] == "fp32" and figures["train_gflops_per_image"] > 0
    loops = {row["loop"]: row for row in figures["results"]}
    assert set(loops) == {"plain", "deepspeed zero0"}
    assert all(row["images_per_s"] > 0 and row["mfu"] is None for row in loops.values())  # no peak for a CPU


def test_bench_does_not_choose_the_accelerator_at_import(monkeypatch):
    monkeypatch.delenv("DS_ACCELERATOR", raising=False)
    monkeypatch.syspath_prepend(str(REPO / "bench"))
    import bench_vit  # noqa: F401

    assert "DS_ACCELERATOR" not in os.environ
