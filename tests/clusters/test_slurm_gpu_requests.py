"""GPU jobs on profiles/slurm ask sbatch for their GPUs, per node (issue 12; the Slurm plugin reads only `gres` / `gpu`).

The real chain up to sbatch: Snakemake with the shipped profiles/slurm plans the shipped llama-1b study (our rules,
our res(), the profile's default resources), and the job resources it prints are handed to
snakemake-executor-plugin-slurm's own command builders (``get_submit_command`` + ``set_gres_string``: the string the
plugin runs as its sbatch call) and to its job-step builders (the ``srun`` inside the job). The local Slurm has no GPUs
(it would reject any GPU request), so the sbatch line itself is the checked product. ABCI keeps the abstract resources
its own job wrapper maps (gpus in total, no gres).
"""

from __future__ import annotations

import functools
import shlex
import subprocess

import pytest
from cluster_helpers import REPO, VENV_BIN, snakemake_env
from snakemake_executor_plugin_slurm.submit_string import get_submit_command
from snakemake_executor_plugin_slurm.utils import set_gres_string
from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting, get_gpu_setting, get_node_setting

from pretrainflow.errors import ConfigError
from pretrainflow.schedulers.plan import parse_dry_run
from pretrainflow.schedulers.slurm import plugin_view

STUDY = REPO / "config" / "studies" / "llama-1b.yaml"  # pretrain_llm: devices {gpus: 32}; evaluate_llm: 1 GPU


class PluginJob:
    """What the plugin's builders read of a Snakemake job: ``resources`` (``.get`` and attributes) and ``threads``."""

    class Resources(dict):
        __getattr__ = dict.__getitem__

    def __init__(self, rule: str, printed: dict[str, str]):
        self.name = rule
        # the dry run prints values; Snakemake hands the plugin ints for whole numbers and strings otherwise
        values = {key: int(value) if value.isdigit() else value for key, value in printed.items() if value != "<TBD>"}
        self.resources = self.Resources(values)
        self.threads = 1


@functools.cache
def _dry_run(site: str, workdir: str) -> dict[str, PluginJob]:
    result = subprocess.run(
        [str(VENV_BIN / "snakemake"), "--dry-run", "-s", str(REPO / "Snakefile"), "-d", workdir,
         "--profile", str(REPO / "profiles" / site), "--workflow-profile", "none", "--configfile", str(STUDY)],
        capture_output=True, text=True, env=snakemake_env(),
    )  # fmt: skip
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    return {job.rule: PluginJob(job.rule, job.resources) for job in parse_dry_run(result.stdout)}


def _jobs(site: str, tmp_path_factory) -> dict[str, PluginJob]:
    """The study's jobs as Snakemake plans them with profiles/<site> (one dry run per site and session)."""
    return _dry_run(site, str(tmp_path_factory.getbasetemp() / f"dry-{site}"))


def _sbatch_argv(job: PluginJob) -> list[str]:
    params = {"run_uuid": "uuid", "slurm_logfile": "/tmp/%j.log", "comment_str": f"rule_{job.name}", "account": "",
              "partition": "", "workdir": "/work"}  # fmt: skip
    return shlex.split(get_submit_command(job, params) + set_gres_string(job))


def test_multi_node_gpu_job_asks_for_its_gpus_per_node(tmp_path_factory):
    job = _jobs("slurm", tmp_path_factory)["pretrain_llm"]
    argv = _sbatch_argv(job)
    # 32 GPUs in total on the profile's 8-GPU nodes: 4 nodes, 8 GPUs and 8 ranks x 16 cores on each, one task per node
    assert "--gres=gpu:8" in argv and "--nodes=4" in argv, argv
    assert "--cpus-per-task=128" in argv and argv[argv.index("--mem") + 1] == "700000", argv
    assert not [item for item in argv if item.startswith(("--gpus", "--ntasks", "--cpus-per-gpu"))], argv
    # inside the job, the plugin's step (srun -n1) takes the job's GPUs of its node instead of asking for the total
    assert get_gpu_setting(job) == "" and get_node_setting(job) == "--nodes=4"
    assert get_cpu_setting(job, gpu=False) == "--cpus-per-task=128"


def test_one_gpu_job_and_cpu_jobs(tmp_path_factory):
    jobs = _jobs("slurm", tmp_path_factory)
    evaluate = _sbatch_argv(jobs["evaluate_llm"])
    assert "--gres=gpu:1" in evaluate, evaluate
    assert not [item for item in evaluate if item.startswith(("--gpus", "--ntasks", "--nodes"))], evaluate
    tokenizer = _sbatch_argv(jobs["train_tokenizer"])  # a CPU job: no GPU option, one task
    assert not [item for item in tokenizer if "gpu" in item] and "--ntasks=1" in tokenizer, tokenizer


def test_abci_profile_keeps_the_abstract_request(tmp_path_factory):
    # the ABCI wrapper maps `gpus` (a total) itself (schedulers/resources.py): no plugin names there
    job = _jobs("abci", tmp_path_factory)["pretrain_llm"]
    assert job.resources["gpus"] == 32 and "gres" not in job.resources and "nodes" not in job.resources


def test_plugin_view_per_node_form_and_errors():
    per_node = {"nodes": 2, "gpus": 16, "cpus_per_task": 64, "mem_mb": 400000, "runtime": 60, "threads": 1}
    view = plugin_view(per_node, node_gpus=None)
    assert (view["nodes"], view["gres"], view["gpus"], view["cpus_per_task"]) == (2, "gpu:8", None, 64)
    assert plugin_view({"gpus": 0, "cpus_per_task": 2, "mem_mb": 10}, node_gpus="8")["gres"] is None
    with pytest.raises(ConfigError, match="12 GPUs do not fill whole slurm nodes"):
        plugin_view({"nodes": None, "gpus": 12, "cpus_per_gpu": 8, "cpus_per_task": 8}, node_gpus="8")
