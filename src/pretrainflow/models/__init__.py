"""Models as plain nn.Modules behind one registry pattern (models/registry.py): ViTs in vit_registry.py, GPT shapes in
gpt.py (imported lazily: it needs megatron-core)."""

from pretrainflow.models.vit import VisionTransformer, ViTConfig
from pretrainflow.models.vit_registry import VITS, create_vit, list_vits, register_vit, vit_config

__all__ = ["VITS", "ViTConfig", "VisionTransformer", "create_vit", "list_vits", "register_vit", "vit_config"]
