"""Newton fractals: basins of attraction of Newton's method for random complex polynomials (our design).

The only published use (a 2022 bachelor thesis, Tokyo Tech: ViT-Tiny pretrained on Newton-fractal images, fine-tuned on
CIFAR-10/100) released no code and no parameters; it reports that black-and-white images pretrained better than gray or
colour ones and that varying the generation conditions helped. Everything below is therefore our definition; every
default says why it was chosen, none claims to be published.

* category (``search``): a polynomial p(z) = prod_j (z - r_j) of degree d ~ randint[3, 8] with roots r_j uniform in the
  unit disk; each root gets a shade (the levels 1/d, 2/d, .., 1 in random order) and the category a hue offset ~ U(0, 1).
* instance (``render``): a view of the complex plane around the roots (half-width 1.5 times a zoom log-uniform in
  [1/2, 2], centre shifted by U(-0.25, 0.25) half-widths per axis, rotated by U(-180, 180) degrees) and a relaxation
  a ~ U(0.8, 1.2) of the Newton step z <- z - a p(z) / p'(z); every pixel iterates from its own z (at most 32 steps,
  converged when the step is below 1e-3) and is labelled by the root it reaches (within 1e-2) and the iterations taken.
* pixel value (``mode``): ``bw`` - white where the reached root's shade is above 1/2, black elsewhere (half the basins
  white, half black; non-converged points black); ``gray`` - the root's shade darkened by up to 75 % with the
  iteration count; ``color`` - the root's hue (offset + rank / d), value darkened like gray. ``bw`` is the default
  because the thesis found it best. Images are RGB in every mode (R = G = B for bw and gray) so that one family has
  one channel count.

The step uses p / p' = 1 / sum_j 1 / (z - r_j) on separate real and imaginary float32 arrays (only +, -, *, /, which
numpy never fuses), so the pixels are bit-identical on every IEEE-754 machine. Pixels that converge are dropped from
the working set every 4 steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pretrainflow.datasets.registry import Family, instance_rng
from pretrainflow.spec_fields import integer, number, one_of

MODES = ("bw", "gray", "color")
SEARCH_STREAM = 1
COMPACT_EVERY = 4  # steps between removals of converged pixels from the working set
# Degenerate rule: fewer than 1/256 of the pixels differ from the image's most common value (the view sits inside
# one basin, or sees only non-converged points): a flat image teaches nothing.
MIN_VARIED_FRACTION = 1.0 / 256


@dataclass(kw_only=True, slots=True)
class NewtonParams:
    """Generator knobs. No published values exist; each default gives the reason for our choice."""

    mode: str = "bw"  # bw | gray | color; bw pretrained best in the thesis
    degree_min: int = 3  # d ~ randint[degree_min, degree_max]; d = 2 gives only a straight basin boundary
    degree_max: int = 8  # beyond ~8 roots the basins become too small to resolve at 224 px
    root_radius: float = 1.0  # roots uniform in the disk of this radius (sets the scale of the picture)
    view_half_width: float = 1.5  # window half-width at zoom 1: the whole root disk plus a margin
    zoom_range: float = 2.0  # zoom ~ log-uniform in [1 / zoom_range, zoom_range]: from the full picture to a detail
    offset: float = 0.25  # window centre ~ U(-offset, offset) half-widths per axis
    rotation_deg: float = 180.0  # rotation ~ U(-rotation_deg, rotation_deg): any orientation
    relax_min: float = 0.8  # relaxation a ~ U(relax_min, relax_max); a in (0, 2) converges at simple roots,
    relax_max: float = 1.2  # a != 1 bends the basin boundaries: a variation within a category
    max_iter: int = 32  # Newton steps at most; nearly all pixels converge within ~20 at these settings
    tolerance: float = 1e-3  # converged when |step| < tolerance (float32 arithmetic)
    shade: float = 0.75  # gray / color: fraction of brightness lost by a pixel that needs max_iter steps

    def __post_init__(self) -> None:
        one_of("mode", self.mode, MODES)
        integer("degree_min", self.degree_min, 2, 64)
        integer("degree_max", self.degree_max, self.degree_min, 64)
        number("root_radius", self.root_radius, 1e-6, 1e6)
        number("view_half_width", self.view_half_width, 1e-9, 1e9)
        number("zoom_range", self.zoom_range, 1.0, 1e6)
        number("offset", self.offset, 0.0, 1e6)
        number("rotation_deg", self.rotation_deg, 0.0, 180.0)
        number("relax_min", self.relax_min, 1e-3, 1.999)
        number("relax_max", self.relax_max, self.relax_min, 1.999)
        integer("max_iter", self.max_iter, 1, 10_000)
        number("tolerance", self.tolerance, 1e-7, 1.0)
        number("shade", self.shade, 0.0, 1.0)


def _category(params: NewtonParams, rng: np.random.Generator) -> dict:
    d = int(rng.integers(params.degree_min, params.degree_max, endpoint=True))
    radius = params.root_radius * np.sqrt(rng.random(d))  # sqrt: uniform over the disk's area
    angle = rng.uniform(0.0, 2.0 * np.pi, d)
    shades = (rng.permutation(d) + 1.0) / d
    return {"degree": d, "roots_re": (radius * np.cos(angle)).tolist(), "roots_im": (radius * np.sin(angle)).tolist(),
            "root_shades": shades.tolist(), "hue_offset": float(rng.random())}  # fmt: skip


def search(spec, params: NewtonParams) -> pd.DataFrame:
    """One random polynomial per category (its roots, shades and hue), each from its own stream (seed, class)."""
    rows = [
        {"class_id": c, **_category(params, instance_rng(spec.seed, c, 0, SEARCH_STREAM))}
        for c in range(spec.num_classes)
    ]
    return pd.DataFrame(rows)


def _grid(params: NewtonParams, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Starting points (re, im) of every pixel, float32 (size * size,), and the relaxation of this instance."""
    half = params.view_half_width * math.exp(rng.uniform(-math.log(params.zoom_range), math.log(params.zoom_range)))
    cx, cy = (float(v) * half for v in rng.uniform(-params.offset, params.offset, 2))
    rot = math.radians(rng.uniform(-params.rotation_deg, params.rotation_deg))
    relax = float(rng.uniform(params.relax_min, params.relax_max))
    # Pixel centres in [-1, 1]; row 0 at the top (imaginary axis up).
    u = ((np.arange(size, dtype=np.float64) + 0.5) * (2.0 / size) - 1.0) * half
    gx, gy = np.meshgrid(u, -u)
    cos_r, sin_r = math.cos(rot), math.sin(rot)
    re = (gx * cos_r - gy * sin_r + cx).astype(np.float32).reshape(-1)
    im = (gx * sin_r + gy * cos_r + cy).astype(np.float32).reshape(-1)
    return re, im, relax


