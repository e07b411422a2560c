# ViT pretraining through DeepSpeed (pretrainflow.train.vit), and its result row.
# Checkpoints live in results/checkpoints/{run}/<config hash>/, outside the outputs: a rerun after a walltime kill
# resumes there; a changed run config starts afresh in a new hash directory.
import os

from pretrainflow.train.vit_spec import vit_job_resources


rule pretrain_vit:
    wildcard_constraints:
        run=_one_of(STUDY.runs_of_kind("vit")),
    input:
        manifest=run_dataset_manifest,
    output:
        model="results/pretrain/{run}/model.safetensors",
        metrics="results/pretrain/{run}/metrics.parquet",
        summary="results/pretrain/{run}/summary.json",
        config="results/pretrain/{run}/config.json",
    params:
        spec=run_spec,
        dataset=lambda wildcards, input: os.path.dirname(input.manifest),
        out=subpath(output.model, parent=True),
        checkpoints="results/checkpoints/{run}",
    log:
        "results/logs/pretrain_vit/{run}.log",
    threads: lambda wildcards: vit_job_resources(STUDY.runs[wildcards.run]["devices"])["threads"]
    resources:
        nodes=lambda wildcards: vit_job_resources(STUDY.runs[wildcards.run]["devices"])["nodes"],
        gpus=lambda wildcards: vit_job_resources(STUDY.runs[wildcards.run]["devices"])["gpus"],
        cpus_per_task=lambda wildcards: vit_job_resources(STUDY.runs[wildcards.run]["devices"])["cpus_per_task"],
        mem_mb=lambda wildcards: vit_job_resources(STUDY.runs[wildcards.run]["devices"])["mem_mb"],
        runtime=lambda wildcards: vit_job_resources(STUDY.runs[wildcards.run]["devices"])["runtime"],
    shell:
        "pretrainflow pretrain-vit --spec {params.spec:q} --dataset {params.dataset:q} --out {params.out:q}"
        " --checkpoints {params.checkpoints:q} > {log:q} 2>&1"


rule pretrain_rows:
    wildcard_constraints:
        run=_one_of(STUDY.runs_of_kind("vit")),
    input:
        summary="results/pretrain/{run}/summary.json",
        config="results/pretrain/{run}/config.json",
    output:
        "results/rows/{run}/pretrain.parquet",
    params:
        pretrained=subpath(input.summary, parent=True),
    log:
        "results/logs/pretrain_rows/{run}.log",
    resources:
        cpus_per_task=1,
        mem_mb=1000,
        runtime=5,
    shell:
        "pretrainflow pretrain-rows --pretrained {params.pretrained:q} --out {output:q} > {log:q} 2>&1"
