"""The training loop shared by ViT pretraining and fine-tuning, read top to bottom.

Batch arithmetic (logged at start): global batch = micro x accumulation x world size, e.g. 32 x 1 x 2 ranks = 64 images
per optimizer step; steps per epoch = (images // world size) // micro // accumulation (tails are dropped, never
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
from pretrainflow.train import checkpoint as ckpt
from pretrainflow.train.augment import augment_batch
from pretrainflow.train.data import RankSampler, make_loader, match_channels, to_float
from pretrainflow.train.deepspeed_config import deepspeed_config
from pretrainflow.train.engine import Placement, input_dtype, make_engine, master_state_dict
from pretrainflow.train.logging import RunLog
from pretrainflow.train.optim import build_optimizer
from pretrainflow.train.schedule import warmup_cosine
from pretrainflow.train.signals import EXIT_CHECKPOINTED, WalltimeGuard
from pretrainflow.train.vit_spec import AugmentSpec, BatchSpec, OptimizerSpec, ScheduleSpec


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


def _check_plan(plan: TrainPlan, world: World, num_images: int, optimizer) -> tuple[int, int]:
    per_rank = num_images // world.world_size
    micro_per_epoch = per_rank // plan.batch.micro
    steps_per_epoch = micro_per_epoch // plan.batch.accumulation
    if steps_per_epoch < 1:
        raise ConfigError(
            f"batch: {num_images} images over {world.world_size} rank(s) give {per_rank} per rank, fewer than one "
            f"optimizer step of micro {plan.batch.micro} x accumulation {plan.batch.accumulation}"
        )
    if getattr(optimizer, "is_sam", False) and (plan.zero_stage != 0 or plan.batch.accumulation != 1):
        raise ConfigError("optimizer.name: sam needs zero_stage 0 and batch.accumulation 1 (two passes per step)")
    return steps_per_epoch, micro_per_epoch


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
) -> TrainResult:
    """Train ``model`` on ``dataset`` with a DeepSpeed engine; collective (every rank calls it)."""
    started = time.perf_counter()
    global_batch = plan.batch.micro * plan.batch.accumulation * world.world_size
    lr = plan.optimizer.scaled_lr(global_batch)
    optimizer = build_optimizer(model, plan.optimizer, lr)
    steps_per_epoch, micro_per_epoch = _check_plan(plan, world, len(dataset), optimizer)
    total_steps = plan.schedule.epochs * steps_per_epoch
    warmup_steps = round(plan.schedule.warmup_epochs * steps_per_epoch)
    scheduler = warmup_cosine(optimizer, total_steps=total_steps, warmup_steps=warmup_steps, floor=plan.schedule.min_lr)
    ds_config = deepspeed_config(
        micro=plan.batch.micro,
        accumulation=plan.batch.accumulation,
        world_size=world.world_size,
        zero_stage=plan.zero_stage,
        precision=plan.precision,
        grad_clip=plan.optimizer.grad_clip,
    )
    engine = make_engine(model, optimizer, scheduler, ds_config)
    dtype = input_dtype(ds_config)
    if world.is_main:
        print(
            f"[{desc}] global batch {global_batch} = micro {plan.batch.micro} x accumulation "
            f"{plan.batch.accumulation} x {world.world_size} rank(s); {len(dataset)} images -> {steps_per_epoch} "
            f"steps/epoch x {plan.schedule.epochs} epochs = {total_steps} steps; peak lr {lr:.3g} "
            f"({plan.optimizer.lr:g} x {global_batch}/{plan.optimizer.lr_batch or global_batch}), warmup "
            f"{warmup_steps} steps, floor {plan.schedule.min_lr:g}; ZeRO {plan.zero_stage}, {plan.precision}",
            flush=True,
        )

    state = {"step": 0, "epoch": 0, "micro_in_epoch": 0, "metrics": [], "train_seconds": 0.0, "images": 0}
    saved = {"step": -1}  # step of the newest checkpoint of this run
    if checkpoint_root is not None:
        loaded = ckpt.load_latest(engine, checkpoint_root)
        if loaded is not None:
            state.update({k: loaded[k] for k in state})
            saved["step"] = state["step"]
            ckpt.set_rng_state(loaded["rng"])
            if world.is_main:
                print(f"[{desc}] resumed from step {state['step']} in {checkpoint_root}", flush=True)

    log = RunLog(
        is_main=world.is_main,
        total_steps=total_steps,
        initial_step=state["step"],
        desc=desc,
        tb_dir=tb_dir,
        rows=state["metrics"],
    )
    gen = torch.Generator()
    sampler = RankSampler(num_samples=len(dataset), rank=world.rank, world_size=world.world_size, seed=plan.seed)
    # The window's loss stays a tensor on the device: no host sync per step, only at log steps.
    window_loss, window_micro, window_start, window_images = 0.0, 0, time.perf_counter(), 0

    def save_checkpoint() -> None:
        client = {**state, "metrics": log.rows, "rng": ckpt.rng_state(), "config": config, "config_hash": config_hash}
        ckpt.save(engine, checkpoint_root, step=state["step"], client_state=client, keep=plan.keep, rank=world.rank)
        saved["step"] = state["step"]

    exit_code = 0
    engine.train()
    with WalltimeGuard() as guard:
        for epoch in range(state["epoch"], plan.schedule.epochs):
            sampler.epoch, sampler.start = epoch, state["micro_in_epoch"] * plan.batch.micro
            todo = steps_per_epoch * plan.batch.accumulation - state["micro_in_epoch"]
            loader = make_loader(dataset, sampler, plan.batch.micro, plan.num_workers)
            for images, labels in itertools.islice(loader, todo):
                seed = _micro_seed(plan.seed, world.rank, epoch * micro_per_epoch + state["micro_in_epoch"])
                torch.manual_seed(seed)  # drop path
                gen.manual_seed(seed + 1)  # augmentation
                x = match_channels(to_float(images, 0.0, 1.0, plan.image_size, placement.device), plan.in_chans)
                x, targets = augment_batch(
                    x, labels.to(placement.device), spec=plan.augment, num_classes=plan.num_classes, gen=gen
                )
                loss = _forward_backward(engine, optimizer, x.to(dtype), targets)
                engine.step()
                state["micro_in_epoch"] += 1
                window_loss, window_micro = window_loss + loss, window_micro + 1
                window_images += images.shape[0] * world.world_size
                if state["micro_in_epoch"] % plan.batch.accumulation:
                    continue
                # ---- an optimizer step is complete ----
                state["step"] += 1
                log.advance()
                last_of_epoch = state["micro_in_epoch"] == steps_per_epoch * plan.batch.accumulation
                if state["step"] % plan.log_every == 0 or (last_of_epoch and epoch == plan.schedule.epochs - 1):
                    now = time.perf_counter()
                    mean_loss = _mean_over_ranks(float(window_loss) / window_micro)
                    state["train_seconds"] += now - window_start
                    state["images"] += window_images
                    log.record(
                        {
                            "step": state["step"],
                            "epoch": state["step"] / steps_per_epoch,
                            "loss": mean_loss,
                            "lr": scheduler.get_last_lr()[0],
                            "images_per_s": window_images / (now - window_start),
                        }
                    )
                    window_loss, window_micro, window_start, window_images = 0.0, 0, time.perf_counter(), 0
                if last_of_epoch:
                    state["epoch"], state["micro_in_epoch"] = epoch + 1, 0
                periodic = plan.checkpoint_every and state["step"] % plan.checkpoint_every == 0
                stop = guard.agreed()
                if checkpoint_root is not None and (periodic or stop):
                    save_checkpoint()
                if stop:
                    exit_code = EXIT_CHECKPOINTED
                    break
            if exit_code:
                break
    log.close()
    if exit_code:
        if world.is_main:
            print(f"[{desc}] signal {guard.requested}: checkpointed at step {state['step']}, exit {exit_code}")
        return TrainResult(exit_code=exit_code)
    if checkpoint_root is not None and saved["step"] != state["step"]:
        save_checkpoint()  # a finished run that dies before its outputs are written does not train again
    weights = master_state_dict(engine)
    wall = time.perf_counter() - started
    summary = {
        "global_batch": global_batch,
        "micro_batch": plan.batch.micro,
        "accumulation": plan.batch.accumulation,
        "world_size": world.world_size,
        "steps": state["step"],
        "steps_per_epoch": steps_per_epoch,
        "epochs": plan.schedule.epochs,
        "images_seen": state["images"],
        "train_seconds": state["train_seconds"],
        "throughput": state["images"] / max(state["train_seconds"], 1e-9),
        "throughput_unit": "images/s",
        "peak_lr": lr,
        "wall_seconds_this_attempt": wall,
        "precision": plan.precision,
        "zero_stage": plan.zero_stage,
        "final_loss": log.rows[-1]["loss"] if log.rows else float("nan"),
    }
    return TrainResult(exit_code=0, state_dict=weights, metrics=log.rows, summary=summary)


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
