"""FractalDB category search: random IFS systems accepted by their filling rate.

Published algorithm (Kataoka et al., ACCV 2020; ``param_search/ifs_search.py``, facts in docs of the dataset stage):
one legacy numpy RandomState seeded once (``np.random.seed(1)``); per trial ``n = randint(2, 8)`` maps, per map
``uniform(-1, 1, 6)`` -> a..f and ``p = |ad - bc|`` normalised over the maps, then ``random(100000)`` draws the map
choices; the system is rendered as single points on a 512 x 512 canvas (pad 6) and accepted when the fraction of hit
pixels is >= 0.2. Accepted systems are numbered in order.

``mode="reference"`` replays exactly that stream (RandomState(1)), so the first 1,000 accepted systems ARE the published
FractalDB-1k categories, bit for bit. ``mode="seeded"`` runs the same algorithm on RandomState(spec seed), giving a
different but equally reproducible set of categories.

Speed: trials are independent once their random draws are known, so draws are taken sequentially (cheap, the stream
order must be kept) and the 100,000-step chaos games of a whole batch of trials run together (see ifs.py). A small
search is dominated by what is paid once or per batch, not per trial: faulting in the batch's buffers (see
``fresh_array``) and the trials of the last batch that come after the last category needed (see ``batch_width``).

With numba installed, each trial instead runs through compiled loops (``ifs.chaos_game``, ``ifs.pixel_coordinates``,
``count_hits``: chaos game, bounds, published rescale, pixel count, the same float64 operations in the same order, so
the same categories): about 2 ms per trial, half of it drawing the published random stream, against about 8 ms on the
batched numpy path (measured on the project's 2-core VM, 2026-12-01), with no large buffers and no trial after the
last category needed. Without
numba (a dependency; optional for the code) the numpy path runs; ``compiled=False`` forces it.
"""

from __future__ import annotations

import mmap

import numpy as np
from tqdm import tqdm

from pretrainflow.datasets import ifs
from pretrainflow.datasets._jit import njit_or_none

REFERENCE_SEED = 1  # np.random.seed(1) in the published search
EXPECTED_ACCEPTANCE = 0.025  # measured: 30 accepted in 1,180 trials of the published stream


def draw_trial(
    rs: np.random.RandomState, min_maps: int, max_maps: int, num_points: int
) -> tuple[np.ndarray, np.ndarray]:
    """Consume one trial of the published stream: returns (maps (n, 7) = a..f, p) and the map choice per step."""
    n = rs.randint(min_maps, max_maps)
    maps = np.zeros((n, 7))
    total = 0.0
    for i in range(n):
        a, b, c, d, e, f = rs.uniform(-1.0, 1.0, 6)
        weight = abs(a * d - b * c)  # |det|: maps that keep more area are chosen more often
        total += weight
        maps[i] = a, b, c, d, e, f, weight
    maps[:, 6] = maps[:, 6] / total
    r = rs.random_sample(num_points)
    # r[num_points - 1] is drawn but unused: the published loop makes num_points - 1 steps after the start point.
    return maps, ifs.choose_maps(ifs.sequential_cumsum(maps[:, 6]), r[: num_points - 1])


def fresh_array(count: int, dtype) -> np.ndarray:
    """A zero-filled array of ``count`` items in private anonymous memory with ordinary 4 KiB pages.

    numpy asks the kernel for transparent huge pages on large arrays (madvise). On the project's VMs the first touch of
    such memory is slow and erratic (kernel compaction): 0.4-2.0 CPU s for 800 MB, against a steady 0.41 s with 4 KiB
    pages (measured 2026-12-01, ``mmap`` vs ``np.empty``); streaming over it afterwards costs the same either way.
    A search touches its whole 820 MB point buffer in its first batch, so this is most of its start-up.
    """
    nbytes = max(count * np.dtype(dtype).itemsize, 1)
    memory = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(memory, dtype=dtype, count=count)  # the array keeps the mapping alive (its .base)


def batch_width(remaining: int, rate: float, cap: int) -> int:
    """Trials of the next batch: those expected to find the ``remaining`` categories at acceptance ``rate``, capped.

    A batch costs a fixed part (100,000 numpy steps, whatever its width) plus a part per trial; the trials after the
    last category needed are wasted. Sizing to the expected count (not more) keeps that waste to about half a batch of
    the last width; a shortfall costs one more, smaller batch. At least 32 trials: below that the fixed part dominates.
    """
    return int(min(cap, max(32, np.ceil(remaining / rate))))


def count_hits(pixels, size, canvas) -> int:
    """Distinct canvas pixels among ``pixels`` (N, 2) (column, row) from ``ifs.pixel_coordinates``; ``canvas``
    (size * size,) bool is scratch space. Compiled by numba, with ``ifs.chaos_game`` and ``ifs.pixel_coordinates``."""
    canvas[:] = False
    hits = 0
    for k in range(pixels.shape[0]):
        flat = pixels[k, 1] * size + pixels[k, 0]
        if not canvas[flat]:
            canvas[flat] = True
            hits += 1
    return hits


