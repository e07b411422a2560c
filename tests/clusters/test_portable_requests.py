"""Requests that travel between sites, and stages sized for their own work (issue 12, first part).

- every shipped study in config/studies plans on ABCI, TSUBAME and Slurm (one Snakemake dry run per study, placed on
  each site with that site's profile defaults: the same mapping `pretrainflow sched plan` and `sched submit` use);
- a run's total of GPUs (`devices: {gpus: 32}`) is shaped by each site, its spec and hash stay the same everywhere, and
  inside the job the spec reads the shape back from the allocation;
- a request no node of a site can hold is an error naming the run and the site;
- evaluation and export of an LLM run take one device and the memory of the model's weights; bookkeeping rules are
  Snakemake's local rules.
"""

from __future__ import annotations

import functools
import io
import re
import subprocess

import pytest
import yaml
from cluster_helpers import REPO, VENV_BIN, snakemake_env

from pretrainflow.errors import ConfigError
from pretrainflow.io import config_hash
from pretrainflow.schedulers.plan import PlannedJob, parse_dry_run, print_plan, site_plan
from pretrainflow.schedulers.resources import ResourceRequest, place
from pretrainflow.study.load import load_study
from pretrainflow.study.resources import LOCAL_RULES, rule_resources
from pretrainflow.train.devices import DevicesSpec, allocation_shape

STUDIES = sorted((REPO / "config" / "studies").glob("*.yaml"))
SITES = ("abci", "tsubame", "slurm")
# dry runs of 15-35 s here (4-5 datasets x 1,000 shards; 63 runs): still run in CI, skipped by `-m "not slow"`
SLOW_STUDIES = {"fdsl-families-vit-tiny", "newton-vit-tiny", "large-batch-optimizers"}


def _case(study, site):
    marks = [pytest.mark.slow] if study.stem in SLOW_STUDIES else []
    return pytest.param(study, site, marks=marks, id=f"{study.stem}-{site}")