def newton_basins(re, im, roots_re, roots_im, relax: float, max_iter: int, tol: float) -> tuple[np.ndarray, np.ndarray]:
    """Root index (-1: not converged) and steps taken, per starting point (float32 arrays re, im)."""
    n = re.size
    steps = np.full(n, max_iter, dtype=np.int32)
    active = np.arange(n)
    zr, zi = re.copy(), im.copy()
    rr = np.asarray(roots_re, dtype=np.float32)
    ri = np.asarray(roots_im, dtype=np.float32)
    a, tol2 = np.float32(relax), np.float32(tol * tol)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for it in range(1, max_iter + 1):
            x, y = zr[active], zi[active]
            sr, si = np.zeros_like(x), np.zeros_like(x)
            for j in range(rr.size):  # S = sum_j 1 / (z - r_j) = sum_j conj(w) / |w|^2
                wr, wi = x - rr[j], y - ri[j]
                inv = np.float32(1.0) / (wr * wr + wi * wi)
                sr += wr * inv
                si -= wi * inv
            # step = a p / p' = a / S = a conj(S) / |S|^2
            scale = a / (sr * sr + si * si)
            dr, di = sr * scale, -si * scale
            nx, ny = x - dr, y - di
            # z exactly on a root (1/0 above) or at a critical point (S = 0): stop that pixel where it is; the final
            # nearest-root test below tells the two apart.
            stuck = ~(np.isfinite(nx) & np.isfinite(ny))
            zr[active], zi[active] = np.where(stuck, x, nx), np.where(stuck, y, ny)
            done = ((dr * dr + di * di) < tol2) | stuck
            steps[active[done]] = np.minimum(steps[active[done]], it)
            if it % COMPACT_EVERY == 0:
                active = active[steps[active] == max_iter]
                if active.size == 0:
                    break
    best = np.full(n, np.inf, dtype=np.float32)
    index = np.full(n, -1, dtype=np.int32)
    with np.errstate(invalid="ignore", over="ignore"):
        for j in range(rr.size):
            dist = (zr - rr[j]) ** 2 + (zi - ri[j]) ** 2
            closer = dist < best
            best[closer], index[closer] = dist[closer], j
        index[~(best < np.float32(100.0) * tol2)] = -1  # not within 10 tolerances of any root
    return index, steps