def compiled_kernels():
    """(chaos game, rescale, pixel count) compiled by numba (cached on disk beside their modules), or None when numba
    is not installed. Together they are ``ifs.iterate`` + ``ifs.fill_rates`` for one trial."""
    kernels = tuple(njit_or_none(f) for f in (ifs.chaos_game, ifs.pixel_coordinates, count_hits))
    return None if None in kernels else kernels


def diverged_rate(points: np.ndarray, size: int, pad: int) -> float:
    """Fill rate of a non-finite trajectory (N, 2) under the published NaN rule, as ``ifs.fill_rates`` counts it
    (``ifs.quantise_one``; 0 when non-finite points remain). About 6 % of trials diverge: ``ifs.fill_rates`` on one
    trajectory would cost 10-15 ms each in per-block overhead, 2.5 s over the first 60 categories."""
    q = ifs.quantise_one(points[:, 0].copy(), points[:, 1].copy(), size, pad)
    if q is None:
        return 0.0
    inside = (q[0] < size) & (q[1] < size)  # always, unless the NaN rule deleted the origin (as in ifs.fill_rates)
    return len(np.unique(q[1][inside].astype(np.int64) * size + q[0][inside])) / (size * size)


def search_systems(
    *,
    num_classes: int,
    seed: int,
    min_maps: int = 2,
    max_maps: int = 8,
    num_points: int = 100_000,
    size: int = 512,
    pad: int = 6,
    fill_rate: float = 0.2,
    batch: int = 512,
    progress: bool = False,
    compiled: bool | None = None,
) -> list[tuple[np.ndarray, float, int]]:
    """The first ``num_classes`` accepted systems of the stream RandomState(seed): list of (maps (n, 7), rate, trial).

    ``compiled``: None = the numba loop when numba is installed, True = require it, False = the numpy path. The numpy
    path runs trials in batches of up to ``batch`` (memory: batch * num_points * 16 bytes, 820 MB at 512 x 100,000,
    plus a boolean canvas of batch * size**2 bytes, 134 MB); each batch is ``batch_width`` wide.
    """
    kernels = None if compiled is False else compiled_kernels()
    if compiled and kernels is None:
        raise RuntimeError("search_systems(compiled=True) needs numba (pip install numba)")
    if kernels is not None:
        return _search_compiled(
            kernels, num_classes, seed, min_maps, max_maps, num_points, size, pad, fill_rate, progress
        )
    rs = np.random.RandomState(seed)
    accepted: list[tuple[np.ndarray, float, int]] = []
    trial = 0
    acceptance = EXPECTED_ACCEPTANCE
    buffer = canvas = None
    bar = tqdm(total=num_classes, desc="fractaldb search", unit="category", disable=not progress)
    while len(accepted) < num_classes:
        width = batch_width(num_classes - len(accepted), acceptance, batch)
        drawn = [draw_trial(rs, min_maps, max_maps, num_points) for _ in range(width)]
        coefs = ifs.pack_systems([maps for maps, _ in drawn], max_maps - 1)
        choice = np.stack([c for _, c in drawn])  # (B, N-1): contiguous rows, no strided writes
        if buffer is None or buffer.size < num_points * 2 * width:
            buffer = fresh_array(num_points * 2 * width, np.float64)  # reused by later batches
            canvas = fresh_array(width * size * size, np.bool_)
        bounds: list = []
        rates = ifs.fill_rates(ifs.iterate(coefs, choice, bounds, out=buffer), size, pad, bounds, canvas)
        for (maps, _), rate in zip(drawn, rates, strict=True):
            trial += 1
            if rate >= fill_rate and len(accepted) < num_classes:
                accepted.append((maps, float(rate), trial))
                bar.update(1)
        acceptance = max(len(accepted), 1) / trial
    bar.close()
    return accepted


def _search_compiled(kernels, num_classes, seed, min_maps, max_maps, num_points, size, pad, fill_rate, progress):
    """``search_systems`` one trial at a time through the compiled kernels; stops at the last category."""
    chaos_game, pixel_coordinates, count_hits = kernels
    rs = np.random.RandomState(seed)
    accepted: list[tuple[np.ndarray, float, int]] = []
    # Scratch space, cache-sized: 1.6 MB of points, 0.8 MB of pixels, a 262 KB canvas at the published sizes.
    points, pixels, bounds = np.empty((num_points, 2)), np.empty((num_points, 2), np.int32), np.empty(4)
    canvas = np.zeros(size * size, dtype=bool)
    trial = 0
    bar = tqdm(total=num_classes, desc="fractaldb search", unit="category", disable=not progress)
    while len(accepted) < num_classes:
        maps, choice = draw_trial(rs, min_maps, max_maps, num_points)
        trial += 1
        if not chaos_game(ifs.pack_systems([maps])[0], choice, points, bounds):
            rate = diverged_rate(points, size, pad)
        elif not pixel_coordinates(points, bounds, size, pad, pixels):  # a degenerate span: the numpy path
            rate = ifs.fill_rates(points.reshape(num_points, 2, 1), size, pad)[0]
        else:
            rate = count_hits(pixels, size, canvas) / (size * size)
        if rate >= fill_rate:
            accepted.append((maps, float(rate), trial))
            bar.update(1)
    bar.close()
    return accepted
