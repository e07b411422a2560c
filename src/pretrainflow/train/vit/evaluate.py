"""Top-1 / top-5 of a fine-tuned ViT on its task's held-out split -> result rows; pretraining rows.

    pretrainflow evaluate --spec "$(cat finetune.json)" --finetuned results/finetune/vit-micro-fdb/digits \\
        --out results/rows/vit-micro-fdb/digits.parquet
    pretrainflow pretrain-rows --pretrained results/pretrain/vit-micro-fdb --out results/rows/vit-micro-fdb/pretrain.parquet
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from pretrainflow.errors import PretrainflowError
from pretrainflow.io import read_json


@torch.no_grad()
def topk_accuracy(
    model: torch.nn.Module,
    dataset,
    *,
    image_size: int,
    in_chans: int,
    mean: float,
    std: float,
    batch: int = 256,
    ks: tuple[int, ...] = (1, 5),
) -> dict[int, float]:
    """Percent of ``dataset`` whose label is among the ``k`` highest logits, for each k (k capped at the classes)."""
    from pretrainflow.train.vit.data import collate, match_channels, to_float

    model.eval()
    device = next(model.parameters()).device
    hits = {k: 0 for k in ks}
    total = 0
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=False, collate_fn=collate)
    for images, labels in loader:
        x = match_channels(to_float(images, mean, std, image_size, device), in_chans)
        logits = model(x).float()
        top = logits.topk(min(max(ks), logits.shape[1]), dim=1).indices.cpu()
        for k in ks:
            hits[k] += int((top[:, :k] == labels.view(-1, 1)).any(dim=1).sum())
        total += len(labels)
    return {k: 100.0 * hits[k] / total for k in ks}


def evaluate(spec_json: str, finetuned: Path, out: Path) -> dict[str, float]:
    """Score the model in ``finetuned`` on the held-out split of its task; write top1/top5 rows to ``out``."""
    from pretrainflow.io import load_safetensors
    from pretrainflow.models import VisionTransformer, ViTConfig
    from pretrainflow.results.rows import make_row, stage_cost_fields, write_rows
    from pretrainflow.tasks import load_task
    from pretrainflow.train.vit.spec import FinetuneSpec

    spec = FinetuneSpec.from_dict(json.loads(spec_json), "--spec")
    stored = read_json(finetuned / "config.json")
    if stored["config"] != spec.to_dict():
        raise PretrainflowError(f"{finetuned}/config.json: the fine-tuned model was made by another spec than --spec")
    summary = read_json(finetuned / "summary.json")
    weights, meta = load_safetensors(finetuned / "model.safetensors")
    cfg = ViTConfig(**json.loads(meta["vit_config"]))
    model = VisionTransformer(cfg)
    model.load_state_dict(weights)
    model.to("cuda" if torch.cuda.is_available() else "cpu")
    task = load_task(spec.task_spec, cfg.image_size)
    aug = spec.recipe.augment
    acc = topk_accuracy(model, task.test, image_size=cfg.image_size, in_chans=cfg.in_chans, mean=aug.mean, std=aug.std)
    source = spec.pretrain_spec["dataset"] if spec.source == "pretrained" else "scratch"
    common = dict(
        config=spec.to_dict(),
        run_id=spec.run_id,
        stage="evaluate",
        model=spec.model.name,
        pretrain_source=source,
        task=spec.task,
        split="test",
        epoch=float(spec.recipe.epochs),
        step=int(summary["steps"]),
        seed=spec.seed,
        dataset_checksum=task.checksum,
        **stage_cost_fields(summary),
    )
    write_rows([make_row(metric=f"top{k}", value=value, **common) for k, value in acc.items()], out)
    return {f"top{k}": v for k, v in acc.items()}


def pretrain_rows(pretrained: Path, out: Path) -> None:
    """One row per pretraining run: its final training loss, with throughput and device-hours of the run."""
    from pretrainflow.results.rows import make_row, stage_cost_fields, write_rows

    stored = read_json(pretrained / "config.json")
    summary = read_json(pretrained / "summary.json")
    config = stored["config"]
    row = make_row(
        config=config,
        run_id=config["run_id"],
        stage="pretrain",
        model=config["model"]["name"],
        pretrain_source=config["dataset"],
        task="pretrain",
        split="train",
        metric="loss",
        value=float(summary["final_loss"]),
        epoch=float(summary["epochs"]),
        step=int(summary["steps"]),
        seed=int(config["seed"]),
        dataset_checksum=summary.get("dataset_checksum"),
        **stage_cost_fields(summary),
    )
    write_rows([row], out)
