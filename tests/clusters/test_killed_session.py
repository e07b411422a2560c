"""A killed login session loses nothing (issue 12). On the real Slurm: Snakemake is SIGKILLed while a pretraining job
it submitted runs; the job goes on (as on a cluster), `snakemake --unlock` and the same command finish the study.

The result rows equal those of an uninterrupted run of the same target on this machine, and the run was trained once:
the rerun's job (Snakemake cannot know the old one finished) resumed from the finished checkpoint instead of training
again, and the checkpoint lock (train/run_lock.py) is free at the end. The killed session starts from the dataset the
reference run built (its scheduler jobs are the pretraining and its rows; the dataset branch on the real schedulers is
test_study_on_schedulers.py's).
On the real Grid Engine through our qsub path (profiles/tsubame): the restarted Snakemake follows the job of the killed
session that still runs (`sched submit` returns its id) instead of submitting it again; that job runs until the test has
seen the restart follow it (no fixed sleep).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pandas as pd
import pytest
from cluster_helpers import REPO, VENV_BIN, derive_profile, snakemake_env, wait_until

pytestmark = pytest.mark.slow

RUN = "vit-test-fdb"
TARGET = f"results/rows/{RUN}/pretrain.parquet"
# The plugin checks 1 s after a submission, then 10 s more each time no job has finished (1, 12, 33, 64 s ...).
FAST = {"slurm-init-seconds-before-status-checks": 1, "seconds-between-status-checks": 2,
        "max-status-checks-per-second": 5, "latency-wait": 10, "jobs": 4, "restart-times": 1, "keep-going": False}  # fmt: skip
# columns that depend on the work, not on the clock (throughput and wall time differ between any two runs)
STABLE = ["run_id", "metric", "value", "epoch", "step", "config_hash", "dataset_checksum", "world_size"]


def _argv(work, profile=None, *extra) -> list[str]:
    argv = [str(VENV_BIN / "snakemake"), TARGET, "-s", str(REPO / "Snakefile"), "-d", str(work), "--configfile",
            str(REPO / "config" / "test.yaml")]  # fmt: skip
    if profile is not None:
        argv += ["--profile", str(profile), "--workflow-profile", "none"]
    else:
        argv += ["--cores", "2"]
    return argv + list(extra)


def _pretrain_jobs() -> dict[str, str]:
    """job id -> state of this Slurm's pretrain_vit jobs (MinJobAge keeps finished ones listed)."""
    out = subprocess.run(["squeue", "-h", "-t", "all", "-o", "%i %T %k"], capture_output=True, text=True).stdout
    return {line.split()[0]: line.split()[1] for line in out.splitlines() if "pretrain_vit" in line}


