"""DeiT-style augmentation on batches of tensors (no PIL, no torchvision), on whatever device the batch lives.

Order as timm's training transform: random resized crop (+ optional horizontal flip) -> RandAugment-like ops
(or colour jitter when RandAugment is off, as timm does) -> normalise -> random erasing -> mixup / cutmix with
label smoothing. All geometric parts (crop, flip, rotate, shear, translate) are composed into one affine matrix per image
and applied with a single ``grid_sample``. Every random draw comes from the ``torch.Generator`` passed in (CPU), so a
step is reproducible from its seed whatever the device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from pretrainflow.train.vit.spec import AugmentSpec

GEOMETRIC_OPS = ("rotate", "shear_x", "shear_y", "translate_x", "translate_y")
PHOTOMETRIC_OPS = ("identity", "autocontrast", "brightness", "contrast", "color", "solarize", "posterize", "sharpness")
RAND_OPS = GEOMETRIC_OPS + PHOTOMETRIC_OPS


def _uniform(gen: torch.Generator, n: int, low: float, high: float) -> torch.Tensor:
    return torch.rand(n, generator=gen) * (high - low) + low


def crop_affine(n: int, spec: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    """[n, 3, 3] maps output coords (in [-1, 1]) to input coords: a crop of area share ``crop_scale`` and aspect
    ratio in [3/4, 4/3] (log-uniform) at a uniform position, mirrored with probability ``hflip``."""
    eye = torch.eye(3).repeat(n, 1, 1)
    if spec.random_resized_crop:
        area = _uniform(gen, n, *spec.crop_scale)
        log_ratio = _uniform(gen, n, math.log(3 / 4), math.log(4 / 3))
        width = torch.sqrt(area * log_ratio.exp()).clamp(max=1.0)  # fraction of the image width
        height = torch.sqrt(area / log_ratio.exp()).clamp(max=1.0)
        eye[:, 0, 0], eye[:, 1, 1] = width, height
        # Centre anywhere that keeps the crop inside the image: |c| <= 1 - size (normalised coords span 2).
        eye[:, 0, 2] = (torch.rand(n, generator=gen) * 2 - 1) * (1 - width)
        eye[:, 1, 2] = (torch.rand(n, generator=gen) * 2 - 1) * (1 - height)
    if spec.hflip > 0:
        flip = torch.rand(n, generator=gen) < spec.hflip
        eye[flip, 0, 0] *= -1
    return eye


def _magnitudes(n: int, spec: AugmentSpec, gen: torch.Generator) -> torch.Tensor:
    """Per-image magnitude in [0, 1]: N(m, mstd) clipped to [0, 10], over 10 (timm ``m9-mstd0.5``)."""
    m = spec.randaugment_magnitude + torch.randn(n, generator=gen) * spec.randaugment_magnitude_std
    return m.clamp(0, 10) / 10


def rand_ops(n: int, spec: AugmentSpec, gen: torch.Generator) -> tuple[list[list[str]], torch.Tensor, torch.Tensor]:
    """Choose ``randaugment_ops`` ops per image, a magnitude per image and a random sign per image and op."""
    picks = torch.randint(len(RAND_OPS), (n, spec.randaugment_ops), generator=gen)
    ops = [[RAND_OPS[i] for i in row] for row in picks.tolist()]
    signs = torch.where(torch.rand(n, spec.randaugment_ops, generator=gen) < 0.5, -1.0, 1.0)
    return ops, _magnitudes(n, spec, gen), signs


def geometric_affine(ops: list[list[str]], mags: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """[n, 3, 3] of the geometric ops: rotate up to 30 deg, shear up to 0.3, translate up to 45 % (timm ranges)."""
    out = torch.eye(3).repeat(len(ops), 1, 1)
    for i, row in enumerate(ops):
        for j, op in enumerate(row):
            v = float(mags[i] * signs[i, j])
            m = torch.eye(3)
            if op == "rotate":
                a = math.radians(30 * v)
                m[:2, :2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
            elif op == "shear_x":
                m[0, 1] = 0.3 * v
            elif op == "shear_y":
                m[1, 0] = 0.3 * v
            elif op == "translate_x":
                m[0, 2] = 0.9 * v  # 0.45 of the width = 0.9 in [-1, 1] coords
            elif op == "translate_y":
                m[1, 2] = 0.9 * v
            out[i] = out[i] @ m
    return out


def _gray(x: torch.Tensor) -> torch.Tensor:
    if x.shape[1] == 3:
        return (0.299 * x[:, 0:1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]).expand_as(x)
    return x


def _blend(a: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """a + factor * (b - a), per image; factor 1 -> b."""
    return (a + factor.view(-1, 1, 1, 1) * (b - a)).clamp(0, 1)


def photometric(x: torch.Tensor, ops: list[list[str]], mags: torch.Tensor, signs: torch.Tensor) -> torch.Tensor:
    """Apply the photometric ops of each image (x in [0, 1]); images that draw an op are processed together."""
    for j in range(len(ops[0]) if ops else 0):
        for op in PHOTOMETRIC_OPS[1:]:
            rows = [i for i, row in enumerate(ops) if row[j] == op]
            if not rows:
                continue
            idx = torch.tensor(rows, device=x.device)
            sub, v = x[idx], (mags[rows] * signs[rows, j]).to(x.device)
            if op == "autocontrast":
                low, high = sub.amin((2, 3), keepdim=True), sub.amax((2, 3), keepdim=True)
                sub = (sub - low) / (high - low).clamp(min=1e-3)
            elif op in ("brightness", "contrast", "color", "sharpness"):
                base = {
                    "brightness": torch.zeros_like(sub),
                    "contrast": _gray(sub).mean((1, 2, 3), keepdim=True).expand_as(sub),
                    "color": _gray(sub),
                    "sharpness": F.avg_pool2d(sub, 3, 1, 1, count_include_pad=False),
                }[op]
                sub = _blend(base, sub, 1 + 0.9 * v)  # enhancement factor in [0.1, 1.9]
            elif op == "solarize":
                threshold = (1 - mags[rows].to(x.device)).view(-1, 1, 1, 1)  # m=10 inverts everything
                sub = torch.where(sub >= threshold, 1 - sub, sub)
            elif op == "posterize":
                levels = (2 ** (8 - (4 * mags[rows]).round())).to(x.device).view(-1, 1, 1, 1)  # 8 -> 4 bits
                sub = torch.floor(sub * (levels - 1) + 0.5) / (levels - 1)
            x[idx] = sub.clamp(0, 1)
    return x


def color_jitter(x: torch.Tensor, strength: float, gen: torch.Generator) -> torch.Tensor:
    """Brightness, contrast, saturation factors in [1 - s, 1 + s] per image."""
    n = x.shape[0]
    for base in (torch.zeros_like(x), None, _gray(x)):
        factor = _uniform(gen, n, 1 - strength, 1 + strength).to(x.device)
        ref = _gray(x).mean((1, 2, 3), keepdim=True).expand_as(x) if base is None else base
        x = _blend(ref, x, factor)
    return x


def random_erasing(x: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """Erase one rectangle (2-33 % of the area, aspect 0.3-3.3) per image with probability ``prob``, filled with
    per-pixel normal noise (timm ``mode='pixel'``); ``x`` is already normalised."""
    n, _c, h, w = x.shape
    for i in torch.nonzero(torch.rand(n, generator=gen) < prob).flatten().tolist():
        area = float(_uniform(gen, 1, 0.02, 1 / 3)) * h * w
        ratio = math.exp(float(_uniform(gen, 1, math.log(0.3), math.log(1 / 0.3))))
        eh, ew = min(h, int(round(math.sqrt(area * ratio)))), min(w, int(round(math.sqrt(area / ratio))))
        top = int(torch.randint(h - eh + 1, (1,), generator=gen))
        left = int(torch.randint(w - ew + 1, (1,), generator=gen))
        noise = torch.randn(x.shape[1], eh, ew, generator=gen).to(x.device, x.dtype)
        x[i, :, top : top + eh, left : left + ew] = noise
    return x


def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """One-hot with label smoothing: 1 - s + s/K on the label, s/K elsewhere."""
    off = smoothing / num_classes
    out = torch.full((labels.shape[0], num_classes), off, device=labels.device)
    return out.scatter_(1, labels.view(-1, 1), 1.0 - smoothing + off)


def mix(x: torch.Tensor, targets: torch.Tensor, spec: AugmentSpec, gen: torch.Generator):
    """Mixup or cutmix of the batch with its reverse (timm's batch mode); targets mixed with the same lambda."""
    use_mixup, use_cutmix = spec.mixup > 0, spec.cutmix > 0
    if not (use_mixup or use_cutmix) or float(torch.rand(1, generator=gen)) >= spec.mix_prob:
        return x, targets
    cut = use_cutmix and (not use_mixup or float(torch.rand(1, generator=gen)) < spec.switch_prob)
    alpha = spec.cutmix if cut else spec.mixup
    lam = _beta(alpha, gen)
    flipped = x.flip(0)
    if cut:
        h, w = x.shape[-2:]
        ch, cw = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
        cy, cx = int(torch.randint(h, (1,), generator=gen)), int(torch.randint(w, (1,), generator=gen))
        top, bottom = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        left, right = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[:, :, top:bottom, left:right] = flipped[:, :, top:bottom, left:right]
        lam = 1 - (bottom - top) * (right - left) / (h * w)  # the area actually pasted
    else:
        x = x * lam + flipped * (1 - lam)
    return x, targets * lam + targets.flip(0) * (1 - lam)


def _beta(alpha: float, gen: torch.Generator) -> float:
    """Beta(alpha, alpha) from two Gamma draws made with ``gen`` (torch's Beta sampler takes no generator)."""
    a = torch._standard_gamma(torch.tensor([alpha]), generator=gen)
    b = torch._standard_gamma(torch.tensor([alpha]), generator=gen)
    return float(a / (a + b))


def augment_batch(
    images01: torch.Tensor, labels: torch.Tensor, *, spec: AugmentSpec, num_classes: int, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Training augmentation of ``images01`` ([B, C, H, W] float in [0, 1]) -> (normalised images, soft targets)."""
    n = images01.shape[0]
    affine = crop_affine(n, spec, gen)
    ops, mags, signs = rand_ops(n, spec, gen) if spec.randaugment_ops else ([], None, None)
    if ops:
        affine = affine @ geometric_affine(ops, mags, signs)
    x = images01
    if not torch.equal(affine, torch.eye(3).expand_as(affine)):
        grid = F.affine_grid(affine[:, :2].to(x.device, x.dtype), list(x.shape), align_corners=False)
        x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if ops:
        x = photometric(x, ops, mags, signs)
    elif spec.color_jitter > 0:
        x = color_jitter(x, spec.color_jitter, gen)
    x = (x - spec.mean) / spec.std
    if spec.random_erasing > 0:
        x = random_erasing(x, spec.random_erasing, gen)
    targets = soft_targets(labels, num_classes, spec.label_smoothing)
    return mix(x, targets, spec, gen)
