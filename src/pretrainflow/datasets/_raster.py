"""Vectorised rasterisers shared by the line-drawing families: 1-px polylines (no anti-aliasing) and point splats.

The published VisualAtom / RCDB renderers call PIL's ``ImageDraw.line(width=1)`` once per segment, overwriting earlier
pixels, so a pixel shows the gray of the LAST orbit that crossed it. We reproduce that without a Python loop: every
segment of every polyline is expanded into its pixels at once (a DDA with one sample per pixel step along the major
axis, like Bresenham), and each pixel keeps the highest polyline index that touched it (``np.maximum.at``). Because a
polyline's index grows with drawing order, "highest index" is "last drawn", independent of the order numpy visits
duplicate pixels. The DDA runs on float32 values with only +, -, *, / (never fused by numpy), so the result is
bit-identical on every IEEE-754 machine.

With numba installed (a dependency; optional for the code, like the FractalDB search) the same DDA runs as one compiled
loop instead (``paint_polylines``): the same float32 operations in the same order (numba compiles without fastmath, so
nothing is fused), each pixel written in drawing order, so the last polyline drawn wins as in the numpy path, with no
label buffer, sort or scatter. Pixel-identical to the numpy path (tests/datasets/test_orbit_families.py); about 4x
faster at VisualAtom's published sizes, where the numpy path's expansion and scatter were most of an image's time.
"""

from __future__ import annotations

import math

import numpy as np

from pretrainflow.datasets._jit import njit_or_none

# Segments are expanded in buckets of equal padded length (no per-pixel gathers): a segment of n major-axis steps
# goes to the first bucket >= n and repeats its last pixel in the padding, so at most ~1/3 of the samples are padding.
_BUCKETS = (1, 2, 3, 4, 6, 8, 11, 16, 22, 32, 45, 64, 90, 128, 181, 256, 362, 512)


def _bucket_widths(max_steps: int) -> np.ndarray:
    widths = [b for b in _BUCKETS if b < max_steps] + [max(max_steps, 1)]
    return np.array(sorted(set(widths)), dtype=np.float32)


def _label_segments(x0, y0, dx, dy, labels, clipped: np.ndarray, size: int) -> np.ndarray:
    """Label buffer of a 1-px-bordered (size + 2)^2 image: max label of the segments covering each pixel.

    Inputs are float32 with integer values (start pixel, integer deltas). Segment s covers the pixels
    ``x0 + round(t dx / n)``, ``y0 + round(t dy / n)`` for t = 0 .. n-1 (n = max(|dx|, |dy|), at least 1); the end
    point is left to the next segment. Segments flagged in ``clipped`` may leave the image: their off-image pixels are
    clipped onto the 1-px border (cropped by the caller); the others lie inside and skip that work.
    """
    padded = size + 2
    # Labels 1..K: one byte while K < 256 (both published families: K <= 200) keeps the buffer cache-resident.
    buffer = np.zeros(padded * padded, dtype=labels.dtype)
    count = np.maximum(np.abs(dx), np.abs(dy))
    np.maximum(count, np.float32(1.0), out=count)
    widths = _bucket_widths(int(count.max(initial=1.0)))
    # Group segments by (clipped, bucket) once with a stable radix sort of a one-byte key: contiguous slices after.
    bucket_of_count = np.searchsorted(widths, np.arange(int(widths[-1]) + 1, dtype=np.float32)).astype(np.uint8)
    key = bucket_of_count[count.astype(np.int32)]
    key[clipped] += np.uint8(widths.size)
    order = np.argsort(key, kind="stable")
    bounds = np.concatenate(([0], np.cumsum(np.bincount(key, minlength=2 * widths.size))))
    count, labels = count[order], labels[order]
    slope_x, slope_y = dx[order] / count, dy[order] / count  # float32: identical on every IEEE machine
    # +1 for the border, +0.5 so that truncating a non-negative value rounds to nearest.
    base_x, base_y = x0[order] + np.float32(1.5), y0[order] + np.float32(1.5)
    last = count - np.float32(1.0)
    high = np.float32(size + 1)
    for group in range(2 * widths.size):
        lo, hi = bounds[group], bounds[group + 1]
        if lo == hi:
            continue
        width = int(widths[group % widths.size])
        # Layout (width, segments): the long axis innermost keeps numpy's inner loops long.
        t = np.minimum(np.arange(width, dtype=np.float32)[:, None], last[None, lo:hi])
        col = np.multiply(t, slope_x[None, lo:hi])
        col += base_x[None, lo:hi]
        t *= slope_y[None, lo:hi]
        t += base_y[None, lo:hi]
        if group >= widths.size:  # may leave the image: clip onto the border
            np.clip(t, 0, high, out=t)
            np.clip(col, 0, high, out=col)
        flat = t.astype(np.int32)
        flat *= padded
        flat += col.astype(np.int32)
        np.maximum.at(buffer, flat.ravel(), np.tile(labels[lo:hi], width))
    return buffer.reshape(padded, padded)


