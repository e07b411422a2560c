"""Helpers shared by the dataset-stage tests (a uniquely named module: every test area has its own conftest.py)."""

from __future__ import annotations

from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fractaldb"


def tiny_spec(**overrides) -> dict:
    """A FractalDB spec small enough for unit tests (the published categories, 32 px, 1,000 single points)."""
    spec = {
        "name": "fdb-test",
        "family": "fractaldb",
        "num_classes": 3,
        "instances_per_class": 6,
        "image_size": 32,
        "num_shards": 2,
        "seed": 7,
        "params": {"num_points": 1000, "pad": 2, "draw": "point", "search_batch": 64},
    }
    params = overrides.pop("params", {})
    spec.update(overrides)
    spec["params"] = {**spec["params"], **params}
    return spec
