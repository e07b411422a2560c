"""bench/bench_fractaldb.py --verify: its exit status says whether the searched categories are the published ones."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from dataset_testlib import FIXTURES

REPO = Path(__file__).resolve().parents[2]


def run_bench(verify: Path) -> subprocess.CompletedProcess:
    # 2 categories (trials 24 and 29 of the published stream: one batch of 80 trials, about 2 s); no rendering
    argv = [sys.executable, str(REPO / "bench" / "bench_fractaldb.py"), "--search", "2", "--classes", "0",
            "--verify", str(verify)]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)


def test_verify_exits_zero_on_the_published_categories():
    proc = run_bench(FIXTURES)  # the first five published files
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 / 2 categories identical" in proc.stdout
    assert "recorded on" in proc.stdout  # the published figure is a recorded one, never "measured"


def test_verify_exits_non_zero_when_a_category_differs(tmp_path):
    for index in range(2):
        shutil.copy(FIXTURES / f"{index:05d}.csv", tmp_path)
    rows = (tmp_path / "00001.csv").read_text().splitlines()
    rows[0] = ",".join(["0"] * len(rows[0].split(",")))  # one map of category 1 no longer published
    (tmp_path / "00001.csv").write_text("\n".join(rows) + "\n")
    proc = run_bench(tmp_path)
    assert proc.returncode == 1, proc.stdout[-3000:]
    assert "1 / 2 categories identical" in proc.stdout and "DIFFERENT: [1]" in proc.stdout
    assert "1 categories differ" in proc.stderr
