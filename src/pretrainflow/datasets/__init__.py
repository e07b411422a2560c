"""Formula-driven synthetic datasets: family registry, sharded storage, torch datasets.

Public names (imported lazily, so ``import pretrainflow.datasets`` does not import torch)::

    get_family, Family, FAMILY_MODULES      registry of families (registry.py)
    DatasetSpec                             the generic keys of a dataset spec (generic_spec.py)
    check_spec, resolve                     a whole spec checked against its family (spec.py)
    open_dataset, OnTheFlyDataset           torch datasets over shards / rendered on the fly (torch_dataset.py)
    dataset_checksum                        sha256 over the manifest's shard checksums (manifest.py)
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "Family": "registry",
    "FAMILY_MODULES": "registry",
    "get_family": "registry",
    "family_names": "registry",
    "make_params": "registry",
    "DatasetSpec": "generic_spec",
    "check_spec": "spec",
    "resolve": "spec",
    "open_dataset": "torch_dataset",
    "OnTheFlyDataset": "torch_dataset",
    "ShardDataset": "torch_dataset",
    "dataset_checksum": "manifest",
    "verify_dataset": "manifest",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
