"""bench/bench_deepspeed_overhead.py runs every side (plain, the trainer's engine, the trainer's micro-step) in a tiny
configuration and prints CPU ms per step for each and an overhead against plain for the others."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_overhead_bench_prints_every_side(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DS_ACCELERATOR", "RANK", "WORLD_SIZE", "MASTER_PORT")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    argv = [
        sys.executable, str(REPO / "bench" / "bench_deepspeed_overhead.py"), "--model", "vit_test", "--micro", "4",
        "--num-classes", "4", "--steps", "2", "--repeats", "2", "--warmup", "1", "--threads", "1", "--zero", "0", "2",
    ]  # fmt: skip
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "1 thread(s); load average before" in out
    rows = {m[1]: m[2] for m in re.finditer(r"^  (plain|engine zero\d|trainer zero\d) +([\d.]+) ", out, re.M)}
    assert set(rows) == {"plain", "engine zero0", "engine zero2", "trainer zero0", "trainer zero2"}, out
    assert all(float(ms) > 0 for ms in rows.values())
    assert len(re.findall(r"[+-]\d+\.\d % \(", out)) == 4, out  # an overhead for every side but plain
