# GPT pretraining through megatron-core (pretrainflow.train.llm), held-out perplexity rows, Hugging Face export.
# Checkpoints live in results/checkpoints/{run}/<config hash>/, outside the outputs: a rerun after a walltime kill
# resumes there (exit code 75 = checkpointed on a signal); a changed run config starts afresh in a new hash directory.


def _llm_devices(wildcards):
    return STUDY.runs[wildcards.run]["devices"]


def _llm_blend_manifests(wildcards):
    """Manifests of every corpus the run trains on (its blend); an unknown name stops the plan with the key path."""
    run = STUDY.runs[wildcards.run]
    names = list(run.get("blend") or {run["corpus"]: 1})
    unknown = sorted(set(names) - set(STUDY.corpora))
    if unknown:
        raise WorkflowError(f"invalid study config: pretrain.{wildcards.run}.blend: unknown corpora {unknown}")
    return [f"results/corpora/{name}/manifest.json" for name in names]


def _llm_corpus_dir(wildcards):
    return f"results/corpora/{STUDY.runs[wildcards.run]['corpus']}"


rule pretrain_llm:
    wildcard_constraints:
        run=_one_of(STUDY.runs_of_kind("llm")),
    input:
        manifests=_llm_blend_manifests,
    output:
        model="results/pretrain/{run}/model.safetensors",
        metrics="results/pretrain/{run}/metrics.parquet",
        summary="results/pretrain/{run}/summary.json",
        config="results/pretrain/{run}/config.json",
    params:
        spec=run_spec,
        out=subpath(output.model, parent=True),
        checkpoints="results/checkpoints",
    log:
        "results/logs/pretrain_llm/{run}.log",
    threads: lambda wildcards: _llm_devices(wildcards)["cpu_ranks"] if not _llm_devices(wildcards)["gpus_per_node"] else 1
    resources:
        nodes=lambda wildcards: _llm_devices(wildcards)["nodes"],
        gpus=lambda wildcards: _llm_devices(wildcards)["gpus_per_node"] * _llm_devices(wildcards)["nodes"],
        cpus_per_task=lambda wildcards: _llm_devices(wildcards)["cpus_per_rank"]
        * max(1, _llm_devices(wildcards)["gpus_per_node"] or _llm_devices(wildcards)["cpu_ranks"]),
        mem_mb=lambda wildcards: _llm_devices(wildcards)["mem_mb"],
        runtime=lambda wildcards: _llm_devices(wildcards)["runtime_minutes"],
    shell:
        "pretrainflow pretrain-llm --spec {params.spec:q} --out {params.out:q} --corpora-dir results/corpora"
        " --checkpoints {params.checkpoints:q} > {log:q} 2>&1"


rule evaluate_llm:
    wildcard_constraints:
        run=_one_of(STUDY.runs_of_kind("llm")),
    input:
        model="results/pretrain/{run}/model.safetensors",
        summary="results/pretrain/{run}/summary.json",
        manifest=run_corpus_manifest,
    output:
        "results/rows/{run}/heldout.parquet",
    params:
        spec=run_spec,
    log:
        "results/logs/evaluate_llm/{run}.log",
    resources:
        gpus=lambda wildcards: min(1, _llm_devices(wildcards)["gpus_per_node"]),  # one GPU (TP=1) for a GPU run
        cpus_per_task=1,
        mem_mb=lambda wildcards: _llm_devices(wildcards)["mem_mb"],
        runtime=30,
    shell:
        "pretrainflow evaluate-llm --spec {params.spec:q} --model {input.model:q} --out {output:q}"
        " --corpora-dir results/corpora --checkpoints results/checkpoints > {log:q} 2>&1"


rule export_llm:
    wildcard_constraints:
        run=_one_of(STUDY.runs_of_kind("llm")),
    input:
        model="results/pretrain/{run}/model.safetensors",
        tokenizer=lambda wildcards: f"{_llm_corpus_dir(wildcards)}/tokenizer.json",
    output:
        model="results/export/{run}-hf/model.safetensors",
        config="results/export/{run}-hf/config.json",
    params:
        out=subpath(output.model, parent=True),
    log:
        "results/logs/export_llm/{run}.log",
    resources:
        cpus_per_task=1,
        mem_mb=lambda wildcards: _llm_devices(wildcards)["mem_mb"],
        runtime=30,
    shell:
        "pretrainflow export-llama --model {input.model:q} --tokenizer {input.tokenizer:q} --out {params.out:q}"
        " > {log:q} 2>&1"
