"""Vectorised iterated function systems (IFS) in numpy: the numerical core of FractalDB search and rendering.

An IFS category is ``M`` affine maps ``(a, b, c, d, e, f)`` with probabilities ``p``; the chaos game starts at (0, 0) and
applies a randomly chosen map per step::

    x' = a x + b y + e        y' = c x + d y + f

Each trajectory is inherently sequential (point k+1 needs point k), so we vectorise ACROSS trajectories: B independent
systems (search trials, or one category under 25 weight rows) advance one step per numpy call. A step costs 4 ufunc
calls on a (2, B) array, so the Python overhead (about 1-2 us per call) is shared by B trajectories.

Bit-exactness with the published (scalar Python) code: every point is computed with the same IEEE operations in the same
order, ``(x*a + y*b) + e``, so float64 results are identical; no fused multiply-add is used (numpy does not fuse).
"""

from __future__ import annotations

import numpy as np

# Identity map appended after the last real map of every system: the published selection loop picks the first map
# with ``r <= cumsum(p)[j]``; if rounding leaves cumsum(p)[-1] < r no map is chosen and the point repeats. Selecting
# the identity in that case reproduces it exactly.
IDENTITY = (1.0, 0.0, 0.0, 1.0, 0.0, 0.0)
CHUNK_STEPS = 1024  # steps whose coefficients are gathered at once: 1024 * B * 6 * 8 bytes (25 MB at B = 512)


def sequential_cumsum(p: np.ndarray) -> np.ndarray:
    """Running sum of ``p`` accumulated left to right in float64 (exactly like ``total += p_j`` in Python)."""
    out = np.empty(len(p))
    total = 0.0
    for j, value in enumerate(p):
        total += float(value)
        out[j] = total
    return out


