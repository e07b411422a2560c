"""Typed LLM pretraining run spec (``kind: llm`` under ``pretrain``) and its check for the study loader.

Example (the default study's run, after the loader merged in ``run_id``, ``seed`` and ``corpus_spec``)::

    {"kind": "llm", "model": {"name": "gpt_micro"}, "corpus": "pydocs", "parallel": {"tensor": 2, "pipeline": 1},
     "seq_length": 128, "batch": {"micro": 8, "global": 8},
     "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01},
     "schedule": {"train_steps": 60, "warmup_steps": 6, "min_lr": 1e-4},
     "devices": {"nodes": 1, "gpus_per_node": 0, "cpu_ranks": 2}}

Sections are typed like the ViT run's (train/vit/spec.py) and share its vocabulary (train/spec.py): ``batch``,
``checkpoint``, ``log``, ``devices``, ``schedule.min_lr``, ``optimizer.betas``. World size = nodes x gpus_per_node on
GPUs, else cpu_ranks (one node). Data parallel = world / (tensor x pipeline). Global batch = micro x data_parallel x
accumulation steps (in sequences); tokens/step = global x seq_length. Training, evaluation and publishing read the
typed ``LLMRunSpec`` (``LLMRunSpec.from_dict(json.loads(spec))``); ``to_dict()`` gives back the resolved dict that is
hashed.

Continued pretraining: ``init`` names the weights a run starts from instead of a random initialisation, either a local
Hugging Face Llama directory (``{hf: data/hf/Meta-Llama-3-8B}``, imported by ``pretrainflow import-hf``) or an
earlier LLM run of the study (``{run: gpt-micro-pydocs}``; the loader merges its resolved spec in as ``run_spec``, so
a change to that run changes this run's hash too). ``model`` must describe the same architecture (checked here against
``run_spec``, and against the import's config.json when training starts). ``init.tokenizer``: ``keep`` = the corpus
is tokenised with the init's own tokenizer; ``extend`` = with a tokenizer whose vocabulary extends it (same ids for
every old token), the new embedding and output rows starting at the mean of the old tokenizer's rows.

Supervised fine-tuning: a run with an ``sft`` section (train/llm/sft_spec.py) trains on instruction examples instead of
the corpus blend, from its ``init`` (required), through the same loop; its corpus gives the tokenizer and held-out text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pretrainflow.errors import ConfigError
from pretrainflow.models.gpt import GPTShape, create_gpt_shape
from pretrainflow.spec_fields import build, flag, number, one_of, positive_int, safe_name, string, study_key, to_dict
from pretrainflow.train.devices import DevicesSpec
from pretrainflow.train.llm.sft_spec import SFTSpec
from pretrainflow.train.spec import BatchSpec, CheckpointSpec, LogSpec, check_betas, check_renamed, planned_world_size

OPTIMIZERS = ("adamw",)  # Adam with decoupled weight decay: megatron-core's optimizer "adam"
PRECISIONS = ("bf16", "fp32")  # on GPU; CPU always trains in fp32
INIT_TOKENIZER = ("keep", "extend")  # what the corpus tokenizer is to the init's: the same, or a superset
# GPTShape fields that do not change what a set of weights means (compared by shape_differences)
SHAPE_FIELDS_IGNORED = ("name", "init_method_std", "num_query_groups")  # num_query_groups: via query_groups


@dataclass(kw_only=True, slots=True)
class ParallelSpec:
    tensor: int = 1  # tensor-parallel degree (splits heads and FFN)
    pipeline: int = 1  # pipeline-parallel degree (GPU only)
    sequence_parallel: bool = False  # megatron sequence parallelism (needs tensor > 1)

    def __post_init__(self) -> None:
        positive_int("tensor", self.tensor)
        positive_int("pipeline", self.pipeline)
        flag("sequence_parallel", self.sequence_parallel)
        if self.sequence_parallel and self.tensor == 1:
            raise ValueError("sequence_parallel: needs parallel.tensor > 1")

    @property
    def model_parallel(self) -> int:
        """Ranks that hold one replica of the model: tensor x pipeline."""
        return self.tensor * self.pipeline

    def data_parallel(self, world: int) -> int:
        """Model replicas in a world of ``world`` ranks (e.g. 32 GPUs at TP 2 x PP 1 -> 16)."""
        return world // self.model_parallel


@dataclass(kw_only=True, slots=True)
class OptimizerSpec:
    """AdamW (megatron-core "adam": decoupled weight decay); defaults are Llama's."""

    name: str = "adamw"
    lr: float = 3.0e-4  # peak learning rate
    weight_decay: float = 0.1
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    eps: float = 1.0e-8
    grad_clip: float = 1.0  # global L2 norm; 0 = off

    def __post_init__(self) -> None:
        one_of("name", self.name, OPTIMIZERS)
        number("lr", self.lr, 0.0, open_low=True)
        number("weight_decay", self.weight_decay, 0.0)
        check_betas("betas", self.betas)
        number("eps", self.eps, 0.0, open_low=True)
        number("grad_clip", self.grad_clip, 0.0)


