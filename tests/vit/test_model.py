"""ViT registry and model: every registered variant builds; shapes; timm parameter names and shapes."""

from __future__ import annotations

import pytest
import torch

from pretrainflow.export.timm import timm_state_shapes
from pretrainflow.models import ViTConfig, create_vit, list_vits, vit_config

# Parameter counts of timm's models with 1,000 classes (timm model cards: ViT-Ti/16 5.7M, S 22.1M, B 86.6M, L 304.3M).
TIMM_PARAMS_M = {"vit_tiny": 5.7, "vit_small": 22.1, "vit_base": 86.6, "vit_large": 304.3}


@pytest.mark.parametrize("name", list_vits())
def test_every_variant_matches_timm_layout(name):
    cfg = vit_config(name)
    with torch.device("meta"):  # no memory for ViT-L, shapes only
        model = create_vit(name)
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    expected = timm_state_shapes(
        embed_dim=cfg.embed_dim,
        depth=cfg.depth,
        num_heads=cfg.num_heads,
        mlp_ratio=cfg.mlp_ratio,
        patch_size=cfg.patch_size,
        image_size=cfg.image_size,
        in_chans=cfg.in_chans,
        num_classes=cfg.num_classes,
    )
    assert shapes == expected
    if name in TIMM_PARAMS_M:
        millions = sum(p.numel() for p in model.parameters()) / 1e6
        assert millions == pytest.approx(TIMM_PARAMS_M[name], abs=0.05)


def test_timm_names_written_down_from_timm_source():
    # timm/models/vision_transformer.py (huggingface/pytorch-image-models @0041cb7): VisionTransformer has cls_token,
    # pos_embed (class token included), patch_embed.proj (Conv2d), blocks.N.{norm1, attn.qkv (bias), attn.proj, norm2,
    # mlp.fc1, mlp.fc2}; ls1/ls2, q_norm/k_norm, fc_norm are Identity by default; norm; head.
    shapes = timm_state_shapes(
        embed_dim=192, depth=12, num_heads=3, mlp_ratio=4.0, patch_size=16, image_size=224, in_chans=3, num_classes=1000
    )
    assert shapes["pos_embed"] == (1, 197, 192)
    assert shapes["patch_embed.proj.weight"] == (192, 3, 16, 16)
    assert shapes["blocks.11.attn.qkv.weight"] == (576, 192)
    assert shapes["blocks.0.mlp.fc1.weight"] == (768, 192)
    assert shapes["head.weight"] == (1000, 192)
    assert len(shapes) == 4 + 12 * 12 + 4


def test_forward_and_overrides():
    model = create_vit("vit_test", num_classes=7, in_chans=1)
    assert model(torch.zeros(3, 1, 16, 16)).shape == (3, 7)
    model.reset_head(5)
    assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 5)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_size": 30}, "multiple of patch_size"),
        ({"num_heads": 5}, "multiple of num_heads"),
        ({"depth": 0}, "model.depth"),
        ({"drop_path": 1.5}, "drop_path"),
    ],
)
def test_bad_shapes_are_named(overrides, message):
    with pytest.raises(ValueError, match=message):
        create_vit("vit_micro", **overrides)


def test_unknown_variant_and_option():
    with pytest.raises(KeyError, match="unknown ViT 'vit_huge'"):
        create_vit("vit_huge")
    with pytest.raises(KeyError, match="unknown ViT option"):
        create_vit("vit_test", heads=3)


def test_drop_path_only_in_training():
    torch.manual_seed(0)
    model = create_vit("vit_test", drop_path=0.5)
    x = torch.randn(4, 3, 16, 16)
    model.eval()
    assert torch.equal(model(x), model(x))
    model.train()
    assert not torch.equal(model(x), model(x))


def test_flops_of_vit_base_match_published():
    # ViT-B/16 at 224 px: 17.6 GMACs (timm / DeiT tables) = 35.1 GFLOPs forward.
    with torch.device("meta"):
        model = create_vit("vit_base")
    assert model.flops_per_image() / 1e9 == pytest.approx(35.1, abs=0.3)


def test_config_is_typed():
    with pytest.raises(ValueError, match="image_size"):
        ViTConfig(image_size=32.0)
