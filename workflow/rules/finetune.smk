# Fine-tune every ViT run (and the scratch baseline) on every task of `finetune.tasks` (pretrainflow.train.finetune).
import shlex

from pretrainflow.train.vit_spec import vit_job_resources


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
        # "--pretrained <path>" for a pretrained run, nothing for a scratch baseline; shlex-quoted here because it is
        # inserted into the command as a whole (not with :q).
        pretrained=lambda wildcards, input: shlex.join(["--pretrained", input.pretrained]) if input.pretrained else "",
        out=subpath(output.model, parent=True),
        checkpoints="results/checkpoints/finetune/{run}/{task}",
    log:
        "results/logs/finetune_vit/{run}/{task}.log",
    threads: lambda wildcards: vit_job_resources(STUDY.finetunes[(wildcards.run, wildcards.task)]["recipe"]["devices"])["threads"]
    resources:
        nodes=lambda wildcards: vit_job_resources(STUDY.finetunes[(wildcards.run, wildcards.task)]["recipe"]["devices"])["nodes"],
        gpus=lambda wildcards: vit_job_resources(STUDY.finetunes[(wildcards.run, wildcards.task)]["recipe"]["devices"])["gpus"],
        cpus_per_task=lambda wildcards: vit_job_resources(
            STUDY.finetunes[(wildcards.run, wildcards.task)]["recipe"]["devices"]
        )["cpus_per_task"],
        mem_mb=lambda wildcards: vit_job_resources(STUDY.finetunes[(wildcards.run, wildcards.task)]["recipe"]["devices"])["mem_mb"],
        runtime=lambda wildcards: vit_job_resources(STUDY.finetunes[(wildcards.run, wildcards.task)]["recipe"]["devices"])["runtime"],
    shell:
        "pretrainflow finetune --spec {params.spec:q} {params.pretrained} --out {params.out:q}"
        " --checkpoints {params.checkpoints:q} > {log:q} 2>&1"
