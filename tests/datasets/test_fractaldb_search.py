"""The reference-compatible search reproduces the published FractalDB-1k category files exactly.

The published files live outside the repository, in ``../shared/reference-data/fractaldb1k-categories`` relative to
its root (where CI lays shared/ beside the clone); the first five are also test fixtures, so the fast tests run anywhere.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from dataset_testlib import FIXTURES

from pretrainflow.datasets.fractaldb_search import compiled_kernels, search_systems

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO.parent / "shared" / "reference-data" / "fractaldb1k-categories"


def published(index: int, root=FIXTURES) -> np.ndarray:
    return np.loadtxt(f"{root}/{index:05d}.csv", delimiter=",", ndmin=2)  # %.18e text round-trips float64 exactly


def reference_root() -> Path:
    """The published files; CI must have them (a skip there would hide a failure), elsewhere their absence skips."""
    if (REFERENCE / "00999.csv").is_file():
        return REFERENCE
    if os.environ.get("CI"):
        pytest.fail(f"{REFERENCE} (the published FractalDB-1k category files) is missing on CI")
    pytest.skip(f"{REFERENCE} (the published FractalDB-1k category files) is not on this machine")


def assert_published(found: list, root: Path) -> None:
    differ = [index for index, (maps, _, _) in enumerate(found) if not np.array_equal(maps, published(index, root))]
    assert not differ, f"categories {differ[:10]} differ from the published files ({len(differ)} in all)"


# Both search paths: the batched numpy one and, where numba is installed, the compiled one (numba, a dependency).
PATHS = [
    pytest.param(False, id="numpy"),
    pytest.param(
        True, id="compiled", marks=pytest.mark.skipif(compiled_kernels() is None, reason="numba not installed")
    ),
]


@pytest.mark.parametrize("compiled", PATHS)
def test_reference_search_reproduces_first_five_published_categories(compiled):
    found = search_systems(num_classes=5, seed=1, batch=64, compiled=compiled)
    for index, (maps, rate, _) in enumerate(found):
        assert np.array_equal(maps, published(index)), f"category {index} differs from the published {index:05d}.csv"
        assert rate >= 0.2
    assert [trial for _, _, trial in found] == [24, 29, 68, 88, 95]


def test_batch_width_does_not_change_the_result():
    a = search_systems(num_classes=1, seed=3, batch=8, num_points=20_000, size=128, compiled=False)
    b = search_systems(num_classes=1, seed=3, batch=64, num_points=20_000, size=128, compiled=False)
    assert all(np.array_equal(x[0], y[0]) and x[2] == y[2] for x, y in zip(a, b, strict=True))


@pytest.mark.skipif(compiled_kernels() is None, reason="numba not installed")
@pytest.mark.parametrize(
    "params",
    [
        {"seed": 3, "num_points": 20_000, "size": 128},  # a seeded stream at another canvas size
        {"seed": 7, "num_points": 1_000, "size": 32, "pad": 2, "min_maps": 2, "max_maps": 4},
        {"seed": 11, "num_points": 5_000, "size": 64, "fill_rate": 0.05},  # a lower threshold: more acceptances
    ],
)
def test_compiled_search_equals_numpy_search(params):
    # same systems, same fill rates (float equality: the same hit count), same trial numbers
    compiled = search_systems(num_classes=6, compiled=True, **params)
    numpy = search_systems(num_classes=6, compiled=False, **params)
    assert [(t, r) for _, r, t in compiled] == [(t, r) for _, r, t in numpy]
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(compiled, numpy, strict=True))


@pytest.mark.slow
def test_reference_search_reproduces_first_60_published_categories():
    root = reference_root()
    found = search_systems(num_classes=60, seed=1)
    assert len(found) == 60
    assert_published(found, root)


@pytest.mark.slow  # about 90 CPU s compiled (numba), 5 CPU min on the numpy path
def test_reference_search_reproduces_all_1000_published_categories():
    root = reference_root()
    found = search_systems(num_classes=1000, seed=1)
    assert len(found) == 1000
    assert_published(found, root)
