"""LLM run spec: defaults, batch/parallel arithmetic, errors that name the key, and where a run may train (device)."""

from __future__ import annotations

import json

import pytest
from llm_helpers import REPO, run_spec

from pretrainflow.errors import ConfigError
from pretrainflow.train.llm.pretrain import run_device
from pretrainflow.train.llm.spec import LLMRunSpec, check_llm_run
from pretrainflow.train.spec import RENAMED_KEYS


def test_defaults_and_arithmetic():
    run = LLMRunSpec.from_dict(run_spec(tensor=2, ranks=4))
    assert run.parallel.data_parallel(4) == 2 and run.accumulation(4) == 1  # global 8 = micro 4 x dp 2 x accum 1
    assert run.tokens_per_step == 8 * 32
    resolved = check_llm_run(run_spec(), "pretrain.t")
    assert resolved["optimizer"] == {
        "name": "adamw", "lr": 3e-3, "weight_decay": 0.01, "betas": [0.9, 0.95], "eps": 1e-8, "grad_clip": 1.0
    }  # fmt: skip
    assert resolved["schedule"] == {"train_steps": 8, "warmup_steps": 2, "min_lr": 3e-4}
    assert resolved["checkpoint"] == {"every_steps": 0, "keep": 1} and resolved["log"] == {"every_steps": 1}
    assert resolved["batch"] == {"micro": 4, "global": 8} and resolved["eval"] == {"iters": 2}
    assert resolved["devices"]["runtime_minutes"] == 60
    assert check_llm_run(resolved, "pretrain.t") == resolved  # idempotent: the resolved spec validates again


def test_typed_run_spec():
    spec = run_spec(checkpoint={"every_steps": 4}, log={"every_steps": 2})
    run = LLMRunSpec.from_dict(spec)
    opt = run.optimizer
    assert (opt.name, opt.lr, opt.weight_decay, opt.betas, opt.eps, opt.grad_clip) == (
        "adamw", 3e-3, 0.01, [0.9, 0.95], 1e-8, 1.0
    )  # fmt: skip
    assert (run.schedule.min_lr, run.schedule.train_steps, run.schedule.warmup_steps) == (3e-4, 8, 2)
    assert (run.checkpoint.every_steps, run.checkpoint.keep, run.log.every_steps, run.eval.iters) == (4, 1, 2, 2)
    assert (run.batch.micro, run.batch.global_batch, run.accumulation(1)) == (4, 8, 2)
    assert run.gpt_shape().name == "gpt_micro" and run.corpus_split == "90,5,5"
    # the dict training hashes and publishes is the study loader's resolved spec
    assert run.to_dict() == check_llm_run(spec, "pretrain.t")
    assert run.to_dict()["checkpoint"] == {"every_steps": 4, "keep": 1}
    with pytest.raises(ConfigError, match=r"pretrain.t.corpus_spec: expected the corpus's resolved spec"):
        _ = LLMRunSpec.from_dict({k: v for k, v in spec.items() if k != "corpus_spec"}).corpus_split


