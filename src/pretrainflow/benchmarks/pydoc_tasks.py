"""The shipped benchmark tasks, built offline from the docstrings of the running Python's standard library.

    pretrainflow benchmarks build --out results/benchmarks/tasks
    lm_eval --model hf --model_args pretrained=results/export/gpt-micro-pydocs-hf --tasks pydoc_mc \\
        --include_path results/benchmarks/tasks --device cpu        # by hand, with HF_*_OFFLINE=1

Tasks (lm-evaluation-harness YAML in ``tasks/``, one shared data file ``pydoc.jsonl``):
- ``pydoc_mc``: "Which function is this docstring about?" The model scores four function names after the docstring's
  summary; metrics acc and acc_norm (log-likelihood normalised by the choice's bytes). Chance level: 25 %.
- ``pydoc_name``: the same question as generation (greedy, up to 16 tokens, until a newline); metric exact_match of
  the generated name. Chance level: about 0 %.

How the items are built (a pure function of the Python version, like the default corpus; CPython 3.11.7: 316 items):
1. Candidates: every public function and method (name not starting with ``_``; nested functions skipped) in the
   standard-library files the corpus reads (``corpora.sources``: sorted, test packages skipped) whose docstring is
   ASCII and whose summary (first paragraph, whitespace collapsed) has at least 40 characters.
2. Hold-out rule: a *bare name* (``dumps``, ``read_text``) is held out when the first 16 hex digits of
   sha256("pretrainflow-pydoc-heldout:" + name) are 0 modulo 8: one name in eight, the same on every Python version.
   Only held-out names become benchmark items, and instruction data (SFT) must drop every function whose bare name is
   held out (``is_held_out``): a held-out name is never paired with a docstring in training, not even through a
   near-copy such as ``ntpath.join`` for ``posixpath.join``. (Pretraining reads the docstrings alone, never the names.)
3. One item per held-out name: its first candidate in file order; items whose summary equals another item's are
   dropped (ambiguous).
4. The name is masked in its summary (``____``; the question would otherwise be a copy task) and the summary is cut to
   at most 180 characters at a word boundary (``...``), so prompt and answer fit a 128-token context.
5. Choices: the answer and 3 distractors drawn from the other items' names by ``random.Random(seed)`` with the seed
   taken from sha256 of the answer, then shuffled by the same generator: every name is one item's answer and, on
   average, three items' distractor, so a prior over names is worth nothing.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
import sys
import sysconfig
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pretrainflow.errors import PretrainflowError
from pretrainflow.io import atomic_dir, atomic_write_json, sha256_file

TASKS_DIR = Path(__file__).resolve().parent / "tasks"  # the shipped YAML (package data)
DATA_FILE = "pydoc.jsonl"  # the file every shipped YAML names in dataset_kwargs.data_files (relative to itself)
MANIFEST = "manifest.json"
HELD_OUT_SALT = "pretrainflow-pydoc-heldout:"
HELD_OUT_MODULUS = 8  # one bare name in eight is held out
MIN_SUMMARY_CHARS = 40  # shorter summaries ("Return self.") say too little to pick a name from
# At most ~0.53 tokens per character with the default study's 2,048-token BPE: <= 96 tokens + ~30 of question and
# answer fit the micro GPT's 128 positions (longer prompts lose their start to the harness's left truncation)
MAX_SUMMARY_CHARS = 180
NUM_CHOICES = 4  # chance level 1/4 = 25 %
MASK = "____"


def _digest(text: str) -> int:
    return int(hashlib.sha256(text.encode()).hexdigest()[:16], 16)


def is_held_out(name: str) -> bool:
    """True when the bare function name ``name`` belongs to the benchmark (and so must never appear in SFT data).

    >>> [name for name in ("join", "dumps", "read_text", "close", "walk") if is_held_out(name)]
    ['close', 'walk']
    """
    return _digest(HELD_OUT_SALT + name) % HELD_OUT_MODULUS == 0


@dataclass(frozen=True, slots=True)
class StdlibFunction:
    module: str  # json, os.path, email.mime.text
    qualname: str  # dumps, JSONEncoder.encode
    summary: str  # first paragraph of the docstring, whitespace collapsed

    @property
    def name(self) -> str:
        return self.qualname.rpartition(".")[2]


def _module_name(path: Path, root: Path) -> str:
    try:
        parts = list(path.relative_to(root).with_suffix("").parts)
    except ValueError:
        parts = [path.stem]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(qualname, docstring) of the public functions and methods of a module, in source order."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and not node.name.startswith("_"):
            doc = ast.get_docstring(node, clean=True)
            if doc and doc.isascii():
                yield prefix + node.name, doc
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")


def stdlib_functions() -> Iterator[StdlibFunction]:
    """Every candidate function of this interpreter's standard library (rule 1 of the module docstring)."""
    from pretrainflow.corpora.sources import _stdlib_files  # the corpus's own file list: the same files, same order

    root = Path(sysconfig.get_paths()["stdlib"]).resolve()
    for path in _stdlib_files():
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        module = _module_name(path.resolve(), root)
        for qualname, doc in _functions(tree):
            summary = " ".join(doc.split("\n\n")[0].split())
            if len(summary) >= MIN_SUMMARY_CHARS:
                yield StdlibFunction(module, qualname, summary)


