"""ExFractalDB family: 3D IFS search, weight variants, chaos game, the numpy camera, multi-view rendering."""

from __future__ import annotations

import hashlib
import math
import time

import numpy as np
import pytest

from pretrainflow.datasets import _camera
from pretrainflow.datasets import exfractaldb as ex
from pretrainflow.datasets.registry import get_family, make_params
from pretrainflow.datasets.spec import resolve
from pretrainflow.errors import ConfigError

FAMILY = "exfractaldb"


def spec(**overrides) -> dict:
    base = {"name": "exf-test", "family": FAMILY, "num_classes": 2, "instances_per_class": 6, "image_size": 48,
            "num_shards": 1, "seed": 3, "params": dict(get_family(FAMILY).tiny_params)}  # fmt: skip
    base.update(overrides)
    return base


def render_all(raw: dict) -> list[np.ndarray]:
    ds, fam, params = resolve(raw)
    categories = fam.search(ds, params).to_dict("records")
    return [fam.render(ds, params, c, i) for c in categories for i in range(ds.instances_per_class)]


def test_weight_table_is_the_published_weights_ins145():
    table = ex.weight_table(ex.ExFractalDBParams().weight_factors)
    assert table.shape == (145, 12)
    assert ex.identity_variant(ex.ExFractalDBParams().weight_factors) == 6
    np.testing.assert_array_equal(table[6], np.ones(12))
    np.testing.assert_allclose(table[:13, 0], [0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6])
    np.testing.assert_allclose(table[13], [1, 0.4] + [1] * 10)  # row 14 of the csv: b x 0.4
    np.testing.assert_allclose(table[-1], [1] * 11 + [1.6])  # l x 1.6
    assert np.all((table != 1.0).sum(axis=1) <= 1)


def test_chaos_game_finds_a_known_attractor():
    # x -> x / 2 + corner_i for the 4 corners of a tetrahedron: a Sierpinski tetrahedron inside their convex hull
    corners = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    maps = np.array([[0.5, 0, 0, 0, 0.5, 0, 0, 0, 0.5, *(c / 2)] for c in corners])
    points = ex.chaos_game(maps, np.full(4, 0.25), 5000, np.random.default_rng(0))
    assert points.shape == (5000, 3)
    assert points.min() >= -1e-6 and points.sum(axis=1).max() <= 1 + 1e-6  # inside the hull
    which = np.where(points.max(axis=1) < 0.5, 0, 1 + points.argmax(axis=1))  # sub-tetrahedron of each point
    assert np.bincount(which, minlength=4).min() > 1000  # the 4 sub-tetrahedra equally visited
    assert not ex.is_diverging(points)
    expanding = maps.copy()
    expanding[:, [0, 4, 8]] = 1.3
    assert ex.is_diverging(ex.chaos_game(expanding, np.full(4, 0.25), 5000, np.random.default_rng(0)))


def test_search_accepts_systems_by_the_published_rule():
    ds, fam, params = resolve(spec(num_classes=3, params={"num_points": 2000}))
    cats = fam.search(ds, params)
    assert list(cats.class_id) == [0, 1, 2]
    for row in cats.to_dict("records"):
        maps = np.array(row["maps"]).reshape(-1, 12)
        assert 2 <= row["num_maps"] == len(maps) <= 7 and np.abs(maps).max() <= 1.0
        det = np.abs(np.linalg.det(maps[:, :9].reshape(-1, 3, 3)))
        np.testing.assert_allclose(row["probs"], det / det.sum(), rtol=1e-9)
    # the search is reproducible per class and independent of how many classes are searched
    again = fam.search(resolve(spec(num_classes=2, params={"num_points": 2000}))[0], params)
    assert again.to_dict("records") == cats.iloc[:2].to_dict("records")


def test_camera_matches_the_opengl_conventions():
    size = 224
    basis, eye = _camera.orbit_camera(0.0, 4.0)  # camera on -x looking at +x, up = +y, right = +z
    np.testing.assert_allclose(eye, [-4, 0, 0])
    points = np.array([[0, 0, 0], [0, 0.5, 0], [0, 0, 0.5], [0, 0, 10.0], [-5.0, 0, 0]])
    cols, rows = _camera.project_points(points, basis, eye, fov_deg=45.0, near=1.0, far=100.0, size=size)
    assert len(cols) == 3  # far off to the side and behind the camera are clipped
    ndc = 0.5 / (4 * math.tan(math.radians(22.5)))
    assert (cols[0], rows[0]) == (112, 112)  # the origin lands in the centre pixel
    assert (cols[1], rows[1]) == (112, math.floor((1 + ndc) * 112))  # +y: higher row index (the array is bottom-up)
    assert (cols[2], rows[2]) == (math.floor((1 + ndc) * 112), 112)  # +z: to the right


