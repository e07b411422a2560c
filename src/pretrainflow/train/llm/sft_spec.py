"""The ``sft`` section of an LLM run: supervised fine-tuning on instruction data instead of pretraining on a corpus.

An LLM run (``kind: llm`` under ``pretrain``) with ``sft`` is an SFT run: it starts from ``init`` (an earlier LLM run
of the study or an imported Hugging Face Llama, as continued pretraining does), trains through the same megatron-core
loop, checkpoints and publisher as pretraining, and reads instruction examples instead of the corpus blend. The run's
``corpus`` still names the tokenizer (the init's, ``init.tokenizer: keep``) and the held-out text of its perplexity
row. Example (the default study's SFT run)::

    sft:
      data: {kind: python-stdlib-instructions}   # built by `pretrainflow benchmarks instructions`
      chat_template: auto                         # the tokenizer's own if it has one, else DEFAULT_CHAT_TEMPLATE

``data.kind``: ``jsonl`` = the user's file at ``data.path``, one JSON object per line with ``messages``
([{role, content}], roles system / user / assistant) or ``prompt`` + ``response``; ``python-stdlib-instructions`` =
the set built offline from the Python standard library (benchmarks/pydoc_instructions.py; it never contains a name
the shipped benchmark holds out). ``data.max_examples``: only the first N examples of the file. Every example becomes
one row of ``seq_length + 1`` tokens, padded (loss masked) or truncated inside its response (train/llm/sft_data.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pretrainflow.errors import ConfigError
from pretrainflow.spec_fields import build, positive_int, string

DATA_KINDS = ("jsonl", "python-stdlib-instructions")
CHAT_TEMPLATES = ("auto", "default")  # auto: the tokenizer's own chat_template when it has one, else the default


@dataclass(kw_only=True, slots=True)
class SFTDataSpec:
    kind: str
    path: str | None = None  # kind jsonl: the JSONL file (relative to the working directory)
    max_examples: int | None = None  # the first N examples of the file; None = all

    def __post_init__(self) -> None:
        if self.kind not in DATA_KINDS:
            raise ValueError(f"kind: expected one of {list(DATA_KINDS)}, got {self.kind!r}")
        if self.kind == "jsonl":
            string("path", self.path)
        elif self.path is not None:
            raise ValueError(
                f"path: only for kind jsonl (kind {self.kind} is built by the workflow), got {self.path!r}"
            )
        if self.max_examples is not None:
            positive_int("max_examples", self.max_examples)


@dataclass(kw_only=True, slots=True)
class SFTSpec:
    """What an SFT run trains on and how its examples are rendered (see the module docstring)."""

    data: SFTDataSpec
    chat_template: str = "auto"

    def __post_init__(self) -> None:
        if isinstance(self.data, Mapping):  # build() types one level of nesting: this section types its own
            try:
                self.data = build(SFTDataSpec, self.data, "data")
            except ConfigError as err:  # "data.kind: ...": let the caller's build() prefix the run's path
                raise ValueError(str(err)) from None
        if not isinstance(self.data, SFTDataSpec):
            raise ValueError(f"data: expected a mapping with 'kind', got {self.data!r}")
        if self.chat_template not in CHAT_TEMPLATES:
            raise ValueError(f"chat_template: expected one of {list(CHAT_TEMPLATES)}, got {self.chat_template!r}")

    @classmethod
    def from_dict(cls, data: Any, where: str = "sft") -> SFTSpec:
        return build(cls, data, where)


def is_sft(spec: Mapping[str, Any]) -> bool:
    """Whether a resolved run spec is an SFT run (an LLM run with an ``sft`` section)."""
    return spec.get("kind") == "llm" and spec.get("sft") is not None


def sft_runs(runs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The ids of the SFT runs among a study's resolved runs (``Study.runs``)."""
    return [run_id for run_id, spec in runs.items() if is_sft(spec)]


def pretraining_llm_runs(runs: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The ids of the LLM runs that pretrain (from scratch or ``init``) on a corpus: every LLM run but the SFT ones."""
    return [run_id for run_id, spec in runs.items() if spec.get("kind") == "llm" and not is_sft(spec)]
