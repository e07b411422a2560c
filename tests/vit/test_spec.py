"""ViT run / task / fine-tune specs: defaults filled in, every mistake named by its key path."""

from __future__ import annotations

import pytest

from pretrainflow.errors import ConfigError
from pretrainflow.train.spec import RENAMED_KEYS, BatchSpec
from pretrainflow.train.vit.spec import FinetuneSpec, VitRunSpec, check_finetune, check_task, check_vit_run

RUN = {"kind": "vit", "model": {"name": "vit_micro"}, "dataset": "fdb", "batch": {"micro": 16}}


def test_defaults_are_filled_in():
    spec = check_vit_run(RUN, "pretrain.r")
    assert spec["optimizer"]["name"] == "adamw" and spec["schedule"]["epochs"] == 300
    assert spec["augment"]["hflip"] == 0.0  # FDSL pretraining: no flips
    assert spec["batch"] == {"micro": 16, "global": 16}  # 16 x 1 accumulation x 1 rank
    assert spec["log"] == {"every_steps": 10} and spec["checkpoint"] == {"every_steps": 1000, "keep": 2}
    assert check_vit_run(spec, "pretrain.r") == spec  # idempotent: the resolved spec validates again


def test_global_batch_and_derived_accumulation():
    two_ranks = {"devices": {"cpu_ranks": 2}}
    assert check_vit_run({**RUN, **two_ranks}, "pretrain.r")["batch"] == {"micro": 16, "global": 32}
    spec = VitRunSpec.from_dict({**RUN, **two_ranks, "batch": {"micro": 16, "global": 128}}, "pretrain.r")
    assert spec.batch.micro == 16 and spec.batch.global_batch == 128
    assert spec.batch.accumulation(2) == 4 and spec.batch.accumulation(4) == 2
    with pytest.raises(
        ConfigError, match=r"^batch\.global: expected a multiple of micro x data-parallel ranks = 16 x 3"
    ):
        spec.batch.accumulation(3)
    gpus = {"devices": {"nodes": 2, "gpus_per_node": 8, "cpu_ranks": 3}}  # GPUs: the world is 2 x 8, not cpu_ranks
    assert check_vit_run({**RUN, **gpus}, "pretrain.r")["batch"]["global"] == 256
    assert BatchSpec(micro=8).accumulation(2) == 1


def test_old_keys_name_their_new_place():
    """One case per entry of the renamed-keys table (tests/spine/test_config.py does the same through the study)."""
    for entry in RENAMED_KEYS:
        old = {**RUN}
        node = old
        *parents, leaf = entry.key.split(".")
        for part in parents:
            node[part] = dict(node.get(part, {}))
            node = node[part]
        node[leaf] = entry.value if entry.value is not None else 1
        with pytest.raises(ConfigError) as err:
            check_vit_run(old, "pretrain.r")
        assert str(err.value) == f"pretrain.r.{entry.key}: {entry.message}"
        with pytest.raises(ConfigError, match=rf"^finetune\.recipe\.{entry.key}: "):
            check_finetune(
                {"tasks": ["digits"], "recipe": {k: v for k, v in old.items() if k in parents + [leaf]}}, "finetune"
            )


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"model": {"name": "vit_nope"}}, "pretrain.r.model.name: expected one of"),
        ({"model": {"name": "vit_micro", "patch_size": 5}}, "pretrain.r.model.image_size: 32 is not a multiple"),
        ({"optimizer": {"lr": -1}}, "pretrain.r.optimizer.lr: expected a number > 0"),
        ({"optimizer": {"name": "adagrad"}}, "pretrain.r.optimizer.name"),
        ({"batch": {"micro": 0}}, "pretrain.r.batch.micro: expected an integer >= 1, got 0"),
        (
            {"batch": {"micro": 8, "global": 12}},
            "pretrain.r.batch.global: expected a multiple of micro x data-parallel",
        ),
        ({"batch": {"global": 64}}, "pretrain.r.batch: missing required key(s) ['micro']"),
        ({"batch": {"micro": 8, "global": 0}}, "pretrain.r.batch.global: expected an integer >= 1, got 0"),
        ({"log": {"every_steps": 0}}, "pretrain.r.log.every_steps: expected an integer >= 1, got 0"),
        ({"checkpoint": {"every_steps": -1}}, "pretrain.r.checkpoint.every_steps: expected an integer >= 0"),
        ({"optimizer": {"betas": [0.9, 1.0]}}, "pretrain.r.optimizer.betas: expected a number >= 0.0 and < 1.0"),
        ({"zero_stage": 4}, "pretrain.r.zero_stage"),
        ({"precision": "fp8"}, "pretrain.r.precision"),
        ({"schedule": {"epochs": 2, "warmup_epochs": 3}}, "pretrain.r.schedule.warmup_epochs"),
        ({"augment": {"crop_scale": [0.5]}}, "pretrain.r.augment.crop_scale"),
        ({"devices": "2"}, "pretrain.r.devices: expected a mapping"),
        ({"colour": 1}, "pretrain.r: unknown key(s) ['colour']"),
        ({"optimizer": {"name": "sam"}, "zero_stage": 2}, "pretrain.r.optimizer.name: sam needs zero_stage 0"),
        ({"optimizer": {"name": "sam"}, "batch": {"micro": 8, "global": 16}}, "pretrain.r.optimizer.name: sam needs"),
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
    assert section["recipe"]["batch"] == {"micro": 96, "global": 96} and section["recipe"]["log"] == {"every_steps": 10}
    with pytest.raises(ConfigError, match=r"finetune\.recipe\.batch\.global: expected a multiple"):
        check_finetune({"tasks": ["digits"], "recipe": {"batch": {"micro": 64, "global": 96}}}, "finetune")
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
    assert spec.recipe.log.every_steps == 10 and spec.to_dict()["recipe"]["batch"] == {"micro": 96, "global": 96}


def test_job_resources_of_gpu_and_cpu_runs():
    from pretrainflow.train.devices import job_resources

    gpu = job_resources({"nodes": 2, "gpus_per_node": 8, "cpus_per_rank": 8, "mem_mb": 400000, "runtime_minutes": 720})
    assert gpu == {"nodes": 2, "gpus": 16, "cpus_per_task": 64, "mem_mb": 400000, "runtime": 720, "threads": 1}
    cpu = job_resources({"cpu_ranks": 2})
    assert cpu["gpus"] == 0 and cpu["threads"] == 2 and cpu["cpus_per_task"] == 2