def _hsv_to_rgb(h: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Fully saturated HSV -> RGB in [0, 1]; h in [0, 1), v in [0, 1]; returns (n, 3)."""
    k = (np.arange(3)[None, :] * np.float32(-1.0 / 3.0) + h[:, None]) % np.float32(1.0)  # R, G, B phases
    ramp = np.clip(np.abs(k * np.float32(6.0) - np.float32(3.0)) - np.float32(1.0), 0.0, 1.0)
    return ramp * v[:, None]


def render(spec, params: NewtonParams, category: dict, instance: int) -> np.ndarray:
    """Image ``instance`` of ``category``: (image_size, image_size, 3) uint8 (R = G = B in bw and gray mode)."""
    size = spec.image_size
    rng = instance_rng(spec.seed, int(category["class_id"]), instance)
    re, im, relax = _grid(params, rng, size)
    index, steps = newton_basins(re, im, category["roots_re"], category["roots_im"], relax, params.max_iter,
                                 params.tolerance)  # fmt: skip
    shades = np.append(np.asarray(category["root_shades"], dtype=np.float32), np.float32(0.0))  # [-1] -> black
    shade = shades[index]
    if params.mode == "bw":
        value = np.where(shade > 0.5, np.uint8(255), np.uint8(0))
        return np.repeat(value.reshape(size, size, 1), 3, axis=2)
    dim = np.float32(1.0) - np.float32(params.shade) * (steps.astype(np.float32) / np.float32(params.max_iter))
    if params.mode == "gray":
        gray = np.rint(shade * dim * np.float32(255.0)).astype(np.uint8)
        return np.repeat(gray.reshape(size, size, 1), 3, axis=2)
    degree = int(category["degree"])
    hue = (np.float32(category["hue_offset"]) + np.maximum(index, 0).astype(np.float32) / np.float32(degree)) % 1.0
    rgb = _hsv_to_rgb(hue.astype(np.float32), np.where(index >= 0, dim, np.float32(0.0)))
    return np.rint(rgb * np.float32(255.0)).astype(np.uint8).reshape(size, size, 3)


def is_degenerate(image: np.ndarray) -> bool:
    """Almost flat: fewer than max(1, H W / 256) pixels differ from the most common pixel value."""
    pixels = image.reshape(image.shape[0] * image.shape[1], -1)
    if (pixels == pixels[:, :1]).all():  # gray (bw, gray mode): count the 256 levels of one channel
        most_common = int(np.bincount(pixels[:, 0], minlength=256).max())
    else:
        rgb = pixels.astype(np.uint32)
        most_common = int(np.unique((rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2], return_counts=True)[1].max())
    return pixels.shape[0] - most_common < max(1.0, MIN_VARIED_FRACTION * pixels.shape[0])


FAMILY = Family(
    name="newton",
    params_type=NewtonParams,
    # Tiny: low degrees and few steps.
    tiny_params={"degree_min": 3, "degree_max": 4, "max_iter": 12},
    search=search,
    render=render,
    is_degenerate=is_degenerate,
    channels=3,
)
