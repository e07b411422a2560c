"""The training loop shared by ViT pretraining and fine-tuning, read top to bottom.

Batch arithmetic (logged at start): the spec gives the global batch and the micro-batch; accumulation = global /
(micro x world size), e.g. global 64 = micro 32 x accumulation 1 x 2 ranks images per optimizer step; steps per epoch = (images // world size) // micro // accumulation (tails are dropped, never
duplicated). Each micro-batch reseeds its random streams from (seed, rank, micro-batch index), so a run resumed from a
checkpoint draws exactly what the uninterrupted run drew (bitwise-equal weights on CPU).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from pretrainflow.errors import ConfigError
from pretrainflow.launch import World
from pretrainflow.train.runlog import RunLog
from pretrainflow.train.signals import EXIT_CHECKPOINTED, WalltimeGuard
from pretrainflow.train.tracking import TrackedRun
from pretrainflow.train.vit import checkpoint as ckpt
from pretrainflow.train.vit.augment import augment_batch
from pretrainflow.train.vit.data import RankSampler, make_loader, match_channels, to_float
from pretrainflow.train.vit.deepspeed_config import deepspeed_config
from pretrainflow.train.vit.engine import Placement, input_dtype, make_engine, master_state_dict
from pretrainflow.train.vit.optim import build_optimizer
from pretrainflow.train.vit.schedule import warmup_cosine
from pretrainflow.train.vit.spec import AugmentSpec, BatchSpec, OptimizerSpec, ScheduleSpec


@dataclass(kw_only=True, slots=True)
class TrainPlan:
    """What the loop needs from a pretraining run or a fine-tune recipe."""

    optimizer: OptimizerSpec
    schedule: ScheduleSpec
    batch: BatchSpec
    augment: AugmentSpec
    precision: str
    zero_stage: int
    log_every: int
    num_workers: int
    seed: int
    image_size: int
    in_chans: int
    num_classes: int
    checkpoint_every: int = 0  # optimizer steps; 0 = no periodic checkpoints
    keep: int = 2


@dataclass(kw_only=True, slots=True)
class TrainResult:
    exit_code: int
    state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


def _micro_seed(seed: int, rank: int, micro_index: int) -> int:
    # Distinct streams per rank and micro-batch; 2**31 keeps it a valid seed for every RNG.
    return (seed * 1_000_003 + rank * 10_007 + micro_index * 2 + 1) % 2**31


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross entropy against soft targets (label smoothing, mixup), in fp32 whatever the model's precision."""
    return torch.sum(-targets * torch.log_softmax(logits.float(), dim=-1), dim=-1).mean()


@dataclass(kw_only=True, slots=True)
class BatchArithmetic:
    """How images become optimizer steps for one run (all ranks compute the same numbers)."""

    global_batch: int  # micro x accumulation x world size
    accumulation: int  # micro-batches per rank per optimizer step
    lr: float  # peak learning rate after the optional linear scaling
    micro_per_epoch: int  # micro-batches per rank per epoch
    steps_per_epoch: int
    total_steps: int
    warmup_steps: int

    @classmethod
    def of(cls, plan: TrainPlan, world: World, num_images: int) -> BatchArithmetic:
        accumulation = plan.batch.accumulation(world.world_size)
        global_batch = plan.batch.micro * accumulation * world.world_size
        per_rank = num_images // world.world_size
        micro_per_epoch = per_rank // plan.batch.micro
        steps_per_epoch = micro_per_epoch // accumulation
        if steps_per_epoch < 1:
            raise ConfigError(
                f"batch: {num_images} images over {world.world_size} rank(s) give {per_rank} per rank, fewer than one "
                f"optimizer step of micro {plan.batch.micro} x accumulation {accumulation}"
            )
        return cls(
            global_batch=global_batch,
            accumulation=accumulation,
            lr=plan.optimizer.scaled_lr(global_batch),
            micro_per_epoch=micro_per_epoch,
            steps_per_epoch=steps_per_epoch,
            total_steps=plan.schedule.epochs * steps_per_epoch,
            warmup_steps=round(plan.schedule.warmup_epochs * steps_per_epoch),
        )

    def describe(self, plan: TrainPlan, world: World, num_images: int) -> str:
        return (
            f"global batch {self.global_batch} = micro {plan.batch.micro} x accumulation {self.accumulation} x "
            f"{world.world_size} rank(s); {num_images} images -> {self.steps_per_epoch} steps/epoch x "
            f"{plan.schedule.epochs} epochs = {self.total_steps} steps; peak lr {self.lr:.3g} ({plan.optimizer.lr:g} x "
            f"{self.global_batch}/{plan.optimizer.lr_batch or self.global_batch}), warmup {self.warmup_steps} steps, "
            f"floor {plan.schedule.min_lr:g}; ZeRO {plan.zero_stage}, {plan.precision}"
        )


