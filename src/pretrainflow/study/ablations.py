"""Ablation grids over a base run, and the readable run ids of the expanded runs.

``{"base": "vit-micro-fdb", "grid": {"optimizer.name": ["adamw", "sam"], "optimizer.lr": [1e-3]}}`` becomes the runs
``vit-micro-fdb.optimizer-adamw.lr-0.001`` and ``vit-micro-fdb.optimizer-sam.lr-0.001``: the base name, then one
``<key>-<value>`` part per grid key, in the order the grid lists them.

A grid key belongs to one stage, told by its first component:

- ``datasets.<name>.<key>`` varies the dataset the base run pretrains on (``datasets.newton.params.mode``): each value
  makes a dataset cell ``<name>.<key>-<value>`` that is generated once and shared by every run that uses it;
- ``finetune.recipe.<key>`` varies how the run's fine-tunes train (``finetune.recipe.optimizer.lr``);
- any other key is a key of the base pretraining run itself (``optimizer.lr``).

Keys of several stages may be crossed in one grid (datasets x runs x fine-tune recipes).
"""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

from pretrainflow.errors import ConfigError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.+-]+")


def short_key(dotted: str) -> str:
    """The part of a dotted key shown in a run id: its last component, or the parent's for ``*.name``/``*.kind``."""
    parts = dotted.split(".")
    if len(parts) > 1 and parts[-1] in ("name", "kind"):
        return parts[-2]
    return parts[-1]


def format_value(value: Any) -> str:
    """A filesystem-safe, readable rendering of a grid value: 0.001, 3e-05, true, adamw, 2x4 (for [2, 4])."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, float):
        text = f"{value:.6g}".replace("e-0", "e-").replace("e+0", "e")
    elif isinstance(value, (list, tuple)):
        text = "x".join(format_value(item) for item in value)
    else:
        text = str(value)
    return _UNSAFE.sub("_", text).strip("_") or "_"


def set_dotted(target: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    """Set ``target[a][b][c] = value`` for ``a.b.c``; the parents must exist and be mappings."""
    node = target
    parts = dotted.split(".")
    for index, part in enumerate(parts[:-1]):
        child = node.get(part)
        if child is None:
            child = node[part] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {'.'.join(parts[: index + 1])} is not a mapping in the base run")
        node = child
    node[parts[-1]] = value


DATASET_PREFIX = "datasets."
FINETUNE_PREFIX = "finetune.recipe."
DEFAULT_MAX_CELLS = (
    64  # a grid larger than this needs `max_cells` in the study: a typo in a list should not queue 1000 jobs
)


def stage_of(dotted: str) -> str:
    """The stage a grid key varies: ``dataset``, ``finetune`` or ``pretrain``.

    >>> [stage_of(k) for k in ("datasets.newton.params.mode", "finetune.recipe.optimizer.lr", "optimizer.lr")]
    ['dataset', 'finetune', 'pretrain']
    """
    if dotted.startswith(DATASET_PREFIX):
        return "dataset"
    if dotted.startswith(FINETUNE_PREFIX):
        return "finetune"
    return "pretrain"


def split_dataset_key(dotted: str, where: str) -> tuple[str, str]:
    """``datasets.newton.params.mode`` -> (``newton``, ``params.mode``)."""
    parts = dotted.split(".", 2)
    if len(parts) < 3:
        raise ConfigError(f"{where}: a dataset axis reads datasets.<dataset>.<key>, got {dotted!r}")
    return parts[1], parts[2]


def expand_ablation(name: str, ablation: dict[str, Any], runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """All runs of one ablation grid: run id -> run definition (a deep copy of the base with its own keys overridden).

    Every run records ``ablation = {name, base, overrides}`` with all of the cell's overrides; the loader applies the
    dataset and fine-tune ones (``datasets.*``, ``finetune.recipe.*``) to those stages.
    """
    where = f"ablations.{name}"
    base_name = ablation["base"]
    if base_name not in runs:
        raise ConfigError(f"{where}.base: unknown pretrain run {base_name!r}; expected one of {sorted(runs)}")
    grid: dict[str, list[Any]] = ablation["grid"]
    shorts = [short_key(key) for key in grid]
    if len(set(shorts)) != len(shorts):
        raise ConfigError(f"{where}.grid: keys {list(grid)} give the same run id part twice ({shorts})")
    cells = 1
    for values in grid.values():
        cells *= len(values)
    limit = ablation.get("max_cells", DEFAULT_MAX_CELLS)
    if cells > limit:
        raise ConfigError(
            f"{where}.grid: expands to {cells} cells, more than max_cells ({limit}); "
            f"set {where}.max_cells: {cells} to confirm"
        )
    base_dataset = runs[base_name].get("dataset")
    for key in grid:
        if stage_of(key) == "dataset":
            dataset, _ = split_dataset_key(key, f"{where}.grid.{key}")
            if dataset != base_dataset:
                raise ConfigError(
                    f"{where}.grid.{key}: the base run {base_name!r} pretrains on {base_dataset!r}, not {dataset!r}"
                )
    expanded = {}
    for combo in itertools.product(*grid.values()):
        run = copy.deepcopy(runs[base_name])
        parts = [base_name]
        for (key, value), short in zip(zip(grid, combo, strict=True), shorts, strict=True):
            if stage_of(key) == "pretrain":
                set_dotted(run, key, value, f"{where}.grid.{key}")
            parts.append(f"{short}-{format_value(value)}")
        run_id = ".".join(parts)
        if run_id in expanded:
            raise ConfigError(f"{where}.grid: two combinations give the same run id {run_id!r}")
        run["ablation"] = {"name": name, "base": base_name, "overrides": dict(zip(grid, combo, strict=True))}
        expanded[run_id] = run
    return expanded


def stage_overrides(run: dict[str, Any], stage: str) -> dict[str, Any]:
    """The overrides of one stage recorded in an expanded run (empty for a base run)."""
    overrides = (run.get("ablation") or {}).get("overrides", {})
    return {key: value for key, value in overrides.items() if stage_of(key) == stage}


def override_id(name: str, overrides: dict[str, Any]) -> str:
    """``name`` plus one ``<key>-<value>`` part per override: the id of a dataset or fine-tune cell.

    >>> override_id("newton", {"datasets.newton.params.mode": "bw"})
    'newton.mode-bw'
    """
    return ".".join([name] + [f"{short_key(key)}-{format_value(value)}" for key, value in overrides.items()])
