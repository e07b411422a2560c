"""Models as plain nn.Modules behind registries of named variants (ViT here; the GPT registry lives in models/gpt.py)."""

from pretrainflow.models.vit import VisionTransformer, ViTConfig
from pretrainflow.models.vit_registry import create_vit, list_vits, register_vit, vit_config

__all__ = ["ViTConfig", "VisionTransformer", "create_vit", "list_vits", "register_vit", "vit_config"]
