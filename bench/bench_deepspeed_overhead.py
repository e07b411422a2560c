"""DeepSpeed's cost per training step against a plain PyTorch loop: same ViT, batch, optimizer, precision and data.

    .venv/bin/python bench/bench_deepspeed_overhead.py [--model vit_micro] [--micro 16] [--threads 1 2] [--zero 0 2]
        [--steps 20] [--repeats 7] [--warmup 5]
    .venv/bin/python bench/bench_deepspeed_overhead.py --profile engine --zero 2   # where a side's time goes

Issue 14 asks for DeepSpeed's overhead <= 5 % at 1 and 2 threads, in CPU time per step (time.process_time: every
thread of this one process, gloo's included), because wall time on these shared 2-core machines moves with the
neighbours' load far more than the CPU time does. Sides, each with its own copy of the same initial weights (one seed):

- ``plain``: forward, soft cross entropy, ``loss.backward()``, AdamW step, schedule step, ``zero_grad(set_to_none)``.
- ``engine zeroN``: the engine the trainer builds (train/vit/optim.py's AdamW, the warmup/cosine schedule,
  deepspeed_config.py's config, engine.py's make_engine) driven by the trainer's own ``_forward_backward`` and
  ``engine.step()``; the difference to ``plain`` is DeepSpeed alone.
- ``trainer zeroN``: the trainer's whole micro-step (train/vit/loop.py ``_Session.micro_step`` and
  ``after_optimizer_step``: per-step reseeding, uint8 -> float, the augmentation pass with every augmentation off,
  metric window and rows every ``--log-every`` steps, the walltime-signal check); no progress bar (rank 0's tqdm bar
  redraws at most 10 times a second).

``plain`` and ``engine`` get the same uint8 batch and do the same float conversion and normalisation as the trainer.
Each round runs ``--steps`` steps of every side in turn (plain, engine, trainer, plain, ...; the order rotates per
round so that no side always follows the same one), after ``--warmup`` steps per side. Per side: the median over the
rounds of CPU ms per step and its range; overhead: the median over rounds of (side / plain of the same round) - 1, so
a slow patch of the machine hits both terms of a ratio. Wall ms per step are printed beside, for information.

At 2 threads run it with ``OMP_WAIT_POLICY=PASSIVE`` (it must be set before torch loads libgomp): by default an idle
OpenMP thread spins between parallel regions, and on a loaded 2-core machine the spinning, not the work, fills the
CPU time (plain alone measured 165 to 1,216 ms per step across rounds). Passive threads sleep, so the CPU time is the
work; the header prints the policy in force.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def make_batches(count: int, micro: int, size: int, num_classes: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``count`` distinct uint8 batches held in memory (what a DataLoader hands the loop), labels as int64."""
    gen = torch.Generator().manual_seed(0)
    return [
        (
            torch.randint(0, 256, (micro, 3, size, size), dtype=torch.uint8, generator=gen),
            torch.randint(0, num_classes, (micro,), generator=gen),
        )
        for _ in range(count)
    ]


def _inputs(images: torch.Tensor, labels: torch.Tensor, size: int, num_classes: int):
    """What the trainer feeds the model with every augmentation off: normalised float images, one-hot targets."""
    from pretrainflow.train.vit.data import to_float

    x = to_float(images, 0.0, 1.0, size, torch.device("cpu"))
    return (x - 0.5) / 0.5, F.one_hot(labels, num_classes).float()


