"""One writer per checkpoint directory (pretrainflow.train.run_lock), with real processes.

- a second holder is refused with the run and the holder (host, pid, start time) named; a bounded wait succeeds when
  the holder ends in time; a SIGKILLed holder leaves the lock free at once;
- the training entry points take it: a second copy of a running 2-rank ViT pretraining exits 73 on both of its ranks
  before writing anything, and the first goes on to a complete checkpoint; a fine-tune and the LLM worker (pretraining
  and SFT) stop before writing into a held checkpoint directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pretrainflow.train.run_lock import EXIT_RUN_LOCKED, LOCK_NAME, RunLock, RunLocked, hold_run_lock

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
HOLDER = (
    "import sys, time\n"
    "from pretrainflow.train.run_lock import RunLock\n"
    "lock = RunLock(sys.argv[1], 'held-run')\n"
    "assert lock.try_acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(float(sys.argv[2]))\n"
)


def _holder(directory: Path, seconds: float = 600) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(directory), str(seconds)], env=ENV,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_second_holder_is_refused_with_the_holder_named(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(RunLocked) as refused:
            RunLock(tmp_path, "vit-b-fdb1k").acquire(wait_s=0.5)
        message = str(refused.value)
        assert refused.value.code == EXIT_RUN_LOCKED == 73
        assert message.startswith(f"run vit-b-fdb1k: another copy of this run holds {tmp_path / LOCK_NAME}")
        assert f"pid {holder.pid} on host {socket.gethostname()}" in message and "started 20" in message
        # the refused copy did not overwrite the holder's record
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == holder.pid
    finally:
        holder.kill()
        holder.wait()


def test_bounded_wait_gets_the_lock_when_the_holder_ends(tmp_path):
    holder = _holder(tmp_path, seconds=1.0)
    started = time.monotonic()
    lock = RunLock(tmp_path, "r")
    lock.acquire(wait_s=30)
    assert 0.3 < time.monotonic() - started < 20
    assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    lock.release()
    holder.wait()


def test_sigkilled_holder_leaves_the_lock_free(tmp_path):
    holder = _holder(tmp_path)
    assert not RunLock(tmp_path, "r").try_acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    lock = RunLock(tmp_path, "r")
    assert lock.try_acquire()  # no stale lock, nothing to clean by hand
    lock.release()


def test_lock_is_exclusive_between_open_files_of_one_process(tmp_path, monkeypatch):
    # flock is per open file: the in-process launcher and a leftover holder in the same process conflict too
    monkeypatch.setenv("PRETRAINFLOW_RUN_LOCK_WAIT_S", "0")
    with hold_run_lock(tmp_path, "r") as first:
        assert first is not None and first.held
        with pytest.raises(RunLocked), hold_run_lock(tmp_path, "r"):
            pass
    with hold_run_lock(tmp_path, "r"):  # released at the end of the block
        pass


def test_bad_wait_setting_names_the_variable(tmp_path, monkeypatch):
    from pretrainflow.errors import PretrainflowError

    monkeypatch.setenv("PRETRAINFLOW_RUN_LOCK_WAIT_S", "soon")
    with pytest.raises(PretrainflowError, match="PRETRAINFLOW_RUN_LOCK_WAIT_S: expected seconds >= 0, got 'soon'"):
        with hold_run_lock(tmp_path, "r"):
            pass


@pytest.mark.slow
def test_second_copy_of_a_running_vit_pretraining_writes_nothing(tmp_path):
    sys.path.insert(0, str(REPO / "tests" / "vit"))
    from vit_runs import pretrain_argv, pretrain_spec

    from pretrainflow.datasets.build import build_dataset
    from pretrainflow.train.checkpoints import MARKER, complete_tags, latest

    dataset_spec = {"name": "fdb-test", "family": "fractaldb", "num_classes": 4, "instances_per_class": 8,
                    "image_size": 16, "num_shards": 2, "seed": 0}  # fmt: skip
    build_dataset(dataset_spec, tmp_path / "data")
    # long enough that it is still training when the second copy arrives: SIGUSR1 ends it with a checkpoint
    spec = pretrain_spec(dataset_spec, schedule={"epochs": 1000}, zero_stage=0)
    log = tmp_path / "first.log"  # a file, not a pipe: nobody reads it while it trains, and a full pipe would block it
    with log.open("w") as sink:
        first = subprocess.Popen(pretrain_argv(spec, tmp_path / "data", tmp_path / "out1", tmp_path / "ckpt"),
                                 env=ENV, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None:
            dirs = list((tmp_path / "ckpt" / spec["run_id"]).glob("*/"))  # {run}/{hash12} of the resolved spec
            if dirs and complete_tags(dirs[0]):
                break
            time.sleep(0.5)
        else:
            pytest.fail(f"first copy made no checkpoint (exit {first.poll()}):\n{log.read_text()[-3000:]}")
        ckpt = dirs[0]
        holder_pid = json.loads((ckpt / LOCK_NAME).read_text())["pid"]
        second = subprocess.run(pretrain_argv(spec, tmp_path / "data", tmp_path / "out2", tmp_path / "ckpt"),
                                env={**ENV, "PRETRAINFLOW_RUN_LOCK_WAIT_S": "1"}, capture_output=True, text=True,
                                timeout=240)  # fmt: skip
        assert second.returncode == EXIT_RUN_LOCKED, second.stdout[-2000:] + second.stderr[-2000:]
        assert f"run vit-test-fdb: another copy of this run holds {ckpt / LOCK_NAME} (pid {holder_pid}" in second.stderr
        assert "Traceback" not in second.stderr  # both of its ranks left cleanly, rank 1 included
        assert not (tmp_path / "out2").exists()
        assert json.loads((ckpt / LOCK_NAME).read_text())["pid"] == holder_pid
        assert first.poll() is None  # the first copy never noticed
        os.killpg(first.pid, signal.SIGUSR1)  # a walltime warning: checkpoint and exit 75
        first.wait(timeout=240)
        output = log.read_text()
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
    assert first.returncode == 75, output[-3000:]
    step, path = latest(ckpt)
    assert json.loads((path / MARKER).read_text())["step"] == step and f"checkpointed at step {step}" in output
    assert all((ckpt / tag / MARKER).is_file() for tag in complete_tags(ckpt))
    assert RunLock(ckpt, spec["run_id"]).try_acquire()  # the first copy released it on exit


@pytest.mark.slow
def test_llm_worker_stops_before_its_data_cache(tmp_path):
    holder = _holder(tmp_path / "ckpt")
    try:
        spec = {"run_id": "gpt-locked", "kind": "llm", "model": {"name": "gpt_micro"}, "corpus": "docs",
                "seq_length": 32, "batch": {"micro": 4, "global": 8}, "schedule": {"train_steps": 8},
                "devices": {"cpu_ranks": 1}}  # fmt: skip
        argv = [sys.executable, "-m", "pretrainflow.launch.worker", "pretrainflow.train.llm.pretrain:train_worker",
                "--spec", json.dumps(spec), "--corpora-dir", str(tmp_path / "no-corpora"),
                "--checkpoint-dir", str(tmp_path / "ckpt")]  # fmt: skip
        proc = subprocess.run(argv, env={**ENV, "PRETRAINFLOW_RUN_LOCK_WAIT_S": "0"}, capture_output=True, text=True,
                              timeout=240)  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == EXIT_RUN_LOCKED, proc.stderr[-3000:]
    assert f"run gpt-locked: another copy of this run holds {tmp_path / 'ckpt' / LOCK_NAME} (pid {holder.pid}" in (
        proc.stderr
    )
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [LOCK_NAME]  # no data_cache, no tag


@pytest.mark.slow
def test_finetune_second_copy_stops_before_its_checkpoints(tmp_path):
    from pretrainflow.study.layout import checkpoint_unit
    from pretrainflow.train.checkpoints import unit_dir
    from pretrainflow.train.vit.spec import FinetuneSpec, check_finetune

    recipe = check_finetune({"tasks": ["digits"], "recipe": {"epochs": 1}}, "finetune")["recipe"]
    spec = FinetuneSpec.from_dict({"run_id": "scratch-vit-micro", "source": "scratch", "model": {"name": "vit_micro"},
                                   "task": "digits", "task_spec": {"kind": "digits", "name": "digits"},
                                   "recipe": recipe, "seed": 0, "pretrain_spec": None})  # fmt: skip
    ckpt = unit_dir(tmp_path / "ckpt", checkpoint_unit(spec.run_id, task=spec.task), spec.to_dict())
    holder = _holder(ckpt)
    try:
        argv = [sys.executable, "-m", "pretrainflow.cli", "finetune", "--spec", json.dumps(spec.to_dict()),
                "--out", str(tmp_path / "out"), "--checkpoints", str(tmp_path / "ckpt")]  # fmt: skip
        proc = subprocess.run(argv, env={**ENV, "PRETRAINFLOW_RUN_LOCK_WAIT_S": "0"}, capture_output=True, text=True,
                              timeout=240)  # fmt: skip
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == EXIT_RUN_LOCKED, proc.stderr[-3000:]
    assert f"run scratch-vit-micro/digits: another copy of this run holds {ckpt / LOCK_NAME} (pid {holder.pid}" in (
        proc.stderr
    )
    assert sorted(p.name for p in ckpt.iterdir()) == [LOCK_NAME] and not (tmp_path / "out").exists()