def test_sphere_cameras_look_at_the_origin_from_everywhere():
    rng = np.random.default_rng(0)
    directions = []
    for _ in range(400):
        basis, eye = _camera.sphere_camera(rng, 4.0)
        np.testing.assert_allclose(basis @ basis.T, np.eye(3), atol=1e-12)  # orthonormal s, u, f
        np.testing.assert_allclose(np.linalg.norm(eye), 4.0)
        cols, rows = _camera.project_points(np.zeros((1, 3)), basis, eye, fov_deg=45.0, near=1.0, far=100.0, size=64)
        assert cols[0] in (31, 32) and rows[0] in (31, 32)  # NDC 0 up to rounding: the centre pixels
        directions.append(eye / 4.0)
    assert np.abs(np.mean(directions, axis=0)).max() < 0.1  # spread over the whole sphere
    ds, fam, params = resolve(spec(params={"num_points": 2000, "view_sampling": "sphere"}))
    cat = fam.search(ds, params).iloc[0].to_dict()
    images = [fam.render(ds, params, cat, i) for i in range(4)]
    assert all(not np.array_equal(images[0], im) for im in images[1:])
    assert not any(fam.is_degenerate(im) for im in images)


def test_tiny_variant_shapes_dtypes_and_speed():
    start = time.perf_counter()
    images = render_all(spec())
    assert time.perf_counter() - start < 10.0
    assert len(images) == 12
    assert all(im.shape == (48, 48) and im.dtype == np.uint8 for im in images)
    assert set(np.unique(np.stack(images))) <= {0, 255}  # white points on black
    assert not any(get_family(FAMILY).is_degenerate(im) for im in images)


def test_views_turn_around_the_fractal_and_variants_change_it():
    ds, fam, params = resolve(spec(params={"num_points": 2000, "views": 12, "view_jitter_deg": 0.0}))
    cat = fam.search(ds, params).iloc[0].to_dict()
    views = [fam.render(ds, params, cat, i) for i in range(12)]
    assert all(not np.array_equal(views[0], v) for v in views[1:])
    # view 6 is the opposite side: the same silhouette mirrored left-right (perspective aside, mostly the same)
    overlap = (views[0] & np.fliplr(views[6])).sum() / max(views[0].sum(), 1)
    assert overlap > 0.3
    assert not np.array_equal(fam.render(ds, params, cat, 12), views[0])  # next variant, same view


def test_pure_function_and_golden_bytes():
    first = render_all(spec())
    more = render_all(spec(num_classes=3, instances_per_class=9, num_shards=4))
    assert all(np.array_equal(first[c * 6 + i], more[c * 9 + i]) for c in range(2) for i in range(6))
    digest = hashlib.sha256(b"".join(im.tobytes() for im in first)).hexdigest()
    assert digest == GOLDEN_SHA256


GOLDEN_SHA256 = "b3f1cefe66985fa1490a2c8dc0670207473540fce34c862e5329d09f0e0834a2"


def test_diverging_variant_falls_back_to_the_unscaled_system():
    ds, fam, params = resolve(
        spec(params={"num_points": 2000, "weight_factors": [3.0], "views": 1, "view_jitter_deg": 0.0})
    )
    # one map contracting everything but x, which the x3 variant of coefficient a turns into an escape
    maps = [0.9, 0, 0, 0, 0.3, 0, 0, 0, 0.3, 0.1, 0.2, 0.3, 0.2, 0, 0, 0, 0.2, 0, 0, 0, 0.2, -0.5, 0.1, 0.0]
    cat = {"class_id": 0, "num_maps": 2, "maps": maps, "probs": [0.5, 0.5]}
    base = ex.identity_variant(params.weight_factors)
    assert base == 0  # factors < 1: none, so the identity comes first, then a x 3
    np.testing.assert_array_equal(fam.render(ds, params, cat, 1), fam.render(ds, params, cat, 0))
    assert not fam.is_degenerate(fam.render(ds, params, cat, 1))
    # the rule itself: fewer than max(1, H W / 4096) lit pixels (a variant collapsed onto a few points)
    few = np.zeros((224, 224), dtype=np.uint8)
    few[100, 100:112] = 255  # 12 < 224 * 224 / 4096 = 12.25
    assert fam.is_degenerate(few)
    few[101, 100] = 255
    assert not fam.is_degenerate(few)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"maps_min": 0}, "datasets.e.params.maps_min: expected an integer in [1, 64], got 0"),
        ({"maps_min": 5, "maps_max": 3}, "datasets.e.params.maps_max: expected an integer in [5, 64], got 3"),
        ({"num_points": 0}, "datasets.e.params.num_points: expected an integer in [1, 1000000], got 0"),
        ({"weight_factors": [0.5, -1.0]}, "datasets.e.params.weight_factors[1]: expected a number in [0.0, 100.0]"),
        ({"fov_deg": 180.0}, "datasets.e.params.fov_deg: expected a number in [0.001, 179.0], got 180.0"),
        ({"z_near": 5.0, "z_far": 2.0}, "datasets.e.params.z_far: expected a number in [5.0, 1000000000.0], got 2.0"),
        ({"views": 0}, "datasets.e.params.views: expected an integer in [1, 3600], got 0"),
        ({"view_sampling": "random"}, "datasets.e.params.view_sampling: expected one of orbit, sphere, got 'random'"),
    ],
)
def test_bad_parameters_name_the_key_and_range(params, message):
    with pytest.raises(ConfigError) as err:
        make_params(get_family(FAMILY), params, "datasets.e")
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
