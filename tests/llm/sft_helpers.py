"""Helpers of the SFT tests: a small instruction file and SFT run specs on top of the session's reference run."""

from __future__ import annotations

import json
from pathlib import Path

from llm_helpers import cli, run_spec


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def arithmetic_records(count: int = 48) -> list[dict]:
    """Short prompt/response pairs (fit 32-token rows with the 512-token test BPE): "What is 3 plus 4?" -> "7"."""
    return [{"prompt": f"What is {i % 7} plus {i % 5}?", "response": str(i % 7 + i % 5)} for i in range(count)]


def sft_spec(run_id: str, init_spec: dict, data: Path, *, tensor: int = 1, ranks: int = 1, steps: int = 8,
             **extra) -> dict:  # fmt: skip
    """An SFT run (gpt_micro, 32-token rows, 8 per step) starting from the published run ``init_spec``."""
    spec = run_spec(run_id, tensor=tensor, ranks=ranks, steps=steps, init={"run": init_spec["run_id"],
                    "run_spec": init_spec}, sft={"data": {"kind": "jsonl", "path": str(data)}})  # fmt: skip
    spec.update(extra)
    return spec


def sft(corpora: Path, workdir: Path, spec: dict, pretrained: Path, *extra: str, check: bool = True):
    """sft-llm through the CLI; returns (completed process, run dir, checkpoints root)."""
    out = workdir / "sft" / spec["run_id"]
    proc = cli("sft-llm", "--spec", json.dumps(spec), "--out", str(out), "--corpora-dir", str(corpora),
               "--checkpoints", str(workdir / "checkpoints"), "--pretrained-dir", str(pretrained), *extra,
               check=check, spec=spec)  # fmt: skip
    return proc, out, workdir / "checkpoints"
