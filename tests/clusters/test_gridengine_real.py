"""The toy study through a profile derived from profiles/tsubame, on the real Grid Engine started by
scripts/start_gridengine.sh (stock SGE: no `-g`, so the derived profile sets site_group_flag: none; TSUBAME's resource
types exist there as consumable complexes). Also the status path on its own: qstat -xml while queued/running, qacct once
gone, and a job deleted while pending (no accounting record ever) -> failed after the grace period.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from cluster_helpers import derive_profile, snakemake_argv, snakemake_env, wait_until

from pretrainflow.schedulers import commands
from pretrainflow.schedulers import sge as gridengine

pytestmark = pytest.mark.sge

FAST = {
    "seconds-between-status-checks": 2,
    "max-status-checks-per-second": 5,
    "latency-wait": 5,
    "jobs": 4,
    "restart-times": 1,
    "keep-going": False,
    "cluster-generic-status-cmd": "pretrainflow sched status --site tsubame --grace-seconds 20",
}
STOCK_SGE = {"mem_mb": 200, "site_group_flag": "none", "site_walltime_signal": "s_rt", "site_signal_margin_s": 60}


def _parts(workdir) -> dict[str, dict[str, str]]:
    rows = {}
    for line in (workdir / "out" / "summary.txt").read_text().splitlines():
        fields = dict(item.split("=", 1) for item in line.split())
        rows[fields["part"]] = fields
    return rows


def test_toy_study_completes_on_gridengine(sge, tmp_path):
    profile = derive_profile("tsubame", tmp_path / "profile", FAST, STOCK_SGE)
    work = tmp_path / "work"
    result = subprocess.run(
        snakemake_argv(profile, work, config={"parts": "'0 1'"}),
        env=snakemake_env(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "with external jobid" in log  # submitted through `pretrainflow sched submit` -> qsub
    parts = _parts(work)
    assert sorted(parts) == ["0", "1"]
    assert all(row["job"].isdigit() and row["site"] == "tsubame" for row in parts.values()), parts
    # the scheduler agrees: every job left an accounting record with exit 0, and asked for a TSUBAME resource type
    for row in parts.values():
        acct = subprocess.run(["qacct", "-j", row["job"]], capture_output=True, text=True).stdout
        assert gridengine.parse_qacct(acct) == "success", acct
        category = next(line for line in acct.splitlines() if line.startswith("category"))
        # 5 min runtime -> h_rt=300 s; soft limit s_rt = 300 - 60 s margin (SIGUSR1 before the hard limit)
        assert "cpu_4=1" in category and "h_rt=300" in category and "s_rt=240" in category, category


def _qsub(tmp_path, body: str, *extra: str) -> str:
    script = tmp_path / "job.sh"
    script.write_text(f"#!/bin/bash\n{body}\n")
    argv = [
        "qsub",
        "-terse",
        "-N",
        "pf.test",
        "-l",
        "cpu_4=1",
        "-l",
        "h_rt=00:05:00",
        "-j",
        "y",
        "-o",
        str(tmp_path / "job.log"),
        "-S",
        "/bin/bash",
        *extra,
        str(script),
    ]
    return gridengine.parse_submit_output(subprocess.run(argv, capture_output=True, text=True, check=True).stdout)


def _final(job_id: str, workdir) -> str | None:
    answer = commands.status("tsubame", job_id, workdir=workdir)
    return None if answer == "running" else answer


def test_status_path_qstat_then_qacct(sge, tmp_path):
    # raw jobs without our wrapper: no exit-code file, so the answer must come from qstat and then qacct
    ok = _qsub(tmp_path, "sleep 3; exit 0")
    bad = _qsub(tmp_path, "sleep 1; exit 3")
    assert commands.status("tsubame", ok, workdir=tmp_path) == "running"  # queued or running: in qstat -xml
    assert wait_until(lambda: _final(bad, tmp_path), 60, what="bad job") == "failed"
    assert wait_until(lambda: _final(ok, tmp_path), 60, what="ok job") == "success"
    assert "exit_status  3" in subprocess.run(["qacct", "-j", bad], capture_output=True, text=True).stdout


def test_job_deleted_while_pending_fails_after_grace(sge, tmp_path):
    held = _qsub(tmp_path, "exit 0", "-h")  # user hold: stays pending ("hqw")
    assert commands.status("tsubame", held, workdir=tmp_path, grace_s=2) == "running"
    subprocess.run(["qdel", held], check=True, capture_output=True)
    # gone from qstat and never in qacct: "running" during the grace period, then "failed"
    wait_until(
        lambda: (
            held
            not in gridengine.parse_qstat_xml(
                subprocess.run(gridengine.qstat_argv(), capture_output=True, text=True).stdout
            )
        ),
        30,
        what="qdel",
    )
    assert commands.status("tsubame", held, workdir=tmp_path, grace_s=2) == "running"
    time.sleep(2.5)
    assert commands.status("tsubame", held, workdir=tmp_path, grace_s=2) == "failed"
