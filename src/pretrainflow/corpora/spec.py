"""Typed corpus spec: what `pretrainflow corpora ...` commands receive (one entry of the study's ``corpora`` section).

Example (the default study's corpus)::

    {"name": "pydocs", "source": {"kind": "python-stdlib-docstrings"}, "tokenizer": {"vocab_size": 2048},
     "split": "98,1,1", "seed": 0, "num_shards": 1}

``source.kind`` is one of ``SOURCE_KINDS`` (see sources.py); ``tokenizer`` either trains a byte-level BPE of
``vocab_size`` tokens or loads an existing ``path`` to a Hugging Face tokenizer.json.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pretrainflow.spec_fields import build, integer, one_of, positive_int, safe_name, string

SOURCE_KINDS = ("python-stdlib-docstrings", "jsonl", "text")
# Token ids are stored as uint16 in .bin files below this vocab size (2 bytes/token), int32 above.
UINT16_VOCAB_LIMIT = 65536


@dataclass(kw_only=True, slots=True)
class SourceSpec:
    """Where the documents come from. ``paths`` only for jsonl/text; ``text_key`` is the JSONL field."""

    kind: str
    paths: tuple[str, ...] = ()
    text_key: str = "text"
    max_documents: int | None = None  # cap (after sorting) for quick studies; None = all

    def __post_init__(self) -> None:
        one_of("kind", self.kind, SOURCE_KINDS)
        if not (isinstance(self.paths, list | tuple) and all(isinstance(p, str | os.PathLike) for p in self.paths)):
            raise ValueError(f"paths: expected a list of file paths, got {self.paths!r}")
        self.paths = tuple(str(p) for p in self.paths)
        for i, path in enumerate(self.paths):
            string(f"paths[{i}]", path)
        if self.kind == "python-stdlib-docstrings":
            if self.paths:
                raise ValueError(f"paths: not used with kind python-stdlib-docstrings, got {list(self.paths)!r}")
        elif not self.paths:
            raise ValueError(f"paths: expected at least one file path for kind {self.kind!r}, got []")
        string("text_key", self.text_key)
        if self.max_documents is not None:
            positive_int("max_documents", self.max_documents)


@dataclass(kw_only=True, slots=True)
class TokenizerSpec:
    """Train a byte-level BPE of ``vocab_size`` tokens, or load ``path`` (a Hugging Face tokenizer.json); exactly one
    of the two (checked by ``CorpusSpec``, whose key ``tokenizer`` holds them)."""

    vocab_size: int | None = None
    path: str | None = None
    min_frequency: int = 2
    sample_documents: int | None = None  # train on a seeded uniform sample of this many documents (large corpora)

    def __post_init__(self) -> None:
        positive_int("min_frequency", self.min_frequency)
        if self.sample_documents is not None:
            positive_int("sample_documents", self.sample_documents)
        if self.vocab_size is not None:
            integer("vocab_size", self.vocab_size, 300, 1_000_000)  # 256 byte symbols + the special tokens must fit
        if self.path is not None:
            string("path", self.path)


@dataclass(kw_only=True, slots=True)
class CorpusSpec:
    """One corpus: documents -> tokenizer -> megatron-core indexed dataset, built in ``num_shards`` parallel jobs."""

    name: str
    source: SourceSpec
    tokenizer: TokenizerSpec
    split: str = "98,1,1"
    seed: int = 0
    num_shards: int = 1

    def __post_init__(self) -> None:
        safe_name("name", self.name)
        if not isinstance(self.source, SourceSpec):
            raise ValueError(f"source: expected a mapping with 'kind', got {self.source!r}")
        if not isinstance(self.tokenizer, TokenizerSpec):
            raise ValueError(f"tokenizer: expected a mapping with vocab_size or path, got {self.tokenizer!r}")
        if (self.tokenizer.vocab_size is None) == (self.tokenizer.path is None):
            raise ValueError(
                "tokenizer: expected exactly one of vocab_size (train a BPE) or path (existing tokenizer.json), got "
                f"vocab_size={self.tokenizer.vocab_size!r} and path={self.tokenizer.path!r}"
            )
        parts = self.split.split(",") if isinstance(self.split, str) else []
        if not (len(parts) == 3 and all(p.strip().replace(".", "", 1).isdigit() for p in parts)):
            raise ValueError(f"split: expected 'train,valid,test' weights like '98,1,1', got {self.split!r}")
        weights = [float(p) for p in parts]
        if not (sum(weights) > 0 and weights[1] > 0):
            raise ValueError(f"split: expected a non-zero valid weight, got {self.split!r}")
        positive_int("seed", self.seed, minimum=0)
        integer("num_shards", self.num_shards, 1, 4096)

    @property
    def raw(self) -> dict[str, Any]:
        """The resolved spec as a plain dict (written to config.json, hashed into manifests)."""
        return resolved_dict(self)

    @property
    def prefix_name(self) -> str:
        """File prefix of the merged indexed dataset (megatron convention): ``{name}_text_document``."""
        return f"{self.name}_text_document"


def corpus_from_dict(spec: Mapping[str, Any], where: str = "corpora") -> CorpusSpec:
    """Build a CorpusSpec from a study mapping; errors carry the key path (``corpora.pydocs.tokenizer...``)."""
    return build(CorpusSpec, spec, where, {"source": SourceSpec, "tokenizer": TokenizerSpec})


def resolved_dict(corpus: CorpusSpec) -> dict[str, Any]:
    """The corpus spec with every default filled in: what is hashed and what the rules pass on."""
    source: dict[str, Any] = {"kind": corpus.source.kind}
    if corpus.source.paths:
        source.update(paths=list(corpus.source.paths), text_key=corpus.source.text_key)
    if corpus.source.max_documents is not None:
        source["max_documents"] = corpus.source.max_documents
    tokenizer: dict[str, Any] = (
        {
            "vocab_size": corpus.tokenizer.vocab_size,
            "min_frequency": corpus.tokenizer.min_frequency,
            "sample_documents": corpus.tokenizer.sample_documents,
        }  # fmt: skip
        if corpus.tokenizer.path is None
        else {"path": corpus.tokenizer.path}
    )
    return {
        "name": corpus.name,
        "source": source,
        "tokenizer": tokenizer,
        "split": corpus.split,
        "seed": corpus.seed,
        "num_shards": corpus.num_shards,
    }


def check_corpus(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Typed checks of one corpus entry (called by the study loader); returns the spec with defaults filled in.

    Raises ConfigError naming ``where`` (e.g. ``corpora.pydocs.tokenizer.vocab_size: expected ...``).
    """
    return resolved_dict(corpus_from_dict(spec, where))
