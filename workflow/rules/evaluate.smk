# Top-1 / top-5 of each fine-tuned ViT on its task's held-out split -> results/rows/{run}/{task}.parquet.


rule evaluate_vit:
    input:
        model="results/finetune/{run}/{task}/model.safetensors",
        summary="results/finetune/{run}/{task}/summary.json",
        config="results/finetune/{run}/{task}/config.json",
    output:
        "results/rows/{run}/{task}.parquet",
    params:
        spec=finetune_spec,
        finetuned=subpath(input.model, parent=True),
    log:
        "results/logs/evaluate_vit/{run}/{task}.log",
    benchmark:
        "results/benchmarks/jobs/evaluate_vit/{run}/{task}.tsv"
    resources:
        cpus_per_task=1,
        mem_mb=2000,
        runtime=30,
    conda:
        "../../envs/vit.yaml"
    shell:
        "pretrainflow evaluate --spec {params.spec:q} --finetuned {params.finetuned:q} --out {output:q} > {log:q} 2>&1"
