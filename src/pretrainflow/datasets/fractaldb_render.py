"""FractalDB instance rendering: weight rows, 3x3 patches with random masks, flips.

Published renderer (``fractal_renderer/``, settings of the released FractalDB-1k: 362 x 362, 200,000 points, pad 6,
``patch_gray``, ``weights_0.4.csv``):

- a weight row multiplies one coefficient (a..f) of every map by 0.2 / 0.6 / 1.4 / 1.8 (25 rows incl. the identity);
- the map choices come from ``np.random.seed(100); random(200000)``: the same for every category and weight row;
- every point pastes a 3x3 patch at (x+1, y+1) whose 9-bit mask (1..511) says which pixels are gray 127 and which are
  black; later pastes overwrite earlier ones (mask zeros erase);
- the image is flipped top-bottom and saved 4 ways: as is, top-bottom, left-right, both.

What is truly needed: the point sequence of a (category, weight row) is fixed, so the pixel written LAST (point index and
patch bit) is computed once per (category, weight row) as a ``Coverage``; an instance then only draws its masks and reads
one bit per covered pixel. The published masks are unseeded (renders are not reproducible); ours come from
``SeedSequence([seed, class, weight row, mask draw])``, so every image is a pure function of (spec, class, instance).

Degenerate rule (the published code keeps them): a weight row whose patches cover less than ``min_coverage`` of the
canvas (a diverging or collapsed system, e.g. a coefficient x1.8 that makes the IFS expand) is replaced by the category's
own, unweighted system. Non-finite points are dropped (with the 100 before the first NaN, as published) before scaling.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from pretrainflow.datasets import ifs
from pretrainflow.datasets._jit import njit_or_none

FLIPS = ("none", "top-bottom", "left-right", "both")  # order of the published saves
PATCH_SIDE = 3


@dataclass(frozen=True, slots=True)
class Coverage:
    """Which point wrote each covered pixel last: flat pixel index, point index, patch bit (0..8; 0 in point mode)."""

    pixel: np.ndarray  # int32, flat index y * size + x
    point: np.ndarray  # int32
    bit: np.ndarray  # uint8
    size: int

    @property
    def fraction(self) -> float:
        return len(self.pixel) / (self.size * self.size)


def instance_layout(instance: int, num_weights: int, num_flips: int) -> tuple[int, int, int]:
    """Instance index -> (weight row, flip, mask draw). Weight rows vary fastest so that even a few instances per class
    see every intra-category variation; the flips of one mask draw share their base image (as published)."""
    weight = instance % num_weights
    rest = instance // num_weights
    return weight, rest % num_flips, rest // num_flips


@functools.lru_cache(maxsize=8)
def map_draws(render_seed: int, num_points: int) -> np.ndarray:
    """``RandomState(render_seed).random_sample(num_points)``: the published per-render map-choice stream (read-only)."""
    r = np.random.RandomState(render_seed).random_sample(num_points)[: num_points - 1]
    r.flags.writeable = False
    return r


def weighted_systems(maps: np.ndarray, weights: list[tuple[float, ...]]) -> list[np.ndarray]:
    """The system of each weight row: coefficient k of every map times weights[k] (p unchanged)."""
    return [maps[:, :6] * np.asarray(w, dtype=np.float64) for w in weights]


def trajectories(systems: list[np.ndarray], p: np.ndarray, num_points: int, render_seed: int) -> np.ndarray:
    """Chaos games of several variants of ONE category (same p, hence the same map choices) -> (N, 2, B)."""
    choice = ifs.choose_maps(ifs.sequential_cumsum(p), map_draws(render_seed, num_points))
    coefs = ifs.pack_systems(systems)
    return ifs.iterate(coefs, np.broadcast_to(choice, (len(systems), len(choice))))


def coverage(qx: np.ndarray, qy: np.ndarray, size: int, patch: bool) -> Coverage:
    """Last writer of every pixel for quantised points (published patch placement: top-left corner at (x+1, y+1))."""
    n = len(qx)
    if patch:
        offsets = np.arange(PATCH_SIDE) + 1
        rows = qy.astype(np.int64)[:, None, None] + offsets[None, :, None]
        cols = qx.astype(np.int64)[:, None, None] + offsets[None, None, :]
        inside = ((rows < size) & (cols < size)).reshape(-1)  # always true when pad >= 4
        flat = (rows * size + cols).reshape(-1)[inside]
        # key = point * 9 + bit increases with the paste order, so the maximum per pixel is the last writer.
        key = np.arange(n * PATCH_SIDE * PATCH_SIDE, dtype=np.int64)[inside]
    else:
        flat = qy.astype(np.int64) * size + qx
        key = np.arange(n, dtype=np.int64) * 9
    last = np.full(size * size, -1, dtype=np.int64)
    np.maximum.at(last, flat, key)
    return coverage_of_last_writers(last, size)


def coverage_of_last_writers(last: np.ndarray, size: int) -> Coverage:
    """``last`` (size * size,) = point * 9 + patch bit of the last paste over each pixel, -1 where none -> Coverage."""
    pixel = np.flatnonzero(last >= 0)
    point, bit = np.divmod(last[pixel], 9)
    return Coverage(pixel=pixel.astype(np.int32), point=point.astype(np.int32), bit=bit.astype(np.uint8), size=size)


def coverages(points: np.ndarray, size: int, pad: int, patch: bool) -> list[Coverage]:
    """Quantise (published rescale, NaN rule) and compute the coverage of every trajectory; empty when diverged."""
    empty = Coverage(pixel=np.zeros(0, np.int32), point=np.zeros(0, np.int32), bit=np.zeros(0, np.uint8), size=size)
    return [empty if q is None else coverage(q[0], q[1], size, patch) for q in ifs.quantise_batch(points, size, pad)]


def last_writers(pixels, size, patch, last) -> None:
    """Scalar form of ``coverage`` for numba: ``pixels`` (N, 2) int32 (column, row) from ``ifs.pixel_coordinates`` ->
    ``last`` (size * size,) int64 = point * 9 + patch bit of the last paste over each pixel, -1 where none. Pastes in
    the published order, so a plain overwrite leaves the last writer."""
    last[:] = -1
    for k in range(pixels.shape[0]):
        col, row = pixels[k, 0], pixels[k, 1]
        if not patch:
            last[row * size + col] = k * 9
            continue
        for dy in range(PATCH_SIDE):
            for dx in range(PATCH_SIDE):
                r, c = row + 1 + dy, col + 1 + dx
                if r < size and c < size:  # always true when pad >= 4
                    last[r * size + c] = k * 9 + dy * PATCH_SIDE + dx


def system_coverages(
    systems: list[np.ndarray], p: np.ndarray, num_points: int, render_seed: int, size: int, pad: int, patch: bool
) -> list[Coverage]:
    """Coverage of each variant of ONE category (``trajectories`` + ``coverages``), one system at a time through the
    compiled loops where numba is installed (about 15x less CPU than the batched numpy steps at the published size);
    a system they decline (non-finite points, points off the canvas) and every system without numba take numpy."""
    kernels = [njit_or_none(f) for f in (ifs.chaos_game, ifs.pixel_coordinates, last_writers)]
    if None in kernels:
        return coverages(trajectories(systems, p, num_points, render_seed), size, pad, patch)
    chaos_game, pixel_coordinates, write_last = kernels
    choice = ifs.choose_maps(ifs.sequential_cumsum(p), map_draws(render_seed, num_points))
    points, pixels, bounds = np.empty((num_points, 2)), np.empty((num_points, 2), np.int32), np.empty(4)
    out = []
    for coefs in ifs.pack_systems(systems):
        if chaos_game(coefs, choice, points, bounds) and pixel_coordinates(points, bounds, size, pad, pixels):
            last = np.empty(size * size, dtype=np.int64)
            write_last(pixels, size, patch, last)
            out.append(coverage_of_last_writers(last, size))
        else:  # the numpy path's rules (published NaN rule, its handling of a zero span) for this system
            out.extend(coverages(points.reshape(num_points, 2, 1), size, pad, patch))
    return out


def paint(cov: Coverage, masks: np.ndarray | None, gray: int, flip: int) -> np.ndarray:
    """One image: gray where the last patch written over a pixel has its bit set; then the published flips."""
    canvas = np.zeros(cov.size * cov.size, dtype=np.uint8)
    if masks is None:  # point mode: every covered pixel is gray
        canvas[cov.pixel] = gray
    else:
        on = (masks[cov.point] >> cov.bit) & 1
        canvas[cov.pixel] = on.astype(np.uint8) * np.uint8(gray)
    image = canvas.reshape(cov.size, cov.size)[::-1]  # published: flipped top-bottom before saving
    if flip in (1, 3):
        image = image[::-1]
    if flip in (2, 3):
        image = image[:, ::-1]
    return np.ascontiguousarray(image)


def draw_masks(seed: int, class_id: int, weight: int, draw: int, num_points: int) -> np.ndarray:
    """The 9-bit patch masks (1..511, as published) of one mask draw: a pure function of its arguments."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(class_id), int(weight), int(draw)]))
    return rng.integers(1, 512, size=num_points, dtype=np.uint16)
