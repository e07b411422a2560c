"""The columns statistics group, select and plot by: row columns, and ``config.<dotted key>`` read from config_json.

A results row carries the resolved config of its unit of work (``config_json``), so any parameter of a study is a
column on demand: ``config.optimizer.name`` is ``json.loads(config_json)["optimizer"]["name"]``, and a list element is
a number (``config.optimizer.betas.0``). The config is the one of the stage that wrote the row: a ViT evaluate row
holds the fine-tune spec (``config.pretrain_spec.dataset_spec.num_classes``), a pretrain row the pretraining run
(``config.dataset_spec.num_classes``). A row without the key gets null; a key that no row has is an error.

A selector picks rows for ``--compare``: ``KEY=VALUE[,KEY=VALUE...]`` (every term must hold; KEY a column or a config
key), or a bare name, which means ``cell=NAME``. Numbers compare as numbers (``config.optimizer.lr=1e-3`` matches
0.001), anything else as text; ``null`` matches a missing value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from pretrainflow.errors import PretrainflowError

CONFIG_PREFIX = "config."
MISSING = object()  # a config key absent from one row (distinct from a JSON null)


def config_value(config: Any, dotted: str) -> Any:
    """The value at ``dotted`` (``a.b.0``) inside a parsed config, or MISSING.

    >>> config_value({"optimizer": {"name": "sam", "betas": [0.9, 0.99]}}, "optimizer.betas.1")
    0.99
    >>> config_value({"optimizer": {}}, "optimizer.name") is MISSING
    True
    """
    node = config
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def _cell_value(value: Any) -> Any:
    """A config value as a groupable cell: scalars as they are, lists and mappings as canonical JSON text."""
    if value is MISSING:
        return None
    if isinstance(value, list | dict):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return value


def with_columns(frame: pd.DataFrame, names: Iterable[str]) -> pd.DataFrame:
    """``frame`` plus one column per ``config.<key>`` in ``names``; every other name must already be a column.

    >>> df = pd.DataFrame({"run_id": ["a", "b"], "config_json": ['{"lr": 0.1}', '{"lr": 0.2, "x": [1]}']})
    >>> with_columns(df, ["run_id", "config.lr", "config.x"])[["config.lr", "config.x"]].values.tolist()
    [[0.1, None], [0.2, '[1]']]
    """
    frame = frame.copy()
    parsed: list[Any] | None = None
    for name in dict.fromkeys(names):
        if name in frame.columns:
            continue
        if not name.startswith(CONFIG_PREFIX) or name == CONFIG_PREFIX:
            raise PretrainflowError(
                f"{name!r}: not a results column; expected one of {list(frame.columns)} "
                f"or a config key such as config.optimizer.name"
            )
        if parsed is None:
            parsed = [json.loads(text) if isinstance(text, str) else {} for text in frame["config_json"]]
        dotted = name[len(CONFIG_PREFIX) :]
        values = [config_value(config, dotted) for config in parsed]
        if values and all(value is MISSING for value in values):
            top = sorted({key for config in parsed if isinstance(config, dict) for key in config})
            raise PretrainflowError(f"{name!r}: no row's config has {dotted!r}; top-level config keys: {top}")
        frame[name] = pd.Series([_cell_value(value) for value in values], index=frame.index, dtype=object)
    return frame


def matches(value: Any, text: str) -> bool:
    """Whether a cell ``value`` equals the selector text ``text`` (numbers as numbers, null as null).

    >>> matches(0.001, "1e-3"), matches(3, "3"), matches("fdb", "fdb"), matches(None, "null"), matches(True, "true")
    (True, True, True, True, True)
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return text.lower() in ("null", "none", "")
    if isinstance(value, bool):
        return str(value).lower() == text.lower()
    if isinstance(value, int | float):
        try:
            return float(text) == float(value)
        except ValueError:
            return False
    return str(value) == text


@dataclass(frozen=True, slots=True)
class Selector:
    """One side of ``--compare``: the text as typed and its (key, value) terms, all of which must hold."""

    text: str
    terms: tuple[tuple[str, str], ...]

    @classmethod
    def parse(cls, text: str, where: str) -> Selector:
        """``pretrain_source=fdb,model=vit_micro`` or a bare cell name.

        >>> Selector.parse("pretrain_source=fdb,config.optimizer.lr=1e-3", "A").terms
        (('pretrain_source', 'fdb'), ('config.optimizer.lr', '1e-3'))
        >>> Selector.parse("vit-micro-fdb", "A").terms
        (('cell', 'vit-micro-fdb'),)
        """
        if "=" not in text:
            if not text.strip():
                raise PretrainflowError(f"{where}: an empty selector; expected KEY=VALUE[,KEY=VALUE...] or a cell name")
            return cls(text, (("cell", text.strip()),))
        terms = []
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise PretrainflowError(f"{where} {text!r}: {part!r} is not KEY=VALUE")
            terms.append((key.strip(), value.strip()))
        return cls(text, tuple(terms))

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.terms)

    def mask(self, frame: pd.DataFrame, where: str) -> pd.Series:
        """The rows of ``frame`` (which has every key as a column) this selector picks; none is an error."""
        mask = pd.Series(True, index=frame.index)
        for key, value in self.terms:
            term = frame[key].map(lambda cell, value=value: matches(cell, value)).astype(bool)
            if not term.any():
                shown = shown_values(frame[key])
                raise PretrainflowError(f"{where} {self.text!r}: no row has {key} = {value!r}; present: {shown}")
            mask &= term
        if not mask.any():
            raise PretrainflowError(f"{where} {self.text!r}: no row matches every term at once")
        return mask


def order_key(value: Any) -> tuple[int, float, str]:
    """A sort key that orders numbers numerically, then text, then nulls (a config column may mix them).

    >>> sorted([16, "b", None, 8, "a"], key=order_key)
    [8, 16, 'a', 'b', None]
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (2, 0.0, "")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (0, float(value), "")
    return (1, 0.0, str(value))


def shown_values(values: Iterable[Any], limit: int = 12) -> str:
    """The distinct values as text for an error message: sorted, the first ``limit`` shown, the rest counted.

    >>> shown_values(["b", "a", "b"]), shown_values(range(20), limit=3)
    ('a, b', '0, 1, 10, ... (20 values)')
    """
    present = sorted({str(value) for value in values})
    if not present:
        return "none"
    return ", ".join(present[:limit]) + (f", ... ({len(present)} values)" if len(present) > limit else "")


def unique(names: Sequence[Any]) -> list[Any]:
    """``names`` without repeats, first occurrence kept."""
    return list(dict.fromkeys(names))
