"""VisualAtom (Takashima et al., CVPR 2023): orbits shaped by two sinusoids plus Perlin noise.

Reimplemented from the facts of the public renderer (masora1030/CVPR2023-FDSL-on-VisualAtom @de80c69,
``visual_atomic_renderer/render_VisualAtom.py`` run with ``make_VisualAtom.sh``): see /work/shared/reference/fdsl.md.

* category (``search``): vertices q ~ randint[200, 1000], orbits K ~ randint[1, 200], Perlin coefficient
  lam ~ U(0, 4), line width lw ~ U(0, 0.1), radius r ~ randint[10, 60], frequencies n1 ~ randint[0, 20] and
  n2 ~ randint[0, 20] redrawn until n2 != n1 (any n2 when n1 = 0), oval ratios ~ U(1, 2) each;
* instance (``render``): the centre ((512 + randint[-512, 512]) / 2 per axis), a gray ~ randint[0, 255] per orbit and
  the noise; orbit geometry in ``_orbits.py``; 1-px closed polylines on black, later orbits over earlier ones.

Differences from the published script, on purpose: every category and image has its own seeded stream (the script
seeds ``random`` once per thread, so the released data depends on the thread split); images are one gray channel (the
script's RGB PNGs have R = G = B); geometry is defined on the 512 px canvas and scaled to ``image_size``.

Example::

    from pretrainflow.datasets import resolve
    spec, fam, params = resolve({"name": "va", "family": "visualatom", "num_classes": 2, "instances_per_class": 2,
                                 "image_size": 512, "num_shards": 1, "seed": 0, "params": {}})
    image = fam.render(spec, params, fam.search(spec, params).iloc[0].to_dict(), 0)   # (512, 512) uint8
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from pretrainflow.datasets._orbits import Orbits, check_orbit_drawing, render_orbits
from pretrainflow.datasets._raster import is_almost_empty
from pretrainflow.datasets.registry import Family, instance_rng
from pretrainflow.spec_fields import integer, number

BACKGROUND = 0  # black, as published
MAX_VERTICES = 10_000_000  # orbits x vertices of one image (memory guard)
# Sub-stream of a category's parameter draws (images use the plain (seed, class, instance) stream).
SEARCH_STREAM = 1


@dataclass(kw_only=True, slots=True)
class VisualAtomParams:
    """Generator knobs; defaults are the values of ``make_VisualAtom.sh`` (the released VisualAtom-1k/21k)."""

    canvas_size: int = 512  # --image_size 512: geometry frame in px, scaled to the spec's image_size
    vertices_min: int = 200  # --vertex_num_min=200: q ~ randint[vertices_min, vertices_max]
    vertices_max: int = 1000  # --vertex_num_max=1000
    orbits_min: int = 1  # --line_num_min=1: K ~ randint[orbits_min, orbits_max]
    orbits_max: int = 200  # --line_num_max=200
    perlin_min: float = 0.0  # --perlin_min=0: lam ~ U(perlin_min, perlin_min + perlin_range)
    perlin_range: float = 4.0  # hard-coded "+ 4" in render_VisualAtom.py
    line_width_max: float = 0.1  # --line_width=0.1: lw ~ U(0, line_width_max), canvas px per orbit
    radius_min: int = 10  # --radius_min=10: r ~ randint[radius_min, radius_min + radius_range], canvas px
    radius_range: int = 50  # hard-coded "+ 50"
    freq_min: int = 0  # --nami_1_min=0 --nami_2_min=0: n1, n2 ~ randint[freq_min, freq_max]
    freq_max: int = 20  # --nami_1_max=20 --nami_2_max=20
    oval_rate: float = 2.0  # --oval_rate=2: oval ratios ~ U(1, oval_rate)
    start_pos: int = 512  # --start_pos=512: centre = (canvas + randint[-start_pos, start_pos]) / 2 per axis

    def __post_init__(self) -> None:
        integer("canvas_size", self.canvas_size, 8, 65536)
        integer("vertices_min", self.vertices_min, 3, 100_000)
        integer("vertices_max", self.vertices_max, self.vertices_min, 100_000)
        integer("orbits_min", self.orbits_min, 1, 10_000)
        integer("orbits_max", self.orbits_max, self.orbits_min, 10_000)
        # One image holds K x q vertices in a few float32 arrays (~40 bytes each): cap at 10 M (published: 200,000).
        if self.orbits_max * self.vertices_max > MAX_VERTICES:
            raise ValueError(
                f"orbits_max: expected orbits_max * vertices_max <= {MAX_VERTICES:,}, "
                f"got {self.orbits_max} * {self.vertices_max}"
            )
        check_orbit_drawing(self)
        integer("freq_min", self.freq_min, 0, 10_000)
        integer("freq_max", self.freq_max, self.freq_min, 10_000)
        # n2 is redrawn until it differs from n1 (unless n1 = 0): a single non-zero frequency would loop forever.
        if not (self.freq_max > self.freq_min or self.freq_max == 0):
            raise ValueError(
                f"freq_max: expected freq_max > freq_min (n2 must be able to differ from n1) or both 0, "
                f"got {self.freq_max!r}"
            )
        number("oval_rate", self.oval_rate, 1.0, 1000.0)
        integer("start_pos", self.start_pos, 0, 65536)


def _category(params: VisualAtomParams, rng: np.random.Generator) -> dict:
    """One category's parameters, drawn in the published order."""
    p = params
    row = {
        "num_vertices": int(rng.integers(p.vertices_min, p.vertices_max, endpoint=True)),
        "num_orbits": int(rng.integers(p.orbits_min, p.orbits_max, endpoint=True)),
        "perlin": float(rng.uniform(p.perlin_min, p.perlin_min + p.perlin_range)),
        "line_width": float(rng.uniform(0.0, p.line_width_max)),
        "radius": int(rng.integers(p.radius_min, p.radius_min + p.radius_range, endpoint=True)),
        "freq1": int(rng.integers(p.freq_min, p.freq_max, endpoint=True)),
    }
    while True:
        row["freq2"] = int(rng.integers(p.freq_min, p.freq_max, endpoint=True))
        if row["freq2"] != row["freq1"] or row["freq1"] == 0:
            break
    row["oval_x"] = float(rng.uniform(1.0, p.oval_rate))
    row["oval_y"] = float(rng.uniform(1.0, p.oval_rate))
    return row


