"""FractalDB rendering in torch, on a GPU (or any torch device): the same images as the numpy renderer.

    renderer = FractalDBTorchRenderer(spec, categories_df, device="cuda")
    images = renderer.render(range(0, 256))          # uint8 tensor [256, 1, H, W] on the device, labels = i // n

What runs on the device: the chaos games of every (category, weight row) at once, the published rescale, and the
last-writer maps (``scatter_reduce`` amax: order independent, hence deterministic); then each image is a gather of
mask bits. Pixel identity with fractaldb.render: float64 multiplies and adds are separate kernels (no fused
multiply-add), divisions and float->int truncation are IEEE-exact on CPU and CUDA, and the patch masks come from the same
numpy Generator streams (``fractaldb_render.draw_masks``). Tested on the CPU device.

Cost on a GPU: the chaos game is sequential in its steps, so each step is a few kernel launches over a whole batch of
trajectories (``classes_per_batch`` categories x 26 weight rows share each launch). A step is 3 launches (x*(a,c) and
y*(b,d) in one broadcast multiply, their sum, + (e,f)): a fused multiply-add would change the rounding. The trajectory
is computed once and kept on the device for the three passes (NaN rule, bounds, last writers) when it fits
``keep_bytes`` (N x 2 x B x 8 bytes: 5.3 GB at 200k points x 64 categories x 26 rows), else recomputed per pass. So one
batch of categories costs about N x 3 launches (200k points: 600k launches, a few seconds at ~5 us each; 2.4 M before:
4 launches x 3 passes), whatever its width; rendering then costs per image a handful of launches plus the host's mask
draw (numpy, about 0.5 ms per image per core), which bounds the image rate of one host process. Fusing the step loop
further (a CUDA graph per chunk, or a kernel that runs whole trajectories) is the next step if the launches dominate.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from pretrainflow.datasets import fractaldb as fdb
from pretrainflow.datasets import fractaldb_render as fr
from pretrainflow.datasets import ifs
from pretrainflow.datasets.spec import resolve

STEP_CHUNK = 4096  # steps stored per chunk: STEP_CHUNK x 2 x B float64 (B = 2,500 trajectories -> 164 MB)


def _chaos_chunks(coefs: torch.Tensor, choice: torch.Tensor):
    """Yield (first step index, points (chunk, 2, B)) of all trajectories; the same arithmetic as ifs.iterate."""
    steps, width = choice.shape
    maps = coefs.shape[1]
    table = coefs[:, :, [0, 2, 1, 3, 4, 5]].reshape(width * maps, 6).T.contiguous()  # (6, B*M): a, c, b, d, e, f
    base = torch.arange(width, device=coefs.device) * maps
    state = torch.zeros(2, width, dtype=torch.float64, device=coefs.device)
    yield 0, state[None].clone()  # point 0: the origin
    prod = torch.empty(2, 2, width, dtype=torch.float64, device=coefs.device)
    for start in range(0, steps, STEP_CHUNK):
        index = choice[start : start + STEP_CHUNK].long() + base
        sel = table[:, index]  # (6, chunk, B)
        linear = sel[0:4].view(2, 2, len(index), width)  # [[a, c], [b, d]] per step
        block = torch.empty(len(index), 2, width, dtype=torch.float64, device=coefs.device)
        for k in range(len(index)):
            out = block[k]
            torch.mul(state[:, None, :], linear[:, :, k], out=prod)  # [x * (a, c), y * (b, d)]: one launch
            torch.add(prod[0], prod[1], out=out)  # (x a + y b, x c + y d): two terms, so the order is moot
            out.add_(sel[4:6, k])  # + (e, f)
            state = out
        yield start + 1, block


def _trajectory_passes(coefs: torch.Tensor, choice: torch.Tensor, keep_bytes: int):
    """A callable returning the chunks of ``_chaos_chunks`` anew for each pass: computed once and replayed from
    device memory when the whole trajectory fits ``keep_bytes``, else recomputed (the same values either way)."""
    steps, width = choice.shape
    if (steps + 1) * 2 * width * 8 > keep_bytes:
        return lambda: _chaos_chunks(coefs, choice)
    chunks = list(_chaos_chunks(coefs, choice))  # each block is a fresh tensor: safe to keep
    return lambda: iter(chunks)


def default_keep_bytes(device) -> int:
    """Device memory a trajectory may keep between passes: half of what is free on a GPU, 2 GiB elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return free // 2
    return 2 << 30


