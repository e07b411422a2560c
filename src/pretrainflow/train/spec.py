"""The study vocabulary both run kinds share: batch arithmetic, checkpoints, logging, and the table of renamed keys.

A ViT run (train/vit/spec.py) and an LLM run (train/llm/spec.py) build these sections with ``spec_fields.build``; each
kind may subclass a section to change its defaults (an LLM keeps one checkpoint, a ViT two), never its keys::

    batch:      {micro, global}       global = micro x accumulation x data-parallel ranks (accumulation is derived)
    checkpoint: {every_steps, keep}   every_steps 0 = only at the end of the run and on a walltime signal
    log:        {every_steps}
    schedule:   {..., min_lr}         optimizer: {name, lr, weight_decay, betas: [b1, b2], eps, grad_clip, ...}

At load time the world size comes from ``devices`` (its total ``gpus``, or nodes x gpus_per_node, on GPUs; else
cpu_ranks), the same on every site; data-parallel ranks = world for a ViT, world / (tensor x pipeline) for an LLM.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from pretrainflow.errors import ConfigError
from pretrainflow.spec_fields import number, positive_int, study_key
from pretrainflow.train.devices import DevicesSpec


@dataclass(kw_only=True, slots=True)
class BatchSpec:
    """``micro`` samples per rank per forward pass; ``global`` samples per optimizer step over all ranks.

    ``global`` (attribute ``global_batch``) = micro x accumulation x data-parallel ranks; None until the run fills in
    micro x data-parallel ranks (no accumulation).
    """

    micro: int
    global_batch: int | None = study_key("global", default=None)

    def __post_init__(self) -> None:
        positive_int("micro", self.micro)
        if self.global_batch is not None:
            positive_int("global", self.global_batch)

    def resolve(self, data_parallel: int, key: str = "batch") -> None:
        """Fill in ``global`` (micro x data_parallel) if unset; ``ValueError("{key}.global: ...")`` if it does not
        divide into micro x data_parallel x accumulation (for ``__post_init__`` of a run, under ``build``)."""
        if self.global_batch is None:
            self.global_batch = self.micro * data_parallel
        per_step = self.micro * data_parallel
        if self.global_batch % per_step:
            raise ValueError(
                f"{key}.global: expected a multiple of micro x data-parallel ranks = {self.micro} x {data_parallel} "
                f"= {per_step} (global = micro x accumulation x data-parallel ranks), got {self.global_batch}"
            )

    def accumulation(self, data_parallel: int) -> int:
        """Micro-batches per optimizer step on each data-parallel rank; ConfigError naming ``batch.global`` if the
        global batch is not micro x data_parallel x an integer."""
        try:
            self.resolve(data_parallel)
        except ValueError as err:
            raise ConfigError(str(err)) from None
        assert self.global_batch is not None  # resolve() filled it in
        return self.global_batch // (self.micro * data_parallel)


@dataclass(kw_only=True, slots=True)
class CheckpointSpec:
    """Periodic checkpoints (there is always one at the end of a run and one on a walltime signal)."""

    every_steps: int = 1000  # optimizer steps between checkpoints; 0 = only at the end and on a walltime signal
    keep: int = 2  # complete checkpoints kept (older ones are deleted)

    def __post_init__(self) -> None:
        positive_int("every_steps", self.every_steps, minimum=0)
        positive_int("keep", self.keep)


@dataclass(kw_only=True, slots=True)
class LogSpec:
    """Metric rows (metrics.parquet, TensorBoard, progress line)."""

    every_steps: int = 10  # optimizer steps between metric rows (the last step is always logged)

    def __post_init__(self) -> None:
        positive_int("every_steps", self.every_steps)


def planned_world_size(devices: DevicesSpec) -> int:
    """Ranks a run asks for: its GPUs (``gpus``, or nodes x gpus_per_node) when it asks for any, else cpu_ranks."""
    return devices.world_size(cuda=devices.gpus_per_node > 0)


def check_betas(key: str, value: Any) -> None:
    """Adam / LAMB betas: two numbers in [0, 1)."""
    if not (isinstance(value, list | tuple) and len(value) == 2):
        raise ValueError(f"{key}: expected two numbers in [0, 1), got {value!r}")
    for beta in value:
        number(key, beta, 0.0, 1.0, open_high=True)


# Keys that moved when the two run kinds got one vocabulary. Consulted before the JSON schema (schema.py) and before
# the typed checks (``check_renamed``), so an old study gets the new name rather than "unknown key".
class Renamed(NamedTuple):
    key: str  # dotted path inside a run (or the fine-tune recipe)
    message: str
    value: Any = None  # only this value was renamed (None: the key itself)


RENAMED_KEYS: tuple[Renamed, ...] = (
    Renamed("batch.accumulation", "replaced by batch.global (= micro x accumulation x data-parallel ranks)"),
    Renamed("log_every", "moved to log.every_steps"),
    Renamed("optimizer.min_lr", "moved to schedule.min_lr"),
    Renamed("optimizer.beta1", "replaced by optimizer.betas: [beta1, beta2]"),
    Renamed("optimizer.beta2", "replaced by optimizer.betas: [beta1, beta2]"),
    Renamed(
        "optimizer.name", "'adam' is now called 'adamw' (Megatron's adam is AdamW, decoupled weight decay)", "adam"
    ),
)


def renamed_key(run: Any) -> str | None:
    """``"<old key>: <where it went>"`` for the first renamed key in a run mapping, else None."""
    for entry in RENAMED_KEYS:
        node, *path = [run, *entry.key.split(".")]
        for part in path:
            node = node.get(part, _ABSENT) if isinstance(node, Mapping) else _ABSENT
        if node is not _ABSENT and (entry.value is None or node == entry.value):
            return f"{entry.key}: {entry.message}"
    return None


def check_renamed(run: Any, where: str) -> None:
    """Raise ``ConfigError("{where}.<old key>: moved to ...")`` for a key of the old vocabulary."""
    hint = renamed_key(run)
    if hint:
        raise ConfigError(f"{where}.{hint}")


_ABSENT = object()
