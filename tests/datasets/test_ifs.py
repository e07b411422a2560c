"""The vectorised IFS core equals a plain scalar implementation of the published algorithm, bit for bit."""

from __future__ import annotations

import numpy as np

from pretrainflow.datasets import ifs


def scalar_chaos_game(maps: np.ndarray, r: np.ndarray) -> tuple[list[float], list[float]]:
    """The published loop, written out with Python floats: first map with r <= cumsum(p)[j]; repeat if none."""
    cum, total = [], 0.0
    for p in maps[:, 6]:
        total += float(p)
        cum.append(total)
    x = y = 0.0
    xs, ys = [x], [y]
    for value in r:
        for j, bound in enumerate(cum):
            if value <= bound:
                a, b, c, d, e, f = (float(v) for v in maps[j, :6])
                x, y = x * a + y * b + e, x * c + y * d + f
                break
        xs.append(x)
        ys.append(y)
    return xs, ys


def random_system(rng: np.random.Generator, n: int) -> np.ndarray:
    maps = np.zeros((n, 7))
    maps[:, :6] = rng.uniform(-1, 1, (n, 6))
    det = np.abs(maps[:, 0] * maps[:, 3] - maps[:, 1] * maps[:, 2])
    maps[:, 6] = det / det.sum()
    return maps


def test_iterate_matches_scalar_loop_bit_for_bit():
    rng = np.random.default_rng(0)
    systems = [random_system(rng, n) for n in (2, 3, 5, 7)]
    r = rng.random(3000)
    choice = np.stack([ifs.choose_maps(ifs.sequential_cumsum(s[:, 6]), r) for s in systems])
    points = ifs.iterate(ifs.pack_systems(systems), choice)
    for col, system in enumerate(systems):
        xs, ys = scalar_chaos_game(system, r)
        finite = np.isfinite(xs)
        assert np.array_equal(points[:, 0, col][finite], np.asarray(xs)[finite])
        assert np.array_equal(points[:, 1, col][finite], np.asarray(ys)[finite])


def test_choose_maps_is_first_bound_not_below_draw():
    cum = ifs.sequential_cumsum(np.array([0.25, 0.5, 0.25]))
    r = np.array([0.0, 0.25, 0.2500001, 0.75, 0.76, 1.0, 1.0 + 1e-12])
    # r == bound picks that map; above the last bound (rounding) picks the appended identity (index 3)
    assert ifs.choose_maps(cum, r).tolist() == [0, 0, 1, 1, 2, 2, 3]
    assert np.array_equal(ifs.choose_maps(cum, r), np.searchsorted(cum, r, side="left"))


def test_quantise_spans_pad_to_size_minus_pad():
    points = np.zeros((5, 2, 1))
    points[:, 0, 0] = [0.0, -2.0, 1.0, 3.0, 0.5]
    points[:, 1, 0] = [0.0, 1.0, 2.0, 4.0, 0.1]
    qx, qy = ifs.quantise(points, size=64, pad=6)
    assert qx[:, 0].tolist() == [26, 6, 37, 58, 32]  # (x + 2) / 5 * 52 + 6, truncated
    assert qx.min() == 6 and qx.max() == 58 and qy.min() == 6 and qy.max() == 58


def test_nan_rule_drops_first_nan_and_the_100_before():
    xs = np.arange(300, dtype=float)
    ys = np.arange(300, dtype=float)
    xs[250:] = np.nan
    kx, ky = ifs.drop_diverged(xs, ys)
    assert len(kx) == 150 and kx[-1] == 149.0 and len(ky) == 150
    assert ifs.quantise_one(np.array([0.0, np.inf]), np.array([0.0, 1.0]), 64, 6) is None


def test_fill_rate_counts_distinct_pixels():
    points = np.zeros((4, 2, 2))
    points[:, 0, 0] = [0, 1, 1, 0]
    points[:, 1, 0] = [0, 1, 1, 1]  # 3 distinct corners
    points[:, :, 1] = np.nan
    rates = ifs.fill_rates(points, size=16, pad=2)
    assert rates[0] == 3 / 256 and rates[1] == 0.0
