"""The contract of every registered dataset family, checked per family against its row of ``family_testlib.EXPECTED``.

Parametrised over the registry (``family_names()``), so a new family is tested as soon as it is registered and fails
``test_every_registered_family_has_expectations`` until it has a row. What only one family has is tested next to it:
test_newton_fractal.py, test_exfractaldb_3d.py and test_orbit_families.py (VisualAtom, RCDB and their drawing code).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

import numpy as np
import pytest
from family_testlib import EXPECTED, family_spec, render_all, searched_categories

from pretrainflow.datasets.registry import family_names, get_family, make_params
from pretrainflow.datasets.spec import resolve
from pretrainflow.errors import ConfigError

FAMILIES = family_names()


def test_every_registered_family_has_expectations():
    assert sorted(EXPECTED) == FAMILIES


@pytest.fixture(scope="module", params=FAMILIES)
def family(request) -> str:
    if request.param not in EXPECTED:
        pytest.fail(f"family {request.param!r} is registered but has no row in family_testlib.EXPECTED")
    return request.param


def test_registered_under_its_name_with_a_valid_tiny_variant(family):
    fam = get_family(family)
    assert fam.name == family and fam.channels in (1, 3)
    make_params(fam, fam.tiny_params, f"datasets.{family}")  # the variant tests and the default study build on


def test_unknown_parameter_is_named(family):
    message = r"^datasets\.x\.params: unknown key\(s\) \['no_such_knob'\]; expected some of \["
    with pytest.raises(ConfigError, match=message):
        make_params(get_family(family), {"no_such_knob": 1}, "datasets.x")


@dataclass(frozen=True)
class Rendered:
    categories: list[dict]
    images: list[np.ndarray]  # class-major
    seconds: float  # search and render together


@pytest.fixture(scope="module")
def tiny(family) -> Rendered:
    """The test spec searched and rendered once per family (the purity test renders it again)."""
    start = time.perf_counter()
    ds, fam, params = resolve(family_spec(family))
    categories = fam.search(ds, params).to_dict("records")
    images = [fam.render(ds, params, c, i) for c in categories for i in range(ds.instances_per_class)]
    return Rendered(categories, images, time.perf_counter() - start)


def test_tiny_variant_shapes_dtypes_and_speed(family, tiny):
    row = EXPECTED[family]
    assert tiny.seconds < row.render_seconds
    assert len(tiny.images) == row.num_classes * row.instances_per_class == 12
    fam = get_family(family)
    shape = (row.image_size,) * 2 if fam.channels == 1 else (row.image_size,) * 2 + (3,)
    assert all(im.shape == shape and im.dtype == np.uint8 for im in tiny.images)
    if row.levels is not None:
        assert set(np.unique(np.stack(tiny.images))) <= row.levels
    assert not any(fam.is_degenerate(im) for im in tiny.images)


def test_pure_function_of_spec_class_and_instance(family, tiny):
    row = EXPECTED[family]
    first = tiny.images
    ds, fam, params = resolve(family_spec(family))
    again = [fam.render(ds, params, c, i) for c in tiny.categories for i in range(row.instances_per_class)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    # more classes and instances, other shard count: the search finds the same first categories and the shared
    # (class, instance) images are identical bytes
    classes, instances, shards = row.larger
    more = render_all(family_spec(family, num_classes=classes, instances_per_class=instances, num_shards=shards))
    n = row.instances_per_class
    assert all(
        np.array_equal(first[c * n + i], more[c * instances + i]) for c in range(row.num_classes) for i in range(n)
    )
    assert not np.array_equal(first[0], first[1])  # instances differ
    if row.seed_changes_images:
        # image (class 0, instance 0) of the same spec with the next seed (one class is enough: see just above)
        ds, fam, params = resolve(family_spec(family, seed=row.seed + 1, num_classes=1))
        assert not np.array_equal(first[0], fam.render(ds, params, fam.search(ds, params).to_dict("records")[0], 0))


def test_golden_bytes(family, tiny):
    # Bit-identical output on every machine: a change of this hash is a change of the dataset.
    digest = hashlib.sha256(b"".join(im.tobytes() for im in tiny.images)).hexdigest()
    assert digest == EXPECTED[family].golden_sha256


def test_search_draws_the_published_ranges(family):
    case = EXPECTED[family].search
    cats = searched_categories(family)
    assert list(cats.class_id) == list(range(case.num_classes))
    for column, (low, high) in case.ranges.items():
        assert cats[column].between(low, high).all(), column
    # the search is reproducible per class and independent of how many classes are searched
    fewer, fam, params = resolve(family_spec(family, num_classes=2, params=case.params))
    assert fam.search(fewer, params).to_dict("records") == cats.iloc[:2].to_dict("records")


def test_degenerate_rule_tips_at_its_threshold(family):
    edge = EXPECTED[family].degenerate
    rule = get_family(family).is_degenerate
    image = np.full(edge.shape, edge.background, dtype=np.uint8)
    assert rule(image)
    row, col = edge.start
    image[row, col : col + edge.count] = edge.ink
    assert rule(image)
    image[edge.tip] = edge.tip_ink
    assert not rule(image)


# Only RCDB and VisualAtom draw many gray levels on a plain background; the others draw one or two levels (FractalDB
# gray 127 on black, ExFractalDB white points on black, Newton bw by default) and Newton has no published images.
@pytest.mark.parametrize("name", [n for n in FAMILIES if n in EXPECTED and EXPECTED[n].published_look is not None])
def test_published_size_renders_gray_drawings_on_the_published_background(name):
    look = EXPECTED[name].published_look
    ds, fam, params = resolve(family_spec(name, image_size=512, num_classes=2, params={}))
    image = fam.render(ds, params, fam.search(ds, params).iloc[look.category].to_dict(), look.instance)
    assert image.shape == (512, 512)
    assert np.bincount(image.ravel()).argmax() == look.background  # the background dominates
    assert len(np.unique(image)) > 10  # many gray levels
    assert not fam.is_degenerate(image)


@pytest.mark.parametrize(
    ("name", "where", "params", "message"),
    [
        (name, EXPECTED[name].bad_params_where, params, message)
        for name in FAMILIES
        if name in EXPECTED
        for params, message in EXPECTED[name].bad_params
    ],
)
def test_bad_parameters_name_the_key_and_range(name, where, params, message):
    with pytest.raises(ConfigError) as err:
        make_params(get_family(name), params, where)
    assert str(err.value).startswith(message)


# Not FractalDB: test_dataset_stage.py checks both on the session's tiny FractalDB dataset (3 shards vs 1 shard in
# test_same_images_in_any_shard_split, shards vs on the fly in test_shard_dataset_equals_on_the_fly_rendering);
# two more FractalDB builds here would only repeat those checks (and cost the time the contract must not add).
@pytest.mark.parametrize("name", [n for n in FAMILIES if n != "fractaldb"])
def test_shard_splits_and_on_the_fly_give_the_same_pixels(name, tmp_path):
    import pandas as pd

    from pretrainflow.datasets.build import build_dataset
    from pretrainflow.datasets.torch_dataset import OnTheFlyDataset, open_dataset

    build_dataset(family_spec(name, num_shards=1), tmp_path / "one")
    build_dataset(family_spec(name, num_shards=5), tmp_path / "five")
    one, five = open_dataset(tmp_path / "one"), open_dataset(tmp_path / "five")
    fly = OnTheFlyDataset(family_spec(name, num_shards=5), pd.read_parquet(tmp_path / "five" / "categories.parquet"))
    assert len(one) == len(five) == len(fly) == 12
    for i in range(len(one)):
        (a, label_a), (b, label_b), (c, label_c) = one[i], five[i], fly[i]
        assert label_a == label_b == label_c and a.equal(b) and a.equal(c)
