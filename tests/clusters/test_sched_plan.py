"""`pretrainflow sched plan`: a dry run of a study mapped onto a site's resource types, errors before submission."""

from __future__ import annotations

import io
import subprocess

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
    output: results/studies/fractaldb1k-vit-tiny/summary.parquet
    resources: tmpdir=/tmp

rule all:
    input: results/studies/fractaldb1k-vit-tiny/summary.parquet
    jobid: 0
"""


def test_parse_dry_run_listing():
    jobs = parse_dry_run(DRY_RUN)
    assert [(j.rule, j.submitted) for j in jobs] == [
        ("pretrain_vit", True), ("render_shard", True), ("results_table", False), ("all", False)
    ]  # fmt: skip
    assert jobs[0].resources["gpus"] == "32" and jobs[0].resources["site_modules"] == "cuda/12.6/12.6.1 hpcx/2.20"
    assert jobs[1].wildcards == "dataset=fdb1k, shard=3"
    # this Snakemake's dry run prints local rules as `rule`: the workflow's LOCAL_RULES are local all the same
    assert not parse_dry_run(DRY_RUN.replace("rule render_shard:", "rule pretrain_rows:"))[1].submitted


def _plan(site, *args) -> tuple[int, str]:
    out = io.StringIO()
    return plan(site, ["-s", str(TOY_SNAKEFILE), "--workflow-profile", "none", *args], out=out), out.getvalue()


def _job_lines(text: str) -> list[list[str]]:
    """The per-job lines of a plan (between the header and the blank line before the totals)."""
    return [line.split() for line in text.split("\n\n")[0].splitlines()[2:]]


def test_plan_lists_resource_types_and_refuses_unsatisfiable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{VENV_BIN}:{snakemake_env()['PATH']}")
    code, text = _plan("abci", "--set-resources", "part:gpus=16", "part:nodes=2")
    assert code == 0, text
    assert sorted((line[0], line[-4], line[-3], line[-2]) for line in _job_lines(text)) == [
        ("part", "rt_HF", "2", "8"), ("part", "rt_HF", "2", "8"), ("summary", "rt_HC", "1", "0")
    ]  # fmt: skip
    # totals: 2 parts x 2 rt_HF nodes x 5 min (x 8 GPUs) + the summary's 1/6 of a node (32 of 192 cores) x 5 min
    assert "total: 3 submissions, 0.3 node-hours, 2.7 GPU-hours, points n/a (no rate for rt_HC, rt_HF" in text
    code, text = _plan("abci", "--set-resources", "part:gpus=9", "part:nodes=1")
    assert code == 2 and "abci cannot give one node 9 GPUs" in text and "2 job(s) cannot run on abci" in text
    assert "ERROR: part i=0 on abci:" in text  # the error names the job (rule and wildcards) and the site
    # without nodes, 9 GPUs are a total the site shapes: it does not fill whole 8-GPU nodes
    code, text = _plan("abci", "--set-resources", "part:gpus=9")
    assert code == 2 and "9 GPUs do not fill whole abci nodes (rt_HF: 8 GPUs each)" in text


def test_plan_counts_points_with_the_profiles_rates(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", f"{VENV_BIN}:{snakemake_env()['PATH']}")
    # rates are made up for the arithmetic (the published ones are not in our reference: docs/clusters.md)
    code, text = _plan("abci", "--set-resources", "part:gpus=8", "--default-resources", "site_points='rt_HF=2 rt_HC=1'")
    assert code == 0, text
    # 2 parts x 1 rt_HF x 5 min x 2 points/h + the summary 5 min x 1 point/h = 20/60 + 5/60
    assert "points 0.4" in text.splitlines()[-1], text


def test_plan_command_line(tmp_path):
    result = subprocess.run(
        [str(VENV_BIN / "pretrainflow"), "sched", "plan", "--site", "tsubame", "--profile", str(REPO / "profiles/tsubame"),
         "--", "-s", str(TOY_SNAKEFILE), "--workflow-profile", "none"],
        capture_output=True, text=True, cwd=tmp_path, env=snakemake_env(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    jobs = _job_lines(result.stdout)
    assert [line[-4] for line in jobs] == ["cpu_4"] * 3  # two parts and the summary, each 1 core -> cpu_4
    assert "total: 3 submissions" in result.stdout
