"""LLM run spec: defaults, batch/parallel arithmetic, and errors that name the key; the study validates it."""

from __future__ import annotations

import json

import pytest
from llm_helpers import REPO, run_spec

from pretrainflow.errors import ConfigError
from pretrainflow.train.llm_spec import check_llm_run, llm_run_from_dict


def test_defaults_and_arithmetic():
    run = llm_run_from_dict(run_spec(tensor=2, ranks=4))
    assert run.data_parallel(4) == 2 and run.accumulation(4) == 1  # global 8 = micro 4 x dp 2 x accum 1
    assert run.tokens_per_step == 8 * 32
    resolved = check_llm_run(run_spec(), "pretrain.t")
    assert resolved["optimizer"]["beta2"] == 0.95 and resolved["checkpoint"] == {"every_steps": 0}
    assert resolved["devices"]["runtime_minutes"] == 60


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"parallel": {"tensor": 3}}, r"pretrain.t.parallel.tensor: 3 does not divide query groups=2"),
        (
            {"devices": {"cpu_ranks": 3}, "parallel": {"tensor": 2}},
            r"pretrain.t.parallel: tensor x pipeline = 2 must divide",
        ),
        (
            {"batch": {"micro": 3, "global": 8}},
            r"pretrain.t.batch.global: expected a multiple of micro x data_parallel",
        ),
        ({"schedule": {"train_steps": 4, "warmup_steps": 4}}, r"pretrain.t.schedule.warmup_steps: expected fewer than"),
        ({"optimizer": {"name": "sgd"}}, r"pretrain.t.optimizer.name: expected one of \['adam'\]"),
        ({"optimizer": {"lr": 1e-4, "min_lr": 1e-3}}, r"pretrain.t.optimizer.min_lr: expected min_lr <= lr"),
        ({"model": {"name": "gpt_micro", "hidden": 3}}, r"pretrain.t.model: unknown model keys \['hidden'\]"),
        ({"seq_length": 4}, r"pretrain.t.seq_length: expected an integer >= 8, got 4"),
        ({"mystery": 1}, r"pretrain.t.run: unknown keys \['mystery'\]"),
    ],
)
def test_errors_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        check_llm_run({**run_spec(), **change}, "pretrain.t")


def test_default_study_llm_run_validates():
    from pretrainflow.config import load_study

    study = load_study(REPO / "config" / "config.yaml")
    llm_runs = study.runs_of_kind("llm")
    assert llm_runs, "the default study must include a GPT run"
    for run_id in llm_runs:
        run = llm_run_from_dict(study.runs[run_id])
        assert run.corpus in study.corpora


def test_paper_scale_study_validates():
    from pretrainflow.config import load_study

    study = load_study(REPO / "config" / "studies" / "llama-1b.yaml")
    (run_id,) = study.runs_of_kind("llm")
    run = llm_run_from_dict(study.runs[run_id])
    assert run.shape.name == "llama_1b" and run.gpus_per_node == 8
    assert run.world_size(cuda=True) % (run.tensor * run.pipeline) == 0


def test_blend_defaults_and_checks():
    assert check_llm_run(run_spec(), "pretrain.t")["blend"] == {"docs": 1.0}
    assert llm_run_from_dict(run_spec(blend={"docs": 3, "web": 1})).blend == {"docs": 3, "web": 1}
    with pytest.raises(ConfigError, match=r"pretrain.t.blend: expected the run's corpus 'docs' among \['web'\]"):
        check_llm_run(run_spec(blend={"web": 1.0}), "pretrain.t")
    with pytest.raises(ConfigError, match=r"pretrain.t.blend.web: expected a weight > 0, got 0"):
        check_llm_run(run_spec(blend={"docs": 1.0, "web": 0}), "pretrain.t")


def test_pipeline_parallel_on_cpu_is_refused_before_launch(tmp_path):
    import argparse
    import json

    import torch

    from pretrainflow.train.llm_cli import run_pretrain

    if torch.cuda.is_available():
        pytest.skip("CUDA present: pipeline parallelism is allowed")
    spec = run_spec(parallel={"pipeline": 2}, devices={"cpu_ranks": 2})
    args = argparse.Namespace(spec=json.dumps(spec), out=tmp_path / "out", corpora_dir=tmp_path,
                              checkpoints=tmp_path / "ck", max_steps=None)  # fmt: skip
    with pytest.raises(ConfigError, match=r"pretrain.t.parallel.pipeline: 2 needs CUDA"):
        run_pretrain(args)
    args.spec = json.dumps(run_spec(parallel={"tensor": 2, "sequence_parallel": True}, devices={"cpu_ranks": 2}))
    with pytest.raises(ConfigError, match=r"pretrain.t.parallel.sequence_parallel: needs CUDA"):
        run_pretrain(args)
    assert not (tmp_path / "ck").exists()


def test_missing_corpus_is_one_clear_line(tmp_path):
    from llm_helpers import cli

    proc = cli("pretrain-llm", "--spec", json.dumps(run_spec()), "--out", str(tmp_path / "out"), "--corpora-dir",
               str(tmp_path / "nowhere"), "--checkpoints", str(tmp_path / "ck"), check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "docs_text_document.idx: indexed corpus not found" in proc.stdout and "Traceback" not in proc.stdout
