"""The torch renderer (gpu.py) gives the numpy renderer's pixels; run on the CPU device here, on CUDA when present."""

from __future__ import annotations

import pytest
import torch
from dataset_testlib import tiny_spec

from pretrainflow.datasets.gpu import FractalDBTorchRenderer
from pretrainflow.datasets.spec import resolve
from pretrainflow.datasets.torch_dataset import to_tensor


def devices():
    return ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)] if torch.cuda.is_available() else ["cpu"]


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("draw", ["patch", "point"])
def test_torch_renderer_equals_numpy(device, draw):
    # weights include a row (a, d x 40) that diverges: the NaN rule and the degenerate substitution are exercised too
    weights = [[1] * 6, [1.8, 1, 1, 1, 1, 1], [40, 1, 1, 40, 1, 1], [1, 1, 1, 0.2, 1, 1]]
    spec = tiny_spec(
        num_classes=2, instances_per_class=8, params={"draw": draw, "num_points": 1200, "pad": 4, "weights": weights}
    )
    ds, family, params = resolve(spec)
    categories = family.search(ds, params)
    renderer = FractalDBTorchRenderer(spec, categories, device=device, classes_per_batch=2)  # both classes in one pass
    indices = list(range(ds.num_images))[::-1]  # any order; the output follows it
    images = renderer.render(indices).cpu()
    rows = categories.to_dict("records")
    for row, i in enumerate(indices):
        expected = to_tensor(family.render(ds, params, rows[i // 8], i % 8))
        assert torch.equal(images[row], expected), f"image {i} differs"
    # one category per pass, and the trajectory recomputed for each of the three passes instead of kept
    one_by_one = FractalDBTorchRenderer(spec, categories, device=device, classes_per_batch=1, keep_bytes=0)
    assert torch.equal(one_by_one.render(indices).cpu(), images)
