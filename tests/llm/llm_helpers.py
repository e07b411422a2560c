"""Helpers of the LLM tests: the test corpus spec, run specs, and pretrainflow CLI calls in subprocesses.

Training always runs in fresh processes (as in production): torch.distributed and megatron-core's parallel state are
process-global, and 2-rank tensor-parallel runs need 2 processes anyway.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CORPUS = "docs"
CORPUS_SPEC = {
    "name": CORPUS,
    "source": {"kind": "python-stdlib-docstrings", "max_documents": 400},
    "tokenizer": {"vocab_size": 512, "min_frequency": 2},
    "split": "90,5,5",
    "seed": 0,
    "num_shards": 2,
}


def run_spec(run_id: str = "t", *, tensor: int = 1, ranks: int = 1, steps: int = 8, **extra) -> dict:
    """A tiny resolved-looking LLM run spec on the test corpus (gpt_micro, 32-token sequences, 8 per step)."""
    spec = {
        "run_id": run_id, "kind": "llm", "seed": 0, "model": {"name": "gpt_micro"}, "corpus": CORPUS,
        "parallel": {"tensor": tensor, "pipeline": 1}, "seq_length": 32, "batch": {"micro": 4, "global": 8},
        "optimizer": {"name": "adamw", "lr": 3e-3, "weight_decay": 0.01},
        "schedule": {"train_steps": steps, "warmup_steps": 2, "min_lr": 3e-4}, "devices": {"cpu_ranks": ranks},
        "eval": {"iters": 2}, "corpus_spec": CORPUS_SPEC,
    }  # fmt: skip
    spec.update(extra)
    return spec


def cli_env(spec: dict | None = None) -> dict[str, str]:
    """The environment of a pretrainflow subprocess; GPUs hidden for a CPU-shaped run (``devices.gpus_per_node`` 0),
    which a CUDA machine would refuse, so the CPU tests mean the same on a GPU node."""
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    if spec is not None and not spec.get("devices", {}).get("gpus_per_node"):
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def cli(*args: str, check: bool = True, spec: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    """Run ``pretrainflow <args>`` in a subprocess; returns the completed process (stdout+stderr in .stdout)."""
    proc = subprocess.run(
        [sys.executable, "-m", "pretrainflow.cli", *args],
        cwd=kwargs.pop("cwd", REPO), env=cli_env(spec), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=kwargs.pop("timeout", 300), **kwargs,
    )  # fmt: skip
    if check and proc.returncode != 0:
        raise AssertionError(f"pretrainflow {' '.join(args[:1])} failed ({proc.returncode}):\n{proc.stdout[-4000:]}")
    return proc


def read_losses(checkpoint_root: Path) -> dict[int, float]:
    lines = (checkpoint_root / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    steps = [r["step"] for r in records]
    assert len(steps) == len(set(steps)), f"a step was logged twice: {steps}"
    return {r["step"]: r["loss"] for r in records}


def checkpoint_root(checkpoints: Path, spec: dict) -> Path:
    from pretrainflow.train.llm.cli import checkpoint_dir

    return checkpoint_dir(checkpoints, spec)


def pretrain(corpora: Path, workdir: Path, spec: dict, *extra: str, check: bool = True):
    """pretrain-llm through the CLI; returns (completed process, run dir, checkpoint root)."""
    out = workdir / "pretrain" / spec["run_id"]
    checkpoints = workdir / "checkpoints"
    proc = cli("pretrain-llm", "--spec", json.dumps(spec), "--out", str(out), "--corpora-dir", str(corpora),
               "--checkpoints", str(checkpoints), *extra, check=check, spec=spec)  # fmt: skip
    return proc, out, checkpoint_root(checkpoints, spec)
