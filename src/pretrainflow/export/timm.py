"""Export to timm: our ViT already uses timm's ``VisionTransformer`` names; this checks them and writes a file that

    model = timm.create_model("vit_tiny_patch16_224", num_classes=K)   # (img_size=..., patch_size=... for micro ones)
    model.load_state_dict(safetensors.torch.load_file("vit_tiny_timm.safetensors"))

accepts as is. ``timm_state_shapes`` writes down timm's layout (timm/models/vision_transformer.py: class token, learned
position embedding including the class token, qkv with bias, no layer scale, ``global_pool='token'`` so no fc_norm).
"""

from __future__ import annotations

import json
from pathlib import Path

from pretrainflow.errors import PretrainflowError


def timm_state_shapes(
    *,
    embed_dim: int,
    depth: int,
    num_heads: int,
    mlp_ratio: float,
    patch_size: int,
    image_size: int,
    in_chans: int,
    num_classes: int,
) -> dict[str, tuple[int, ...]]:
    """Parameter name -> shape of timm's VisionTransformer with the default (class token) configuration."""
    d, hidden = embed_dim, int(embed_dim * mlp_ratio)
    tokens = (image_size // patch_size) ** 2 + 1
    shapes: dict[str, tuple[int, ...]] = {
        "cls_token": (1, 1, d),
        "pos_embed": (1, tokens, d),
        "patch_embed.proj.weight": (d, in_chans, patch_size, patch_size),
        "patch_embed.proj.bias": (d,),
    }
    for i in range(depth):
        b = f"blocks.{i}."
        shapes |= {
            b + "norm1.weight": (d,),
            b + "norm1.bias": (d,),
            b + "attn.qkv.weight": (3 * d, d),
            b + "attn.qkv.bias": (3 * d,),
            b + "attn.proj.weight": (d, d),
            b + "attn.proj.bias": (d,),
            b + "norm2.weight": (d,),
            b + "norm2.bias": (d,),
            b + "mlp.fc1.weight": (hidden, d),
            b + "mlp.fc1.bias": (hidden,),
            b + "mlp.fc2.weight": (d, hidden),
            b + "mlp.fc2.bias": (d,),
        }
    shapes |= {"norm.weight": (d,), "norm.bias": (d,), "head.weight": (num_classes, d), "head.bias": (num_classes,)}
    return shapes


SHAPE_KEYS = ("embed_dim", "depth", "num_heads", "mlp_ratio", "patch_size", "image_size", "in_chans", "num_classes")


def timm_create_args(cfg: dict) -> tuple[str, dict]:
    """(architecture, kwargs) such that ``timm.create_model(architecture, **kwargs)`` builds the model of ``cfg`` (a
    ``ViTConfig.to_dict()``); the kwargs fix every shape, so the CPU variants (32 px, 4 px patches) build too.

    >>> timm_create_args({"timm_name": "", "image_size": 32, "patch_size": 4, "embed_dim": 128, "depth": 4,
    ...                   "num_heads": 4, "mlp_ratio": 4.0, "num_classes": 10, "in_chans": 3})[0]
    'vit_tiny_patch16_224'
    """
    kwargs = {"img_size" if k == "image_size" else k: cfg[k] for k in SHAPE_KEYS}
    return cfg.get("timm_name") or "vit_tiny_patch16_224", kwargs


def export_timm(model_path: Path, out: Path) -> None:
    """Check ``model_path`` against timm's layout and write it (with timm's architecture name in the metadata)."""
    from pretrainflow.io import load_safetensors, save_safetensors

    weights, meta = load_safetensors(model_path)
    cfg = json.loads(meta["vit_config"])
    expected = timm_state_shapes(**{k: cfg[k] for k in SHAPE_KEYS})
    got = {k: tuple(v.shape) for k, v in weights.items()}
    if got != expected:
        diff = sorted(set(got) ^ set(expected)) or [k for k in got if got[k] != expected[k]]
        raise PretrainflowError(
            f"{model_path}: does not match timm's VisionTransformer layout (first differences: {diff[:5]})"
        )
    architecture, timm_kwargs = timm_create_args(cfg)
    timm_meta = {
        "format": "pt",
        "timm_architecture": architecture,
        "timm_kwargs": json.dumps(timm_kwargs, sort_keys=True),
    }
    save_safetensors(weights, out, timm_meta)