def paint_polylines(xs, ys, colors, size, background, image) -> bool:
    """``draw_closed_polylines`` as one loop, compiled by numba (see the module docstring); writes ``image`` (size,
    size) uint8 and returns True, or returns False at the first non-finite coordinate (the caller then uses the numpy
    path, whose clipping defines that case). ``xs``, ``ys`` float32 (K, q); the arithmetic is the numpy path's, value
    for value: vertices clamped to +-64 image sizes and floored, segment v from vertex v to v + 1 (mod q), n = max(|dx|,
    |dy|, 1) samples at ``t * (d / n) + (start + 1.5)`` truncated, minus the 1-px border."""
    num_lines, num_vertices = xs.shape
    limit, fsize = np.float32(64 * size), np.float32(size)
    one, offset, high = np.float32(1.0), np.float32(1.5), np.float32(size + 1)
    ix = np.empty(num_vertices, dtype=np.float32)
    iy = np.empty(num_vertices, dtype=np.float32)
    image[:, :] = background
    for k in range(num_lines):
        for v in range(num_vertices):
            x, y = xs[k, v], ys[k, v]
            if not (np.isfinite(x) and np.isfinite(y)):
                return False
            ix[v] = np.float32(math.floor(min(max(x, -limit), limit)))
            iy[v] = np.float32(math.floor(min(max(y, -limit), limit)))
        color = colors[k]
        for v in range(num_vertices):
            w = v + 1 if v + 1 < num_vertices else 0
            x0, y0 = ix[v], iy[v]
            dx, dy = ix[w] - x0, iy[w] - y0
            x1, y1 = x0 + dx, y0 + dy
            if min(x0, x1) >= fsize or max(x0, x1) < 0 or min(y0, y1) >= fsize or max(y0, y1) < 0:
                continue  # wholly beyond one edge: the numpy path drops it too
            count = max(abs(dx), abs(dy), one)
            slope_x, slope_y = dx / count, dy / count
            base_x, base_y = x0 + offset, y0 + offset
            for t in range(int(count)):
                step = np.float32(t)
                col, row = step * slope_x + base_x, step * slope_y + base_y
                if one <= col < high and one <= row < high:  # the numpy path clips the rest onto the border
                    image[int(row) - 1, int(col) - 1] = color
    return True


def compiled_paint_polylines():
    """``paint_polylines`` compiled by numba (cached on disk beside this module), or None when numba is not installed."""
    return njit_or_none(paint_polylines)