@functools.cache
def _dry_run_jobs(study_path: str, workdir: str) -> tuple[PlannedJob, ...]:
    """The jobs of the whole study (fresh working directory), with the rules' own resources only."""
    result = subprocess.run(
        [str(VENV_BIN / "snakemake"), "--dry-run", "-s", str(REPO / "Snakefile"), "-d", workdir,
         "--workflow-profile", "none", "--configfile", study_path],
        capture_output=True, text=True, env=snakemake_env(),
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return tuple(parse_dry_run(result.stdout))


@functools.cache
def _profile_defaults(site: str) -> dict[str, str]:
    config = yaml.safe_load((REPO / "profiles" / site / "config.yaml").read_text())
    return {key: str(value) for key, value in (config.get("default-resources") or {}).items()}


def _study_plan(study, site, tmp_path_factory):
    """What `pretrainflow sched plan --site <site>` computes: the profile's default-resources under the rules' own."""
    workdir = tmp_path_factory.getbasetemp() / "studies"
    hf = workdir / "data" / "hf" / "Meta-Llama-3-8B"  # llama-8b-continued imports a local HF model: stand-ins
    hf.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        (hf / name).touch()
    jobs = [
        PlannedJob(rule=job.rule, wildcards=job.wildcards, localrule=job.localrule, has_output=job.has_output,
                   resources={**_profile_defaults(site), **job.resources})
        for job in _dry_run_jobs(str(study), str(workdir))
    ]  # fmt: skip
    return site_plan(site, jobs)


@pytest.mark.parametrize(("study", "site"), [_case(study, site) for study in STUDIES for site in SITES])
def test_every_shipped_study_plans_on_every_site(study, site, tmp_path_factory):
    result = _study_plan(study, site, tmp_path_factory)
    out = io.StringIO()
    print_plan(result, out)
    assert not result.failed, out.getvalue()[-3000:]
    assert result.placed and result.node_hours > 0
    assert all(job.rule not in LOCAL_RULES for job, _ in result.placed)  # bookkeeping stays with Snakemake


def test_fractaldb1k_resource_types_per_site(tmp_path_factory):
    study = REPO / "config" / "studies" / "fractaldb1k-vit-tiny.yaml"
    types = {}
    for site in SITES:
        for job, placed in _study_plan(study, site, tmp_path_factory).placed:
            types.setdefault((site, job.rule), set()).add((placed.resource_type, placed.count, placed.gpus_per_node))
    # 8 GPUs in total: one whole ABCI node, two TSUBAME nodes of 4, one Slurm node of the profile's 8
    assert types["abci", "pretrain_vit"] == {("rt_HF", 1, 8)}
    assert types["tsubame", "pretrain_vit"] == {("node_f", 2, 4)}
    assert types["slurm", "pretrain_vit"] == {("gpu", 1, 8)}
    assert types["abci", "finetune_vit"] == {("rt_HG", 1, 1)} and types["tsubame", "finetune_vit"] == {("node_q", 1, 1)}
    assert types["abci", "render_shard"] == {("rt_HC", 1, 0)} and types["abci", "evaluate_vit"] == {("rt_HC", 1, 0)}
    local = {job.rule for job in _study_plan(study, "abci", tmp_path_factory).local}
    assert local == {"pretrain_rows", "aggregate_results"}


def test_bookkeeping_rules_are_local_rules():
    # the Snakefile's `localrules:` and the list `sched plan` reads are the same
    snakefile = (REPO / "Snakefile").read_text()
    block = re.search(r"^localrules:\n((?:    \w+,?\n)+)", snakefile, re.MULTILINE)
    assert block, "Snakefile: no `localrules:` block"
    assert sorted(re.findall(r"\w+", block.group(1))) == sorted(LOCAL_RULES)


# ------------------------------------------------------------------------------------ the devices spec, both forms


def test_total_form_resolves_its_shape_from_the_allocation(monkeypatch):
    study = load_study(REPO / "config" / "studies" / "fractaldb1k-vit-tiny.yaml")
    spec = study.runs["vit-tiny-fdb1k"]
    assert spec["devices"] == {"gpus": 8, "cpu_ranks": 1, "cpus_per_rank": 8, "mem_mb": 400000, "runtime_minutes": 720}
    from pretrainflow.train.vit.spec import VitRunSpec

    # inside a job: our wrapper exports the placement's GPUs per node (TSUBAME 2 x node_f, ABCI 1 x rt_HF)
    for per_node, shape in (("4", (2, 4)), ("8", (1, 8))):
        monkeypatch.setenv("PRETRAINFLOW_GPUS_PER_NODE", per_node)
        run = VitRunSpec.from_dict(spec)
        assert (run.devices.nodes, run.devices.gpus_per_node, run.devices.procs_per_node) == (*shape, shape[1])
        assert run.devices.world_size(cuda=True) == 8 and run.batch.global_batch == spec["batch"]["global"]
        assert config_hash(run.to_dict()) == config_hash(spec)  # the same spec, hash and checkpoints on every site
    assert allocation_shape(64, {"SLURM_JOB_NUM_NODES": "8"}) == (8, 8)
    assert allocation_shape(32, {"PRETRAINFLOW_GPUS_PER_NODE": "1"}) == (32, 1)  # a 1-GPU evaluation reading the spec


def test_per_node_form_reads_as_before():
    # the per-node form's resolved spec has the keys (and so the config hashes) it had before `gpus` existed
    default = load_study(REPO / "config" / "config.yaml")
    for run in default.runs.values():
        assert set(run["devices"]) == {"nodes", "gpus_per_node", "cpu_ranks", "cpus_per_rank", "mem_mb",
                                       "runtime_minutes"}  # fmt: skip
    spec = DevicesSpec(nodes=2, gpus_per_node=4)
    assert (spec.gpus, spec.omitted_keys(), spec.world_size(cuda=True)) == (0, ("gpus",), 8)


def test_both_forms_at_once_is_an_error_naming_the_key():
    from pretrainflow.train.vit.spec import VitRunSpec

    with pytest.raises(ConfigError, match=r"pretrain\.devices\.nodes: give the job's total \(gpus: 8"):
        VitRunSpec.from_dict({"model": {"name": "vit_test"}, "dataset": "d", "devices": {"gpus": 8, "nodes": 1}})
    with pytest.raises(ConfigError, match=r"pretrain\.devices\.gpus: expected an integer >= 0"):
        VitRunSpec.from_dict({"model": {"name": "vit_test"}, "dataset": "d", "devices": {"gpus": -8}})


def test_request_no_node_can_hold_names_the_run_and_the_site(tmp_path, monkeypatch):
    # the old 8-per-node shape on TSUBAME (4 GPUs per node): through `sched plan` and through `sched submit`
    raw = yaml.safe_load((REPO / "config" / "studies" / "fractaldb1k-vit-tiny.yaml").read_text())
    raw["pretrain"]["vit-tiny-fdb1k"]["devices"] = {"nodes": 1, "gpus_per_node": 8, "cpus_per_rank": 8}
    study = load_study(raw)
    wildcards = type("W", (), {"run": "vit-tiny-fdb1k"})()
    resources = {k: str(v) for k, v in rule_resources(study, "pretrain_vit", wildcards).items() if v is not None}
    job = PlannedJob(rule="pretrain_vit", wildcards="run=vit-tiny-fdb1k", has_output=True, resources=resources)
    out = io.StringIO()
    print_plan(site_plan("tsubame", [job]), out)
    assert "ERROR: pretrain_vit run=vit-tiny-fdb1k on tsubame: resources: tsubame cannot give one node 8 GPUs" in (
        out.getvalue()
    )
    from pretrainflow.schedulers.commands import prepare_submit

    monkeypatch.setenv("PRETRAINFLOW_GROUP", "tga-mylab")
    script = tmp_path / "snakejob.sh"
    script.write_text('#!/bin/sh\n# properties = {"rule": "pretrain_vit", "resources": {"gpus": 8, "nodes": 1}, '
                      '"wildcards": {"run": "vit-tiny-fdb1k"}}\ntrue\n')  # fmt: skip
    with pytest.raises(ConfigError, match=r"^pretrain_vit\.vit-tiny-fdb1k: resources: tsubame cannot give one node 8"):
        prepare_submit("tsubame", script, [], tmp_path)


# ---------------------------------------------------------------------------------- stages sized for their own work


@pytest.mark.parametrize(
    ("study", "run", "mem_mb", "gpu_types", "cpu_types"),
    [
        # 1.04 G parameters x 10 B; 8.05 G x 10 B: more than TSUBAME's gpu_1 (32 GB) or cpu_16 (64 GB) hold
        ("llama-1b", "llama-1b-web", 10_403, ("rt_HG", "gpu_1"), ("rt_HC", "cpu_4")),
        ("llama-8b-continued", "llama-8b-ja", 80_534, ("rt_HG", "node_q"), ("rt_HC", "cpu_40")),
    ],
)
def test_llm_evaluation_and_export_take_one_device(study, run, mem_mb, gpu_types, cpu_types):
    loaded = load_study(REPO / "config" / "studies" / f"{study}.yaml")
    wildcards = type("W", (), {"run": run})()
    evaluate = rule_resources(loaded, "evaluate_llm", wildcards)
    export = rule_resources(loaded, "export_llm", wildcards)
    assert (evaluate["nodes"], evaluate["gpus"], evaluate["mem_mb"]) == (1, 1, mem_mb)
    assert (export["nodes"], export["gpus"], export["mem_mb"]) == (1, 0, mem_mb)
    assert loaded.runs[run]["devices"]["mem_mb"] == 700_000  # the training job's node memory is not inherited
    for site, gpu_type, cpu_type in zip(("abci", "tsubame"), gpu_types, cpu_types, strict=True):
        gpu = place(site, ResourceRequest.from_resources(evaluate, "evaluate_llm"))
        cpu = place(site, ResourceRequest.from_resources(export, "export_llm"))
        assert (gpu.resource_type, gpu.count, gpu.gpus_per_node) == (gpu_type, 1, 1)
        assert (cpu.resource_type, cpu.count, cpu.gpus_per_node) == (cpu_type, 1, 0)


def test_harness_of_a_cpu_run_takes_no_gpu():
    study = load_study(REPO / "config" / "config.yaml")
    wildcards = type("W", (), {"run": "gpt-micro-pydocs"})()
    harness = rule_resources(study, "evaluate_llm_harness", wildcards)
    assert (harness["gpus"], harness["nodes"], harness["mem_mb"]) == (0, 1, 2000)


def test_submitit_route_shapes_a_total_as_the_profiles_do(tmp_path):
    # `pretrainflow submit --site tsubame|abci|slurm`: the executors get the site's shape of the run's total
    from pretrainflow.schedulers.submit import make_executor

    spec = load_study(REPO / "config" / "studies" / "llama-1b.yaml").runs["llama-1b-web"]
    shapes = {}
    for site, values in (("abci", {}), ("tsubame", {}), ("slurm", {"site_gpus_per_node": 8})):
        executor = make_executor(site, tmp_path / site, spec, {"site_group": "grp", **values}, 1)
        params = executor.parameters
        shapes[site] = (params["nodes"], params["gpus_per_node"], params["cpus_per_task"])
    assert shapes == {"abci": (4, 8, 128), "tsubame": (8, 4, 64), "slurm": (4, 8, 128)}