def question_text(summary: str, name: str) -> str:
    """The summary with ``name`` masked as a whole word, cut to MAX_SUMMARY_CHARS at a word boundary.

    >>> question_text("Serialize obj to a JSON formatted str; see dumps for options.", "dumps")
    'Serialize obj to a JSON formatted str; see ____ for options.'
    """
    text = re.sub(rf"(?<![\w.]){re.escape(name)}(?!\w)", MASK, summary)
    if len(text) > MAX_SUMMARY_CHARS:
        text = text[: MAX_SUMMARY_CHARS - 4].rsplit(" ", 1)[0] + " ..."
    return text


def build_items(functions: list[StdlibFunction] | None = None) -> list[dict[str, Any]]:
    """The benchmark items (rules 2-5 of the module docstring), in file order; ``functions`` defaults to the stdlib's.

    Each item: ``{"id", "module", "qualname", "name", "summary", "choices" (4 names), "answer" (index of name)}``.
    """
    first: dict[str, StdlibFunction] = {}
    for function in stdlib_functions() if functions is None else functions:
        if is_held_out(function.name) and function.name not in first:
            first[function.name] = function
    summaries = [question_text(f.summary, f.name) for f in first.values()]
    kept = [(f, s) for f, s in zip(first.values(), summaries, strict=True) if summaries.count(s) == 1]
    if len(kept) < NUM_CHOICES:
        raise PretrainflowError(f"pydoc tasks: only {len(kept)} held-out functions found; need >= {NUM_CHOICES}")
    names = sorted(f.name for f, _ in kept)
    items = []
    for index, (function, summary) in enumerate(kept):
        rng = random.Random(_digest("pretrainflow-pydoc-choices:" + function.name))
        choices = [function.name, *rng.sample([n for n in names if n != function.name], NUM_CHOICES - 1)]
        rng.shuffle(choices)
        items.append(
            {
                "id": f"pydoc-{index:04d}",
                "module": function.module,
                "qualname": function.qualname,
                "name": function.name,
                "summary": summary,
                "choices": choices,
                "answer": choices.index(function.name),
            }
        )
    return items


def shipped_task_names() -> list[str]:
    """The ``task:`` names of the YAML files shipped in ``tasks/`` (what a study may list without include_path)."""
    return sorted(yaml.safe_load(path.read_text())["task"] for path in TASKS_DIR.glob("*.yaml"))


def _resolved_yaml(template: Path, data_dir: Path) -> str:
    """A shipped YAML with its data file made absolute under ``data_dir`` (comments kept; how the harness finds it)."""
    text = re.sub(rf"(:\s*){re.escape(DATA_FILE)}(?=\s)", lambda m: m.group(1) + json.dumps(str(data_dir / DATA_FILE)),
                  template.read_text())  # fmt: skip
    files = yaml.safe_load(text)["dataset_kwargs"]["data_files"]
    if not all(Path(name).is_absolute() for name in files.values()):
        raise PretrainflowError(f"{template}: dataset_kwargs.data_files must name {DATA_FILE}, got {files}")
    return f"# written by `pretrainflow benchmarks build` from {template.name}; data path made absolute\n" + text


def build_task_dir(out: str | Path, items: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write ``out/pydoc.jsonl``, a ready-to-use copy of each shipped YAML and ``manifest.json`` (atomically).

    ``out`` is then an lm-eval ``--include_path``. Returns the manifest: Python version, item count, sha256 of the
    data, the hold-out rule and each task's chance level (percent).
    """
    out = Path(out).resolve()
    items = build_items() if items is None else items
    with atomic_dir(out) as tmp:
        lines = "".join(json.dumps(item, sort_keys=True) + "\n" for item in items)
        (tmp / DATA_FILE).write_text(lines, encoding="utf-8")
        for template in sorted(TASKS_DIR.glob("*.yaml")):
            (tmp / template.name).write_text(_resolved_yaml(template, out))
        manifest = {
            "python": sys.version.split()[0],
            "items": len(items),
            "data_file": DATA_FILE,
            "sha256": sha256_file(tmp / DATA_FILE),
            "tasks": shipped_task_names(),
            "chance_percent": {"pydoc_mc": 100.0 / NUM_CHOICES, "pydoc_name": 0.0},
            "held_out_rule": f"sha256({HELD_OUT_SALT!r} + bare function name)[:16 hex] % {HELD_OUT_MODULUS} == 0",
        }
        atomic_write_json(tmp / MANIFEST, manifest)
    return manifest
