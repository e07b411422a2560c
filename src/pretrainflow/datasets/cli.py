"""``pretrainflow datasets ...``: the commands the dataset rules call (one per stage step) and two for people.

    pretrainflow datasets search --spec JSON --out results/datasets/D/categories.parquet
    pretrainflow datasets render-shard --spec JSON --categories categories.parquet --shard 3 --out shards/shard-00003.tar
    pretrainflow datasets manifest --spec JSON --shards shards/*.tar --out results/datasets/D/manifest.json
    pretrainflow datasets verify results/datasets/D
    pretrainflow datasets preview --family fractaldb --out docs/previews/fractaldb.png
    pretrainflow datasets build --spec JSON --out results/datasets/D      # all of the above in one process

``--spec`` is the dataset spec as JSON text, or ``@path`` to a JSON file.
"""

from __future__ import annotations

import sys
from pathlib import Path


def _spec_arg(text: str):
    """``--spec`` value: JSON text, or ``@path`` of a JSON file (read here)."""
    from pretrainflow.io import read_json

    return read_json(text[1:]) if text.startswith("@") else text


def _spec(text: str):
    from pretrainflow.datasets.spec import resolve

    return resolve(_spec_arg(text))


def cmd_search(args) -> None:
    from pretrainflow.datasets.build import search_categories
    from pretrainflow.datasets.categories import write_categories

    ds, family, params = _spec(args.spec)
    df = search_categories(ds, family, params, progress=True)
    write_categories(df, ds, params, args.out)
    print(f"{ds.name}: {len(df)} categories -> {args.out}", file=sys.stderr)


def cmd_render_shard(args) -> None:
    from pretrainflow.datasets.build import render_shard
    from pretrainflow.datasets.categories import read_categories
    from pretrainflow.datasets.spec import resolved_dict

    ds, family, params = _spec(args.spec)
    categories = read_categories(args.categories, resolved_dict(ds, params))
    header = render_shard(ds, family, params, categories, args.shard, args.out, progress=True)
    print(
        f"{ds.name}: shard {args.shard}: {header.count} images ({len(header.degenerate)} degenerate) -> {args.out}",
        file=sys.stderr,
    )


def cmd_manifest(args) -> None:
    from pretrainflow.datasets.manifest import build_manifest

    manifest = build_manifest(_spec_arg(args.spec), args.shards, args.out, args.categories)
    print(
        f"{manifest['spec']['name']}: {manifest['num_images']} images in {len(manifest['shards'])} shards, "
        f"{manifest['degenerate']} degenerate, checksum {manifest['dataset_checksum'][:16]}",
        file=sys.stderr,
    )


def cmd_verify(args) -> None:
    from pretrainflow.datasets.manifest import verify_dataset

    manifest = verify_dataset(args.dir, progress=True)
    print(
        f"{args.dir}: OK ({manifest['num_images']} images, {len(manifest['shards'])} shards, "
        f"checksum {manifest['dataset_checksum']})"
    )


def cmd_preview(args) -> None:
    from pretrainflow.datasets.preview import preview_spec, write_preview
    from pretrainflow.errors import ConfigError

    if (args.spec is None) == (args.family is None):
        raise ConfigError("preview: give exactly one of --spec JSON or --family NAME")
    if args.spec is not None:
        spec = _spec_arg(args.spec)
    else:
        spec = preview_spec(args.family, args.classes, args.instances, args.size)
    write_preview(spec, args.out, args.classes, args.instances)
    print(f"preview -> {args.out}", file=sys.stderr)


def cmd_build(args) -> None:
    from pretrainflow.datasets.build import build_dataset

    manifest = build_dataset(_spec_arg(args.spec), args.out, progress=True)
    print(f"{args.out}: {manifest['num_images']} images, checksum {manifest['dataset_checksum'][:16]}", file=sys.stderr)


def add_commands(subparsers) -> None:
    """Register ``datasets`` and its subcommands on the top-level parser."""
    group = subparsers.add_parser("datasets", help="formula-driven synthetic datasets: search, render, verify")
    sub = group.add_subparsers(dest="datasets_command", required=True, metavar="<step>")
    spec_help = "dataset spec: JSON text or @file.json"

    p = sub.add_parser("search", help="category search -> categories.parquet")
    p.add_argument("--spec", required=True, help=spec_help)
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_search)

    p = sub.add_parser("render-shard", help="render one tar shard (WebDataset layout)")
    p.add_argument("--spec", required=True, help=spec_help)
    p.add_argument("--categories", required=True, type=Path)
    p.add_argument("--shard", required=True, type=int, help="shard index, 0 .. num_shards-1")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_render_shard)

    p = sub.add_parser("manifest", help="check shards and write manifest.json + config.json")
    p.add_argument("--spec", required=True, help=spec_help)
    p.add_argument("--shards", required=True, nargs="+", type=Path)
    p.add_argument("--categories", type=Path, default=None, help="default: categories.parquet next to --out")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_manifest)

    p = sub.add_parser("verify", help="check a dataset directory against its manifest")
    p.add_argument("dir", type=Path)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("preview", help="contact sheet PNG (categories x instances)")
    p.add_argument("--spec", default=None, help=spec_help)
    p.add_argument("--family", default=None, help="a registered family, shown with its published parameters")
    p.add_argument("--classes", type=int, default=6)
    p.add_argument("--instances", type=int, default=8)
    p.add_argument("--size", type=int, default=128, help="image size for --family (pixels)")
    p.add_argument("--out", required=True, type=Path)
    p.set_defaults(func=cmd_preview)

    p = sub.add_parser("build", help="search + every shard + manifest into one directory, in this process")
    p.add_argument("--spec", required=True, help=spec_help)
    p.add_argument("--out", required=True, type=Path, help="dataset directory")
    p.set_defaults(func=cmd_build)
