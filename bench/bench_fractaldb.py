"""FractalDB generation speed on one core: category search and instance rendering at the released settings.

    .venv/bin/python bench/bench_fractaldb.py                       # search 30 categories, render 2 x 1,000 at 362 px
    .venv/bin/python bench/bench_fractaldb.py --search 1000 --verify /work/shared/reference-data/fractaldb1k-categories
    .venv/bin/python bench/bench_fractaldb.py --search 0 --classes 8 --torch-device cuda   # the GPU path, on a GPU
    python bench/bench_fractaldb.py --torch-only --classes 16 --instances 100 --size 362 --torch-device cuda \
        --json $OUT/fdb362.json                                    # the torch renderer alone (bench/gpu_check.sh)

Published baselines measured on these machines (2-core VMs): search about 4 s per accepted category (1,180 trials for
30 categories in 126 s); rendering about 1.0 image/s per core. Goals: search >= 20x (<= 0.2 s per category), render
>= 100 images/s per core at 362 px, 200,000 points, patch rendering. Runs single-threaded; "per core" figures are
CPU seconds of this process (time.process_time), which other jobs on a shared machine do not inflate; wall time is
printed next to them.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

PUBLISHED_SEARCH_S_PER_CATEGORY = 126 / 30  # measured here with the published ifs_search.py
PUBLISHED_RENDER_IMAGES_PER_S = 1.0  # measured here with the published renderer


def bench_search(num_classes: int, verify: str | None) -> None:
    from pretrainflow.datasets.fractaldb_search import REFERENCE_SEED, search_systems

    wall, cpu = time.perf_counter(), time.process_time()
    found = search_systems(num_classes=num_classes, seed=REFERENCE_SEED, progress=True)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    per_category = cpu / num_classes
    print(
        f"search: {num_classes} categories ({found[-1][2]} trials) in {cpu:.1f} CPU s ({wall:.1f} s wall) = "
        f"{per_category:.3f} CPU s/category = {1 / per_category:.2f} categories/s per core; "
        f"{PUBLISHED_SEARCH_S_PER_CATEGORY / per_category:.1f}x the published search"
    )
    if verify:
        same = sum(
            np.array_equal(maps, np.loadtxt(f"{verify}/{i:05d}.csv", delimiter=",", ndmin=2))
            for i, (maps, _, _) in enumerate(found)
        )
        print(f"search: {same} / {num_classes} categories identical to the published files in {verify}")


def bench_render(classes: int, instances: int, size: int, encode: bool) -> None:
    from pretrainflow.datasets import fractaldb
    from pretrainflow.datasets.shards import encode_image
    from pretrainflow.datasets.spec import resolve

    spec = {
        "name": "bench",
        "family": "fractaldb",
        "num_classes": classes,
        "instances_per_class": instances,
        "image_size": size,
        "num_shards": 1,
        "seed": 0,
        "params": {},
    }
    ds, family, params = resolve(spec)
    categories = family.search(ds, params).to_dict("records")
    fractaldb._category_coverages.cache_clear()  # include the per-category point sets in the measurement
    wall, cpu = time.perf_counter(), time.process_time()
    lit = 0
    for c in range(classes):  # class-major, as a shard renders
        for i in range(instances):
            image = family.render(ds, params, categories[c], i)
            lit += np.count_nonzero(image)
            if encode:
                encode_image(image, "png")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    rate = classes * instances / cpu
    what = "render + PNG encode" if encode else "render"
    print(
        f"{what}: {classes} x {instances} images of {size} px, {params.num_points} points, {params.draw} in "
        f"{cpu:.1f} CPU s ({wall:.1f} s wall) = {rate:.1f} images/s per core "
        f"({rate / PUBLISHED_RENDER_IMAGES_PER_S:.0f}x published); "
        f"mean lit fraction {lit / (classes * instances * size * size):.3f}"
    )


def bench_torch(classes: int, instances: int, size: int, device: str) -> dict:
    """The torch renderer (gpu.py): on a GPU when one is present; on the CPU it only shows that the path runs.

    Timed in two parts: the chaos games of all categories in one batch (``prepare``: coverages and last writers),
    then painting every image (mask draws on the host, a gather and flips on the device)."""
    import torch

    from pretrainflow.datasets.gpu import FractalDBTorchRenderer
    from pretrainflow.datasets.spec import resolve

    spec = {
        "name": "bench",
        "family": "fractaldb",
        "num_classes": classes,
        "instances_per_class": instances,
        "image_size": size,
        "num_shards": 1,
        "seed": 0,
        "params": {},
    }
    ds, family, params = resolve(spec)
    renderer = FractalDBTorchRenderer(spec, family.search(ds, params), device=device, classes_per_batch=classes)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    start = time.perf_counter()
    renderer.prepare(list(range(classes)))
    sync()
    prepared = time.perf_counter()
    images = renderer.render(range(classes * instances))
    sync()
    end = time.perf_counter()
    seconds = end - start
    figures = {
        "device": device,
        "image_size": size,
        "classes": classes,
        "instances": instances,
        "num_points": params.num_points,
        "images": len(images),
        "chaos_game_seconds": prepared - start,
        "paint_seconds": end - prepared,
        "images_per_s": len(images) / seconds,
    }
    print(
        f"torch renderer on {device}: {len(images)} images of {size} px ({classes} categories x {instances}, "
        f"{params.num_points} points) in {seconds:.1f} s wall = {len(images) / seconds:.1f} images/s "
        f"(chaos games of the batch {prepared - start:.1f} s, painting {end - prepared:.1f} s)"
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--search", type=int, default=30, help="categories to search (0: skip)")
    parser.add_argument("--verify", default=None, help="directory of published category CSVs to compare with")
    parser.add_argument("--classes", type=int, default=2, help="categories to render (0: skip)")
    parser.add_argument("--instances", type=int, default=1000, help="instances per category (published: 1,000)")
    parser.add_argument("--size", type=int, default=362)
    parser.add_argument("--torch-device", default=None, help="also time the torch renderer on this device (e.g. cuda)")
    parser.add_argument("--torch-only", action="store_true", help="only the torch renderer (no search, no numpy)")
    parser.add_argument("--json", type=Path, help="write the torch renderer's figures here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.search and not args.torch_only:
        bench_search(args.search, args.verify)
    if args.classes and not args.torch_only:
        bench_render(args.classes, args.instances, args.size, encode=False)
        bench_render(args.classes, args.instances, args.size, encode=True)
    if args.torch_device or args.torch_only:
        figures = bench_torch(max(args.classes, 1), args.instances, args.size, args.torch_device or "cpu")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