@dataclass(kw_only=True, slots=True)
class ScheduleSpec:
    """Linear warmup from 0 over ``warmup_steps``, then cosine to ``min_lr`` at ``train_steps`` (per optimizer step)."""

    train_steps: int
    warmup_steps: int = 0
    min_lr: float = 3.0e-5

    def __post_init__(self) -> None:
        positive_int("train_steps", self.train_steps)
        positive_int("warmup_steps", self.warmup_steps, minimum=0)
        if self.warmup_steps >= self.train_steps:
            raise ValueError(
                f"warmup_steps: expected fewer than train_steps={self.train_steps}, got {self.warmup_steps}"
            )
        number("min_lr", self.min_lr, 0.0)


@dataclass(kw_only=True, slots=True)
class LLMBatchSpec(BatchSpec):
    """An LLM run states both (in sequences): the tokens per step are global x seq_length."""

    global_batch: int = study_key("global")


@dataclass(kw_only=True, slots=True)
class LLMCheckpointSpec(CheckpointSpec):
    every_steps: int = 0  # only at the end and on a walltime signal
    keep: int = 1


@dataclass(kw_only=True, slots=True)
class LLMLogSpec(LogSpec):
    every_steps: int = 1


@dataclass(kw_only=True, slots=True)
class EvalSpec:
    iters: int = 4  # held-out batches (of batch.global sequences) for the perplexity row

    def __post_init__(self) -> None:
        positive_int("iters", self.iters)


@dataclass(kw_only=True, slots=True)
class InitSpec:
    """The weights a continued-pretraining run starts from: exactly one of ``hf`` or ``run`` (checked by LLMRunSpec)."""

    hf: str | None = None  # a local Hugging Face Llama directory (config.json, safetensors, tokenizer.json)
    run: str | None = None  # an earlier LLM run of the study (its published model.safetensors)
    tokenizer: str = "keep"  # "keep" | "extend" (new rows = mean of the old tokenizer's rows)
    run_spec: dict | None = None  # the resolved spec of ``run``, merged in by the study loader (hashed)

    def __post_init__(self) -> None:
        if self.hf is not None:
            string("hf", self.hf)
        if self.run is not None:
            safe_name("run", self.run)
        one_of("tokenizer", self.tokenizer, INIT_TOKENIZER)
        if self.run_spec is not None and not (self.run is not None and isinstance(self.run_spec, Mapping)):
            raise ValueError("run_spec: filled in by the study loader for init.run only; do not write it")


def shape_differences(shape: GPTShape, other: GPTShape) -> list[str]:
    """``field: mine vs other`` for every architecture field that differs (names and init std do not count).

    >>> from pretrainflow.models.gpt import create_gpt_shape
    >>> shape_differences(create_gpt_shape("gpt_micro"), create_gpt_shape("gpt_micro", num_query_groups=4))
    ['query groups: 2 vs 4']
    """
    found = []
    if shape.query_groups != other.query_groups:
        found.append(f"query groups: {shape.query_groups} vs {other.query_groups}")
    for item in fields(GPTShape):
        mine, theirs = getattr(shape, item.name), getattr(other, item.name)
        if item.name not in SHAPE_FIELDS_IGNORED and mine != theirs:
            found.append(f"{item.name}: {mine!r} vs {theirs!r}")
    return found


_NESTED = {
    "parallel": ParallelSpec,
    "batch": LLMBatchSpec,
    "optimizer": OptimizerSpec,
    "schedule": ScheduleSpec,
    "devices": DevicesSpec,
    "checkpoint": LLMCheckpointSpec,
    "eval": EvalSpec,
    "log": LLMLogSpec,
    "init": InitSpec,
    "sft": SFTSpec,
}


