"""The toy study through a profile derived from profiles/slurm, on the real Slurm started by scripts/start_slurm.sh.

Shows: jobs are accepted and their status is read with squeue (no accounting here). The cancelled-job retry runs on the
project's own test study (test_study_on_schedulers.py).
"""

from __future__ import annotations

import subprocess

import pytest
from cluster_helpers import derive_profile, snakemake_argv, snakemake_env

pytestmark = pytest.mark.slurm

# The repository profile, made fast for a 2-core test machine: tiny memory requests; the plugin checks 1 s after a
# submission, then 10 s more each time no job has finished (1, 12, 33 s ...).
FAST = {
    "slurm-init-seconds-before-status-checks": 1,
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


def test_our_sbatch_path_submit_and_status(slurm, tmp_path):
    # `pretrainflow sched submit --site slurm` (the cluster-generic route, e.g. for sites without the plugin): the
    # sbatch argv and wrapper of schedulers/slurm.py + jobscript.py, accepted by the real sbatch; status via squeue
    import json

    from cluster_helpers import wait_until

    from pretrainflow.schedulers import commands

    def job(exit_code: int) -> str:
        props = {"rule": "probe", "wildcards": {"code": str(exit_code)}, "resources": {"mem_mb": 100, "runtime": 2}}
        script = tmp_path / f"snakejob.probe.{exit_code}.sh"
        script.write_text(
            f"#!/bin/sh\n# properties = {json.dumps(props)}\necho $PRETRAINFLOW_SITE > site.txt\nexit {exit_code}\n"
        )
        return commands.submit("slurm", script, [], workdir=tmp_path)

    ok, bad = job(0), job(3)

    def final(job_id):
        answer = commands.status("slurm", job_id, workdir=tmp_path)
        return None if answer == "running" else answer

    assert wait_until(lambda: final(ok), 120, what="ok job") == "success"
    assert wait_until(lambda: final(bad), 120, what="failing job") == "failed"
    assert (tmp_path / "site.txt").read_text().strip() == "slurm"
    status_dir = tmp_path / ".snakemake/pretrainflow-sched/status"
    assert (status_dir / f"{ok}.exit").read_text().strip() == "0" and (
        status_dir / f"{bad}.exit"
    ).read_text().strip() == "3"
