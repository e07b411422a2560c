"""DeepSpeed checkpoints of a ViT run under the shared protocol (train/checkpoints.py), with client state and RNGs.

A tag ``step-00000120/`` holds DeepSpeed's files of every rank plus ``COMPLETE.json``; the client state carries the
loop's position, its metric rows, every RNG and the resolved config.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pretrainflow.train import checkpoints


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


def save(engine, root: Path, *, step: int, client_state: dict, keep: int) -> Path:
    """Collective: every rank saves its part, then rank 0 marks the tag complete and prunes old/incomplete tags."""
    tag = checkpoints.begin_save(root, step).name
    engine.save_checkpoint(str(root), tag=tag, client_state=client_state, save_latest=False)
    return checkpoints.commit(root, step, config_digest=client_state.get("config_hash"), keep=keep)


def load_latest(engine, root: Path) -> dict | None:
    """Load the newest complete checkpoint into ``engine``; return its client state, or None when there is none."""
    found = checkpoints.latest(root)
    if found is None:
        return None
    step, path = found
    _path, client_state = engine.load_checkpoint(str(root), tag=path.name, load_module_strict=True)
    if client_state is None:
        raise RuntimeError(f"{path}: DeepSpeed could not load this checkpoint (marker says step {step})")
    return client_state
