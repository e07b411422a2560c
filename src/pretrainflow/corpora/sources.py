"""Document sources: a registry of named kinds, each yielding text documents in a deterministic order.

- ``python-stdlib-docstrings`` (the offline default corpus): the English docstrings of the running interpreter's
  standard library. Every module named in ``sys.stdlib_module_names`` is located with ``importlib.util.find_spec``
  (never imported: importing ``antigravity`` would open a browser), its ``.py`` files are parsed with ``ast``, and each
  module / class / function docstring of at least 200 characters becomes one document (``inspect.cleandoc``-ed).
  Modules and files are visited in sorted order, so the corpus is a pure function of the Python version
  (CPython 3.11.7: 2,088 documents, 1.1 MB of text). Test modules (``test``, ``idlelib.idle_test``, ...) are skipped.
- ``jsonl``: one JSON object per line, the text under ``text_key`` (default ``text``); files in the order given.
- ``text``: plain UTF-8 files; each blank-line-separated block is one document.

Sharding: document ``i`` of the stream belongs to shard ``i % num_shards``, so every shard job reads the stream but
tokenizes only its own part; merging shards 0..N-1 in order gives a deterministic dataset.
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
    """The documents of shard ``shard`` of ``num_shards``: those at stream positions ``i % num_shards == shard``."""
    if not 0 <= shard < num_shards:
        raise PretrainflowError(f"shard {shard} outside 0..{num_shards - 1}")
    return islice(iter_documents(source), shard, None, num_shards)


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
                if not line.strip():
                    continue
                try:
                    text = json.loads(line)[source.text_key]
                except (json.JSONDecodeError, KeyError, TypeError) as err:
                    raise PretrainflowError(
                        f"{path}:{lineno}: expected a JSON object with a string field {source.text_key!r} ({err!r})"
                    ) from None
                if not isinstance(text, str):
                    raise PretrainflowError(f"{path}:{lineno}: field {source.text_key!r} is not a string")
                if text.strip():
                    yield text


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
