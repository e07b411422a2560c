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
PRETRAIN_CURVE = PRETRAIN_DIR + "/metrics.parquet"  # the loss curve the results plot
FINETUNE_DIR = "results/finetune/{run}/{task}"
# LLM runs with an `sft` section (train/llm/sft_spec.py) publish here, as pretraining runs do under PRETRAIN_DIR; the
# stdlib instruction set they read by default is built once (benchmarks/pydoc_instructions.py)
SFT_DIR = "results/sft/{run}"
INSTRUCTIONS_DIR = "results/instructions/python-stdlib"
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
# Each study's own outputs under its `study:` name (filesystem-safe: the schema's $defs/name), so that two studies in
# one results/ tree keep their own tables while sharing the units above (a unit whose resolved spec is equal is built
# once; one whose spec differs under the same name is refused at plan time: study/shared_units.py). {study} templates.
STUDIES_ROOT = "results/studies"
STUDY_DIR = STUDIES_ROOT + "/{study}"
SUMMARY = STUDY_DIR + "/summary.parquet"
PLOTS_DIR = STUDY_DIR + "/plots"
DOWNSTREAM_PLOT = PLOTS_DIR + "/downstream_accuracy.png"
VIT_LOSS_PLOT = PLOTS_DIR + "/pretrain_loss_vit.png"
LLM_LOSS_PLOT = PLOTS_DIR + "/pretrain_loss_llm.png"
# What `pretrainflow aggregate` writes besides the summary: the replicate statistics, the measured figures of every
# benchmarked job (BENCHMARKS_TABLE), and the files Snakemake's own report shows (`snakemake --report`, report()
# flags in workflow/rules/results.smk): the tables as HTML pages and the study as the aggregate received it
STATISTICS = STUDY_DIR + "/statistics.parquet"
TABLES_DIR = STUDY_DIR + "/tables"
STATISTICS_PAGE = TABLES_DIR + "/statistics.html"
JOBS_PAGE = TABLES_DIR + "/jobs.html"
STUDY_CONFIG = STUDY_DIR + "/study.json"
AGGREGATE_LOG = STUDY_DIR + "/logs/aggregate_results.log"
# Where the README tells `snakemake --report` to write (Snakemake takes the path on its command line)
REPORT = STUDY_DIR + "/report.zip"
LOGS = "results/logs/{rule}/{name}.log"
# Snakemake `benchmark:` files, one TSV per job (snakemake/benchmark.py's columns: s, max_rss, cpu_time, ...), named
# by the job's wildcard values in the order JOB_BENCHMARKS lists them:
# results/benchmarks/jobs/render_shard/fdb-tiny/00000.tsv. They sit under jobs/ beside BENCHMARK_TASKS_DIR (the LLM
# benchmark tasks), and `pretrainflow aggregate` gathers them into BENCHMARKS_TABLE (one row per job and repeat).
JOB_BENCHMARKS_ROOT = "results/benchmarks/jobs"
JOB_BENCHMARKS = {
    "search_categories": ("dataset",),
    "render_shard": ("dataset", "shard"),
    "train_tokenizer": ("corpus",),
    "build_indexed_shard": ("corpus", "shard"),
    "pretrain_vit": ("run",),
    "pretrain_llm": ("run",),
    "sft_llm": ("run",),
    "finetune_vit": ("run", "task"),
    "evaluate_vit": ("run", "task"),
    "evaluate_llm": ("run",),
    "evaluate_llm_harness": ("run",),
}
BENCHMARKS_TABLE = STUDY_DIR + "/benchmarks.parquet"


def study_path(template: str, study: str) -> str:
    """One study's output path from a {study} template.

    >>> study_path(SUMMARY, "default")
    'results/studies/default/summary.parquet'
    """
    return template.format(study=study)


def checkpoint_unit(run: str, *, task: str | None = None) -> str:
    """The checkpoint unit of a pretraining run (its id) or of a fine-tune (``finetune/{run}/{task}``)."""
    return run if task is None else f"finetune/{run}/{task}"


def rows_file(run: str, task: str) -> str:
    """``results/rows/{run}/{task}.parquet``: one row file per (unit, task)."""
    return ROWS.format(run=run, task=task)


def pretrain_dir(run: str) -> str:
    return PRETRAIN_DIR.format(run=run)


def llm_run_dir(run: str, spec) -> str:
    """Where an LLM run publishes: SFT_DIR for a run with an ``sft`` section, else PRETRAIN_DIR."""
    return (SFT_DIR if spec.get("sft") else PRETRAIN_DIR).format(run=run)


def dataset_dir(dataset: str) -> str:
    return DATASET_DIR.format(dataset=dataset)


def corpus_dir(corpus: str) -> str:
    return CORPUS_DIR.format(corpus=corpus)


def job_benchmark(rule: str) -> str:
    """The ``benchmark:`` template of a benchmarked rule (its wildcards in JOB_BENCHMARKS order).

    >>> job_benchmark("finetune_vit")
    'results/benchmarks/jobs/finetune_vit/{run}/{task}.tsv'
    """
    return "/".join([JOB_BENCHMARKS_ROOT, rule, *(f"{{{name}}}" for name in JOB_BENCHMARKS[rule])]) + ".tsv"


def job_benchmark_file(rule: str, *values: str) -> str:
    """One job's benchmark file, from its wildcard values in JOB_BENCHMARKS order.

    >>> job_benchmark_file("render_shard", "fdb-tiny", "00000")
    'results/benchmarks/jobs/render_shard/fdb-tiny/00000.tsv'
    """
    return job_benchmark(rule).format(**dict(zip(JOB_BENCHMARKS[rule], values, strict=True)))


def benchmark_files(study) -> list[str]:
    """The benchmark file of every benchmarked job a study's DAG runs (inputs of the aggregation), from the same
    expansion as its row files: the datasets of its ViT runs (search + every shard: a run's manifest needs them all),
    the corpora of its LLM runs' blends (tokenizer + every shard), each run, fine-tune and evaluation.
    ``study`` is a ``pretrainflow.study.load.Study`` (not imported here: layout stays free of the loader)."""
    vit_runs, llm_runs = study.runs_of_kind("vit"), study.runs_of_kind("llm")
    datasets = sorted({study.runs[run]["dataset"] for run in vit_runs})
    corpora = sorted(
        {name for run in llm_runs for name in study.runs[run].get("blend") or {study.runs[run]["corpus"]: 1}}
    )
    files = [job_benchmark_file("search_categories", name) for name in datasets]
    files += [
        job_benchmark_file("render_shard", name, f"{k:05d}")
        for name in datasets
        for k in range(study.datasets[name]["num_shards"])
    ]
    files += [job_benchmark_file("train_tokenizer", name) for name in corpora]
    files += [
        job_benchmark_file("build_indexed_shard", name, f"{k:05d}")
        for name in corpora
        for k in range(study.corpora[name]["num_shards"])
    ]
    files += [job_benchmark_file("pretrain_vit", run) for run in vit_runs]
    files += [job_benchmark_file("sft_llm" if study.runs[run].get("sft") else "pretrain_llm", run) for run in llm_runs]
    files += [
        job_benchmark_file(rule, run, task)
        for run, task in study.finetunes
        for rule in ("finetune_vit", "evaluate_vit")
    ]
    files += [job_benchmark_file("evaluate_llm", run) for run in llm_runs]
    files += [job_benchmark_file("evaluate_llm_harness", run) for run in study.llm_evals]
    return files