@pytest.mark.slurm
def test_snakemake_killed_mid_study_then_restarted(slurm, tmp_path):
    env = {**snakemake_env(), "OMP_NUM_THREADS": "1"}
    reference = subprocess.run(_argv(tmp_path / "reference"), env=env, capture_output=True, text=True, cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]

    profile = derive_profile("slurm", tmp_path / "profile", FAST, {"mem_mb": 1000})
    work = tmp_path / "work"
    # The study's dataset as the reference run built it (files, mtimes, Snakemake's records of them): the killed
    # session's scheduler jobs are the pretraining and its rows. The dataset branch on the real schedulers, a job of
    # it cancelled mid-run included, is test_study_on_schedulers.py's; building it again here would only add minutes.
    shutil.copytree(tmp_path / "reference" / "results" / "datasets", work / "results" / "datasets")
    shutil.copytree(tmp_path / "reference" / ".snakemake" / "metadata", work / ".snakemake" / "metadata")
    before = set(_pretrain_jobs())
    with subprocess.Popen(_argv(work, profile), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          cwd=tmp_path, start_new_session=True) as first:  # fmt: skip
        job = wait_until(lambda: next((j for j, s in _pretrain_jobs().items() if j not in before and s == "RUNNING"),
                                      None), 300, what="the pretrain_vit job running")  # fmt: skip
        os.kill(first.pid, signal.SIGKILL)  # the session dies; the job it submitted does not
        first.wait()
    assert _pretrain_jobs()[job] in ("RUNNING", "COMPLETING", "COMPLETED")

    unlock = subprocess.run(_argv(work, profile, "--unlock"), env=env, capture_output=True, text=True, cwd=tmp_path)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    second = subprocess.run(_argv(work, profile), env=env, capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert second.returncode == 0, (second.stdout + second.stderr)[-4000:]

    # the same table as the uninterrupted run
    rows, expected = (pd.read_parquet(root / TARGET) for root in (work, tmp_path / "reference"))
    columns = [c for c in STABLE if c in expected.columns]
    assert columns, list(expected.columns)
    pd.testing.assert_frame_equal(rows[columns], expected[columns])
    # trained once: the rerun's job found the finished checkpoint and resumed from it instead of training again
    (ckpt,) = (work / "results" / "checkpoints" / RUN).iterdir()
    step = int(expected["step"].iloc[0])
    log = (work / f"results/logs/pretrain_vit/{RUN}.log").read_text()
    assert f"resumed from step {step}" in log, log[-2000:]
    assert len([j for j in _pretrain_jobs() if j not in before]) == 2  # the killed session's job and the rerun's
    from pretrainflow.train.run_lock import RunLock

    assert RunLock(ckpt, RUN).try_acquire()  # neither job left the lock held


def _qstat_job(name: str) -> str | None:
    import xml.etree.ElementTree as ET

    from pretrainflow.schedulers import sge as gridengine

    root = ET.fromstring(subprocess.run(gridengine.qstat_argv(), capture_output=True, text=True).stdout)
    return next((j.findtext("JB_job_number") for j in root.iter("job_list")
                 if j.findtext("JB_name") == name and j.findtext("state") == "r"), None)  # fmt: skip


@pytest.mark.sge
def test_restarted_snakemake_follows_the_running_job_on_gridengine(sge, tmp_path):
    # our qsub path (profiles/tsubame): the restarted Snakemake follows the job still running instead of a second qsub
    from cluster_helpers import snakemake_argv
    from test_gridengine_real import FAST as SGE_FAST
    from test_gridengine_real import STOCK_SGE

    profile = derive_profile("tsubame", tmp_path / "profile", SGE_FAST, STOCK_SGE)
    work = tmp_path / "work"
    # part 0 runs until we create out/release (at most 120 s): here, once the restarted Snakemake has followed it
    argv = snakemake_argv(profile, work, config={"parts": "'0 1'", "slow_part": 0})
    env = snakemake_env()
    with subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
                          start_new_session=True) as first:  # fmt: skip
        job = wait_until(lambda: _qstat_job("pf.part.0"), 120, what="part 0 running")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    unlock = subprocess.run([*argv, "--unlock"], env=env, capture_output=True, text=True, cwd=tmp_path)
    assert unlock.returncode == 0, unlock.stderr[-2000:]
    log, followed = tmp_path / "second.log", f"with external jobid '{job}'"  # followed, not submitted again
    with log.open("w") as sink, subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                                 cwd=tmp_path) as second:  # fmt: skip
        try:
            wait_until(lambda: followed in log.read_text() or second.poll() is not None, 120, what="the restart")
            running_when_followed = _qstat_job("pf.part.0")
        finally:
            (work / "out").mkdir(exist_ok=True)
            (work / "out" / "release").touch()  # part 0 may finish now
        second.wait(timeout=300)
    output = log.read_text()
    assert second.returncode == 0, output[-4000:]
    assert followed in output, output[-4000:]
    assert running_when_followed == job  # the first session's job, still running when the restart followed it
    part = dict(item.split("=", 1) for item in (work / "out" / "part-0.txt").read_text().split())
    assert part["job"] == job and part["attempt"] == "1", part  # the result is the first job's, written once