@pytest.mark.parametrize("entry", RENAMED_KEYS, ids=lambda entry: entry.key)
def test_old_keys_name_their_new_place(entry):
    spec = run_spec()
    node = spec
    *parents, leaf = entry.key.split(".")
    for part in parents:
        node[part] = dict(node.get(part, {}))
        node = node[part]
    node[leaf] = entry.value if entry.value is not None else 0.9
    with pytest.raises(ConfigError) as err:
        check_llm_run(spec, "pretrain.gpt-x")
    assert str(err.value) == f"pretrain.gpt-x.{entry.key}: {entry.message}"


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
            r"pretrain.t.batch.global: expected a multiple of micro x data-parallel ranks = 3 x 1",
        ),
        (
            {"batch": {"micro": 4, "global": 12}, "devices": {"cpu_ranks": 2}},
            r"pretrain.t.batch.global: expected a multiple of micro x data-parallel ranks = 4 x 2 = 8",
        ),
        ({"batch": {"micro": 4}}, r"pretrain.t.batch: missing required key\(s\) \['global'\]"),
        ({"schedule": {"train_steps": 4, "warmup_steps": 4}}, r"pretrain.t.schedule.warmup_steps: expected fewer than"),
        ({"schedule": {"warmup_steps": 1}}, r"pretrain.t.schedule: missing required key\(s\) \['train_steps'\]"),
        ({"optimizer": {"name": "sgd"}}, r"pretrain.t.optimizer.name: expected one of \['adamw'\]"),
        ({"optimizer": {"betas": [0.9]}}, r"pretrain.t.optimizer.betas: expected two numbers in \[0, 1\)"),
        ({"optimizer": {"eps": 0}}, r"pretrain.t.optimizer.eps: expected a number > 0.0, got 0"),
        (
            {"optimizer": {"lr": 1e-4}, "schedule": {"train_steps": 8, "min_lr": 1e-3}},
            r"pretrain.t.schedule.min_lr: expected <= optimizer.lr",
        ),
        ({"checkpoint": {"keep": 0}}, r"pretrain.t.checkpoint.keep: expected an integer >= 1, got 0"),
        ({"log": {"every_steps": 0}}, r"pretrain.t.log.every_steps: expected an integer >= 1, got 0"),
        ({"eval": {"iters": 0}}, r"pretrain.t.eval.iters: expected an integer >= 1, got 0"),
        ({"precision": "fp16"}, r"pretrain.t.precision: expected one of \['bf16', 'fp32'\]"),
        (
            {"parallel": {"sequence_parallel": True}},
            r"pretrain.t.parallel.sequence_parallel: needs parallel.tensor > 1",
        ),
        ({"devices": {"cpu_ranks": 0}}, r"pretrain.t.devices.cpu_ranks: expected an integer >= 1, got 0"),
        ({"model": {"name": "gpt_micro", "hidden": 3}}, r"pretrain.t.model: unknown model keys \['hidden'\]"),
        ({"model": {"name": "gpt_huge"}}, r"pretrain.t.model.name: expected one of"),
        ({"seq_length": 4}, r"pretrain.t.seq_length: expected an integer >= 8, got 4"),
        ({"mystery": 1}, r"pretrain.t: unknown key\(s\) \['mystery'\]"),
    ],
)
def test_errors_name_the_key(change, message):
    with pytest.raises(ConfigError, match=message):
        check_llm_run({**run_spec(), **change}, "pretrain.t")


def test_default_study_llm_run_validates():
    from pretrainflow.study.load import load_study

    study = load_study(REPO / "config" / "config.yaml")
    llm_runs = study.runs_of_kind("llm")
    assert llm_runs, "the default study must include a GPT run"
    for run_id in llm_runs:
        run = LLMRunSpec.from_dict(study.runs[run_id])
        assert run.corpus in study.corpora


def test_paper_scale_study_validates():
    from pretrainflow.study.load import load_study

    study = load_study(REPO / "config" / "studies" / "llama-1b.yaml")
    (run_id,) = study.runs_of_kind("llm")
    run = LLMRunSpec.from_dict(study.runs[run_id])
    # a portable total: the site picks the node shape (ABCI 4 x 8, TSUBAME 8 x 4); training sees 32 ranks either way
    assert run.gpt_shape().name == "llama_1b" and run.devices.gpus == 32
    world = run.devices.world_size(cuda=True)
    assert world % run.parallel.model_parallel == 0
    # 512 sequences = micro 4 x 4 accumulation x 32 data-parallel GPUs; the numbers of the study before the rename
    assert run.accumulation(world) == 4 and run.tokens_per_step == 512 * 4096
    assert (run.optimizer.lr, run.schedule.min_lr, run.optimizer.betas) == (3.0e-4, 3.0e-5, [0.9, 0.95])
    assert (run.checkpoint.every_steps, run.checkpoint.keep, run.log.every_steps) == (500, 1, 10)


def test_blend_defaults_and_checks():
    assert check_llm_run(run_spec(), "pretrain.t")["blend"] == {"docs": 1.0}
    assert LLMRunSpec.from_dict(run_spec(blend={"docs": 3, "web": 1})).blend == {"docs": 3, "web": 1}
    with pytest.raises(ConfigError, match=r"pretrain.t.blend: expected the run's corpus 'docs' among \['web'\]"):
        check_llm_run(run_spec(blend={"web": 1.0}), "pretrain.t")
    with pytest.raises(ConfigError, match=r"pretrain.t.blend.web: expected a number > 0.0, got 0"):
        check_llm_run(run_spec(blend={"docs": 1.0, "web": 0}), "pretrain.t")


def device_of(cuda_devices: int, transformer_engine: bool = False, **change) -> str:
    return run_device(LLMRunSpec.from_dict(run_spec(**change)), cuda_devices=cuda_devices,
                      transformer_engine=transformer_engine)  # fmt: skip


