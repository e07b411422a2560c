"""The toy study through a profile derived from profiles/slurm, on the real Slurm started by scripts/start_slurm.sh.

Shows: jobs are accepted and their status is read with squeue (no accounting here); a job cancelled with scancel while
running fails, Snakemake resubmits it (restart-times), and the study completes with every result present once.
"""

from __future__ import annotations

import subprocess

import pytest
from cluster_helpers import derive_profile, snakemake_argv, snakemake_env, wait_until

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


def _running_job_of(comment_fragment: str) -> str | None:
    out = subprocess.run(["squeue", "--noheader", "--format=%i %T %k"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        job_id, state, comment = (line.split(None, 2) + ["", ""])[:3]
        if state == "RUNNING" and comment_fragment in comment:
            return job_id
    return None


@pytest.mark.slow
def test_scancel_mid_run_is_retried_and_nothing_is_lost(slurm, tmp_path):
    profile = derive_profile("slurm", tmp_path / "profile", FAST, {"mem_mb": 200})
    work = tmp_path / "work"
    argv = snakemake_argv(profile, work, config={"parts": "'0 1 2'", "slow_part": 1})
    with subprocess.Popen(
        argv, env=snakemake_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    ) as proc:
        # the slow part sleeps 60 s on its first attempt: cancel it while it runs
        job_id = wait_until(lambda: _running_job_of("rule_part_wildcards_1"), 90, what="part 1 running in Slurm")
        subprocess.run(["scancel", job_id], check=True)
        output, _ = proc.communicate(timeout=240)
    assert proc.returncode == 0, output[-4000:]
    parts = _parts(work)
    assert sorted(parts) == ["0", "1", "2"], parts  # every result present, each once
    assert parts["1"]["attempt"] == "2" and parts["1"]["job"] != job_id  # the retry produced it, in a new job
    assert parts["0"]["attempt"] == "1" and parts["2"]["attempt"] == "1"  # the others were not rerun
    state = subprocess.run(
        ["squeue", "--noheader", "--states=all", "--format=%T", "--jobs", job_id], capture_output=True, text=True
    ).stdout.strip()
    assert state == "CANCELLED", state
