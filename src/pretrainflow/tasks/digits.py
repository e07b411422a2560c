"""scikit-learn's bundled handwritten digits: 1,797 gray 8x8 images (values 0-16), 10 classes, available offline.

Upsampled to the model's image size (bilinear), scaled to 0-255, one gray channel (the loop repeats it to the model's
in_chans). The train/test split is stratified and fixed by ``split_seed`` and ``test_fraction`` (0.25 -> 1,347 / 450).
"""

from __future__ import annotations

import torch

from pretrainflow.tasks import TaskData
from pretrainflow.tasks.tensors import TensorImages, resize_uint8, tensor_checksum


def load(spec, image_size: int) -> TaskData:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    # 0..16 -> 0..255 (16 * 255 / 16 = 255 exactly)
    images = torch.from_numpy(digits.images).float().mul(255.0 / 16.0).round().to(torch.uint8).unsqueeze(1)
    labels = torch.from_numpy(digits.target).long()
    train_idx, test_idx = train_test_split(
        torch.arange(len(labels)).numpy(),
        test_size=spec.test_fraction,
        random_state=spec.split_seed,
        stratify=labels.numpy(),
    )
    images = resize_uint8(images, image_size)
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    train = TensorImages(images[train_idx], labels[train_idx], 10).limited(spec.train_limit)
    test = TensorImages(images[test_idx], labels[test_idx], 10)
    checksum = tensor_checksum(train.images, train.labels, test.images, test.labels)
    return TaskData(train=train, test=test, num_classes=10, checksum=checksum)