def test_where_a_run_trains():
    gpu_run = {"devices": {"gpus_per_node": 2, "cpu_ranks": 2}, "parallel": {"tensor": 2, "sequence_parallel": True}}
    assert device_of(0) == "cpu" and device_of(1, devices={"gpus_per_node": 1}) == "cuda"
    assert device_of(2, transformer_engine=True, **gpu_run) == "cuda"
    assert device_of(0, devices={"gpus_per_node": 1}) == "cpu"  # no CUDA: cpu_ranks gloo ranks, as before
    assert device_of(1) == "cpu"  # gpus_per_node 0 on a CUDA node: cpu_ranks ranks (it used to start zero workers)
    with pytest.raises(ConfigError, match=r"pretrain.t.devices.gpus_per_node: 2, but this node has 1 CUDA device"):
        device_of(1, devices={"gpus_per_node": 2, "cpu_ranks": 2}, parallel={"tensor": 2})
    # sequence parallelism on CUDA needs Transformer Engine (megatron-core's torch norms assert on it)
    with pytest.raises(ConfigError, match=r"pretrain.t.parallel.sequence_parallel: needs Transformer Engine"):
        device_of(2, transformer_engine=False, **gpu_run)
    with pytest.raises(ConfigError, match=r"pretrain.t.parallel.pipeline: 2 needs CUDA"):
        device_of(0, parallel={"pipeline": 2}, devices={"cpu_ranks": 2})
    with pytest.raises(ConfigError, match=r"pretrain.t.parallel.sequence_parallel: needs CUDA"):
        device_of(0, **gpu_run)


def pretend_cuda(monkeypatch, devices: int = 1) -> None:
    """This process sees ``devices`` CUDA devices (0: a CPU machine)."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: devices > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: devices)


def test_cpu_ranks_on_a_cuda_node_see_no_gpu(corpora_dir, tmp_path, monkeypatch):
    # pretrain-llm of a gpus_per_node 0 run on a CUDA node starts cpu_ranks ranks with the GPUs hidden from them
    import argparse
    import json
    import os

    import pretrainflow.launch
    from pretrainflow.train.llm.cli import run_pretrain

    started = []

    def fake_run_distributed(entry, args, procs):
        started.append((procs, os.environ.get("CUDA_VISIBLE_DEVICES")))
        return 1  # a failed training: nothing to publish

    monkeypatch.setattr(pretrainflow.launch, "run_distributed", fake_run_distributed)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    pretend_cuda(monkeypatch)
    args = argparse.Namespace(spec=json.dumps(run_spec(devices={"cpu_ranks": 2})), out=tmp_path / "out",
                              corpora_dir=corpora_dir, checkpoints=tmp_path / "ck", max_steps=None)  # fmt: skip
    assert run_pretrain(args) == 1
    assert started == [(2, "")] and "CUDA_VISIBLE_DEVICES" not in os.environ


def test_a_cpu_rank_that_sees_a_gpu_is_refused(monkeypatch):
    from pretrainflow.train.llm.pretrain import worker_device

    run = LLMRunSpec.from_dict(run_spec())
    pretend_cuda(monkeypatch, 0)
    assert worker_device(run) == "cpu"
    pretend_cuda(monkeypatch, 1)
    with pytest.raises(ConfigError, match=r"pretrain.t.devices.gpus_per_node: 0 \(CPU ranks\), but this process "
                                          r"sees CUDA devices.*CUDA_VISIBLE_DEVICES="):  # fmt: skip
        worker_device(run)


def test_run_device_docstring_example():
    import doctest

    import pretrainflow.train.llm.pretrain

    result = doctest.testmod(pretrainflow.train.llm.pretrain)
    assert result.attempted > 0 and result.failed == 0


def test_pipeline_parallel_on_cpu_is_refused_before_launch(tmp_path):
    import argparse
    import json

    import torch

    from pretrainflow.train.llm.cli import run_pretrain

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

    spec = run_spec()
    proc = cli("pretrain-llm", "--spec", json.dumps(spec), "--out", str(tmp_path / "out"), "--corpora-dir",
               str(tmp_path / "nowhere"), "--checkpoints", str(tmp_path / "ck"), check=False, spec=spec)  # fmt: skip
    assert proc.returncode == 2
    assert "docs_text_document.idx: indexed corpus not found" in proc.stdout and "Traceback" not in proc.stdout
