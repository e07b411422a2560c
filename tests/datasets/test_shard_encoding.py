"""The PNG encoding of shard images (shards.encode_png): standard PNG files whose decoded pixels equal the drawn ones.

Every registered family is drawn at its test size and at its published size, written into a shard as the render jobs
write it, and read back as training reads it (member index, one pread, ``decode_image``): the arrays must be equal.
Each file is also read by a small independent reader below (chunk CRCs, zlib, filter bytes), so "standard PNG" does not
rest on Pillow's leniency alone.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np
import pytest
from family_testlib import EXPECTED, family_spec

from pretrainflow.datasets import shards as sh
from pretrainflow.datasets.registry import family_names
from pretrainflow.datasets.spec import resolve
from pretrainflow.errors import PretrainflowError

FAMILIES = family_names()
# Published image sizes (Newton has no publication: the 224 px of its bench). FractalDB's published params (200k
# points, 3x3 patches) and the families' defaults; Newton also in colour mode, whose channels differ.
PUBLISHED = {"fractaldb": 362, "visualatom": 512, "rcdb": 512, "exfractaldb": 224, "newton": 224}
PUBLISHED_PARAMS = [(name, {}) for name in FAMILIES] + [("newton", {"mode": "color"})]


def read_png(data: bytes) -> np.ndarray:
    """An independent PNG reader for what encode_png writes: 8-bit gray or RGB, no interlace, every filter byte 0."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert pos == len(data)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height, depth, color, method, filtering, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, method, filtering, interlace) == (8, 0, 0, 0) and color in (0, 2)
    channels = 1 if color == 0 else 3
    raw = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(height, 1 + width * channels)
    assert not rows[:, 0].any(), "a scanline with a filter other than None"
    return rows[:, 1:].reshape((height, width) if channels == 1 else (height, width, 3))


def assert_round_trip(image: np.ndarray) -> bytes:
    data = sh.encode_image(image, "png")
    decoded = sh.decode_image(data, "png")  # Pillow, as training reads shards
    assert decoded.dtype == np.uint8 and np.array_equal(decoded, image)
    assert np.array_equal(read_png(data), image)
    return data


def shard_images(raw: dict, tmp_path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(drawn, read back) images of a one-shard spec: written by write_shard, read as ShardDataset reads a sample."""
    ds, fam, params = resolve(raw)
    categories = fam.search(ds, params)
    rows = categories.to_dict("records")
    drawn = [fam.render(ds, params, c, i) for c in rows for i in range(ds.instances_per_class)]
    path = tmp_path / sh.shard_name(0)
    sh.write_shard(ds, fam, params, categories, 0, path)
    _, samples = sh.index_shard(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        stored = [os.pread(fd, s.size, s.offset) for s in samples]
    finally:
        os.close(fd)
    read = [sh.decode_image(data, s.ext) for data, s in zip(stored, samples, strict=True)]
    assert all(np.array_equal(read_png(data), image) for data, image in zip(stored, read, strict=True))
    return drawn, read


@pytest.mark.parametrize("family", FAMILIES)
def test_test_size_images_decode_to_the_drawn_pixels(family, tmp_path):
    drawn, read = shard_images(family_spec(family), tmp_path)
    assert len(drawn) == len(read) == EXPECTED[family].num_classes * EXPECTED[family].instances_per_class
    assert all(np.array_equal(a, b) and a.dtype == b.dtype for a, b in zip(drawn, read, strict=True))


@pytest.mark.parametrize(
    ("family", "params"), PUBLISHED_PARAMS, ids=[f"{n}-{p.get('mode', 'default')}" for n, p in PUBLISHED_PARAMS]
)
def test_published_size_images_decode_to_the_drawn_pixels(family, params, tmp_path):
    raw = family_spec(family, image_size=PUBLISHED[family], num_classes=1, instances_per_class=2, params=params)
    drawn, read = shard_images(raw, tmp_path)
    assert len(read) == 2 and drawn[0].shape[:2] == (PUBLISHED[family],) * 2
    assert all(np.array_equal(a, b) for a, b in zip(drawn, read, strict=True))
    if params.get("mode") == "color":  # the RGB path with channels that differ
        assert drawn[0].ndim == 3 and not np.array_equal(drawn[0][..., 0], drawn[0][..., 1])


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((1, 1), np.uint8),
        np.full((7, 3), 255, np.uint8),
        np.random.default_rng(0).integers(0, 256, (33, 65), dtype=np.uint8),  # incompressible
        np.random.default_rng(1).integers(0, 256, (17, 9, 3), dtype=np.uint8),
        np.random.default_rng(2).integers(0, 256, (40, 30), dtype=np.uint8)[::-1, ::2],  # a non-contiguous view
        np.random.default_rng(3).integers(0, 256, (20, 10, 3), dtype=np.uint8).transpose(1, 0, 2),
    ],
    ids=["1x1", "white", "noise-gray", "noise-rgb", "strided-view", "transposed-rgb"],
)
def test_any_uint8_image_round_trips(image):
    assert_round_trip(image)


def test_encoding_is_deterministic_and_npy_unchanged():
    image = np.random.default_rng(4).integers(0, 256, (64, 48), dtype=np.uint8)
    assert sh.encode_image(image, "png") == sh.encode_image(image.copy(), "png")
    assert np.array_equal(sh.decode_image(sh.encode_image(image, "npy"), "npy"), image)


@pytest.mark.parametrize(
    "image",
    [np.zeros((4, 4), np.float32), np.zeros((4, 4, 4), np.uint8), np.zeros((4, 4, 1), np.uint8), np.zeros(4, np.uint8)],
    ids=["float", "rgba", "one-channel-axis", "1d"],
)
def test_other_images_are_refused(image):
    with pytest.raises(PretrainflowError, match=r"expected a uint8 \(H, W\) or \(H, W, 3\) image"):
        sh.encode_image(image, "png")
