"""The run key ``renderer`` (numpy | torch, with on_the_fly): config hashes of every shipped study unchanged by it, early
errors naming run, dataset and family, and a Snakemake plan that renders no shard for an on-the-fly run."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pretrainflow.errors import ConfigError
from pretrainflow.io import config_hash
from pretrainflow.study.load import load_study, read_study_file

REPO = Path(__file__).resolve().parents[2]
STUDIES = [REPO / "config" / "config.yaml", *sorted((REPO / "config" / "studies").glob("*.yaml"))]
FLY_DATASET = {  # the shipped fdb-tiny's shape at 16 px: cheap to search in a dry run's plan
    "family": "fractaldb",
    "num_classes": 4,
    "instances_per_class": 8,
    "image_size": 16,
    "num_shards": 2,
    "params": {"num_points": 5000},
}


def unit_hashes(study) -> dict[str, str]:
    """config_hash of every unit of a loaded study (what names checkpoints and goes into result rows)."""
    return {
        f"{section}|{key}": config_hash(spec)  # finetunes: key = (run id, task)
        for section in ("datasets", "runs", "finetunes")
        for key, spec in getattr(study, section).items()
    }


def vit_runs(raw: dict) -> list[dict]:
    return [run for run in (raw.get("pretrain") or {}).values() if run.get("kind") == "vit"]


# Only the studies with a ViT run (the LLM studies have no renderer key to compare): chosen here, not skipped later.
VIT_STUDIES = [path for path in STUDIES if vit_runs(read_study_file(path))]


@pytest.mark.parametrize("path", VIT_STUDIES, ids=lambda p: p.name)
def test_default_renderer_leaves_every_hash_unchanged(path):
    """``renderer: numpy`` written out or left out: the same resolved specs, so the hashes of runs written before the key
    existed (all of these) are what they were. A torch run changes its own hash and its fine-tunes' only."""
    raw = read_study_file(path)
    default = load_study(raw)
    assert all("renderer" not in default.runs[r] for r in default.runs_of_kind("vit"))
    explicit = copy.deepcopy(raw)
    for run in vit_runs(explicit):
        run["renderer"] = "numpy"
    assert unit_hashes(load_study(explicit)) == unit_hashes(default)

    fdb = [
        name for name, run in raw["pretrain"].items() if run.get("kind") == "vit" and _family(raw, run) == "fractaldb"
    ]
    if not fdb:
        return
    torch_raw = copy.deepcopy(raw)
    torch_raw["pretrain"][fdb[0]].update(on_the_fly=True, renderer="torch")
    changed = load_study(torch_raw)
    before, after = unit_hashes(default), unit_hashes(changed)
    assert before.keys() == after.keys()
    differ = {key for key in before if before[key] != after[key]}
    torch_runs = {run_id for run_id, run in changed.runs.items() if run.get("renderer") == "torch"}
    assert torch_runs and {f"runs|{run_id}" for run_id in torch_runs} <= differ
    for key in differ:  # the torch runs (replicates, ablation cells of that base) and the fine-tunes of their weights
        section, unit = key.split("|", 1)
        spec = changed.runs[unit] if section == "runs" else changed.finetunes[_finetune_key(changed, unit)]
        assert (spec if section == "runs" else spec["pretrain_spec"])["renderer"] == "torch", key


def _finetune_key(study, text: str):
    return next(key for key in study.finetunes if str(key) == text)


def _family(raw: dict, run: dict) -> str:
    return raw["datasets"][run["dataset"]]["family"]


def _study_with_fly_run(dataset: dict | None = None, **run_keys) -> dict:
    raw = read_study_file(REPO / "config" / "config.yaml")
    raw["datasets"]["fly"] = dataset or FLY_DATASET
    base = raw["pretrain"]["vit-micro-fdb"]
    raw["pretrain"]["vit-fly"] = {**copy.deepcopy(base), "dataset": "fly", **run_keys}
    return raw


def test_torch_renderer_of_another_family_names_run_dataset_and_family():
    visualatom = {**FLY_DATASET, "family": "visualatom", "params": {}}
    raw = _study_with_fly_run(visualatom, on_the_fly=True, renderer="torch")
    with pytest.raises(ConfigError) as err:
        load_study(raw)
    assert str(err.value) == (
        "pretrain.vit-fly.renderer: the torch renderer draws ['fractaldb'] only; dataset 'fly' is family 'visualatom' "
        "(use renderer numpy, the default)"
    )


@pytest.mark.parametrize(
    ("keys", "message"),
    [
        ({"renderer": "torch"}, "pretrain.vit-fly.renderer: 'torch' renders on the fly; set on_the_fly: true"),
        ({"on_the_fly": True, "renderer": "cuda"}, "renderer"),  # the schema's enum or the spec's one_of
    ],
)
def test_renderer_errors_name_the_key(keys, message):
    with pytest.raises(ConfigError, match=message):
        load_study(_study_with_fly_run(**keys))


def dry_run(tmp_path: Path, raw: dict, target: str) -> str:
    tmp_path.mkdir()
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(raw))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(tmp_path)]
    cmd += ["--configfile", str(tmp_path / "study.yaml"), "--cores", "1", target, "-n", "--quiet", "rules"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    return proc.stdout + proc.stderr


def _planned(text: str) -> dict[str, int]:
    """The job counts of ``snakemake -n --quiet rules`` (its "job  count" table)."""
    counts = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    return counts


@pytest.mark.slow
def test_on_the_fly_run_plans_no_shard(tmp_path):
    raw = _study_with_fly_run(on_the_fly=True, renderer="torch")
    fly = _planned(dry_run(tmp_path / "fly", raw, "results/pretrain/vit-fly/summary.json"))
    assert fly == {"search_categories": 1, "pretrain_vit": 1, "total": 2}, fly
    # the same run reading shards plans them: the count above is the rule at work, not a blind parse
    raw["pretrain"]["vit-fly"].update(on_the_fly=False, renderer="numpy")
    shards = _planned(dry_run(tmp_path / "shards", raw, "results/pretrain/vit-fly/summary.json"))
    assert shards == {"search_categories": 1, "render_shard": 2, "dataset_manifest": 1, "pretrain_vit": 1, "total": 5}
