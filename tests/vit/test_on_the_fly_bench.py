"""bench/bench_on_the_fly.py runs end to end at a tiny size and prints the figures it measured (and writes them)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from vit_runs import REPO, cli_env

pytestmark = pytest.mark.slow


def test_bench_prints_measured_figures(tmp_path):
    out = tmp_path / "bench.json"
    argv = [sys.executable, str(REPO / "bench" / "bench_on_the_fly.py"), "--classes", "4", "--instances", "6"]
    argv += ["--size", "32", "--points", "1000", "--params", '{"pad": 2, "draw": "point"}', "--micro", "4"]
    argv += ["--batches", "2", "--model", "vit_test", "--train-steps", "1", "--json", str(out)]
    proc = subprocess.run(argv, env=cli_env(), capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert set(figures["render"]) == {"numpy cpu", "torch cpu"}  # no GPU here: no cuda line
    for name, fig in figures["render"].items():
        assert fig["images"] == 8 and fig["images_per_s"] > 0
        # the printed table holds the measured values, not constants
        assert f"{name:<12} {fig['images_per_s']:>10.2f} {fig['images_per_cpu_s']:>13.2f}" in proc.stdout
        ratio = fig["images_per_s"] / figures["train"]["images_per_s"]
        assert f"{name:<12} renders {ratio:.3g}x the training step's images/s" in proc.stdout
    assert f"{figures['train']['images_per_s']:.1f} images/s" in proc.stdout
