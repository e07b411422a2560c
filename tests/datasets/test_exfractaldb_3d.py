"""What only ExFractalDB has: the published weight table, the 3D chaos game, its acceptance rule for systems, the
OpenGL-style camera, views around the fractal and the fallback of diverging variants (the shared contract is in
test_family_contract.py)."""

from __future__ import annotations

import math

import numpy as np
from family_testlib import family_spec, searched_categories

from pretrainflow.datasets import _camera
from pretrainflow.datasets import exfractaldb as ex
from pretrainflow.datasets.spec import resolve


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
    # class ids, 2..7 maps and the reproducibility per class: test_family_contract.py, on this same search
    for row in searched_categories("exfractaldb").to_dict("records"):
        maps = np.array(row["maps"]).reshape(-1, 12)
        assert row["num_maps"] == len(maps) and np.abs(maps).max() <= 1.0
        det = np.abs(np.linalg.det(maps[:, :9].reshape(-1, 3, 3)))
        np.testing.assert_allclose(row["probs"], det / det.sum(), rtol=1e-9)


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
    ds, fam, params = resolve(family_spec("exfractaldb", params={"num_points": 2000, "view_sampling": "sphere"}))
    cat = searched_categories("exfractaldb").iloc[0].to_dict()  # the same 2,000-point search: views do not enter it
    images = [fam.render(ds, params, cat, i) for i in range(4)]
    assert all(not np.array_equal(images[0], im) for im in images[1:])
    assert not any(fam.is_degenerate(im) for im in images)


def test_views_turn_around_the_fractal_and_variants_change_it():
    ds, fam, params = resolve(
        family_spec("exfractaldb", params={"num_points": 2000, "views": 12, "view_jitter_deg": 0.0})
    )
    cat = searched_categories("exfractaldb").iloc[0].to_dict()  # the same 2,000-point search: views do not enter it
    views = [fam.render(ds, params, cat, i) for i in range(12)]
    assert all(not np.array_equal(views[0], v) for v in views[1:])
    # view 6 is the opposite side: the same silhouette mirrored left-right (perspective aside, mostly the same)
    overlap = (views[0] & np.fliplr(views[6])).sum() / max(views[0].sum(), 1)
    assert overlap > 0.3
    assert not np.array_equal(fam.render(ds, params, cat, 12), views[0])  # next variant, same view


def test_diverging_variant_falls_back_to_the_unscaled_system():
    ds, fam, params = resolve(
        family_spec(
            "exfractaldb", params={"num_points": 2000, "weight_factors": [3.0], "views": 1, "view_jitter_deg": 0.0}
        )
    )
    # one map contracting everything but x, which the x3 variant of coefficient a turns into an escape
    maps = [0.9, 0, 0, 0, 0.3, 0, 0, 0, 0.3, 0.1, 0.2, 0.3, 0.2, 0, 0, 0, 0.2, 0, 0, 0, 0.2, -0.5, 0.1, 0.0]
    cat = {"class_id": 0, "num_maps": 2, "maps": maps, "probs": [0.5, 0.5]}
    base = ex.identity_variant(params.weight_factors)
    assert base == 0  # factors < 1: none, so the identity comes first, then a x 3
    np.testing.assert_array_equal(fam.render(ds, params, cat, 1), fam.render(ds, params, cat, 0))
    assert not fam.is_degenerate(fam.render(ds, params, cat, 1))
    # the rule itself, at its threshold: test_family_contract.py (test_degenerate_rule_tips_at_its_threshold)
