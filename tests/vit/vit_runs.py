"""Helpers of the multi-process tests: build a tiny real dataset, run the CLI, read outputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "pretrainflow.cli"]


def cli_env() -> dict[str, str]:
    # One intra-op thread per rank: the tests share 2 cores with everything else.
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src")}


def pretrain_spec(dataset_spec: dict, **overrides) -> dict:
    spec = {
        "kind": "vit",
        "run_id": "vit-test-fdb",
        "seed": 0,
        "dataset": dataset_spec["name"],
        "dataset_spec": dataset_spec,
        "model": {"name": "vit_test", "image_size": 16, "patch_size": 4, "drop_path": 0.1},
        "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.05, "grad_clip": 1.0},
        "schedule": {"epochs": 3, "warmup_epochs": 1, "min_lr": 1e-5},
        "batch": {"micro": 4, "global": 8},  # 4 x 1 accumulation x 2 ranks
        "zero_stage": 2,
        "precision": "fp32",
        "augment": {
            "crop_scale": [0.5, 1.0],
            "randaugment_ops": 1,
            "random_erasing": 0.25,
            "mixup": 0.8,
            "cutmix": 1.0,
        },
        "devices": {"nodes": 1, "gpus_per_node": 0, "cpu_ranks": 2},
        "checkpoint": {"every_steps": 2, "keep": 2},
        "log": {"every_steps": 2},
    }
    for key, value in overrides.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) and isinstance(spec.get(key), dict) else value
    return spec


def pretrain_argv(spec: dict, dataset: Path, out: Path, checkpoints: Path) -> list[str]:
    return [
        *CLI,
        "pretrain-vit",
        "--spec",
        json.dumps(spec),
        "--dataset",
        str(dataset),
        "--out",
        str(out),
        "--checkpoints",
        str(checkpoints),
    ]


def run_cli(argv: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=cli_env(), capture_output=True, text=True, timeout=timeout, cwd=REPO)


def weights(path: Path) -> dict:
    return load_file(str(path))
