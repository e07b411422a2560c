"""Tokenize documents into megatron-core indexed datasets (.bin/.idx) and merge shards.

One shard job: ``build_shard`` tokenizes the documents ``i % num_shards == k`` with the corpus tokenizer and writes
``shards/shard-{k:05d}.bin/.idx`` through megatron-core's ``IndexedDatasetBuilder`` (one sequence per document, the
document followed by the EOD token). ``merge_shards`` concatenates shards 0..N-1 with ``IndexedDatasetBuilder.add_index``
into ``{corpus}_text_document.bin/.idx`` and writes manifest.json and config.json. Every file is written under a
temporary name and renamed, so a killed job leaves nothing that looks complete.
"""

from __future__ import annotations

import os
import platform
import tempfile
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from pretrainflow.corpora.spec import UINT16_VOCAB_LIMIT, CorpusSpec
from pretrainflow.corpora.tokenizer import load_tokenizer, special_ids
from pretrainflow.errors import PretrainflowError
from pretrainflow.io import atomic_write_json, config_hash, sha256_file
from pretrainflow.provenance import config_record

ENCODE_BATCH = 512  # documents per encode_batch call (the Rust tokenizer parallelises inside a batch)


def token_dtype(vocab_size: int):
    """uint16 (2 bytes/token) when ids fit, else int32: a 1 B-token corpus is 2 GB instead of 4 GB."""
    import numpy

    return numpy.uint16 if vocab_size <= UINT16_VOCAB_LIMIT else numpy.int32


def _batches(items: Iterable[str], size: int):
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch


def _publish(tmp_prefix: Path, prefix: Path) -> None:
    # .bin first, then .idx: readers (and Snakemake) look for the .idx, so it appears only when both are complete.
    os.replace(f"{tmp_prefix}.bin", f"{prefix}.bin")
    os.replace(f"{tmp_prefix}.idx", f"{prefix}.idx")


def write_indexed(documents: Iterable[str], tokenizer_path: str | Path, prefix: str | Path) -> dict[str, int]:
    """Tokenize ``documents`` into ``prefix``.bin/.idx; returns {"documents": n, "tokens": m} (tokens include EODs)."""
    import torch
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    tokenizer = load_tokenizer(tokenizer_path)
    eod, _ = special_ids(tokenizer)
    dtype = token_dtype(tokenizer.get_vocab_size())
    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    tmp_prefix = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.", dir=prefix.parent)) / prefix.name
    counts = {"documents": 0, "tokens": 0}
    try:
        builder = IndexedDatasetBuilder(f"{tmp_prefix}.bin", dtype=dtype)
        for batch in _batches(documents, ENCODE_BATCH):
            for encoding in tokenizer.encode_batch(batch):
                ids = [*encoding.ids, eod]
                builder.add_document(torch.tensor(ids, dtype=torch.int64), [len(ids)])
                counts["documents"] += 1
                counts["tokens"] += len(ids)
        builder.finalize(f"{tmp_prefix}.idx")
        _publish(tmp_prefix, prefix)
    finally:
        for suffix in (".bin", ".idx"):
            Path(f"{tmp_prefix}{suffix}").unlink(missing_ok=True)
        tmp_prefix.parent.rmdir()
    return counts


def build_shard(spec: CorpusSpec, shard: int, tokenizer_path: str | Path, prefix: str | Path) -> dict[str, int]:
    """Tokenize shard ``shard`` of ``spec`` into ``prefix``.bin/.idx."""
    from pretrainflow.corpora.sources import iter_shard

    counts = write_indexed(iter_shard(spec.source, shard, spec.num_shards), tokenizer_path, prefix)
    if counts["documents"] == 0:
        raise PretrainflowError(f"corpora.{spec.name}: shard {shard} of {spec.num_shards} has no documents")
    return counts


def merge_shards(
    spec: CorpusSpec, shard_prefixes: Sequence[str | Path], tokenizer_path: str | Path, out_dir: str | Path
):
    """Concatenate shard datasets (in the given order) into ``out_dir/{name}_text_document`` + manifest + config."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir / spec.prefix_name
    tokenizer = load_tokenizer(tokenizer_path)
    dtype = token_dtype(tokenizer.get_vocab_size())
    tmp_prefix = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.", dir=out_dir)) / prefix.name
    try:
        builder = IndexedDatasetBuilder(f"{tmp_prefix}.bin", dtype=dtype)
        for shard in shard_prefixes:
            if not Path(f"{shard}.idx").is_file():
                raise PretrainflowError(f"{shard}.idx: shard index not found")
            builder.add_index(str(shard))
        builder.finalize(f"{tmp_prefix}.idx")
        _publish(tmp_prefix, prefix)
    finally:
        for suffix in (".bin", ".idx"):
            Path(f"{tmp_prefix}{suffix}").unlink(missing_ok=True)
        tmp_prefix.parent.rmdir()
    dataset = IndexedDataset(str(prefix))
    manifest = _manifest(spec, prefix, tokenizer_path, len(dataset), int(dataset.sequence_lengths.sum()))
    atomic_write_json(out_dir / "config.json", config_record(spec.raw))
    atomic_write_json(out_dir / "manifest.json", manifest)
    return manifest


def _manifest(spec: CorpusSpec, prefix: Path, tokenizer_path, documents: int, tokens: int) -> dict[str, Any]:
    files = {
        "bin": sha256_file(f"{prefix}.bin"),
        "idx": sha256_file(f"{prefix}.idx"),
        "tokenizer": sha256_file(tokenizer_path),
    }
    return {
        "corpus": spec.name,
        "prefix": prefix.name,
        "documents": documents,
        "tokens": tokens,  # including one EOD per document
        "num_shards": spec.num_shards,
        "sha256": files,
        # One checksum for result rows: changes whenever the token stream or the tokenizer changes.
        "checksum": config_hash(files),
        # The default corpus is a function of the interpreter's standard library: record which one.
        "python": platform.python_version(),
        "config_hash": config_hash(spec.raw),
    }
