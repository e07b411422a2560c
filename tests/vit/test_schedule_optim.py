"""Warmup + cosine with a floor; weight-decay exclusions; every registered optimizer takes a step."""

from __future__ import annotations

import math

import pytest
import torch

from pretrainflow.models import create_vit
from pretrainflow.train.vit.optim import OPTIMIZERS, build_optimizer, param_groups
from pretrainflow.train.vit.schedule import lr_at, warmup_cosine
from pretrainflow.train.vit.spec import OptimizerSpec


def test_lr_warmup_cosine_floor():
    kw = {"total_steps": 110, "warmup_steps": 10, "peak": 1e-3, "floor": 1e-5}
    assert lr_at(0, **kw) == pytest.approx(1e-4)  # (0 + 1) / 10 of the peak
    assert lr_at(9, **kw) == pytest.approx(1e-3)
    assert lr_at(10, **kw) == pytest.approx(1e-3)
    assert lr_at(60, **kw) == pytest.approx(1e-5 + (1e-3 - 1e-5) * 0.5)  # half-way down the cosine
    assert lr_at(110, **kw) == pytest.approx(1e-5)
    assert lr_at(500, **kw) == pytest.approx(1e-5)  # never below the floor
    values = [lr_at(s, **kw) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_lambda_scheduler_follows_lr_at():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=0.1)
    sched = warmup_cosine(opt, total_steps=20, warmup_steps=4, floor=0.01)
    seen = []
    for _ in range(20):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([lr_at(s, total_steps=20, warmup_steps=4, peak=0.1, floor=0.01) for s in range(20)])


def test_weight_decay_exclusions():
    model = create_vit("vit_test", num_classes=3)
    decay, no_decay = param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    no_decay_names = {names[id(p)] for p in no_decay["params"]}
    assert {"cls_token", "pos_embed", "norm.weight", "blocks.0.attn.qkv.bias", "head.bias"} <= no_decay_names
    assert all(names[id(p)].endswith("weight") and p.ndim >= 2 for p in decay["params"])
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 0.05


def test_scaled_lr():
    assert OptimizerSpec(lr=5e-4, lr_batch=512).scaled_lr(1024) == pytest.approx(1e-3)
    assert OptimizerSpec(lr=5e-4).scaled_lr(1024) == pytest.approx(5e-4)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_descends(name, stripes):
    # LAMB's first step is large on a fresh ViT (zero biases get trust ratio 1), so compare with the loss after it.
    lr = 3e-3 if name == "adamw" else 3e-2
    torch.manual_seed(0)
    model = create_vit("vit_test", num_classes=stripes.num_classes, in_chans=1)
    opt = build_optimizer(model, OptimizerSpec(name=name), lr)
    x, y = (stripes.images[:16].float() / 255 - 0.5) / 0.5, stripes.labels[:16]
    losses = []
    for _ in range(10):
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        if getattr(opt, "is_sam", False):  # ascent to w + e(w), second gradient there, then the descent step
            opt.first_step(zero_grad=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert math.isfinite(losses[-1]) and losses[-1] < losses[1]
