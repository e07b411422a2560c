"""RCDB, the Radial Contour DataBase (Kataoka et al., CVPR 2022): noisy concentric contours on white.

Reimplemented from the facts of the public renderer (masora1030/CVPR2022-Pretrained-ViT-PyTorch @7a28054,
``rcdb_render/make_rcdb.py`` run with ``RCDB_render.sh``): see /work/shared/reference/fdsl.md.

* category (``search``): vertices V = int(expovariate(1/100)) redrawn until 2 < V <= 200, orbits K ~ randint[1, 200],
  Perlin coefficient lam ~ U(0, 4), line width lw ~ U(0, 0.1);
* instance (``render``): start radius ~ randint[0, 100], oval ratios ~ U(1, 2), centre (512 + randint[-400, 400]) / 2
  per axis, a gray ~ randint[0, 255] per orbit and the noise N = 2 lam pnoise1(u) - lam (no sinusoid); orbit geometry in
  ``_orbits.py``; 1-px closed polylines on white, later orbits over earlier ones.

Differences from the published script, on purpose: per-category / per-image seeded streams (the script seeds once per
thread); one gray channel (its RGB PNGs have R = G = B); gray ~ randint[0, 255] (the script's ``randint(0, 256)``
can give 256, which PIL stores as 255); geometry on the 512 px canvas scaled to ``image_size``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pretrainflow.datasets._orbits import Orbits, check_orbit_drawing, render_orbits
from pretrainflow.datasets._raster import is_almost_empty
from pretrainflow.datasets.registry import Family, instance_rng
from pretrainflow.spec_fields import integer, number

BACKGROUND = 255  # white, as published
MAX_VERTICES = 10_000_000  # orbits x vertices of one image (memory guard)
SEARCH_STREAM = 1  # sub-stream of a category's parameter draws


@dataclass(kw_only=True, slots=True)
class RCDBParams:
    """Generator knobs; defaults are the values of ``RCDB_render.sh`` (the released RCDB-1k/21k)."""

    canvas_size: int = 512  # --image_size 512: geometry frame in px, scaled to the spec's image_size
    vertices_mean: float = 100.0  # V = int(expovariate(1 / vertices_mean)), hard-coded 1/100
    vertices_max: int = 200  # VERTEX_NUM=200: V redrawn until 2 < V <= vertices_max
    orbits_min: int = 1  # --line_num_min=1: K ~ randint[orbits_min, orbits_min + orbits_range]
    orbits_range: int = 199  # hard-coded "+ 199"
    perlin_min: float = 0.0  # PERLIN_MIN=0: lam ~ U(perlin_min, perlin_min + perlin_range)
    perlin_range: float = 4.0  # hard-coded "+ 4"
    line_width_max: float = 0.1  # LINE_WIDTH=0.1: lw ~ U(0, line_width_max), canvas px per orbit
    radius_min: int = 0  # RADIUS_MIN=0: start radius ~ randint[radius_min, radius_min + radius_range] per instance
    radius_range: int = 100  # hard-coded "+ 100"
    oval_rate: float = 2.0  # OVAL_RATE=2: oval ratios ~ U(1, oval_rate) per instance
    start_pos: int = 400  # START_POS=400: centre = (canvas + randint[-start_pos, start_pos]) / 2 per axis

    def __post_init__(self) -> None:
        integer("canvas_size", self.canvas_size, 8, 65536)
        number("vertices_mean", self.vertices_mean, 1.0, 100_000.0)
        integer("vertices_max", self.vertices_max, 3, 100_000)
        # The redraw loop needs a fair chance to land in (2, vertices_max]: P = exp(-3/m) - exp(-(max+1)/m).
        chance = math.exp(-3.0 / self.vertices_mean) - math.exp(-(self.vertices_max + 1.0) / self.vertices_mean)
        if chance < 1e-3:
            raise ValueError(
                f"vertices_mean: expected a mean that gives vertex counts in (2, {self.vertices_max}] with "
                f"probability >= 0.001, got {self.vertices_mean!r} (probability {chance:.2g})"
            )
        integer("orbits_min", self.orbits_min, 1, 10_000)
        integer("orbits_range", self.orbits_range, 0, 10_000)
        # One image holds K x V vertices in a few float32 arrays (~40 bytes each): cap at 10 M (published: 40,000).
        most = (self.orbits_min + self.orbits_range) * self.vertices_max
        if most > MAX_VERTICES:
            raise ValueError(
                f"orbits_range: expected (orbits_min + orbits_range) * vertices_max <= {MAX_VERTICES:,}, got {most:,}"
            )
        check_orbit_drawing(self)
        number("oval_rate", self.oval_rate, 1.0, 1000.0)
        integer("start_pos", self.start_pos, 0, 65536)


def _category(params: RCDBParams, rng: np.random.Generator) -> dict:
    """One category's parameters, drawn in the published order."""
    while True:
        vertices = int(rng.exponential(params.vertices_mean))  # int() truncates, as the script does
        if 2 < vertices <= params.vertices_max:
            break
    return {
        "num_vertices": vertices,
        "num_orbits": int(rng.integers(params.orbits_min, params.orbits_min + params.orbits_range, endpoint=True)),
        "perlin": float(rng.uniform(params.perlin_min, params.perlin_min + params.perlin_range)),
        "line_width": float(rng.uniform(0.0, params.line_width_max)),
    }


