"""Periodic DeepSpeed checkpoints with client state, and resume from the latest COMPLETE one.

Layout: results/checkpoints/{run}/{config_hash12}/step-00000120/ (DeepSpeed's files of every rank) plus
``COMPLETE.json``, written atomically by rank 0 after all ranks have saved (a barrier). A tag without that marker is a
save that was killed half-way: it is never loaded and is deleted by the next successful save. Only the newest ``keep``
complete tags are kept.
"""

from __future__ import annotations

import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrainflow.io import atomic_write_json, read_json

MARKER = "COMPLETE.json"
_TAG = re.compile(r"^step-(\d{8})$")


def tag_of(step: int) -> str:
    return f"step-{step:08d}"


def complete_tags(root: Path) -> list[str]:
    """Tags under ``root`` that carry the completion marker, oldest first."""
    if not root.is_dir():
        return []
    tags = [p.name for p in root.iterdir() if _TAG.match(p.name) and (p / MARKER).is_file()]
    return sorted(tags)


def latest_complete(root: Path) -> str | None:
    tags = complete_tags(root)
    return tags[-1] if tags else None


def rng_state() -> dict[str, Any]:
    """Every RNG a training step may touch (saved in the client state; restored on resume)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(engine, root: Path, *, step: int, client_state: dict, keep: int, rank: int) -> Path:
    """Collective: every rank saves its part, then rank 0 marks the tag complete and prunes old/incomplete tags."""
    import torch.distributed as dist

    tag = tag_of(step)
    engine.save_checkpoint(str(root), tag=tag, client_state=client_state, save_latest=False)
    if dist.is_initialized():
        dist.barrier()
    if rank == 0:
        atomic_write_json(root / tag / MARKER, {"step": step, "config_hash": client_state.get("config_hash")})
        _prune(root, keep)
    if dist.is_initialized():
        dist.barrier()
    return root / tag


def _prune(root: Path, keep: int) -> None:
    complete = complete_tags(root)
    newest = complete[-1]
    for path in root.iterdir():
        if not _TAG.match(path.name):
            continue
        stale_complete = path.name in complete[:-keep]
        half_written = path.name not in complete and path.name < newest
        if stale_complete or half_written:
            shutil.rmtree(path, ignore_errors=True)


def load_latest(engine, root: Path) -> dict | None:
    """Load the newest complete checkpoint into ``engine``; return its client state, or None when there is none."""
    tag = latest_complete(root)
    if tag is None:
        return None
    marker = read_json(root / tag / MARKER)
    _path, client_state = engine.load_checkpoint(str(root), tag=tag, load_module_strict=True)
    if client_state is None:
        raise RuntimeError(
            f"{root / tag}: DeepSpeed could not load this checkpoint (marker says step {marker['step']})"
        )
    return client_state
