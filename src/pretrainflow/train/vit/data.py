"""Rank sharding and batching of an image dataset (items: uint8 [C, H, W] tensor, int label).

``RankSampler`` gives each rank a disjoint slice of one seeded permutation per epoch (the tail that does not divide
evenly is dropped, never duplicated), and can start part-way into an epoch, so that a resumed run sees exactly the
samples an uninterrupted run would have seen.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, Sampler


@dataclass(kw_only=True, slots=True)
class RankSampler(Sampler[int]):
    """Indices of rank ``rank`` of ``world_size`` for ``epoch``: perm[rank * per_rank : (rank + 1) * per_rank]."""

    num_samples: int
    rank: int
    world_size: int
    seed: int
    shuffle: bool = True
    epoch: int = 0
    start: int = 0  # samples of this epoch already consumed by this rank (resume)

    def __post_init__(self) -> None:
        if self.per_rank < 1:
            raise ValueError(f"dataset of {self.num_samples} images cannot be split over {self.world_size} ranks")

    @property
    def per_rank(self) -> int:
        return self.num_samples // self.world_size

    def indices(self) -> list[int]:
        if self.shuffle:
            gen = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.num_samples, generator=gen).tolist()
        else:
            order = list(range(self.num_samples))
        mine = order[self.rank * self.per_rank : (self.rank + 1) * self.per_rank]
        return mine[self.start :]

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices())

    def __len__(self) -> int:
        return self.per_rank - self.start


def collate(items: list[tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack uint8 images (kept uint8: 4x less to move than float) and labels."""
    images = torch.stack([torch.as_tensor(image) for image, _ in items])
    labels = torch.tensor([int(label) for _, label in items], dtype=torch.long)
    return images, labels


def make_loader(dataset: Dataset, sampler: RankSampler, micro: int, num_workers: int) -> DataLoader:
    """Micro-batches of ``micro`` images; an incomplete last micro-batch is dropped (equal step counts on all ranks)."""
    return DataLoader(
        dataset,
        batch_size=micro,
        sampler=sampler,
        collate_fn=collate,
        drop_last=True,
        num_workers=num_workers,
        persistent_workers=False,
        pin_memory=torch.cuda.is_available(),
    )


def to_float(images: torch.Tensor, mean: float, std: float, size: int, device: torch.device) -> torch.Tensor:
    """uint8 [B, C, H, W] -> normalised float on ``device``, resized to ``size`` px (bilinear) when it differs."""
    x = images.to(device, non_blocking=True).float().div_(255.0)
    if x.shape[-1] != size or x.shape[-2] != size:
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return x.sub_(mean).div_(std)


def match_channels(x: torch.Tensor, in_chans: int) -> torch.Tensor:
    """Gray -> 3 channels by repetition, or RGB -> 1 by averaging, so any dataset feeds any model."""
    if x.shape[1] == in_chans:
        return x
    if x.shape[1] == 1:
        return x.expand(-1, in_chans, -1, -1).contiguous()
    if in_chans == 1:
        return x.mean(dim=1, keepdim=True)
    raise ValueError(f"cannot map {x.shape[1]} image channels onto a model with in_chans={in_chans}")
