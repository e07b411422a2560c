"""FractalDB rendering: the coverage shortcut equals sequential patch pasting; layout, flips, degenerate rule, purity."""

from __future__ import annotations

import numpy as np
import pytest
from dataset_testlib import tiny_spec

from pretrainflow.datasets import fractaldb
from pretrainflow.datasets import fractaldb_render as fr
from pretrainflow.datasets.fractaldb_search import search_systems
from pretrainflow.datasets.spec import resolve


def paste_sequentially(qx, qy, masks, size, gray):
    """The published renderer, literally: every point overwrites a 3x3 patch at (x+1, y+1) with its mask bits."""
    canvas = np.zeros((size, size), dtype=np.uint8)
    for x, y, mask in zip(qx, qy, masks, strict=True):
        for bit in range(9):
            row, col = y + 1 + bit // 3, x + 1 + bit % 3
            if row < size and col < size:
                canvas[row, col] = gray if (mask >> bit) & 1 else 0
    return canvas


def test_coverage_equals_sequential_paste_and_flips():
    rng = np.random.default_rng(1)
    size, n = 24, 400
    qx, qy = rng.integers(0, size - 2, n), rng.integers(0, size - 2, n)  # some patches cross the border
    masks = rng.integers(1, 512, n).astype(np.uint16)
    expected = paste_sequentially(qx, qy, masks, size, 127)
    cov = fr.coverage(qx.astype(np.uint16), qy.astype(np.uint16), size, patch=True)
    assert np.array_equal(fr.paint(cov, masks, 127, flip=1), expected)  # flip 1 undoes the published top-bottom flip
    assert np.array_equal(fr.paint(cov, masks, 127, flip=0), expected[::-1])
    assert np.array_equal(fr.paint(cov, masks, 127, flip=2), expected[::-1, ::-1])
    assert np.array_equal(fr.paint(cov, masks, 127, flip=3), expected[:, ::-1])


def test_point_mode_lights_every_hit_pixel():
    qx, qy = np.array([1, 2, 2], np.uint16), np.array([3, 4, 4], np.uint16)
    image = fr.paint(fr.coverage(qx, qy, 8, patch=False), None, 200, flip=1)
    assert np.count_nonzero(image) == 2 and image[3, 1] == 200 and image[4, 2] == 200


def test_instance_layout_covers_the_published_1000_variations():
    combos = {fr.instance_layout(i, 25, 4) for i in range(1000)}
    assert len(combos) == 1000
    assert {w for w, _, _ in combos} == set(range(25)) and max(d for _, _, d in combos) == 9
    assert [fr.instance_layout(i, 25, 4)[0] for i in range(3)] == [0, 1, 2]  # weight rows vary fastest


def test_weights_are_the_published_file():
    from dataset_testlib import FIXTURES

    published = np.loadtxt(FIXTURES / "weights_0.4.csv", delimiter=",")
    assert np.array_equal(np.array(fractaldb.WEIGHTS_0_4), published)


@pytest.fixture(scope="module")
def tiny():
    ds, family, params = resolve(tiny_spec(params={"draw": "patch", "num_points": 1500, "pad": 4}))
    return ds, family, params, family.search(ds, params).to_dict("records")


def test_render_is_pure_and_varies(tiny):
    ds, family, params, cats = tiny
    first = [family.render(ds, params, cats[0], i) for i in range(4)]
    fractaldb._category_coverages.cache_clear()
    again = [family.render(ds, params, cats[0], i) for i in range(4)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert first[0].shape == (32, 32) and first[0].dtype == np.uint8
    assert len({a.tobytes() for a in first}) == 4  # different weight rows
    assert not any(family.is_degenerate(a) for a in first)
    other_seed = resolve(tiny_spec(seed=8, params={"draw": "patch", "num_points": 1500, "pad": 4}))
    assert not np.array_equal(family.render(other_seed[0], params, cats[0], 0), first[0])  # masks follow the seed


def test_diverging_weight_row_is_replaced_by_the_unweighted_system(tiny):
    ds, family, _, cats = tiny
    _, _, params = resolve(tiny_spec(params={"draw": "point", "weights": [[1] * 6, [40, 1, 1, 40, 1, 1]]}))
    image_0 = family.render(ds, params, cats[0], 0)
    image_1 = family.render(ds, params, cats[0], 1)  # a, d x 40: the system explodes
    assert np.array_equal(image_0, image_1)
    assert not family.is_degenerate(image_1)
    assert family.is_degenerate(np.zeros((32, 32), np.uint8))


@pytest.mark.skipif(fr.njit_or_none(fr.last_writers) is None, reason="numba not installed")
@pytest.mark.parametrize(
    ("size", "pad", "patch"),
    [(128, 6, True), (96, 2, False), (64, 0, True)],  # pad 0: points on the canvas edge take the numpy path
)
def test_compiled_coverages_equal_the_numpy_path(size, pad, patch):
    # The published first categories under every published weight row plus an exploding one (a, d x 40: non-finite
    # points, the NaN rule): the compiled loops give exactly the batched numpy path's coverages.
    categories = search_systems(num_classes=3, seed=1, num_points=20_000, size=128)
    rows = [*fractaldb.WEIGHTS_0_4, (40.0, 1.0, 1.0, 40.0, 1.0, 1.0)]
    for maps, _, _ in categories:
        systems = fr.weighted_systems(maps, rows)
        compiled = fr.system_coverages(systems, maps[:, 6], 20_000, 100, size, pad, patch)
        numpy = fr.coverages(fr.trajectories(systems, maps[:, 6], 20_000, 100), size, pad, patch)
        assert len(compiled) == len(numpy) == len(rows)
        for a, b in zip(compiled, numpy, strict=True):
            assert np.array_equal(a.pixel, b.pixel) and np.array_equal(a.point, b.point)
            assert np.array_equal(a.bit, b.bit)
        assert len(numpy[-1].pixel) < 0.01 * size * size  # the exploding row really diverged
