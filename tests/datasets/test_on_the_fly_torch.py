"""OnTheFlyDataset with the torch renderer (datasets/gpu.py on the CPU device): every item torch.equal to the stored
shard's, one at a time and through a shuffled DataLoader (batched fetch); other families refused by name."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch
from family_testlib import family_spec

from pretrainflow.datasets import OnTheFlyDataset, open_dataset
from pretrainflow.datasets.build import build_dataset
from pretrainflow.errors import PretrainflowError


def _torch_dataset(root) -> OnTheFlyDataset:
    spec = json.loads((root / "manifest.json").read_text())["spec"]
    return OnTheFlyDataset(spec, pd.read_parquet(root / "categories.parquet"), renderer="torch")


def test_torch_on_the_fly_items_equal_the_shards(tiny_dataset):
    root, _ = tiny_dataset
    stored, fly = open_dataset(root), _torch_dataset(root)
    assert len(stored) == len(fly) == 18 and stored.labels == fly.labels
    assert (fly.num_classes, fly.channels, fly.image_size) == (stored.num_classes, stored.channels, stored.image_size)
    lit = 0
    for i in reversed(range(len(stored))):  # reversed: each class is prepared afresh after the previous one
        (a, la), (b, lb) = stored[i], fly[i]
        assert b.dtype == torch.uint8 and b.shape == a.shape == (1, 32, 32) and b.device.type == "cpu"
        assert torch.equal(a, b) and la == lb, i
        lit += int(a.count_nonzero())
    assert lit > 0  # the comparison is not between blank images


def test_torch_on_the_fly_loader_batches_equal_the_shards(tiny_dataset):
    """A shuffled DataLoader fetches micro-batches through ``__getitems__`` (classes mixed in one render call)."""
    root, _ = tiny_dataset
    stored, fly = open_dataset(root), _torch_dataset(root)

    def batches(ds, workers=0):
        gen = torch.Generator().manual_seed(3)
        fork = {"multiprocessing_context": "fork"} if workers else {}
        loader = torch.utils.data.DataLoader(ds, batch_size=5, shuffle=True, generator=gen, num_workers=workers, **fork)
        return list(loader)

    want = batches(stored)
    assert len(want) == 4
    for got in (batches(fly), batches(fly, workers=2)):  # in the process, and in forked workers (num_workers: 2)
        for (x, y), (x0, y0) in zip(got, want, strict=True):
            assert torch.equal(x, x0) and torch.equal(y, y0)
    assert len(set(want[0][1].tolist())) > 1  # a batch spans several classes
    with pytest.raises(IndexError):
        fly.__getitems__([0, 18])


def test_torch_renderer_refuses_other_families(tmp_path):
    spec = family_spec("rcdb")
    build_dataset(spec, tmp_path / "rcdb")
    categories = pd.read_parquet(tmp_path / "rcdb" / "categories.parquet")
    with pytest.raises(
        PretrainflowError, match=r"renderer 'torch' draws fractaldb only, this dataset is family 'rcdb'"
    ):
        OnTheFlyDataset(spec, categories, renderer="torch")
    with pytest.raises(PretrainflowError, match=r"renderer: expected 'numpy' or 'torch', got 'cuda'"):
        OnTheFlyDataset(spec, categories, renderer="cuda")
