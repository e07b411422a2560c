"""A whole dataset spec checked: its generic keys (generic_spec.py) and its family's parameters (registry.py).

``resolve`` turns a spec mapping or JSON text into ``(DatasetSpec, Family, params)``; ``resolved_dict`` is that spec
with every family default filled in (what is hashed, passed to rules and stored in manifests); ``check_spec`` is the
config loader's hook for the ``datasets`` section of a study.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pretrainflow.datasets.generic_spec import DatasetSpec
from pretrainflow.datasets.registry import get_family, make_params, params_as_dict
from pretrainflow.errors import ConfigError


def resolve(spec: Mapping[str, Any] | str | DatasetSpec, where: str | None = None):
    """Parse a spec and its family parameters: returns ``(DatasetSpec, Family, params)``."""
    ds = spec if isinstance(spec, DatasetSpec) else DatasetSpec.from_dict(spec, where)
    try:
        family = get_family(ds.family)
    except ConfigError as err:
        raise ConfigError(f"{ds.where}.{err}") from err
    params = make_params(family, ds.params, ds.where)
    if family.check is not None:
        try:
            family.check(ds, params)
        except ValueError as err:
            raise ConfigError(f"{ds.where}.{err}") from err
    return ds, family, params


def resolved_dict(ds: DatasetSpec, params: Any) -> dict:
    """The spec with every family default filled in: what is hashed, passed to rules and stored in manifests."""
    return {**ds.to_dict(), "params": params_as_dict(params)}


def check_spec(spec: Mapping[str, Any], where: str) -> dict:
    """Validate one dataset spec of a study (``where`` = ``"datasets.<name>"``) and return it with every default filled
    in (the config loader stores that as the resolved spec); raises ConfigError with the key path."""
    ds, _, params = resolve(spec, where)
    return resolved_dict(ds, params)
