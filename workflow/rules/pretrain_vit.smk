# ViT pretraining through DeepSpeed (pretrainflow.train.vit), and its result row.
import os
# Checkpoints live in results/checkpoints/{run}/<config hash>/, outside the outputs: a rerun after a walltime kill
# resumes there; a changed run config starts afresh in a new hash directory.


def _vit_devices(wildcards):
    return STUDY.runs[wildcards.run]["devices"]


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
    threads: lambda wildcards: _vit_devices(wildcards)["cpu_ranks"] if not _vit_devices(wildcards)["gpus_per_node"] else 1
    resources:
        nodes=lambda wildcards: _vit_devices(wildcards)["nodes"],
        gpus=lambda wildcards: _vit_devices(wildcards)["gpus_per_node"] * _vit_devices(wildcards)["nodes"],
        cpus_per_task=lambda wildcards: _vit_devices(wildcards)["cpus_per_rank"]
        * max(1, _vit_devices(wildcards)["gpus_per_node"] or _vit_devices(wildcards)["cpu_ranks"]),
        mem_mb=lambda wildcards: _vit_devices(wildcards)["mem_mb"],
        runtime=lambda wildcards: _vit_devices(wildcards)["runtime_minutes"],
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
