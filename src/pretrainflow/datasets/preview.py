"""Contact sheets (categories x instances) of a dataset family, for docs/previews/ and a quick look at a spec."""

from __future__ import annotations

import os

import numpy as np

from pretrainflow.datasets.generic_spec import DatasetSpec
from pretrainflow.datasets.spec import resolve
from pretrainflow.io import atomic_path

GUTTER = 2  # pixels of mid-gray between tiles, so black backgrounds stay apart


def preview_spec(family: str, classes: int, instances: int, size: int, seed: int = 0) -> dict:
    """A spec showing ``family`` with its published parameters at ``size`` px."""
    return {
        "name": f"preview-{family}",
        "family": family,
        "num_classes": classes,
        "instances_per_class": instances,
        "image_size": size,
        "num_shards": 1,
        "seed": seed,
        "params": {},
    }


def contact_sheet(spec, classes: int | None = None, instances: int | None = None) -> np.ndarray:
    """uint8 RGB sheet: one row per category (the first ``classes``), one column per instance (the first ``instances``)."""
    ds, family, params = resolve(spec)
    classes = min(classes or ds.num_classes, ds.num_classes)
    instances = min(instances or ds.instances_per_class, ds.instances_per_class)
    small = DatasetSpec.from_dict({**ds.to_dict(), "num_classes": classes, "num_shards": 1}, ds.where)
    categories = family.search(small, params).to_dict("records")
    tile = ds.image_size + GUTTER
    sheet = np.full((classes * tile + GUTTER, instances * tile + GUTTER, 3), 96, dtype=np.uint8)
    for c in range(classes):
        for i in range(instances):
            image = family.render(small, params, categories[c], i)
            if image.ndim == 2:
                image = np.repeat(image[:, :, None], 3, axis=2)
            y, x = GUTTER + c * tile, GUTTER + i * tile
            sheet[y : y + ds.image_size, x : x + ds.image_size] = image
    return sheet


def write_preview(spec, out: str | os.PathLike, classes: int | None = None, instances: int | None = None) -> None:
    from PIL import Image

    sheet = contact_sheet(spec, classes, instances)
    with atomic_path(out) as tmp:
        Image.fromarray(sheet).save(tmp, format="PNG", optimize=True)
