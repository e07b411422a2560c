# Validate the study, expand it, and give the rules their specs and targets. Logic lives in pretrainflow.study.load (tested).
import os
import re
import shlex

from snakemake.exceptions import WorkflowError
from snakemake.logging import logger
from snakemake.utils import validate

from pretrainflow.study.load import load_study
from pretrainflow.errors import ConfigError
from pretrainflow.io import canonical_json
from pretrainflow.study import layout
from pretrainflow.schedulers.settings import settings_from
from pretrainflow.schedulers.slurm import plugin_view
from pretrainflow.study.resources import rule_resources
from pretrainflow.provenance import STUDY_ENV
from pretrainflow.train.tracking import ENV_SECTION as TRACKING_ENV
from pretrainflow.study.shared_units import check_shared_units
from pretrainflow.train.llm import hf_import, sft_prepare, sft_spec

try:
    STUDY = load_study(config)
except ConfigError as err:
    # One line naming the key path; nothing has run and nothing has been written.
    raise WorkflowError(f"invalid study config: {err}") from None
try:
    # A unit another study built from a different spec under the same name would be replaced: refused here, before any
    # job (units of equal specs are shared). Paths are relative to the working directory, as the rules' are.
    check_shared_units(STUDY)
except ConfigError as err:
    raise WorkflowError(str(err)) from None
# Every job this workflow runs (here or, loading the study again, on a cluster node) records the study in the
# config.json it publishes: the guard above reads it.
os.environ[STUDY_ENV] = STUDY.name
# ... and gets the study's W&B section (train/tracking.py) the same way: not a rule param, so it reruns nothing and
# units shared with another study (whose default W&B project differs) stay shared.
os.environ[TRACKING_ENV] = canonical_json(STUDY.tracking)
for note in STUDY.notes:
    logger.info(f"study {STUDY.name}: {note}")

# Snakemake's own schema pass fills in the documented defaults of top-level keys.
validate(config, "../schemas/config.schema.yaml")


def _one_of(names):
    """Wildcard regex matching exactly one of `names` (and nothing when there are none)."""
    return "|".join(re.escape(name) for name in sorted(names)) or "(?!x)x"


wildcard_constraints:
    dataset=_one_of(STUDY.datasets),
    corpus=_one_of(STUDY.corpora),
    run=_one_of(set(STUDY.runs) | {run for run, _ in STUDY.finetunes}),
    task=_one_of(STUDY.tasks),
    shard=r"\d{5}",


def dataset_spec(wildcards):
    return STUDY.spec_json("datasets", wildcards.dataset)


def dataset_shards(dataset):
    return [f"{k:05d}" for k in range(STUDY.datasets[dataset]["num_shards"])]


def corpus_spec(wildcards):
    return STUDY.spec_json("corpora", wildcards.corpus)


def run_spec(wildcards):
    return STUDY.spec_json("runs", wildcards.run)


def finetune_spec(wildcards):
    return STUDY.spec_json("finetunes", (wildcards.run, wildcards.task))


def run_dataset_manifest(wildcards):
    """The manifest of the shards a ViT run reads; none on the fly (so no shard is rendered for it)."""
    run = STUDY.runs[wildcards.run]
    return [] if run.get("on_the_fly") else layout.DATASET_MANIFEST.format(dataset=run["dataset"])


def run_dataset_dir(wildcards):
    """results/datasets/{dataset} of a ViT run: its shards, or only its categories on the fly."""
    return layout.dataset_dir(STUDY.runs[wildcards.run]["dataset"])


def run_dataset_files(wildcards):
    """Everything a ViT run reads from its dataset: the shards, or the categories it renders on the fly."""
    dataset = STUDY.runs[wildcards.run]["dataset"]
    if STUDY.runs[wildcards.run].get("on_the_fly"):
        return [layout.DATASET_CATEGORIES.format(dataset=dataset)]
    return [layout.DATASET_SHARD.format(dataset=dataset, shard=k) for k in dataset_shards(dataset)]


def llm_blend_files(wildcards):
    """The indexed token files and tokenizers of every corpus of an LLM run's blend (what training reads)."""
    run = STUDY.runs[wildcards.run]
    names = list(run.get("blend") or {run["corpus"]: 1})
    files = [layout.CORPUS_TOKENIZER.format(corpus=name) for name in names]
    for name in names:
        files += [layout.CORPUS_PREFIX.format(corpus=name) + suffix for suffix in (".bin", ".idx")]
    return files


def run_corpus_manifest(wildcards):
    return layout.CORPUS_MANIFEST.format(corpus=STUDY.runs[wildcards.run]["corpus"])


def finetune_pretrained_model(wildcards):
    """The pretrained weights a fine-tuning cell starts from (none for a scratch baseline); a cell whose pretraining
    equals another run's starts from that run's weights (its pretrain_spec names it)."""
    spec = STUDY.finetunes[(wildcards.run, wildcards.task)]
    if spec["source"] == "scratch":
        return []
    return layout.PRETRAIN_WEIGHTS.format(run=spec["pretrain_spec"]["run_id"])


def study_json():
    return canonical_json(config)


def _profile_default(name):
    """The profile's `default-resources: <name>` as written (quotes optional), or None when it sets none."""
    defaults = workflow.resource_settings.default_resources
    if not defaults or name not in defaults:
        return None
    return str(defaults[name].raw).strip("'\"")


