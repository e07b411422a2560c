"""Noisy concentric orbits: the geometry shared by VisualAtom and RCDB (radial contours).

Both published renderers start from q vertices on an oval around a centre (vertex v at angle theta_v = 2 pi v / q,
position centre + radius * (oval_x cos theta_v, oval_y sin theta_v)) and then draw K orbits. Before orbit k every vertex
moves along its own ray by a noisy step, independently in x and y::

    N = amp * pnoise1(u) - lam - wave(theta_v)        u ~ U(0, 10000), a fresh u per vertex, axis and orbit
    x_v -= cos(theta_v) * (N_x - lw);  y_v -= sin(theta_v) * (N_y - lw)

(VisualAtom: amp = lam, wave = 0.5 sin(n1 theta) + 0.5 sin(n2 theta); RCDB: amp = 2 lam, wave = 0). The steps add up,
so orbit k is the start oval plus a cumulative sum over k; we compute all K x q vertices at once::

    x[k, v] = cx + cos(theta_v) * (radius * oval_x - amp * sum_{j<=k} P_x[j, v] + k * (lam + wave_v + lw))

and draw orbit k (k = 1..K; the start oval itself is not drawn) as a closed 1-px polyline with its own gray level.
With numba installed the sum and the affine map run as one compiled loop (``accumulate_orbits``: the same float32
operations in the same order, nothing fused), else as numpy passes; the vertices are identical (tests compare both).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pretrainflow.datasets._jit import njit_or_none
from pretrainflow.datasets._perlin import random_pnoise1
from pretrainflow.datasets._raster import draw_closed_polylines
from pretrainflow.spec_fields import integer, number


@dataclass(kw_only=True, slots=True)
class Orbits:
    """Everything that fixes one image of noisy orbits, in canvas units (the published 512 px frame)."""

    num_vertices: int  # q, vertices per orbit
    num_orbits: int  # K, orbits drawn
    perlin: float  # lam, Perlin noise coefficient
    noise_amplitude: float  # amp: lam (VisualAtom) or 2 lam (RCDB)
    line_width: float  # lw, the extra outward step per orbit (canvas px)
    radius: float  # start radius (canvas px)
    oval_x: float
    oval_y: float
    centre_x: float  # canvas px
    centre_y: float
    freq1: int = 0  # VisualAtom's sinusoid frequencies n1, n2 (0, 0 = no wave)
    freq2: int = 0


def check_orbit_drawing(params: Any) -> None:
    """The drawing knobs the orbit families (RCDB, VisualAtom) share: Perlin noise, line width, start radius."""
    number("perlin_min", params.perlin_min, 0.0, 1000.0)
    number("perlin_range", params.perlin_range, 0.0, 1000.0)
    number("line_width_max", params.line_width_max, 0.0, 1000.0)
    integer("radius_min", params.radius_min, 0, 65536)
    integer("radius_range", params.radius_range, 0, 65536)


def accumulate_orbits(noise, gain, drift, start) -> None:
    """In place: ``noise[k] = C[k] * gain + (k + 1) * drift + start`` with ``C[k] = noise[k] + C[k - 1]`` (the cumulative
    sum over orbits), all float32, each operation rounded as the numpy passes of ``orbit_vertices`` round it (numba
    compiles without fastmath, so no multiply-add is fused). Compiled by numba (``compiled_accumulate_orbits``)."""
    num_orbits, num_vertices = noise.shape
    total = np.empty(num_vertices, dtype=np.float32)
    for k in range(num_orbits):
        step = np.float32(k + 1)
        for v in range(num_vertices):
            total[v] = noise[k, v] if k == 0 else noise[k, v] + total[v]
            value = total[v] * gain[v]
            value = value + step * drift[v]
            noise[k, v] = value + start[v]


def compiled_accumulate_orbits():
    """``accumulate_orbits`` compiled by numba (cached on disk beside this module), or None without numba."""
    return njit_or_none(accumulate_orbits)


def orbit_vertices(
    orbits: Orbits, rng: np.random.Generator, scale: float, *, compiled: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Vertex coordinates ``(xs, ys)``, each (K, q) float32, in output pixels (canvas units times ``scale``).

    Draws 2 K q noise values from ``rng`` (x block first, then y, orbit-major). ``compiled``: None = the numba loop
    when numba is installed, False = the numpy passes (same values).
    """
    accumulate = compiled_accumulate_orbits() if compiled is not False else None
    q, k = orbits.num_vertices, orbits.num_orbits
    theta = np.arange(q, dtype=np.float64) * (2.0 * np.pi / q)
    wave = 0.5 * np.sin(orbits.freq1 * theta) + 0.5 * np.sin(orbits.freq2 * theta)
    steps = np.arange(1, k + 1, dtype=np.float32)[:, None]  # orbit number k = 1..K
    out = []
    for trig, radius, centre in (
        (np.cos(theta), orbits.radius * orbits.oval_x, orbits.centre_x),
        (np.sin(theta), orbits.radius * orbits.oval_y, orbits.centre_y),
    ):
        # x[k, v] = C[k, v] * gain_v + k * drift_v + start_v, with C the cumulative noise over orbits.
        gain = (-orbits.noise_amplitude * scale * trig).astype(np.float32)
        drift = ((orbits.perlin + wave + orbits.line_width) * scale * trig).astype(np.float32)
        start = ((radius * trig + centre) * scale).astype(np.float32)
        noise = random_pnoise1(rng, (k, q))
        if accumulate is not None:
            accumulate(noise, gain, drift, start)
            out.append(noise)
            continue
        for row in range(1, k):  # cumulative sum over orbits; row by row keeps the inner loop long and contiguous
            np.add(noise[row], noise[row - 1], out=noise[row])
        noise *= gain
        noise += steps * drift
        noise += start
        out.append(noise)
    return out[0], out[1]


def render_orbits(orbits: Orbits, rng: np.random.Generator, size: int, canvas: int, background: int) -> np.ndarray:
    """A (size, size) uint8 image of the K orbits; gray levels ~ randint[0, 255] per orbit, drawn first from ``rng``.

    Geometry is defined on a ``canvas`` x ``canvas`` frame (512 in both papers) and scaled to ``size`` px.
    """
    grays = rng.integers(0, 256, size=orbits.num_orbits, dtype=np.int64).astype(np.uint8)
    xs, ys = orbit_vertices(orbits, rng, size / canvas)
    return draw_closed_polylines(xs, ys, size, grays, background)