def coverages_torch(
    systems: list[np.ndarray],
    p: np.ndarray | list[np.ndarray],
    num_points: int,
    render_seed: int,
    size: int,
    pad: int,
    patch: bool,
    device,
    keep_bytes: int | None = None,
) -> list[fr.Coverage]:
    """Coverage of each system computed on ``device``; ``p`` = the map probabilities of each system (or one array
    shared by all, e.g. the weight rows of one category). Systems of many categories run in one batch. ``keep_bytes``:
    keep the trajectory between passes when it fits (default ``default_keep_bytes(device)``; 0 = always recompute)."""
    draws = fr.map_draws(render_seed, num_points)
    probs = [p] * len(systems) if isinstance(p, np.ndarray) else list(p)
    choices: dict[bytes, np.ndarray] = {}  # one choice row per distinct p (per category)
    rows = [choices.setdefault(q.tobytes(), ifs.choose_maps(ifs.sequential_cumsum(q), draws)) for q in probs]
    coefs = torch.from_numpy(ifs.pack_systems(systems)).to(device)
    width = coefs.shape[0]
    choice = torch.from_numpy(np.stack(rows)).to(device).T  # (N-1, B)
    passes = _trajectory_passes(coefs, choice, default_keep_bytes(device) if keep_bytes is None else keep_bytes)
    # Pass 1: the published NaN rule keeps points [0, first NaN of x - 100); any other non-finite point empties it.
    first_nan = torch.full((width,), num_points, dtype=torch.long, device=device)
    first_bad = first_nan.clone()
    for start, block in passes():
        idx = torch.arange(start, start + len(block), device=device)[:, None]
        first_nan = torch.minimum(first_nan, torch.where(block[:, 0].isnan(), idx, num_points).amin(0))
        first_bad = torch.minimum(first_bad, torch.where(~block.isfinite().all(1), idx, num_points).amin(0))
    limit = torch.where(first_nan < num_points, first_nan - 100, torch.full_like(first_nan, num_points))
    empty = (limit <= 0) | (first_bad < limit)
    limit = torch.where(empty, torch.ones_like(limit), limit)  # keep the origin only; the result is discarded
    # Pass 2: bounds of the kept points.
    inf = torch.tensor(float("inf"), dtype=torch.float64, device=device)
    low, high = (
        torch.full((2, width), inf, dtype=torch.float64, device=device),
        torch.full((2, width), -inf, dtype=torch.float64, device=device),
    )
    for start, block in passes():
        keep = (torch.arange(start, start + len(block), device=device)[:, None] < limit)[:, None, :]
        low = torch.minimum(low, torch.where(keep, block, inf).amin(0))
        high = torch.maximum(high, torch.where(keep, block, -inf).amax(0))
    shift = torch.where(low < 0, low, torch.zeros_like(low))
    span = (high - shift) - (low - shift)
    # Pass 3: quantise (published arithmetic) and record the last writer of every pixel.
    last = torch.full((width, size * size), -1, dtype=torch.long, device=device)
    offsets = torch.arange(fr.PATCH_SIDE, device=device) + 1
    for start, block in passes():
        q = ((block - shift) / span * float(size - 2 * pad) + float(pad)).nan_to_num(0.0).to(torch.int64)  # (c, 2, B)
        point = torch.arange(start, start + len(block), device=device)[:, None].expand(-1, width)
        keep = point < limit
        if patch:
            rows = q[:, 1, :, None, None] + offsets[:, None]
            cols = q[:, 0, :, None, None] + offsets[None, :]
            flat = rows * size + cols  # (c, B, 3, 3)
            key = point[:, :, None, None] * 9 + (torch.arange(9, device=device).view(3, 3))
            ok = keep[:, :, None, None] & (rows < size) & (cols < size)
        else:
            flat, key, ok = q[:, 1] * size + q[:, 0], point * 9, keep
        flat = torch.where(ok, flat, 0).reshape(len(block), width, -1).permute(1, 0, 2).reshape(width, -1)
        key = torch.where(ok, key, -1).reshape(len(block), width, -1).permute(1, 0, 2).reshape(width, -1)
        last.scatter_reduce_(1, flat, key, reduce="amax", include_self=True)
    out = []
    for col in range(width):
        pixel = torch.nonzero(last[col] >= 0).flatten() if not empty[col] else torch.zeros(0, dtype=torch.long)
        values = last[col, pixel] if not empty[col] else pixel
        out.append(
            fr.Coverage(
                pixel=pixel.cpu().numpy().astype(np.int32),
                point=(values // 9).cpu().numpy().astype(np.int32),
                bit=(values % 9).cpu().numpy().astype(np.uint8),
                size=size,
            )
        )
    return out


class FractalDBTorchRenderer:
    """Renders images of a FractalDB spec on a torch device; pixel-identical to ``fractaldb.render``."""

    def __init__(
        self,
        spec,
        categories,
        device: str | torch.device = "cuda",
        classes_per_batch: int = 64,
        keep_bytes: int | None = None,
    ):
        self.spec, self.family, self.params = resolve(spec)
        if self.family.name != "fractaldb":
            raise ValueError(f"FractalDBTorchRenderer renders fractaldb, not {self.family.name}")
        self.categories = {int(r["class_id"]): r for r in categories.to_dict("records")}
        self.device = torch.device(device)
        # 64 classes x 26 weight rows = 1,664 chaos games per pass; its last-writer maps take 1,664 x H x W x 8 bytes
        # (1.7 GB at 362 px) on the device.
        self.classes_per_batch = classes_per_batch
        self.keep_bytes = keep_bytes  # trajectory kept between passes (coverages_torch); None = default_keep_bytes
        self._cache: dict[int, tuple[fr.Coverage, ...]] = {}

    def prepare(self, class_ids: Sequence[int]) -> None:
        """Compute the coverages of these categories in one batched pass (replaces the cache)."""
        p, spec = self.params, self.spec
        rows = list(p.weights[: min(spec.instances_per_class, len(p.weights))])
        extra = [] if fdb.IDENTITY_WEIGHT in rows else [fdb.IDENTITY_WEIGHT]
        systems, probs = [], []
        for class_id in class_ids:
            maps = fdb.maps_of(self.categories[class_id])
            systems += fr.weighted_systems(maps, rows + extra)
            probs += [maps[:, 6]] * (len(rows) + len(extra))
        covs = coverages_torch(
            systems,
            probs,
            p.num_points,
            p.render_seed,
            spec.image_size,
            p.pad,
            p.draw == "patch",
            self.device,
            keep_bytes=self.keep_bytes,
        )
        self._cache = {}
        per_class = len(rows) + len(extra)
        for i, class_id in enumerate(class_ids):
            mine = covs[i * per_class : (i + 1) * per_class]
            identity = mine[-1] if extra else mine[rows.index(fdb.IDENTITY_WEIGHT)]
            self._cache[class_id] = tuple(identity if c.fraction < p.min_coverage else c for c in mine[: len(rows)])

    def category_coverages(self, class_id: int) -> tuple[fr.Coverage, ...]:
        """Coverages of the weight rows this dataset uses, degenerate rows replaced (as fractaldb.category_coverages)."""
        if class_id not in self._cache:
            self.prepare([class_id])
        return self._cache[class_id]

    def render(self, indices: Sequence[int]) -> torch.Tensor:
        """uint8 [n, 1, H, W] on the device for global image indices (class-major order, as the shards).

        The categories involved are prepared ``classes_per_batch`` at a time, in one chaos-game pass each.
        """
        size = self.spec.image_size
        images = torch.zeros(len(indices), size * size, dtype=torch.uint8, device=self.device)
        by_class: dict[int, list[int]] = {}
        for row, index in enumerate(indices):
            by_class.setdefault(int(index) // self.spec.instances_per_class, []).append(row)
        classes = sorted(by_class)
        for start in range(0, len(classes), self.classes_per_batch):
            group = classes[start : start + self.classes_per_batch]
            if any(c not in self._cache for c in group):
                self.prepare(group)
            for class_id in group:
                for row in by_class[class_id]:
                    images[row] = self._paint(class_id, int(indices[row]) % self.spec.instances_per_class)
        return images.view(len(indices), 1, size, size)

    def _paint(self, class_id: int, instance: int) -> torch.Tensor:
        """One flat image on the device: mask bits at the last writer of each pixel, then the flips."""
        size, p = self.spec.image_size, self.params
        weight, flip, draw = fr.instance_layout(instance, len(p.weights), p.flips)
        cov = self.category_coverages(class_id)[weight]
        image = torch.zeros(size * size, dtype=torch.uint8, device=self.device)
        pixel = torch.from_numpy(cov.pixel.astype(np.int64)).to(self.device)
        if p.draw == "patch":
            masks = fr.draw_masks(self.spec.seed, class_id, weight, draw, p.num_points).astype(np.int32)
            masks = torch.from_numpy(masks).to(self.device)
            bits = torch.from_numpy(cov.bit.astype(np.int32)).to(self.device)
            on = (masks[torch.from_numpy(cov.point.astype(np.int64)).to(self.device)] >> bits) & 1
            image[pixel] = on.to(torch.uint8) * p.gray
        else:
            image[pixel] = p.gray
        image = image.view(size, size).flip(0)  # the published top-bottom flip, then the instance's flip
        if flip in (1, 3):
            image = image.flip(0)
        if flip in (2, 3):
            image = image.flip(1)
        return image.reshape(-1)
