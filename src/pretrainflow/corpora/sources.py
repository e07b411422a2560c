"""Document sources: a registry of named kinds, each yielding text documents in a deterministic order.

- ``python-stdlib-docstrings`` (the offline default corpus): the English docstrings of the running interpreter's
  standard library. Every module named in ``sys.stdlib_module_names`` is located with ``importlib.util.find_spec``
  (never imported: importing ``antigravity`` would open a browser), its ``.py`` files are parsed with ``ast``, and each
  module / class / function docstring of at least 200 characters becomes one document (``inspect.cleandoc``-ed).
  Modules and files are visited in sorted order, so the corpus is a pure function of the Python version
  (CPython 3.11.7: 2,088 documents, 1.1 MB of text). Test modules (``test``, ``idlelib.idle_test``, ...) are skipped.
- ``jsonl``: one JSON object per line, the text under ``text_key`` (default ``text``); files in the order given.
- ``text``: plain UTF-8 files; each blank-line-separated block is one document.

Sharding (one tokenize job per shard; merging shards 0..N-1 in order gives a deterministic dataset):
- ``jsonl`` (web-scale corpora): byte ranges. The inputs are treated as one byte stream of S bytes; shard k owns the
  lines that start in [k*S/N, (k+1)*S/N), so each job reads only about S/N bytes and the merged order is the input order.
- other kinds, or any ``max_documents`` cap: document ``i`` of the stream belongs to shard ``i % N`` (each job reads the
  whole stream and tokenizes its part; these corpora are small).
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import random
import sys
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from pathlib import Path

from pretrainflow.corpora.spec import SourceSpec
from pretrainflow.errors import PretrainflowError

MIN_DOCSTRING_CHARS = 200  # shorter docstrings ("Return self.") are mostly noise for a language model
_SKIP_PARTS = {"test", "tests", "idle_test", "__pycache__", "site-packages"}

SOURCES: dict[str, Callable[[SourceSpec], Iterator[str]]] = {}


def register_source(kind: str):
    """Decorator: register a document source under ``kind`` (the study's ``source.kind``)."""

    def wrap(fn: Callable[[SourceSpec], Iterator[str]]):
        SOURCES[kind] = fn
        return fn

    return wrap


def iter_documents(source: SourceSpec) -> Iterator[str]:
    """All documents of ``source`` in their deterministic order (capped at ``source.max_documents``)."""
    docs = SOURCES[source.kind](source)
    return islice(docs, source.max_documents) if source.max_documents else docs


def iter_shard(source: SourceSpec, shard: int, num_shards: int) -> Iterator[str]:
    """The documents of shard ``shard`` of ``num_shards`` (byte ranges for jsonl, else ``i % num_shards``)."""
    if not 0 <= shard < num_shards:
        raise PretrainflowError(f"shard {shard} outside 0..{num_shards - 1}")
    if source.kind == "jsonl" and not source.max_documents:
        return _jsonl_byte_shard(source, shard, num_shards)
    return islice(iter_documents(source), shard, None, num_shards)


def _jsonl_byte_shard(source: SourceSpec, shard: int, num_shards: int) -> Iterator[str]:
    """Documents of the lines starting inside this shard's byte range of the concatenated inputs."""
    for path in source.paths:
        _open_input(path).close()  # a missing file is named before any arithmetic
    sizes = [Path(path).stat().st_size for path in source.paths]
    total = sum(sizes)
    lo, hi = total * shard // num_shards, total * (shard + 1) // num_shards
    base = 0
    for path, size in zip(source.paths, sizes, strict=True):
        start, end = max(lo - base, 0), min(hi - base, size)  # line starts owned by this shard, local offsets
        base += size
        if start >= end:
            continue
        with open(path, "rb") as handle:
            if start > 0:
                handle.seek(start - 1)
                handle.readline()  # skip the line that started before `start` (it belongs to the previous shard)
            pos = handle.tell()
            while pos < end and (raw := handle.readline()):
                text = _jsonl_text(raw.decode("utf-8"), source.text_key, f"{path} (byte {pos})")
                pos += len(raw)
                if text is not None:
                    yield text


def sample_documents(documents: Iterable[str], k: int, seed: int) -> list[str]:
    """A uniform sample of ``k`` documents from a stream of unknown length, in stream order (reservoir sampling).

    One pass, memory for ``k`` documents: how the tokenizer of a 100 B-token corpus is trained on, say, 2 M documents.
    Deterministic for a given seed and stream.
    """
    rng = random.Random(seed)
    reservoir: list[tuple[int, str]] = []
    for i, doc in enumerate(documents):
        if i < k:
            reservoir.append((i, doc))
        else:
            j = rng.randint(0, i)  # keep document i with probability k / (i + 1)
            if j < k:
                reservoir[j] = (i, doc)
    return [doc for _, doc in sorted(reservoir)]


def _stdlib_files() -> list[Path]:
    """The .py files of the standard library, sorted and de-duplicated."""
    files: set[Path] = set()
    for name in sorted(sys.stdlib_module_names):
        if name.startswith("_") or name in _SKIP_PARTS:
            continue
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.origin or not spec.origin.endswith(".py"):
            continue  # built-in or C extension: no source docstrings to parse
        origin = Path(spec.origin)
        if spec.submodule_search_locations:  # a package: all its .py files
            files.update(p for p in origin.parent.rglob("*.py") if not _SKIP_PARTS & set(p.parts))
        else:
            files.add(origin)
    return sorted(files)


def _docstrings(tree: ast.AST) -> Iterator[str]:
    nodes = [tree, *(n for n in ast.walk(tree) if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef))]
    for node in nodes:
        doc = ast.get_docstring(node, clean=True)
        if doc and len(doc) >= MIN_DOCSTRING_CHARS and doc.isascii():
            yield inspect.cleandoc(doc)


@register_source("python-stdlib-docstrings")
def stdlib_docstrings(source: SourceSpec) -> Iterator[str]:
    """Docstrings of this interpreter's standard library (see module docstring)."""
    for path in _stdlib_files():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # lib2to3 test data and the like
        yield from _docstrings(tree)


def _open_input(path: str):
    file = Path(path)
    if not file.is_file():
        raise PretrainflowError(f"{path}: corpus input file not found")
    return file.open(encoding="utf-8")


@register_source("jsonl")
def jsonl_documents(source: SourceSpec) -> Iterator[str]:
    """The ``text_key`` field of each JSON line; an error names file and line when a line is bad."""
    for path in source.paths:
        with _open_input(path) as handle:
            for lineno, line in enumerate(handle, 1):
                text = _jsonl_text(line, source.text_key, f"{path}:{lineno}")
                if text is not None:
                    yield text


def _jsonl_text(line: str, key: str, where: str) -> str | None:
    """The document of one JSONL line (None for blank lines or empty text); errors name file and line/byte."""
    if not line.strip():
        return None
    try:
        text = json.loads(line)[key]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise PretrainflowError(f"{where}: expected a JSON object with a string field {key!r} ({err!r})") from None
    if not isinstance(text, str):
        raise PretrainflowError(f"{where}: field {key!r} is not a string")
    return text if text.strip() else None


@register_source("text")
def text_documents(source: SourceSpec) -> Iterator[str]:
    """Blank-line-separated blocks of plain UTF-8 files."""
    for path in source.paths:
        block: list[str] = []
        with _open_input(path) as handle:
            for line in handle:
                if line.strip():
                    block.append(line.rstrip("\n"))
                elif block:
                    yield "\n".join(block)
                    block = []
        if block:
            yield "\n".join(block)
