"""The toy study through a profile derived from profiles/slurm, on the real Slurm started by scripts/start_slurm.sh.

Shows: jobs are accepted and their status is read with squeue (no accounting here). The cancelled-job retry runs on the
project's own test study (test_study_on_schedulers.py).
"""

from __future__ import annotations

import subprocess

import pytest
from cluster_helpers import derive_profile, snakemake_argv, snakemake_env

pytestmark = pytest.mark.slurm

# The repository profile, made fast for a 2-core test machine: status every 2 s, tiny memory requests.
FAST = {
    "slurm-init-seconds-before-status-checks": 2,
    "seconds-between-status-checks": 2,
    "max-status-checks-per-second": 5,
    "latency-wait": 5,
    "jobs": 4,
    "restart-times": 1,
    "keep-going": False,
}


def _parts(workdir) -> dict[str, dict[str, str]]:
    rows = {}
    for line in (workdir / "out" / "summary.txt").read_text().splitlines():
        fields = dict(item.split("=", 1) for item in line.split())
        rows[fields["part"]] = fields
    return rows


def test_toy_study_completes_on_slurm(slurm, tmp_path):
    profile = derive_profile("slurm", tmp_path / "profile", FAST, {"mem_mb": 200})
    work = tmp_path / "work"
    result = subprocess.run(
        snakemake_argv(profile, work, config={"parts": "'0 1'"}),
        env=snakemake_env(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "has been submitted with SLURM jobid" in result.stdout + result.stderr  # really went through sbatch
    parts = _parts(work)
    assert sorted(parts) == ["0", "1"]
    assert all(row["job"].isdigit() for row in parts.values()), parts  # ran inside Slurm jobs (SLURM_JOB_ID set)
