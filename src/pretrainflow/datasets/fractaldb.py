"""FractalDB (Kataoka et al., ACCV 2020): IFS categories found by filling rate, rendered with patch masks and flips.

Defaults are the settings of the released FractalDB-1k (``param_search/exe.sh`` and ``fractal_renderer/make_*.sh`` of
hirokatsukataoka16/FractalDB-Pretrained-ResNet-PyTorch @1b8fb9f). A study selects it with::

    datasets:
      fdb1k: {family: fractaldb, num_classes: 1000, instances_per_class: 1000, image_size: 362, num_shards: 100,
              seed: 0, params: {}}

``params.search: reference`` (default) reproduces the published FractalDB-1k categories exactly (any num_classes takes
the first accepted ones, so 10k extends 1k as published); ``seeded`` searches with RandomState(seed) instead.
See fractaldb_search.py (category search) and fractaldb_render.py (instances, degenerate rule).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from pretrainflow.datasets import fractaldb_render as fr
from pretrainflow.datasets.fractaldb_search import REFERENCE_SEED, search_systems
from pretrainflow.datasets.registry import Family
from pretrainflow.spec_fields import integer, number, one_of

SEARCH_MODES = ("reference", "seeded")
DRAW_MODES = ("patch", "point")
# weights_0.4.csv of the published renderer: the identity and each of a..f times 0.2 / 0.6 / 1.4 / 1.8 (25 rows).
WEIGHTS_0_4: tuple[tuple[float, ...], ...] = tuple(
    tuple(factor if k == coef else 1.0 for k in range(6))
    for coef in range(6)
    for factor in ((0.2, 0.6, 1.0, 1.4, 1.8) if coef == 0 else (0.2, 0.6, 1.4, 1.8))
)
IDENTITY_WEIGHT = (1.0,) * 6
# is_degenerate: fewer than 0.5 % non-zero pixels. A category covers >= 20 % of the search canvas by construction, so
# a rendered instance below 0.5 % comes from a collapsed or diverged system (about half of the covered pixels are lit).
DEGENERATE_FRACTION = 0.005


@dataclass(kw_only=True, slots=True)
class FractalDBParams:
    """FractalDB knobs; defaults = the released FractalDB-1k."""

    search: str = "reference"  # "reference": RandomState(1) stream of ifs_search.py; "seeded": RandomState(spec seed)
    min_maps: int = 2  # ifs_search.py: randint(2, 8) maps per system, i.e. 2..7
    max_maps: int = 8  # exclusive upper bound, as numpy randint
    search_points: int = 100_000  # ifs_search.py --iteration 100000
    search_size: int = 512  # ifs_search.py: 512 x 512 canvas for the filling rate
    search_pad: int = 6  # ifs_search.py: pad 6
    fill_rate: float = 0.2  # exe.sh --rate 0.2: accept when >= 20 % of the canvas is hit
    search_batch: int = (
        512  # trials per vectorised batch (speed/memory only: batch * search_points * 16 bytes = 820 MB)
    )
    num_points: int = 200_000  # make_*.sh --iteration 200000
    pad: int = 6  # renderer pad 6 (at 362 px)
    draw: str = "patch"  # "patch": 3x3 patch with a random 9-bit mask per point (patch_gray); "point": one pixel
    gray: int = 127  # patch_gray: gray level of lit pixels
    weights: tuple = field(default=WEIGHTS_0_4)  # intra-category weight rows (weights_0.4.csv)
    flips: int = 4  # 4 saves per render: none, top-bottom, left-right, both (1 or 2 keep the first ones)
    render_seed: int = 100  # np.random.seed(100) before every render: the map-choice stream
    min_coverage: float = 0.01  # degenerate rule: weight rows covering < 1 % of the canvas use the unweighted system

    def __post_init__(self) -> None:
        one_of("search", self.search, SEARCH_MODES)
        one_of("draw", self.draw, DRAW_MODES)
        integer("min_maps", self.min_maps, 1, 32)
        integer("max_maps", self.max_maps, self.min_maps + 1, 33)
        integer("search_points", self.search_points, 2)
        integer("num_points", self.num_points, 2)
        integer("search_size", self.search_size, 8)
        # pad >= 1: the published rescale maps each trajectory's maximum to exactly search_size - search_pad, so pad 0
        # puts a point one column past the canvas (the published search indexes out of range there; a batched fill
        # count would count it in the next trial's canvas).
        integer("search_pad", self.search_pad, 1, (self.search_size - 2) // 2)
        integer("search_batch", self.search_batch, 1, 65536)
        integer("pad", self.pad, 0)
        integer("gray", self.gray, 1, 255)
        integer("render_seed", self.render_seed, 0, 2**32 - 1)  # np.random.seed takes 32 bits
        integer("flips", self.flips, 1, 4)
        one_of("flips", self.flips, (1, 2, 4))
        number("fill_rate", self.fill_rate, 0.0, 1.0)
        number("min_coverage", self.min_coverage, 0.0, 1.0)
        rows = self.weights
        if not (isinstance(rows, list | tuple) and len(rows) > 0):
            raise ValueError(f"weights: expected a non-empty list of rows, got {rows!r}")
        for i, row in enumerate(rows):
            ok = (
                isinstance(row, list | tuple)
                and len(row) == 6
                and all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v) for v in row)
            )
            if not ok:
                raise ValueError(f"weights[{i}]: expected 6 finite numbers (factors of a..f), got {row!r}")
        self.weights = tuple(tuple(float(v) for v in row) for row in rows)


def check(spec, params: FractalDBParams) -> None:
    """Parameters that depend on the image size (``Family.check``)."""
    if spec.image_size - 2 * params.pad < 4:
        raise ValueError(
            f"params.pad: expected pad <= (image_size - 4) / 2 = {(spec.image_size - 4) // 2}, got {params.pad}"
        )


def search(spec, params: FractalDBParams, progress: bool = False) -> pd.DataFrame:
    """Category search -> one row per class: class_id, num_maps, a..f and p (lists over maps), fill_rate, trial."""
    seed = REFERENCE_SEED if params.search == "reference" else spec.seed
    found = search_systems(
        num_classes=spec.num_classes,
        seed=seed,
        min_maps=params.min_maps,
        max_maps=params.max_maps,
        num_points=params.search_points,
        size=params.search_size,
        pad=params.search_pad,
        fill_rate=params.fill_rate,
        batch=params.search_batch,
        progress=progress,
    )
    rows = []
    for class_id, (maps, rate, trial) in enumerate(found):
        row = {"class_id": class_id, "num_maps": len(maps)}
        row.update({name: maps[:, k].tolist() for k, name in enumerate("abcdefp")})
        row.update(fill_rate=rate, trial=trial)
        rows.append(row)
    return pd.DataFrame(rows)


def maps_of(category: dict) -> np.ndarray:
    """(n, 7) array a..f, p of one category row."""
    return np.stack([np.asarray(category[name], dtype=np.float64) for name in "abcdefp"], axis=1)


@functools.lru_cache(maxsize=2)
def _category_coverages(
    maps_key: bytes,
    num_maps: int,
    weights: tuple,
    size: int,
    pad: int,
    patch: bool,
    num_points: int,
    render_seed: int,
    min_coverage: float,
) -> tuple[fr.Coverage, ...]:
    """Coverages of all given weight rows of one category (one batched chaos game), degenerate rows substituted."""
    maps = np.frombuffer(maps_key, dtype=np.float64).reshape(num_maps, 7)
    rows = list(weights)
    with_identity = IDENTITY_WEIGHT not in rows
    systems = fr.weighted_systems(maps, rows + ([IDENTITY_WEIGHT] if with_identity else []))
    covs = fr.system_coverages(systems, maps[:, 6], num_points, render_seed, size, pad, patch)
    identity = covs[-1] if with_identity else covs[rows.index(IDENTITY_WEIGHT)]
    return tuple(identity if cov.fraction < min_coverage else cov for cov in covs[: len(rows)])


def category_coverages(spec, params: FractalDBParams, category: dict) -> tuple[fr.Coverage, ...]:
    """Coverages of the weight rows this dataset uses (the first min(instances_per_class, 25) rows), cached."""
    maps = maps_of(category)
    used = params.weights[: min(spec.instances_per_class, len(params.weights))]
    return _category_coverages(
        maps.tobytes(),
        len(maps),
        used,
        spec.image_size,
        params.pad,
        params.draw == "patch",
        params.num_points,
        params.render_seed,
        params.min_coverage,
    )


def render(spec, params: FractalDBParams, category: dict, instance: int) -> np.ndarray:
    """One (image_size, image_size) uint8 image of ``category``; see fractaldb_render.py for the variation."""
    weight, flip, draw = fr.instance_layout(instance, len(params.weights), params.flips)
    cov = category_coverages(spec, params, category)[weight]
    masks = None
    if params.draw == "patch":
        masks = fr.draw_masks(spec.seed, category["class_id"], weight, draw, params.num_points)
    return fr.paint(cov, masks, params.gray, flip)


def is_degenerate(image: np.ndarray) -> bool:
    """Fewer than DEGENERATE_FRACTION of the pixels lit."""
    return np.count_nonzero(image) < DEGENERATE_FRACTION * image.size


FAMILY = Family(
    name="fractaldb",
    params_type=FractalDBParams,
    # For 32 px: 1,000 single points (3x3 patches would blur a 32 px fractal into noise), pad 2; the published
    # categories (reference search) in batches of 64 trials (100 MB).
    tiny_params={"num_points": 1000, "pad": 2, "draw": "point", "search_batch": 64},
    search=search,
    render=render,
    is_degenerate=is_degenerate,
    channels=1,
    check=check,
)