class Bench:
    """Builds the sides from one model name, batch and plan; every side starts from the same weights."""

    def __init__(self, args, total_steps: int) -> None:
        from pretrainflow.models import vit_config
        from pretrainflow.train.vit.loop import TrainPlan
        from pretrainflow.train.vit.spec import AugmentSpec, BatchSpec, OptimizerSpec, ScheduleSpec

        self.args = args
        self.cfg = vit_config(args.model, num_classes=args.num_classes, drop_path=0.0)
        self.total_steps = total_steps
        off = AugmentSpec(
            random_resized_crop=False,
            randaugment_ops=0,
            color_jitter=0.0,
            random_erasing=0.0,
            mixup=0.0,
            cutmix=0.0,
            label_smoothing=0.0,
        )
        self.plan_args = dict(
            optimizer=OptimizerSpec(lr=5e-4),  # AdamW, weight decay 0.05, no clipping: the default study's
            schedule=ScheduleSpec(epochs=1, warmup_epochs=0.1, min_lr=1e-5),
            batch=BatchSpec(micro=args.micro, global_batch=args.micro),  # one rank, no accumulation
            augment=off,
            precision=args.precision,
            log_every=args.log_every,
            num_workers=0,
            seed=0,
            image_size=self.cfg.image_size,
            in_chans=3,
            num_classes=args.num_classes,
        )
        self._plan = TrainPlan

    def model(self):
        from pretrainflow.models import VisionTransformer

        torch.manual_seed(0)
        return VisionTransformer(self.cfg)

    def plan(self, zero: int):
        return self._plan(zero_stage=zero, **self.plan_args)

    def plain(self) -> Callable:
        from pretrainflow.train.vit.loop import soft_cross_entropy
        from pretrainflow.train.vit.optim import build_optimizer
        from pretrainflow.train.vit.schedule import warmup_cosine

        if self.args.precision != "fp32":
            raise SystemExit("--precision: the plain side is fp32 only (bf16 would need DeepSpeed's master copies)")
        plan, model = self.plan(0), self.model()
        opt = build_optimizer(model, plan.optimizer, plan.optimizer.lr)
        sched = warmup_cosine(opt, total_steps=self.total_steps, warmup_steps=self.total_steps // 10, floor=1e-5)
        size, classes = self.cfg.image_size, self.args.num_classes
        model.train()

        def step(images, labels):
            x, targets = _inputs(images, labels, size, classes)
            loss = soft_cross_entropy(model(x), targets)
            loss.backward()
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            return loss.detach()

        return step

    def _session(self, zero: int, world, placement):
        """The trainer's engine and session, built as loop.train builds them (minus checkpoints and the bar)."""
        from pretrainflow.train.runlog import RunLog
        from pretrainflow.train.vit.deepspeed_config import deepspeed_config
        from pretrainflow.train.vit.engine import input_dtype, make_engine
        from pretrainflow.train.vit.loop import BatchArithmetic, _Session
        from pretrainflow.train.vit.optim import build_optimizer
        from pretrainflow.train.vit.schedule import warmup_cosine

        plan, model = self.plan(zero), self.model()
        arith = BatchArithmetic.of(plan, world, self.total_steps * self.args.micro)
        optimizer = build_optimizer(model, plan.optimizer, arith.lr)
        scheduler = warmup_cosine(
            optimizer, total_steps=arith.total_steps, warmup_steps=arith.warmup_steps, floor=plan.schedule.min_lr
        )
        ds_config = deepspeed_config(
            micro=plan.batch.micro,
            accumulation=arith.accumulation,
            world_size=world.world_size,
            zero_stage=zero,
            precision=plan.precision,
            grad_clip=plan.optimizer.grad_clip,
        )
        engine = make_engine(model, optimizer, scheduler, ds_config)
        session = _Session(
            engine=engine,
            optimizer=optimizer,
            scheduler=scheduler,
            dtype=input_dtype(ds_config),
            plan=plan,
            world=world,
            placement=placement,
            arith=arith,
            checkpoint_root=None,
            client={},
            desc="bench",
        )
        session.log = RunLog(is_main=False, total_steps=arith.total_steps, initial_step=0, desc="bench", tb_dir=None)
        engine.train()
        return session

    def engine(self, zero: int, world, placement) -> Callable:
        from pretrainflow.train.vit.loop import _forward_backward

        session = self._session(zero, world, placement)
        engine, optimizer, dtype = session.engine, session.optimizer, session.dtype
        size, classes = self.cfg.image_size, self.args.num_classes

        def step(images, labels):
            x, targets = _inputs(images, labels, size, classes)
            loss = _forward_backward(engine, optimizer, x.to(dtype), targets)
            engine.step()
            return loss

        return step

    def trainer(self, zero: int, world, placement) -> Callable:
        from pretrainflow.train.signals import WalltimeGuard

        session = self._session(zero, world, placement)
        guard = WalltimeGuard()  # not entered: no handlers to install, agreed() reads the flag as in the loop

        def step(images, labels):
            session.micro_step(images, labels, 0)
            session.after_optimizer_step(0, guard)  # one rank, no accumulation: every micro-step is an optimizer step

        return step


def run_block(step: Callable, batches, start: int, steps: int) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of ``steps`` steps of one side."""
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(start, start + steps):
        step(*batches[i % len(batches)])
    return time.process_time() - cpu, time.perf_counter() - wall


def measure(sides: dict[str, Callable], batches, args) -> dict[str, dict[str, list[float]]]:
    names = list(sides)
    for name in names:
        run_block(sides[name], batches, 0, args.warmup)
    times = {name: {"cpu": [], "wall": []} for name in names}
    for r in range(args.repeats):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            cpu, wall = run_block(sides[name], batches, args.warmup + r * args.steps, args.steps)
            times[name]["cpu"].append(1e3 * cpu / args.steps)
            times[name]["wall"].append(1e3 * wall / args.steps)
    return times


def report(times, threads: int, load_before: str) -> list[dict]:
    base = times["plain"]["cpu"] if "plain" in times else None
    print(f"\n  {threads} thread(s); load average before {load_before}, after {_load()}")
    print(f"  {'side':<16} {'CPU ms/step':>12} {'(range)':>17} {'wall ms/step':>13} {'overhead (range)':>26}")
    rows = []
    for name, t in times.items():
        cpu, wall = statistics.median(t["cpu"]), statistics.median(t["wall"])
        text, overhead = "", None
        if base is not None and name != "plain":
            ratios = [100 * (a / b - 1) for a, b in zip(t["cpu"], base, strict=True)]
            overhead = statistics.median(ratios)
            text = f"{overhead:+7.1f} % ({min(ratios):+.1f} .. {max(ratios):+.1f})"
        span = f"({min(t['cpu']):.2f} .. {max(t['cpu']):.2f})"
        print(f"  {name:<16} {cpu:12.2f} {span:>17} {wall:13.2f} {text:>26}")
        rows.append({"side": name, "threads": threads, "cpu_ms": cpu, "wall_ms": wall, "overhead_pct": overhead})
    return rows


def profile(step: Callable, batches, args) -> None:
    run_block(step, batches, 0, args.warmup)
    prof = cProfile.Profile()
    prof.enable()
    run_block(step, batches, args.warmup, args.steps)
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())  # type: ignore[attr-defined]
    print(f"\n{args.steps} steps of {args.profile}: top functions by own time ({total:.3f} s own time in all)")
    stats.sort_stats("tottime").print_stats(args.top)
    stats.sort_stats("cumulative").print_stats(args.top)


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="vit_micro", help="registered ViT (default: the default study's)")
    parser.add_argument("--micro", type=int, default=16, help="batch (default: the default study's micro-batch)")
    parser.add_argument("--num-classes", type=int, default=8)
    parser.add_argument("--precision", choices=["fp32"], default="fp32")
    parser.add_argument("--zero", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--sides", nargs="+", default=["plain", "engine", "trainer"])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    # short blocks, many rounds: a ratio's two terms lie seconds apart, so the neighbours' load hits both alike
    parser.add_argument("--steps", type=int, default=4, help="steps per side per round")
    parser.add_argument("--repeats", type=int, default=12, help="interleaved rounds")
    parser.add_argument("--warmup", type=int, default=5, help="steps per side before the rounds")
    parser.add_argument("--log-every", type=int, default=10, help="the trainer's metric window")
    parser.add_argument("--profile", help="cProfile this side (e.g. 'engine zero2') instead of measuring")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)

    from pretrainflow.launch import world_from_env
    from pretrainflow.train.vit.engine import setup_distributed

    world = world_from_env()
    placement = setup_distributed(world, use_gpu=False)  # a CPU bench: gloo, DeepSpeed's CPU accelerator
    from pretrainflow.models import vit_config

    size = vit_config(args.model).image_size
    batches = make_batches(8, args.micro, size, args.num_classes)
    total = args.warmup + args.repeats * args.steps
    bench = Bench(args, total)
    sides: dict[str, Callable] = {}
    for side in args.sides:
        if side == "plain":
            sides["plain"] = bench.plain()
            continue
        for zero in args.zero:
            sides[f"{side} zero{zero}"] = getattr(bench, side)(zero, world, placement)
    print(
        f"{args.model} ({size} px, {args.num_classes} classes), batch {args.micro}, {args.precision}, AdamW; "
        f"{args.repeats} rounds x {args.steps} steps per side after {args.warmup} warm-up steps; "
        f"torch {torch.__version__}, {len(os.sched_getaffinity(0))} cores, "
        f"OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY', 'unset (idle OpenMP threads spin)')}"
    )
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        if args.profile:
            profile(sides[args.profile], batches, args)
            continue
        load = _load()
        rows += report(measure(sides, batches, args), threads, load)
    return rows


if __name__ == "__main__":
    main()
