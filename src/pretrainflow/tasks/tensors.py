"""An in-memory image dataset: one uint8 tensor [N, C, H, W] and its labels."""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import Dataset


class TensorImages(Dataset):
    """Items (uint8 [C, H, W], int label); ``num_classes`` as the synthetic datasets have it."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4 or len(images) != len(labels):
            raise ValueError(
                f"expected uint8 [N, C, H, W] images and N labels, got {images.dtype} {tuple(images.shape)}"
            )
        self.images, self.labels, self.num_classes = images, labels.long(), num_classes

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.images[index], int(self.labels[index])

    def limited(self, count: int | None) -> TensorImages:
        """The first ``count`` items (all when None)."""
        if count is None:
            return self
        return TensorImages(self.images[:count], self.labels[:count], self.num_classes)


def resize_uint8(images: torch.Tensor, size: int) -> torch.Tensor:
    """uint8 [N, C, h, w] -> uint8 [N, C, size, size], bilinear with antialiasing (upsampling 8 px digits to 32 px)."""
    if images.shape[-1] == size and images.shape[-2] == size:
        return images
    x = torch.nn.functional.interpolate(
        images.float(), size=(size, size), mode="bilinear", align_corners=False, antialias=True
    )
    return x.round().clamp(0, 255).to(torch.uint8)


def tensor_checksum(*tensors: torch.Tensor) -> str:
    digest = hashlib.sha256()
    for tensor in tensors:
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()
