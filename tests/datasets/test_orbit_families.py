"""What VisualAtom and RCDB alone have: their shared drawing code (1D Perlin noise, the polyline rasteriser, noisy
orbits) and the parts of their category laws that are more than ranges (the ranges are in test_family_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
from family_testlib import searched_categories

from pretrainflow.datasets import _orbits, _perlin, _raster, resolve
from pretrainflow.datasets._orbits import Orbits, render_orbits

# --- Perlin noise -------------------------------------------------------------------------------------------------

# noise 1.2.2 (the C package the published renderers import): noise.pnoise1(x) at these x, computed once with it.
NOISE_PACKAGE_VALUES = {
    0.25: 0.6861328482627869, 0.5: 0.699999988079071, 0.75: 0.15878906846046448, 1.3: 0.14609277248382568,
    2.9: 0.036575984209775925, 17.61: -0.5068397521972656, 100.123: 0.1022738590836525, 255.5: -0.30000001192092896,
    1000.7: -0.5477999448776245, 1023.9: -0.30178776383399963, 5000.33: 0.5148645043373108,
    9999.9: 0.04560413584113121, 3.0: 0.0, 0.1: 0.3141792118549347, 0.9: -0.015003777109086514,
}  # fmt: skip


def test_perlin_matches_the_noise_package():
    xs = np.array(list(NOISE_PACKAGE_VALUES), dtype=np.float32).astype(np.float64)  # the package takes a C float
    expected = np.array(list(NOISE_PACKAGE_VALUES.values()))
    np.testing.assert_allclose(_perlin.pnoise1(xs), expected, atol=2e-6)  # float32 arithmetic in the package


def test_perlin_definition():
    assert sorted(_perlin.PERM) == list(range(256))
    lattice = np.arange(-5.0, 300.0)
    assert np.all(_perlin.pnoise1(lattice) == 0.0)  # zero on every lattice point
    x = np.arange(512 * 256) / 256.0  # dyadic steps: x + 256 has exactly the same fractions
    values = _perlin.pnoise1(x)
    assert np.all(np.abs(np.diff(values)) < 0.1)  # continuous: a 1/256 step changes it by < 0.1
    np.testing.assert_array_equal(_perlin.pnoise1(x), _perlin.pnoise1(x + 256.0))  # period 256 (repeat 1024)
    # slope at lattice point i is 0.4 * g(PERM[i]); g = -1 when bit 3 is set (the package's grad1), else (h & 7) + 1
    h = np.array(_perlin.PERM)
    slope = (_perlin.pnoise1(np.arange(256) + 1e-7) / 1e-7) / 0.4
    np.testing.assert_allclose(slope, np.where(h & 8, -1, (h & 7) + 1), rtol=1e-4)


def test_random_pnoise1_has_the_published_distribution():
    rng = np.random.default_rng(0)
    table_draws = _perlin.random_pnoise1(rng, (400_000,))
    exact = _perlin.pnoise1(rng.random(400_000) * 10_000.0)  # the published way: noise at u ~ U(0, 10000)
    assert table_draws.dtype == np.float32
    assert abs(table_draws.mean() - exact.mean()) < 0.003
    assert abs(table_draws.std() - exact.std()) < 0.003
    np.testing.assert_allclose(np.quantile(table_draws, [0.01, 0.25, 0.5, 0.75, 0.99]),
                               np.quantile(exact, [0.01, 0.25, 0.5, 0.75, 0.99]), atol=0.01)  # fmt: skip


# --- rasteriser ---------------------------------------------------------------------------------------------------


def reference_polylines(xs, ys, size, colors, background):
    """Slow, obvious version of draw_closed_polylines: one segment and one pixel at a time, later lines overwrite."""
    image = np.full((size, size), background, dtype=np.uint8)
    ix, iy = np.floor(xs).astype(int), np.floor(ys).astype(int)
    for k in range(xs.shape[0]):
        for v in range(xs.shape[1]):
            x0, y0, x1, y1 = ix[k, v], iy[k, v], ix[k, (v + 1) % xs.shape[1]], iy[k, (v + 1) % xs.shape[1]]
            n = max(abs(x1 - x0), abs(y1 - y0))
            for t in range(max(n, 1)):
                sx, sy = (np.float32(x1 - x0) / np.float32(max(n, 1)), np.float32(y1 - y0) / np.float32(max(n, 1)))
                col = int(np.float32(x0) + np.float32(1.5) + np.float32(t) * sx) - 1
                row = int(np.float32(y0) + np.float32(1.5) + np.float32(t) * sy) - 1
                if 0 <= col < size and 0 <= row < size:
                    image[row, col] = colors[k]
    return image


@pytest.mark.parametrize("compiled", [None, False], ids=["numba", "numpy"])
def test_rasteriser_matches_a_pixel_by_pixel_reference(compiled):
    rng = np.random.default_rng(3)
    size = 40
    xs = rng.uniform(-30, 70, (6, 9))  # segments inside, crossing and outside the image, up to ~100 px long
    ys = rng.uniform(-30, 70, (6, 9))
    colors = np.array([10, 60, 110, 160, 210, 250], dtype=np.uint8)
    got = _raster.draw_closed_polylines(xs, ys, size, colors, background=0, compiled=compiled)
    np.testing.assert_array_equal(got, reference_polylines(xs, ys, size, colors, 0))


def test_compiled_and_numpy_paths_draw_the_same_images(monkeypatch):
    # the numba loops (rasteriser, orbit sums) against the numpy passes, over whole images of both families at the
    # published parameters and size, and at a scaled size; an infinite vertex falls back to the numpy path
    assert _raster.compiled_paint_polylines() is not None and _orbits.compiled_accumulate_orbits() is not None
    for family, size in (("visualatom", 512), ("rcdb", 512), ("visualatom", 100), ("rcdb", 64)):
        spec, fam, params = resolve(
            {"name": "t", "family": family, "num_classes": 6, "instances_per_class": 3, "image_size": size,
             "num_shards": 1, "seed": 11, "params": {}}
        )  # fmt: skip
        cases = [(row, i) for row in fam.search(spec, params).to_dict("records") for i in range(3)]
        compiled = [fam.render(spec, params, row, i) for row, i in cases]
        with monkeypatch.context() as patch:
            patch.setattr(_raster, "compiled_paint_polylines", lambda: None)
            patch.setattr(_orbits, "compiled_accumulate_orbits", lambda: None)
            numpy_path = [fam.render(spec, params, row, i) for row, i in cases]
        for (row, i), a, b in zip(cases, compiled, numpy_path, strict=True):
            assert np.array_equal(a, b), (family, size, row["class_id"], i)
    xs = np.array([[2.0, 30.0, -np.inf, 5.0], [1.0, 9.0, 20.0, 3.0]])  # clamped to +-64 image sizes by numpy
    ys = np.array([[3.0, 4.0, 20.0, 25.0], [np.inf, 2.0, 12.0, 30.0]])
    grays = np.array([90, 200], dtype=np.uint8)
    np.testing.assert_array_equal(_raster.draw_closed_polylines(xs, ys, 32, grays, 0),
                                  _raster.draw_closed_polylines(xs, ys, 32, grays, 0, compiled=False))  # fmt: skip


def test_rasteriser_draws_connected_one_pixel_lines():
    # one horizontal and one diagonal closed polyline: exact pixel sets, the later line wins where they cross
    xs = np.array([[2.5, 12.5, 12.5], [2.0, 9.0, 2.0]])
    ys = np.array([[5.5, 5.5, 5.5], [2.0, 9.0, 2.0]])
    image = _raster.draw_closed_polylines(xs, ys, 16, np.array([100, 200], dtype=np.uint8), background=0)
    assert np.all(image[5, 2:13] > 0) and np.count_nonzero(image[5]) == 11
    assert image[5, 5] == 200  # the diagonal (drawn second) passes (5, 5)
    assert all(image[i, i] == 200 for i in range(2, 10))
    assert np.count_nonzero(image) == 11 + 8 - 1


def test_almost_empty_rule():
    image = np.zeros((64, 64), dtype=np.uint8)
    assert _raster.is_almost_empty(image, 0)
    image[0, 0] = 7  # threshold max(1, 64 * 64 / 4096) = 1 pixel: one is enough
    assert not _raster.is_almost_empty(image, 0)
    big = np.zeros((512, 512), dtype=np.uint8)
    big[0, :63] = 255  # 63 < 512 * 512 / 4096 = 64
    assert _raster.is_almost_empty(big, 0)
    big[1, 0] = 255
    assert not _raster.is_almost_empty(big, 0)


def test_orbits_without_noise_are_the_start_oval():
    # lam = 0, lw = 0, no waves: every orbit equals the start oval (radius 60 x 1.5 by 60 x 1.0 around (100, 90))
    orbits = Orbits(num_vertices=720, num_orbits=3, perlin=0.0, noise_amplitude=0.0, line_width=0.0, radius=60.0,
                    oval_x=1.5, oval_y=1.0, centre_x=100.0, centre_y=90.0)  # fmt: skip
    image = render_orbits(orbits, np.random.default_rng(0), size=200, canvas=200, background=0)
    rows, cols = np.nonzero(image)
    ellipse = ((cols + 0.5 - 100) / 90.0) ** 2 + ((rows + 0.5 - 90) / 60.0) ** 2
    assert np.all(np.abs(ellipse - 1.0) < 0.05)
    assert image[90, 190] > 0 or image[90, 189] > 0  # the rightmost point
    assert 400 < len(rows) < 520  # about the perimeter (~479 px) at one pixel per step


def test_orbits_grow_outward_with_the_perlin_offset():
    # noise drift: every orbit steps out by lam + lw on average (pnoise1 has mean 0), so K orbits span ~K lam px
    orbits = Orbits(num_vertices=300, num_orbits=40, perlin=2.0, noise_amplitude=2.0, line_width=0.0, radius=10.0,
                    oval_x=1.0, oval_y=1.0, centre_x=200.0, centre_y=200.0)  # fmt: skip
    image = render_orbits(orbits, np.random.default_rng(1), size=400, canvas=400, background=0)
    rows, cols = np.nonzero(image)
    radius = np.hypot(cols + 0.5 - 200, rows + 0.5 - 200)
    assert radius.min() < 25 and 70 < radius.max() < 130  # 10 + 40 * 2 = 90 px plus the random walk


# --- category laws ------------------------------------------------------------------------------------------------


def test_rcdb_vertex_counts_follow_the_truncated_exponential():
    cats = searched_categories("rcdb")
    # V = int(Exp(mean 100)) truncated to (2, 200]: mean of the truncated law is about 69
    assert 60 < cats.num_vertices.mean() < 78
    assert 0.05 < (cats.num_vertices <= 10).mean() < 0.13  # P(3 <= X < 11 | 3 <= X < 201) = 0.089


def test_visualatom_frequencies_differ_and_ranges_are_used_whole():
    cats = searched_categories("visualatom")
    assert ((cats.freq1 != cats.freq2) | (cats.freq1 == 0)).all()
    assert cats.num_orbits.max() > 190 and cats.num_vertices.min() < 210  # the whole range is used
