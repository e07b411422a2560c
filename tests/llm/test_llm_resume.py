"""Kill-and-resume with megatron-core dist_checkpointing: SIGKILL mid-run, walltime signal, and a change of TP degree.

Each resumed run must reproduce the uninterrupted run's loss curve (same data order, same optimizer state), with every
step logged once.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from llm_helpers import REPO, cli_env, pretrain, read_losses, run_spec

from pretrainflow.train.checkpoints import latest

pytestmark = pytest.mark.slow


def start_pretrain(corpora: Path, work: Path, spec: dict) -> subprocess.Popen:
    argv = [sys.executable, "-m", "pretrainflow.cli", "pretrain-llm", "--spec", json.dumps(spec), "--out",
            str(work / "pretrain" / spec["run_id"]), "--corpora-dir", str(corpora), "--checkpoints",
            str(work / "checkpoints")]  # fmt: skip
    return subprocess.Popen(argv, cwd=REPO, env=cli_env(spec), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip


def wait_for_step(root: Path, step: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = root / "metrics.jsonl"
        if metrics.is_file() and len(metrics.read_text().splitlines()) >= step:
            return
        if proc.poll() is not None:
            raise AssertionError(f"training ended before step {step}:\n{proc.stdout.read()[-3000:]}")
        time.sleep(0.01)
    raise AssertionError(f"step {step} not reached in {timeout} s")


def checkpoint_root(work: Path, spec: dict) -> Path:
    from pretrainflow.train.llm.cli import checkpoint_dir

    return checkpoint_dir(work / "checkpoints", spec)


def assert_same_curve(losses: dict[int, float], reference: dict[int, float], tol: float) -> None:
    assert sorted(losses) == sorted(reference)
    for step, loss in reference.items():
        assert losses[step] == pytest.approx(loss, abs=tol), f"step {step}: {losses[step]} vs {loss}"


def test_sigkill_then_resume_reproduces_the_curve(corpora_dir, tp1_run, tmp_path):
    # checkpoint every step: a SIGKILL at any instant leaves the last complete one as "latest"
    spec = run_spec("killed", checkpoint={"every_steps": 1})
    root = checkpoint_root(tmp_path, spec)
    proc = start_pretrain(corpora_dir, tmp_path, spec)
    wait_for_step(root, 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at, _ = latest(root)
    assert 1 <= killed_at < 8, "the kill must land mid-run"
    assert not (tmp_path / "pretrain" / "killed" / "model.safetensors").exists()  # nothing looks complete
    proc2, out, _ = pretrain(corpora_dir, tmp_path, spec)
    assert f"at step {killed_at}" in proc2.stdout
    assert_same_curve(read_losses(root), read_losses(tp1_run[2]), tol=1e-5)
    assert json.loads((out / "summary.json").read_text())["step"] == 8


def test_walltime_signal_checkpoints_and_exits_75(corpora_dir, tp2_run, tmp_path):
    from pretrainflow.train.signals import EXIT_CHECKPOINTED

    spec = run_spec("signalled", tensor=2, ranks=2, checkpoint={"every_steps": 1})
    root = checkpoint_root(tmp_path, spec)
    proc = start_pretrain(corpora_dir, tmp_path, spec)
    wait_for_step(root, 2, proc)
    proc.send_signal(signal.SIGUSR1)  # what Slurm --signal / the PBS watchdog sends before the walltime
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == EXIT_CHECKPOINTED, output[-3000:]
    assert "rerun to resume" in output
    stopped_at, _ = latest(root)
    assert 2 <= stopped_at < 8
    _, out, _ = pretrain(corpora_dir, tmp_path, spec)
    assert_same_curve(read_losses(root), read_losses(tp2_run[2]), tol=1e-5)
    assert (out / "model.safetensors").is_file()


def test_resume_under_another_tensor_parallel_degree(corpora_dir, tp1_run, tmp_path):
    # 4 steps at TP=2 on 2 ranks, then steps 5-8 at TP=1 from the same dist checkpoint (resharded on load)
    from pretrainflow.train.signals import EXIT_CHECKPOINTED

    spec2 = run_spec("reshard", tensor=2, ranks=2)
    proc, _, root = pretrain(corpora_dir, tmp_path, spec2, "--max-steps", "4", check=False)
    assert proc.returncode == EXIT_CHECKPOINTED, proc.stdout[-3000:]
    spec1 = run_spec("reshard", tensor=1, ranks=1)
    argv = [sys.executable, "-m", "pretrainflow.launch.worker", "pretrainflow.train.llm.pretrain:train_worker", "--spec",
            json.dumps(spec1), "--corpora-dir", str(corpora_dir), "--checkpoint-dir", str(root)]  # fmt: skip
    from pretrainflow.launch.local import free_port

    env = dict(
        cli_env(spec1), RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", LOCAL_WORLD_SIZE="1", MASTER_PORT=str(free_port())
    )
    done = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
    assert "at step 4" in done.stdout
    assert_same_curve(read_losses(root), read_losses(tp1_run[2]), tol=2e-4)
