"""`pretrainflow sched plan`: a dry run of a study mapped onto a site's resource types, errors before submission."""

from __future__ import annotations

import io
import subprocess

import pytest
from cluster_helpers import REPO, TOY_SNAKEFILE, VENV_BIN, snakemake_env

from pretrainflow.schedulers.plan import parse_dry_run, plan

DRY_RUN = """\
[Sat Nov 21 18:53:50 2026]
rule pretrain_vit:
    input: results/datasets/fdb1k/manifest.json
    output: results/pretrain/vit-tiny-fdb1k/model.safetensors
    jobid: 3
    wildcards: run=vit-tiny-fdb1k
    resources: tmpdir=/tmp, mem_mb=500000, mem=500 GB, runtime=720, gpus=32, nodes=4, cpus_per_task=96, site_modules=cuda/12.6/12.6.1 hpcx/2.20
Shell command: pretrainflow pretrain-vit ...

rule render_shard:
    output: results/datasets/fdb1k/shards/shard-00003.tar
    jobid: 7
    wildcards: dataset=fdb1k, shard=3
    resources: tmpdir=<TBD>, mem_mb=8000, runtime=30, cpus_per_task=8

localrule results_table:
    output: results/summary.parquet
    resources: tmpdir=/tmp

rule all:
    input: results/summary.parquet
    jobid: 0
"""


def test_parse_dry_run_listing():
    jobs = parse_dry_run(DRY_RUN)
    assert [(j.rule, j.submitted) for j in jobs] == [
        ("pretrain_vit", True), ("render_shard", True), ("results_table", False), ("all", False)
    ]  # fmt: skip
    assert jobs[0].resources["gpus"] == "32" and jobs[0].resources["site_modules"] == "cuda/12.6/12.6.1 hpcx/2.20"
    assert jobs[1].wildcards == "dataset=fdb1k, shard=3"


def _plan(site, *args) -> tuple[int, str]:
    out = io.StringIO()
    return plan(site, ["-s", str(TOY_SNAKEFILE), "--workflow-profile", "none", *args], out=out), out.getvalue()


def test_plan_lists_resource_types_and_refuses_unsatisfiable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{VENV_BIN}:{snakemake_env()['PATH']}")
    code, text = _plan("abci", "--set-resources", "part:gpus=16", "part:nodes=2")
    assert code == 0, text
    lines = [line.split() for line in text.splitlines()[2:]]
    assert sorted((line[0], line[-4], line[-3], line[-2]) for line in lines) == [
        ("part", "rt_HF", "2", "8"), ("part", "rt_HF", "2", "8"), ("summary", "rt_HC", "1", "0")
    ]  # fmt: skip
    code, text = _plan("abci", "--set-resources", "part:gpus=9")
    assert code == 2 and "abci cannot give one node 9 GPUs" in text and "2 job(s) cannot run on abci" in text


def test_plan_command_line(tmp_path):
    result = subprocess.run(
        [str(VENV_BIN / "pretrainflow"), "sched", "plan", "--site", "tsubame", "--profile", str(REPO / "profiles/tsubame"),
         "--", "-s", str(TOY_SNAKEFILE), "--workflow-profile", "none"],
        capture_output=True, text=True, cwd=tmp_path, env=snakemake_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("cpu_4") == 3  # two parts and the summary, each 1 core -> cpu_4


STUDIES = REPO / "config" / "studies"


@pytest.mark.slow
@pytest.mark.skipif(not (STUDIES / "fractaldb1k-vit-tiny.yaml").exists(), reason="paper-scale study not written yet")
def test_paper_scale_study_on_abci_gets_the_right_resource_types(tmp_path, monkeypatch):
    # `snakemake -n --profile abci` on FractalDB-1k ViT-Tiny, mapped: 8-GPU pretraining -> one whole rt_HF node,
    # 1-GPU fine-tuning -> rt_HG, CPU-only shard rendering and evaluation -> rt_HC
    monkeypatch.setenv("PRETRAINFLOW_GROUP", "gaa50000")
    out = io.StringIO()
    code = plan("abci", ["-s", str(REPO / "Snakefile"), "-d", str(REPO), "--configfile",
                         str(STUDIES / "fractaldb1k-vit-tiny.yaml")], out=out)  # fmt: skip
    text = out.getvalue()
    assert code == 0, text
    types: dict[str, set[str]] = {}
    for line in text.splitlines()[2:]:
        fields = line.split()
        types.setdefault(fields[0], set()).add(" ".join(fields[-4:-1]))
    assert types["pretrain_vit"] == {"rt_HF 1 8"}
    assert types["finetune_vit"] == {"rt_HG 1 1"}
    assert types["render_shard"] == {"rt_HC 1 0"} and types["evaluate_vit"] == {"rt_HC 1 0"}
