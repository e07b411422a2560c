"""Typed LLM pretraining run spec (``kind: llm`` under ``pretrain``) and its check for the study loader.

Example (the default study's run, after the loader merged in ``run_id``, ``seed`` and ``corpus_spec``)::

    {"kind": "llm", "model": {"name": "gpt_micro"}, "corpus": "pydocs", "parallel": {"tensor": 2, "pipeline": 1},
     "seq_length": 128, "batch": {"micro": 8, "global": 8},
     "optimizer": {"name": "adam", "lr": 1e-3, "min_lr": 1e-4, "weight_decay": 0.01},
     "schedule": {"train_steps": 60, "warmup_steps": 6}, "devices": {"nodes": 1, "gpus_per_node": 0, "cpu_ranks": 2}}

World size = nodes x gpus_per_node on GPUs, else cpu_ranks (one node). Data parallel = world / (tensor x pipeline).
Global batch = micro x data_parallel x accumulation steps (in sequences); tokens/step = global x seq_length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pretrainflow.errors import ConfigError, expect
from pretrainflow.models.gpt import GPTShape, create_gpt_shape

OPTIMIZERS = ("adam",)  # Adam with decoupled weight decay (AdamW), as Megatron's "adam"
_DEFAULTS: dict[str, dict[str, Any]] = {
    "parallel": {"tensor": 1, "pipeline": 1, "sequence_parallel": False},
    "optimizer": {"name": "adam", "lr": 3.0e-4, "min_lr": 3.0e-5, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95,
                  "eps": 1.0e-8, "grad_clip": 1.0},
    "schedule": {"warmup_steps": 0},
    # cpus_per_rank: cores per rank; mem_mb: per node; runtime_minutes: walltime per job (longer runs resume)
    "devices": {"nodes": 1, "gpus_per_node": 0, "cpu_ranks": 1, "cpus_per_rank": 1, "mem_mb": 4000,
                "runtime_minutes": 60},
    "checkpoint": {"every_steps": 0},  # 0: only at the end (and on a walltime signal)
    "eval": {"iters": 4},
    "log": {"every_steps": 1},
    "precision": "bf16",  # on GPU; CPU always trains in fp32
}  # fmt: skip


def _merged(spec: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = spec.get(key, {})
    expect(isinstance(value, Mapping), key, f"expected a mapping, got {value!r}")
    unknown = sorted(set(value) - set(_DEFAULTS.get(key, {})) - {"train_steps", "micro", "global"})
    expect(not unknown, key, f"unknown keys {unknown}; expected some of {sorted(_DEFAULTS.get(key, {}))}")
    return {**_DEFAULTS.get(key, {}), **value}


def _positive_int(value: Any, where: str, minimum: int = 1) -> int:
    expect(isinstance(value, int) and not isinstance(value, bool) and value >= minimum, where,
           f"expected an integer >= {minimum}, got {value!r}")  # fmt: skip
    return value


@dataclass(kw_only=True, slots=True)
class LLMRun:
    """A resolved LLM run: the fields training needs, plus ``spec`` (the resolved dict that is hashed)."""

    run_id: str
    seed: int
    shape: GPTShape
    corpus: str
    blend: dict[str, float]
    tensor: int
    pipeline: int
    sequence_parallel: bool
    seq_length: int
    micro_batch: int
    global_batch: int
    optimizer: dict[str, Any]
    train_steps: int
    warmup_steps: int
    nodes: int
    gpus_per_node: int
    cpu_ranks: int
    cpus_per_rank: int
    mem_mb: int
    runtime_minutes: int
    checkpoint_every: int
    eval_iters: int
    log_every: int
    precision: str
    spec: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.shape.check_parallel(self.tensor, self.pipeline)
        world = self.world_size(cuda=self.gpus_per_node > 0)
        model_parallel = self.tensor * self.pipeline
        expect(world % model_parallel == 0, "parallel",
               f"tensor x pipeline = {model_parallel} must divide the world size {world} (devices)")  # fmt: skip
        dp = world // model_parallel
        expect(self.global_batch % (self.micro_batch * dp) == 0, "batch.global",
               f"expected a multiple of micro x data_parallel = {self.micro_batch} x {dp}, got {self.global_batch}")  # fmt: skip
        expect(self.warmup_steps < self.train_steps, "schedule.warmup_steps",
               f"expected fewer than train_steps={self.train_steps}, got {self.warmup_steps}")  # fmt: skip
        expect(not (self.sequence_parallel and self.tensor == 1), "parallel.sequence_parallel",
               "needs parallel.tensor > 1")  # fmt: skip
        expect(self.precision in ("bf16", "fp32"), "precision", f"expected bf16 or fp32, got {self.precision!r}")

    def world_size(self, *, cuda: bool) -> int:
        """Processes: nodes x gpus_per_node on GPUs, cpu_ranks on CPU."""
        return self.nodes * self.gpus_per_node if cuda else self.cpu_ranks

    def data_parallel(self, world: int) -> int:
        return world // (self.tensor * self.pipeline)

    def accumulation(self, world: int) -> int:
        """Micro-batches per optimizer step on each data-parallel rank."""
        return self.global_batch // (self.micro_batch * self.data_parallel(world))

    @property
    def tokens_per_step(self) -> int:
        return self.global_batch * self.seq_length


def llm_run_from_dict(spec: Mapping[str, Any], where: str = "pretrain") -> LLMRun:
    """Validate and resolve a run mapping; ConfigError messages start with ``where``."""
    try:
        return _build(spec)
    except ConfigError as err:
        raise ConfigError(f"{where}.{err}") from None


def _build(spec: Mapping[str, Any]) -> LLMRun:
    known = {"kind", "run_id", "seed", "model", "corpus", "corpus_spec", "parallel", "seq_length", "batch",
             "optimizer", "schedule", "devices", "checkpoint", "eval", "log", "precision", "ablation", "blend"}  # fmt: skip
    unknown = sorted(set(spec) - known)
    expect(not unknown, "run", f"unknown keys {unknown}; expected some of {sorted(known)}")
    model = dict(spec.get("model") or {})
    expect("name" in model, "model.name", "expected a registered GPT shape name")
    shape = create_gpt_shape(model.pop("name"), **model)
    parallel, optimizer = _merged(spec, "parallel"), _merged(spec, "optimizer")
    schedule, devices = _merged(spec, "schedule"), _merged(spec, "devices")
    batch = spec.get("batch") or {}
    expect(isinstance(batch, Mapping) and set(batch) <= {"micro", "global"}, "batch", "expected {micro, global}")
    expect(optimizer["name"] in OPTIMIZERS, "optimizer.name", f"expected one of {list(OPTIMIZERS)}")
    for key in ("lr", "min_lr", "weight_decay"):
        value = optimizer[key]
        expect(
            isinstance(value, int | float) and value >= 0, f"optimizer.{key}", f"expected a number >= 0, got {value!r}"
        )
    expect(optimizer["min_lr"] <= optimizer["lr"], "optimizer.min_lr", "expected min_lr <= lr")
    corpus = str(spec.get("corpus", ""))
    blend = dict(spec.get("blend") or {corpus: 1.0})
    for name, weight in blend.items():
        expect(
            isinstance(weight, int | float) and weight > 0, f"blend.{name}", f"expected a weight > 0, got {weight!r}"
        )
    expect(
        corpus in blend,
        "blend",
        f"expected the run's corpus {corpus!r} among {sorted(blend)} (it gives tokenizer and split)",
    )
    run = LLMRun(
        run_id=str(spec.get("run_id", "run")),
        seed=_positive_int(spec.get("seed", 0), "seed", 0),
        shape=shape,
        corpus=corpus,
        blend=blend,
        tensor=_positive_int(parallel["tensor"], "parallel.tensor"),
        pipeline=_positive_int(parallel["pipeline"], "parallel.pipeline"),
        sequence_parallel=bool(parallel["sequence_parallel"]),
        seq_length=_positive_int(spec.get("seq_length"), "seq_length", 8),
        micro_batch=_positive_int(batch.get("micro"), "batch.micro"),
        global_batch=_positive_int(batch.get("global"), "batch.global"),
        optimizer=optimizer,
        train_steps=_positive_int(schedule.get("train_steps"), "schedule.train_steps"),
        warmup_steps=_positive_int(schedule["warmup_steps"], "schedule.warmup_steps", 0),
        nodes=_positive_int(devices["nodes"], "devices.nodes"),
        gpus_per_node=_positive_int(devices["gpus_per_node"], "devices.gpus_per_node", 0),
        cpu_ranks=_positive_int(devices["cpu_ranks"], "devices.cpu_ranks"),
        cpus_per_rank=_positive_int(devices["cpus_per_rank"], "devices.cpus_per_rank"),
        mem_mb=_positive_int(devices["mem_mb"], "devices.mem_mb", 100),
        runtime_minutes=_positive_int(devices["runtime_minutes"], "devices.runtime_minutes"),
        checkpoint_every=_positive_int(_merged(spec, "checkpoint")["every_steps"], "checkpoint.every_steps", 0),
        eval_iters=_positive_int(_merged(spec, "eval")["iters"], "eval.iters"),
        log_every=_positive_int(_merged(spec, "log")["every_steps"], "log.every_steps"),
        precision=str(spec.get("precision", _DEFAULTS["precision"])),
    )
    resolved = {k: v for k, v in spec.items() if k != "ablation"} | {
        "model": {"name": shape.name, **model},
        "parallel": parallel, "optimizer": optimizer, "schedule": schedule, "devices": devices,
        "checkpoint": _merged(spec, "checkpoint"), "eval": _merged(spec, "eval"), "log": _merged(spec, "log"),
        "precision": run.precision, "blend": blend,
    }  # fmt: skip
    if "ablation" in spec:
        resolved["ablation"] = spec["ablation"]
    run.spec = resolved
    return run


def check_llm_run(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Typed checks of one LLM run (called by the study loader); returns the spec with every default filled in."""
    return llm_run_from_dict(spec, where).spec
