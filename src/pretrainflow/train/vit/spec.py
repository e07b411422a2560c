"""Typed specs of a ViT pretraining run, a downstream task and a fine-tune, checked with key paths.

The study's config loader calls ``check_vit_run(run, "pretrain.<name>")``, ``check_task(task, "tasks.<name>")`` and
``check_finetune(section, "finetune")``; the training commands call ``VitRunSpec.from_dict(json)`` /
``FinetuneSpec.from_dict(json)`` on the canonical JSON a rule passes with ``--spec``.
Defaults are the DeiT / FractalDB-ViT recipe (../shared/reference/fdsl.md); the default study overrides them for CPU.
``batch``, ``checkpoint`` and ``log`` are the sections both run kinds share (train/spec.py): global batch = micro x
accumulation x ranks, checked at load time against the ranks ``devices`` asks for.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pretrainflow.spec_fields import build, flag, number, one_of, positive_int, to_dict
from pretrainflow.study import layout
from pretrainflow.train.devices import DevicesSpec
from pretrainflow.train.spec import BatchSpec, CheckpointSpec, LogSpec, check_betas, check_renamed, planned_world_size

PRECISIONS = ("fp32", "bf16", "fp16")
OPTIMIZERS = ("adamw", "sgd", "lamb", "sam", "shampoo", "kfac")
BASE_OPTIMIZERS = ("adamw", "sgd", "lamb", "shampoo")  # what SAM may wrap (``optimizer.base``; optim._BASES)
KFAC_BASES = ("adamw", "sgd", "lamb")  # what K-FAC may wrap (Shampoo would precondition a second time)
ZERO_STAGES = (0, 1, 2, 3)
# How an on_the_fly run renders (datasets/torch_dataset.OnTheFlyDataset): the family's numpy renderer, or the torch one
# (datasets/gpu.py), which exists for FractalDB only. Both give the shards' pixels.
RENDERERS = ("numpy", "torch")
TORCH_RENDERER_FAMILIES = ("fractaldb",)
# Run keys that say how a run reads its data, not what it trains: kept in the resolved spec when set (the worker reads
# them from --spec) but left out of the config that names its checkpoints and goes into its outputs and rows
# (``VitRunSpec.trained_config``), so that switching one on or off resumes the same checkpoints and gives the same rows.
DATA_ACCESS_KEYS = ("stage_data",)


def trained_dict(spec: dict) -> dict:
    """A resolved ViT run spec without DATA_ACCESS_KEYS: what the run trains (its checkpoints, outputs, rows, the
    fine-tunes built on it, and the hash another study's copy is compared by)."""
    return {key: value for key, value in spec.items() if key not in DATA_ACCESS_KEYS}


TASK_KINDS = ("digits", "cifar10", "cifar100", "imagefolder")
TASK_KINDS_WITH_PATH = ("cifar10", "cifar100", "imagefolder")  # the kinds that read their data from ``path``
# Row files of the stages that are not a fine-tune (results/rows/{run}/pretrain.parquet, LLM heldout.parquet)
RESERVED_TASK_NAMES = (layout.PRETRAIN_ROWS_TASK, layout.HELDOUT_ROWS_TASK)


@dataclass(kw_only=True, slots=True)
class ModelSpec:
    """A registered ViT (models/vit_registry.py) and the fields it overrides."""

    name: str
    image_size: int | None = None
    patch_size: int | None = None
    in_chans: int | None = None
    drop_path: float = 0.1
    drop_rate: float = 0.0

    def __post_init__(self) -> None:
        from pretrainflow.models import list_vits

        one_of("name", self.name, list_vits())
        for key, minimum in (("image_size", 8), ("patch_size", 1), ("in_chans", 1)):
            if getattr(self, key) is not None:
                positive_int(key, getattr(self, key), minimum)
        number("drop_path", self.drop_path, 0.0, 0.99)
        number("drop_rate", self.drop_rate, 0.0, 0.99)
        try:
            self.config(1)  # shape checks (image_size multiple of patch_size, ...)
        except (ValueError, KeyError) as err:
            raise ValueError(str(err.args[0]).removeprefix("model.")) from err

    def config(self, num_classes: int):
        """The ``ViTConfig`` for ``num_classes`` outputs."""
        from pretrainflow.models import vit_config

        overrides = {k: getattr(self, k) for k in ("image_size", "patch_size", "in_chans") if getattr(self, k)}
        return vit_config(
            self.name, num_classes=num_classes, drop_path=self.drop_path, drop_rate=self.drop_rate, **overrides
        )


@dataclass(kw_only=True, slots=True)
class OptimizerSpec:
    """Optimizer (train/vit/optim.py registry). ``lr`` is the rate at ``lr_batch`` images; it scales linearly with the
    global batch when ``lr_batch`` is set (DeiT: lr 5e-4 x batch / 512)."""

    name: str = "adamw"
    lr: float = 5e-4
    lr_batch: int | None = None  # e.g. 512 for the DeiT rule; None: ``lr`` is used as given
    weight_decay: float = 0.05
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    momentum: float = 0.9
    base: str = "adamw"  # the optimizer SAM or K-FAC wraps
    rho: float = 0.05  # SAM neighbourhood size
    # K-FAC (train/vit/kfac.py): Tikhonov damping split between the two factors, steps between factor updates and
    # between inverse updates, weight of the newest factors in their moving average (1 = no memory), KL-clip bound
    damping: float = 1e-3
    cov_update_every: int = 1
    inv_update_every: int = 10  # a multiple of cov_update_every
    ema_decay: float = 0.05
    kl_clip: float | None = None  # None: off; e.g. 1e-3 with base sgd (Ba et al. 2017)
    grad_clip: float | None = None  # max global L2 norm of the gradients, None for no clipping

    def __post_init__(self) -> None:
        one_of("name", self.name, OPTIMIZERS)
        if self.name == "kfac" and self.base not in KFAC_BASES:
            raise ValueError(f"base: kfac wraps one of {list(KFAC_BASES)}, got {self.base!r}")
        if self.base in ("sam", "kfac"):
            raise ValueError(
                f"base: expected one of {list(BASE_OPTIMIZERS)}, got {self.base!r} (SAM and K-FAC wrap a base optimizer; "
                "neither wraps the other: K-FAC's factors come from the engine's one backward pass, SAM takes two)"
            )
        one_of("base", self.base, BASE_OPTIMIZERS)
        number("lr", self.lr, 0.0, open_low=True)
        if self.lr_batch is not None:
            positive_int("lr_batch", self.lr_batch)
        number("weight_decay", self.weight_decay, 0.0)
        check_betas("betas", self.betas)
        number("eps", self.eps, 0.0, open_low=True)
        number("momentum", self.momentum, 0.0, 1.0)
        number("rho", self.rho, 0.0, open_low=True)
        number("damping", self.damping, 0.0, open_low=True)
        positive_int("cov_update_every", self.cov_update_every)
        positive_int("inv_update_every", self.inv_update_every)
        if self.inv_update_every % self.cov_update_every:
            raise ValueError(
                f"inv_update_every: expected a multiple of cov_update_every {self.cov_update_every} (inverses of "
                f"factors updated in the same step), got {self.inv_update_every}"
            )
        number("ema_decay", self.ema_decay, 0.0, 1.0, open_low=True)
        if self.kl_clip is not None:
            number("kl_clip", self.kl_clip, 0.0, open_low=True)
        if self.grad_clip is not None:
            number("grad_clip", self.grad_clip, 0.0, open_low=True)

    def scaled_lr(self, global_batch: int) -> float:
        return self.lr * global_batch / self.lr_batch if self.lr_batch else self.lr


@dataclass(kw_only=True, slots=True)
class ScheduleSpec:
    """Linear warmup from 0 then cosine to ``min_lr`` (absolute), per optimizer step."""

    epochs: int = 300
    warmup_epochs: float = 5.0
    min_lr: float = 1e-5

    def __post_init__(self) -> None:
        positive_int("epochs", self.epochs)
        number("warmup_epochs", self.warmup_epochs, 0.0, float(self.epochs))
        number("min_lr", self.min_lr, 0.0)


@dataclass(kw_only=True, slots=True)
class AugmentSpec:
    """DeiT-style augmentation on tensors; each part switches off with 0 / false / null."""

    random_resized_crop: bool = True
    crop_scale: list[float] = field(default_factory=lambda: [0.08, 1.0])
    hflip: float = 0.0  # off for FDSL pretraining (fdsl.md); 0.5 for natural images
    randaugment_ops: int = 2  # RandAugment m9-mstd0.5: 2 ops per image
    randaugment_magnitude: float = 9.0  # out of 10
    randaugment_magnitude_std: float = 0.5
    color_jitter: float = 0.4
    random_erasing: float = 0.25
    mixup: float = 0.8  # Beta(alpha, alpha); 0 = off
    cutmix: float = 1.0
    mix_prob: float = 1.0
    switch_prob: float = 0.5  # probability of cutmix instead of mixup when both are on
    label_smoothing: float = 0.1
    mean: float = 0.5
    std: float = 0.5

    def __post_init__(self) -> None:
        flag("random_resized_crop", self.random_resized_crop)
        if not (isinstance(self.crop_scale, list | tuple) and len(self.crop_scale) == 2):
            raise ValueError(f"crop_scale: expected [min, max] in (0, 1], got {self.crop_scale!r}")
        for value in self.crop_scale:
            number("crop_scale", value, 0.0, 1.0, open_low=True)
        positive_int("randaugment_ops", self.randaugment_ops, minimum=0)
        number("randaugment_magnitude", self.randaugment_magnitude, 0.0, 10.0)
        number("randaugment_magnitude_std", self.randaugment_magnitude_std, 0.0)
        for key in ("hflip", "color_jitter", "random_erasing", "mix_prob", "switch_prob"):
            number(key, getattr(self, key), 0.0, 1.0)
        number("mixup", self.mixup, 0.0)
        number("cutmix", self.cutmix, 0.0)
        number("label_smoothing", self.label_smoothing, 0.0, 0.99)
        number("std", self.std, 0.0, open_low=True)
        number("mean", self.mean, 0.0, 1.0)


def _engine_checks(spec: Any) -> None:
    """Checks shared by a pretraining run and the fine-tune recipe; fills in ``batch.global`` (micro x ranks)."""
    ranks = planned_world_size(spec.devices)
    spec.batch.resolve(ranks)
    accumulation = spec.batch.accumulation(ranks)
    if spec.optimizer.name == "sam" and (spec.zero_stage != 0 or accumulation != 1):
        # SAM takes two forward/backward passes per step on full gradients: no ZeRO partitioning, no accumulation.
        raise ValueError(
            f"optimizer.name: sam needs zero_stage 0 and no accumulation (batch.global = micro x ranks = "
            f"{spec.batch.micro} x {ranks}), got zero_stage {spec.zero_stage} and batch.global {spec.batch.global_batch}"
        )
    one_of("precision", spec.precision, PRECISIONS)
    one_of("zero_stage", spec.zero_stage, ZERO_STAGES)
    _kfac_checks(spec)
    positive_int("num_workers", spec.num_workers, minimum=0)
    positive_int("seed", spec.seed, minimum=0)


def _kfac_checks(spec: Any) -> None:
    """K-FAC preconditions the gradients of the model's own Linear/Conv2d parameters (train/vit/kfac.py)."""
    if spec.optimizer.name != "kfac":
        return
    if spec.zero_stage != 0:
        raise ValueError(
            f"zero_stage: optimizer.name kfac needs zero_stage 0, got {spec.zero_stage} (ZeRO 1/2/3 give the optimizer "
            "flat partitions of the gradients, not the per-layer gradients K-FAC's Kronecker factors precondition)"
        )
    if spec.precision != "fp32":
        raise ValueError(
            f"precision: optimizer.name kfac needs precision fp32, got {spec.precision!r} (DeepSpeed's bf16/fp16 "
            "optimizers step fp32 master copies, not the parameters of the layers K-FAC hooks)"
        )


_RUN_NESTED = {
    "model": ModelSpec,
    "optimizer": OptimizerSpec,
    "schedule": ScheduleSpec,
    "batch": BatchSpec,
    "augment": AugmentSpec,
    "devices": DevicesSpec,
    "checkpoint": CheckpointSpec,
    "log": LogSpec,
}


@dataclass(kw_only=True, slots=True)
class VitRunSpec:
    """One ViT pretraining run (a ``pretrain.<name>`` entry with ``kind: vit``)."""

    kind: str = "vit"
    model: ModelSpec
    dataset: str
    optimizer: OptimizerSpec = field(default_factory=OptimizerSpec)
    schedule: ScheduleSpec = field(default_factory=ScheduleSpec)
    batch: BatchSpec = field(default_factory=lambda: BatchSpec(micro=64))
    augment: AugmentSpec = field(default_factory=AugmentSpec)
    devices: DevicesSpec = field(default_factory=DevicesSpec)
    checkpoint: CheckpointSpec = field(default_factory=CheckpointSpec)  # every 1000 steps, keep 2
    log: LogSpec = field(default_factory=LogSpec)  # a metric row every 10 optimizer steps
    precision: str = "fp32"
    zero_stage: int = 0
    num_workers: int = 0  # DataLoader workers per rank (0: load in the training process)
    seed: int = 0
    on_the_fly: bool = False  # render images from the category parameters instead of reading shards
    renderer: str = "numpy"  # with on_the_fly: "torch" renders FractalDB through datasets/gpu.py (on the CPU)
    stage_data: bool = False  # copy the shards to node-local storage first and read them there (launch/staging.py)
    run_id: str = ""  # filled in by the config loader
    dataset_spec: dict | None = None  # the dataset's resolved spec, merged in by the config loader
    ablation: dict | None = None  # {name, base, overrides} for a run expanded from an ablation grid

    def __post_init__(self) -> None:
        one_of("kind", self.kind, ["vit"])
        _engine_checks(self)
        flag("on_the_fly", self.on_the_fly)
        one_of("renderer", self.renderer, RENDERERS)
        flag("stage_data", self.stage_data)
        if self.stage_data and self.on_the_fly:
            raise ValueError("stage_data: an on_the_fly run reads no shards to stage; drop one of the two keys")
        if self.renderer != "numpy" and not self.on_the_fly:
            raise ValueError(f"renderer: {self.renderer!r} renders on the fly; set on_the_fly: true or drop renderer")
        family = (self.dataset_spec or {}).get("family")
        if self.renderer == "torch" and family is not None and family not in TORCH_RENDERER_FAMILIES:
            raise ValueError(
                f"renderer: the torch renderer draws {list(TORCH_RENDERER_FAMILIES)} only; dataset {self.dataset!r} "
                f"is family {family!r} (use renderer numpy, the default)"
            )

    def omitted_keys(self) -> tuple[str, ...]:
        """``renderer`` and ``stage_data`` at their defaults are left out of the resolved spec: the config hashes of
        runs written before the keys existed stay as they were (spec_fields.to_dict)."""
        return (("renderer",) if self.renderer == "numpy" else ()) + (() if self.stage_data else ("stage_data",))

    @classmethod
    def from_dict(cls, data: Any, where: str = "pretrain") -> VitRunSpec:
        check_renamed(data, where)
        return build(cls, data, where, _RUN_NESTED)

    def to_dict(self) -> dict:
        """The resolved spec under the study's keys (``batch.global``), as hashed and passed to the commands."""
        return to_dict(self)

    def trained_config(self) -> dict:
        """The resolved spec without DATA_ACCESS_KEYS: what the run trains, hashed into its checkpoint directory and
        written into its outputs and rows. A staged run and the same run reading the shared file system are one run.
        """
        return trained_dict(self.to_dict())


@dataclass(kw_only=True, slots=True)
class TaskSpec:
    """A downstream classification task (tasks/ registry)."""

    kind: str
    name: str = ""  # the task's name in the study (filled in by the config loader)
    path: str | None = None  # CIFAR python archive (.tar.gz or extracted dir) / ImageFolder root with train/ and val/
    image_size: int | None = None  # default: the model's image size
    test_fraction: float = 0.25  # digits: held-out share
    split_seed: int = 0  # digits: seed of the fixed train/test split
    train_limit: int | None = None  # use only the first N training images (few-shot studies, fast tests)

    def __post_init__(self) -> None:
        one_of("kind", self.kind, TASK_KINDS)
        if self.name in RESERVED_TASK_NAMES:
            raise ValueError(
                f"name: {self.name!r} is reserved for the rows of pretraining runs; choose another task name"
            )
        if self.kind in TASK_KINDS_WITH_PATH and not (isinstance(self.path, str) and self.path):
            raise ValueError(f"path: task kind {self.kind!r} needs the path of its data, got {self.path!r}")
        if self.image_size is not None:
            positive_int("image_size", self.image_size, minimum=8)
        number("test_fraction", self.test_fraction, 0.0, 0.9, open_low=True)
        positive_int("split_seed", self.split_seed, minimum=0)
        if self.train_limit is not None:
            positive_int("train_limit", self.train_limit)

    @classmethod
    def from_dict(cls, data: Any, where: str = "tasks") -> TaskSpec:
        return build(cls, data, where)


@dataclass(kw_only=True, slots=True)
class RecipeSpec:
    """How every fine-tune of a study trains (the ``finetune.recipe`` section)."""

    epochs: int = 100
    optimizer: OptimizerSpec = field(
        default_factory=lambda: OptimizerSpec(name="sgd", lr=0.01, lr_batch=512, weight_decay=1e-4)
    )
    schedule: ScheduleSpec | None = None  # default: warmup 0, cosine to 0 over ``epochs``
    batch: BatchSpec = field(default_factory=lambda: BatchSpec(micro=96))
    augment: AugmentSpec = field(default_factory=lambda: AugmentSpec(hflip=0.5))
    devices: DevicesSpec = field(default_factory=DevicesSpec)
    log: LogSpec = field(default_factory=LogSpec)
    precision: str = "fp32"
    zero_stage: int = 0
    num_workers: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        positive_int("epochs", self.epochs)
        _engine_checks(self)
        if self.schedule is None:
            self.schedule = ScheduleSpec(epochs=self.epochs, warmup_epochs=0.0, min_lr=0.0)
        elif self.schedule.epochs != self.epochs:
            raise ValueError(f"schedule.epochs: {self.schedule.epochs} differs from recipe epochs {self.epochs}")


_RECIPE_NESTED = {
    k: v for k, v in _RUN_NESTED.items() if k in ("optimizer", "schedule", "batch", "augment", "devices", "log")
}


def _build_recipe(data: Any, where: str) -> Any:
    check_renamed(data, where)
    return build(RecipeSpec, data, where, _RECIPE_NESTED)


@dataclass(kw_only=True, slots=True)
class FinetuneSection:
    """The study's ``finetune`` section: which tasks, whether to train a scratch baseline, and the recipe."""

    tasks: list[str]
    scratch_baseline: bool = True
    recipe: RecipeSpec = field(default_factory=RecipeSpec)

    def __post_init__(self) -> None:
        if not (isinstance(self.tasks, list) and self.tasks and all(isinstance(t, str) for t in self.tasks)):
            raise ValueError(f"tasks: expected a non-empty list of task names, got {self.tasks!r}")
        flag("scratch_baseline", self.scratch_baseline)


@dataclass(kw_only=True, slots=True)
class FinetuneSpec:
    """One fine-tune (docs/CONTRACTS.md "Finetune spec"): a pretrained run or scratch, on one task."""

    run_id: str
    source: str
    model: ModelSpec
    task: str
    task_spec: TaskSpec
    recipe: RecipeSpec
    seed: int = 0
    pretrain_spec: dict | None = None

    def __post_init__(self) -> None:
        one_of("source", self.source, ["pretrained", "scratch"])
        positive_int("seed", self.seed, minimum=0)

    @classmethod
    def from_dict(cls, data: Any, where: str = "finetune") -> FinetuneSpec:
        if isinstance(data, dict) and isinstance(data.get("recipe"), dict):
            data = {**data, "recipe": _build_recipe(data["recipe"], f"{where}.recipe")}
        return build(cls, data, where, {"model": ModelSpec, "task_spec": TaskSpec})

    def to_dict(self) -> dict:
        return to_dict(self)


# The config loader's hooks (pretrainflow.study.load.AREA_CHECKS): each returns the spec with every default filled in,
# so the resolved spec that is hashed and passed to the rules shows every value the run uses.


def check_vit_run(spec: Any, where: str) -> dict:
    """Validate a ``pretrain.<name>`` run of kind vit; raise ``ConfigError`` naming the key path."""
    return VitRunSpec.from_dict(spec, where).to_dict()


def check_task(spec: Any, where: str) -> dict:
    """Validate a ``tasks.<name>`` entry."""
    return to_dict(TaskSpec.from_dict(spec, where))


def check_finetune(spec: Any, where: str) -> dict:
    """Validate the study's ``finetune`` section."""
    data = spec
    if isinstance(spec, dict) and isinstance(spec.get("recipe"), dict):
        data = {**spec, "recipe": _build_recipe(spec["recipe"], f"{where}.recipe")}
    return to_dict(build(FinetuneSection, data, where))
