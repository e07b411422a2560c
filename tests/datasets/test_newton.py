"""Newton-fractal family: basins of Newton's method, the three modes, determinism, validation, degenerate rule."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from pretrainflow.datasets import newton
from pretrainflow.datasets.registry import get_family, make_params
from pretrainflow.datasets.spec import resolve
from pretrainflow.errors import ConfigError

FAMILY = "newton"


def spec(**overrides) -> dict:
    params = {**get_family(FAMILY).tiny_params, **overrides.pop("params", {})}
    base = {"name": "nf-test", "family": FAMILY, "num_classes": 3, "instances_per_class": 4, "image_size": 40,
            "num_shards": 1, "seed": 2, "params": params}  # fmt: skip
    base.update(overrides)
    return base


def render_all(raw: dict) -> list[np.ndarray]:
    ds, fam, params = resolve(raw)
    categories = fam.search(ds, params).to_dict("records")
    return [fam.render(ds, params, c, i) for c in categories for i in range(ds.instances_per_class)]


def test_basins_of_z_cubed_minus_one():
    # roots of z^3 - 1; plain Newton (a = 1): points near a root go to it, the positive real axis goes to 1
    angles = 2 * np.pi * np.arange(3) / 3
    roots_re, roots_im = np.cos(angles), np.sin(angles)
    re = np.array([2.0, 5.0, 0.9, -0.45, -0.6, 1e-3], dtype=np.float32)
    im = np.array([0.0, 0.0, 0.1, 0.8, -0.9, 0.0], dtype=np.float32)
    index, steps = newton.newton_basins(re, im, roots_re, roots_im, 1.0, 64, 1e-4)
    assert list(index[:5]) == [0, 0, 0, 1, 2]
    assert steps[2] < steps[0] < steps[1]  # further away takes longer
    assert index[5] == 0 and steps[5] > 30  # next to the critical point 0 the first step throws z to ~3e5


def test_every_converged_pixel_sits_on_its_root():
    ds, fam, params = resolve(spec(params={"max_iter": 40}))
    cat = fam.search(ds, params).iloc[0].to_dict()
    rng = np.random.default_rng(0)
    re, im = (rng.uniform(-2, 2, 2000).astype(np.float32) for _ in range(2))
    index, steps = newton.newton_basins(re, im, cat["roots_re"], cat["roots_im"], 1.0, 40, 1e-4)
    assert (index >= 0).mean() > 0.95
    # check with float64 Newton from the same starting points: the same root
    z = re.astype(np.complex128) + 1j * im
    roots = np.array(cat["roots_re"]) + 1j * np.array(cat["roots_im"])
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(200):
            step = 1.0 / np.sum(1.0 / (z[:, None] - roots[None, :]), axis=1)
            z = np.where(np.isfinite(step), z - step, z)  # a point exactly on a root stays there
    nearest = np.argmin(np.abs(z[:, None] - roots[None, :]), axis=1)
    converged = index >= 0
    assert (nearest[converged] == index[converged]).mean() > 0.98  # float32 vs float64 differ only on boundaries


def test_modes_shapes_and_values():
    bw, gray, color = (render_all(spec(params={"mode": m}))[0] for m in ("bw", "gray", "color"))
    for image in (bw, gray, color):
        assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    assert set(np.unique(bw)) <= {0, 255} and len(np.unique(bw)) == 2
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
    assert len(np.unique(gray)) > 3
    assert not np.array_equal(color[..., 0], color[..., 1])  # really coloured
    # the same basins in every mode: gray is black only where nothing converged, and bw is black there too
    assert np.all(gray[bw > 0] > 0)


def test_tiny_variant_speed_and_no_degenerate():
    start = time.perf_counter()
    images = render_all(spec())
    assert time.perf_counter() - start < 5.0
    assert len(images) == 12 and not any(get_family(FAMILY).is_degenerate(im) for im in images)


def test_pure_function_and_golden_bytes():
    first = render_all(spec())
    more = render_all(spec(num_classes=4, instances_per_class=5, num_shards=3))
    assert all(np.array_equal(first[c * 4 + i], more[c * 5 + i]) for c in range(3) for i in range(4))
    assert not np.array_equal(first[0], first[1])
    digest = hashlib.sha256(b"".join(im.tobytes() for im in first)).hexdigest()
    assert digest == GOLDEN_SHA256


GOLDEN_SHA256 = "bb72518cb785cfbf94684441036d76cc1d4bf3da46561a07f151b7fad755fe07"


def test_search_ranges():
    ds, fam, params = resolve(spec(num_classes=200, params={"degree_min": 3, "degree_max": 8}))
    cats = fam.search(ds, params)
    assert cats.degree.between(3, 8).all() and set(cats.degree) == set(range(3, 9))
    for row in cats.to_dict("records"):
        r = np.hypot(row["roots_re"], row["roots_im"])
        assert len(r) == row["degree"] and r.max() <= 1.0
        assert sorted(row["root_shades"]) == pytest.approx([(k + 1) / row["degree"] for k in range(row["degree"])])


def test_degenerate_rule():
    rule = get_family(FAMILY).is_degenerate
    flat = np.full((64, 64, 3), 255, dtype=np.uint8)
    assert rule(flat)
    flat[0, :15] = 0  # 15 < 64 * 64 / 256 = 16 differing pixels
    assert rule(flat)
    flat[1, 0] = 0
    assert not rule(flat)
    colour = np.zeros((64, 64, 3), dtype=np.uint8)
    colour[..., 0] = 200
    colour[:8, :, 1] = 10  # 512 pixels of another colour
    assert not rule(colour)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"mode": "rgb"}, "datasets.n.params.mode: expected one of bw, gray, color, got 'rgb'"),
        ({"degree_min": 1}, "datasets.n.params.degree_min: expected an integer in [2, 64], got 1"),
        ({"degree_min": 6, "degree_max": 4}, "datasets.n.params.degree_max: expected an integer in [6, 64], got 4"),
        ({"relax_max": 2.5}, "datasets.n.params.relax_max: expected a number in [0.8, 1.999], got 2.5"),
        ({"zoom_range": 0.5}, "datasets.n.params.zoom_range: expected a number in [1.0, 1000000.0], got 0.5"),
        ({"max_iter": 0}, "datasets.n.params.max_iter: expected an integer in [1, 10000], got 0"),
    ],
)
def test_bad_parameters_name_the_key_and_range(params, message):
    with pytest.raises(ConfigError) as err:
        make_params(get_family(FAMILY), params, "datasets.n")
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
