"""Training-step throughput of our DeepSpeed ViT loop vs a plain PyTorch loop, same model, batch and data; MFU on GPUs.

    .venv/bin/python bench/bench_vit.py [--model vit_micro] [--micro 64] [--steps 40] [--repeats 3] [--zero 0 2]
    python bench/bench_vit.py --model vit_base --micro 128 --steps 60 --repeats 1 --zero 2 --precision bf16 \\
        --no-plain --workers 4 --json $OUT/vit_base.json                                 # one GPU (bench/gpu_check.sh)

The device follows the machine: CUDA (NCCL, one process) when present, else the CPU (gloo, DeepSpeed's CPU
accelerator); nothing here forces DS_ACCELERATOR. Both sides train the same registered ViT on the same in-memory
uint8 images (``--unique`` distinct images, repeated) with AdamW + warmup/cosine and no augmentation, so the figure is
the engine's overhead, not the augmentation's. Ours: pretrainflow.train.vit.loop.train (DeepSpeed engine, per-step
reseeding, walltime-signal check, metric rows) in one process; plain: DataLoader -> float/normalise -> forward ->
cross entropy -> backward -> AdamW step -> scheduler step (bf16: under autocast). Each side runs ``--repeats`` times
interleaved and the best run counts (the machine is shared; the best is the least disturbed). Goal: overhead <= 5 %.

Figures per side: images/s over all steps, and "steady" images/s over the metric windows after the first (the first
holds CUDA/cuDNN warm-up; each window ends in a host sync, so the windows time finished work).

FLOPs (ViTModel.flops_per_image, 2 per multiply-add; t = patches + 1 tokens, d = width, h = MLP width, L = depth):
    forward = L x [2 t (3 d^2 + d^2 + 2 d h) + 4 t^2 d] + 2 (t - 1) d C P^2 + 2 d classes
    (qkv, attention output, MLP; QK^T and AV; patch embedding; head), training = 3 x forward (backward = 2 x forward).
    ViT-B/16 at 224 px (t 197, d 768, h 3072, L 12), 1,000 classes: 35.1 GFLOPs forward, 105.4 per training image;
    at the H200's ~790 TFLOP/s measured bf16 matmul rate that is at most ~7,500 images/s.
MFU = 3 x forward FLOPs x images/s / peak (pretrainflow.train.mfu: H200 989 TFLOP/s dense bf16; fp32 runs are divided
by the same bf16 peak; None on CPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch


class RandomImages(torch.utils.data.Dataset):
    """``n`` items cycling over ``unique`` random uint8 images (memory stays small at 224 px)."""

    def __init__(self, n: int, size: int, num_classes: int, unique: int = 512) -> None:
        gen = torch.Generator().manual_seed(0)
        self.n = n
        self.images = torch.randint(0, 256, (min(n, unique), 3, size, size), dtype=torch.uint8, generator=gen)
        self.labels = torch.randint(0, num_classes, (n,), generator=gen)
        self.num_classes = num_classes

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        return self.images[i % len(self.images)], int(self.labels[i])


def plain_loop(model_name: str, data: RandomImages, micro: int, steps: int, precision: str, device) -> float:
    """images/s of a plain PyTorch loop on ``device``."""
    from pretrainflow.models import create_vit
    from pretrainflow.train.vit.optim import param_groups
    from pretrainflow.train.vit.schedule import warmup_cosine

    torch.manual_seed(0)
    model = create_vit(model_name, num_classes=data.num_classes, drop_path=0.0).to(device)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=5e-4)
    sched = warmup_cosine(opt, total_steps=steps, warmup_steps=steps // 10, floor=1e-5)
    loader = torch.utils.data.DataLoader(data, batch_size=micro, shuffle=True, drop_last=True)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    model.train()
    start = time.perf_counter()
    for images, labels in loader:
        x = (images.to(device, non_blocking=True).float() / 255 - 0.5) / 0.5
        with autocast:
            loss = torch.nn.functional.cross_entropy(model(x), labels.to(device))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    _sync(device)
    return steps * micro / (time.perf_counter() - start)


def engine_loop(args, data: RandomImages, zero: int, placement, world) -> tuple[float, float]:
    """(images/s over all steps, steady images/s) of pretrainflow.train.vit.loop.train (training time only)."""
    from pretrainflow.models import create_vit, vit_config
    from pretrainflow.train.vit.loop import TrainPlan, train
    from pretrainflow.train.vit.spec import AugmentSpec, BatchSpec, OptimizerSpec, ScheduleSpec

    torch.manual_seed(0)
    cfg = vit_config(args.model, num_classes=data.num_classes, drop_path=0.0)
    model = create_vit(args.model, num_classes=data.num_classes, drop_path=0.0).to(placement.device)
    off = AugmentSpec(
        random_resized_crop=False,
        randaugment_ops=0,
        color_jitter=0.0,
        random_erasing=0.0,
        mixup=0.0,
        cutmix=0.0,
        label_smoothing=0.0,
    )
    plan = TrainPlan(
        optimizer=OptimizerSpec(lr=5e-4),
        schedule=ScheduleSpec(epochs=1, warmup_epochs=0.1, min_lr=1e-5),
        batch=BatchSpec(micro=args.micro, global_batch=args.micro),  # one rank, no accumulation
        augment=off,
        precision=args.precision,
        zero_stage=zero,
        log_every=args.log_every,
        num_workers=args.workers,
        seed=0,
        image_size=cfg.image_size,
        in_chans=3,
        num_classes=data.num_classes,
    )
    result = train(
        model,
        data,
        plan,
        world,
        placement,
        checkpoint_root=None,
        config={},
        config_hash="bench",
        desc=f"bench zero{zero}",
        tb_dir=None,
    )
    windows = [row["images_per_s"] for row in result.metrics[1:]]
    overall = result.summary["throughput"]
    return overall, statistics.mean(windows) if windows else overall


def _sync(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_micro")
    parser.add_argument("--micro", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--zero", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--unique", type=int, default=512, help="distinct images in memory (repeated to fill steps)")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of our loop")
    parser.add_argument("--log-every", type=int, default=10, help="steps per metric window")
    parser.add_argument("--no-plain", dest="plain", action="store_false", help="skip the plain PyTorch loop")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    from pretrainflow.launch import world_from_env
    from pretrainflow.models import create_vit, vit_config
    from pretrainflow.train.mfu import mfu
    from pretrainflow.train.vit.engine import setup_distributed

    world = world_from_env()
    placement = setup_distributed(world)  # CUDA when present
    if placement.device.type == "cpu":
        torch.set_num_threads(args.threads)
    size = vit_config(args.model).image_size
    data = RandomImages(args.steps * args.micro, size, args.num_classes, args.unique)
    forward_flops = create_vit(args.model, num_classes=args.num_classes).flops_per_image()
    best: dict[str, tuple[float, float]] = {}
    for _ in range(args.repeats):
        if args.plain:
            rate = plain_loop(args.model, data, args.micro, args.steps, args.precision, placement.device)
            best["plain"] = max(best.get("plain", (0.0, 0.0)), (rate, rate))
        for zero in args.zero:
            key = f"deepspeed zero{zero}"
            best[key] = max(best.get(key, (0.0, 0.0)), engine_loop(args, data, zero, placement, world))
    print(
        f"\n{args.model} ({vit_config(args.model).image_size} px), micro batch {args.micro}, {args.steps} steps, "
        f"{args.precision}, on {placement.device_name}, best of {args.repeats}; "
        f"{3 * forward_flops / 1e9:.1f} GFLOPs per training image"
    )
    rows = []
    for key, (overall, steady) in best.items():
        util = mfu(
            train_flops_per_item=3 * forward_flops, items_per_s=steady, world_size=1, device_name=placement.device_name
        )
        overhead = (
            ""
            if key == "plain" or "plain" not in best
            else f"  overhead {100 * (best['plain'][0] / overall - 1):+.1f} %"
        )
        mfu_text = "" if util is None else f"  MFU {100 * util:.1f} %"
        print(f"  {key:<16} {overall:9.1f} images/s  steady {steady:9.1f}{mfu_text}{overhead}")
        rows.append({"loop": key, "images_per_s": overall, "steady_images_per_s": steady, "mfu": util})
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "model": args.model,
                    "image_size": size,
                    "micro": args.micro,
                    "steps": args.steps,
                    "precision": args.precision,
                    "device": placement.device_name,
                    "train_gflops_per_image": 3 * forward_flops / 1e9,
                    "results": rows,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
