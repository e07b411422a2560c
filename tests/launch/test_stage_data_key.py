"""The run key ``stage_data``: unset (or false) it leaves every config hash of every shipped study as it was; set, it
is in the resolved spec the worker reads but not in the config that names the run's checkpoints and rows; with
``on_the_fly`` or a non-boolean value it is an early error naming the key path."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from pretrainflow.errors import ConfigError
from pretrainflow.io import config_hash
from pretrainflow.study.load import load_study, read_study_file
from pretrainflow.train.vit.spec import VitRunSpec

REPO = Path(__file__).resolve().parents[2]
STUDIES = [REPO / "config" / "config.yaml", *sorted((REPO / "config" / "studies").glob("*.yaml"))]


def vit_runs(raw: dict) -> dict[str, dict]:
    return {name: run for name, run in (raw.get("pretrain") or {}).items() if run.get("kind") == "vit"}


# Only the studies with a ViT run (the key is a ViT run key): chosen here, not skipped later.
VIT_STUDIES = [path for path in STUDIES if vit_runs(read_study_file(path))]


def unit_hashes(study) -> dict[str, str]:
    return {
        f"{section}|{key}": config_hash(spec)
        for section in ("datasets", "runs", "finetunes")
        for key, spec in getattr(study, section).items()
    }


@pytest.mark.parametrize("path", VIT_STUDIES, ids=lambda p: p.name)
def test_unset_or_false_stage_data_changes_no_hash(path):
    raw = read_study_file(path)
    default = load_study(raw)
    assert all("stage_data" not in default.runs[r] for r in default.runs_of_kind("vit"))
    explicit = copy.deepcopy(raw)
    for run in vit_runs(explicit).values():
        run["stage_data"] = False
    assert unit_hashes(load_study(explicit)) == unit_hashes(default)


def test_a_staged_run_trains_under_the_hash_of_the_same_run_unstaged():
    raw = read_study_file(REPO / "config" / "config.yaml")
    name = next(iter(vit_runs(raw)))
    plain = load_study(raw)
    staged_raw = copy.deepcopy(raw)
    staged_raw["pretrain"][name]["stage_data"] = True
    staged = load_study(staged_raw)
    run_ids = [r for r in staged.runs_of_kind("vit") if staged.runs[r].get("stage_data")]
    assert run_ids  # the run and its replicates / ablation cells, if any
    for run_id in run_ids:
        spec = VitRunSpec.from_dict(staged.runs[run_id], run_id)
        assert spec.stage_data is True  # what the worker reads from --spec
        assert spec.trained_config() == plain.runs[run_id]  # what names its checkpoints, outputs and rows
        assert config_hash(spec.trained_config()) == config_hash(VitRunSpec.from_dict(plain.runs[run_id]).to_dict())
    # the fine-tunes built on a staged run are the fine-tunes of the same run unstaged (same specs, same hashes)
    assert staged.finetunes.keys() == plain.finetunes.keys()
    assert {cell: config_hash(spec) for cell, spec in staged.finetunes.items()} == {
        cell: config_hash(spec) for cell, spec in plain.finetunes.items()
    }


def test_stage_data_errors_name_the_key():
    raw = read_study_file(REPO / "config" / "config.yaml")
    name = next(iter(vit_runs(raw)))
    bad = copy.deepcopy(raw)
    bad["pretrain"][name].update(stage_data=True, on_the_fly=True)
    with pytest.raises(ConfigError, match=rf"pretrain\.{name}.*stage_data: an on_the_fly run reads no shards"):
        load_study(bad)
    plain = load_study(raw)
    run = plain.runs[plain.runs_of_kind("vit")[0]]
    with pytest.raises(ConfigError, match=r"--spec\.stage_data: expected true or false"):
        VitRunSpec.from_dict({**run, "stage_data": "yes"}, "--spec")
