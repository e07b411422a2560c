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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pretrainflow.errors import ConfigError
from pretrainflow.spec_fields import build, integer, one_of, positive_int, safe_name, string

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


@dataclass(kw_only=True, slots=True)
class DatasetSpec:
    """Typed generic part of a dataset spec, built with ``spec_fields.build`` by ``from_dict``.

    ``where`` is the key path of the spec (``datasets.fdb-tiny``), kept for the messages of later stages; it is not a
    key of the spec.
    """

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
        safe_name("name", self.name)
        string("family", self.family)
        positive_int("num_classes", self.num_classes)
        positive_int("instances_per_class", self.instances_per_class)
        positive_int("image_size", self.image_size, minimum=8)
        positive_int("num_shards", self.num_shards)
        if self.num_shards > self.num_images:
            raise ValueError(
                f"num_shards: expected at most num_classes * instances_per_class = {self.num_images} shards, "
                f"got {self.num_shards}"
            )
        integer("seed", self.seed, 0, 2**63 - 1)  # [0, 2**63): fits an int64
        if not isinstance(self.params, Mapping):
            raise ValueError(f"params: expected a mapping of family parameters, got {self.params!r}")
        one_of("image_format", self.image_format, IMAGE_FORMATS)
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
        # Checked here rather than by ``build``, whose list of keys would offer ``where``, a field but not a key.
        unknown = sorted(set(spec) - set(GENERIC_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown key(s) {unknown}; expected some of {sorted(GENERIC_KEYS)}")
        return build(cls, {**spec, "where": where}, where)

    def to_dict(self) -> dict:
        """The spec as given (without ``where``), e.g. for config.json."""
        return {k: getattr(self, k) for k in GENERIC_KEYS}