@dataclass(kw_only=True, slots=True)
class LLMRunSpec:
    """One GPT pretraining run (a ``pretrain.<name>`` entry with ``kind: llm``), as training reads it.

    Batch arithmetic: ``devices.world_size(cuda=)``, ``parallel.data_parallel(world)``, ``accumulation(world)``,
    ``tokens_per_step``; the model: ``gpt_shape()``; the hashed dict: ``to_dict()``.
    """

    kind: str = "llm"
    model: dict[str, Any]  # {"name": <registered GPT shape>, **overrides of its fields}
    corpus: str
    blend: dict[str, float] | None = None  # {corpus: weight}; default {corpus: 1.0}
    init: InitSpec | None = None  # continued pretraining: start from an imported or earlier run's weights
    sft: SFTSpec | None = None  # supervised fine-tuning on instruction data instead of the corpus (needs init)
    parallel: ParallelSpec = field(default_factory=ParallelSpec)
    seq_length: int
    batch: LLMBatchSpec
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec
    devices: DevicesSpec = field(default_factory=DevicesSpec)
    checkpoint: LLMCheckpointSpec = field(default_factory=LLMCheckpointSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    log: LLMLogSpec = field(default_factory=LLMLogSpec)
    precision: str = "bf16"
    seed: int = 0
    run_id: str = "run"  # filled in by the config loader
    corpus_spec: dict | None = None  # the corpus's resolved spec, merged in by the config loader
    ablation: dict | None = None  # {name, base, overrides} for a run expanded from an ablation grid

    def __post_init__(self) -> None:
        one_of("kind", self.kind, ["llm"])
        if not (isinstance(self.model, Mapping) and isinstance(self.model.get("name"), str)):
            raise ValueError(f"model: expected {{name: <registered GPT shape>, ...overrides}}, got {self.model!r}")
        try:
            self.gpt_shape().check_parallel(self.parallel.tensor, self.parallel.pipeline)
        except ConfigError as err:  # "model.x: ..." / "parallel.tensor: ...": let build() prefix the run's path
            raise ValueError(str(err)) from None
        if not (isinstance(self.corpus, str) and self.corpus):
            raise ValueError(f"corpus: expected the name of a corpus, got {self.corpus!r}")
        self._check_blend()
        self._check_init()
        self._check_sft()
        positive_int("seq_length", self.seq_length, minimum=8)
        world, model_parallel = planned_world_size(self.devices), self.parallel.model_parallel
        if world % model_parallel:
            raise ValueError(
                f"parallel: tensor x pipeline = {model_parallel} must divide the world size {world} (devices)"
            )
        self.batch.resolve(self.parallel.data_parallel(world))
        if self.schedule.min_lr > self.optimizer.lr:
            raise ValueError(
                f"schedule.min_lr: expected <= optimizer.lr = {self.optimizer.lr}, got {self.schedule.min_lr}"
            )
        one_of("precision", self.precision, PRECISIONS)
        positive_int("seed", self.seed, minimum=0)

    def gpt_shape(self) -> GPTShape:
        """The registered shape ``model.name`` with the other ``model`` keys as overrides."""
        overrides = {key: value for key, value in self.model.items() if key != "name"}
        return create_gpt_shape(self.model["name"], **overrides)

    def accumulation(self, world: int) -> int:
        """Micro-batches per optimizer step on each data-parallel rank (global / (micro x data parallel))."""
        return self.batch.accumulation(self.parallel.data_parallel(world))

    @property
    def tokens_per_step(self) -> int:
        """Tokens per optimizer step: global batch (sequences) x seq_length, e.g. 512 x 4,096 = 2,097,152."""
        assert self.batch.global_batch is not None  # resolved by __post_init__
        return self.batch.global_batch * self.seq_length

    @property
    def corpus_split(self) -> str:
        """The train/valid/test split of the run's corpus ("98,1,1"), from the merged-in ``corpus_spec``."""
        if not (isinstance(self.corpus_spec, Mapping) and "split" in self.corpus_spec):
            raise ConfigError(
                f"pretrain.{self.run_id}.corpus_spec: expected the corpus's resolved spec with a 'split' "
                f"(merged in by the study loader), got {self.corpus_spec!r}"
            )
        return str(self.corpus_spec["split"])

    def _check_blend(self) -> None:
        if self.blend is None:
            self.blend = {self.corpus: 1.0}
        if not (isinstance(self.blend, Mapping) and self.blend):
            raise ValueError(f"blend: expected a mapping {{corpus: weight}}, got {self.blend!r}")
        for name, weight in self.blend.items():
            number(f"blend.{name}", weight, 0.0, open_low=True)
        if self.corpus not in self.blend:
            raise ValueError(
                f"blend: expected the run's corpus {self.corpus!r} among {sorted(self.blend)} (it gives tokenizer and split)"
            )

    def _check_sft(self) -> None:
        """An SFT run fine-tunes weights it starts from, on its instruction data alone."""
        if self.sft is None:
            return
        if self.init is None:
            raise ValueError(
                "sft: needs init (the earlier LLM run, {run: NAME}, or the Hugging Face Llama, {hf: DIR}, it fine-tunes)"
            )
        if self.blend != {self.corpus: 1.0}:
            raise ValueError(f"blend: an SFT run trains on sft.data, not on a corpus blend, got {self.blend!r}")

    def _check_init(self) -> None:
        """Static checks of ``init`` (the files are checked when training starts: train/llm/hf_import.check_init)."""
        init = self.init
        if init is None:
            return
        if (init.hf is None) == (init.run is None):
            raise ValueError(
                "init: expected exactly one of hf (a local Hugging Face Llama directory) or run (an LLM run of the "
                f"study), got hf={init.hf!r}, run={init.run!r}"
            )
        if init.run is not None and init.run == self.run_id:
            raise ValueError(f"init.run: a run cannot start from itself ({init.run!r})")
        if init.hf is not None and self.position_embedding_learned:
            raise ValueError("init.hf: a Hugging Face Llama uses RoPE; model.position_embedding must be 'rope'")
        corpus_tokenizer = (self.corpus_spec or {}).get("tokenizer") or {}
        if init.hf is not None and corpus_tokenizer and "path" not in corpus_tokenizer:
            raise ValueError(
                f"init.hf: corpus {self.corpus!r} trains its own tokenizer, but a model imported from {init.hf} reads "
                f"the ids of its own: set corpora.{self.corpus}.tokenizer to {{path: {init.hf}/tokenizer.json}}"
                + (" (or to the extended tokenizer.json)" if init.tokenizer == "extend" else "")
            )
        if init.run_spec is not None:
            self._check_init_run(init.run, init.run_spec, corpus_tokenizer)

    def _check_init_run(self, run: str, source: Mapping[str, Any], corpus_tokenizer: Mapping[str, Any]) -> None:
        """The run started from must have this run's architecture and a tokenizer this one can keep or extend."""
        overrides = {key: value for key, value in source["model"].items() if key != "name"}
        differences = shape_differences(self.gpt_shape(), create_gpt_shape(source["model"]["name"], **overrides))
        if differences:
            raise ValueError(f"model: differs from the model of init.run {run!r} ({'; '.join(differences)})")
        if self.position_embedding_learned and source["seq_length"] != self.seq_length:
            raise ValueError(
                f"seq_length: learned position embeddings of init.run {run!r} have {source['seq_length']} rows, "
                f"got {self.seq_length}"
            )
        their_corpus = source.get("corpus")
        their_tokenizer = (source.get("corpus_spec") or {}).get("tokenizer") or {}
        if self.init.tokenizer == "keep" and their_corpus != self.corpus:
            if not (
                "path" in corpus_tokenizer and "path" in their_tokenizer
            ):  # equal paths' contents: checked at start
                raise ValueError(
                    f"init.tokenizer: keep needs corpus {self.corpus!r} tokenised with the tokenizer of init.run "
                    f"{run!r} (its corpus {their_corpus!r}): train on that corpus, or give both corpora the same "
                    "tokenizer.path"
                )
        if self.init.tokenizer == "extend" and corpus_tokenizer and "path" not in corpus_tokenizer:
            raise ValueError(
                f"init.tokenizer: extend needs corpora.{self.corpus}.tokenizer.path, a tokenizer.json that extends the "
                f"vocabulary of init.run {run!r}"
            )

    @property
    def position_embedding_learned(self) -> bool:
        return self.gpt_shape().position_embedding == "learned_absolute"

    @classmethod
    def from_dict(cls, data: Any, where: str = "pretrain") -> LLMRunSpec:
        check_renamed(data, where)
        return build(cls, data, where, _NESTED)

    def to_dict(self) -> dict[str, Any]:
        """The resolved spec under the study's keys, as hashed and passed to the commands (``ablation`` and
        ``corpus_spec`` only when set)."""
        resolved = to_dict(self)  # "sft" only when set: pretraining runs keep their resolved specs (and hashes)
        for key in ("corpus_spec", "ablation", "init", "sft"):
            if resolved[key] is None:
                del resolved[key]
        if "init" in resolved:
            resolved["init"] = {key: value for key, value in resolved["init"].items() if value is not None}
        return resolved


def check_llm_run(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Typed checks of one LLM run (called by the study loader); returns the spec with every default filled in."""
    return LLMRunSpec.from_dict(spec, where).to_dict()
