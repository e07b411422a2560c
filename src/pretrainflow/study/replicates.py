"""Replicates of a study's cells, the seed rule they follow, and units found identical from their resolved specs.

A study (or one ablation) sets ``replicates: N`` (replicate seeds 0..N-1) or ``replicates: [k0, k1, ...]`` (explicit
replicate seeds). Replicate ``r`` of a cell, with replicate seed ``k_r``:

- pretrains with seed = the run's own ``seed`` (else the study's ``seed``) + ``k_r``;
- fine-tunes with seed = the study's ``seed`` + ``k_r``, whatever run it starts from: replicate ``r`` of a FractalDB
  run and of the scratch baseline fine-tune with the same seed (new head, data order), so comparing them pairs
  replicates; ``finetune.recipe.seed`` still offsets it;
- is named ``<cell>.rep-<r>`` when the cell has more than one replicate, and ``<cell>`` when it has one (a study
  without ``replicates`` keeps its ids and its specs).

Two units whose resolved specs are equal apart from their names are one unit: it runs once (the first one written in
the study keeps its id), and the loader records a note for the plan.

>>> replicate_seeds(3), replicate_seeds([5, 7])
([0, 1, 2], [5, 7])
>>> replicate_id("vit-tiny-fdb", 1, 3), replicate_id("vit-tiny-fdb", 0, 1)
('vit-tiny-fdb.rep-1', 'vit-tiny-fdb')
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pretrainflow.errors import ConfigError
from pretrainflow.io import canonical_json

# Keys that name a unit or say where it came from, not what it computes; and the specs nested in another unit's.
NAME_KEYS = ("run_id", "name", "ablation")
NESTED_SPECS = ("dataset_spec", "corpus_spec", "pretrain_spec")


@dataclass(frozen=True, slots=True)
class CellRef:
    """Which cell a unit belongs to and which replicate of it it is (the ``cell`` and ``replicate`` result columns)."""

    cell: str
    replicate: int


def replicate_seeds(value: Any, where: str = "replicates") -> list[int]:
    """The replicate seeds of a ``replicates`` value: a count N (0..N-1) or an explicit list of distinct seeds."""
    if isinstance(value, bool) or not isinstance(value, (int, list)):
        raise ConfigError(f"{where}: expected a count >= 1 or a list of seeds, got {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"{where}: expected at least 1 replicate, got {value}")
        return list(range(value))
    if not value or not all(isinstance(k, int) and not isinstance(k, bool) and k >= 0 for k in value):
        raise ConfigError(f"{where}: expected a non-empty list of seeds >= 0, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: replicate seeds repeat ({value}); each replicate needs its own")
    return list(value)


def replicate_id(cell: str, index: int, count: int) -> str:
    """The id of replicate ``index`` of ``cell`` when the cell has ``count`` replicates."""
    return cell if count == 1 else f"{cell}.rep-{index}"


def spec_identity(spec: Mapping[str, Any]) -> str:
    """What a unit computes: its resolved spec without the keys that only name it (nested specs included)."""

    def strip(node: Mapping[str, Any] | None) -> dict[str, Any] | None:
        if node is None:
            return None
        return {
            key: strip(value) if key in NESTED_SPECS else value for key, value in node.items() if key not in NAME_KEYS
        }

    return canonical_json(strip(spec))


def first_of_equals(ids_and_specs: Iterable[tuple[Hashable, Mapping[str, Any]]]) -> dict[Any, Any]:
    """Unit id -> id of the first unit with an equal spec (itself when it is the first)."""
    first: dict[str, Any] = {}
    canonical: dict[Any, Any] = {}
    for unit_id, spec in ids_and_specs:
        canonical[unit_id] = first.setdefault(spec_identity(spec), unit_id)
    return canonical
