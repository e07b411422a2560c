"""The generic keys of a dataset spec, typed and checked (``DatasetSpec``); nothing here knows the families.

A dataset spec is what every ``pretrainflow datasets ...`` command receives (canonical JSON, see docs/CONTRACTS.md)::

    {"name": "fdb-tiny", "family": "fractaldb", "num_classes": 4, "instances_per_class": 20, "image_size": 32,
     "num_shards": 2, "seed": 0, "params": {"num_points": 5000}}

``params`` holds the family-specific knobs; the family's ``params_type`` validates them (see registry.py) and
spec.py checks both parts together. ``DatasetSpec`` lives below both: registry.py types the family functions with
it, and spec.py resolves a spec through the registry, so the registry never has to import spec.py back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pretrainflow.errors import ConfigError, expect

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
# Image encodings a shard can hold (WebDataset extension of the image member): PNG (lossless, compact) or raw .npy.
IMAGE_FORMATS = ("png", "npy")
GENERIC_KEYS = (
    "name",
    "family",
    "num_classes",
    "instances_per_class",
    "image_size",
    "num_shards",
    "seed",
    "params",
    "image_format",
)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(kw_only=True, slots=True)
class DatasetSpec:
    """Typed generic part of a dataset spec. ``where`` is the key path used in error messages."""

    name: str
    family: str
    num_classes: int  # categories, >= 1
    instances_per_class: int  # images per category, >= 1
    image_size: int  # square images, pixels per side, >= 8
    num_shards: int  # tar shards (= parallel render jobs), 1 .. num_classes * instances_per_class
    seed: int  # dataset seed: every image is a pure function of (spec, class, instance)
    params: dict = field(default_factory=dict)
    image_format: str = "png"
    where: str = "dataset"

    def __post_init__(self) -> None:
        w = self.where
        expect(
            isinstance(self.name, str) and NAME_PATTERN.fullmatch(self.name) is not None,
            f"{w}.name",
            f"expected a name matching [a-z0-9][a-z0-9_-]*, got {self.name!r}",
        )
        expect(isinstance(self.family, str), f"{w}.family", f"expected a family name, got {self.family!r}")
        for key, low in (("num_classes", 1), ("instances_per_class", 1), ("image_size", 8), ("num_shards", 1)):
            value = getattr(self, key)
            expect(_is_int(value) and value >= low, f"{w}.{key}", f"expected an integer >= {low}, got {value!r}")
        expect(
            self.num_shards <= self.num_images,
            f"{w}.num_shards",
            f"expected at most num_classes * instances_per_class = {self.num_images} shards, got {self.num_shards}",
        )
        expect(
            _is_int(self.seed) and 0 <= self.seed < 2**63,
            f"{w}.seed",
            f"expected an integer in [0, 2**63), got {self.seed!r}",
        )
        expect(isinstance(self.params, Mapping), f"{w}.params", f"expected a mapping, got {self.params!r}")
        expect(
            self.image_format in IMAGE_FORMATS,
            f"{w}.image_format",
            f"expected one of {', '.join(IMAGE_FORMATS)}, got {self.image_format!r}",
        )
        self.params = dict(self.params)

    @property
    def num_images(self) -> int:
        return self.num_classes * self.instances_per_class

    @classmethod
    def from_dict(cls, spec: Mapping[str, Any] | str, where: str | None = None) -> DatasetSpec:
        """Parse a spec mapping (or its JSON text); unknown or missing keys are errors naming the key path."""
        if isinstance(spec, str):
            try:
                spec = json.loads(spec)
            except json.JSONDecodeError as err:
                raise ConfigError(f"{where or 'dataset'}: the dataset spec is not valid JSON ({err})") from err
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{where or 'dataset'}: expected a mapping, got {type(spec).__name__}")
        where = where or f"datasets.{spec.get('name', '?')}"
        for key in spec:
            expect(key in GENERIC_KEYS, f"{where}.{key}", f"unknown key; expected one of: {', '.join(GENERIC_KEYS)}")
        missing = [k for k in GENERIC_KEYS[:7] if k not in spec]
        expect(not missing, f"{where}.{missing[0] if missing else ''}", "required key is missing")
        return cls(**{k: spec[k] for k in spec}, where=where)

    def to_dict(self) -> dict:
        """The spec as given (without ``where``), e.g. for config.json."""
        return {k: getattr(self, k) for k in GENERIC_KEYS}
