"""Typed corpus spec: what `pretrainflow corpora ...` commands receive (one entry of the study's ``corpora`` section).

Example (the default study's corpus)::

    {"name": "pydocs", "source": {"kind": "python-stdlib-docstrings"}, "tokenizer": {"vocab_size": 2048},
     "split": "98,1,1", "seed": 0, "num_shards": 1}

``source.kind`` is one of ``SOURCE_KINDS`` (see sources.py); ``tokenizer`` either trains a byte-level BPE of
``vocab_size`` tokens or loads an existing ``path`` to a Hugging Face tokenizer.json.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pretrainflow.errors import ConfigError, expect

SOURCE_KINDS = ("python-stdlib-docstrings", "jsonl", "text")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
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
        expect(self.kind in SOURCE_KINDS, "source.kind", f"expected one of {list(SOURCE_KINDS)}, got {self.kind!r}")
        if self.kind == "python-stdlib-docstrings":
            expect(not self.paths, "source.paths", "not used with kind python-stdlib-docstrings")
        else:
            expect(len(self.paths) > 0, "source.paths", f"expected at least one file path for kind {self.kind!r}")
        expect(
            self.max_documents is None or self.max_documents >= 1,
            "source.max_documents",
            f"expected an integer >= 1 or null, got {self.max_documents!r}",
        )


@dataclass(kw_only=True, slots=True)
class TokenizerSpec:
    """Train a byte-level BPE of ``vocab_size`` tokens, or load ``path`` (a Hugging Face tokenizer.json)."""

    vocab_size: int | None = None
    path: str | None = None
    min_frequency: int = 2
    sample_documents: int | None = None  # train on a seeded uniform sample of this many documents (large corpora)

    def __post_init__(self) -> None:
        expect(
            isinstance(self.min_frequency, int)
            and not isinstance(self.min_frequency, bool)
            and self.min_frequency >= 1,
            "tokenizer.min_frequency",
            f"expected an integer >= 1, got {self.min_frequency!r}",
        )
        expect(
            self.sample_documents is None or (isinstance(self.sample_documents, int) and self.sample_documents >= 1),
            "tokenizer.sample_documents",
            f"expected an integer >= 1 or null, got {self.sample_documents!r}",
        )
        expect(
            (self.vocab_size is None) != (self.path is None),
            "tokenizer",
            "expected exactly one of vocab_size (train a BPE) or path (existing tokenizer.json)",
        )
        if self.vocab_size is not None:
            # 256 byte symbols + the special tokens must fit.
            expect(
                isinstance(self.vocab_size, int) and 300 <= self.vocab_size <= 1_000_000,
                "tokenizer.vocab_size",
                f"expected an integer in [300, 1000000], got {self.vocab_size!r}",
            )


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
        expect(bool(_NAME.match(self.name)), "name", f"expected [a-z0-9][a-z0-9_-]*, got {self.name!r}")
        parts = self.split.split(",")
        ok = len(parts) == 3 and all(p.strip().replace(".", "", 1).isdigit() for p in parts)
        expect(ok, "split", f"expected 'train,valid,test' weights like '98,1,1', got {self.split!r}")
        weights = [float(p) for p in parts]
        expect(sum(weights) > 0 and weights[1] > 0, "split", f"expected a non-zero valid weight, got {self.split!r}")
        expect(
            isinstance(self.seed, int) and not isinstance(self.seed, bool) and self.seed >= 0,
            "seed",
            f"expected an integer >= 0, got {self.seed!r}",
        )
        expect(
            isinstance(self.num_shards, int) and 1 <= self.num_shards <= 4096,
            "num_shards",
            f"expected an integer in [1, 4096], got {self.num_shards!r}",
        )

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
    expect(isinstance(spec, Mapping), where, f"expected a mapping, got {type(spec).__name__}")
    known = {"name", "source", "tokenizer", "split", "seed", "num_shards"}
    unknown = sorted(set(spec) - known)
    expect(not unknown, where, f"unknown keys {unknown}; expected some of {sorted(known)}")
    try:
        source = dict(spec.get("source") or {})
        expect("kind" in source, "source", "expected a mapping with 'kind'")
        tokenizer = dict(spec.get("tokenizer") or {})
        for key, given, cls in (("source", source, SourceSpec), ("tokenizer", tokenizer, TokenizerSpec)):
            allowed = set(cls.__dataclass_fields__)
            expect(
                not set(given) - allowed,
                key,
                f"unknown keys {sorted(set(given) - allowed)}; expected {sorted(allowed)}",
            )
        source["paths"] = tuple(str(p) for p in source.get("paths", ()))
        return CorpusSpec(
            name=str(spec.get("name", "")),
            source=SourceSpec(**source),
            tokenizer=TokenizerSpec(**tokenizer),
            split=str(spec.get("split", "98,1,1")),
            seed=spec.get("seed", 0),
            num_shards=spec.get("num_shards", 1),
        )
    except ConfigError as err:
        raise ConfigError(f"{where}.{err}") from None


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
