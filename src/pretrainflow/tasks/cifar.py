"""CIFAR-10 / CIFAR-100 from the official "python version" archives (www.cs.toronto.edu/~kriz/cifar.html).

Layout: cifar-10-python.tar.gz holds cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}; cifar-100-python.tar.gz
holds cifar-100-python/{train, test, meta}. Each batch is a pickle (protocol 2, bytes keys) of a dict with b"data": uint8
[N, 3072] (1,024 red, then green, then blue values of a 32x32 image, row-major) and b"labels" (CIFAR-10) or
b"fine_labels" (CIFAR-100). ``path`` may be the .tar.gz or the extracted folder (or its parent).
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from pathlib import Path

import numpy as np
import torch

from pretrainflow.errors import PretrainflowError
from pretrainflow.tasks import TaskData
from pretrainflow.tasks.tensors import TensorImages, resize_uint8

LAYOUT = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "train": [f"data_batch_{i}" for i in range(1, 6)],
        "test": ["test_batch"],
        "labels": b"labels",
        "classes": 10,
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "train": ["train"],
        "test": ["test"],
        "labels": b"fine_labels",
        "classes": 100,
    },
}


def _read_members(path: Path, folder: str, names: list[str]) -> dict[str, bytes]:
    """Raw bytes of the batch files, from the archive or the extracted folder."""
    if path.is_file():
        out = {}
        with tarfile.open(path, "r:*") as tar:
            for name in names:
                try:
                    member = tar.extractfile(f"{folder}/{name}")
                except KeyError as err:
                    raise PretrainflowError(
                        f"{path}: no {folder}/{name} in the archive (is it the python version?)"
                    ) from err
                out[name] = member.read()
        return out
    base = path / folder if (path / folder).is_dir() else path
    missing = [n for n in names if not (base / n).is_file()]
    if missing:
        raise PretrainflowError(f"{path}: expected the CIFAR python files {missing} in {base}")
    return {name: (base / name).read_bytes() for name in names}


def _decode(raw: bytes, labels_key: bytes, where: str) -> tuple[np.ndarray, np.ndarray]:
    batch = pickle.loads(raw, encoding="bytes")  # the official files are Python 2 pickles with bytes keys
    data, labels = batch.get(b"data"), batch.get(labels_key)
    if data is None or labels is None or np.asarray(data).shape[1:] != (3072,):
        raise PretrainflowError(f"{where}: not a CIFAR python batch (needs b'data' [N, 3072] and {labels_key!r})")
    return np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


def load(spec, image_size: int) -> TaskData:
    layout = LAYOUT[spec.kind]
    path = Path(spec.path)
    if not path.exists():
        raise PretrainflowError(f"tasks.{spec.name or spec.kind}.path: {path} does not exist")
    raw = _read_members(path, layout["folder"], layout["train"] + layout["test"])
    digest = hashlib.sha256()
    splits = {}
    for split in ("train", "test"):
        parts = [_decode(raw[name], layout["labels"], f"{path}:{name}") for name in layout[split]]
        for name in layout[split]:
            digest.update(raw[name])
        images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        splits[split] = TensorImages(resize_uint8(images, image_size), labels, layout["classes"])
    return TaskData(
        train=splits["train"].limited(spec.train_limit),
        test=splits["test"],
        num_classes=layout["classes"],
        checksum=digest.hexdigest(),
    )
