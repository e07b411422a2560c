"""What `pretrainflow sft-llm` does before any rank starts: find the run's instruction data and template, check every
example and write the rows the ranks read (train/llm/sft_data.py) into the run's checkpoint directory.

Rows made from byte-identical inputs (sha256 of the JSONL, the tokenizer and the template's tokenizer_config.json) are
reused, so a rerun does not tokenise again. A resumed run keeps the rows it started with: when the checkpoint directory
already holds a checkpoint and the inputs' bytes changed, the command stops with an error naming them, before anything
is written (a run's config hash does not cover a user file's bytes).

The template the rows were rendered with is kept beside them (sft_data/chat_template.json) and ``run_chat_template``
hands it to the publisher, which records it in model.safetensors, so the Hugging Face export carries the exact template
the model was trained with (export/hf_llama.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pretrainflow.errors import PretrainflowError
from pretrainflow.study.layout import INSTRUCTIONS_DIR
from pretrainflow.train.llm.spec import LLMRunSpec

if TYPE_CHECKING:
    from pretrainflow.train.llm.sft_data import ChatTemplate

PREPARED_DIR = "sft_data"  # inside the run's checkpoint directory
INSTRUCTIONS_FILE = "instructions.jsonl"  # in INSTRUCTIONS_DIR (benchmarks/pydoc_instructions.py writes it)


def sft_data_file(spec: dict[str, Any]) -> str:
    """The JSONL an SFT run reads: ``sft.data.path`` (kind jsonl) or the built stdlib set (the rule's input)."""
    data = spec["sft"]["data"]
    return data["path"] if data["kind"] == "jsonl" else f"{INSTRUCTIONS_DIR}/{INSTRUCTIONS_FILE}"


def template_config(run: LLMRunSpec) -> Path | None:
    """The tokenizer_config.json beside the tokenizer.json the run's corpus reads (``tokenizer.path``), if it has one."""
    path = ((run.corpus_spec or {}).get("tokenizer") or {}).get("path")
    return Path(path).parent / "tokenizer_config.json" if path else None


def fingerprints(jsonl: Path, tokenizer_json: Path, config: Path | None) -> dict[str, str | None]:
    """sha256 of what the rows are made from: the JSONL, the tokenizer, and the tokenizer_config.json of the template."""
    from pretrainflow.io import sha256_file

    return {"data_sha256": sha256_file(jsonl), "tokenizer_sha256": sha256_file(tokenizer_json),
            "template_config_sha256": sha256_file(config) if config is not None and config.is_file() else None}  # fmt: skip


def prepare(run: LLMRunSpec, *, jsonl: Path, tokenizer_json: Path, checkpoint_root: Path,
            is_first: bool = True, wait_seconds: float = 1800.0) -> tuple[Path, dict]:  # fmt: skip
    """(directory of the prepared rows, their meta): reused when made from the same bytes, else written now.

    Checked in this order: rows made from byte-identical inputs are reused (a rerun or resume); different inputs under
    existing checkpoints are an error (see the module docstring); otherwise the first launcher process writes the rows
    and, under an outer launcher (one ``sft-llm`` per rank, ``is_first`` False elsewhere), the others wait for them.
    """
    import time

    from pretrainflow.train import checkpoints
    from pretrainflow.train.llm.sft_data import META_FILE, prepare_sft_data

    assert run.sft is not None
    if not jsonl.is_file():
        raise PretrainflowError(f"pretrain.{run.run_id}.sft.data: {jsonl} not found (instruction data, JSONL)")
    out, config = checkpoint_root / PREPARED_DIR, template_config(run)
    now = fingerprints(jsonl, tokenizer_json, config)

    def made_from_now() -> dict | None:
        meta = json.loads((out / META_FILE).read_text()) if (out / META_FILE).is_file() else None
        return meta if meta is not None and all(meta.get(key) == value for key, value in now.items()) else None

    meta = made_from_now()
    if meta is not None:
        return out, meta
    if checkpoints.latest(checkpoint_root) is not None and (out / META_FILE).is_file():
        raise PretrainflowError(
            f"{jsonl} / {tokenizer_json}: changed since the checkpoints in {checkpoint_root} were written (their "
            f"sha256 differ from {out / META_FILE}); restore them, or delete {checkpoint_root} to fine-tune afresh "
            "on the new data"
        )
    if not is_first:
        deadline = time.monotonic() + wait_seconds
        while (meta := made_from_now()) is None:
            if time.monotonic() > deadline:
                raise PretrainflowError(f"{out}: the first rank did not prepare the SFT rows in {wait_seconds:.0f} s")
            time.sleep(2)
        return out, meta
    meta = prepare_sft_data(jsonl, tokenizer_json, out, seq_length=run.seq_length, template_config=config,
                            chat_template_choice=run.sft.chat_template, max_examples=run.sft.data.max_examples)  # fmt: skip
    return out, meta


def run_chat_template(run: LLMRunSpec, tokenizer_json: Path, checkpoint_root: Path) -> ChatTemplate | None:
    """The chat template the run's published model carries (train/llm/publish.py records it, the export writes it).

    An SFT run: the template its rows were rendered with (``sft_data/chat_template.json``, after ``prepare``). A
    pretraining run: the template of the Hugging Face model its tokenizer came from (the tokenizer_config.json beside
    ``tokenizer.path``), as transformers keeps a tokenizer's template through continued training; None without one.
    """
    from pretrainflow.corpora.tokenizer import load_tokenizer, special_ids
    from pretrainflow.train.llm.sft_data import TEMPLATE_FILE, chat_template, template_from_json

    if run.sft is not None:
        kept = checkpoint_root / PREPARED_DIR / TEMPLATE_FILE
        if kept.is_file():
            return template_from_json(kept.read_text(), kept)
    tokenizer = load_tokenizer(tokenizer_json)
    eod = tokenizer.id_to_token(special_ids(tokenizer)[0])
    if run.sft is not None:
        # Rows prepared before chat_template.json was kept: ``prepare`` has just found the inputs byte-identical to
        # those the rows were made from, so the same call renders with the same template.
        return chat_template(template_config(run), run.sft.chat_template, eod)
    own = chat_template(template_config(run), "auto", eod)
    return None if own.name == "default" else own  # "default": the tokenizer has no template of its own
