"""Fixtures of the ViT tests: one intra-op thread (the 2 cores are shared), small in-memory image datasets."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


class StripeImages(torch.utils.data.Dataset):
    """Learnable toy classes: class k has a bright band at rows 3k..3k+2 over noise (uint8 [C, H, W], int)."""

    def __init__(self, n: int = 64, num_classes: int = 4, size: int = 16, channels: int = 1, seed: int = 0) -> None:
        gen = torch.Generator().manual_seed(seed)
        self.images = (torch.rand(n, channels, size, size, generator=gen) * 80).to(torch.uint8)
        self.labels = torch.arange(n) % num_classes
        for i in range(n):
            k = int(self.labels[i])
            self.images[i, :, 3 * k : 3 * k + 3] = 255
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[index], int(self.labels[index])


@pytest.fixture
def stripes() -> StripeImages:
    return StripeImages()
