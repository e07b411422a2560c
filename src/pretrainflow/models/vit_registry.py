"""Registry of named ViT variants: ``@register_vit`` on a factory, ``create_vit(name, **overrides)`` to build one.

Every variant is a three-line factory returning a ``ViTConfig``; overrides (image_size, patch_size, num_classes,
drop_path, ...) replace fields of that config before the model is built, as ``timm.create_model(name, **kwargs)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields, replace

from pretrainflow.models.registry import Registry
from pretrainflow.models.vit import VisionTransformer, ViTConfig

VITS: Registry[Callable[[], ViTConfig]] = Registry("ViT")
register_vit = VITS.register  # ``@register_vit`` on ``def vit_tiny() -> ViTConfig``
list_vits = VITS.names


def vit_config(name: str, **overrides) -> ViTConfig:
    """The ``ViTConfig`` of variant ``name`` with ``overrides`` applied (validated by ``ViTConfig.__post_init__``)."""
    factory = VITS.factory(name)
    known = {f.name for f in fields(ViTConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise KeyError(f"model: unknown ViT option(s) {unknown}; expected some of {sorted(known)}")
    return replace(factory(), **overrides)


def create_vit(name: str, **overrides) -> VisionTransformer:
    """Build variant ``name``, e.g. ``create_vit("vit_tiny", num_classes=100, image_size=32, patch_size=4)``."""
    return VisionTransformer(vit_config(name, **overrides))


# --- variants -----------------------------------------------------------------------------------------------------
# CPU variants for tests and the default study (32 px, 4 px patches -> 64 patches + 1 class token).


@register_vit
def vit_test() -> ViTConfig:
    return ViTConfig(image_size=16, patch_size=4, embed_dim=32, depth=2, num_heads=2, mlp_ratio=2.0)


@register_vit
def vit_micro() -> ViTConfig:
    return ViTConfig(image_size=32, patch_size=4, embed_dim=128, depth=4, num_heads=4)


# Paper variants (DeiT / timm shapes, patch 16 at 224 px -> 196 patches).


@register_vit
def vit_tiny() -> ViTConfig:
    return ViTConfig(embed_dim=192, depth=12, num_heads=3, timm_name="vit_tiny_patch16_224")


@register_vit
def vit_small() -> ViTConfig:
    return ViTConfig(embed_dim=384, depth=12, num_heads=6, timm_name="vit_small_patch16_224")


@register_vit
def vit_base() -> ViTConfig:
    return ViTConfig(embed_dim=768, depth=12, num_heads=12, timm_name="vit_base_patch16_224")


@register_vit
def vit_large() -> ViTConfig:
    return ViTConfig(embed_dim=1024, depth=24, num_heads=16, timm_name="vit_large_patch16_224")
