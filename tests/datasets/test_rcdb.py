"""RCDB (radial contours) family."""

from __future__ import annotations

import hashlib
import time

import numpy as np
import pytest

from pretrainflow.datasets.registry import get_family, make_params
from pretrainflow.datasets.spec import resolve
from pretrainflow.errors import ConfigError

FAMILY = "rcdb"


def spec(**overrides) -> dict:
    base = {"name": "rcdb-test", "family": FAMILY, "num_classes": 3, "instances_per_class": 4, "image_size": 48,
            "num_shards": 1, "seed": 5, "params": dict(get_family(FAMILY).tiny_params)}  # fmt: skip
    base.update(overrides)
    return base


def render_all(raw: dict) -> list[np.ndarray]:
    ds, fam, params = resolve(raw)
    categories = fam.search(ds, params).to_dict("records")
    return [fam.render(ds, params, c, i) for c in categories for i in range(ds.instances_per_class)]


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
    more = render_all(spec(num_classes=4, instances_per_class=5, num_shards=2))
    for c in range(3):
        for i in range(4):
            assert np.array_equal(first[c * 4 + i], more[c * 5 + i])
    assert not np.array_equal(first[0], first[1])


def test_golden_bytes():
    # Bit-identical output on every machine: a change of this hash is a change of the dataset.
    digest = hashlib.sha256(b"".join(im.tobytes() for im in render_all(spec()))).hexdigest()
    assert digest == GOLDEN_SHA256


GOLDEN_SHA256 = "4536d0b47e0d208000b3f5ce6a7b9adc7374e2b0c03aaacec3c83e8b62378e78"


def test_search_draws_the_published_ranges():
    ds, fam, params = resolve(spec(num_classes=500, params={}))
    cats = fam.search(ds, params)
    assert list(cats.class_id) == list(range(500))
    assert cats.num_vertices.between(3, 200).all() and cats.num_orbits.between(1, 200).all()
    assert cats.perlin.between(0, 4).all() and cats.line_width.between(0, 0.1).all()
    # V = int(Exp(mean 100)) truncated to (2, 200]: mean of the truncated law is about 69
    assert 60 < cats.num_vertices.mean() < 78
    assert 0.05 < (cats.num_vertices <= 10).mean() < 0.13  # P(3 <= X < 11 | 3 <= X < 201) = 0.089


def test_published_size_renders_gray_contours_on_white():
    ds, fam, params = resolve(spec(image_size=512, num_classes=2, params={}))
    image = fam.render(ds, params, fam.search(ds, params).iloc[0].to_dict(), 3)
    assert image.shape == (512, 512)
    assert np.bincount(image.ravel()).argmax() == 255  # white background dominates
    assert len(np.unique(image)) > 10
    assert not fam.is_degenerate(image)


def test_degenerate_rule_flags_an_almost_white_image():
    rule = get_family(FAMILY).is_degenerate
    image = np.full((512, 512), 255, dtype=np.uint8)
    assert rule(image)
    image[10, 10:73] = 0  # 63 pixels < 512 * 512 / 4096
    assert rule(image)
    image[11, 10] = 40
    assert not rule(image)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"vertices_max": 2}, "datasets.r.params.vertices_max: expected an integer in [3, 100000], got 2"),
        ({"vertices_mean": 0.5}, "datasets.r.params.vertices_mean: expected a number in [1.0, 100000.0], got 0.5"),
        ({"vertices_mean": 100000.0, "vertices_max": 3}, "datasets.r.params.vertices_mean: expected a mean that gives"),
        ({"orbits_min": 0}, "datasets.r.params.orbits_min: expected an integer in [1, 10000], got 0"),
        ({"line_width_max": -0.1}, "datasets.r.params.line_width_max: expected a number in [0.0, 1000.0], got -0.1"),
        ({"start_pos": 1.5}, "datasets.r.params.start_pos: expected an integer in [0, 65536], got 1.5"),
        (
            {"orbits_range": 9999, "vertices_max": 2000},
            "datasets.r.params.orbits_range: expected (orbits_min + orbits_r",
        ),
        ({"canvas_size": 4}, "datasets.r.params.canvas_size: expected an integer in [8, 65536], got 4"),
    ],
)
def test_bad_parameters_name_the_key_and_range(params, message):
    with pytest.raises(ConfigError) as err:
        make_params(get_family(FAMILY), params, "datasets.r")
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
