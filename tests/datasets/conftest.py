"""Shared fixtures of the dataset-stage tests: tiny specs and a tiny rendered dataset."""

from __future__ import annotations

import pytest
import torch

torch.set_num_threads(1)

FIXTURES = __import__("pathlib").Path(__file__).resolve().parents[1] / "fixtures" / "fractaldb"


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


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A rendered tiny dataset directory (patch mode, 3 shards), built once per session."""
    from pretrainflow.datasets.build import build_dataset

    root = tmp_path_factory.mktemp("datasets") / "fdb-test"
    spec = tiny_spec(num_shards=3, params={"draw": "patch", "num_points": 2000, "pad": 4})
    build_dataset(spec, root)
    return root, spec
