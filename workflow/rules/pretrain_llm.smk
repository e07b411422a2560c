# GPT pretraining through megatron-core (pretrainflow.train.llm), held-out perplexity rows, Hugging Face export.
# Checkpoints live in results/checkpoints/{run}/<config hash>/, outside the outputs: a rerun after a walltime kill
# resumes there (exit code 75 = checkpointed on a signal); a changed run config starts afresh in a new hash directory.
# Continued pretraining (`init:`): import_hf turns a local Hugging Face Llama into megatron-core tensors once per
# directory; a run with `init: {run: X}` reads X's published weights, so Snakemake orders X first. pretrain-llm finds
# both under their default roots (results/import, results/pretrain: --imports-dir, --pretrained-dir).
# SFT runs (an `sft` section) train in finetune_llm.smk and publish under results/sft/{run}; evaluation and export here
# read every LLM run from where it published (llm_run_file, common.smk).
# The export needs no input for the chat template: the publisher records a run's template in model.safetensors'
# metadata (train/llm/publish.py), which export-llama writes into tokenizer_config.json.


rule import_hf:
    wildcard_constraints:
        model=_one_of(HF_IMPORTS),
    input:
        hf_import_files,
    output:
        model="results/import/{model}/model.safetensors",
        tokenizer="results/import/{model}/tokenizer.json",
        config="results/import/{model}/config.json",
    params:
        hf=hf_import_dir,
        out=subpath(output.model, parent=True),
    log:
        "results/logs/import_hf/{model}.log",
    resources:
        nodes=res("import_hf", "nodes"),
        gpus=res("import_hf", "gpus"),
        gres=res("import_hf", "gres"),  # Slurm plugin only (profiles/slurm): GPUs per node
        cpus_per_task=res("import_hf", "cpus_per_task"),
        mem_mb=res("import_hf", "mem_mb"),
        runtime=res("import_hf", "runtime"),
    envmodules:
        *SITE_MODULES,
    conda:
        "../../envs/llm.yaml"
    shell:
        "pretrainflow import-hf --hf {params.hf:q} --out {params.out:q} > {log:q} 2>&1"


rule pretrain_llm:
    wildcard_constraints:
        run=_one_of(LLM_PRETRAIN_RUNS),
    input:
        manifests=llm_blend_manifests,
        data=llm_blend_files,
        init=llm_init_files,
    output:
        model="results/pretrain/{run}/model.safetensors",
        metrics="results/pretrain/{run}/metrics.parquet",
        summary="results/pretrain/{run}/summary.json",
        config="results/pretrain/{run}/config.json",
    params:
        spec=run_spec,
        out=subpath(output.model, parent=True),
        corpora=layout.CORPORA_ROOT,
        checkpoints=layout.CHECKPOINTS_ROOT,
    log:
        "results/logs/pretrain_llm/{run}.log",
    benchmark:
        "results/benchmarks/jobs/pretrain_llm/{run}.tsv"
    threads: res("pretrain_llm", "threads")
    resources:
        nodes=res("pretrain_llm", "nodes"),
        gpus=res("pretrain_llm", "gpus"),
        gres=res("pretrain_llm", "gres"),  # Slurm plugin only (profiles/slurm): GPUs per node
        cpus_per_gpu=res("pretrain_llm", "cpus_per_gpu"),  # with a total of GPUs; None (dropped) otherwise
        cpus_per_task=res("pretrain_llm", "cpus_per_task"),
        mem_mb=res("pretrain_llm", "mem_mb"),
        runtime=res("pretrain_llm", "runtime"),
    envmodules:
        *SITE_MODULES,
    conda:
        "../../envs/llm.yaml"
    shell:
        "pretrainflow pretrain-llm --spec {params.spec:q} --out {params.out:q} --corpora-dir {params.corpora:q}"
        " --checkpoints {params.checkpoints:q} > {log:q} 2>&1"


rule evaluate_llm:
    wildcard_constraints:
        run=_one_of(STUDY.runs_of_kind("llm")),
    input:
        model=llm_run_file("model.safetensors"),
        summary=llm_run_file("summary.json"),
        manifest=run_corpus_manifest,
        data=llm_blend_files,
    output:
        "results/rows/{run}/heldout.parquet",
    params:
        spec=run_spec,
        corpora=layout.CORPORA_ROOT,
        checkpoints=layout.CHECKPOINTS_ROOT,
    log:
        "results/logs/evaluate_llm/{run}.log",
    benchmark:
        "results/benchmarks/jobs/evaluate_llm/{run}.tsv"
    resources:
        gpus=res("evaluate_llm", "gpus"),
        gres=res("evaluate_llm", "gres"),  # Slurm plugin only (profiles/slurm): GPUs per node
        cpus_per_task=res("evaluate_llm", "cpus_per_task"),
        mem_mb=res("evaluate_llm", "mem_mb"),
        runtime=res("evaluate_llm", "runtime"),
    envmodules:
        *SITE_MODULES,
    conda:
        "../../envs/llm.yaml"
    shell:
        "pretrainflow evaluate-llm --spec {params.spec:q} --model {input.model:q} --out {output:q}"
        " --corpora-dir {params.corpora:q} --checkpoints {params.checkpoints:q} > {log:q} 2>&1"


rule export_llm:
    wildcard_constraints:
        run=_one_of(STUDY.runs_of_kind("llm")),
    input:
        model=llm_run_file("model.safetensors"),
        tokenizer=run_corpus_tokenizer,
    output:
        model="results/export/{run}-hf/model.safetensors",
        config="results/export/{run}-hf/config.json",
    params:
        out=subpath(output.model, parent=True),
    log:
        "results/logs/export_llm/{run}.log",
    resources:
        cpus_per_task=res("export_llm", "cpus_per_task"),
        mem_mb=res("export_llm", "mem_mb"),
        runtime=res("export_llm", "runtime"),
    conda:
        "../../envs/llm.yaml"
    shell:
        "pretrainflow export-llama --model {input.model:q} --tokenizer {input.tokenizer:q} --out {params.out:q}"
        " > {log:q} 2>&1"
