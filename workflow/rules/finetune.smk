# Fine-tune every ViT run (and the scratch baseline) on every task of `finetune.tasks` (pretrainflow.train.finetune).
import shlex


def _recipe_devices(wildcards):
    return STUDY.finetunes[(wildcards.run, wildcards.task)]["recipe"]["devices"]


def _pretrained_flag(wildcards, input):
    # "--pretrained <path>" for a pretrained run, nothing for a scratch baseline; shlex-quoted here because it is
    # inserted into the command as a whole (not with :q).
    return shlex.join(["--pretrained", input.pretrained]) if input.pretrained else ""


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
        pretrained=_pretrained_flag,
        out=subpath(output.model, parent=True),
        checkpoints="results/checkpoints/finetune/{run}/{task}",
    log:
        "results/logs/finetune_vit/{run}/{task}.log",
    threads: lambda wildcards: _recipe_devices(wildcards)["cpu_ranks"] if not _recipe_devices(wildcards)["gpus_per_node"] else 1
    resources:
        nodes=lambda wildcards: _recipe_devices(wildcards)["nodes"],
        gpus=lambda wildcards: _recipe_devices(wildcards)["gpus_per_node"] * _recipe_devices(wildcards)["nodes"],
        cpus_per_task=lambda wildcards: _recipe_devices(wildcards)["cpus_per_rank"]
        * max(1, _recipe_devices(wildcards)["gpus_per_node"] or _recipe_devices(wildcards)["cpu_ranks"]),
        mem_mb=lambda wildcards: _recipe_devices(wildcards)["mem_mb"],
        runtime=lambda wildcards: _recipe_devices(wildcards)["runtime_minutes"],
    shell:
        "pretrainflow finetune --spec {params.spec:q} {params.pretrained} --out {params.out:q}"
        " --checkpoints {params.checkpoints:q} > {log:q} 2>&1"
