"""Training-step throughput of our DeepSpeed ViT loop vs a plain PyTorch loop, same model, batch and data (CPU).

    .venv/bin/python bench/bench_vit.py [--model vit_micro] [--micro 64] [--steps 40] [--repeats 3] [--zero 0 2]

Both sides train the same registered ViT on the same in-memory uint8 images with AdamW + warmup/cosine and no
augmentation (so the figure is the engine's overhead, not the augmentation's). Ours: pretrainflow.train.vit.loop.train
(DeepSpeed engine, per-step reseeding, walltime-signal check, metric rows) in one process; plain: DataLoader ->
float/normalise -> forward -> cross entropy -> backward -> AdamW step -> scheduler step. Each side runs ``--repeats``
times interleaved and the best run counts (the machine is shared; the best is the least disturbed). Goal: overhead <= 5 %.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

os.environ.setdefault("DS_ACCELERATOR", "cpu")


class RandomImages(torch.utils.data.Dataset):
    def __init__(self, n: int, size: int, num_classes: int) -> None:
        gen = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=gen)
        self.labels = torch.randint(0, num_classes, (n,), generator=gen)
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        return self.images[i], int(self.labels[i])


def plain_loop(model_name: str, data: RandomImages, micro: int, steps: int) -> float:
    """images/s of a plain PyTorch loop."""
    from pretrainflow.models import create_vit
    from pretrainflow.train.vit.optim import param_groups
    from pretrainflow.train.vit.schedule import warmup_cosine

    torch.manual_seed(0)
    model = create_vit(model_name, num_classes=data.num_classes, drop_path=0.0)
    opt = torch.optim.AdamW(param_groups(model, 0.05), lr=5e-4)
    sched = warmup_cosine(opt, total_steps=steps, warmup_steps=steps // 10, floor=1e-5)
    loader = torch.utils.data.DataLoader(data, batch_size=micro, shuffle=True, drop_last=True)
    model.train()
    start = time.perf_counter()
    for images, labels in loader:
        x = (images.float() / 255 - 0.5) / 0.5
        loss = torch.nn.functional.cross_entropy(model(x), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return steps * micro / (time.perf_counter() - start)


def engine_loop(model_name: str, data: RandomImages, micro: int, steps: int, zero: int, placement, world) -> float:
    """images/s of pretrainflow.train.vit.loop.train (its summary counts training time only, not engine set-up)."""
    from pretrainflow.models import create_vit, vit_config
    from pretrainflow.train.vit.loop import TrainPlan, train
    from pretrainflow.train.vit.spec import AugmentSpec, BatchSpec, OptimizerSpec, ScheduleSpec

    torch.manual_seed(0)
    cfg = vit_config(model_name, num_classes=data.num_classes, drop_path=0.0)
    model = create_vit(model_name, num_classes=data.num_classes, drop_path=0.0)
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
        batch=BatchSpec(micro=micro, global_batch=micro),  # one rank, no accumulation
        augment=off,
        precision="fp32",
        zero_stage=zero,
        log_every=10,
        num_workers=0,
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
    return result.summary["throughput"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_micro")
    parser.add_argument("--micro", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--zero", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = parser.parse_args()

    from pretrainflow.launch import world_from_env
    from pretrainflow.models import vit_config
    from pretrainflow.train.vit.engine import setup_distributed

    world = world_from_env()
    placement = setup_distributed(world)
    torch.set_num_threads(args.threads)
    size = vit_config(args.model).image_size
    data = RandomImages(args.steps * args.micro, size, 10)
    best: dict[str, float] = {}
    for _ in range(args.repeats):
        best["plain"] = max(best.get("plain", 0.0), plain_loop(args.model, data, args.micro, args.steps))
        for zero in args.zero:
            key = f"deepspeed zero{zero}"
            best[key] = max(
                best.get(key, 0.0), engine_loop(args.model, data, args.micro, args.steps, zero, placement, world)
            )
    print(
        f"\n{args.model}, micro batch {args.micro}, {args.steps} steps, {args.threads} thread(s), best of {args.repeats}:"
    )
    for key, value in best.items():
        overhead = "" if key == "plain" else f"  overhead {100 * (best['plain'] / value - 1):+.1f} %"
        print(f"  {key:<16} {value:8.1f} images/s{overhead}")


if __name__ == "__main__":
    main()
