"""What each rule's job asks the scheduler for, computed from the study (rules read it through ``res()``).

Every stage is sized for its own work:
- training stages from their ``devices`` spec (train/devices.py ``job_resources``: the same numbers ``pretrainflow
  submit`` asks for; a total of GPUs leaves the node shape to the site);
- dataset jobs from the dataset spec (datasets/build.py);
- an LLM run's evaluation, export and harness jobs: one process on one device (a GPU when the run trained on GPUs; the
  export none) with host memory for the model's weights, not the training job's node (``llm_weights_mb``);
- bookkeeping rules run in Snakemake itself (``LOCAL_RULES``, the Snakefile's ``localrules:``), never queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pretrainflow.datasets.build import job_resources as dataset_job_resources
from pretrainflow.models.gpt import create_gpt_shape
from pretrainflow.train.devices import job_resources as training_job_resources
from pretrainflow.train.devices import trains_on_gpus
from pretrainflow.train.llm.hf_import import import_job_resources, study_imports

DATASET_STEPS = {"search_categories": "search", "render_shard": "render", "dataset_manifest": "manifest"}

# Rules Snakemake runs itself on the machine it runs on (the Snakefile's `localrules:` names the same ones): each writes
# a few rows or small files in seconds, where a cluster job would wait longer in the queue than it runs.
# dataset_manifest stays a job: it reads every shard once (sha256 and member index), 10-100 GB for 1,000 classes.
LOCAL_RULES = ("pretrain_rows", "build_benchmarks", "build_instructions", "aggregate_results")

# Host memory per parameter of one process that holds an LLM's weights in fp32 while loading or converting them:
# 4 bytes x 2.5 (a converted or moved copy is built next to the loaded tensors), as import_hf (train/llm/hf_import.py).
BYTES_PER_PARAMETER = 10
VOCAB_IF_UNKNOWN = 131072  # a tokenizer given as a file: its size is read at run time; Llama-3's 128,256 fits under it


def llm_weights_mb(run: Mapping[str, Any]) -> int:
    """Host memory (MB) of one process holding a resolved LLM run's weights; at least 2,000 MB.

    Llama-3-8B (vocabulary 128,256 -> 131,072 here): 8.0 G parameters x 10 B = 80 GB; gpt_micro: the floor.
    """
    model = run["model"]
    shape = create_gpt_shape(model["name"], **{key: value for key, value in model.items() if key != "name"})
    vocab = ((run.get("corpus_spec") or {}).get("tokenizer") or {}).get("vocab_size") or VOCAB_IF_UNKNOWN
    return max(2000, -(-shape.num_parameters(vocab) * BYTES_PER_PARAMETER // 10**6))


def rule_resources(study: Any, rule: str, wildcards: Any) -> dict[str, int | None]:
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
    if rule in ("pretrain_vit", "pretrain_llm", "sft_llm", "finetune_vit"):
        if rule == "finetune_vit":
            devices = study.finetunes[(wildcards.run, wildcards.task)]["recipe"]["devices"]
        else:
            devices = study.runs[wildcards.run]["devices"]
        # cores per GPU only with a total of GPUs (the site multiplies them by its GPUs per node); None drops it
        return {"cpus_per_gpu": None, **training_job_resources(devices)}
    if rule in ("evaluate_llm", "export_llm"):
        run = study.runs[wildcards.run]
        # one process at TP=1: held-out loss on one GPU for a GPU run; the export converts tensors on the CPU
        gpus = int(trains_on_gpus(run["devices"])) if rule == "evaluate_llm" else 0
        return {"nodes": 1, "gpus": gpus, "cpus_per_task": 4, "mem_mb": llm_weights_mb(run), "runtime": 30,
                "threads": 1}  # fmt: skip
    if rule == "evaluate_llm_harness":
        spec = study.llm_evals[wildcards.run]
        run = spec["pretrain_spec"]
        # the harness's hf model in one process (one GPU for a GPU run, the cores of one rank), for llm_eval's walltime
        return {"nodes": 1, "gpus": int(trains_on_gpus(run["devices"])), "cpus_per_task": run["devices"]["cpus_per_rank"],
                "mem_mb": llm_weights_mb(run), "runtime": spec["runtime_minutes"], "threads": 1}  # fmt: skip
    if rule == "import_hf":
        # one CPU process per Hugging Face directory, sized from the shape its runs declare (hf_import)
        return import_job_resources(study_imports(study.runs)[wildcards.model].shape)
    if rule in ("build_benchmarks", "build_instructions"):  # one pass over the stdlib sources, seconds
        return {"nodes": 1, "gpus": 0, "cpus_per_task": 1, "mem_mb": 2000, "runtime": 10, "threads": 1}
    raise KeyError(f"rule_resources: no sizing for rule {rule!r}")
