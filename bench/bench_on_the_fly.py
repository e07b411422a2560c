"""Images/s of FractalDB rendered on the fly (what an ``on_the_fly: true`` run reads), next to a ViT training step.

    .venv/bin/python bench/bench_on_the_fly.py [--classes 64] [--instances 10] [--size 362] [--points 200000]
        [--params JSON] [--micro 16] [--batches 2] [--model vit_tiny] [--json out.json]
    .venv/bin/python bench/bench_on_the_fly.py --classes 8 --instances 24 --size 32 --points 1000 \
        --params '{"pad": 2, "draw": "point"}' --batches 4 --model vit_micro      # the default study's fdb-tiny

Renders the first ``--classes`` published FractalDB-1k categories (reference search, done first and not timed) through
``OnTheFlyDataset`` the way training fetches them: micro-batches of ``--micro`` indices of one seeded shuffle over all
``classes x instances`` images (a DataLoader with no workers; the torch renderer gets each micro-batch in one
``__getitems__`` call). Renderers: ``numpy`` (the family's render, 2 categories cached per process), ``torch`` on the
CPU, and ``torch`` on CUDA when a GPU is present (items copied back to the host, as the dataset returns them).
Each line gives images per wall second and per CPU second of this process (torch threads: ``--threads``), over the
``--batches`` micro-batches after one untimed warm-up batch. Last, a ViT training step (forward, cross entropy,
backward, AdamW) on micro-batches of the same size and the model's input size, on the fastest device here: the
renderer keeps up with training when its images/s is at least the step's (goal: never input-bound).

In a uniform shuffle over many classes nearly every image belongs to a category no other image of its micro-batch
shares, so the chaos games of each category (25 weight rows x ``--points`` points) are recomputed per image: the
figure is the cost of that order, not of rendering one more instance of a prepared category.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch


def fractaldb_spec(args) -> dict:
    """The published FractalDB-1k settings at ``--size`` / ``--points`` for the first ``--classes`` categories."""
    return {
        "name": "fdb-bench",
        "family": "fractaldb",
        "num_classes": args.classes,
        "instances_per_class": args.instances,
        "image_size": args.size,
        "num_shards": 1,
        "seed": 0,
        "params": {"num_points": args.points, **json.loads(args.params)},
    }


def training_order(num_images: int, micro: int, batches: int, seed: int) -> list[list[int]]:
    """The first ``batches`` + 1 micro-batches of one seeded shuffle (the first is the untimed warm-up)."""
    order = torch.randperm(num_images, generator=torch.Generator().manual_seed(seed)).tolist()
    need = (batches + 1) * micro
    if need > num_images:
        raise SystemExit(f"--micro {micro} x (--batches {batches} + 1) = {need} exceeds the {num_images} images")
    return [order[k * micro : (k + 1) * micro] for k in range(batches + 1)]


def time_fetches(fetch, batches: list[list[int]]) -> dict:
    """images/s (wall and CPU) of ``fetch(indices)`` over every batch after the first."""
    fetch(batches[0])
    wall, cpu = time.perf_counter(), time.process_time()
    images = 0
    for indices in batches[1:]:
        images += len(fetch(indices))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return {"images": images, "wall_s": wall, "images_per_s": images / wall, "images_per_cpu_s": images / cpu}


def render_figures(args, spec: dict, categories, batches) -> dict:
    from pretrainflow.datasets import OnTheFlyDataset
    from pretrainflow.datasets.gpu import FractalDBTorchRenderer

    figures = {}
    for renderer in ("numpy", "torch"):
        ds = OnTheFlyDataset(spec, categories, renderer=renderer)
        figures[f"{renderer} cpu"] = time_fetches(ds.__getitems__, batches)
    if torch.cuda.is_available():
        gpu = FractalDBTorchRenderer(spec, categories, device="cuda")

        def fetch(indices):
            images = gpu.render(indices).cpu()  # .cpu() waits for the device: the timing covers finished work
            return images

        figures["torch cuda"] = time_fetches(fetch, batches)
    return figures


def train_step_figure(args) -> dict:
    """images/s of plain training steps of ``--model`` (1 input channel, as FractalDB) on micro-batches of ``--micro``."""
    from pretrainflow.models import create_vit

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model = create_vit(args.model, num_classes=args.classes, in_chans=1).to(device)
    size = model.cfg.image_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.rand(args.micro, 1, size, size, device=device)
    y = torch.randint(0, args.classes, (args.micro,), device=device)

    def step():
        optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()

    step()  # warm-up: allocations, kernels
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter()
    for _ in range(args.train_steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - wall
    return {"device": device.type, "image_size": size, "images_per_s": args.train_steps * args.micro / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classes", type=int, default=64, help="more than the timed images: few repeats of a class")
    parser.add_argument("--instances", type=int, default=10, help="instances per class")
    parser.add_argument("--size", type=int, default=362, help="image pixels per side (published 362)")
    parser.add_argument("--points", type=int, default=200_000, help="chaos-game points per image (published 200,000)")
    parser.add_argument("--params", default="{}", help='more FractalDB params as JSON, e.g. \'{"draw": "point"}\'')
    parser.add_argument("--micro", type=int, default=16, help="images per micro-batch")
    parser.add_argument("--batches", type=int, default=2, help="timed micro-batches (after one warm-up batch)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffle")
    parser.add_argument("--model", default="vit_tiny", help="ViT of the training-step figure")
    parser.add_argument("--train-steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (1: per-core figures)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from pretrainflow.datasets.spec import resolve

    spec = fractaldb_spec(args)
    ds, family, params = resolve(spec)
    started = time.perf_counter()
    categories = family.search(ds, params)
    print(f"categories: {args.classes} published FractalDB-1k ones searched in {time.perf_counter() - started:.1f} s")
    batches = training_order(ds.num_images, args.micro, args.batches, args.seed)
    timed = [i // args.instances for b in batches[1:] for i in b]
    seen = {i // args.instances for i in batches[0]}  # classes the warm-up batch prepared (may still be cached)
    print(
        f"FractalDB {args.size} px, {args.points:,} points, {args.classes} classes x {args.instances} instances; "
        f"{args.batches} shuffled micro-batches of {args.micro}, {args.threads} torch thread(s); the timed images "
        f"span {len(set(timed))} classes, {len(set(timed) & seen)} of them also in the warm-up batch"
    )
    figures = render_figures(args, spec, categories, batches)
    print(f"{'renderer':<12} {'images/s':>10} {'images/CPU-s':>13} {'wall s':>8}")
    for name, fig in figures.items():
        print(f"{name:<12} {fig['images_per_s']:>10.2f} {fig['images_per_cpu_s']:>13.2f} {fig['wall_s']:>8.2f}")
    train = train_step_figure(args)
    print(
        f"{args.model} training step ({train['device']}, {train['image_size']} px, micro {args.micro}): "
        f"{train['images_per_s']:.1f} images/s"
    )
    for name, fig in figures.items():
        ratio = fig["images_per_s"] / train["images_per_s"]
        verdict = "keeps up" if ratio >= 1 else "input-bound"
        print(f"{name:<12} renders {ratio:.3g}x the training step's images/s: {verdict}")
    if args.json:
        args.json.write_text(
            json.dumps({"args": vars(args) | {"json": str(args.json)}, "render": figures, "train": train})
        )


if __name__ == "__main__":
    main()
