"""The wrapper job script, executed for real (no scheduler needed): the watchdog sends SIGUSR1 before the walltime,
the training process (which installs a handler) checkpoints and exits 75, the shells in between (Snakemake's place)
survive the signal, and the exit code lands in the status file and the wrapper's own exit status."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from pretrainflow.schedulers import jobscript
from pretrainflow.schedulers.job import SubmitJob
from pretrainflow.schedulers.resources import ResourceRequest, place
from pretrainflow.schedulers.settings import SiteSettings

TRAINER = """
import signal, sys, time
got = []
signal.signal(signal.SIGUSR1, lambda signum, frame: got.append(signum))
open("started", "w").close()
deadline = time.time() + 30
while not got and time.time() < deadline:
    time.sleep(0.05)
open("checkpoint", "w").write(f"signal {got}")
sys.exit(75 if got else 1)
"""


def _wrapper(tmp_path: Path, margin_s: int) -> Path:
    (tmp_path / "train.py").write_text(TRAINER)
    # stands in for Snakemake's job script: a shell that runs the trainer and reports its exit code
    payload = tmp_path / "snakejob.sh"
    payload.write_text(
        f'#!/bin/sh\n{sys.executable} train.py\ncode=$?\necho "shell saw $code" > shell.log\nexit $code\n'
    )
    job = SubmitJob(
        name="pf.test",
        script=tmp_path / "wrapper.sh",
        log=tmp_path / "log",
        workdir=tmp_path,
        placement=place("abci", ResourceRequest(runtime_min=1)),
        settings=SiteSettings(group="g", signal_margin_s=margin_s),
    )
    text = jobscript.render(
        job,
        scheduler="pbs",
        payload=["/bin/sh", str(payload)],
        status_dir=tmp_path / "status",
        python_bin=Path(sys.executable).parent,
    )
    job.script.write_text(text)
    return job.script


def test_watchdog_signals_training_before_walltime(tmp_path):
    # 1 min walltime - 58 s margin: SIGUSR1 after 2 s
    script = _wrapper(tmp_path, margin_s=58)
    start = time.monotonic()
    result = subprocess.run(
        ["/bin/bash", str(script)], cwd=tmp_path, env={"PBS_JOBID": "5.pbs1", "PATH": "/usr/bin:/bin"}, timeout=60
    )
    elapsed = time.monotonic() - start
    assert result.returncode == 75  # the checkpoint exit code travels through the shell and the wrapper
    assert (tmp_path / "checkpoint").read_text() == "signal [10]"  # SIGUSR1 = 10 on Linux
    assert (tmp_path / "shell.log").read_text().strip() == "shell saw 75"  # the intermediate shell survived USR1
    assert (tmp_path / "status" / "5.pbs1.exit").read_text().strip() == "75"
    assert 1.5 < elapsed < 20


def test_scheduler_signal_to_the_wrapper_is_forwarded(tmp_path):
    # Slurm --signal B:USR1 and Grid Engine s_rt signal the job shell itself: the wrapper forwards it to the payload
    script = _wrapper(tmp_path, margin_s=0)  # no watchdog
    proc = subprocess.Popen(
        ["/bin/bash", str(script)], cwd=tmp_path, env={"SLURM_JOB_ID": "9", "PATH": "/usr/bin:/bin"}
    )
    deadline = time.monotonic() + 20
    while not (tmp_path / "started").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(10)
    assert proc.wait(timeout=20) == 75
    assert (
        tmp_path / "status" / f"{proc.pid}.exit"
    ).read_text().strip() == "75"  # scheduler pbs: $PBS_JOBID unset -> $$
