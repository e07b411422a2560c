"""An ImageFolder-style task: ``root/train/<class>/<image>`` and ``root/val/<class>/<image>`` (or ``test/``).

Classes are the sorted folder names of ``train/`` (the same indices as torchvision's ImageFolder); images (PNG, JPEG,
BMP, ...) are read with Pillow when an item is requested, converted to RGB and resized to the task's image size.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pretrainflow.errors import PretrainflowError
from pretrainflow.tasks import TaskData

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class ImageFolder(Dataset):
    def __init__(self, root: Path, classes: list[str], image_size: int) -> None:
        self.samples = [
            (path, index)
            for index, name in enumerate(classes)
            for path in sorted((root / name).iterdir())
            if (root / name).is_dir() and path.suffix.lower() in EXTENSIONS
        ]
        if not self.samples:
            raise PretrainflowError(f"{root}: no images in any of the class folders {classes[:5]}")
        self.image_size, self.num_classes = image_size, len(classes)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path, label = self.samples[index]
        with Image.open(path) as image:
            rgb = image.convert("RGB").resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
            array = np.asarray(rgb, dtype=np.uint8)
        return torch.from_numpy(array.transpose(2, 0, 1).copy()), label

    def limited(self, count: int | None) -> ImageFolder:
        if count is not None:
            self.samples = self.samples[:count]
        return self


def load(spec, image_size: int) -> TaskData:
    root = Path(spec.path)
    train_dir = root / "train"
    test_dir = next((root / name for name in ("val", "test") if (root / name).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise PretrainflowError(
            f"tasks.{spec.name or 'imagefolder'}.path: {root} needs train/ and val/ (or test/) folders"
        )
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    train = ImageFolder(train_dir, classes, image_size).limited(spec.train_limit)
    test = ImageFolder(test_dir, classes, image_size)
    digest = hashlib.sha256()
    for path, label in train.samples + test.samples:  # names, labels and sizes identify the data cheaply
        digest.update(f"{path.relative_to(root)}\0{label}\0{path.stat().st_size}\n".encode())
    return TaskData(train=train, test=test, num_classes=len(classes), checksum=digest.hexdigest())
