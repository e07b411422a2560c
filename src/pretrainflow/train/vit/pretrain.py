"""ViT pretraining through DeepSpeed: one worker per rank, started by ``pretrainflow pretrain-vit``.

    pretrainflow pretrain-vit --spec "$(cat spec.json)" --dataset results/datasets/fdb-tiny \\
        --out results/pretrain/vit-micro-fdb --checkpoints results/checkpoints

starts ``devices.cpu_ranks`` (or ``gpus_per_node``) processes through pretrainflow.launch; under torchrun / srun /
mpirun the world comes from the launcher. With ``stage_data: true`` local rank 0 of each node first copies the shards
to node-local storage and checks them (pretrainflow.launch.staging), and every rank reads that copy. Each rank reads
its share of the dataset, trains the registered ViT with a DeepSpeed engine (train/vit/loop.py), and rank 0 writes
results/pretrain/{run}/ (train/vit/publish.py). Checkpoints live in {checkpoints}/{run}/{config_hash[:12]}/
(train/checkpoints.py): rerunning the same spec resumes, a changed spec starts afresh (``stage_data`` is not part of
that hash).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pretrainflow.launch import world_from_env
from pretrainflow.study.layout import checkpoint_unit
from pretrainflow.train.tracking import TrackingSpec, parse_option
from pretrainflow.train.vit.spec import VitRunSpec


def open_pretrain_dataset(spec: VitRunSpec, dataset_dir: Path):
    """Stored shards of ``dataset_dir``, or (``on_the_fly``) images rendered from its categories as they are read
    (with ``spec.renderer``: numpy, or torch on the CPU; only categories.parquet need exist)."""
    import pretrainflow.datasets as datasets

    if spec.on_the_fly:
        import pandas as pd

        categories = pd.read_parquet(dataset_dir / "categories.parquet")
        return datasets.OnTheFlyDataset(spec.dataset_spec, categories, renderer=spec.renderer)
    return datasets.open_dataset(dataset_dir)


def pretrain(
    spec: VitRunSpec,
    dataset_dir: Path,
    *,
    out: Path,
    checkpoints: Path | None,
    dataset_checksum: str | None = None,
    tracking: TrackingSpec | None = None,
) -> int:
    """Pretrain on the dataset in ``dataset_dir`` (``open_pretrain_dataset``; staged node-locally first with
    ``spec.stage_data``); collective."""
    from pretrainflow.models import VisionTransformer
    from pretrainflow.train.vit.engine import setup_distributed
    from pretrainflow.train.vit.loop import TrainPlan
    from pretrainflow.train.vit.stage import run_stage

    started = time.perf_counter()
    world = world_from_env()
    placement = setup_distributed(world, use_gpu=spec.devices.gpus_per_node > 0)
    if spec.stage_data:
        from pretrainflow.launch.staging import stage_dataset

        dataset_dir = stage_dataset(dataset_dir, world)  # every rank returns once each node's copy is checked
    dataset = open_pretrain_dataset(spec, dataset_dir)
    config = spec.trained_config()  # without stage_data: a staged run is the same run (same checkpoints, rows)
    vit_cfg = spec.model.config(int(dataset.num_classes))
    torch.manual_seed(spec.seed)  # same initial weights on every rank
    model = VisionTransformer(vit_cfg).to(placement.device)
    plan = TrainPlan(
        optimizer=spec.optimizer,
        schedule=spec.schedule,
        batch=spec.batch,
        augment=spec.augment,
        precision=spec.precision,
        zero_stage=spec.zero_stage,
        log_every=spec.log.every_steps,
        num_workers=spec.num_workers,
        seed=spec.seed,
        image_size=vit_cfg.image_size,
        in_chans=vit_cfg.in_chans,
        num_classes=vit_cfg.num_classes,
        checkpoint_every=spec.checkpoint.every_steps,
        keep=spec.checkpoint.keep,
    )
    fields = {
        "run_id": spec.run_id,
        "model": spec.model.name,
        "dataset": spec.dataset,
        "num_images": len(dataset),
        "num_classes": vit_cfg.num_classes,
        "dataset_checksum": dataset_checksum,
    }
    unit = checkpoint_unit(spec.run_id)
    return run_stage(
        model,
        dataset,
        plan,
        world=world,
        placement=placement,
        started=started,
        config=config,
        unit=unit,
        checkpoints=checkpoints,
        out=out,
        model_name=spec.model.name,
        fields=fields,
        title=f"pretrain {spec.run_id or spec.model.name}",
        run_name=spec.run_id or spec.model.name,
        tensorboard=True,
        tracking=tracking,
    )


def worker(argv: list[str]) -> int:
    """Per-rank entry (``pretrainflow.train.vit.pretrain:worker``) with the ``pretrain-vit`` arguments."""
    parser = argparse.ArgumentParser(prog="pretrain-vit worker")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--dataset", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--checkpoints", type=Path, help="checkpoint root (results/checkpoints)")
    parser.add_argument("--tracking", help="W&B settings (train/tracking.py), JSON")
    args = parser.parse_args(argv)
    spec = VitRunSpec.from_dict(json.loads(args.spec), "--spec")
    checksum = _dataset_checksum(spec, args.dataset)
    tracking = parse_option(args.tracking)
    return pretrain(
        spec, args.dataset, out=args.out, checkpoints=args.checkpoints, dataset_checksum=checksum, tracking=tracking
    )


def _dataset_checksum(spec: VitRunSpec, dataset_dir: Path) -> str:
    """The manifest's checksum of the shards read; on the fly, where no manifest need exist, sha256 of what the images
    are a pure function of: the resolved dataset spec's hash and the categories file's sha256."""
    import hashlib

    from pretrainflow.datasets import dataset_checksum
    from pretrainflow.io import config_hash, sha256_file

    if spec.on_the_fly:
        parts = (config_hash(spec.dataset_spec), sha256_file(dataset_dir / "categories.parquet"))
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()
    return dataset_checksum(dataset_dir)
