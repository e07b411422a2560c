"""Every ``results/...`` path of a study, in one place: the Snakemake rules, ``Study.row_files`` and
``pretrainflow submit`` all take their paths from here, so a stage's output is where every reader looks.

Templates use Snakemake wildcards (``{run}``); the functions fill them in for one unit.

>>> PRETRAIN_DIR.format(run="vit-micro-fdb")
'results/pretrain/vit-micro-fdb'
>>> checkpoint_unit("vit-micro-fdb", task="digits")
'finetune/vit-micro-fdb/digits'
"""

from __future__ import annotations

RESULTS = "results"
DATASET_DIR = "results/datasets/{dataset}"
DATASET_MANIFEST = DATASET_DIR + "/manifest.json"
DATASET_CATEGORIES = DATASET_DIR + "/categories.parquet"
DATASET_SHARD = DATASET_DIR + "/shards/shard-{shard}.tar"
CORPORA_ROOT = "results/corpora"
CORPUS_DIR = CORPORA_ROOT + "/{corpus}"
CORPUS_MANIFEST = CORPUS_DIR + "/manifest.json"
CORPUS_TOKENIZER = CORPUS_DIR + "/tokenizer.json"
# megatron-core indexed dataset PREFIX.bin + PREFIX.idx, relative to a corpora root (tests and jobs may move the root)
CORPUS_PREFIX_IN_ROOT = "{corpus}/{corpus}_text_document"
CORPUS_PREFIX = CORPORA_ROOT + "/" + CORPUS_PREFIX_IN_ROOT
# Hugging Face models imported for `init: {hf: DIR}` (pretrainflow.train.llm.hf_import), one per directory
IMPORTS_ROOT = "results/import"
IMPORT_WEIGHTS = IMPORTS_ROOT + "/{model}/model.safetensors"
IMPORT_TOKENIZER = IMPORTS_ROOT + "/{model}/tokenizer.json"
PRETRAIN_DIR = "results/pretrain/{run}"
PRETRAIN_WEIGHTS = PRETRAIN_DIR + "/model.safetensors"
FINETUNE_DIR = "results/finetune/{run}/{task}"
EXPORT_HF_DIR = "results/export/{run}-hf"
# The shipped lm-evaluation-harness tasks, built from this Python's stdlib (pretrainflow.benchmarks.pydoc_tasks)
BENCHMARK_TASKS_DIR = "results/benchmarks/tasks"
ROWS = "results/rows/{run}/{task}.parquet"
# Row files of the stages that are not a fine-tuning task (task names may not take these: train/vit/spec.py RESERVED_TASK_NAMES)
PRETRAIN_ROWS_TASK = "pretrain"
HELDOUT_ROWS_TASK = "heldout"
# An LLM run's lm-evaluation-harness rows, all tasks in one file (task column = harness task name); a study with
# llm_eval may not name a task so (study/load.py)
HARNESS_ROWS_TASK = "harness"
# Outside every stage's outputs, so a rerun after a walltime kill finds them (train/checkpoints.py: {unit}/{hash12}/)
CHECKPOINTS_ROOT = "results/checkpoints"
PLOTS_DIR = "results/plots"
SUMMARY = "results/summary.parquet"
REPORT = "results/report.html"
LOGS = "results/logs/{rule}/{name}.log"


def checkpoint_unit(run: str, *, task: str | None = None) -> str:
    """The checkpoint unit of a pretraining run (its id) or of a fine-tune (``finetune/{run}/{task}``)."""
    return run if task is None else f"finetune/{run}/{task}"


def rows_file(run: str, task: str) -> str:
    """``results/rows/{run}/{task}.parquet``: one row file per (unit, task)."""
    return ROWS.format(run=run, task=task)


def pretrain_dir(run: str) -> str:
    return PRETRAIN_DIR.format(run=run)


def dataset_dir(dataset: str) -> str:
    return DATASET_DIR.format(dataset=dataset)


def corpus_dir(corpus: str) -> str:
    return CORPUS_DIR.format(corpus=corpus)
