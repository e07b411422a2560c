"""The output directory of a training stage, written as a whole (atomic_dir): a killed job leaves no partial one.

model.safetensors   fp32 weights with timm VisionTransformer names (metadata: format, architecture, num_classes)
metrics.parquet     step, epoch, loss, lr, images_per_s every ``log_every`` steps
summary.json        wall_seconds, throughput (images/s), world_size, devices, device_hours, global batch, mfu, ...
config.json         the resolved spec that produced the directory (and its hash)
loss.png            the training-loss curve
tensorboard/        TensorBoard event files
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from pretrainflow.io import atomic_dir, atomic_write_json, config_hash
from pretrainflow.train.logging import metrics_frame, plot_loss

# Dense peak FLOP/s per device for MFU (bf16/fp16 tensor cores, no sparsity; vendor data sheets).
PEAK_FLOPS = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "V100": 125e12, "L40S": 362e12}


def peak_flops(device_name: str) -> float | None:
    """Peak of a known GPU (matched by name), None for CPUs and unknown devices (MFU is then left empty)."""
    return next((peak for key, peak in PEAK_FLOPS.items() if key in device_name), None)


def mfu(*, flops_per_image: int, images_per_s: float, world_size: int, device_name: str) -> float | None:
    """Model FLOPs utilisation: 3 x forward FLOPs (forward + 2x backward) x images/s over the devices' peak."""
    peak = peak_flops(device_name)
    return None if peak is None else 3 * flops_per_image * images_per_s / (peak * world_size)


def save_safetensors(state_dict: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path), metadata=metadata)


def load_safetensors(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    return load_file(str(path)), metadata


def write_stage_dir(
    out: Path,
    *,
    state_dict: dict,
    model_meta: dict[str, str],
    metrics: list[dict],
    summary: dict,
    config: dict,
    tb_dir: Path | None,
    title: str,
) -> None:
    """Write the whole output directory of a pretraining or fine-tuning stage atomically."""
    with atomic_dir(out) as tmp:
        save_safetensors(state_dict, tmp / "model.safetensors", model_meta)
        frame = metrics_frame(metrics)
        frame.to_parquet(tmp / "metrics.parquet", index=False)
        atomic_write_json(tmp / "summary.json", summary)
        atomic_write_json(tmp / "config.json", {"config": config, "config_hash": config_hash(config)})
        if len(frame):
            plot_loss(frame, tmp / "loss.png", title)
        if tb_dir is not None and tb_dir.is_dir():
            shutil.copytree(tb_dir, tmp / "tensorboard")


def device_fields(*, world, placement, wall: float, model, images_per_s: float) -> dict:
    """Summary fields shared by every ViT stage: devices, wall time, device-hours and MFU."""
    return {
        "devices": f"{world.world_size} x {placement.device_name}",
        "wall_seconds": wall,
        "device_hours": wall * world.world_size / 3600.0,
        "mfu": mfu(
            flops_per_image=model.flops_per_image(),
            images_per_s=images_per_s,
            world_size=world.world_size,
            device_name=placement.device_name,
        ),
    }


def vit_model_meta(model_name: str, vit_cfg, digest: str) -> dict[str, str]:
    """safetensors metadata of a ViT stage's weights (what export-timm and fine-tuning read back)."""
    import json

    return {
        "format": "pt",
        "architecture": model_name,
        "timm_name": vit_cfg.timm_name,
        "vit_config": json.dumps(vit_cfg.to_dict(), sort_keys=True),
        "config_hash": digest,
    }