def search(spec, params: VisualAtomParams) -> pd.DataFrame:
    """One row per category; category c is drawn from its own stream (seed, c), so any subset can be redrawn alone."""
    rows = [
        {"class_id": c, **_category(params, instance_rng(spec.seed, c, 0, SEARCH_STREAM))}
        for c in range(spec.num_classes)
    ]
    return pd.DataFrame(rows)


def render(spec, params: VisualAtomParams, category: dict, instance: int) -> np.ndarray:
    """Image ``instance`` of ``category`` as a (image_size, image_size) uint8 array (pure function)."""
    rng = instance_rng(spec.seed, int(category["class_id"]), instance)
    canvas = params.canvas_size
    # Published order: centre row (h) first, then column (w); canvas px.
    centre_y = (canvas + int(rng.integers(-params.start_pos, params.start_pos, endpoint=True))) / 2
    centre_x = (canvas + int(rng.integers(-params.start_pos, params.start_pos, endpoint=True))) / 2
    perlin = float(category["perlin"])
    orbits = Orbits(
        num_vertices=int(category["num_vertices"]), num_orbits=int(category["num_orbits"]), perlin=perlin,
        noise_amplitude=perlin, line_width=float(category["line_width"]), radius=float(category["radius"]),
        oval_x=float(category["oval_x"]), oval_y=float(category["oval_y"]), centre_x=centre_x, centre_y=centre_y,
        freq1=int(category["freq1"]), freq2=int(category["freq2"]),
    )  # fmt: skip
    return render_orbits(orbits, rng, spec.image_size, canvas, BACKGROUND)


def is_degenerate(image: np.ndarray) -> bool:
    """Almost empty: fewer than max(1, H W / 4096) pixels differ from the black background (see ``_raster``)."""
    return is_almost_empty(image, BACKGROUND)


FAMILY = Family(
    name="visualatom",
    params_type=VisualAtomParams,
    # Tiny: a 128 px canvas (scaled to the test's image size), few vertices and orbits, centre near the middle.
    tiny_params={
        "canvas_size": 128,
        "vertices_min": 20,
        "vertices_max": 60,
        "orbits_min": 3,
        "orbits_max": 12,
        "radius_min": 4,
        "radius_range": 12,
        "start_pos": 48,
    },
    search=search,
    render=render,
    is_degenerate=is_degenerate,
    channels=1,
)
