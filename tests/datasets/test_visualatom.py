"""VisualAtom family, and the shared drawing code it uses: 1D Perlin noise, noisy orbits, the polyline rasteriser."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from pretrainflow.datasets import _perlin, _raster
from pretrainflow.datasets._orbits import Orbits, render_orbits
from pretrainflow.datasets.registry import get_family, make_params
from pretrainflow.datasets.spec import resolve
from pretrainflow.errors import ConfigError

FAMILY = "visualatom"


def spec(**overrides) -> dict:
    base = {"name": "va-test", "family": FAMILY, "num_classes": 3, "instances_per_class": 4, "image_size": 48,
            "num_shards": 1, "seed": 11, "params": dict(get_family(FAMILY).tiny_params)}  # fmt: skip
    base.update(overrides)
    return base


def render_all(raw: dict) -> list[np.ndarray]:
    ds, fam, params = resolve(raw)
    categories = fam.search(ds, params).to_dict("records")
    return [fam.render(ds, params, c, i) for c in categories for i in range(ds.instances_per_class)]


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


def test_rasteriser_matches_a_pixel_by_pixel_reference():
    rng = np.random.default_rng(3)
    size = 40
    xs = rng.uniform(-30, 70, (6, 9))  # segments inside, crossing and outside the image, up to ~100 px long
    ys = rng.uniform(-30, 70, (6, 9))
    colors = np.array([10, 60, 110, 160, 210, 250], dtype=np.uint8)
    got = _raster.draw_closed_polylines(xs, ys, size, colors, background=0)
    np.testing.assert_array_equal(got, reference_polylines(xs, ys, size, colors, 0))


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


# --- the family ---------------------------------------------------------------------------------------------------


def test_tiny_variant_shapes_dtypes_and_speed():
    start = time.perf_counter()
    images = render_all(spec())
    assert time.perf_counter() - start < 5.0
    assert len(images) == 12
    assert all(im.shape == (48, 48) and im.dtype == np.uint8 for im in images)
    assert not any(get_family(FAMILY).is_degenerate(im) for im in images)


def test_pure_function_of_spec_class_and_instance():
    first = render_all(spec())
    assert all(np.array_equal(a, b) for a, b in zip(first, render_all(spec()), strict=True))
    # more classes and instances, other shard count: the shared (class, instance) images are identical bytes
    more = render_all(spec(num_classes=5, instances_per_class=6, num_shards=3))
    for c in range(3):
        for i in range(4):
            assert np.array_equal(first[c * 4 + i], more[c * 6 + i])
    assert not np.array_equal(first[0], first[1])  # instances differ
    other_seed = render_all(spec(seed=12))
    assert not np.array_equal(first[0], other_seed[0])


def test_golden_bytes():
    # Bit-identical output on every machine: a change of these hashes is a change of the dataset.
    digest = hashlib.sha256(b"".join(im.tobytes() for im in render_all(spec()))).hexdigest()
    assert digest == GOLDEN_SHA256


GOLDEN_SHA256 = "8c2ee8a31d3952e34697f1704ed9129c73fca260e92cbecafd00c98d75bf416c"


def test_search_draws_the_published_ranges():
    ds, fam, params = resolve(spec(num_classes=400, params={}))
    cats = fam.search(ds, params)
    assert list(cats.class_id) == list(range(400))
    assert cats.num_vertices.between(200, 1000).all() and cats.num_orbits.between(1, 200).all()
    assert cats.perlin.between(0, 4).all() and cats.line_width.between(0, 0.1).all()
    assert cats.radius.between(10, 60).all()
    assert cats.freq1.between(0, 20).all() and cats.freq2.between(0, 20).all()
    assert ((cats.freq1 != cats.freq2) | (cats.freq1 == 0)).all()
    assert cats.oval_x.between(1, 2).all() and cats.oval_y.between(1, 2).all()
    assert cats.num_orbits.max() > 190 and cats.num_vertices.min() < 210  # the whole range is used


def test_published_size_renders_black_background_with_gray_orbits():
    ds, fam, params = resolve(spec(image_size=512, num_classes=2, params={}))
    image = fam.render(ds, params, fam.search(ds, params).iloc[1].to_dict(), 0)
    assert image.shape == (512, 512)
    assert np.bincount(image.ravel()).argmax() == 0  # black background dominates
    assert len(np.unique(image)) > 10  # many gray levels, one per orbit


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"vertices_min": 2}, "datasets.va.params.vertices_min: expected an integer in [3, 100000], got 2"),
        ({"vertices_min": 50, "vertices_max": 40}, "datasets.va.params.vertices_max: expected an integer in [50, "),
        ({"orbits_max": 0}, "datasets.va.params.orbits_max: expected an integer in [1, 10000], got 0"),
        ({"perlin_min": -1.0}, "datasets.va.params.perlin_min: expected a number in [0.0, 1000.0], got -1.0"),
        ({"oval_rate": 0.5}, "datasets.va.params.oval_rate: expected a number in [1.0, 1000.0], got 0.5"),
        ({"freq_min": 3, "freq_max": 3}, "datasets.va.params.freq_max: expected freq_max > freq_min"),
        ({"radius_min": "10"}, "datasets.va.params.radius_min: expected an integer"),
        (
            {"orbits_max": 10_000, "vertices_max": 2000},
            "datasets.va.params.orbits_max: expected orbits_max * vertices_max",
        ),
        ({"vertex_num_min": 3}, "datasets.va.params.vertex_num_min: unknown parameter of family 'visualatom'"),
    ],
)
def test_bad_parameters_name_the_key_and_range(params, message):
    with pytest.raises(ConfigError) as err:
        make_params(get_family(FAMILY), params, "datasets.va")
    assert str(err.value).startswith(message)


def test_shard_splits_and_on_the_fly_give_the_same_pixels(tmp_path):
    import pandas as pd

    from pretrainflow.datasets.build import build_dataset
    from pretrainflow.datasets.torch_dataset import OnTheFlyDataset, open_dataset

    build_dataset(spec(num_shards=1), tmp_path / "one")
    build_dataset(spec(num_shards=5), tmp_path / "five")
    one, five = open_dataset(tmp_path / "one"), open_dataset(tmp_path / "five")
    fly = OnTheFlyDataset(spec(num_shards=5), pd.read_parquet(tmp_path / "five" / "categories.parquet"))
    assert len(one) == len(five) == len(fly) == 12
    for i in range(len(one)):
        (a, label_a), (b, label_b), (c, label_c) = one[i], five[i], fly[i]
        assert label_a == label_b == label_c and a.equal(b) and a.equal(c)
