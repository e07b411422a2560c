# pretrainflow: one declarative study -> one DAG -> one results table.
#   snakemake                        # the default study (config/config.yaml) on this machine (profiles/default)
#   snakemake --profile abci all     # the same study on ABCI 3.0; --profile tsubame / slurm for the other sites
#   snakemake --configfile config/studies/fractaldb1k-vit-tiny.yaml -n   # plan a paper-scale study
# Stages are files: datasets -> corpora -> pretrain (DeepSpeed ViT | megatron-core GPT) -> finetune -> evaluate -> results.
# Units are shared between studies in one results/ tree; each study's tables are its own: results/studies/<study>/.
from snakemake.utils import min_version

min_version("9.0")


# The front page of `snakemake --report results/studies/<study>/report.zip` (what each part of the report shows).
report: "workflow/report/workflow.rst"


# The default study, unless a study is given with --configfile (a study file replaces it: it is not merged into it).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/datasets.smk"
include: "workflow/rules/corpora.smk"
include: "workflow/rules/pretrain_vit.smk"
include: "workflow/rules/pretrain_llm.smk"
include: "workflow/rules/finetune_llm.smk"
include: "workflow/rules/finetune.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/evaluate_llm_harness.smk"
include: "workflow/rules/results.smk"


# Bookkeeping rules Snakemake runs itself on a cluster (seconds of work each; never queued as jobs): the same list as
# pretrainflow.study.resources.LOCAL_RULES, which `pretrainflow sched plan` reads.
localrules:
    pretrain_rows,
    build_benchmarks,
    build_instructions,
    aggregate_results,


rule all:
    default_target: True
    input:
        all_targets(),
