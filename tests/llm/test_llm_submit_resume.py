"""`pretrainflow submit` and the Snakemake rule resume an LLM run from one checkpoint directory.

The submitted job is stopped after 2 of 4 steps (as a walltime signal stops it: checkpoint, exit 75); then the
`pretrain_llm` rule of the same study runs the same run and must resume at step 2 from that checkpoint, not start over.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from llm_helpers import REPO, cli, cli_env

from pretrainflow.schedulers.submit import run_tasks
from pretrainflow.train.checkpoints import latest
from pretrainflow.train.llm.cli import checkpoint_dir
from pretrainflow.train.signals import EXIT_CHECKPOINTED

pytestmark = pytest.mark.slow

STUDY = """\
study: submit-resume
seed: 0
corpora:
  docs:                        # the corpus of the session fixture (tests/llm/conftest.py corpora_dir)
    source: {kind: python-stdlib-docstrings, max_documents: 400}
    tokenizer: {vocab_size: 512, min_frequency: 2}
    split: "90,5,5"
    num_shards: 2
pretrain:
  gpt-resume:
    kind: llm
    model: {name: gpt_micro}
    corpus: docs
    seq_length: 32
    batch: {micro: 4, global: 8}
    optimizer: {name: adamw, lr: 3.0e-3, weight_decay: 0.01}
    schedule: {train_steps: 4, warmup_steps: 1, min_lr: 3.0e-4}
    devices: {cpu_ranks: 1}
    eval: {iters: 2}
"""


def test_submit_and_the_rule_resume_from_the_same_checkpoint(corpora_dir, tmp_path, monkeypatch):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "corpora").symlink_to(corpora_dir, target_is_directory=True)
    study = tmp_path / "study.yaml"
    study.write_text(STUDY)
    monkeypatch.chdir(tmp_path)  # submit's paths are relative to the study's working directory, like the rules'
    (task,), (spec,) = run_tasks(str(study), ["gpt-resume"], None)

    submitted = cli(*task.argv, "--max-steps", "2", check=False, cwd=tmp_path, spec=spec)
    assert submitted.returncode == EXIT_CHECKPOINTED, submitted.stdout[-3000:]
    root = checkpoint_dir(tmp_path / "results" / "checkpoints", spec)
    assert latest(root) == (2, root / "step-00000002")

    env = {**cli_env(spec), "PATH": f"{Path(sys.executable).parent}:{cli_env()['PATH']}"}
    target = "results/pretrain/gpt-resume/model.safetensors"
    snake = subprocess.run(
        [sys.executable, "-m", "snakemake", target, "--snakefile", str(REPO / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(study), "--allowed-rules", "pretrain_llm", "--cores", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # fmt: skip
    assert snake.returncode == 0, snake.stdout[-3000:]
    log = (tmp_path / "results" / "logs" / "pretrain_llm" / "gpt-resume.log").read_text()
    assert f"resumed from {Path('results/checkpoints') / root.relative_to(tmp_path / 'results' / 'checkpoints')}" in log
    assert "at step 2" in log
    assert latest(root)[0] == 4 and (tmp_path / target).is_file()
