"""Downstream classification tasks behind a registry: ``load_task(spec, image_size) -> TaskData``.

Every split is a torch Dataset of (uint8 tensor [C, H, W], int label), the same item format as the synthetic datasets,
so the training loop treats pretraining and fine-tuning data alike.

    digits       scikit-learn's bundled handwritten digits (offline), upsampled, fixed seeded split (tasks/digits.py)
    cifar10/100  the official python archive (cifar-10-python.tar.gz or its extracted folder) (tasks/cifar.py)
    imagefolder  root/train/<class>/*.png|jpg and root/val/<class>/... (tasks/imagefolder.py)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

TASK_MODULES = {
    "digits": "pretrainflow.tasks.digits",
    "cifar10": "pretrainflow.tasks.cifar",
    "cifar100": "pretrainflow.tasks.cifar",
    "imagefolder": "pretrainflow.tasks.imagefolder",
}


@dataclass(kw_only=True, slots=True)
class TaskData:
    train: Any  # torch Dataset
    test: Any
    num_classes: int
    checksum: str  # sha256 identifying the task's data and split (goes into result rows as dataset_checksum)


def load_task(spec, image_size: int) -> TaskData:
    """Load task ``spec`` (a ``TaskSpec``) with images of ``spec.image_size`` or else ``image_size`` pixels."""
    module = importlib.import_module(TASK_MODULES[spec.kind])
    return module.load(spec, spec.image_size or image_size)
