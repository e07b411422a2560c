"""The default study's instruction set for supervised fine-tuning, built offline from the Python standard library.

    pretrainflow benchmarks instructions --out results/instructions/python-stdlib

Built from the same candidate functions as the shipped benchmark (pydoc_tasks.stdlib_functions: public functions and
methods of the stdlib files the corpus reads, ASCII docstrings, summaries of at least 40 characters), a pure function
of the Python version (CPython 3.11.7: see the manifest's counts):
1. Every function whose bare name the benchmark holds out (``pydoc_tasks.is_held_out``) is dropped, so no held-out
   name is ever paired with a docstring here, not even through a near-copy (``ntpath.join`` for ``posixpath.join``).
2. Summaries that are code rather than prose are dropped: a doctest (``>>>``) or a grammar / assignment (`` = ``);
   written out they cost up to 140 tokens of the default BPE, more than the default study's 128-token rows hold
   (without them every example is at most ~110 tokens).
3. One function per remaining bare name: its first in file order (as the benchmark picks its items).
4. Two examples per function, as ``prompt`` / ``response`` lines:
   - "Docstring: <summary, name masked>\\nQuestion: Which function is this docstring about?" -> "<name>"
     (the benchmark's question, asked about names the benchmark never uses; its masking and 180-character cut);
   - "Question: What does `<module>.<qualname>` do?" -> the summary's first sentence (cut to 180 characters).
There is no chance level for a training set; the benchmark these names are disjoint from scores 4-way multiple choice
(25 % by chance).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from pretrainflow.benchmarks.pydoc_tasks import (
    HELD_OUT_MODULUS,
    HELD_OUT_SALT,
    MAX_SUMMARY_CHARS,
    StdlibFunction,
    is_held_out,
    question_text,
    stdlib_functions,
)
from pretrainflow.errors import PretrainflowError

INSTRUCTIONS_FILE = "instructions.jsonl"
MANIFEST = "manifest.json"
CODE_MARKS = (">>>", " = ")  # a summary with one of these is a doctest or a grammar, not a description (rule 2)
QUESTION_WHICH = "Question: Which function is this docstring about?"


def first_sentence(summary: str) -> str:
    """The summary up to its first full stop followed by a space (or all of it), cut to MAX_SUMMARY_CHARS.

    >>> first_sentence("Return the sum. Raise ValueError on overflow.")
    'Return the sum.'
    """
    sentence = re.split(r"(?<=\.)\s", summary, maxsplit=1)[0]
    if len(sentence) > MAX_SUMMARY_CHARS:
        sentence = sentence[: MAX_SUMMARY_CHARS - 4].rsplit(" ", 1)[0] + " ..."
    return sentence


def build_instructions(functions: list[StdlibFunction] | None = None) -> list[dict[str, Any]]:
    """The examples (rules 1-4 of the module docstring), in file order; ``functions`` defaults to the stdlib's."""
    first: dict[str, StdlibFunction] = {}
    for function in stdlib_functions() if functions is None else functions:
        if is_held_out(function.name) or any(mark in function.summary for mark in CODE_MARKS):
            continue
        if function.name not in first:
            first[function.name] = function
    examples = []
    for function in first.values():
        masked = question_text(function.summary, function.name)
        examples.append({"prompt": f"Docstring: {masked}\n{QUESTION_WHICH}", "response": function.name,
                         "name": function.name})  # fmt: skip
        examples.append({"prompt": f"Question: What does `{function.module}.{function.qualname}` do?",
                         "response": first_sentence(function.summary), "name": function.name})  # fmt: skip
    if not examples:
        raise PretrainflowError("pydoc instructions: no stdlib function found outside the held-out names")
    return examples


def build_instruction_dir(out: str | Path, examples: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Write ``out/instructions.jsonl`` and ``out/manifest.json`` atomically; returns the manifest."""
    from pretrainflow.io import atomic_dir, atomic_write_json, sha256_file

    examples = build_instructions() if examples is None else examples
    with atomic_dir(Path(out)) as tmp:
        text = "".join(json.dumps(example, sort_keys=True) + "\n" for example in examples)
        (tmp / INSTRUCTIONS_FILE).write_text(text, encoding="utf-8")
        manifest = {
            "python": sys.version.split()[0],
            "examples": len(examples),
            "names": len({example["name"] for example in examples}),
            "sha256": sha256_file(tmp / INSTRUCTIONS_FILE),
            "held_out_rule": f"dropped: sha256({HELD_OUT_SALT!r} + bare name)[:16 hex] % {HELD_OUT_MODULUS} == 0",
        }
        atomic_write_json(tmp / MANIFEST, manifest)
    return manifest
