"""One checkpoint-directory protocol for both engines (DeepSpeed ViT runs, megatron-core GPT runs).

    {root}/{unit}/{config_hash[:12]}/      root: results/checkpoints; unit: a run id or finetune/{run}/{task}
        step-00000120/                     one checkpoint: the engine's files of every rank
            COMPLETE.json                  {"step", "config_hash"}: written by rank 0 after every rank has saved
        tensorboard/  metrics.jsonl  ...   the unit's side files (they survive resumes)

Rerunning the same spec resumes from the newest complete tag; a changed spec hashes to another directory and starts
afresh. A tag without ``COMPLETE.json`` is a save killed half-way: it is never loaded and the next complete save deletes
it. Only the newest ``keep`` complete tags stay (a 1B GPT writes ~12 GB per save: weights + two Adam moments in fp32).

Saving is collective: ``begin_save`` (clear a half-written tag of the same step), the engine writes its files,
``commit`` (barrier, marker, prune, barrier).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import torch.distributed as dist

from pretrainflow.io import atomic_write_json, config_hash

MARKER = "COMPLETE.json"
_TAG = re.compile(r"^step-(\d{8})$")


def unit_dir(root: Path, unit: str, config: dict) -> Path:
    """``{root}/{unit}/{hash12}``: where the unit with resolved ``config`` keeps its checkpoints.

    >>> unit_dir(Path("results/checkpoints"), "gpt-micro", {"lr": 1e-3}).parent
    PosixPath('results/checkpoints/gpt-micro')
    """
    return Path(root) / unit / config_hash(config)[:12]


def tag_of(step: int) -> str:
    """The tag directory of the checkpoint after optimizer step ``step`` (sorts by step as text).

    >>> tag_of(120)
    'step-00000120'
    """
    return f"step-{step:08d}"


def complete_tags(directory: Path) -> list[str]:
    """Tags under ``directory`` that carry the completion marker, oldest first."""
    if not directory.is_dir():
        return []
    return sorted(p.name for p in directory.iterdir() if _TAG.match(p.name) and (p / MARKER).is_file())


def latest(directory: Path) -> tuple[int, Path] | None:
    """(step, path) of the newest complete checkpoint, or None when there is none."""
    tags = complete_tags(directory)
    if not tags:
        return None
    return int(_TAG.match(tags[-1]).group(1)), directory / tags[-1]


def _is_main() -> bool:
    return not dist.is_initialized() or dist.get_rank() == 0


def _barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def begin_save(directory: Path, step: int) -> Path:
    """Collective: an empty tag directory for ``step`` (a half-written one of an earlier attempt is removed)."""
    path = directory / tag_of(step)
    if _is_main():
        if path.exists() and not (path / MARKER).is_file():
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)
    _barrier()
    return path


def commit(directory: Path, step: int, *, config_digest: str | None, keep: int) -> Path:
    """Collective, after every rank wrote its files: mark ``step`` complete, then prune old and half-written tags."""
    _barrier()
    if _is_main():
        atomic_write_json(directory / tag_of(step) / MARKER, {"step": step, "config_hash": config_digest})
        _prune(directory, keep)
    _barrier()
    return directory / tag_of(step)


def _prune(directory: Path, keep: int) -> None:
    complete = complete_tags(directory)
    newest = complete[-1]
    for path in directory.iterdir():
        if not _TAG.match(path.name):
            continue
        stale_complete = path.name in complete[:-keep]
        half_written = path.name not in complete and path.name < newest
        if stale_complete or half_written:
            shutil.rmtree(path, ignore_errors=True)
