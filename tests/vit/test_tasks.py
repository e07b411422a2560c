"""Downstream tasks: digits split, CIFAR python archives written in the official format, ImageFolder."""

from __future__ import annotations

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from pretrainflow.errors import PretrainflowError
from pretrainflow.tasks import load_task
from pretrainflow.train.vit.spec import TaskSpec


def test_digits_split_is_fixed_and_stratified():
    a = load_task(TaskSpec(kind="digits"), 16)
    b = load_task(TaskSpec(kind="digits"), 16)
    assert (len(a.train), len(a.test), a.num_classes) == (1347, 450, 10)
    assert a.checksum == b.checksum
    assert torch.bincount(a.test.labels).min() >= 43  # stratified: every digit ~45 times in the test split
    image, label = a.train[0]
    assert image.dtype == torch.uint8 and image.shape == (1, 16, 16) and 0 <= label < 10 and image.max() > 200
    other = load_task(TaskSpec(kind="digits", split_seed=1, train_limit=100), 16)
    assert len(other.train) == 100 and other.checksum != a.checksum


def _cifar_batch(n: int, labels_key: bytes, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    batch = {
        b"batch_label": b"testing",
        labels_key: rng.integers(0, 10, size=n).tolist(),
        b"data": data,
        b"filenames": [b"x.png"] * n,
    }
    return pickle.dumps(batch, protocol=2)


def _write_cifar10(tmp_path, as_tar: bool):
    files = {f"data_batch_{i}": _cifar_batch(4, b"labels", i) for i in range(1, 6)}
    files["test_batch"] = _cifar_batch(3, b"labels", 9)
    files["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"] * 10}, protocol=2)
    if not as_tar:
        folder = tmp_path / "cifar-10-batches-py"
        folder.mkdir()
        for name, raw in files.items():
            (folder / name).write_bytes(raw)
        return tmp_path, files
    path = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in files.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path, files


@pytest.mark.parametrize("as_tar", [True, False])
def test_cifar10_python_archive(tmp_path, as_tar):
    path, files = _write_cifar10(tmp_path, as_tar)
    task = load_task(TaskSpec(kind="cifar10", path=str(path)), 32)
    assert (len(task.train), len(task.test), task.num_classes) == (20, 3, 10)
    first = pickle.loads(files["data_batch_1"], encoding="bytes")
    image, label = task.train[0]
    # channel-major rows: the first 1,024 bytes are the red plane of image 0
    assert torch.equal(image[0].flatten(), torch.from_numpy(first[b"data"][0, :1024]))
    assert torch.equal(image[2].flatten(), torch.from_numpy(first[b"data"][0, 2048:]))
    assert label == first[b"labels"][0]


def test_cifar100_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "train").write_bytes(_cifar_batch(5, b"fine_labels", 1))
    (folder / "test").write_bytes(_cifar_batch(2, b"fine_labels", 2))
    task = load_task(TaskSpec(kind="cifar100", path=str(folder)), 16)
    assert (len(task.train), task.num_classes, task.train[0][0].shape) == (5, 100, (3, 16, 16))


def test_cifar_errors_name_the_file(tmp_path):
    with pytest.raises(PretrainflowError, match="does not exist"):
        load_task(TaskSpec(kind="cifar10", path=str(tmp_path / "nope.tar.gz")), 32)
    (tmp_path / "cifar-10-batches-py").mkdir()
    with pytest.raises(PretrainflowError, match="data_batch_1"):
        load_task(TaskSpec(kind="cifar10", path=str(tmp_path)), 32)


def test_imagefolder(tmp_path):
    from PIL import Image

    for split, count in (("train", 3), ("val", 2)):
        for cls, colour in (("cat", (255, 0, 0)), ("dog", (0, 0, 255))):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(count):
                Image.new("RGB", (20, 12), colour).save(folder / f"{i}.png")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")
    task = load_task(TaskSpec(kind="imagefolder", path=str(tmp_path), image_size=8), 32)
    assert (len(task.train), len(task.test), task.num_classes) == (6, 4, 2)
    image, label = task.test[3]
    assert image.shape == (3, 8, 8) and label == 1 and int(image[2].min()) == 255 and int(image[0].max()) == 0