def train(
    model: torch.nn.Module,
    dataset,
    plan: TrainPlan,
    world: World,
    placement: Placement,
    *,
    checkpoint_root: Path | None,
    config: dict,
    config_hash: str,
    desc: str,
    tb_dir: Path | None,
    tracking: TrackedRun | None = None,
) -> TrainResult:
    """Train ``model`` on ``dataset`` with a DeepSpeed engine; collective (every rank calls it)."""
    started = time.perf_counter()
    arith = BatchArithmetic.of(plan, world, len(dataset))
    optimizer = build_optimizer(model, plan.optimizer, arith.lr)
    if getattr(optimizer, "is_sam", False) and (plan.zero_stage != 0 or arith.accumulation != 1):
        raise ConfigError("optimizer.name: sam needs zero_stage 0 and no accumulation (two passes per step)")
    if getattr(optimizer, "is_kfac", False) and (plan.zero_stage != 0 or plan.precision != "fp32"):
        # DeepSpeed would hand K-FAC flat ZeRO partitions / fp32 master copies instead of the layers' parameters
        raise ConfigError("optimizer.name: kfac needs zero_stage 0 and precision fp32 (train/vit/kfac.py)")
    _check_precision(plan.precision)
    scheduler = warmup_cosine(
        optimizer, total_steps=arith.total_steps, warmup_steps=arith.warmup_steps, floor=plan.schedule.min_lr
    )
    ds_config = deepspeed_config(
        micro=plan.batch.micro,
        accumulation=arith.accumulation,
        world_size=world.world_size,
        zero_stage=plan.zero_stage,
        precision=plan.precision,
        grad_clip=plan.optimizer.grad_clip,
    )
    engine = make_engine(model, optimizer, scheduler, ds_config)
    if world.is_main:
        print(f"[{desc}] {arith.describe(plan, world, len(dataset))}", flush=True)
    session = _Session(
        engine=engine,
        optimizer=optimizer,
        scheduler=scheduler,
        dtype=input_dtype(ds_config),
        plan=plan,
        world=world,
        placement=placement,
        arith=arith,
        checkpoint_root=checkpoint_root,
        client={"config": config, "config_hash": config_hash},
        desc=desc,
    )
    session.resume()
    session.log = RunLog(
        is_main=world.is_main,
        total_steps=arith.total_steps,
        initial_step=session.state["step"],
        desc=desc,
        tb_dir=tb_dir,
        rows=session.state["metrics"],
        tracking=tracking,
    )
    exit_code = session.run(dataset)
    session.log.close()
    if exit_code:
        return TrainResult(exit_code=exit_code)
    if checkpoint_root is not None and session.saved_step != session.state["step"]:
        session.save()  # a finished run that dies before its outputs are written does not train again
    weights = master_state_dict(engine)
    return TrainResult(
        exit_code=0,
        state_dict=weights,
        metrics=session.log.rows,
        summary=session.summary(time.perf_counter() - started),
    )