def draw_closed_polylines(
    xs: np.ndarray, ys: np.ndarray, size: int, colors: np.ndarray, background: int, *, compiled: bool | None = None
) -> np.ndarray:
    """Draw K closed polylines of q vertices each (float pixel coordinates ``xs``, ``ys`` of shape (K, q)).

    Polyline k is drawn with gray ``colors[k]`` after polylines 0..k-1 (later ones overwrite earlier ones). A vertex at
    (x, y) lands in pixel (floor(x), floor(y)); x is the column, y the row. Segments wholly outside the image are dropped
    before expansion; the rest are clipped per pixel. Returns a ``(size, size)`` uint8 image. ``compiled``: None = the
    numba loop when numba is installed, False = the numpy path (same pixels; tests compare the two).
    """
    paint = compiled_paint_polylines() if compiled is not False else None
    if paint is not None:
        image = np.empty((size, size), dtype=np.uint8)
        grays = np.ascontiguousarray(colors, dtype=np.uint8)
        if paint(np.asarray(xs, dtype=np.float32), np.asarray(ys, dtype=np.float32), grays, size, background, image):
            return image
    num_lines, num_vertices = xs.shape
    # Integer vertex pixels (as float32). Clamping to +-64 image sizes only guards against runaway coordinates; with
    # the published parameters vertices stay within a few image sizes. float32 holds these integers exactly.
    limit = np.float32(64 * size)
    ix = np.floor(np.clip(xs.astype(np.float32), -limit, limit))
    iy = np.floor(np.clip(ys.astype(np.float32), -limit, limit))
    # Segment v goes from vertex v to vertex v+1 (mod q): closed.
    dx, dy = np.empty_like(ix), np.empty_like(iy)
    np.subtract(ix[:, 1:], ix[:, :-1], out=dx[:, :-1])
    np.subtract(ix[:, :1], ix[:, -1:], out=dx[:, -1:])
    np.subtract(iy[:, 1:], iy[:, :-1], out=dy[:, :-1])
    np.subtract(iy[:, :1], iy[:, -1:], out=dy[:, -1:])
    # A vertex is inside when |v - h| <= h per axis, h = (size - 1) / 2 (exact on integer-valued floats); a segment
    # with both ends inside needs no clipping (most of them).
    half = np.float32((size - 1) / 2)
    vertex_in = np.maximum(np.abs(ix - half), np.abs(iy - half)) <= half
    inside = vertex_in & np.roll(vertex_in, -1, axis=1)
    label_type = np.uint8 if num_lines < 256 else np.uint16 if num_lines < 65536 else np.int32
    labels = np.repeat(np.arange(1, num_lines + 1, dtype=label_type), num_vertices)  # 0 stays the background
    ix, iy, dx, dy, inside = (a.reshape(-1) for a in (ix, iy, dx, dy, inside))
    # The others: drop those with both ends beyond the same image edge (Cohen-Sutherland trivial reject).
    other = np.flatnonzero(~inside)
    ox, oy = ix[other], iy[other]
    jx, jy = ox + dx[other], oy + dy[other]
    outside = (
        (np.minimum(ox, jx) >= size)
        | (np.maximum(ox, jx) < 0)
        | (np.minimum(oy, jy) >= size)
        | (np.maximum(oy, jy) < 0)
    )
    keep = np.ones(ix.size, dtype=bool)
    keep[other[outside]] = False
    keep = np.flatnonzero(keep)
    label = _label_segments(ix[keep], iy[keep], dx[keep], dy[keep], labels[keep], ~inside[keep], size)[1:-1, 1:-1]
    lut = np.empty(num_lines + 1, dtype=np.uint8)
    lut[0] = background
    lut[1:] = colors
    return np.take(lut, label)


def splat_points(cols: np.ndarray, rows: np.ndarray, size: int, value: int = 255) -> np.ndarray:
    """A ``(size, size)`` uint8 image, 0 everywhere except ``value`` at the integer pixels (cols, rows) inside it."""
    keep = (cols >= 0) & (cols < size) & (rows >= 0) & (rows < size)
    image = np.zeros(size * size, dtype=np.uint8)
    image[(rows[keep] * size + cols[keep]).astype(np.intp)] = value
    return image.reshape(size, size)


# Degenerate rule of the drawing families: fewer than 1/4096 of the pixels differ from the background (64 px at
# 512 x 512: not even one short visible stroke), and at least one foreground pixel on tiny images.
MIN_FOREGROUND_FRACTION = 1.0 / 4096


def is_almost_empty(image: np.ndarray, background: int, min_fraction: float = MIN_FOREGROUND_FRACTION) -> bool:
    """True when fewer than ``max(1, min_fraction * H * W)`` pixels differ from ``background`` (in any channel)."""
    differs = image != background
    if image.ndim == 3:
        differs = differs.any(axis=2)
    height, width = image.shape[:2]
    return int(np.count_nonzero(differs)) < max(1.0, min_fraction * height * width)
