"""Rank sharding without duplicates (and resume part-way), tensor augmentation switches and determinism."""

from __future__ import annotations

import pytest
import torch

from pretrainflow.train.vit.augment import augment_batch, mix, soft_targets
from pretrainflow.train.vit.data import RankSampler, match_channels, to_float
from pretrainflow.train.vit.spec import AugmentSpec

OFF = AugmentSpec(
    random_resized_crop=False,
    randaugment_ops=0,
    color_jitter=0.0,
    random_erasing=0.0,
    mixup=0.0,
    cutmix=0.0,
    label_smoothing=0.0,
)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_ranks_get_disjoint_equal_shares(world_size):
    shares = [
        RankSampler(num_samples=100, rank=r, world_size=world_size, seed=1, epoch=2).indices()
        for r in range(world_size)
    ]
    flat = [i for share in shares for i in share]
    assert len(flat) == len(set(flat)) == (100 // world_size) * world_size  # no duplicates; tail dropped
    assert {len(s) for s in shares} == {100 // world_size}
    other_epoch = RankSampler(num_samples=100, rank=0, world_size=world_size, seed=1, epoch=3).indices()
    assert other_epoch != shares[0]


def test_sampler_resumes_part_way():
    full = RankSampler(num_samples=50, rank=1, world_size=2, seed=0, epoch=1).indices()
    rest = RankSampler(num_samples=50, rank=1, world_size=2, seed=0, epoch=1, start=10).indices()
    assert rest == full[10:]


def test_all_off_is_only_normalisation():
    x = torch.rand(4, 3, 16, 16)
    out, targets = augment_batch(x.clone(), torch.tensor([0, 1, 2, 0]), spec=OFF, num_classes=3, gen=torch.Generator())
    assert torch.allclose(out, (x - 0.5) / 0.5)
    assert torch.equal(targets, torch.eye(3)[[0, 1, 2, 0]])


def test_full_recipe_is_deterministic_and_changes_images():
    x, y = torch.rand(8, 3, 16, 16), torch.arange(8) % 4
    a = augment_batch(x.clone(), y, spec=AugmentSpec(), num_classes=4, gen=torch.Generator().manual_seed(3))
    b = augment_batch(x.clone(), y, spec=AugmentSpec(), num_classes=4, gen=torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.allclose(a[0], (x - 0.5) / 0.5)
    assert torch.allclose(a[1].sum(1), torch.ones(8))  # mixed soft targets still sum to 1


@pytest.mark.parametrize("part", ["random_resized_crop", "hflip", "randaugment_ops", "color_jitter", "random_erasing"])
def test_each_part_switches_on_alone(part):
    value = {
        "random_resized_crop": True,
        "hflip": 1.0,
        "randaugment_ops": 2,
        "color_jitter": 0.4,
        "random_erasing": 1.0,
    }[part]
    spec = AugmentSpec(**{**{k: getattr(OFF, k) for k in OFF.__slots__}, part: value})
    x = torch.rand(4, 3, 16, 16)
    out, _ = augment_batch(
        x.clone(), torch.zeros(4, dtype=torch.long), spec=spec, num_classes=2, gen=torch.Generator().manual_seed(0)
    )
    assert out.shape == x.shape and not torch.allclose(out, (x - 0.5) / 0.5)


def test_hflip_mirrors_exactly():
    spec = AugmentSpec(**{**{k: getattr(OFF, k) for k in OFF.__slots__}, "hflip": 1.0})
    x = torch.rand(2, 1, 8, 8)
    out, _ = augment_batch(x.clone(), torch.zeros(2, dtype=torch.long), spec=spec, num_classes=2, gen=torch.Generator())
    assert torch.allclose(out, (x.flip(-1) - 0.5) / 0.5, atol=1e-5)


def test_label_smoothing_and_mixing():
    t = soft_targets(torch.tensor([1]), 4, 0.1)
    assert t.tolist()[0] == pytest.approx([0.025, 0.925, 0.025, 0.025])
    x = torch.stack([torch.zeros(1, 4, 4), torch.ones(1, 4, 4)])
    targets = torch.eye(2)
    mixed, mt = mix(x, targets, AugmentSpec(mixup=0.8, cutmix=0.0), torch.Generator().manual_seed(0))
    lam = float(mt[0, 0])
    assert torch.allclose(mixed[0], torch.full((1, 4, 4), 1 - lam))  # image and target mixed with the same lambda
    cut, ct = mix(x, targets, AugmentSpec(mixup=0.0, cutmix=1.0), torch.Generator().manual_seed(1))
    assert float(ct[0, 1]) == pytest.approx(float(cut[0].mean()))  # target share = pasted area


def test_uint8_to_float_and_channels():
    images = torch.full((2, 1, 8, 8), 255, dtype=torch.uint8)
    x = to_float(images, 0.5, 0.5, 16, torch.device("cpu"))
    assert x.shape == (2, 1, 16, 16) and torch.allclose(x, torch.ones_like(x))
    assert match_channels(x, 3).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="in_chans=2"):
        match_channels(torch.zeros(1, 3, 4, 4), 2)
