"""Turn a mapping from the study into a typed dataclass, with errors that name the key path.

Dataclasses of the run specs check their values in ``__post_init__`` and raise ``ValueError("key: expected ...")``;
``build`` prefixes the path (``pretrain.vit-fdb.optimizer.lr: expected a number > 0, got -1``) and turns it into a
``ConfigError``. Unknown keys are rejected here, before any field is read.

A field whose study key is not a Python name (``batch.global``) is declared with ``study_key("global")``: ``build``
reads it from that key and ``to_dict`` writes it back under that key, so the resolved spec speaks the study's names.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import MISSING, Field, field, fields, is_dataclass
from typing import Any, TypeVar

from pretrainflow.errors import ConfigError

T = TypeVar("T")


def study_key(key: str, **kwargs: Any) -> Any:
    """A dataclass field read from and written to the study key ``key`` (e.g. ``global`` for ``global_batch``)."""
    return field(metadata={"study_key": key}, **kwargs)


def key_of(item: Field) -> str:
    """The study key of a dataclass field (its name unless declared with ``study_key``)."""
    return item.metadata.get("study_key", item.name)


def study_keys(cls: type) -> list[str]:
    """The study keys of a spec dataclass, in field order."""
    return [key_of(item) for item in fields(cls)]


def build(cls: type[T], data: Any, where: str, nested: Mapping[str, type] | None = None) -> T:
    """``cls(**data)`` with key checks; ``nested`` maps field names to dataclasses built recursively."""
    if is_dataclass(data):
        return data  # already typed
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__} {data!r}")
    by_key = {key_of(item): item for item in fields(cls)}
    unknown = sorted(set(data) - set(by_key))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(by_key)}")
    required = [key for key, item in by_key.items() if item.default is MISSING and item.default_factory is MISSING]
    missing = [key for key in required if key not in data]
    if missing:
        raise ConfigError(f"{where}: missing required key(s) {missing}")
    kwargs = {by_key[key].name: value for key, value in data.items()}
    for name, sub in (nested or {}).items():
        if name in kwargs and kwargs[name] is not None:
            kwargs[name] = build(sub, kwargs[name], f"{where}.{name}")
    try:
        return cls(**kwargs)
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(f"{where}.{err}") from err


def to_dict(value: Any) -> Any:
    """A spec dataclass as plain JSON-able data under its study keys (``dataclasses.asdict`` with ``study_key``).

    A spec may leave study keys out with an ``omitted_keys()`` method (train/devices.py: ``gpus`` in the per-node
    form, the node shape in the total form), so that a key added later keeps the resolved specs of older studies, and
    their config hashes, as they were.
    """
    if is_dataclass(value) and not isinstance(value, type):
        omitted = value.omitted_keys() if hasattr(value, "omitted_keys") else ()
        return {
            key_of(item): to_dict(getattr(value, item.name)) for item in fields(value) if key_of(item) not in omitted
        }
    if isinstance(value, Mapping):
        return {key: to_dict(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_dict(item) for item in value)
    return value


def positive_int(key: str, value: Any, minimum: int = 1) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{key}: expected an integer >= {minimum}, got {value!r}")


def number(
    key: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    open_low: bool = False,
    open_high: bool = False,
) -> None:
    """``value`` is a real number in [low, high]; ``open_low`` / ``open_high`` exclude that end."""
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if ok and low is not None:
        ok = value > low if open_low else value >= low
    if ok and high is not None:
        ok = value < high if open_high else value <= high
    if not ok:
        bound = f"{'>' if open_low else '>='} {low}" if low is not None else ""
        if high is not None:
            bound += f"{' and ' if bound else ''}{'<' if open_high else '<='} {high}"
        raise ValueError(f"{key}: expected a number {bound}".rstrip() + f", got {value!r}")


def one_of(key: str, value: Any, choices: list | tuple) -> None:
    if value not in choices:
        raise ValueError(f"{key}: expected one of {list(choices)}, got {value!r}")


def flag(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, got {value!r}")


def integer(key: str, value: Any, low: int | None = None, high: int | None = None) -> None:
    """``value`` is an integer (not a bool) in [low, high]; a ``None`` end is open (``positive_int`` with a ceiling)."""
    ok = isinstance(value, int) and not isinstance(value, bool)
    ok = ok and (low is None or value >= low) and (high is None or value <= high)
    if not ok:
        bounds = [f">= {low}"] if low is not None else []
        bounds += [f"<= {high}"] if high is not None else []
        raise ValueError(f"{key}: expected an integer {' and '.join(bounds)}".rstrip() + f", got {value!r}")


def string(key: str, value: Any) -> None:
    """``value`` is a non-empty string (a file path, a field name)."""
    if not (isinstance(value, str) and value):
        raise ValueError(f"{key}: expected a non-empty string, got {value!r}")


# Names that become directory names and rule wildcards (datasets, corpora): results/datasets/{name}/...
# A name written in a study, optionally followed by the dotted parts an expansion adds (study/ablations.py,
# study/replicates.py): newton, newton.mode-gray, vit-micro-fdb.lr-0.001.rep-2. One path component, never "." or "..".
SAFE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*(\.[A-Za-z0-9_+-][A-Za-z0-9_.+-]*)*")


def safe_name(key: str, value: Any) -> None:
    """``value`` is a study name (lowercase letters, digits, ``_``, ``-``; first a letter or digit), or such a name with
    the ``.<key>-<value>`` parts of an expanded unit.

    >>> [bool(SAFE_NAME.fullmatch(v)) for v in ("newton.mode-gray", "fdb.lr-0.001.rep-2", "..", "a/b", "a..", "Fdb")]
    [True, True, False, False, False, False]
    """
    if not (isinstance(value, str) and SAFE_NAME.fullmatch(value)):
        raise ValueError(f"{key}: expected a name matching {SAFE_NAME.pattern}, got {value!r}")
