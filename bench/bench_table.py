"""The README's generator-speed table: ours beside the published generators, like for like, in one command.

    .venv/bin/python bench/bench_table.py                                    # about 5 CPU minutes on one core
    .venv/bin/python bench/bench_table.py --rounds 1 --classes 2 --instances 16 --search 2   # a quick look

Rows: FractalDB (362 px, 200,000 points, patch_gray), VisualAtom and RCDB (512 px), measured by
``bench_encoding.measure`` over the released data sets' first categories drawn as the published scripts draw them;
then the FractalDB category search of the first ``--search`` categories (``bench_fractaldb.bench_search``, checked
against the published category files when ../shared/reference-data is there). Columns:

- published: the published generator's figure as RECORDED beside ours on this machine type (published.py; machine and
  date printed), never measured here;
- same PNG as published: drawing + encoding exactly as the published scripts do (RGB PNG at Pillow's default level,
  one file per image written to disk);
- own shard format: our render jobs' shards (drawing, degenerate check, our PNG encoding, tar and index on disk);
- drawing only.

Every figure is images (or search seconds) per CPU-second of this one process (``time.process_time``), the median of
``--rounds`` rounds; the date, the CPU and the load average before and after are printed with the table, since other
work on the machine still slows a process down (caches, memory bandwidth) even when it does not take its CPU time.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import bench_encoding  # noqa: E402  (bench/ is the script's directory)
import bench_fractaldb  # noqa: E402
from published import RENDER, SEARCH  # noqa: E402

LABEL = {
    "fractaldb": "FractalDB 362 px, 200k points",
    "visualatom": "VisualAtom 512 px",
    "rcdb": "RCDB 512 px",
}
SEARCH_GOAL = 20.0  # issue 14: search >= 20x at every size from 20 categories up


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load() -> str:
    return " / ".join(f"{x:.1f}" for x in os.getloadavg())


def cell(rate: float, published: float) -> str:
    return f"{rate:,.1f} ({rate / published:,.0f}x)" if rate < 100 else f"{rate:,.0f} ({rate / published:,.0f}x)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bench_encoding.add_arguments(parser)
    parser.add_argument("--search", type=int, default=20, help="categories searched for the search row (0: none)")
    args = parser.parse_args()
    started, load_before = datetime.datetime.now(datetime.UTC), load()
    search = None
    if args.search:  # first: the search's module import is part of its cost, before anything else imports it
        verify = bench_fractaldb.PUBLISHED_CATEGORIES if bench_fractaldb.PUBLISHED_CATEGORIES.is_dir() else None
        differ, search = bench_fractaldb.bench_search(args.search, verify, bench_fractaldb.import_search_cpu(), None)
        if differ:
            raise SystemExit(f"search: {differ} categories differ from the published files")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            classes = args.classes or bench_encoding.LAYOUT[family][0]
            instances = args.instances or bench_encoding.LAYOUT[family][1]
            r = bench_encoding.measure(family, classes, instances, args.rounds, args.categories, Path(tmp))
            rows.append(r)
            print(f"{family}: {r['images']} images, drawing {r['draw']:.1f}, as published {r['as_published']:.1f}, "
                  f"own shards {r['shard']:.1f} images per CPU-second", flush=True)  # fmt: skip
    print(f"\nRun {started:%Y-%m-%d %H:%M} UTC on {cpu_model()} ({os.cpu_count()} cores; load average 1/5/15 min "
          f"{load_before} before, {load()} after); images per CPU-second of one process, median of {args.rounds} "
          f"rounds; categories: {args.categories}. Published figures as recorded on {RENDER['fractaldb'].machine}, "
          f"{RENDER['fractaldb'].date} (not measured by this run); ratios = ours / published.\n")  # fmt: skip
    print(
        "| family | published (recorded) | ours, same PNG as published | ours, own shard format | ours, drawing only |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        published = RENDER[r["family"]].value
        classes = len(r["categories"])
        print(
            f"| {LABEL[r['family']]} ({classes} x {r['images'] // classes:,}) | {published:g} images/s | "
            f"{cell(r['as_published'], published)} | {cell(r['shard'], published)} | {cell(r['draw'], published)} |"
        )
    if search is not None:
        print(f"| FractalDB search, first {args.search} categories | {SEARCH.value:g} s/category | "
              f"{search:.3f} s/category ({SEARCH.value / search:.0f}x) | | |")  # fmt: skip
    goals = [f"{LABEL[r['family']]} {r['shard'] / RENDER[r['family']].value:.0f}x / {bench_encoding.GOAL[r['family']]:.0f}x"
             for r in rows]  # fmt: skip
    if search is not None:
        goals.append(f"search {SEARCH.value / search:.0f}x / {SEARCH_GOAL:.0f}x")
    print("\nGoals (issue 14; own shard format, search): measured / goal: " + "; ".join(goals))


if __name__ == "__main__":
    main()
