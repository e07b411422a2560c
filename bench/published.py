"""The published generators as the benches set them beside ours: their figures as recorded, and their image encoding.

The figures were measured once, beside ours, by running the published scripts unmodified on these machines (one
process, CPU seconds, medians of three rounds; issue 14's table, shared/NOTES.md). The benches print them as recorded
(machine and date), never as measured, and divide our measured figures by them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Recorded:
    """A figure of a published generator, recorded beside ours (never measured by a bench)."""

    value: float
    unit: str
    what: str
    machine: str = "a 2-core project VM (Python 3.11, Debian 12)"
    date: str = "2026-12-01"

    def __str__(self) -> str:
        return f"{self.value:g} {self.unit} ({self.what}; recorded on {self.machine}, {self.date})"


SEARCH = Recorded(4.04, "CPU s/category", "published ifs_search.py, first 20 accepted categories")
RENDER = {
    "fractaldb": Recorded(0.595, "images/s", "published renderer, 362 px, 200k points, patch_gray, PNG written"),
    "visualatom": Recorded(7.91, "images/s", "published render_VisualAtom.py, 512 px, PNG written"),
    "rcdb": Recorded(32.0, "images/s", "published make_rcdb.py, 512 px, PNG written"),
}


def encode_as_published(image: np.ndarray, path: Path) -> None:
    """What the published scripts do with every image: an RGB PNG at Pillow's default level, written to disk (their
    ``quality=95`` is a JPEG option that PNG ignores)."""
    from PIL import Image

    rgb = image if image.ndim == 3 else np.repeat(image[:, :, None], 3, axis=2)
    Image.fromarray(rgb, mode="RGB").save(path)  # no compress_level: Pillow's default, as published