class _Session:
    """The mutable state of one training attempt: position, metric window, checkpoints."""

    def __init__(
        self,
        *,
        engine,
        optimizer,
        scheduler,
        dtype,
        plan: TrainPlan,
        world: World,
        placement: Placement,
        arith: BatchArithmetic,
        checkpoint_root: Path | None,
        client: dict,
        desc: str,
    ) -> None:
        self.engine, self.optimizer, self.scheduler, self.dtype = engine, optimizer, scheduler, dtype
        self.plan, self.world, self.placement, self.arith = plan, world, placement, arith
        self.checkpoint_root, self.client, self.desc = checkpoint_root, client, desc
        # position in the run (saved in every checkpoint as the client state)
        self.state = {"step": 0, "epoch": 0, "micro_in_epoch": 0, "metrics": [], "train_seconds": 0.0, "images": 0}
        self.saved_step = -1  # step of the newest checkpoint of this run
        self.log: RunLog | None = None
        self.gen = torch.Generator()
        self._reset_window()

    def _reset_window(self) -> None:
        # The window's loss stays a tensor on the device: no host sync per step, only at log steps.
        self.window_loss, self.window_micro, self.window_images = 0.0, 0, 0
        self.window_start = time.perf_counter()

    def resume(self) -> None:
        if self.checkpoint_root is None:
            return
        loaded = ckpt.load_latest(self.engine, self.checkpoint_root)
        if loaded is None:
            return
        self.state.update({k: loaded[k] for k in self.state})
        self.saved_step = self.state["step"]
        ckpt.set_rng_state(loaded["rng"])
        if self.world.is_main:
            print(f"[{self.desc}] resumed from step {self.state['step']} in {self.checkpoint_root}", flush=True)

    def save(self) -> None:
        client = {**self.state, "metrics": self.log.rows, "rng": ckpt.rng_state(), **self.client}
        ckpt.save(
            self.engine,
            self.checkpoint_root,
            step=self.state["step"],
            client_state=client,
            keep=self.plan.keep,
        )
        self.saved_step = self.state["step"]

    def run(self, dataset) -> int:
        """Train until the last epoch, or until a walltime signal; returns 0 or EXIT_CHECKPOINTED."""
        plan = self.plan
        sampler = RankSampler(
            num_samples=len(dataset), rank=self.world.rank, world_size=self.world.world_size, seed=plan.seed
        )
        self.engine.train()
        self._reset_window()
        with WalltimeGuard() as guard:
            for epoch in range(self.state["epoch"], plan.schedule.epochs):
                sampler.epoch, sampler.start = epoch, self.state["micro_in_epoch"] * plan.batch.micro
                todo = self.arith.steps_per_epoch * self.arith.accumulation - self.state["micro_in_epoch"]
                loader = make_loader(dataset, sampler, plan.batch.micro, plan.num_workers)
                for images, labels in itertools.islice(loader, todo):
                    self.micro_step(images, labels, epoch)
                    if self.state["micro_in_epoch"] % self.arith.accumulation:
                        continue
                    if self.after_optimizer_step(epoch, guard):
                        if self.world.is_main:
                            print(
                                f"[{self.desc}] signal {guard.requested}: checkpointed at step "
                                f"{self.state['step']}, exit {EXIT_CHECKPOINTED}",
                                flush=True,
                            )
                        return EXIT_CHECKPOINTED
        return 0

    def micro_step(self, images: torch.Tensor, labels: torch.Tensor, epoch: int) -> None:
        plan, device = self.plan, self.placement.device
        micro_index = epoch * self.arith.micro_per_epoch + self.state["micro_in_epoch"]
        seed = _micro_seed(plan.seed, self.world.rank, micro_index)
        torch.manual_seed(seed)  # drop path
        self.gen.manual_seed(seed + 1)  # augmentation
        x = match_channels(to_float(images, 0.0, 1.0, plan.image_size, device), plan.in_chans)
        x, targets = augment_batch(x, labels.to(device), spec=plan.augment, num_classes=plan.num_classes, gen=self.gen)
        loss = _forward_backward(self.engine, self.optimizer, x.to(self.dtype), targets)
        self.engine.step()  # DeepSpeed steps the optimizer and the schedule only at accumulation boundaries
        self.state["micro_in_epoch"] += 1
        self.window_loss, self.window_micro = self.window_loss + loss, self.window_micro + 1
        self.window_images += images.shape[0] * self.world.world_size

    def after_optimizer_step(self, epoch: int, guard: WalltimeGuard) -> bool:
        """Book-keeping after a complete optimizer step; True when the run must stop (checkpointed)."""
        state, plan = self.state, self.plan
        state["step"] += 1
        self.log.advance(state["step"])
        last_of_epoch = state["micro_in_epoch"] == self.arith.steps_per_epoch * self.arith.accumulation
        if state["step"] % plan.log_every == 0 or (last_of_epoch and epoch == plan.schedule.epochs - 1):
            self.record()
        if last_of_epoch:
            state["epoch"], state["micro_in_epoch"] = epoch + 1, 0
        periodic = plan.checkpoint_every and state["step"] % plan.checkpoint_every == 0
        stop = guard.agreed()
        if self.checkpoint_root is not None and (periodic or stop):
            self.save()
        return stop

    def record(self) -> None:
        now = time.perf_counter()
        self.state["train_seconds"] += now - self.window_start
        self.state["images"] += self.window_images
        self.log.record(
            {
                "step": self.state["step"],
                "epoch": self.state["step"] / self.arith.steps_per_epoch,
                "loss": _mean_over_ranks(float(self.window_loss) / self.window_micro),
                "lr": self.scheduler.get_last_lr()[0],
                "images_per_s": self.window_images / (now - self.window_start),
            }
        )
        self._reset_window()

    def summary(self, wall_seconds: float) -> dict:
        state, plan, rows = self.state, self.plan, self.log.rows
        return {
            "global_batch": self.arith.global_batch,
            "micro_batch": plan.batch.micro,
            "accumulation": self.arith.accumulation,
            "world_size": self.world.world_size,
            "steps": state["step"],
            "steps_per_epoch": self.arith.steps_per_epoch,
            "epochs": plan.schedule.epochs,
            "images_seen": state["images"],
            "train_seconds": state["train_seconds"],
            "throughput": state["images"] / max(state["train_seconds"], 1e-9),
            "throughput_unit": "images/s",
            "peak_lr": self.arith.lr,
            "wall_seconds_this_attempt": wall_seconds,
            "precision": plan.precision,
            "zero_stage": plan.zero_stage,
            "final_loss": rows[-1]["loss"] if rows else float("nan"),
        }


def _check_precision(precision: str) -> None:
    """fp16 needs an accelerator with fp16 kernels (GPUs; most CPUs lack them): say so before DeepSpeed fails."""
    if precision != "fp16":
        return
    from deepspeed.accelerator import get_accelerator

    accelerator = get_accelerator()
    if not accelerator.is_fp16_supported():
        raise ConfigError(
            f"precision: fp16 is not supported by this machine's {accelerator.device_name()} accelerator; "
            "use bf16 or fp32 here (fp16 is for GPUs)"
        )


def _forward_backward(engine, optimizer, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """One micro-batch: forward, loss, backward (DeepSpeed divides by the accumulation steps). SAM does its ascent
    step here and a second forward/backward at the perturbed weights; ``engine.step()`` then takes the descent step."""
    loss = soft_cross_entropy(engine(x), targets)
    engine.backward(loss)
    if getattr(optimizer, "is_sam", False):
        optimizer.first_step(zero_grad=True)
        engine.backward(soft_cross_entropy(engine(x), targets))
    return loss.detach()


def _mean_over_ranks(value: float) -> float:
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    tensor = torch.tensor([value], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        tensor = tensor.cuda()
    dist.all_reduce(tensor)
    return float(tensor.item()) / dist.get_world_size()