def choose_maps(cum: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Index of the first map with ``r <= cum[j]`` for every draw (``len(cum)`` = the appended identity), uint8.

    That index is the number of ``cum[j] < r``; counting with one comparison per map is 10x faster than searchsorted.
    """
    choice = np.zeros(len(r), dtype=np.uint8)
    for bound in cum:
        np.add(choice, r > bound, out=choice, casting="unsafe")
    return choice


def pack_systems(systems: list[np.ndarray], max_maps: int | None = None) -> np.ndarray:
    """Stack systems of shape (M_i, >=6) into (B, max M + 1, 6) with the identity map at index M_i of each."""
    width = (max_maps or max(len(s) for s in systems)) + 1
    coefs = np.zeros((len(systems), width, 6))
    coefs[:, :, 0] = coefs[:, :, 3] = 1.0
    for i, s in enumerate(systems):
        coefs[i, : len(s)] = np.asarray(s, dtype=np.float64)[:, :6]
    return coefs


def iterate(
    coefs: np.ndarray, choice: np.ndarray, bounds: list | None = None, out: np.ndarray | None = None
) -> np.ndarray:
    """Run B chaos games at once. ``coefs`` (B, M, 6), ``choice`` (B, N-1) map indices -> points (N, 2, B) float64.

    Point 0 is the start (0, 0); point k+1 of trajectory b applies map ``choice[b, k]`` to point k (one row per
    trajectory, so rows can be written as they are drawn; a broadcast row is fine). Overflow to inf/NaN is allowed (diverging
    systems) and handled by the rescale rules of the callers. If ``bounds`` is a list, (points.min(0), points.max(0))
    are appended to it, computed block by block while the block is still in cache. ``out``: a reusable buffer of at
    least N * 2 * B float64 (a fresh 400 MB array costs its page faults on every batch).
    """
    width, steps = choice.shape
    maps = coefs.shape[1]
    # Coefficients as (a, c | b, d | e, f): each pair multiplies x, y or 1 and yields (x', y') at once.
    table = np.ascontiguousarray(coefs[:, :, [0, 2, 1, 3, 4, 5]].reshape(width * maps, 6).T)  # (6, B*M)
    base = np.arange(width, dtype=np.intp) * maps
    size = (steps + 1) * 2 * width
    points = (np.empty(size) if out is None or out.size < size else out.reshape(-1)[:size]).reshape(steps + 1, 2, width)
    points[0] = 0.0
    tmp = np.empty((2, width))
    low, high = np.zeros((2, width)), np.zeros((2, width))  # point 0 is the origin
    mul, add = np.multiply, np.add
    with np.errstate(over="ignore", invalid="ignore"):
        for start in range(0, steps, CHUNK_STEPS):
            # (chunk, B): transpose the uint8 rows first (8x less data to move strided), then widen.
            index = np.ascontiguousarray(choice[:, start : start + CHUNK_STEPS].T).astype(np.intp)
            index += base
            # (6, chunk, B) in one gather; per step, sel[0:2, k] is a (2, B) view with contiguous rows.
            sel = table.take(index, axis=1).transpose(1, 0, 2)
            block = points[start : start + len(sel) + 1]
            # One step: (x', y') = x * (a, c) + y * (b, d) + (e, f), the published operation order.
            for x, y, out, m1, m2, t in zip(
                block[:-1, 0], block[:-1, 1], block[1:], sel[:, 0:2], sel[:, 2:4], sel[:, 4:6], strict=True
            ):
                mul(x, m1, out=out)
                mul(y, m2, out=tmp)
                add(out, tmp, out=out)
                add(out, t, out=out)
            if bounds is not None:  # block includes the previous last point, so the blocks cover every point
                np.minimum(low, block.min(axis=0), out=low)
                np.maximum(high, block.max(axis=0), out=high)
    if bounds is not None:
        bounds.extend((low, high))
    return points


def drop_diverged(xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The published NaN rule: delete every NaN point of x and the 100 points before the first one (numpy.delete
    semantics, kept as published). Returns copies."""
    nan = np.flatnonzero(np.isnan(xs))
    if len(nan) == 0:
        return xs, ys
    rows = np.append(np.arange(nan[0] - 100, nan[0]), nan)
    # A NaN within the first 100 points makes the published code index from the end (and raise below -len).
    rows = rows[rows >= -len(xs)]
    return np.delete(xs, rows), np.delete(ys, rows)


def quantise(
    points: np.ndarray,
    size: int,
    pad: int,
    in_place: bool = False,
    dtype=np.uint16,
    bounds: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Published rescale of finite trajectories ``points`` (N, 2, B) -> pixel columns/rows (N, B) uint16.

    Each axis is shifted so its minimum is 0 (only when the minimum is negative; point 0 is the origin, so the minimum is
    always <= 0) and scaled independently to [pad, size - pad]: ``uint16(x / (max - min) * (size - 2 pad) + pad)``.
    The arithmetic is the published one, so the result is bit-identical. ``in_place`` reuses ``points`` as scratch;
    ``dtype`` int32 truncates like uint16 on [0, size); ``bounds`` = (points.min(0), points.max(0)) if already known.
    """
    low_all, high_all = bounds if bounds is not None else (points.min(axis=0), points.max(axis=0))
    out = []
    span_px = float(size - 2 * pad)
    for axis in (0, 1):
        v = points[:, axis] if in_place else points[:, axis].copy()
        low, high = low_all[axis], high_all[axis]
        shift = np.where(low < 0.0, low, 0.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # huge finite values overflow, as published
            # max/min of the shifted values without another pass: rounding of (v - shift) is monotone in v.
            span = (high - shift) - (low - shift)
            v -= shift
            v /= span
            v *= span_px
            v += float(pad)
            out.append(v.astype(dtype))  # NaN only in columns the caller discards
    return out[0], out[1]


def quantise_one(xs: np.ndarray, ys: np.ndarray, size: int, pad: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Published rescale of one trajectory, applying the NaN rule first; None when non-finite values remain
    (such a trajectory collapses onto a line under the published arithmetic; we never cast inf/NaN to integers,
    whose result is platform dependent)."""
    xs, ys = drop_diverged(xs, ys)
    if len(xs) == 0 or not (np.isfinite(xs).all() and np.isfinite(ys).all()):
        return None
    qx, qy = quantise(np.stack([xs, ys])[:, :, None].transpose(1, 0, 2), size, pad)
    return qx[:, 0], qy[:, 0]


def _split_finite(points: np.ndarray, size: int, pad: int, bounds=None):
    """Bounds of every trajectory; diverged ones get the per-trajectory rule and are neutralised in ``points``."""
    # (2, B); NaN propagates through min/max and inf stays, so finite bounds <=> a finite trajectory
    low, high = (np.array(b) for b in bounds) if bounds else (points.min(axis=0), points.max(axis=0))
    finite = np.isfinite(low).all(axis=0) & np.isfinite(high).all(axis=0)
    diverged = {}
    for col in np.flatnonzero(~finite):
        diverged[col] = quantise_one(points[:, 0, col].copy(), points[:, 1, col].copy(), size, pad)
        # Keep the batched pass free of inf/NaN: a constant column with span 1 (its result is not used).
        points[:, :, col] = 0.0
        low[:, col], high[:, col] = 0.0, 1.0
    return (low, high), finite, diverged


def quantise_batch(points: np.ndarray, size: int, pad: int) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """``quantise`` for every trajectory of ``points`` (N, 2, B), taking the per-trajectory path for diverged ones.

    Overwrites ``points`` (it is scratch space for the in-place arithmetic).
    """
    bounds, finite, diverged = _split_finite(points, size, pad)
    qx, qy = quantise(points, size, pad, in_place=True, bounds=bounds)
    return [(qx[:, col], qy[:, col]) if finite[col] else diverged[col] for col in range(points.shape[2])]


FILL_ROWS = 128  # points quantised at once per batch: 128 x 2 x B float64 (1 MB at B = 512) stays in cache


def fill_rates(points: np.ndarray, size: int, pad: int, bounds=None, canvas: np.ndarray | None = None) -> np.ndarray:
    """Fraction of the size x size canvas hit by at least one point, per trajectory (0 for a diverged one).

    Overwrites ``points``. All trajectories share one boolean canvas of B * size * size (134 MB at B = 512, 512 px).
    The published arithmetic runs on blocks of FILL_ROWS points so that its passes stay in cache. ``bounds``: the
    (min, max) pair from ``iterate(..., bounds=[])``, saving two passes. ``canvas``: a reusable bool buffer of at least
    B * size * size (a fresh one costs its page faults on every batch).
    """
    width, area = points.shape[2], size * size
    (low, high), finite, diverged = _split_finite(points, size, pad, bounds)
    shift = np.where(low < 0.0, low, 0.0)  # (2, B), as in quantise
    with np.errstate(over="ignore"):
        span = (high - shift) - (low - shift)
    column = np.arange(width, dtype=np.int32) * area  # flat canvas offset of each trajectory (B * area < 2**31)
    if canvas is None or canvas.size < width * area:
        canvas = np.zeros(width * area, dtype=bool)
    else:
        canvas = canvas[: width * area]
        canvas[:] = False
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for start in range(0, len(points), FILL_ROWS):
            block = points[start : start + FILL_ROWS]  # (rows, 2, B), scaled in place
            block -= shift
            block /= span
            block *= float(size - 2 * pad)
            block += float(pad)
            q = block.astype(np.int32)  # truncates like the published uint16 on [0, size)
            flat = q[:, 1] * size
            flat += q[:, 0]
            flat += column
            canvas[flat.reshape(-1)] = True
    canvas = canvas.reshape(width, area)
    for col, q in diverged.items():
        canvas[col] = False
        if q is not None:
            inside = (q[0] < size) & (q[1] < size)  # always, unless the published NaN rule deleted the origin
            canvas[col, q[1][inside].astype(np.int64) * size + q[0][inside]] = True
    return np.count_nonzero(canvas, axis=1) / area


# Scalar forms of ``iterate`` and ``quantise`` for numba (``_jit.njit_or_none``): one trajectory per call, the same float64
# operations in the same order, so the same points and pixels; no fused multiply-add (numba compiles without fastmath).
# Callers keep the numpy path above for what these decline: non-finite trajectories and points off the canvas.


def chaos_game(coefs, choice, points, bounds) -> bool:
    """One chaos game: ``coefs`` (M + 1, 6) with the identity last (``pack_systems``), ``choice`` (N - 1,) map indices
    -> ``points`` (N, 2) float64, point 0 the origin; ``bounds`` (4,) <- min x, max x, min y, max y. False when a point
    is not finite (the caller applies the published NaN rule to ``points``)."""
    x = y = low_x = high_x = low_y = high_y = 0.0
    finite = True
    points[0, 0] = points[0, 1] = 0.0
    for k in range(choice.shape[0]):
        j = choice[k]
        x, y = (x * coefs[j, 0] + y * coefs[j, 1]) + coefs[j, 4], (x * coefs[j, 2] + y * coefs[j, 3]) + coefs[j, 5]
        points[k + 1, 0], points[k + 1, 1] = x, y
        if not (np.isfinite(x) and np.isfinite(y)):
            finite = False
        low_x, high_x, low_y, high_y = min(low_x, x), max(high_x, x), min(low_y, y), max(high_y, y)
    bounds[0], bounds[1], bounds[2], bounds[3] = low_x, high_x, low_y, high_y
    return finite


def pixel_coordinates(points, bounds, size, pad, pixels) -> bool:
    """The published rescale (``quantise``) of a finite trajectory ``points`` (N, 2) with its ``bounds`` from
    ``chaos_game`` -> ``pixels`` (N, 2) int32 (column, row). False when a point falls off the canvas (a zero span, or
    pad 0): the caller takes the numpy path, whatever it does there."""
    shift_x, shift_y = min(bounds[0], 0.0), min(bounds[2], 0.0)
    span_x, span_y = (bounds[1] - shift_x) - (bounds[0] - shift_x), (bounds[3] - shift_y) - (bounds[2] - shift_y)
    scale, offset = float(size - 2 * pad), float(pad)
    for k in range(points.shape[0]):
        u = ((points[k, 0] - shift_x) / span_x) * scale + offset
        v = ((points[k, 1] - shift_y) / span_y) * scale + offset
        if not (0.0 <= u < size and 0.0 <= v < size):  # NaN from a zero span fails too; never index out of bounds
            return False
        pixels[k, 0], pixels[k, 1] = int(u), int(v)  # truncation, as the published uint16 cast on [0, size)
    return True
