"""The test study end to end through Snakemake: every stage, then the ablation moves of the README.

Runs `snakemake` on config/test.yaml in a temporary working directory (about two minutes on 2 cores).
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pretrainflow.io import config_hash
from pretrainflow.study.load import load_study
from pretrainflow.study.shared_units import study_units

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def snakemake(workdir: Path, *args: str, study: Path = ROOT / "config" / "test.yaml") -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--snakefile",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(study),
        "--cores",
        "2",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200)


def planned_jobs(output: str) -> list[tuple[str, str]]:
    """(rule, wildcards) of every job in a `snakemake -n` listing."""
    jobs, rule = [], None
    for line in output.splitlines():
        if match := re.match(r"^(?:local)?rule (\w+):", line.strip()):
            rule = match.group(1)
            jobs.append((rule, ""))
        elif rule and (match := re.match(r"^wildcards: (.*)$", line.strip())):
            jobs[-1] = (rule, match.group(1))
    return jobs


# Regression values of config/test.yaml (measured 2026-12-01: two runs from an empty directory gave the same bits).
# Every stage is seeded and runs on the CPU with one intra-op thread per rank; the 2-rank ViT pretraining averages
# gradients of exactly 2 ranks (one commutative addition), so the numbers repeat exactly. One epoch on a 4-class 16 px
# dataset leaves the ViTs at chance top-1 on the 10 digits (10.00 %); top-5 and the perplexity tell the runs apart.
REGRESSION = {
    ("scratch-vit-test", "top1"): "10.00",
    ("scratch-vit-test", "top5"): "50.44",
    ("vit-test-fdb", "top1"): "10.00",
    ("vit-test-fdb", "top5"): "50.44",
    ("vit-test-fdb.lr-0.0003", "top1"): "10.00",
    ("vit-test-fdb.lr-0.0003", "top5"): "50.00",
    ("gpt-test", "perplexity"): "507.80",
}


def printed_values(summary: pd.DataFrame) -> dict[tuple[str, str], str]:
    """(run_id, metric) -> value as printed, for the digits test top-1/top-5 and the held-out perplexity."""
    rows = summary[
        ((summary["task"] == "digits") & (summary["split"] == "test") & summary["metric"].isin(["top1", "top5"]))
        | ((summary["task"] == "heldout") & (summary["metric"] == "perplexity"))
    ]
    return {(r.run_id, r.metric): f"{r.value:.2f}" for r in rows.itertuples()}


@pytest.fixture(scope="module")
def finished_study(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("study")
    run = snakemake(workdir)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-6000:]
    return workdir


def test_study_produces_summary_with_every_run(finished_study):
    summary = pd.read_parquet(finished_study / "results" / "studies" / "test" / "summary.parquet")
    top1 = summary[(summary["metric"] == "top1") & (summary["split"] == "test")]
    assert set(top1["run_id"]) == {"vit-test-fdb", "vit-test-fdb.lr-0.0003", "scratch-vit-test"}
    assert set(top1.loc[top1["run_id"] == "scratch-vit-test", "pretrain_source"]) == {"scratch"}
    assert set(top1.loc[top1["run_id"] == "vit-test-fdb", "pretrain_source"]) == {"fdb-test"}
    assert top1["value"].between(0, 100).all()
    ppl = summary[(summary["run_id"] == "gpt-test") & (summary["metric"] == "perplexity")]
    assert len(ppl) >= 1 and (ppl["value"] > 1).all()
    # The study's numbers, to the precision `pretrainflow results` prints them (2 decimals).
    assert printed_values(summary) == REGRESSION
    for column in ("config_hash", "config_json", "git_commit", "host", "versions", "wall_seconds", "world_size"):
        assert summary[column].notna().all(), column
    assert summary.loc[summary["run_id"] == "vit-test-fdb", "dataset_checksum"].notna().all()
    for plot in ("downstream_accuracy.png", "pretrain_loss_vit.png", "pretrain_loss_llm.png"):
        assert (finished_study / "results" / "studies" / "test" / "plots" / plot).stat().st_size > 1000
    assert json.loads((finished_study / "results" / "pretrain" / "vit-test-fdb" / "config.json").read_text())


def test_units_carry_the_spec_hash_and_study_the_shared_unit_guard_reads(finished_study):
    # study/shared_units.py compares a unit's config.json hash with config_hash of the study's resolved spec and
    # refuses only another study's: both must be what the real stages write
    study = load_study(ROOT / "config" / "test.yaml")
    units = list(study_units(study))
    assert {label.split()[0] for label, _, _ in units} == {"dataset", "corpus", "run", "fine-tune"}
    for label, directory, spec in units:
        record = json.loads((finished_study / directory / "config.json").read_text())
        assert record["config_hash"] == config_hash(spec), label
        if label.split()[0] in ("run", "fine-tune"):  # the stage publisher records the study (train/publish.py)
            assert record["provenance"]["study"] == "test", label


def test_nothing_left_to_do(finished_study):
    dry = snakemake(finished_study, "-n")
    assert dry.returncode == 0, dry.stderr[-3000:]
    assert planned_jobs(dry.stdout) == [], dry.stdout[-3000:]


def test_changing_one_learning_rate_reruns_only_that_chain(finished_study, tmp_path):
    # What a user does: edit one run's learning rate in the study file, then ask Snakemake what it would rerun.
    study = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    study["pretrain"]["vit-test-fdb"]["optimizer"]["lr"] = 5.0e-4
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump(study))
    dry = snakemake(finished_study, "-n", study=edited)
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned_jobs(dry.stdout)
    runs = {match.group(1) for _, wildcards in jobs if (match := re.search(r"run=([^,\s]+)", wildcards))}
    assert runs == {"vit-test-fdb"}, jobs
    rules = {rule for rule, _ in jobs}
    assert "pretrain_vit" in rules and "aggregate_results" in rules
    assert not rules & {"search_categories", "render_shard", "dataset_manifest", "pretrain_llm", "train_tokenizer"}


def test_one_cell_can_be_built_by_its_target(finished_study):
    target = "results/rows/scratch-vit-test/digits.parquet"
    # The target goes first: --forcerun takes every following word as a rule name.
    dry = snakemake(finished_study, target, "-n", "--forcerun", "evaluate_vit")
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = planned_jobs(dry.stdout)
    assert [rule for rule, _ in jobs] == ["evaluate_vit"], jobs
    assert "run=scratch-vit-test" in jobs[0][1] and "task=digits" in jobs[0][1]
