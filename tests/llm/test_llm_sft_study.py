"""SFT in the study: the default study's SFT unit and where its files go, ablation grids over SFT keys, and bad SFT
keys named by their path before anything runs."""

from __future__ import annotations

import copy

import pytest
import yaml
from llm_helpers import REPO

from pretrainflow.errors import ConfigError
from pretrainflow.study import layout
from pretrainflow.study.load import load_study

SFT = "gpt-micro-pydocs-sft"


@pytest.fixture
def default_study() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_study_fine_tunes_the_micro_gpt(default_study):
    from pretrainflow.study.resources import rule_resources
    from pretrainflow.train.llm.hf_import import init_input_files
    from pretrainflow.train.llm.sft_prepare import sft_data_file
    from pretrainflow.train.llm.sft_spec import pretraining_llm_runs, sft_runs

    study = load_study(default_study)
    spec = study.runs[SFT]
    assert sft_runs(study.runs) == [SFT] and pretraining_llm_runs(study.runs) == ["gpt-micro-pydocs"]
    assert spec["init"]["run_spec"] == study.runs["gpt-micro-pydocs"]  # hashed with the run it starts from
    assert spec["sft"] == {"data": {"kind": "python-stdlib-instructions", "path": None, "max_examples": None},
                           "chat_template": "auto"}  # fmt: skip
    assert "sft" not in study.runs["gpt-micro-pydocs"]  # pretraining specs (and their hashes) are unchanged
    assert layout.llm_run_dir(SFT, spec) == f"results/sft/{SFT}"
    assert sft_data_file(spec) == f"{layout.INSTRUCTIONS_DIR}/instructions.jsonl"
    assert init_input_files(spec) == ["results/pretrain/gpt-micro-pydocs/model.safetensors",
                                      "results/corpora/pydocs/tokenizer.json"]  # fmt: skip
    # pretrained and SFT model side by side in the harness table; held-out perplexity for both
    assert {f"results/rows/{run}/{task}.parquet" for run in ("gpt-micro-pydocs", SFT) for task in ("harness", "heldout")
            } <= set(study.row_files())  # fmt: skip
    assert study.llm_evals[SFT]["pretrain_spec"] == spec
    assert f"results/benchmarks/jobs/sft_llm/{SFT}.tsv" in layout.benchmark_files(study)
    assert f"results/benchmarks/jobs/pretrain_llm/{SFT}.tsv" not in layout.benchmark_files(study)
    wildcards = type("W", (), {"run": SFT})()
    assert rule_resources(study, "sft_llm", wildcards) == rule_resources(
        study, "pretrain_llm", type("W", (), {"run": "gpt-micro-pydocs"})()
    )


def test_an_ablation_grid_over_sft_keys(default_study):
    default_study["ablations"] = {
        "sft": {"base": SFT, "grid": {"sft.data.max_examples": [1000, 4000], "sft.chat_template": ["auto", "default"]}}
    }
    study = load_study(default_study)
    cells = sorted(run for run in study.runs if run.startswith(SFT + "."))
    assert cells == [f"{SFT}.max_examples-{n}.chat_template-{t}" for n in (1000, 4000) for t in ("auto", "default")]
    for cell in cells:
        spec = study.runs[cell]
        assert spec["sft"]["data"]["max_examples"] in (1000, 4000)
        assert spec["init"]["run"] == "gpt-micro-pydocs"
        assert cell in study.llm_evals
    hashes = {study.spec_json("runs", cell) for cell in cells}
    assert len(hashes) == 4


def test_a_learning_rate_grid_over_an_sft_run(default_study):
    default_study["ablations"] = {"lr": {"base": SFT, "grid": {"optimizer.lr": [1.0e-3, 3.0e-4]}}}
    study = load_study(default_study)
    assert study.runs[f"{SFT}.lr-0.0003"]["optimizer"]["lr"] == 3.0e-4
    assert study.runs[f"{SFT}.lr-0.0003"]["sft"] == study.runs[SFT]["sft"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda run: run.pop("init"), f"pretrain.{SFT}.sft: needs init"),
        (lambda run: run["sft"]["data"].update(kind="csv"), f"pretrain.{SFT}.sft.data.kind"),
        (lambda run: run["sft"]["data"].update(kind="jsonl"), f"pretrain.{SFT}.sft.data.path"),
        (lambda run: run["sft"]["data"].update(path="x.jsonl"), f"pretrain.{SFT}.sft.data.path"),
        (lambda run: run["sft"].update(template="chatml"), f"pretrain.{SFT}.sft"),
        (lambda run: run["sft"].update(chat_template="chatml"), f"pretrain.{SFT}.sft.chat_template"),
        (lambda run: run.update(blend={"pydocs": 1.0, "other": 1.0}), f"pretrain.{SFT}.blend"),
        (lambda run: run["sft"]["data"].update(max_examples=0), f"pretrain.{SFT}.sft.data.max_examples"),
        (lambda run: run["model"].update(num_layers=3), f"pretrain.{SFT}.model: differs from the model of init.run"),
    ],
)
def test_bad_sft_keys_are_named(default_study, change, message):
    study = copy.deepcopy(default_study)
    change(study["pretrain"][SFT])
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        load_study(study)
