"""Tar shards in WebDataset layout: what each shard holds, how it is written and read.

Layout (readable by ``webdataset``/``tar`` as is)::

    shards/shard-00000.tar
        00000_000000.png   image of class 0, instance 0 (8-bit gray or RGB PNG; or .npy with image_format: npy)
        00000_000000.cls   its label as ASCII decimal ("0")
        00000_000001.png
        ...

A sample key is ``{class:05d}_{instance:06d}`` (no dots, as WebDataset requires). Images are in class-major order
(class 0 instances 0..n-1, class 1, ...) and shard k of K holds the global indices ``[k*T//K, (k+1)*T//K)`` of the
T = num_classes * instances_per_class images: a deterministic slice, so a shard never depends on how many jobs ran.
Class-major slices keep one category's instances together, which is what makes rendering fast (a category's point sets
are computed once per shard). Readers that stream shards should shuffle with a buffer.

Each tar carries a PAX global header ``pretrainflow`` (JSON: shard, num_shards, first, count, degenerate keys) that tar
readers ignore. Member headers are normalised (mtime 0, uid/gid 0, mode 0644) so equal pixels give equal bytes (with
the same isal version: see ``encode_png``).

The PNGs are ordinary 8-bit gray (one-channel families) or RGB files that any viewer opens; ``encode_png`` writes them
itself (filter None on every row, ISA-L deflate) because Pillow's encoder cost more than drawing for VisualAtom and RCDB.
"""

from __future__ import annotations

import io
import json
import os
import struct
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pretrainflow.datasets.generic_spec import DatasetSpec
from pretrainflow.errors import PretrainflowError
from pretrainflow.io import atomic_path, canonical_json

# ISA-L level 1: on these images level 0 was no faster and wrote larger files; levels 2-3 saved a few percent of
# the bytes for as much or more time. bench/bench_encoding.py --compare sets it beside Pillow, stdlib zlib, zlib-ng
# and libdeflate on each family's images.
PNG_DEFLATE_LEVEL = 1
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HEADER_KEY = "pretrainflow"


def shard_name(shard: int) -> str:
    return f"shard-{shard:05d}.tar"


