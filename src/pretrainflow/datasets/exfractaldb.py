"""ExFractalDB (Kataoka et al., CVPR 2022): 3D IFS fractals seen from several viewpoints, rendered without OpenGL.

Reimplemented from the facts of the public code (masora1030/CVPR2022-Pretrained-ViT-PyTorch @7a28054,
``exfractaldb_render/``: ``category_search.py``, ``instance.py``, ``image_render/render.py``, run with
``ExFractalDB_render.sh``); see /work/shared/reference/fdsl.md.

* category (``search``): 2-7 affine maps of R^3, 12 coefficients each ~ U(-1, 1) (3x3 matrix rows a b c / d e f /
  g h i, translation j k l), probability of a map proportional to |det| of its matrix. 10,000 chaos-game points,
  min-max normalised jointly to [-1, 1], centred on their mean; accepted if the variance on every axis > 0.05 (and all
  points finite). Rejected systems are redrawn from the category's own stream.
* instance (``render``): instance i is variant v = (i // 12) mod 145 seen from view k = i mod 12. The 145 variants
  are the published ``weights_ins145.csv`` rows (one coefficient of every map scaled by 0.4 .. 1.6, see
  ``weight_table``); a variant's point cloud is rendered as white size-1 points on black at 224 x 224 by a pinhole
  camera at distance 4, fovy 45 degrees, turned about the y axis by 2 pi k / 12 + 30 degrees + a jitter
  (``_camera.py``). The jitter: the reference adds ``glm.radians(random.uniform(-pi, pi))``, i.e. +-pi DEGREES
  (radians() applied to a value already in radians); we keep that published behaviour as ``view_jitter_deg = pi``.
  ``view_sampling="sphere"`` instead puts each camera at a uniformly random direction, the ExFractalDB of the paper
  (the reference README: the script builds MV-FractalDB's fixed views, ExFractalDB picks viewpoints at random).

Differences from the reference, on purpose: the point cloud of (class, variant) comes from its own seeded stream (the
reference's np.random is unseeded there); the chaos game runs 256 chains in lockstep after a 24-step warm-up from the
origin instead of one chain (same attractor and point density; the reference keeps its ~10 transient points near the
origin, we drop them); images are one gray channel (the reference's RGB is white or black); beyond 145 x 12 = 1,740
images per class the variants repeat with fresh view jitter; a variant whose scaled system diverges (the reference
writes no file for it) is replaced by the category's unscaled system (``_variant_cloud``), and the search rejects
diverging systems (the reference's NaN check) before the variance test.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pretrainflow.datasets._camera import orbit_camera, project_points, sphere_camera
from pretrainflow.datasets._raster import is_almost_empty, splat_points
from pretrainflow.datasets.registry import Family, instance_rng
from pretrainflow.spec_fields import integer, number, one_of

SEARCH_STREAM = 1  # sub-stream of a category's search draws
CLOUD_STREAM = 2  # sub-stream of a (class, variant) point cloud: instance_rng(seed, class, variant, CLOUD_STREAM)
CHAINS = 256  # chaos-game chains run in lockstep (vectorised over chains)
WARMUP = 24  # steps from the origin dropped per chain before points are kept
COEFFICIENTS = 12  # a..l per map
VIEW_SAMPLINGS = ("orbit", "sphere")
DIVERGENCE_BOUND = 1e3  # |coordinate| beyond which an orbit has escaped (attractors here span a few units)


@dataclass(kw_only=True, slots=True)
class ExFractalDBParams:
    """Generator knobs; defaults are the published values (``ExFractalDB_render.sh`` and the scripts' defaults)."""

    maps_min: int = 2  # np.random.randint(2, 8) in category_search.py: 2..7 maps
    maps_max: int = 7
    num_points: int = 10_000  # --point_num 10000 (category_search.py and instance.py)
    variance_threshold: float = 0.05  # variance_threshold=0.05 in ExFractalDB_render.sh (per-axis variance > this)
    # Scale factors of weights_ins145.csv: each of the 12 coefficients times each factor (plus the identity row).
    weight_factors: tuple[float, ...] = (0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6)
    # orbit: the public renderer (MV-FractalDB: `views` cameras around the y axis); sphere: the ExFractalDB paper's
    # random viewpoints ("randomly selects and projects 2D images", exfractaldb_render/README.md), uniform on the sphere
    view_sampling: str = "orbit"
    views: int = 12  # --view_point 12 in render.py (sphere: images per variant)
    view_offset_deg: float = 30.0  # glm.rotate(..., glm.radians(30), y) in render.py
    view_jitter_deg: float = math.pi  # glm.radians(random.uniform(-pi, pi)): +-pi degrees (see module docstring)
    camera_distance: float = 4.0  # camDist = 4 in render.py
    fov_deg: float = 45.0  # glm.perspective(glm.radians(45.0), ...)
    z_near: float = 1.0  # --zNear 1.0
    z_far: float = 100.0  # --zFar 100.0
    max_trials: int = 100_000  # our guard: give up (error) after this many rejected systems for one category

    def __post_init__(self) -> None:
        integer("maps_min", self.maps_min, 1, 64)
        integer("maps_max", self.maps_max, self.maps_min, 64)
        integer("num_points", self.num_points, 1, 1_000_000)  # ~100 bytes of work arrays per point
        number("variance_threshold", self.variance_threshold, 0.0, 1.0)
        if not isinstance(self.weight_factors, list | tuple):
            raise ValueError(f"weight_factors: expected a list of numbers, got {self.weight_factors!r}")
        self.weight_factors = tuple(self.weight_factors)
        for i, factor in enumerate(self.weight_factors):
            number(f"weight_factors[{i}]", factor, 0.0, 100.0)
        one_of("view_sampling", self.view_sampling, VIEW_SAMPLINGS)
        integer("views", self.views, 1, 3600)
        number("view_offset_deg", self.view_offset_deg, -360.0, 360.0)
        number("view_jitter_deg", self.view_jitter_deg, 0.0, 180.0)
        number("camera_distance", self.camera_distance, 1e-3, 1e6)
        number("fov_deg", self.fov_deg, 1e-3, 179.0)
        number("z_near", self.z_near, 1e-6, 1e6)
        number("z_far", self.z_far, self.z_near, 1e9)
        integer("max_trials", self.max_trials, 1, 10**9)


def weight_table(factors: tuple[float, ...]) -> np.ndarray:
    """Per-variant multipliers of the 12 coefficients, (1 + 12 len(factors), 12), in the order of weights_ins145.csv.

    The published file lists coefficient a's factors with the identity row among them (0.4..0.9, 1, 1.1..1.6), then
    b..l's factors without it, so variant 6 is the identity.
    """
    rows = []
    below = [f for f in factors if f < 1.0]
    for coefficient in range(COEFFICIENTS):
        ordered = below + ([1.0] if coefficient == 0 else []) + [f for f in factors if f >= 1.0]
        for factor in ordered:
            row = np.ones(COEFFICIENTS)
            row[coefficient] = factor
            rows.append(row)
    return np.array(rows)


def chaos_game(maps: np.ndarray, probs: np.ndarray, num_points: int, rng: np.random.Generator) -> np.ndarray:
    """(num_points, 3) points of the IFS ``maps`` (n, 12); may contain inf/NaN when the system diverges.

    Map choice as published: map j is the first with u <= cumsum(probs)[j], u ~ U(0, 1).
    """
    steps = WARMUP + -(-num_points // CHAINS)
    choice = np.searchsorted(np.cumsum(probs), rng.random((steps, CHAINS)), side="left")
    coef = maps[np.minimum(choice, len(maps) - 1)]  # (steps, chains, 12)
    x = np.zeros(CHAINS)
    y = np.zeros(CHAINS)
    z = np.zeros(CHAINS)
    out = np.empty((steps - WARMUP, 3, CHAINS))
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(steps):
            c = coef[t].T  # (12, chains)
            x, y, z = (
                c[0] * x + c[1] * y + c[2] * z + c[9],
                c[3] * x + c[4] * y + c[5] * z + c[10],
                c[6] * x + c[7] * y + c[8] * z + c[11],
            )
            if t >= WARMUP:
                out[t - WARMUP] = (x, y, z)
    return out.transpose(0, 2, 1).reshape(-1, 3)[:num_points]


def is_diverging(points: np.ndarray) -> bool:
    """True when the chaos-game orbit escapes: inf/NaN, beyond 1e3, or still growing (extent doubles late on).

    The reference runs one chain for 10,000 steps, so an expanding system overflows to inf/NaN there and is dropped
    (search) or writes no point cloud (instances). Our chains are short (``chaos_game``), so we detect the escape
    directly: an attractor of maps with coefficients <= 1.6 in size stays within a few units, and its extent over the
    second half of the steps is about that of the first half.
    """
    if not np.isfinite(points).all():
        return True
    extent = np.abs(points).max(axis=1)
    half = len(points) // 2
    return bool(extent.max() > DIVERGENCE_BOUND or extent[half:].max() > 2.0 * extent[:half].max())


def normalise(points: np.ndarray) -> np.ndarray:
    """Min-max over all coordinates jointly to [-1, 1], then centre on the mean (as both reference scripts do)."""
    with np.errstate(over="ignore", invalid="ignore"):
        low, high = points.min(), points.max()
        scaled = (points - low) / (high - low) * 2.0 - 1.0
        return scaled - scaled.mean(axis=0)


def _draw_system(params: ExFractalDBParams, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    n = int(rng.integers(params.maps_min, params.maps_max, endpoint=True))
    maps = rng.uniform(-1.0, 1.0, size=(n, COEFFICIENTS))
    a, b, c, d, e, f, g, h, i = maps[:, :9].T
    # |det| by the explicit 3x3 formula (the reference's commented alternative): no LAPACK, same bits everywhere.
    weight = np.abs(a * e * i + b * f * g + c * d * h - c * e * g - a * f * h - b * d * i)
    return maps, weight / weight.sum()


def _category(params: ExFractalDBParams, rng: np.random.Generator, class_id: int) -> dict:
    for trial in range(1, params.max_trials + 1):
        maps, probs = _draw_system(params, rng)
        raw = chaos_game(maps, probs, params.num_points, rng)
        if is_diverging(raw):
            continue
        if (normalise(raw).var(axis=0) > params.variance_threshold).all():
            return {"num_maps": len(maps), "maps": maps.reshape(-1).tolist(), "probs": probs.tolist(), "trials": trial}
    raise RuntimeError(
        f"exfractaldb: class {class_id}: no system passed the variance test in max_trials={params.max_trials} draws; "
        f"lower params.variance_threshold ({params.variance_threshold})"
    )


def search(spec, params: ExFractalDBParams, progress: bool = False) -> pd.DataFrame:
    """One accepted IFS per category (columns num_maps, maps = n x 12 coefficients flattened, probs, trials).

    About 100 systems are drawn per accepted one (0.2-0.3 s per category on one core), hence the progress bar.
    """
    from tqdm import tqdm

    classes = tqdm(range(spec.num_classes), desc="exfractaldb search", unit="category", disable=not progress)
    rows = [{"class_id": c, **_category(params, instance_rng(spec.seed, c, 0, SEARCH_STREAM), c)} for c in classes]
    return pd.DataFrame(rows)


def identity_variant(factors: tuple[float, ...]) -> int:
    """Index of the unscaled variant in ``weight_table(factors)`` (6 with the published factors)."""
    return sum(1 for f in factors if f < 1.0)


@functools.lru_cache(maxsize=8)
def _variant_cloud(seed: int, class_id: int, variant: int, maps: tuple, probs: tuple, factors: tuple, num_points: int):
    """Normalised point cloud of one (class, variant); cached because its views are rendered one after another.

    Degenerate rule: a scaled system that diverges (``is_diverging``) is replaced by the unscaled system of its
    category (accepted by the search, so bounded): that instance shows the category's base fractal from its view.
    """
    coef = np.array(maps).reshape(-1, COEFFICIENTS) * weight_table(factors)[variant]
    rng = instance_rng(seed, class_id, variant, CLOUD_STREAM)
    raw = chaos_game(coef, np.array(probs), num_points, rng)
    base = identity_variant(factors)
    if variant != base and is_diverging(raw):
        return _variant_cloud(seed, class_id, base, maps, probs, factors, num_points)
    points = normalise(raw)
    points.flags.writeable = False
    return points


def render(spec, params: ExFractalDBParams, category: dict, instance: int) -> np.ndarray:
    """Image ``instance`` of ``category``: a (image_size, image_size) uint8 array, white points on black."""
    class_id = int(category["class_id"])
    variants = 1 + COEFFICIENTS * len(params.weight_factors)
    variant, view = (instance // params.views) % variants, instance % params.views
    maps = tuple(float(v) for v in category["maps"])
    probs = tuple(float(v) for v in category["probs"])
    points = _variant_cloud(spec.seed, class_id, variant, maps, probs, params.weight_factors, params.num_points)
    rng = instance_rng(spec.seed, class_id, instance)
    if params.view_sampling == "sphere":
        basis, eye = sphere_camera(rng, params.camera_distance)
    else:
        jitter = rng.uniform(-params.view_jitter_deg, params.view_jitter_deg)
        angle = 2.0 * math.pi * view / params.views + math.radians(params.view_offset_deg + jitter)
        basis, eye = orbit_camera(angle, params.camera_distance)
    cols, rows = project_points(points, basis, eye, fov_deg=params.fov_deg, near=params.z_near, far=params.z_far,
                                size=spec.image_size)  # fmt: skip
    return splat_points(cols, rows, spec.image_size, 255)


def is_degenerate(image: np.ndarray) -> bool:
    """Almost empty: fewer than max(1, H W / 4096) lit pixels (e.g. a variant that collapsed onto a few points)."""
    return is_almost_empty(image, 0)


FAMILY = Family(
    name="exfractaldb",
    params_type=ExFractalDBParams,
    # Tiny: 1,000 points, 2 weight factors (25 variants), 4 views.
    tiny_params={"num_points": 1000, "weight_factors": [0.8, 1.2], "views": 4},
    search=search,
    render=render,
    is_degenerate=is_degenerate,
    channels=1,
)
