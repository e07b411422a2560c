"""ViT registry and model: every registered variant builds; shapes; compatibility with the real timm (PyPI).

timm is imported through timm_standin (torchvision cannot load its ops with this CPU torch; timm's model code only
needs its import to succeed). CI must have timm (``pip install --no-deps timm==1.0.31``); elsewhere its absence skips.
"""

from __future__ import annotations

import json

import pytest
import torch
from timm_standin import real_timm

from pretrainflow.export.timm import SHAPE_KEYS, export_timm, timm_create_args, timm_state_shapes
from pretrainflow.models import ViTConfig, create_vit, list_vits, vit_config

# Parameter counts of timm's models with 1,000 classes (timm model cards: ViT-Ti/16 5.7M, S 22.1M, B 86.6M, L 304.3M).
TIMM_PARAMS_M = {"vit_tiny": 5.7, "vit_small": 22.1, "vit_base": 86.6, "vit_large": 304.3}


@pytest.fixture(scope="module")
def timm():
    with real_timm() as module:
        yield module


def shapes_of(model: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", list_vits())
def test_every_variant_matches_real_timm_layout(name, timm):
    # Our model, the layout table export-timm validates files against, and timm's own model: the same names and shapes.
    cfg = vit_config(name)
    architecture, kwargs = timm_create_args(cfg.to_dict())
    with torch.device("meta"):  # no memory for ViT-L, shapes only
        ours, theirs = create_vit(name), timm.create_model(architecture, pretrained=False, **kwargs)
    assert shapes_of(ours) == shapes_of(theirs)
    assert timm_state_shapes(**{k: getattr(cfg, k) for k in SHAPE_KEYS}) == shapes_of(theirs)
    if name in TIMM_PARAMS_M:
        millions = sum(p.numel() for p in ours.parameters()) / 1e6
        assert millions == pytest.approx(TIMM_PARAMS_M[name], abs=0.05)


TIMM_SHAPE_ARGS = (
    "embed_dim",
    "depth",
    "num_heads",
    "mlp_ratio",
    "patch_size",
    "image_size",
    "in_chans",
    "num_classes",
)


# Forward on every variant up to ViT-S (ViT-S: 3 s on 2 loaded cores). ViT-B (28 s: initialising and writing 86M
# parameters twice) and ViT-L run the same code with more, wider blocks; their names and shapes are checked against
# timm above.
LOGIT_VARIANTS = [n for n in list_vits() if vit_config(n).embed_dim <= 384]


@pytest.mark.parametrize("name", LOGIT_VARIANTS)
def test_export_loads_into_real_timm_with_identical_logits(name, timm, tmp_path):
    """export-timm's file loads into ``timm.create_model(<its metadata>)`` with strict=True, and timm's forward gives
    the logits of our model."""
    from pretrainflow.io import load_safetensors, save_safetensors
    from pretrainflow.train.vit.publish import weights_meta

    torch.manual_seed(0)
    ours = create_vit(name, num_classes=10).eval()
    with torch.no_grad():  # timm's init leaves biases and the class token near 0: move them so they are compared too
        for param in ours.parameters():
            param.add_(0.02 * torch.randn_like(param))
    save_safetensors(ours.state_dict(), tmp_path / "model.safetensors", weights_meta(name, ours.cfg, "test"))
    export_timm(tmp_path / "model.safetensors", tmp_path / "timm.safetensors")
    weights, meta = load_safetensors(tmp_path / "timm.safetensors")
    theirs = timm.create_model(meta["timm_architecture"], pretrained=False, **json.loads(meta["timm_kwargs"]))
    theirs.load_state_dict(weights, strict=True)
    theirs.eval()
    images = torch.randn(2, ours.cfg.in_chans, ours.cfg.image_size, ours.cfg.image_size)
    with torch.no_grad():
        mine, timms = ours(images), theirs(images)
    assert mine.shape == (2, 10)
    assert torch.equal(mine, timms), f"max logit difference {float((mine - timms).abs().max())}"


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
