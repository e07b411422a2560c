"""One ViT training stage, pretraining or fine-tuning: train under the checkpoint protocol, publish, tear down.

Both stages differ only in what they build (model, data, plan) and in their summary fields; this is the rest.
"""

from __future__ import annotations

from pathlib import Path

import torch.distributed as dist

from pretrainflow.io import config_hash
from pretrainflow.train.checkpoints import unit_dir
from pretrainflow.train.run_lock import hold_run_lock
from pretrainflow.train.tracking import TrackingSpec, tracked_run
from pretrainflow.train.vit.loop import TrainPlan, train
from pretrainflow.train.vit.publish import publish


def run_stage(
    model,
    data,
    plan: TrainPlan,
    *,
    world,
    placement,
    started: float,
    config: dict,
    unit: str,
    checkpoints: Path | None,
    out: Path,
    model_name: str,
    fields: dict,
    title: str,
    tensorboard: bool,
    run_name: str,
    tracking: TrackingSpec | None = None,
) -> int:
    """Train ``model`` on ``data`` (collective), then rank 0 writes ``out``; returns 0 or EXIT_CHECKPOINTED.

    Checkpoints go to ``{checkpoints}/{unit}/{config hash12}/`` (none when ``checkpoints`` is None); TensorBoard
    events, when asked for, live beside them so that they survive resumes and are copied into ``out`` at the end.
    One writer per checkpoint directory: a second copy of the run (e.g. resubmitted after a killed Snakemake) stops at
    the lock, named ``run_name`` in its message, before anything is written. W&B (``tracking``, when on) writes
    beside them too (train/tracking.py).
    """
    ckpt_root = unit_dir(checkpoints, unit, config) if checkpoints is not None else None
    with hold_run_lock(ckpt_root, run_name):
        tb_dir = ckpt_root / "tensorboard" if tensorboard and ckpt_root is not None else None
        job_type = "finetune" if unit.startswith("finetune/") else "pretrain"  # study/layout.py checkpoint_unit
        tracked = tracked_run(tracking, unit=unit, config=config, directory=ckpt_root, job_type=job_type)
        result = train(
            model,
            data,
            plan,
            world,
            placement,
            checkpoint_root=ckpt_root,
            config=config,
            config_hash=config_hash(config),
            desc=title,
            tb_dir=tb_dir,
            tracking=tracked,
        )
        if result.exit_code == 0 and world.is_main:
            publish(
                out,
                result=result,
                model=model,
                model_name=model_name,
                config=config,
                world=world,
                placement=placement,
                started=started,
                fields=fields,
                tb_dir=tb_dir,
                title=title,
            )
        if dist.is_initialized():
            dist.barrier()  # no rank exits (and tears down the group) before rank 0 has written the outputs
            dist.destroy_process_group()
        return result.exit_code
