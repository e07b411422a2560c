"""The member offset index of a shard, written beside it at render time so that readers skip the scan of the tar.

    shards/shard-00000.tar       the shard (shards.py)
    shards/shard-00000.tar.idx   its index: canonical JSON
        {"version": 1, "tar": {"name", "bytes", "sha256"}, "header": {...ShardHeader...},
         "samples": [[key, label, offset, size, ext], ...]}      (tar order; offset = first byte of the image data)

One sidecar per shard rather than one index per dataset: each shard is its own render job (its own retry; packed into
node-sized groups on clusters), and the job that writes the tar knows every offset already, so it writes the index
without parsing the tar again (it reads it back once for its sha256) and with no gather step; node-local staging copies
a shard and its index together. The index of a 1,000-image FractalDB shard at 362 px (a 14 MB tar) is 39 kB and took
43 ms to write here, next to about 20 s of rendering.

Trust comes from the manifest: ``datasets manifest`` scans every tar once (as it always did), checks the index
against that scan and records the index's sha256 (manifest.py). A reader (``shard_samples``) then takes the index only
when the manifest lists it, after checking that its sha256 matches, that it describes the tar the manifest lists
(sha256, bytes) and that the tar's member headers at the first and last indexed images name those images: two reads
of 512 bytes per shard, where the scan reads two headers and one label per image (about a minute per rank for
FractalDB-1k on a shared file system). A shard whose manifest entry lists no index (rendered before indexes existed)
is scanned as before; a listed index that does not match is an error naming the shard, never a silent fallback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from pretrainflow.datasets import shards as sh
from pretrainflow.errors import PretrainflowError
from pretrainflow.io import atomic_write_text, canonical_json, sha256_file

INDEX_VERSION = 1
INDEX_SUFFIX = ".idx"
_BLOCK = 512  # tar header and data blocks


def index_path(shard_path: str | os.PathLike) -> Path:
    """``shards/shard-00000.tar`` -> ``shards/shard-00000.tar.idx``."""
    path = Path(shard_path)
    return path.with_name(path.name + INDEX_SUFFIX)


def write_index(shard_path: str | os.PathLike, header: sh.ShardHeader, samples: Sequence[sh.Sample]) -> Path:
    """Write the index of the finished tar ``shard_path`` beside it (atomically); returns its path."""
    path = Path(shard_path)
    record = {
        "version": INDEX_VERSION,
        "tar": {"name": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)},
        "header": {key: getattr(header, key) for key in header.__slots__},
        "samples": [[s.key, s.label, s.offset, s.size, s.ext] for s in samples],
    }
    out = index_path(path)
    atomic_write_text(out, canonical_json(record))
    return out


def load_index(path: str | os.PathLike) -> tuple[dict, list[sh.Sample]]:
    """The index record and its samples; raise naming the file when it is not an index this version reads."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
        if record.get("version") != INDEX_VERSION:
            raise ValueError(f"version {record.get('version')!r}, expected {INDEX_VERSION}")
        samples = [
            sh.Sample(key=str(key), label=int(label), offset=int(offset), size=int(size), ext=str(ext))
            for key, label, offset, size, ext in record["samples"]
        ]
        tar = record["tar"]
        if not isinstance(tar.get("bytes"), int) or not isinstance(tar.get("sha256"), str):
            raise ValueError(f"tar: expected its bytes and sha256, got {tar!r}")
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PretrainflowError(f"{path}: not a readable shard index ({err}); render its shard again") from err
    return record, samples


def check_index_matches_scan(shard_path: Path, scanned: Sequence[sh.Sample], tar_sha256: str) -> None:
    """The index beside ``shard_path`` describes this very tar (sha256) and equals the scan ``scanned`` of it."""
    path = index_path(shard_path)
    record, samples = load_index(path)
    if record["tar"]["sha256"] != tar_sha256:
        raise PretrainflowError(
            f"{path}: indexes another version of {shard_path.name} (tar sha256 {record['tar']['sha256'][:12]}, the "
            f"file has {tar_sha256[:12]}); render the shard again"
        )
    if list(samples) != list(scanned):
        first = next((i for i, (a, b) in enumerate(zip(samples, scanned, strict=False)) if a != b), None)
        where = f"at sample {first}" if first is not None else f"{len(samples)} samples, the tar has {len(scanned)}"
        raise PretrainflowError(f"{path}: does not match the members of {shard_path.name} ({where})")


def shard_samples(root: Path, entry: Mapping) -> list[sh.Sample]:
    """The samples of the manifest entry ``entry`` of the dataset in ``root``: from the index the manifest lists
    (checked against the manifest and, cheaply, against the tar), else from a scan of the tar."""
    path = root / entry["name"]
    listed = entry.get("index")
    if not listed:
        return sh.index_shard(path)[1]
    idx = root / listed["name"]
    if not idx.is_file():
        raise PretrainflowError(f"{idx}: the index of {path.name} is listed in the manifest but missing")
    if sha256_file(idx) != listed["sha256"]:
        raise PretrainflowError(f"{idx}: sha256 differs from the manifest (the index of {path.name} is corrupt)")
    record, samples = load_index(idx)
    if record["tar"]["sha256"] != entry["sha256"] or record["tar"]["bytes"] != entry["bytes"]:
        raise PretrainflowError(f"{idx}: indexes another version of {path.name} than the manifest lists")
    if not path.is_file():
        raise PretrainflowError(f"{path}: listed in the manifest but missing")
    if path.stat().st_size != entry["bytes"]:
        raise PretrainflowError(f"{path}: {path.stat().st_size} bytes, the manifest says {entry['bytes']}")
    _check_member_headers(path, [samples[0], samples[-1]] if samples else [])
    return samples


def _check_member_headers(path: Path, samples: Sequence[sh.Sample]) -> None:
    """The tar header block just before each sample's data names that sample's file and size (ustar fields: name at
    bytes 0-99, size in octal at 124-135). Our member names are short ASCII, so no PAX record replaces them."""
    with open(path, "rb") as handle:
        for sample in samples:
            block = os.pread(handle.fileno(), _BLOCK, sample.offset - _BLOCK) if sample.offset >= _BLOCK else b""
            name = block[:100].split(b"\0", 1)[0].decode("ascii", "replace")
            try:
                size = int(block[124:136].split(b"\0", 1)[0].strip() or b"x", 8)
            except ValueError:
                size = -1
            if name != f"{sample.key}.{sample.ext}" or size != sample.size:
                raise PretrainflowError(
                    f"{path}: does not match its index at byte {sample.offset} (expected member "
                    f"{sample.key}.{sample.ext} of {sample.size} bytes, found {name!r} of {size}); render the shard again"
                )
