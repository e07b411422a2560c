"""Replicates, axes over every stage, and identical units run once (pretrainflow.study.replicates, study.load)."""

import json
import re

import pytest

from pretrainflow.datasets.spec import resolve
from pretrainflow.errors import ConfigError
from pretrainflow.study.load import load_study
from pretrainflow.study.replicates import CellRef, spec_identity

BASE = "vit-micro-fdb"


def _vit_only(study: dict) -> dict:
    del study["pretrain"]["gpt-micro-pydocs"]
    del study["pretrain"]["gpt-micro-pydocs-sft"]  # fine-tunes the LLM run above
    return study


def test_replicates_name_and_seed_every_unit(default_study):
    study_dict = _vit_only(default_study)
    study_dict["seed"] = 10
    study_dict["pretrain"][BASE]["seed"] = 100  # a run's own seed: its replicates pretrain from it
    study_dict["replicates"] = 3
    study = load_study(study_dict)
    runs = [f"{BASE}.rep-{r}" for r in range(3)]
    assert list(study.runs) == runs
    # documented rule: pretraining seed = run's seed + k_r; fine-tuning seed = study's seed + k_r
    assert [study.runs[run]["seed"] for run in runs] == [100, 101, 102]
    finetune_seeds = [study.finetunes[(run, "digits")]["seed"] for run in runs]
    assert finetune_seeds == [10, 11, 12]
    assert len(set(finetune_seeds)) == 3
    # the scratch baseline is replicated too, with the same fine-tuning seeds (paired replicates)
    scratch = [f"scratch-vit-micro.rep-{r}" for r in range(3)]
    assert [study.finetunes[(run, "digits")]["seed"] for run in scratch] == [10, 11, 12]
    assert study.cells[runs[2]] == CellRef(BASE, 2)
    assert study.cells[scratch[1]] == CellRef("scratch-vit-micro", 1)


def test_explicit_replicate_seeds(default_study):
    study_dict = _vit_only(default_study)
    study_dict["replicates"] = [5, 9]
    study = load_study(study_dict)
    assert [spec["seed"] for spec in study.runs.values()] == [5, 9]
    assert study.finetunes[(f"{BASE}.rep-1", "digits")]["seed"] == 9


def test_one_replicate_keeps_ids_and_specs(default_study):
    before = load_study(_vit_only(default_study))
    default_study["replicates"] = 1
    after = load_study(default_study)
    assert list(before.runs) == list(after.runs) == [BASE]
    assert before.spec_json("runs", BASE) == after.spec_json("runs", BASE)
    assert after.cells[BASE] == CellRef(BASE, 0)


@pytest.mark.parametrize("value", [0, [], [1, 1], [-1], True])
def test_bad_replicates_are_rejected_naming_the_key(default_study, value):
    default_study["replicates"] = value
    with pytest.raises(ConfigError, match=r"replicates"):
        load_study(default_study)


def test_a_grid_cell_equal_to_the_base_runs_once(default_study):
    lr = default_study["pretrain"][BASE]["optimizer"]["lr"]
    default_study["ablations"] = {"lr": {"base": BASE, "grid": {"optimizer.lr": [lr, 1e-3]}}}
    study = load_study(default_study)
    same = f"{BASE}.lr-{lr:g}"
    assert same not in study.runs
    assert f"{BASE}.lr-0.001" in study.runs
    assert any(note.startswith(f"run {same} equals run {BASE}") for note in study.notes)
    assert (same, "digits") not in study.finetunes  # its fine-tune is the base run's too
    assert f"results/rows/{same}/digits.parquet" not in study.row_files()


def test_a_dataset_axis_generates_each_dataset_once(default_study):
    study_dict = _vit_only(default_study)
    study_dict["pretrain"]["vit-b"] = dict(study_dict["pretrain"][BASE], optimizer={"name": "sgd", "lr": 0.1})
    axis = {"datasets.fdb-tiny.params.draw": ["point", "patch"]}  # "point" is the base dataset's own value
    study_dict["ablations"] = {"a": {"base": BASE, "grid": dict(axis)}, "b": {"base": "vit-b", "grid": dict(axis)}}
    study = load_study(study_dict)
    assert sorted(study.datasets) == ["fdb-tiny", "fdb-tiny.draw-patch"]  # one new dataset, shared by both grids
    assert study.datasets["fdb-tiny.draw-patch"]["params"]["draw"] == "patch"
    # what the dataset rules pass to `pretrainflow datasets ...`: the cell's id is a valid dataset name there
    dataset, _, _ = resolve(json.loads(study.spec_json("datasets", "fdb-tiny.draw-patch")), "--spec")
    assert dataset.name == "fdb-tiny.draw-patch"
    assert study.runs[f"{BASE}.draw-patch"]["dataset"] == "fdb-tiny.draw-patch"
    assert study.runs["vit-b.draw-patch"]["dataset_spec"] == study.datasets["fdb-tiny.draw-patch"]
    assert any("fdb-tiny.draw-point equals dataset fdb-tiny" in note for note in study.notes)
    # the cells on the base value are the base runs themselves
    assert f"{BASE}.draw-point" not in study.runs and "vit-b.draw-point" not in study.runs


def test_a_finetune_axis_reuses_the_pretrained_run(default_study):
    study_dict = _vit_only(default_study)
    study_dict["ablations"] = {"ft": {"base": BASE, "grid": {"finetune.recipe.optimizer.lr": [0.01, 0.1]}}}
    study = load_study(study_dict)
    assert list(study.runs) == [BASE]  # the cells pretrain exactly like the base: one pretraining
    cell = study.finetunes[(f"{BASE}.lr-0.1", "digits")]
    assert cell["recipe"]["optimizer"]["lr"] == 0.1
    assert cell["pretrain_spec"]["run_id"] == BASE  # what the rule reads the weights from
    assert study.finetunes[("scratch-vit-micro.lr-0.1", "digits")]["recipe"]["optimizer"]["lr"] == 0.1


