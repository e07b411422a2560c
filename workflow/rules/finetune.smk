# Fine-tune every ViT run (and the scratch baseline) on every task of `finetune.tasks` (pretrainflow.train.vit.finetune).
# Checkpoints live in results/checkpoints/finetune/{run}/{task}/<config hash>/.


rule finetune_vit:
    input:
        pretrained=finetune_pretrained_model,
    output:
        model="results/finetune/{run}/{task}/model.safetensors",
        metrics="results/finetune/{run}/{task}/metrics.parquet",
        summary="results/finetune/{run}/{task}/summary.json",
        config="results/finetune/{run}/{task}/config.json",
    params:
        spec=finetune_spec,
        pretrained=finetune_pretrained_arg,
        out=subpath(output.model, parent=True),
        checkpoints=layout.CHECKPOINTS_ROOT,
    log:
        "results/logs/finetune_vit/{run}/{task}.log",
    benchmark:
        "results/benchmarks/jobs/finetune_vit/{run}/{task}.tsv"
    threads: res("finetune_vit", "threads")
    resources:
        nodes=res("finetune_vit", "nodes"),
        gpus=res("finetune_vit", "gpus"),
        gres=res("finetune_vit", "gres"),  # Slurm plugin only (profiles/slurm): GPUs per node
        cpus_per_gpu=res("finetune_vit", "cpus_per_gpu"),  # with a total of GPUs; None (dropped) otherwise
        cpus_per_task=res("finetune_vit", "cpus_per_task"),
        mem_mb=res("finetune_vit", "mem_mb"),
        runtime=res("finetune_vit", "runtime"),
    envmodules:
        *SITE_MODULES,
    conda:
        "../../envs/vit.yaml"
    shell:
        "pretrainflow finetune --spec {params.spec:q} {params.pretrained} --out {params.out:q}"
        " --checkpoints {params.checkpoints:q} > {log:q} 2>&1"
