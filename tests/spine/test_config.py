"""A malformed study is rejected with one message naming the key path; a good one expands into specs."""

import pytest

from pretrainflow.errors import ConfigError
from pretrainflow.study.load import load_study
from pretrainflow.train.spec import RENAMED_KEYS


def test_default_study_expands(default_study):
    study = load_study(default_study)
    assert set(study.runs) == {"vit-micro-fdb", "gpt-micro-pydocs", "gpt-micro-pydocs-sft"}
    assert set(study.finetunes) == {("vit-micro-fdb", "digits"), ("scratch-vit-micro", "digits")}
    assert study.finetunes[("scratch-vit-micro", "digits")]["source"] == "scratch"
    assert study.runs["vit-micro-fdb"]["dataset_spec"]["name"] == "fdb-tiny"
    assert "results/rows/gpt-micro-pydocs/heldout.parquet" in study.row_files()


def _break(study, path, value):
    node = study
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return study


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        # 1. unknown family
        (("datasets", "fdb-tiny", "family"), "mandelbrot", "datasets.fdb-tiny.family"),
        # 2. zero / negative sizes
        (("datasets", "fdb-tiny", "num_classes"), 0, "datasets.fdb-tiny.num_classes"),
        (("datasets", "fdb-tiny", "image_size"), -32, "datasets.fdb-tiny.image_size"),
        # 3. a run naming a dataset that does not exist
        (("pretrain", "vit-micro-fdb", "dataset"), "fdb-huge", "pretrain.vit-micro-fdb.dataset"),
        # 4. unknown keys
        (("datasets", "fdb-tiny", "imagesize"), 32, "datasets.fdb-tiny"),
        (("pretrain", "vit-micro-fdb", "epochz"), 3, "pretrain.vit-micro-fdb"),
        # 5. wrong types
        (("datasets", "fdb-tiny", "instances_per_class"), "many", "datasets.fdb-tiny.instances_per_class"),
        (("seed",), "zero", "seed"),
        # and a few more references
        (("finetune", "tasks"), ["cifar11"], "finetune.tasks"),
        (("pretrain", "gpt-micro-pydocs", "corpus"), "wiki", "pretrain.gpt-micro-pydocs.corpus"),
    ],
)
def test_malformed_study_names_the_key(default_study, path, value, expected):
    with pytest.raises(ConfigError) as info:
        load_study(_break(default_study, path, value))
    assert str(info.value).startswith(expected), str(info.value)


def test_unknown_key_message_lists_the_accepted_keys(default_study):
    default_study["datasets"]["fdb-tiny"]["imagesize"] = 32
    with pytest.raises(ConfigError, match=r"^datasets\.fdb-tiny(?=.*imagesize)(?=.*unknown key)(?=.*image_size)"):
        load_study(default_study)


def test_bad_section_name(default_study):
    default_study["datasets"]["FDB Tiny"] = default_study["datasets"].pop("fdb-tiny")
    with pytest.raises(ConfigError, match="datasets"):
        load_study(default_study)


def test_ablation_grid_expands_into_named_runs(default_study):
    default_study["ablations"] = {
        "opt-lr": {"base": "vit-micro-fdb", "grid": {"optimizer.name": ["adamw", "sgd"], "optimizer.lr": [1e-3, 3e-4]}}
    }
    study = load_study(default_study)
    expanded = sorted(run for run in study.runs if run.startswith("vit-micro-fdb."))
    assert expanded == [
        "vit-micro-fdb.optimizer-adamw.lr-0.0003",
        "vit-micro-fdb.optimizer-adamw.lr-0.001",
        "vit-micro-fdb.optimizer-sgd.lr-0.0003",
        "vit-micro-fdb.optimizer-sgd.lr-0.001",
    ]
    run = study.runs["vit-micro-fdb.optimizer-sgd.lr-0.0003"]
    assert run["optimizer"]["name"] == "sgd" and run["optimizer"]["lr"] == 3e-4
    assert run["ablation"]["base"] == "vit-micro-fdb"
    # every expanded run is fine-tuned too, and they share one scratch baseline
    assert ("vit-micro-fdb.optimizer-sgd.lr-0.0003", "digits") in study.finetunes
    assert sum(1 for run, _ in study.finetunes if run.startswith("scratch-")) == 1


def test_ablation_with_unknown_key_is_rejected(default_study):
    default_study["ablations"] = {"bad": {"base": "vit-micro-fdb", "grid": {"optimizer.lrr": [1e-3]}}}
    with pytest.raises(ConfigError, match=r"^ablations\.bad"):
        load_study(default_study)


def test_ablation_with_unknown_base_is_rejected(default_study):
    default_study["ablations"] = {"bad": {"base": "nope", "grid": {"optimizer.lr": [1e-3]}}}
    with pytest.raises(ConfigError, match=r"^ablations\.bad\.base: unknown pretrain run 'nope'"):
        load_study(default_study)


