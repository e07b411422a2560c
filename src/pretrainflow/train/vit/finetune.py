"""Fine-tune a ViT on a downstream task, from pretrained weights (head re-initialised) or from scratch.

    pretrainflow finetune --spec "$(cat finetune.json)" --pretrained results/pretrain/vit-micro-fdb/model.safetensors \\
        --out results/finetune/vit-micro-fdb/digits

Same DeepSpeed loop as pretraining (train/vit/loop.py) with the study's ``finetune.recipe``; writes the directory of
train/publish.py. The test split is not touched here: ``pretrainflow evaluate`` reads it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from pretrainflow.errors import PretrainflowError
from pretrainflow.io import load_safetensors
from pretrainflow.launch import world_from_env
from pretrainflow.study.layout import checkpoint_unit
from pretrainflow.train.tracking import TrackingSpec, parse_option
from pretrainflow.train.vit.spec import FinetuneSpec


def load_pretrained(model: torch.nn.Module, path: Path) -> list[str]:
    """Load ``path`` (our model.safetensors, timm names) into ``model`` except the classifier; return the skipped keys.

    Everything but ``head.*`` must match in name and shape: a pretrained file of another architecture is an error
    naming the first mismatching key, never a silent partial load.
    """
    if not path.is_file():
        raise PretrainflowError(f"--pretrained {path}: file not found")
    weights, _meta = load_safetensors(path)
    own = model.state_dict()
    body = {k: v for k, v in weights.items() if not k.startswith("head.")}
    for key, value in body.items():
        if key not in own or own[key].shape != value.shape:
            expected = tuple(own[key].shape) if key in own else "no such parameter"
            raise PretrainflowError(
                f"--pretrained {path}: {key} has shape {tuple(value.shape)}, the model expects {expected}"
            )
    missing = sorted(set(own) - set(body) - {k for k in own if k.startswith("head.")})
    if missing:
        raise PretrainflowError(f"--pretrained {path}: lacks {missing[:5]} of the model")
    model.load_state_dict(body, strict=False)
    return sorted(set(weights) - set(body))


def finetune(
    spec: FinetuneSpec,
    *,
    pretrained: Path | None,
    out: Path,
    checkpoints: Path | None,
    tracking: TrackingSpec | None = None,
) -> int:
    """Fine-tune per ``spec``; collective over the ranks of the world in the environment."""
    from pretrainflow.models import VisionTransformer
    from pretrainflow.tasks import load_task
    from pretrainflow.train.vit.engine import setup_distributed
    from pretrainflow.train.vit.loop import TrainPlan
    from pretrainflow.train.vit.stage import run_stage

    started = time.perf_counter()
    if (spec.source == "pretrained") != (pretrained is not None):
        raise PretrainflowError(
            f"finetune: source {spec.source!r} needs {'a' if pretrained is None else 'no'} --pretrained file"
        )
    world = world_from_env()
    placement = setup_distributed(world, use_gpu=spec.recipe.devices.gpus_per_node > 0)
    config = spec.to_dict()
    recipe = spec.recipe
    probe = spec.model.config(1)
    task = load_task(spec.task_spec, probe.image_size)
    vit_cfg = spec.model.config(task.num_classes)
    torch.manual_seed(recipe.seed + spec.seed)  # the new head (and a scratch model) are the same on every rank
    model = VisionTransformer(vit_cfg)
    if pretrained is not None:
        load_pretrained(model, pretrained)
    model = model.to(placement.device)
    plan = TrainPlan(
        optimizer=recipe.optimizer,
        schedule=recipe.schedule,
        batch=recipe.batch,
        augment=recipe.augment,
        precision=recipe.precision,
        zero_stage=recipe.zero_stage,
        log_every=recipe.log.every_steps,
        num_workers=recipe.num_workers,
        seed=recipe.seed + spec.seed,
        image_size=vit_cfg.image_size,
        in_chans=vit_cfg.in_chans,
        num_classes=task.num_classes,
    )
    fields = {
        "run_id": spec.run_id,
        "source": spec.source,
        "task": spec.task,
        "model": spec.model.name,
        "num_images": len(task.train),
        "num_classes": task.num_classes,
        "task_checksum": task.checksum,
    }
    unit = checkpoint_unit(spec.run_id, task=spec.task)
    return run_stage(
        model,
        task.train,
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
        title=f"finetune {spec.run_id} on {spec.task}",
        run_name=f"{spec.run_id}/{spec.task}",
        tensorboard=False,
        tracking=tracking,
    )


def worker(argv: list[str]) -> int:
    """Per-rank entry (``pretrainflow.train.vit.finetune:worker``) with the ``finetune`` arguments."""
    parser = argparse.ArgumentParser(prog="finetune worker")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--pretrained", type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--checkpoints", type=Path, help="checkpoint root (results/checkpoints)")
    parser.add_argument("--tracking", help="W&B settings (train/tracking.py), JSON")
    args = parser.parse_args(argv)
    spec = FinetuneSpec.from_dict(json.loads(args.spec), "--spec")
    tracking = parse_option(args.tracking)
    return finetune(spec, pretrained=args.pretrained, out=args.out, checkpoints=args.checkpoints, tracking=tracking)
