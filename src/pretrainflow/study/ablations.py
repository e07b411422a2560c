"""Ablation grids over a base run, and the readable run ids of the expanded runs.

``{"base": "vit-micro-fdb", "grid": {"optimizer.name": ["adamw", "sam"], "optimizer.lr": [1e-3]}}`` becomes the runs
``vit-micro-fdb.optimizer-adamw.lr-0.001`` and ``vit-micro-fdb.optimizer-sam.lr-0.001``: the base name, then one
``<key>-<value>`` part per grid key, in the order the grid lists them.
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


def expand_ablation(name: str, ablation: dict[str, Any], runs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """All runs of one ablation grid: run id -> run definition (a deep copy of the base with the overrides applied)."""
    where = f"ablations.{name}"
    base_name = ablation["base"]
    if base_name not in runs:
        raise ConfigError(f"{where}.base: unknown pretrain run {base_name!r}; expected one of {sorted(runs)}")
    grid: dict[str, list[Any]] = ablation["grid"]
    shorts = [short_key(key) for key in grid]
    if len(set(shorts)) != len(shorts):
        raise ConfigError(f"{where}.grid: keys {list(grid)} give the same run id part twice ({shorts})")
    expanded = {}
    for combo in itertools.product(*grid.values()):
        run = copy.deepcopy(runs[base_name])
        parts = [base_name]
        for (key, value), short in zip(zip(grid, combo, strict=True), shorts, strict=True):
            set_dotted(run, key, value, f"{where}.grid.{key}")
            parts.append(f"{short}-{format_value(value)}")
        run_id = ".".join(parts)
        if run_id in expanded:
            raise ConfigError(f"{where}.grid: two combinations give the same run id {run_id!r}")
        run["ablation"] = {"name": name, "base": base_name, "overrides": dict(zip(grid, combo, strict=True))}
        expanded[run_id] = run
    return expanded