def test_changing_one_run_changes_only_its_spec(default_study):
    before = load_study(default_study)
    default_study["pretrain"]["vit-micro-fdb"]["optimizer"]["lr"] = 2e-4
    after = load_study(default_study)
    assert before.spec_json("runs", "vit-micro-fdb") != after.spec_json("runs", "vit-micro-fdb")
    assert before.spec_json("runs", "gpt-micro-pydocs") == after.spec_json("runs", "gpt-micro-pydocs")
    assert before.spec_json("datasets", "fdb-tiny") == after.spec_json("datasets", "fdb-tiny")
    scratch = ("scratch-vit-micro", "digits")
    assert before.spec_json("finetunes", scratch) == after.spec_json("finetunes", scratch)


def test_default_study_batch_arithmetic(default_study):
    """global = micro x accumulation x data-parallel ranks: the default study's numbers before the vocabulary change."""
    study = load_study(default_study)
    vit, llm = study.runs["vit-micro-fdb"], study.runs["gpt-micro-pydocs"]
    assert vit["batch"] == {"micro": 16, "global": 32}  # 16 x 1 x 2 CPU ranks
    assert vit["log"] == {"every_steps": 10} and vit["checkpoint"] == {"every_steps": 1000, "keep": 2}
    assert llm["batch"] == {"micro": 8, "global": 8}  # 8 x 1 x (2 ranks / tensor 2)
    assert llm["optimizer"] == {
        "name": "adamw", "lr": 1.0e-3, "weight_decay": 0.01, "betas": [0.9, 0.95], "eps": 1.0e-8, "grad_clip": 1.0
    }  # fmt: skip
    assert llm["schedule"] == {"train_steps": 60, "warmup_steps": 6, "min_lr": 1.0e-4}
    assert llm["checkpoint"] == {"every_steps": 0, "keep": 1} and llm["log"] == {"every_steps": 1}
    for run_id, task in study.finetunes:
        assert study.finetunes[(run_id, task)]["recipe"]["batch"] == {"micro": 64, "global": 64}  # 64 x 1 x 1 rank


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        (
            ("pretrain", "vit-micro-fdb", "batch", "global"),
            48,
            "pretrain.vit-micro-fdb.batch.global: expected a multiple",
        ),
        (("pretrain", "gpt-micro-pydocs", "batch", "global"), 12, "pretrain.gpt-micro-pydocs.batch.global: expected a"),
        (("pretrain", "gpt-micro-pydocs", "optimizer", "name"), "sgd", "pretrain.gpt-micro-pydocs.optimizer.name"),
        (("pretrain", "gpt-micro-pydocs", "checkpoint"), {"keep": 0}, "pretrain.gpt-micro-pydocs.checkpoint.keep"),
        (("finetune", "recipe", "batch", "global"), 96, "finetune.recipe.batch.global: expected a multiple"),
        (("finetune", "recipe", "log"), {"every_steps": 0}, "finetune.recipe.log.every_steps"),
    ],
)
def test_shared_sections_name_the_key(default_study, path, value, expected):
    with pytest.raises(ConfigError) as info:
        load_study(_break(default_study, path, value))
    assert str(info.value).startswith(expected), str(info.value)


def _with_old_key(section: dict, key: str, value) -> dict:
    node = section
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return section


@pytest.mark.parametrize("entry", RENAMED_KEYS, ids=lambda entry: entry.key)
@pytest.mark.parametrize(
    ("where", "path"),
    [
        ("pretrain.vit-micro-fdb", ("pretrain", "vit-micro-fdb")),
        ("pretrain.gpt-micro-pydocs", ("pretrain", "gpt-micro-pydocs")),
        ("finetune.recipe", ("finetune", "recipe")),
    ],
)
def test_old_key_names_the_new_one(default_study, entry, where, path):
    """Every entry of the renamed-keys table, in each kind of run and in the recipe: the schema's "unknown key" error
    must not hide where the key went."""
    section = default_study
    for part in path:
        section = section[part]
    _with_old_key(section, entry.key, entry.value if entry.value is not None else 1)
    with pytest.raises(ConfigError) as info:
        load_study(default_study)
    assert str(info.value) == f"{where}.{entry.key}: {entry.message}"


def test_renamed_key_messages():
    messages = {f"{entry.key}: {entry.message}" for entry in RENAMED_KEYS}
    assert "optimizer.min_lr: moved to schedule.min_lr" in messages
    assert "batch.accumulation: replaced by batch.global (= micro x accumulation x data-parallel ranks)" in messages
    assert "log_every: moved to log.every_steps" in messages


def test_old_key_in_an_ablation_grid(default_study):
    default_study["ablations"] = {"acc": {"base": "vit-micro-fdb", "grid": {"batch.accumulation": [2]}}}
    with pytest.raises(ConfigError, match=r"^ablations\.acc.*batch\.accumulation: replaced by batch\.global"):
        load_study(default_study)