def _profile_site_modules():
    return _profile_default("site_modules")


# profiles/slurm (snakemake-executor-plugin-slurm) says `site_resource_names: slurm-plugin`: that plugin asks sbatch
# for GPUs only from its own names (`gres`, `gpu`), so there a GPU job's resources are given in them (gres=gpu:<per
# node>, nodes, cores per node; pretrainflow.schedulers.slurm.plugin_view). The inner job gets the same default
# resources, so its step sees the same values. Every other site keeps the abstract resources (their `gres` is None).
SLURM_PLUGIN_NAMES = _profile_default("site_resource_names") == "slurm-plugin"
SLURM_NODE_GPUS = _profile_default("site_gpus_per_node")


def res(rule, key):
    """One resource of ``rule``'s jobs, computed by the package (pretrainflow.study.resources)."""

    def value(wildcards):
        resources = rule_resources(STUDY, rule, wildcards)
        if SLURM_PLUGIN_NAMES:
            try:
                resources = plugin_view(resources, node_gpus=SLURM_NODE_GPUS, rule=rule)
            except ConfigError as err:
                raise WorkflowError(f"{rule} jobs on the Slurm profile: {err}") from None
        return resources.get(key) if key == "gres" else resources[key]

    return value


# The site's environment modules (profiles/<site>: site_modules, else $PRETRAINFLOW_MODULES; checked by the package as
# for the PBS / Grid Engine job wrapper). Rules that ask for GPUs declare `envmodules: *SITE_MODULES`, so that
# `--sdm env-modules` loads them whatever the executor; none on a site without modules.
try:  # only the modules' fallback variable: the other site values matter to the job wrapper, not here
    SITE_MODULES = settings_from(
        {"site_modules": _profile_site_modules()}, env={"PRETRAINFLOW_MODULES": os.environ.get("PRETRAINFLOW_MODULES", "")}
    ).modules
except ConfigError as err:
    raise WorkflowError(f"site modules (profile default-resources or $PRETRAINFLOW_MODULES): {err}") from None


def corpus_shard_prefixes(wildcards):
    n = STUDY.corpora[wildcards.corpus]["num_shards"]
    return [f"{layout.corpus_dir(wildcards.corpus)}/shards/shard-{k:05d}" for k in range(n)]


def llm_blend_manifests(wildcards):
    """Manifests of every corpus the run trains on (its blend; names were checked when the study was loaded)."""
    run = STUDY.runs[wildcards.run]
    return [layout.CORPUS_MANIFEST.format(corpus=name) for name in run.get("blend") or {run["corpus"]: 1}]


def run_corpus_tokenizer(wildcards):
    return layout.CORPUS_TOKENIZER.format(corpus=STUDY.runs[wildcards.run]["corpus"])


# Hugging Face imports of the study's `init: {hf: DIR}` runs, by import name (pretrainflow.train.llm.hf_import).
HF_IMPORTS = hf_import.study_imports(STUDY.runs)


def hf_import_dir(wildcards):
    return HF_IMPORTS[wildcards.model].hf


def hf_import_files(wildcards):
    """The Hugging Face directory's files an import reads (config.json, tokenizer.json, the safetensors)."""
    return hf_import.hf_input_files(hf_import_dir(wildcards))


def llm_init_files(wildcards):
    """What an LLM run's `init` starts from: the import's or the earlier run's weights and tokenizer (none without)."""
    return hf_import.init_input_files(STUDY.runs[wildcards.run])


# LLM runs that pretrain (rule pretrain_llm) and that are fine-tuned on instructions (rule sft_llm, an `sft` section).
LLM_PRETRAIN_RUNS = sft_spec.pretraining_llm_runs(STUDY.runs)
LLM_SFT_RUNS = sft_spec.sft_runs(STUDY.runs)


def llm_run_file(name):
    """A file of an LLM run's published directory: results/pretrain/{run}/NAME, or results/sft/{run}/NAME."""
    return lambda wildcards: f"{layout.llm_run_dir(wildcards.run, STUDY.runs[wildcards.run])}/{name}"


def sft_data_path(wildcards):
    """The instruction JSONL an SFT run reads: sft.data.path, or the built stdlib set."""
    return sft_prepare.sft_data_file(STUDY.runs[wildcards.run])


def sft_built_data(wildcards):
    """The built stdlib set when the run reads it (so build_instructions runs first); a user's JSONL is not an input,
    as a corpus's source files are not: it may live where only the cluster sees it, and sft-llm checks it there."""
    spec = STUDY.runs[wildcards.run]
    return [sft_data_path(wildcards)] if spec["sft"]["data"]["kind"] != "jsonl" else []


def finetune_pretrained_arg(wildcards, input):
    """"--pretrained <path>" for a pretrained run, nothing for a scratch baseline (quoted here: inserted whole)."""
    return shlex.join(["--pretrained", input.pretrained]) if input.pretrained else ""


def study_output(template):
    """This study's own output (results/studies/{study}/...; study/layout.py)."""
    return layout.study_path(template, STUDY.name)


def all_targets():
    return [study_output(layout.SUMMARY), study_output(layout.BENCHMARKS_TABLE)]
