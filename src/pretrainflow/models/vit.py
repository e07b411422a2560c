"""Vision Transformer in plain PyTorch with timm's ``VisionTransformer`` parameter names and shapes.

The module knows nothing of DeepSpeed or distribution (train/vit/engine.py wraps it). Its state dict loads into
``timm.create_model("vit_tiny_patch16_224", num_classes=K)`` unchanged (see export/timm.py and tests/vit/test_timm_keys.py):

    cls_token [1, 1, D]                    pos_embed [1, 1 + (H/P)*(W/P), D]
    patch_embed.proj.weight [D, C, P, P]   patch_embed.proj.bias [D]
    blocks.{i}.norm1 / norm2 .weight/.bias [D]
    blocks.{i}.attn.qkv.weight [3D, D]     blocks.{i}.attn.qkv.bias [3D]
    blocks.{i}.attn.proj.weight [D, D]     blocks.{i}.attn.proj.bias [D]
    blocks.{i}.mlp.fc1.weight [M, D]       blocks.{i}.mlp.fc2.weight [D, M]   (M = mlp_ratio * D)
    norm.weight/.bias [D]                  head.weight [K, D]  head.bias [K]

Example::

    from pretrainflow.models import create_vit
    model = create_vit("vit_micro", num_classes=10)   # 32 px, patch 4, 4 blocks x 128
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(kw_only=True, slots=True)
class ViTConfig:
    """Shape of a ViT. ``image_size`` must be a multiple of ``patch_size``; ``embed_dim`` of ``num_heads``."""

    image_size: int = 224
    patch_size: int = 16
    in_chans: int = 3
    num_classes: int = 1000
    embed_dim: int = 192
    depth: int = 12
    num_heads: int = 3
    mlp_ratio: float = 4.0
    drop_path: float = 0.0  # stochastic depth rate of the last block; linear from 0 over the blocks (DeiT)
    drop_rate: float = 0.0  # dropout before the head
    timm_name: str = ""  # timm architecture with the same layout (for export), "" when there is none

    def __post_init__(self) -> None:
        for key in ("image_size", "patch_size", "in_chans", "num_classes", "embed_dim", "depth", "num_heads"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"model.{key}: expected a positive integer, got {value!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"model.image_size: {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"model.embed_dim: {self.embed_dim} is not a multiple of num_heads {self.num_heads}")
        if not 0.0 <= self.drop_path < 1.0 or not 0.0 <= self.drop_rate < 1.0:
            raise ValueError(
                f"model.drop_path/drop_rate: expected values in [0, 1), got {self.drop_path}, {self.drop_rate}"
            )
        if self.mlp_ratio <= 0:
            raise ValueError(f"model.mlp_ratio: expected > 0, got {self.mlp_ratio}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def to_dict(self) -> dict:
        return asdict(self)


class PatchEmbed(nn.Module):
    """Non-overlapping P x P patches -> D channels (a strided convolution, as timm's ``patch_embed.proj``)."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.proj = nn.Conv2d(cfg.in_chans, cfg.embed_dim, kernel_size=cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # [B, C, H, W] -> [B, D, H/P, W/P] -> [B, N, D]
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, dim = x.shape
        # [B, N, 3D] -> [3, B, heads, N, D/heads]; the same q, k, v order as timm so that weights are interchangeable.
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, dim))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the residual branch per sample with probability ``rate``, rescale the survivors."""
    if rate == 0.0 or not training:
        return x
    keep = 1.0 - rate
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6 as timm)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path_rate: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path_rate = drop_path_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + drop_path(self.attn(self.norm1(x)), self.drop_path_rate, self.training)
        return x + drop_path(self.mlp(self.norm2(x)), self.drop_path_rate, self.training)


class VisionTransformer(nn.Module):
    """ViT with a class token and learned position embeddings; logits from the class token (timm ``global_pool='token'``)."""

    def __init__(self, cfg: ViTConfig) -> None:
        super().__init__()
        self.cfg = cfg
        dim = cfg.embed_dim
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, dim))
        rates = [cfg.drop_path * i / max(1, cfg.depth - 1) for i in range(cfg.depth)]
        self.blocks = nn.Sequential(*(Block(dim, cfg.num_heads, cfg.mlp_ratio, rate) for rate in rates))
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.head_drop = nn.Dropout(cfg.drop_rate)
        self.head = nn.Linear(dim, cfg.num_classes)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """timm's default init: truncated normal std 0.02 for weights and pos_embed, 1e-6 for cls_token, zero biases."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        self.reset_head(self.cfg.num_classes)

    def reset_head(self, num_classes: int) -> None:
        """A fresh classifier for ``num_classes`` (fine-tuning replaces the pretraining head)."""
        self.cfg.num_classes = num_classes
        self.head = nn.Linear(self.cfg.embed_dim, num_classes).to(self.pos_embed.device, self.pos_embed.dtype)
        nn.init.trunc_normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        return self.norm(self.blocks(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.head_drop(self.forward_features(x)[:, 0]))

    def flops_per_image(self) -> int:
        """Forward FLOPs (2 per multiply-add) of one image: matmuls of the blocks, the patch embedding and the head."""
        cfg, tokens, dim = self.cfg, self.cfg.num_patches + 1, self.cfg.embed_dim
        hidden = int(dim * cfg.mlp_ratio)
        per_block = 2 * tokens * (3 * dim * dim + dim * dim + 2 * dim * hidden) + 2 * 2 * tokens * tokens * dim
        patch = 2 * cfg.num_patches * dim * cfg.in_chans * cfg.patch_size**2
        return cfg.depth * per_block + patch + 2 * dim * cfg.num_classes
