"""Publish a finished ViT stage (pretraining or fine-tuning) through the shared stage publisher (train/publish.py).

model.safetensors carries timm VisionTransformer names; its metadata (format, architecture, timm_name, vit_config,
config_hash) is what export-timm and fine-tuning read back. metrics.parquet: step, epoch, loss, lr, images_per_s.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from pretrainflow.io import config_hash
from pretrainflow.train.publish import device_fields, write_stage_dir


def weights_meta(model_name: str, vit_cfg, digest: str) -> dict[str, str]:
    """safetensors metadata of a ViT stage's weights."""
    return {
        "format": "pt",
        "architecture": model_name,
        "timm_name": vit_cfg.timm_name,
        "vit_config": json.dumps(vit_cfg.to_dict(), sort_keys=True),
        "config_hash": digest,
    }


def publish(
    out: Path,
    *,
    result,
    model,
    model_name: str,
    config: dict,
    world,
    placement,
    started: float,
    fields: dict,
    tb_dir: Path | None,
    title: str,
) -> None:
    """Write ``out`` from a finished ``TrainResult`` (rank 0 only); ``fields`` are the stage's own summary fields."""
    summary = {
        **result.summary,
        **fields,
        **device_fields(
            world_size=world.world_size,
            device_name=placement.device_name,
            wall=time.perf_counter() - started,
            train_flops_per_item=3 * model.flops_per_image(),  # forward + backward (2x forward)
            items_per_s=result.summary["throughput"],
        ),
    }
    write_stage_dir(
        out,
        state_dict=result.state_dict,
        weights_meta=weights_meta(model_name, model.cfg, config_hash(config)),
        metrics=result.metrics,
        summary=summary,
        config=config,
        tb_dir=tb_dir,
        title=title,
    )