def test_stages_cross_in_one_grid(default_study):
    study_dict = _vit_only(default_study)
    study_dict["ablations"] = {
        "x": {
            "base": BASE,
            "grid": {
                "datasets.fdb-tiny.num_classes": [4, 6],
                "finetune.recipe.optimizer.weight_decay": [0.0, 0.1],
                "optimizer.lr": [1e-3],
            },
        }
    }
    study = load_study(study_dict)
    assert sorted(study.datasets) == ["fdb-tiny", "fdb-tiny.num_classes-4", "fdb-tiny.num_classes-6"]
    # 2 datasets x 1 lr pretrain, named without the fine-tune part; the 2 recipes of each share that pretraining
    assert sorted(study.runs) == [BASE, f"{BASE}.num_classes-4.lr-0.001", f"{BASE}.num_classes-6.lr-0.001"]
    cell = study.finetunes[(f"{BASE}.num_classes-4.weight_decay-0.1.lr-0.001", "digits")]
    assert cell["pretrain_spec"]["run_id"] == f"{BASE}.num_classes-4.lr-0.001"
    assert len([key for key in study.finetunes if not key[0].startswith("scratch")]) == 1 + 4


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"datasets.nope.num_classes": [4]}, r"pretrains on 'fdb-tiny', not 'nope'"),
        ({"datasets.fdb-tiny.num_clases": [4]}, r"^ablations\.bad .*num_clases"),
        ({"finetune.recipe.epoch": [4]}, r"^ablations\.bad .*epoch"),
        ({"finetune.recipe.epochs": [0]}, r"^ablations\.bad .*epochs"),
    ],
)
def test_bad_axes_are_rejected_naming_the_key(default_study, grid, message):
    default_study["ablations"] = {"bad": {"base": BASE, "grid": grid}}
    with pytest.raises(ConfigError, match=message):
        load_study(default_study)


def test_a_grid_over_the_limit_needs_confirmation(default_study):
    grid = {"optimizer.lr": [1e-3 * k for k in range(1, 10)], "optimizer.weight_decay": [0.0, 0.01, 0.05, 0.1]}
    default_study["ablations"] = {"big": {"base": BASE, "grid": grid, "max_cells": 30}}
    with pytest.raises(ConfigError, match=r"ablations\.big\.grid: expands to 36 cells.*max_cells: 36"):
        load_study(default_study)
    default_study["ablations"]["big"]["max_cells"] = 36
    assert len(load_study(default_study).runs) == len(default_study["pretrain"]) + 36


def test_identity_ignores_names_only():
    a = {
        "run_id": "a",
        "ablation": {"name": "x"},
        "model": {"name": "vit_micro"},
        "dataset_spec": {"name": "d", "k": 1},
    }
    b = {"run_id": "b", "model": {"name": "vit_micro"}, "dataset_spec": {"name": "e", "k": 1}}
    c = {"run_id": "b", "model": {"name": "vit_tiny"}, "dataset_spec": {"name": "e", "k": 1}}
    assert spec_identity(a) == spec_identity(b) != spec_identity(c)


def test_snakemake_plans_each_dataset_and_duplicate_cell_once(default_study, tmp_path):
    # the plan itself: a dataset axis on two grids and a cell equal to the base run, each job counted once
    import re
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[2]
    study_dict = _vit_only(default_study)
    study_dict["pretrain"]["vit-b"] = dict(study_dict["pretrain"][BASE], optimizer={"name": "sgd", "lr": 0.1})
    axis = {"datasets.fdb-tiny.params.draw": ["point", "patch"]}
    study_dict["ablations"] = {"a": {"base": BASE, "grid": dict(axis)}, "b": {"base": "vit-b", "grid": dict(axis)}}
    study_file = tmp_path / "study.yaml"
    study_file.write_text(yaml.safe_dump(study_dict))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(root / "Snakefile"), "--directory", str(tmp_path),
         "--configfile", str(study_file), "--profile", str(root / "profiles" / "default")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", result.stdout, re.MULTILINE))
    assert counts["dataset_manifest"] == "2"  # fdb-tiny and fdb-tiny.draw-patch; draw-point is fdb-tiny itself
    assert counts["pretrain_vit"] == "4"  # the 2 base runs and their draw-patch cells
    assert counts["finetune_vit"] == "5"  # those 4 and one scratch baseline
    assert "run vit-b.draw-point equals run vit-b" in result.stdout + result.stderr


def test_errors_name_the_written_run_or_the_grid_cell(default_study):
    default_study["replicates"] = 2
    default_study["pretrain"][BASE]["zero_stage"] = 7
    with pytest.raises(ConfigError, match=r"^pretrain\.vit-micro-fdb\.zero_stage"):
        load_study(default_study)
    default_study["pretrain"][BASE]["zero_stage"] = 0
    # schema-valid, refused by the typed check: K-FAC needs fp32
    default_study["ablations"] = {"k": {"base": BASE, "grid": {"optimizer.name": ["kfac"], "precision": ["bf16"]}}}
    cell = "vit-micro-fdb.optimizer-kfac.precision-bf16.rep-0"
    with pytest.raises(
        ConfigError, match=rf"^ablations\.k \(run {re.escape(cell)}\): pretrain\.vit-micro-fdb\.precision"
    ):
        load_study(default_study)