def search(spec, params: RCDBParams) -> pd.DataFrame:
    """One row per category; category c is drawn from its own stream (seed, c)."""
    rows = [
        {"class_id": c, **_category(params, instance_rng(spec.seed, c, 0, SEARCH_STREAM))}
        for c in range(spec.num_classes)
    ]
    return pd.DataFrame(rows)


def render(spec, params: RCDBParams, category: dict, instance: int) -> np.ndarray:
    """Image ``instance`` of ``category`` as a (image_size, image_size) uint8 array (pure function)."""
    rng = instance_rng(spec.seed, int(category["class_id"]), instance)
    p = params
    radius = float(rng.integers(p.radius_min, p.radius_min + p.radius_range, endpoint=True))
    oval_x, oval_y = float(rng.uniform(1.0, p.oval_rate)), float(rng.uniform(1.0, p.oval_rate))
    centre_y = (p.canvas_size + int(rng.integers(-p.start_pos, p.start_pos, endpoint=True))) / 2
    centre_x = (p.canvas_size + int(rng.integers(-p.start_pos, p.start_pos, endpoint=True))) / 2
    perlin = float(category["perlin"])
    orbits = Orbits(
        num_vertices=int(category["num_vertices"]), num_orbits=int(category["num_orbits"]), perlin=perlin,
        noise_amplitude=2.0 * perlin, line_width=float(category["line_width"]), radius=radius,
        oval_x=oval_x, oval_y=oval_y, centre_x=centre_x, centre_y=centre_y,
    )  # fmt: skip
    return render_orbits(orbits, rng, spec.image_size, p.canvas_size, BACKGROUND)


def is_degenerate(image: np.ndarray) -> bool:
    """Almost empty: fewer than max(1, H W / 4096) pixels differ from the white background (see ``_raster``)."""
    return is_almost_empty(image, BACKGROUND)


FAMILY = Family(
    name="rcdb",
    params_type=RCDBParams,
    # Tiny: a 128 px canvas (scaled to the test's image size), few vertices and orbits, centre near the middle.
    tiny_params={
        "canvas_size": 128,
        "vertices_mean": 12.0,
        "vertices_max": 24,
        "orbits_min": 3,
        "orbits_range": 9,
        "radius_min": 2,
        "radius_range": 20,
        "start_pos": 40,
    },
    search=search,
    render=render,
    is_degenerate=is_degenerate,
    channels=1,
)
