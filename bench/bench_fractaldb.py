"""FractalDB generation speed on one core: category search and instance rendering at the released settings.

    .venv/bin/python bench/bench_fractaldb.py                       # search 20 and 100 categories, render 2 x 1,000
    .venv/bin/python bench/bench_fractaldb.py --search 20 60 1000 --verify   # + compare with the published CSVs
    .venv/bin/python bench/bench_fractaldb.py --search 0 --classes 8 --torch-device cuda   # the GPU path, on a GPU
    python bench/bench_fractaldb.py --torch-only --classes 16 --instances 100 --size 362 --torch-device cuda \
        --json $OUT/fdb362.json                                    # the torch renderer alone (bench/gpu_check.sh)

Ratios are against the published generators' figures as RECORDED (PUBLISHED below: machine and date printed with
them), not measured by this bench. Goals: search >= 20x at every size from 20 categories up, render >= 100x. Runs
single-threaded; "per core" figures are CPU seconds of this process (time.process_time), which other jobs on a shared
machine inflate far less than wall time; wall time is printed next to them. The search runs compiled when numba is
installed (each line names its path; ``--numpy-search`` forces numpy). ``--verify`` exits 1 when any searched
category differs from the published files (default: ../shared/reference-data/fractaldb1k-categories).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from published import RENDER, SEARCH  # noqa: E402  (bench/ is the script's directory)

# The published figures as recorded beside ours (published.py; machine and date printed with them).
PUBLISHED_SEARCH, PUBLISHED_RENDER = SEARCH, RENDER["fractaldb"]

REPO = Path(__file__).resolve().parents[1]
PUBLISHED_CATEGORIES = REPO.parent / "shared" / "reference-data" / "fractaldb1k-categories"


def import_search_cpu() -> float:
    """CPU seconds to import the search module (with tqdm): a fresh process pays them before its first category."""
    cpu = time.process_time()
    import pretrainflow.datasets.fractaldb_search  # noqa: F401

    return time.process_time() - cpu


def bench_search(num_classes: int, verify: Path | None, import_cpu: float, compiled: bool | None) -> tuple[int, float]:
    """Search the first ``num_classes`` published categories in a fresh search; returns how many differ from the
    published files (0 without ``verify``) and the CPU seconds per category. ``import_cpu`` (the module import) is
    added to the search's CPU time; the compiled path's numba import and cached compilation happen inside the first
    search and are counted there."""
    from pretrainflow.datasets.fractaldb_search import REFERENCE_SEED, compiled_kernels, search_systems

    wall, cpu = time.perf_counter(), time.process_time()
    found = search_systems(num_classes=num_classes, seed=REFERENCE_SEED, progress=True, compiled=compiled)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu + import_cpu
    per_category = cpu / num_classes
    path = "numpy" if compiled is False or compiled_kernels() is None else "compiled (numba)"
    print(
        f"search [{path}]: {num_classes} categories ({found[-1][2]} trials) in {cpu:.2f} CPU s ({wall:.1f} s wall) = "
        f"{per_category:.3f} CPU s/category = {PUBLISHED_SEARCH.value / per_category:.1f}x the published "
        f"{PUBLISHED_SEARCH}"
    )
    if verify is None:
        return 0, per_category
    differ = [
        i
        for i, (maps, _, _) in enumerate(found)
        if not np.array_equal(maps, np.loadtxt(verify / f"{i:05d}.csv", delimiter=",", ndmin=2))
    ]
    print(f"search: {num_classes - len(differ)} / {num_classes} categories identical to the published files in {verify}"
          + (f"; DIFFERENT: {differ[:20]}" if differ else ""))  # fmt: skip
    return len(differ), per_category


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
        f"({rate / PUBLISHED_RENDER.value:.0f}x the published {PUBLISHED_RENDER}); "
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
    parser.add_argument("--search", type=int, nargs="+", default=[20, 100],
                        help="categories to search, one fresh search per size (0: skip)")  # fmt: skip
    parser.add_argument("--numpy-search", action="store_true", help="the numpy search even when numba is installed")
    parser.add_argument("--verify", type=Path, nargs="?", const=PUBLISHED_CATEGORIES, default=None,
                        help=f"compare with the published category CSVs in this directory (default {PUBLISHED_CATEGORIES}); "
                        "exit 1 when a category differs")  # fmt: skip
    parser.add_argument("--classes", type=int, default=2, help="categories to render (0: skip)")
    parser.add_argument("--instances", type=int, default=1000, help="instances per category (published: 1,000)")
    parser.add_argument("--size", type=int, default=362)
    parser.add_argument("--torch-device", default=None, help="also time the torch renderer on this device (e.g. cuda)")
    parser.add_argument("--torch-only", action="store_true", help="only the torch renderer (no search, no numpy)")
    parser.add_argument("--json", type=Path, help="write the torch renderer's figures here")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    differ = 0
    if not args.torch_only and any(args.search):
        import_cpu = import_search_cpu()
        for num_classes in (n for n in args.search if n):
            differ += bench_search(num_classes, args.verify, import_cpu, False if args.numpy_search else None)[0]
    if args.classes and not args.torch_only:
        bench_render(args.classes, args.instances, args.size, encode=False)
        bench_render(args.classes, args.instances, args.size, encode=True)
    if args.torch_device or args.torch_only:
        figures = bench_torch(max(args.classes, 1), args.instances, args.size, args.torch_device or "cpu")
        if args.json:
            args.json.write_text(json.dumps(figures, indent=1))
    if differ:
        sys.exit(f"search: {differ} categories differ from the published files")


if __name__ == "__main__":
    main()
