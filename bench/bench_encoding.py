"""Where shard writing spends its time, per family: drawing, PNG encoding, and the whole shard (tar included).

    .venv/bin/python bench/bench_encoding.py                  # FractalDB, VisualAtom, RCDB at the published sizes
    .venv/bin/python bench/bench_encoding.py --compare        # + size / speed of other encoders on the same images
    .venv/bin/python bench/bench_encoding.py --families rcdb --classes 4 --instances 128 --rounds 5

Each family renders at its published size with its default (published) parameters: FractalDB 362 px, 200,000 points,
patch_gray, 1,000 instances per category (the released layout, so a category's point sets are shared as in a real
shard); VisualAtom and RCDB 512 px. One shard per category, as FractalDB-1k's render jobs write them. Categories are
the released data sets' first ones, drawn as the published scripts draw them (FractalDB: our search, which reproduces
the published search; VisualAtom, RCDB: published_categories.py replays the scripts' random stream), so the figures
are comparable with the published ones; ``--categories ours|FILE`` draws our search's or a file's. Neither is timed.
One process, one thread; every figure is images per CPU-second of this process (``time.process_time``), the median
over ``--rounds`` rounds, so other jobs on a shared machine inflate it far less than wall time would.

Columns: ``draw`` = ``family.render`` alone; ``encode`` = ``shards.encode_image`` alone (ms per image, on the images just
drawn); ``as pub.`` = drawing + encoding exactly as the published scripts do (RGB PNG at Pillow's default level, one
file per image written to disk): the figure to set beside a published one; ``shard`` = ``build.render_shard`` as the
render jobs run it (drawing, degenerate check, encoding, tar written to disk, its offset index): the figure for "own
shard format, encoding included". ``rest`` = shard - draw - encode (tar, checks; the difference of two passes, so noise
can make it negative). ``tar KiB/img``: the shard file's size per image. FractalDB's cached point sets are cleared
before each timed pass, so every pass pays for them. ``bench_table.py`` prints these figures as the README's table.

Ratios are against the published generators' figures as RECORDED beside ours on this machine type (issue 14; printed
with machine and date), never measured by this bench; GOAL is issue 14's goal for the shard figure.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
import zlib
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import published_categories  # noqa: E402  (bench/ is the script's directory)
from published import RENDER, encode_as_published  # noqa: E402

from pretrainflow.datasets import fractaldb, resolve  # noqa: E402
from pretrainflow.datasets import shards as sh  # noqa: E402
from pretrainflow.datasets.build import render_shard  # noqa: E402

SIZE = {"fractaldb": 362, "visualatom": 512, "rcdb": 512}
# Default classes x instances per family; one shard per category, as FractalDB-1k's render jobs write them.
LAYOUT = {"fractaldb": (2, 1000), "visualatom": (8, 64), "rcdb": (8, 64)}
PUBLISHED = RENDER  # recorded beside ours, never measured here
GOAL = {"fractaldb": 400.0, "visualatom": 25.0, "rcdb": 10.0}  # issue 14: shard figure / published figure
COMPARE_IMAGES = 64  # per family for --compare: enough for stable sizes, cheap next to the timed passes


def setup(family: str, classes: int, instances: int, categories_from: str | Path = "published"):
    """Spec, family, params and categories. ``categories_from``: "published" = the released data set's first
    categories as the published script draws them (VisualAtom, RCDB: published_categories.py; FractalDB's search is the
    published search), "ours" = our search, or a CSV / parquet file of category parameters."""
    spec, fam, params = resolve(
        {"name": "bench", "family": family, "num_classes": classes, "instances_per_class": instances,
         "image_size": SIZE[family], "num_shards": classes, "seed": 0, "params": {}},
        "bench",
    )  # fmt: skip
    categories = fam.search(spec, params)
    if categories_from == "published" and family in published_categories.FAMILIES:
        categories = published_categories.published(family, classes, params=params)
    elif categories_from not in ("published", "ours"):
        categories = published_categories.from_file(Path(categories_from), categories)
    sh.encode_image(fam.render(spec, params, categories.to_dict("records")[0], 0), "png")  # warm imports, not counted
    return spec, fam, params, categories


def one_round(spec, fam, params, categories, out: Path, keep: int) -> tuple[dict, list[np.ndarray]]:
    """CPU seconds of drawing, of our encoding, of render_shard, and of drawing + saving as published, summed over the
    shards; ``keep`` images drawn.

    Per shard, three passes: one draws and encodes its images as our shards store them (timed apart); render_shard
    writes the same shard; one draws each image and saves it as the published scripts do (RGB PNG at Pillow's default
    level, one file per image beside ``out``), timed as a whole, as their loop runs. A pass of its own, so Pillow's
    encoder does not evict the drawing's data between the timed draws of the first pass. The passes alternate shard by
    shard, so a burst of load elsewhere hits them alike."""
    rows = categories.to_dict("records")
    total = {"draw": 0.0, "encode": 0.0, "published": 0.0, "shard": 0.0, "bytes": 0}
    kept = []
    for shard in range(spec.num_shards):
        fractaldb._category_coverages.cache_clear()  # each pass pays for its categories' point sets, as a job does
        for index in sh.shard_range(spec, shard):
            class_id, instance = divmod(index, spec.instances_per_class)
            t0 = time.process_time()
            image = fam.render(spec, params, rows[class_id], instance)
            t1 = time.process_time()
            sh.encode_image(image, "png")
            total["draw"] += t1 - t0
            total["encode"] += time.process_time() - t1
            if index % max(1, spec.num_images // keep) == 0 and len(kept) < keep:  # spread over the categories
                kept.append(image)
        fractaldb._category_coverages.cache_clear()
        t0 = time.process_time()
        render_shard(spec, fam, params, categories, shard, out)
        total["shard"] += time.process_time() - t0
        total["bytes"] += out.stat().st_size
        fractaldb._category_coverages.cache_clear()
        t0 = time.process_time()
        for index in sh.shard_range(spec, shard):
            class_id, instance = divmod(index, spec.instances_per_class)
            image = fam.render(spec, params, rows[class_id], instance)
            encode_as_published(image, out.with_name(f"{class_id:05d}_{instance:04d}.png"))  # one file per image
        total["published"] += time.process_time() - t0
    return total, kept


def encoders() -> dict:
    """Lossless PNG encoders to compare: name -> (image -> bytes). Optional packages only when installed."""
    from PIL import Image

    def pillow(level: int, rgb: bool = False):
        def encode(image):
            buffer = io.BytesIO()
            if rgb and image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            Image.fromarray(image).save(buffer, format="PNG", compress_level=level)
            return buffer.getvalue()

        return encode

    def own(compress):
        return lambda image: sh.encode_png(image, compress)

    found = {
        "Pillow RGB level 6 (published)": pillow(6, rgb=True),
        "Pillow gray level 1 (before)": pillow(1),
        "filter 0 + zlib 1 (stdlib)": own(lambda data: zlib.compress(data, 1)),
    }
    for name, module, call in (
        ("filter 0 + zlib-ng 1", "zlib_ng.zlib_ng", lambda m: lambda data: m.compress(data, 1)),
        ("filter 0 + libdeflate 1", "deflate", lambda m: lambda data: m.zlib_compress(data, 1)),
    ):
        try:
            found[name] = own(call(__import__(module, fromlist=["_"])))
        except ImportError:
            print(f"(--compare: {module} not installed; `.venv/bin/pip install {module.split('.')[0]}` to include it)")
    found[f"filter 0 + ISA-L {sh.PNG_DEFLATE_LEVEL} (chosen)"] = lambda image: sh.encode_image(image, "png")
    return found


def compare(images: dict[str, list[np.ndarray]], rounds: int) -> None:
    """Size and encoding speed of each encoder on the same images; every encoding decoded and checked equal."""
    table = encoders()
    print(f"\nencoders ({rounds} rounds, median ms per image of CPU time; KiB per image; each output decoded by Pillow "
          "and checked pixel-identical)")  # fmt: skip
    print(f"{'encoder':<34}" + "".join(f"{f + ' ms':>15}{'KiB':>8}" for f in images))
    for name, encode in table.items():
        cells = ""
        for family, batch in images.items():
            times = []
            for _ in range(rounds):
                t0 = time.process_time()
                outputs = [encode(image) for image in batch]
                times.append((time.process_time() - t0) / len(batch))
            for image, data in zip(batch, outputs, strict=True):
                decoded = sh.decode_image(data, "png")
                if decoded.ndim == 3 and image.ndim == 2:  # the published format stores gray as R = G = B
                    image = np.repeat(image[:, :, None], 3, axis=2)
                if not np.array_equal(decoded, image):
                    raise SystemExit(f"{name}: decoded {family} pixels differ from the drawn image")
            kib = sum(map(len, outputs)) / len(outputs) / 1024
            cells += f"{statistics.median(times) * 1000:>15.3f}{kib:>8.1f}"
        print(f"{name:<34}{cells}", flush=True)


def measure(family: str, classes: int, instances: int, rounds: int, categories_from: str | Path, tmp: Path) -> dict:
    """Images per CPU-second of one family, medians over ``rounds`` rounds of ``one_round``: ``draw`` (drawing only),
    ``as_published`` (drawing + the published encoding, file written), ``shard`` (our render jobs' shards); with
    ``encode_ms`` (ours), ``rest_ms`` (shard - draw - encode), ``tar_kib`` per image and ``kept`` images."""
    spec, fam, params, categories = setup(family, classes, instances, categories_from)
    runs = []
    for _ in range(rounds):
        run, kept = one_round(spec, fam, params, categories, tmp / "shard.tar", COMPARE_IMAGES)
        runs.append(run)
    n = spec.num_images
    med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return {
        "family": family, "size": spec.image_size, "images": n, "categories": categories, "kept": kept,
        "draw": n / med["draw"], "as_published": n / med["published"], "shard": n / med["shard"],
        "encode_ms": med["encode"] / n * 1000, "rest_ms": (med["shard"] - med["draw"] - med["encode"]) / n * 1000,
        "tar_kib": med["bytes"] / n / 1024,
    }  # fmt: skip


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options this bench shares with bench_table.py."""
    parser.add_argument("--families", nargs="+", default=list(SIZE), choices=list(SIZE))
    parser.add_argument("--classes", type=int, help="categories per family (default: per family, see LAYOUT)")
    parser.add_argument("--instances", type=int, help="instances per category (default: per family, see LAYOUT)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--categories", default="published", metavar="published|ours|FILE",
                        help="categories drawn: the released data set's first ones as the published scripts draw them "
                        "(default), our search's, or a CSV / parquet file of category parameters (our column names)")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--compare", action="store_true", help="also compare encoders (size / speed table)")
    args = parser.parse_args()
    print(f"{'family':<11}{'px':>4}{'images':>7}{'draw img/s':>11}{'encode ms':>10}{'rest ms':>8}{'shard img/s':>12}"
          f"{'tar KiB/img':>12}{'as pub.':>8}{'draw x':>8}{'shard x':>8}{'pub. x':>7}{'goal x':>7}"
          "  published (recorded)")  # fmt: skip
    kept = {}
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            classes = args.classes or LAYOUT[family][0]
            instances = args.instances or LAYOUT[family][1]
            r = measure(family, classes, instances, args.rounds, args.categories, Path(tmp))
            kept[family] = r["kept"]
            published = PUBLISHED[family].value
            print(f"{family:<11}{r['size']:>4}{r['images']:>7}{r['draw']:>11.1f}{r['encode_ms']:>10.3f}"
                  f"{r['rest_ms']:>8.3f}{r['shard']:>12.1f}{r['tar_kib']:>12.1f}{r['as_published']:>8.1f}"
                  f"{r['draw'] / published:>7.0f}x{r['shard'] / published:>7.0f}x{r['as_published'] / published:>6.0f}x"
                  f"{GOAL[family]:>6.0f}x  {PUBLISHED[family]}", flush=True)  # fmt: skip
    if args.compare:
        compare(kept, args.rounds)


if __name__ == "__main__":
    main()
