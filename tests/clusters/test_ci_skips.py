"""CI runs what it claims: as root, a skipped Slurm / Grid Engine test fails the run with its reason (conftest.py).

Runs pytest on a scratch directory holding this directory's conftest.py and cluster_helpers.py and a few tests that
skip, so that the hook is tested as pytest really calls it (not by calling it by hand).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SKIPPING = """
import pytest

@pytest.mark.slurm
def test_marked_skip():
    pytest.skip("no Slurm reachable (sinfo not installed)")

def test_fixture_skip(monkeypatch, request):
    pytest.skip("plain skip, not a scheduler test")

@pytest.mark.sge
def test_runs():
    pass
"""


def _pytest(tmp_path: Path, body: str) -> subprocess.CompletedProcess:
    for name in ("conftest.py", "cluster_helpers.py"):
        shutil.copy(HERE / name, tmp_path / name)
    (tmp_path / "test_inner.py").write_text(body)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slurm: x\n    sge: x\n")
    argv = [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(tmp_path)]
    return subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=120)


@pytest.mark.skipif(os.geteuid() != 0, reason="the rule applies to root (CI) runs; this run is not root")
def test_a_skipped_scheduler_test_fails_a_root_run(tmp_path):
    result = _pytest(tmp_path, SKIPPING)
    out = result.stdout
    assert result.returncode == 1, out
    assert "1 failed, 1 passed, 1 skipped" in out, out  # the plain skip stays a skip
    assert "FAILED test_inner.py::test_marked_skip" in out
    assert "slurm test skipped while running as root" in out and "no Slurm reachable (sinfo not installed)" in out


def test_a_fixture_without_its_marker_is_refused(tmp_path):
    body = "import pytest\n\ndef test_unmarked(sge):\n    pass\n"
    result = _pytest(tmp_path, body)
    assert result.returncode != 0
    assert "test_inner.py::test_unmarked uses the 'sge' fixture without @pytest.mark.sge" in result.stdout + (
        result.stderr
    )
