# ViT pretraining through DeepSpeed (pretrainflow.train.vit), and its result row.
# Checkpoints live in results/checkpoints/{run}/<config hash>/, outside the outputs: a rerun after a walltime kill
# resumes there; a changed run config starts afresh in a new hash directory.


rule pretrain_vit:
    wildcard_constraints:
        run=_one_of(STUDY.runs_of_kind("vit")),
    input:
        manifest=run_dataset_manifest,
        data=run_dataset_files,
    output:
        model="results/pretrain/{run}/model.safetensors",
        metrics="results/pretrain/{run}/metrics.parquet",
        summary="results/pretrain/{run}/summary.json",
        config="results/pretrain/{run}/config.json",
    params:
        spec=run_spec,
        dataset=run_dataset_dir,
        out=subpath(output.model, parent=True),
        checkpoints=layout.CHECKPOINTS_ROOT,
    log:
        "results/logs/pretrain_vit/{run}.log",
    benchmark:
        "results/benchmarks/jobs/pretrain_vit/{run}.tsv"
    threads: res("pretrain_vit", "threads")
    resources:
        nodes=res("pretrain_vit", "nodes"),
        gpus=res("pretrain_vit", "gpus"),
        gres=res("pretrain_vit", "gres"),  # Slurm plugin only (profiles/slurm): GPUs per node
        cpus_per_gpu=res("pretrain_vit", "cpus_per_gpu"),  # with a total of GPUs; None (dropped) otherwise
        cpus_per_task=res("pretrain_vit", "cpus_per_task"),
        mem_mb=res("pretrain_vit", "mem_mb"),
        runtime=res("pretrain_vit", "runtime"),
    envmodules:
        *SITE_MODULES,
    conda:
        "../../envs/vit.yaml"
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
    conda:
        "../../envs/vit.yaml"
    shell:
        "pretrainflow pretrain-rows --pretrained {params.pretrained:q} --out {output:q} > {log:q} 2>&1"
