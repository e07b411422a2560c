"""What only the Newton-fractal family has: basins of Newton's method, the bw/gray/color modes, roots and shades of its
categories, a degenerate rule that sees colour (the shared contract is in test_family_contract.py)."""

from __future__ import annotations

import numpy as np
import pytest
from family_testlib import family_spec, searched_categories

from pretrainflow.datasets import newton
from pretrainflow.datasets.registry import get_family
from pretrainflow.datasets.spec import resolve


def tiny_params(**overrides) -> dict:
    return {**get_family("newton").tiny_params, **overrides}


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
    ds, fam, params = resolve(family_spec("newton", params=tiny_params(max_iter=40)))
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


def first_image(mode: str) -> np.ndarray:
    """Image (class 0, instance 0) of the test spec in ``mode``: the first of the spec's images."""
    ds, fam, params = resolve(family_spec("newton", params=tiny_params(mode=mode)))
    return fam.render(ds, params, fam.search(ds, params).to_dict("records")[0], 0)


def test_modes_shapes_and_values():
    bw, gray, color = (first_image(m) for m in ("bw", "gray", "color"))
    for image in (bw, gray, color):
        assert image.shape == (40, 40, 3) and image.dtype == np.uint8
    assert set(np.unique(bw)) <= {0, 255} and len(np.unique(bw)) == 2
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 0], gray[..., 2])
    assert len(np.unique(gray)) > 3
    assert not np.array_equal(color[..., 0], color[..., 1])  # really coloured
    # the same basins in every mode: gray is black only where nothing converged, and bw is black there too
    assert np.all(gray[bw > 0] > 0)


def test_search_uses_every_degree_and_places_roots_in_the_unit_disk():
    cats = searched_categories("newton")  # degrees 3..8, 200 classes
    assert set(cats.degree) == set(range(3, 9))
    for row in cats.to_dict("records"):
        r = np.hypot(row["roots_re"], row["roots_im"])
        assert len(r) == row["degree"] and r.max() <= 1.0
        assert sorted(row["root_shades"]) == pytest.approx([(k + 1) / row["degree"] for k in range(row["degree"])])


def test_degenerate_rule_counts_colours_not_gray_levels():
    colour = np.zeros((64, 64, 3), dtype=np.uint8)
    colour[..., 0] = 200
    colour[:8, :, 1] = 10  # 512 pixels of another colour
    assert not get_family("newton").is_degenerate(colour)
