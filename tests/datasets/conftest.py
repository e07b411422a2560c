"""Fixtures of the dataset-stage tests: a tiny rendered dataset, built once per session."""

from __future__ import annotations

import pytest
import torch
from dataset_testlib import tiny_spec

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A rendered tiny dataset directory (patch mode, 3 shards) and its spec."""
    from pretrainflow.datasets.build import build_dataset

    root = tmp_path_factory.mktemp("datasets") / "fdb-test"
    spec = tiny_spec(num_shards=3, params={"draw": "patch", "num_points": 2000, "pad": 4})
    build_dataset(spec, root)
    return root, spec
