"""What each rule's job asks the scheduler for, computed from the study (rules read it through ``res()``).

Training stages size themselves from their ``devices`` spec (train/devices.py ``job_resources``: the same numbers
``pretrainflow submit`` asks for); dataset jobs from the dataset spec (datasets/build.py); evaluation and export run
one process on one device (a GPU when the run trained on GPUs) with the run's memory; the harness job for as long as
the study's ``llm_eval.runtime_minutes``.
"""

from __future__ import annotations

from typing import Any

from pretrainflow.datasets.build import job_resources as dataset_job_resources
from pretrainflow.train.devices import job_resources as training_job_resources

DATASET_STEPS = {"search_categories": "search", "render_shard": "render", "dataset_manifest": "manifest"}


def rule_resources(study: Any, rule: str, wildcards: Any) -> dict[str, int]:
    """Abstract resources (nodes, gpus, cpus_per_task, mem_mb, runtime, threads) of one job of ``rule``."""
    if rule in DATASET_STEPS:
        spec = study.datasets[wildcards.dataset]
        return {"cpus_per_task": 1, "threads": 1, **dataset_job_resources(spec, DATASET_STEPS[rule])}
    if rule == "train_tokenizer":
        # BPE training holds the word counts of its sample in memory (tokenizers parallelises over cores); user
        # corpora (jsonl/text) may be web scale, the built-in docstring corpus is about 1 MB.
        large = study.corpora[wildcards.corpus]["source"]["kind"] != "python-stdlib-docstrings"
        return {
            "cpus_per_task": 16 if large else 2,
            "mem_mb": 128000 if large else 4000,
            "runtime": 600 if large else 30,
        }
    if rule in ("pretrain_vit", "pretrain_llm"):
        return training_job_resources(study.runs[wildcards.run]["devices"])
    if rule == "finetune_vit":
        return training_job_resources(study.finetunes[(wildcards.run, wildcards.task)]["recipe"]["devices"])
    if rule in ("evaluate_llm", "export_llm"):
        devices = study.runs[wildcards.run]["devices"]
        # one process at TP=1: on one GPU for a GPU run (export needs none), with the run's memory for the weights
        gpus = min(1, devices["gpus_per_node"]) if rule == "evaluate_llm" else 0
        return {"nodes": 1, "gpus": gpus, "cpus_per_task": 1, "mem_mb": devices["mem_mb"], "runtime": 30, "threads": 1}
    if rule == "evaluate_llm_harness":
        spec = study.llm_evals[wildcards.run]
        devices = spec["pretrain_spec"]["devices"]
        # the harness's hf model in one process (one GPU for a GPU run, the cores of one rank), for llm_eval's walltime
        return {"nodes": 1, "gpus": min(1, devices["gpus_per_node"]), "cpus_per_task": devices["cpus_per_rank"],
                "mem_mb": devices["mem_mb"], "runtime": spec["runtime_minutes"], "threads": 1}  # fmt: skip
    if rule == "build_benchmarks":
        return {"nodes": 1, "gpus": 0, "cpus_per_task": 1, "mem_mb": 2000, "runtime": 10, "threads": 1}
    raise KeyError(f"rule_resources: no sizing for rule {rule!r}")
