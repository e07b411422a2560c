"""Torch datasets for pretraining: read tar shards in place, or render on the fly.

Both give items ``(uint8 tensor [C, H, W], int label)`` in the same order (global index = class * instances + instance)
and the same pixels, and have ``num_classes``, ``channels``, ``image_size`` and ``labels``::

    ds = open_dataset("results/datasets/fdb-tiny")                  # shards on disk, nothing unpacked
    ds = OnTheFlyDataset(manifest["spec"], pd.read_parquet(cats))   # no dataset on disk at all
    loader = torch.utils.data.DataLoader(ds, batch_size=64, shuffle=True, num_workers=4)

``ShardDataset`` takes each tar's member offsets and labels from the offset index written at render time (checked
against the manifest; shard_index.py), or scans the tar where no index is listed, and then reads an image with one
``os.pread`` of its bytes: random access without unpacking, safe in forked DataLoader workers (each opens its own file
descriptors).
``OnTheFlyDataset`` renders inside the workers; a family may cache per-category work (FractalDB caches the point sets of
the last 2 categories per worker), so a class-grouped order is much faster than a uniform shuffle over many classes.
With ``renderer="torch"`` (FractalDB only) it renders through ``gpu.FractalDBTorchRenderer`` on the CPU device; the
DataLoader then fetches a whole micro-batch at once (``__getitems__``), so the categories of a batch share one batched
chaos-game pass instead of one per category.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from pretrainflow.datasets import shards as sh
from pretrainflow.datasets.manifest import read_manifest
from pretrainflow.datasets.shard_index import shard_samples
from pretrainflow.datasets.spec import resolve
from pretrainflow.errors import PretrainflowError


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) -> uint8 tensor [C, H, W]."""
    array = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    return torch.from_numpy(np.ascontiguousarray(array))


class ShardDataset(Dataset):
    """Random access to the images of a dataset directory's tar shards (as listed in its manifest)."""

    def __init__(self, dataset_dir: str | os.PathLike):
        self.root = Path(dataset_dir)
        self.manifest = read_manifest(self.root)
        self.num_classes = int(self.manifest["num_classes"])
        self.channels = int(self.manifest["image"]["channels"])
        self.image_size = int(self.manifest["image"]["size"])
        self.paths = [self.root / entry["name"] for entry in self.manifest["shards"]]
        self.samples: list[tuple[int, sh.Sample]] = []
        for i, (path, entry) in enumerate(zip(self.paths, self.manifest["shards"], strict=True)):
            samples = shard_samples(self.root, entry)
            if len(samples) != entry["count"]:
                raise PretrainflowError(f"{path}: {len(samples)} samples, the manifest says {entry['count']}")
            self.samples.extend((i, s) for s in samples)
        self.labels = [s.label for _, s in self.samples]
        self._fds: dict[int, int] = {}
        self._pid = os.getpid()

    def __len__(self) -> int:
        return len(self.samples)

    def _fd(self, shard: int) -> int:
        if self._pid != os.getpid():  # a forked worker must not share the parent's descriptors (offsets, close)
            self._fds, self._pid = {}, os.getpid()
        if shard not in self._fds:
            self._fds[shard] = os.open(self.paths[shard], os.O_RDONLY)
        return self._fds[shard]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        shard, sample = self.samples[index]
        data = os.pread(self._fd(shard), sample.size, sample.offset)
        return to_tensor(sh.decode_image(data, sample.ext)), sample.label

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_fds"] = {}
        return state

    def __del__(self) -> None:
        for fd in getattr(self, "_fds", {}).values():
            try:
                os.close(fd)
            except OSError:
                pass


def open_dataset(dataset_dir: str | os.PathLike) -> ShardDataset:
    """The torch Dataset of a rendered dataset directory (results/datasets/{dataset})."""
    return ShardDataset(dataset_dir)


class OnTheFlyDataset(Dataset):
    """Renders every item from the category parameters; pixel-identical to the shards of the same spec.

    ``renderer``: ``"numpy"`` (the family's own ``render``) or ``"torch"`` (FractalDB: ``gpu.FractalDBTorchRenderer`` on
    ``device``; items come back on the CPU whatever the device, as the DataLoader and the shards give them).
    """

    def __init__(self, spec: dict, categories, renderer: str = "numpy", device: str | torch.device = "cpu"):
        self.spec, self.family, self.params = resolve(spec)
        rows = {int(r["class_id"]): r for r in categories.to_dict("records")}
        if sorted(rows) != list(range(self.spec.num_classes)):
            raise PretrainflowError(
                f"categories: expected class ids 0..{self.spec.num_classes - 1} for {self.spec.where}, got {len(rows)} rows"
            )
        self.categories = [rows[k] for k in range(self.spec.num_classes)]
        self.num_classes = self.spec.num_classes
        self.channels = self.family.channels
        self.image_size = self.spec.image_size
        self.labels = [i // self.spec.instances_per_class for i in range(len(self))]
        self.renderer = renderer
        self._torch = None
        if renderer == "torch":
            from pretrainflow.datasets.gpu import FractalDBTorchRenderer

            if self.family.name != "fractaldb":
                raise PretrainflowError(
                    f"{self.spec.where}: renderer 'torch' draws fractaldb only, this dataset is family {self.family.name!r}"
                )
            self._torch = FractalDBTorchRenderer(self.spec, categories, device=device)
        elif renderer != "numpy":
            raise PretrainflowError(f"renderer: expected 'numpy' or 'torch', got {renderer!r}")

    def __len__(self) -> int:
        return self.spec.num_images

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        """A micro-batch at once (DataLoader's batched fetch): one torch render call prepares all its categories."""
        if self._torch is None:
            return [self[i] for i in indices]
        for index in indices:
            if not 0 <= index < len(self):
                raise IndexError(index)
        images = self._torch.render([int(i) for i in indices]).cpu()
        return [(images[row], int(i) // self.spec.instances_per_class) for row, i in enumerate(indices)]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        class_id, instance = divmod(int(index), self.spec.instances_per_class)
        if self._torch is not None:
            return self._torch.render([int(index)])[0].cpu(), class_id
        image = self.family.render(self.spec, self.params, self.categories[class_id], instance)
        return to_tensor(image), class_id
