"""The registry itself: looking up families by name, and FractalDB's two search modes. What every registered family
must honour is checked family by family in test_family_contract.py (parametrised over the registry)."""

from __future__ import annotations

import pytest

from pretrainflow.datasets.registry import get_family
from pretrainflow.datasets.spec import resolve
from pretrainflow.errors import ConfigError


def test_unknown_family_lists_the_accepted_names():
    with pytest.raises(ConfigError, match="expected one of: exfractaldb, fractaldb, newton, rcdb, visualatom"):
        get_family("mandelbrot")


def test_seeded_search_differs_from_reference_and_repeats():
    base = {
        "name": "s",
        "family": "fractaldb",
        "num_classes": 1,
        "instances_per_class": 1,
        "image_size": 32,
        "num_shards": 1,
        "seed": 5,
        "params": {"search_points": 20000, "search_size": 128, "search_batch": 64},
    }
    seeded = {**base, "params": {**base["params"], "search": "seeded"}}
    ds, fam, params = resolve(seeded)
    a, b = fam.search(ds, params), fam.search(ds, params)
    ref_spec, _, ref_params = resolve(base)
    ref = fam.search(ref_spec, ref_params)
    assert a.equals(b) and not a.equals(ref)
