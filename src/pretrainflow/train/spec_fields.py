"""Turn a mapping from the study into a typed dataclass, with errors that name the key path.

Dataclasses of the ViT specs check their values in ``__post_init__`` and raise ``ValueError("key: expected ...")``;
``build`` prefixes the path (``pretrain.vit-fdb.optimizer.lr: expected a number > 0, got -1``) and turns it into a
``ConfigError``. Unknown keys are rejected here, before any field is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, fields, is_dataclass
from typing import Any, TypeVar

from pretrainflow.errors import ConfigError

T = TypeVar("T")


def build(cls: type[T], data: Any, where: str, nested: Mapping[str, type] | None = None) -> T:
    """``cls(**data)`` with key checks; ``nested`` maps field names to dataclasses built recursively."""
    if is_dataclass(data):
        return data  # already typed
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(names)}")
    required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {missing}")
    kwargs = dict(data)
    for name, sub in (nested or {}).items():
        if name in kwargs and kwargs[name] is not None:
            kwargs[name] = build(sub, kwargs[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{where}.{err}") from err


def positive_int(key: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{key}: expected an integer >= {minimum}, got {value!r}")


def number(
    key: str, value: Any, low: float | None = None, high: float | None = None, *, open_low: bool = False
) -> None:
    """``value`` is a real number in [low, high] (or (low, high] with ``open_low``)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value <= high
    if not ok:
        bound = f"{'>' if open_low else '>='} {low}" if low is not None else "a number"
        if high is not None:
            bound += f" and <= {high}"
        raise ValueError(f"{key}: expected a number {bound}, got {value!r}")


def one_of(key: str, value: Any, choices: list | tuple) -> None:
    if value not in choices:
        raise ValueError(f"{key}: expected one of {list(choices)}, got {value!r}")