def shard_range(spec: DatasetSpec, shard: int) -> range:
    """Global image indices of ``shard``: the deterministic slice [k*T//K, (k+1)*T//K)."""
    total, k = spec.num_images, spec.num_shards
    if not 0 <= shard < k:
        raise PretrainflowError(f"shard: expected a shard index in [0, {k - 1}] for {spec.where}, got {shard}")
    return range(shard * total // k, (shard + 1) * total // k)


def sample_key(class_id: int, instance: int) -> str:
    return f"{class_id:05d}_{instance:06d}"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """One PNG chunk: length, type, data, CRC-32 of type + data (PNG specification, section 5.3)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(image: np.ndarray, compress=None) -> bytes:
    """A standard 8-bit gray (H, W) or RGB (H, W, 3) PNG of the uint8 ``image``, written here rather than by Pillow.

    Every scanline uses filter type 0 (None): FDSL images are flat backgrounds with thin lines or sparse points, which
    deflate's run and match coding compresses well unfiltered, whereas Pillow tries the five filters on every row, which
    costs more than compressing and, on these images, came out larger. The deflate stream comes from ISA-L at level
    ``PNG_DEFLATE_LEVEL`` (``isal.isal_zlib``, zlib-format output: any PNG reader decodes it); its bytes depend on the
    isal version, the pixels never do. ``compress`` (scanline bytes -> zlib stream) replaces ISA-L, for the bench's
    comparisons of deflate implementations.
    """
    if compress is None:
        from isal import isal_zlib  # imported here, like Pillow in decode_image: reading shards does not need it

        def compress(data):
            return isal_zlib.compress(data, PNG_DEFLATE_LEVEL)

    height, width = image.shape[:2]
    channels = 1 if image.ndim == 2 else 3
    scanlines = np.empty((height, 1 + width * channels), dtype=np.uint8)
    scanlines[:, 0] = 0  # filter type None
    scanlines[:, 1:] = image.reshape(height, width * channels)
    header = struct.pack(">IIBBBBB", width, height, 8, 0 if channels == 1 else 2, 0, 0, 0)  # 8 bit, gray or RGB
    return (
        PNG_SIGNATURE
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", compress(scanlines))
        + _png_chunk(b"IEND", b"")
    )


def encode_image(image: np.ndarray, image_format: str) -> bytes:
    """PNG (8-bit gray or RGB, ``encode_png``) or .npy bytes of a uint8 image (H, W) or (H, W, 3)."""
    if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
        raise PretrainflowError(
            f"render returned {image.dtype} {image.shape}; expected a uint8 (H, W) or (H, W, 3) image"
        )
    if image_format == "npy":
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(image), allow_pickle=False)
        return buffer.getvalue()
    return encode_png(image)


def decode_image(data: bytes, ext: str) -> np.ndarray:
    """Inverse of ``encode_image``: uint8 (H, W) or (H, W, 3)."""
    if ext == "npy":
        return np.load(io.BytesIO(data), allow_pickle=False)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:
        return np.array(img)  # a writable copy (torch.from_numpy needs one)


def _member(name: str, data: bytes) -> tuple[tarfile.TarInfo, io.BytesIO]:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info, io.BytesIO(data)


@dataclass(kw_only=True, slots=True)
class ShardHeader:
    """What a shard says about itself (PAX global header)."""

    shard: int
    num_shards: int
    first: int  # global index of the first image
    count: int
    degenerate: list[str]  # keys of images the family's degenerate rule flags (kept, reported in the manifest)
    spec_hash: str = ""  # config_hash of the resolved spec that rendered it: a stale shard is caught by the manifest


def write_shard(
    spec: DatasetSpec,
    family,
    params,
    categories,
    shard: int,
    out: str | os.PathLike,
    progress: bool = False,
    spec_hash: str = "",
) -> tuple[ShardHeader, list[Sample]]:
    """Render shard ``shard`` of ``spec`` into the tar ``out`` (atomically); returns its header and where each image's
    data lies in the tar (known while writing: build.render_shard writes them as the offset index, shard_index.py).
    ``categories``: the search DataFrame."""
    indices = shard_range(spec, shard)
    rows = {int(r["class_id"]): r for r in categories.to_dict("records")}
    if len(rows) != spec.num_classes:
        raise PretrainflowError(f"categories: expected {spec.num_classes} categories for {spec.where}, got {len(rows)}")
    ext = spec.image_format
    members, degenerate, labels = [], [], []
    for index in tqdm(indices, desc=f"{spec.name} {shard_name(shard)}", unit="img", disable=not progress):
        class_id, instance = divmod(index, spec.instances_per_class)
        image = family.render(spec, params, rows[class_id], instance)
        key = sample_key(class_id, instance)
        if family.is_degenerate is not None and family.is_degenerate(image):
            degenerate.append(key)
        members.append(_member(f"{key}.{ext}", encode_image(image, ext)))
        members.append(_member(f"{key}.cls", str(class_id).encode()))
        labels.append((key, class_id))
    header = ShardHeader(
        shard=shard,
        num_shards=spec.num_shards,
        first=indices.start,
        count=len(indices),
        degenerate=degenerate,
        spec_hash=spec_hash,
    )
    pax = {HEADER_KEY: canonical_json({k: getattr(header, k) for k in header.__slots__})}
    data_offsets = []
    with atomic_path(out) as tmp, tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT, pax_headers=pax) as tar:
        for info, data in members:
            tar.addfile(info, data)
            # tar.offset is now the end of this member's data, padded to 512-byte blocks: its data starts that many
            # padded bytes earlier (the same offset_data that index_shard reads back from the header).
            data_offsets.append(tar.offset - -(-info.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE)
    samples = [
        Sample(key=key, label=label, offset=data_offsets[2 * i], size=members[2 * i][0].size, ext=ext)
        for i, (key, label) in enumerate(labels)
    ]
    return header, samples


@dataclass(frozen=True, slots=True)
class Sample:
    """Where one sample's image lives inside a shard file."""

    key: str
    label: int
    offset: int  # byte offset of the image data in the tar
    size: int
    ext: str


def index_shard(path: str | os.PathLike) -> tuple[ShardHeader | None, list[Sample]]:
    """Read a shard's member headers and labels once (no image is decoded or unpacked): header + samples in order."""
    path = Path(path)
    images: dict[str, tuple[int, int, str]] = {}
    labels: dict[str, int] = {}
    try:
        with tarfile.open(path, "r:") as tar:
            raw = tar.pax_headers.get(HEADER_KEY)
            for info in tar:
                if not info.isfile():
                    continue
                key, _, ext = info.name.partition(".")
                if ext == "cls":
                    labels[key] = int(tar.extractfile(info).read().decode().strip())
                else:
                    images[key] = (info.offset_data, info.size, ext)
    except (tarfile.TarError, OSError, ValueError) as err:
        raise PretrainflowError(f"{path}: not a readable dataset shard ({err})") from err
    missing = sorted(set(images) ^ set(labels))
    if missing:
        raise PretrainflowError(f"{path}: sample {missing[0]!r} lacks its image or its .cls label")
    header = ShardHeader(**json.loads(raw)) if raw else None
    samples = [Sample(key=k, label=labels[k], offset=o, size=s, ext=e) for k, (o, s, e) in images.items()]
    return header, samples
