"""Registry of formula-driven dataset families.

Each family lives in its own module (``pretrainflow.datasets.<family>``) that defines ``FAMILY = Family(...)``. Modules are
imported lazily on lookup, so importing the registry costs nothing and a broken family cannot break the others.

A family is two pure functions:

- ``search(spec, params) -> DataFrame``: one row per category (column ``class_id`` 0..num_classes-1, then the category's
  parameters as Parquet-friendly scalars or lists of floats). This is the "category search" stage.
- ``render(spec, params, category, instance) -> uint8 image`` of shape (H, W) or (H, W, 3). ``category`` is one row of the
  search output as a dict. The image must be a pure function of its arguments: randomness comes from a
  ``numpy.random.Generator`` seeded with ``SeedSequence([spec.seed, class_id, instance, ...])`` (``instance_rng`` below),
  never from a global RNG, so any shard split and any number of jobs give identical bytes.

Example::

    fam = get_family("fractaldb")
    spec = DatasetSpec.from_dict({... "family": "fractaldb", "params": fam.tiny_params ...}, "datasets.x")
    params = make_params(fam, spec.params, "datasets.x")
    cats = fam.search(spec, params)
    img = fam.render(spec, params, cats.iloc[0].to_dict(), 0)
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from pretrainflow.datasets.generic_spec import DatasetSpec
from pretrainflow.errors import ConfigError
from pretrainflow.spec_fields import build

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

# Family name -> module defining FAMILY. Imported lazily on lookup.
FAMILY_MODULES: dict[str, str] = {
    "fractaldb": "pretrainflow.datasets.fractaldb",
    "visualatom": "pretrainflow.datasets.visualatom",
    "rcdb": "pretrainflow.datasets.rcdb",
    "exfractaldb": "pretrainflow.datasets.exfractaldb",
    "newton": "pretrainflow.datasets.newton",
}


@dataclass(frozen=True)
class Family:
    """One dataset family: its typed parameters, a tiny test variant, and the search / render functions."""

    name: str
    # A ``@dataclass(kw_only=True, slots=True)`` whose defaults are the published values (each commented with its
    # source). Its ``__post_init__`` checks with the ``spec_fields`` helpers (``ValueError("<field>: expected ...,
    # got ...")``); ``make_params`` builds it with ``spec_fields.build``, which prefixes the key path.
    params_type: type
    # Parameter overrides giving a tiny, fast variant (used by tests and the default study).
    tiny_params: dict
    search: Callable[[DatasetSpec, Any], pd.DataFrame]
    render: Callable[[DatasetSpec, Any, dict, int], np.ndarray]
    # The documented rule for a degenerate image (e.g. too few non-zero pixels); None = the family cannot produce one.
    is_degenerate: Callable[[np.ndarray], bool] | None
    channels: int = 1
    # Optional check of parameters against the generic spec keys (e.g. a padding that must fit the image size);
    # raises ``ValueError("params.<key>: expected ..., got ...")``, to which ``spec.resolve`` prefixes the key path.
    check: Callable[[DatasetSpec, Any], None] | None = field(default=None)


def get_family(name: str) -> Family:
    """Return the registered family ``name`` (imports its module on first use).

    >>> get_family("fractaldb").name
    'fractaldb'
    """
    if name not in FAMILY_MODULES:
        accepted = ", ".join(sorted(FAMILY_MODULES))
        raise ConfigError(f"family: unknown dataset family {name!r}; expected one of: {accepted}")
    try:
        module = importlib.import_module(FAMILY_MODULES[name])
    except ModuleNotFoundError as err:
        if err.name != FAMILY_MODULES[name]:
            raise
        raise ConfigError(
            f"family: dataset family {name!r} is registered but its module {err.name} is missing"
        ) from err
    family = getattr(module, "FAMILY", None)
    if not isinstance(family, Family) or family.name != name:
        raise TypeError(f"{FAMILY_MODULES[name]} must define FAMILY = Family(name={name!r}, ...)")
    return family


def family_names() -> list[str]:
    """Names of all registered families, sorted."""
    return sorted(FAMILY_MODULES)


def make_params(family: Family, params: Mapping[str, Any] | None, where: str) -> Any:
    """Build ``family.params_type`` from a params mapping (``spec_fields.build``), with errors naming
    ``{where}.params.<key>``; missing keys take the published defaults.

    Unknown keys are an error (a typo must not silently fall back to a default).

    >>> make_params(get_family("newton"), {"mode": "gray"}, "datasets.nf").mode
    'gray'
    """
    try:
        return build(family.params_type, dict(params or {}), f"{where}.params")
    except TypeError as err:  # a value of a type no check foresaw: still a bad study value, not a traceback
        raise ConfigError(f"{where}.params: {err}") from err


def instance_rng(seed: int, class_id: int, instance: int, *stream: int) -> np.random.Generator:
    """The Generator for one image: a pure function of (dataset seed, class, instance, optional sub-stream ids)."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), int(class_id), int(instance), *map(int, stream)]))


def params_as_dict(params: Any) -> dict:
    """The resolved parameters (defaults filled in) as a JSON-friendly dict, for manifests and config.json."""
    out = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if isinstance(value, tuple):
            value = [list(v) if isinstance(v, tuple) else v for v in value]
        out[f.name] = value
    return out
