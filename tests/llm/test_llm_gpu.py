"""The GPU path (megatron-core DDP, distributed optimizer, pipeline schedules, TE spec): runs only where CUDA exists.

Not exercised on the CPU-only machines this project was developed on; CI on a GPU node runs it with `-m gpu`.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from llm_helpers import pretrain, read_losses, run_spec

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_gpu_training_learns_checkpoints_and_publishes(corpora_dir, tmp_path):
    spec = run_spec("gpu", devices={"gpus_per_node": 1}, checkpoint={"every_steps": 4})
    proc, out, root = pretrain(corpora_dir, tmp_path, spec, "--max-steps", "4", check=False)
    assert proc.returncode == 75, proc.stdout[-3000:]  # stopped after step 4 with a checkpoint
    proc, out, root = pretrain(corpora_dir, tmp_path, spec)  # resumes under the distributed optimizer
    assert "at step 4" in proc.stdout
    losses = read_losses(root)
    assert sorted(losses) == list(range(1, 9)) and all(math.isfinite(v) for v in losses.values())
    assert losses[8] < losses[1]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["devices"].startswith("1 x ")
    assert summary["mfu"] is None or 0 < summary["mfu"] < 1  # None for a GPU missing from PEAK_BF16_FLOPS
