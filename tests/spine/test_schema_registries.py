"""The JSON schemas (workflow/schemas/) repeat names and bounds the code owns; these tests keep the two in step.

1. Every ``enum`` in the schemas, found by walking them, equals the registry it mirrors (an enum without an entry in
   ``REGISTRIES`` fails, so a new one cannot go unchecked).
2. The properties of each section equal the study keys of its dataclass (a key added in one place only fails).
3. Every numeric bound the schema states (minimum, maximum, exclusive*) is probed at the bound and one step past it:
   the schema and the typed check must accept and reject the same values. Bounds that depend on another key (a
   global batch must be a multiple of micro) are probed in a context that isolates them (``CONTEXT``).
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
import referencing
import yaml

from pretrainflow.errors import ConfigError
from pretrainflow.spec_fields import study_keys
from pretrainflow.study.schema import SCHEMA_DIR

# ---------------------------------------------------------------------------------------------------------- schemas


@functools.cache
def schemas() -> dict[str, dict]:
    return {path.name: yaml.safe_load(path.read_text()) for path in sorted(SCHEMA_DIR.glob("*.schema.yaml"))}


@functools.cache
def registry() -> referencing.Registry:
    return referencing.Registry().with_resources(
        (name, referencing.Resource.from_contents(contents)) for name, contents in schemas().items()
    )


def validator(file: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(registry().contents(file), registry=registry())


def deref(node: dict, file: str) -> tuple[dict, str]:
    """Follow ``$ref`` (keeping sibling keywords such as ``required``); returns the node and the file it lives in."""
    while "$ref" in node:
        target, _, pointer = node["$ref"].partition("#")
        target = target or file
        resolved: Any = schemas()[target]
        for part in [p for p in pointer.split("/") if p]:
            resolved = resolved[part]
        node = {**resolved, **{k: v for k, v in node.items() if k != "$ref"}}
        file = target
    return node, file


def walk(node: Any, pointer: str = "") -> Iterator[tuple[str, dict]]:
    """Every mapping in a schema document with its JSON pointer (no $ref following: each enum is seen once)."""
    if isinstance(node, dict):
        yield pointer, node
        for key, value in node.items():
            yield from walk(value, f"{pointer}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{pointer}/{index}")


# ------------------------------------------------------------------------------------------------- 1. enums = registries


def _run_kinds() -> list[str]:
    from pretrainflow.study.load import AREA_CHECKS
    from pretrainflow.train.llm.spec import LLMRunSpec
    from pretrainflow.train.vit.spec import VitRunSpec

    kinds = [next(f.default for f in dataclasses.fields(cls) if f.name == "kind") for cls in (VitRunSpec, LLMRunSpec)]
    assert set(kinds) <= set(AREA_CHECKS), "each run kind needs its typed check in config.AREA_CHECKS"
    return kinds


def _vit_optimizers() -> list[str]:
    from pretrainflow.train.vit import optim
    from pretrainflow.train.vit.spec import OPTIMIZERS

    assert set(OPTIMIZERS) == set(optim.OPTIMIZERS), "the spec's OPTIMIZERS and train/vit/optim.py's registry differ"
    return list(OPTIMIZERS)


def _base_optimizers() -> list[str]:
    from pretrainflow.train.vit import optim
    from pretrainflow.train.vit.spec import BASE_OPTIMIZERS

    assert set(BASE_OPTIMIZERS) == set(optim._BASES), "the spec's BASE_OPTIMIZERS and optim._BASES differ"
    return list(BASE_OPTIMIZERS)


def _task_kinds() -> list[str]:
    from pretrainflow.tasks import TASK_MODULES
    from pretrainflow.train.vit.spec import TASK_KINDS

    assert set(TASK_KINDS) == set(TASK_MODULES), "the spec's TASK_KINDS and the tasks/ registry differ"
    return list(TASK_KINDS)


def _vits() -> list[str]:
    from pretrainflow.models import list_vits

    return list_vits()


def _gpt_shapes() -> list[str]:
    from pretrainflow.models.gpt import list_gpts

    return list_gpts()


def _gpt_field_values(field: str, schema_values: list[str]) -> list[str]:
    """models/gpt.py checks these inline (no constant to compare with): the values GPTShape accepts among the schema's
    plus a wrong one, so a value dropped or added on either side shows up."""
    from pretrainflow.models.gpt import create_gpt_shape

    accepted = []
    for value in [*schema_values, "Bogus"]:
        try:
            create_gpt_shape("gpt_micro", **{field: value})
        except ConfigError:
            continue
        accepted.append(value)
    return accepted


def _attr(module: str, name: str) -> Callable[[], list]:
    def get() -> list:
        import importlib

        return list(getattr(importlib.import_module(module), name))

    return get


# "file#pointer" of an enum -> the registry it mirrors (a callable given the schema's values)
REGISTRIES: dict[str, Callable[[list], list]] = {
    "tracking.schema.yaml#/properties/wandb/properties/mode": lambda _: _attr("pretrainflow.train.tracking", "MODES")(),
    "config.schema.yaml#/properties/pretrain/additionalProperties/properties/kind": lambda _: _run_kinds(),
    "dataset.schema.yaml#/properties/family": lambda _: _attr("pretrainflow.datasets.registry", "FAMILY_MODULES")(),
    "dataset.schema.yaml#/properties/image_format": lambda _: _attr(
        "pretrainflow.datasets.generic_spec", "IMAGE_FORMATS"
    )(),
    "corpus.schema.yaml#/properties/source/properties/kind": lambda _: _attr(
        "pretrainflow.corpora.spec", "SOURCE_KINDS"
    )(),
    "task.schema.yaml#/properties/kind": lambda _: _task_kinds(),
    "task.schema.yaml#/allOf/0/if/properties/kind": lambda _: _attr(
        "pretrainflow.train.vit.spec", "TASK_KINDS_WITH_PATH"
    )(),
    "vit_run.schema.yaml#/$defs/optimizer/properties/name": lambda _: _vit_optimizers(),
    "vit_run.schema.yaml#/$defs/optimizer/properties/base": lambda _: _base_optimizers(),
    "vit_run.schema.yaml#/$defs/precision": lambda _: _attr("pretrainflow.train.vit.spec", "PRECISIONS")(),
    "vit_run.schema.yaml#/$defs/zero_stage": lambda _: _attr("pretrainflow.train.vit.spec", "ZERO_STAGES")(),
    "vit_run.schema.yaml#/properties/model/properties/name": lambda _: _vits(),
    "vit_run.schema.yaml#/properties/renderer": lambda _: _attr("pretrainflow.train.vit.spec", "RENDERERS")(),
    "llm_run.schema.yaml#/properties/model/properties/name": lambda _: _gpt_shapes(),
    "llm_run.schema.yaml#/properties/model/properties/normalization": functools.partial(
        _gpt_field_values, "normalization"
    ),
    "llm_run.schema.yaml#/properties/model/properties/position_embedding": functools.partial(
        _gpt_field_values, "position_embedding"
    ),
    "llm_run.schema.yaml#/properties/optimizer/properties/name": lambda _: _attr(
        "pretrainflow.train.llm.spec", "OPTIMIZERS"
    )(),
    "llm_run.schema.yaml#/properties/precision": lambda _: _attr("pretrainflow.train.llm.spec", "PRECISIONS")(),
    "sft.schema.yaml#/properties/data/properties/kind": lambda _: _attr(
        "pretrainflow.train.llm.sft_spec", "DATA_KINDS"
    )(),
    "sft.schema.yaml#/properties/chat_template": lambda _: _attr("pretrainflow.train.llm.sft_spec", "CHAT_TEMPLATES")(),
}


def schema_enums() -> dict[str, list]:
    return {
        f"{file}#{pointer}": node["enum"]
        for file, document in schemas().items()
        for pointer, node in walk(document)
        if "enum" in node
    }


def test_every_enum_has_a_registry():
    found = set(schema_enums())
    assert found - set(REGISTRIES) == set(), "enum(s) without a registry mapping in REGISTRIES"
    assert set(REGISTRIES) - found == set(), "REGISTRIES names enum(s) the schemas no longer have"


@pytest.mark.parametrize("location", sorted(REGISTRIES))
def test_enum_equals_its_registry(location):
    values = schema_enums()[location]
    expected = REGISTRIES[location](values)
    assert len(values) == len(set(values)), f"{location}: duplicate values {values}"
    assert sorted(values, key=str) == sorted(expected, key=str), f"{location}: schema {values} != registry {expected}"


def test_consts_of_run_kinds():
    assert schemas()["vit_run.schema.yaml"]["properties"]["kind"]["const"] == "vit"
    assert schemas()["llm_run.schema.yaml"]["properties"]["kind"]["const"] == "llm"
    assert sorted(_run_kinds()) == ["llm", "vit"]


# --------------------------------------------------------------------------------------- 2. properties = dataclass keys


def _dataclass_of(annotation: Any) -> type | None:
    if dataclasses.is_dataclass(annotation):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        found = [arg for arg in typing.get_args(annotation) if dataclasses.is_dataclass(arg)]
        return found[0] if found else None
    return None


def _compare(node: dict, file: str, cls: type, where: str, loader_keys: set[str]) -> list[str]:
    """Differences between a schema object's properties and ``cls``'s study keys, recursing into typed sections."""
    node, file = deref(node, file)
    props = node.get("properties", {})
    keys = set(study_keys(cls)) - loader_keys
    problems = []
    if set(props) != keys:
        problems.append(
            f"{where}: only in the schema {sorted(set(props) - keys)}, only in {cls.__name__} {sorted(keys - set(props))}"
        )
    hints = typing.get_type_hints(cls)
    for item in dataclasses.fields(cls):
        sub = _dataclass_of(hints[item.name])
        key = item.metadata.get("study_key", item.name)
        if sub is not None and key in props:
            problems += _compare(props[key], file, sub, f"{where}.{key}", set())
    return problems


def _sections() -> list[tuple[str, str, type, set[str]]]:
    from pretrainflow.corpora.spec import CorpusSpec
    from pretrainflow.datasets.generic_spec import DatasetSpec
    from pretrainflow.models.gpt import GPTShape
    from pretrainflow.train.llm.spec import LLMRunSpec
    from pretrainflow.train.tracking import TrackingSpec
    from pretrainflow.train.vit.spec import FinetuneSection, TaskSpec, VitRunSpec

    return [
        # schema file, pointer, dataclass, keys the loader fills in (not study keys)
        ("vit_run.schema.yaml", "", VitRunSpec, {"run_id", "dataset_spec", "ablation"}),
        ("llm_run.schema.yaml", "", LLMRunSpec, {"run_id", "corpus_spec", "ablation"}),
        ("llm_run.schema.yaml", "/properties/model", GPTShape, set()),  # LLMRunSpec.model is the shape's overrides
        ("finetune.schema.yaml", "", FinetuneSection, set()),
        ("task.schema.yaml", "", TaskSpec, {"name"}),
        ("dataset.schema.yaml", "", DatasetSpec, {"name", "where"}),
        ("corpus.schema.yaml", "", CorpusSpec, {"name"}),
        ("tracking.schema.yaml", "", TrackingSpec, set()),
    ]


@pytest.mark.parametrize(
    ("file", "pointer", "cls", "loader_keys"), _sections(), ids=lambda v: getattr(v, "__name__", None)
)
def test_schema_properties_equal_dataclass_fields(file, pointer, cls, loader_keys):
    node: Any = schemas()[file]
    for part in [p for p in pointer.split("/") if p]:
        node = node[part]
    assert _compare(node, file, cls, f"{file}#{pointer}", loader_keys) == []


# ------------------------------------------------------------------------------------------------------- 3. bounds

_VIT_RUN = {
    "kind": "vit",
    "model": {"name": "vit_micro", "image_size": 32, "patch_size": 4},
    "dataset": "fdb",
    "schedule": {"epochs": 3, "warmup_epochs": 0},
    "batch": {"micro": 4},
}
_LLM_RUN = {
    "kind": "llm",
    "model": {"name": "gpt_micro"},
    "corpus": "docs",
    "blend": {"docs": 1.0},
    "seq_length": 32,
    "batch": {"micro": 4, "global": 8},
    "schedule": {"train_steps": 8, "warmup_steps": 0, "min_lr": 0.0},
}
_TASK = {"kind": "digits"}
_DATASET = {
    "family": "fractaldb",
    "num_classes": 4,
    "instances_per_class": 4,
    "image_size": 32,
    "num_shards": 1,
    "params": {"num_points": 100, "pad": 0, "draw": "point"},
}
_CORPUS = {"source": {"kind": "python-stdlib-docstrings"}, "tokenizer": {"vocab_size": 512}}


def _check_vit(spec: dict) -> None:
    from pretrainflow.train.vit.spec import check_vit_run

    check_vit_run({**spec, "run_id": "r"}, "pretrain.r")


def _check_llm(spec: dict) -> None:
    from pretrainflow.train.llm.spec import check_llm_run

    check_llm_run({**spec, "run_id": "t"}, "pretrain.t")


def _check_recipe(spec: dict) -> None:
    from pretrainflow.train.vit.spec import check_finetune

    check_finetune(spec, "finetune")


def _check_task(spec: dict) -> None:
    from pretrainflow.train.vit.spec import check_task

    check_task({**spec, "name": "t"}, "tasks.t")


def _check_dataset(spec: dict) -> None:
    from pretrainflow.datasets.spec import check_spec

    check_spec({"seed": 0, **spec, "name": "d"}, "datasets.d")


def _check_corpus(spec: dict) -> None:
    from pretrainflow.corpora.spec import check_corpus

    check_corpus({"seed": 0, **spec, "name": "c"}, "corpora.c")


# kind -> (schema file, base spec valid for both, typed check, key paths not probed here: probed elsewhere)
KINDS: dict[str, tuple[str, dict, Callable[[dict], None], tuple[str, ...]]] = {
    "vit": ("vit_run.schema.yaml", _VIT_RUN, _check_vit, ()),
    "llm": ("llm_run.schema.yaml", _LLM_RUN, _check_llm, ()),
    # the recipe's sections are the ViT run's $defs (probed there); its schedule must span the recipe's epochs
    "finetune": (
        "finetune.schema.yaml",
        {"tasks": ["digits"], "recipe": {}},
        _check_recipe,
        ("recipe.optimizer", "recipe.schedule", "recipe.batch", "recipe.augment", "recipe.devices", "recipe.log"),
    ),
    "task": ("task.schema.yaml", _TASK, _check_task, ()),
    "dataset": ("dataset.schema.yaml", _DATASET, _check_dataset, ()),
    "corpus": ("corpus.schema.yaml", _CORPUS, _check_corpus, ()),
}

# Bounds that depend on another key are probed with that key set so only the probed bound decides.
CONTEXT: dict[tuple[str, str], dict[str, Any]] = {
    ("vit", "batch.global"): {"batch.micro": 1},
    ("vit", "model.image_size"): {"model.patch_size": 1},
    ("llm", "batch.global"): {"batch.micro": 1},
    ("llm", "model.hidden_size"): {"model.num_attention_heads": 1, "model.num_query_groups": 1},
    ("llm", "model.num_attention_heads"): {"model.num_query_groups": 1, "model.hidden_size": 64},
    ("llm", "model.num_query_groups"): {"model.num_attention_heads": 4, "model.hidden_size": 64},
    ("llm", "model.num_layers"): {"parallel.pipeline": 1},
    ("llm", "schedule.train_steps"): {"schedule.warmup_steps": 0},
    ("llm", "sft.data.max_examples"): {"init.run": "r", "sft.data.kind": "python-stdlib-instructions"},
    ("dataset", "num_classes"): {"num_shards": 1},
    ("dataset", "instances_per_class"): {"num_shards": 1},
}

# Bounds the schema states but the typed check does not enforce ({(kind, key): where and why}); none today. An entry
# makes the bound test expect a disagreement, so it fails once the code is fixed and the entry must go.
KNOWN_GAPS: dict[tuple[str, str], str] = {}

_BOUNDS = ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")


def bounds(node: dict, file: str, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], str, float, bool]]:
    """(key path, bound keyword, bound, integer?) for every numeric bound under a schema node ('[]' = array items,
    '*' = values of a free-form mapping)."""
    node, file = deref(node, file)
    kinds = node.get("type", [])
    integer = "integer" in (kinds if isinstance(kinds, list) else [kinds])
    for keyword in _BOUNDS:
        if keyword in node:
            yield path, keyword, node[keyword], integer
    for key, sub in node.get("properties", {}).items():
        yield from bounds(sub, file, (*path, key))
    if isinstance(node.get("items"), dict):
        yield from bounds(node["items"], file, (*path, "[]"))
    if isinstance(node.get("additionalProperties"), dict):
        yield from bounds(node["additionalProperties"], file, (*path, "*"))


def _set(spec: dict, path: tuple[str, ...], value: Any) -> dict:
    """A copy of ``spec`` with ``value`` at ``path`` ('[]': a pair of it; '*': an extra key ``x`` holding it)."""
    import copy

    spec = copy.deepcopy(spec)
    *parents, key, last = ("", *path)
    if last not in ("[]", "*"):
        parents, key = [*parents, key][1:], last
    else:
        parents = parents[1:]
    node = spec
    for part in parents:
        node = node.setdefault(part, {})
    if last == "[]":
        node[key] = [value, value]
    elif last == "*":
        node[key] = {**node.get(key, {}), "x": value}
    else:
        node[key] = value
    return spec


def _probes(keyword: str, bound: float, integer: bool) -> list[tuple[float, bool]]:
    """(value, the schema accepts it) at the bound and one step past it."""
    step = 1 if integer else 1e-9 * max(1.0, abs(bound))
    return {
        "minimum": [(bound, True), (bound - step, False)],
        "exclusiveMinimum": [(bound, False), (bound + step, True)],
        "maximum": [(bound, True), (bound + step, False)],
        "exclusiveMaximum": [(bound, False), (bound - step, True)],
    }[keyword]


def _bound_cases() -> list[tuple[str, tuple[str, ...], str, float, bool]]:
    cases = []
    for kind, (file, _, _, skipped) in KINDS.items():
        for path, keyword, bound, integer in bounds(schemas()[file], file):
            dotted = ".".join(p for p in path if p not in ("[]", "*"))
            if any(dotted == s or dotted.startswith(s + ".") for s in skipped):
                continue
            cases.append((kind, path, keyword, bound, integer))
    return cases


def _accepts(check: Callable[[dict], None], spec: dict) -> bool:
    try:
        check(spec)
    except ConfigError:
        return False
    return True


@pytest.mark.parametrize(
    ("kind", "path", "keyword", "bound", "integer"),
    _bound_cases(),
    ids=lambda v: ".".join(v) if isinstance(v, tuple) else str(v),
)
def test_schema_bound_matches_the_typed_check(kind, path, keyword, bound, integer):
    file, base, check, _ = KINDS[kind]
    dotted = ".".join(p for p in path if p not in ("[]", "*"))
    for key, value in CONTEXT.get((kind, dotted), {}).items():
        base = _set(base, tuple(key.split(".")), value)
    assert validator(file).is_valid(base) and _accepts(check, base), f"{kind}: the probe's base spec is invalid"
    disagreements = []
    for value, schema_ok in _probes(keyword, bound, integer):
        spec = _set(base, path, value)
        assert validator(file).is_valid(spec) == schema_ok, f"probe {value!r} misread the schema"
        if _accepts(check, spec) != schema_ok:
            disagreements.append(f"{dotted} = {value!r}: schema {'accepts' if schema_ok else 'rejects'} it")
    if (kind, dotted) in KNOWN_GAPS:
        assert disagreements, f"{kind} {dotted}: fixed ({KNOWN_GAPS[(kind, dotted)]}); remove it from KNOWN_GAPS"
        return
    assert disagreements == [], f"{kind}: the schema and the typed check disagree"


def test_known_gaps_are_bounds_the_schema_states():
    probed = {(kind, ".".join(p for p in path if p not in ("[]", "*"))) for kind, path, *_ in _bound_cases()}
    assert set(KNOWN_GAPS) <= probed
