"""submitit executors: our Grid Engine executor on the real Grid Engine (result, and checkpoint + requeue under the
same job id when the soft walltime signal arrives), Slurm through `pretrainflow submit`'s executor on the real Slurm
(requeue after a timeout signal), and the PBS executor against a recording qsub / qstat that follow PBS's documented
formats (PBS cannot run here)."""

from __future__ import annotations

import json
import os
import pickle
import stat
import sys
from pathlib import Path

import pytest
from submitit_tasks import Sleeper, add

from pretrainflow.errors import ConfigError
from pretrainflow.io import canonical_json
from pretrainflow.schedulers.settings import SiteSettings
from pretrainflow.schedulers.submit import RunTask, make_executor, run_tasks
from pretrainflow.schedulers.submitit_plugins import PBSExecutor, SGEExecutor
from pretrainflow.study.load import load_study

HERE = Path(__file__).parent
REPO = HERE.parents[1]
JOB_PATH = {"PYTHONPATH": os.pathsep.join([str(HERE), str(REPO / "src")])}


@pytest.mark.sge
def test_gridengine_executor_runs_and_requeues(sge, tmp_path):
    # 1 min walltime, 50 s margin -> s_rt = 10 s: Grid Engine sends SIGUSR1 while Sleeper(40) sleeps
    settings = SiteSettings(group_flag=None, walltime_signal="s_rt", signal_margin_s=50, env=JOB_PATH)
    executor = SGEExecutor(tmp_path / "jobs", settings=settings)
    executor.update_parameters(timeout_min=1, mem_gb=0.2, name="add")
    assert executor.submit(add, 2, 3).result() == 5
    job = executor.submit(Sleeper(40))
    result = job.result()
    # checkpointed, exited 99, rescheduled by Grid Engine and resumed under the same job id
    assert result == {"state": "resumed", "resumed": 1, "job": job.job_id}
    logs = Path(job.paths.stderr).read_text() + Path(job.paths.stdout).read_text()
    assert "Caught signal SIGUSR1" in logs


@pytest.mark.slurm
@pytest.mark.slow
def test_slurm_executor_requeues_after_timeout_signal(slurm, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", JOB_PATH["PYTHONPATH"])
    executor = make_executor("slurm", tmp_path / "jobs", {"devices": {"mem_mb": 200, "runtime_minutes": 5}}, {}, 2)
    job = executor.submit(Sleeper(60))
    from cluster_helpers import wait_until

    def started() -> bool:  # submitit logs "Starting with JobEnvironment(...)" to the job's stdout or stderr
        logs = [Path(job.paths.stdout), Path(job.paths.stderr)]
        return any(p.exists() and "Starting with" in p.read_text() for p in logs)

    wait_until(started, 90, what="submitit started inside the Slurm job")
    job._interrupt(timeout=True)  # submitit's own test hook: `scancel --signal USR2` as Slurm does before the limit
    assert job.result() == {"state": "resumed", "resumed": 1, "job": job.job_id}  # requeued, same id


FAKE_PBS = r"""#!{python}
# qsub: record argv, start the job script in the background with PBS's variables (as a server would, after qsub has
# returned), print the id. qstat -x -f -F json: "R" while it runs, then "F" with its Exit_status.
import json, os, subprocess, sys
from pathlib import Path
state = Path(os.environ["FAKE_PBS_DIR"])
if Path(sys.argv[0]).name == "qsub":
    (state / "qsub.json").write_text(json.dumps(sys.argv[1:]))
    runner = f'sleep 1; /bin/bash "$0"; echo $? > {state}/exit.tmp; mv {state}/exit.tmp {state}/exit'
    subprocess.Popen(["/bin/bash", "-c", runner, sys.argv[-1]], env=dict(os.environ, PBS_JOBID="4242.pbs1"),
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    print("4242.pbs1")
else:
    done = (state / "exit").exists()
    info = {"job_state": "F", "Exit_status": int((state / "exit").read_text())} if done else {"job_state": "R"}
    print(json.dumps({"Jobs": {"4242.pbs1": info}}))
"""


def test_pbs_executor_against_documented_qsub_and_qstat(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("qsub", "qstat"):
        tool = bin_dir / name
        tool.write_text(FAKE_PBS.replace("{python}", sys.executable))
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PBS_DIR", str(tmp_path))
    executor = PBSExecutor(tmp_path / "jobs", settings=SiteSettings(group="gaa50000", env=JOB_PATH))
    executor.update_parameters(gpus_per_node=8, timeout_min=600, name="vit-tiny")
    job = executor.submit(add, 20, 22)
    assert job.job_id == "4242.pbs1" and job.result() == 42
    argv = json.loads((tmp_path / "qsub.json").read_text())
    assert argv[:10] == ["-N", "pf.vit-tiny", "-P", "gaa50000", "-q", "rt_HF", "-l", "select=1:mpiprocs=8", "-l",
                         "walltime=10:00:00"]  # fmt: skip
    with pytest.raises(ConfigError, match="abci cannot give one node 9 GPUs"):
        executor.update_parameters(gpus_per_node=9)


def test_run_tasks_check_before_submitting(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    study = REPO / "config" / "test.yaml"
    with pytest.raises(ConfigError, match="manifest.json missing: build it first"):
        run_tasks(str(study), ["vit-test-fdb"], None)
    with pytest.raises(ConfigError, match="'nope' is not a run"):
        run_tasks(str(study), ["nope"], None)
    with pytest.raises(ConfigError, match="no runs of ablation 'nope'"):
        run_tasks(str(study), [], "nope")
    manifest = tmp_path / "results/datasets/fdb-test/manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text("{}")
    tasks, specs = run_tasks(str(study), [], "lr")
    assert [t.run_id for t in tasks] == ["vit-test-fdb.lr-0.0003"]
    assert tasks[0].argv[:1] == ["pretrain-vit"] and tasks[0].argv[-4:] == [
        "--out", "results/pretrain/vit-test-fdb.lr-0.0003", "--checkpoints", "results/checkpoints"
    ]  # fmt: skip
    # the study's W&B section and name travel with the task, as the workflow passes them to its jobs
    assert tasks[0].argv[tasks[0].argv.index("--tracking") + 1] == canonical_json(load_study(str(study)).tracking)
    assert tasks[0].study == "test"
    # a requeued task carries no process handle
    task = RunTask(run_id="r", argv=["x"], summary="s")
    task.proc = object()
    assert pickle.loads(pickle.dumps(task)).proc is None


def test_run_task_runs_its_command_under_the_study_name_also_when_requeued(tmp_path, monkeypatch):
    import pretrainflow.schedulers.submit as submit

    seen = {}

    class Recorded:
        def __init__(self, argv, env):
            seen.update(argv=argv, env=env)

        def wait(self):
            return 0

        def poll(self):  # the training has ended by the time the requeue is prepared
            return 0

    monkeypatch.setattr(submit.subprocess, "Popen", Recorded)
    summary = tmp_path / "summary.json"
    summary.write_text('{"done": true}')
    task = RunTask(run_id="r", argv=["pretrain-vit", "--tracking", "{}"], summary=str(summary), study="fdsl")
    assert task() == {"done": True}
    assert seen["argv"][-3:] == ["pretrain-vit", "--tracking", "{}"] and seen["env"]["PRETRAINFLOW_STUDY"] == "fdsl"
    requeued = task.checkpoint().function
    assert (requeued.study, requeued.argv, requeued.proc) == ("fdsl", task.argv, None)
