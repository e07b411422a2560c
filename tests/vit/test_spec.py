"""ViT run / task / fine-tune specs: defaults filled in, every mistake named by its key path."""

from __future__ import annotations

import pytest

from pretrainflow.errors import ConfigError
from pretrainflow.train.vit_spec import FinetuneSpec, check_finetune, check_task, check_vit_run

RUN = {"kind": "vit", "model": {"name": "vit_micro"}, "dataset": "fdb", "batch": {"micro": 16}}


def test_defaults_are_filled_in():
    spec = check_vit_run(RUN, "pretrain.r")
    assert spec["optimizer"]["name"] == "adamw" and spec["schedule"]["epochs"] == 300
    assert spec["augment"]["hflip"] == 0.0  # FDSL pretraining: no flips
    assert spec["batch"] == {"micro": 16, "accumulation": 1}
    assert check_vit_run(spec, "pretrain.r") == spec  # idempotent: the resolved spec validates again


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"model": {"name": "vit_nope"}}, "pretrain.r.model.name: expected one of"),
        ({"model": {"name": "vit_micro", "patch_size": 5}}, "pretrain.r.model.image_size: 32 is not a multiple"),
        ({"optimizer": {"lr": -1}}, "pretrain.r.optimizer.lr: expected a number > 0"),
        ({"optimizer": {"name": "adagrad"}}, "pretrain.r.optimizer.name"),
        ({"batch": {"micro": 0}}, "pretrain.r.batch.micro: expected an integer >= 1, got 0"),
        ({"batch": {"micro": 8, "global": 64}}, "pretrain.r.batch: unknown key(s) ['global']"),
        ({"zero_stage": 4}, "pretrain.r.zero_stage"),
        ({"precision": "fp8"}, "pretrain.r.precision"),
        ({"schedule": {"epochs": 2, "warmup_epochs": 3}}, "pretrain.r.schedule.warmup_epochs"),
        ({"augment": {"crop_scale": [0.5]}}, "pretrain.r.augment.crop_scale"),
        ({"devices": "2"}, "pretrain.r.devices: expected a mapping"),
        ({"colour": 1}, "pretrain.r: unknown key(s) ['colour']"),
        ({"optimizer": {"name": "sam"}, "zero_stage": 2}, "pretrain.r.optimizer.name: sam needs zero_stage 0"),
    ],
)
def test_mistakes_name_the_key(patch, message):
    with pytest.raises(ConfigError) as err:
        check_vit_run({**RUN, **patch}, "pretrain.r")
    assert str(err.value).startswith(message.split(":")[0])
    assert message in str(err.value)


def test_missing_required_key():
    with pytest.raises(ConfigError, match=r"pretrain.r: missing required key\(s\) \['dataset'\]"):
        check_vit_run({"kind": "vit", "model": {"name": "vit_micro"}}, "pretrain.r")


def test_tasks():
    assert check_task({"kind": "digits", "name": "digits"}, "tasks.digits")["test_fraction"] == 0.25
    with pytest.raises(ConfigError, match="tasks.c10.path: task kind 'cifar10' needs the path"):
        check_task({"kind": "cifar10", "name": "c10"}, "tasks.c10")
    with pytest.raises(ConfigError, match="tasks.pretrain.name: 'pretrain' is reserved"):
        check_task({"kind": "digits", "name": "pretrain"}, "tasks.pretrain")


def test_finetune_section_and_spec():
    section = check_finetune({"tasks": ["digits"], "recipe": {"epochs": 3}}, "finetune")
    assert section["recipe"]["schedule"] == {"epochs": 3, "warmup_epochs": 0.0, "min_lr": 0.0}
    with pytest.raises(ConfigError, match="finetune.recipe.optimizer.momentum"):
        check_finetune({"tasks": ["digits"], "recipe": {"optimizer": {"momentum": 2}}}, "finetune")
    with pytest.raises(ConfigError, match="finetune.tasks: expected a non-empty list"):
        check_finetune({"tasks": []}, "finetune")
    spec = FinetuneSpec.from_dict(
        {
            "run_id": "scratch-vit-micro",
            "source": "scratch",
            "model": {"name": "vit_micro"},
            "task": "digits",
            "task_spec": {"kind": "digits", "name": "digits"},
            "recipe": section["recipe"],
            "seed": 0,
            "pretrain_spec": None,
        }
    )
    assert spec.recipe.epochs == 3 and FinetuneSpec.from_dict(spec.to_dict()).to_dict() == spec.to_dict()


def test_job_resources_of_gpu_and_cpu_runs():
    from pretrainflow.train.vit_spec import vit_job_resources

    gpu = vit_job_resources(
        {"nodes": 2, "gpus_per_node": 8, "cpus_per_rank": 8, "mem_mb": 400000, "runtime_minutes": 720}
    )
    assert gpu == {"nodes": 2, "gpus": 16, "cpus_per_task": 64, "mem_mb": 400000, "runtime": 720, "threads": 1}
    cpu = vit_job_resources({"cpu_ranks": 2})
    assert cpu["gpus"] == 0 and cpu["threads"] == 2 and cpu["cpus_per_task"] == 2
