"""Per-family expected values of the family contract (test_family_contract.py), and the spec and render helpers.

A uniquely named module (every test area has its own conftest.py). ``EXPECTED`` has one row per registered family: the
small spec each family's golden hash was taken from (change it and the hash changes) and every fact of the contract
that differs between families. The family-specific test modules build their specs from the same rows.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from pretrainflow.datasets.registry import get_family
from pretrainflow.datasets.spec import resolve


@dataclass(frozen=True)
class SearchCase:
    """A search large enough to reach the edges of the published ranges."""

    num_classes: int
    params: dict  # the whole params mapping (``{}``: the published defaults)
    ranges: dict[str, tuple[float, float]]  # category column -> inclusive (low, high)


@dataclass(frozen=True)
class DegenerateEdge:
    """A flat image, ``count`` pixels of ``ink`` from ``start`` along one row (one short of the family's threshold),
    and the one more pixel, at ``tip``, that makes it a real image."""

    shape: tuple[int, ...]
    background: int
    start: tuple[int, int]
    count: int
    ink: int
    tip: tuple[int, int]
    tip_ink: int


@dataclass(frozen=True)
class PublishedLook:
    """An image at the published 512 px (published params): which one to render and its dominant background value."""

    category: int
    instance: int
    background: int


@dataclass(frozen=True)
class FamilyExpectations:
    """One family's row: its test spec (one shard; ``params`` or else the family's tiny_params) and what the contract
    expects of it."""

    spec_name: str
    num_classes: int
    instances_per_class: int
    image_size: int
    seed: int
    golden_sha256: str  # sha256 of the test spec's images, class-major: a change of it is a change of the dataset
    render_seconds: float  # budget for searching and rendering every image of the test spec
    larger: tuple[int, int, int]  # (num_classes, instances_per_class, num_shards) of a spec that contains the test spec
    search: SearchCase
    degenerate: DegenerateEdge
    bad_params: tuple[tuple[dict, str], ...]  # (params, start of the ConfigError message)
    bad_params_where: str  # the key path the messages above were written for
    params: dict | None = None  # the test spec's params; None = the family's tiny_params
    levels: frozenset[int] | None = None  # the only pixel values, for families that draw with fixed levels
    seed_changes_images: bool = True  # False only where the published renderer fixes its randomness
    published_look: PublishedLook | None = None


# FractalDB's published search (100,000 points on a 512 px canvas) takes ~0.5 s a category; 2,000 points on a 32 px
# canvas (the image size of the test spec) accept other, equally valid categories within ~5 ms. 500 points still light
# 39 pixels or more of every 32 px test image (degenerate below 5).
FRACTALDB_TEST_PARAMS = {
    **get_family("fractaldb").tiny_params,
    "num_points": 500,
    "search_points": 2000,
    "search_size": 32,
    "search_pad": 2,
    "search_batch": 8,
}

EXPECTED: dict[str, FamilyExpectations] = {
    "rcdb": FamilyExpectations(
        spec_name="rcdb-test",
        num_classes=3,
        instances_per_class=4,
        image_size=48,
        seed=5,
        golden_sha256="4536d0b47e0d208000b3f5ce6a7b9adc7374e2b0c03aaacec3c83e8b62378e78",
        render_seconds=5.0,
        larger=(4, 5, 2),
        search=SearchCase(
            500,
            {},
            {"num_vertices": (3, 200), "num_orbits": (1, 200), "perlin": (0, 4), "line_width": (0, 0.1)},
        ),
        # white background: 63 black pixels < 512 * 512 / 4096 = 64
        degenerate=DegenerateEdge((512, 512), 255, start=(10, 10), count=63, ink=0, tip=(11, 10), tip_ink=40),
        bad_params_where="datasets.r",
        bad_params=(
            ({"vertices_max": 2}, "datasets.r.params.vertices_max: expected an integer >= 3 and <= 100000, got 2"),
            (
                {"vertices_mean": 0.5},
                "datasets.r.params.vertices_mean: expected a number >= 1.0 and <= 100000.0, got 0.5",
            ),
            (
                {"vertices_mean": 100000.0, "vertices_max": 3},
                "datasets.r.params.vertices_mean: expected a mean that gives",
            ),
            ({"orbits_min": 0}, "datasets.r.params.orbits_min: expected an integer >= 1 and <= 10000, got 0"),
            (
                {"line_width_max": -0.1},
                "datasets.r.params.line_width_max: expected a number >= 0.0 and <= 1000.0, got -0.1",
            ),
            ({"start_pos": 1.5}, "datasets.r.params.start_pos: expected an integer >= 0 and <= 65536, got 1.5"),
            (
                {"orbits_range": 9999, "vertices_max": 2000},
                "datasets.r.params.orbits_range: expected (orbits_min + orbits_r",
            ),
            ({"canvas_size": 4}, "datasets.r.params.canvas_size: expected an integer >= 8 and <= 65536, got 4"),
        ),
        published_look=PublishedLook(category=0, instance=3, background=255),  # gray contours on white
    ),
    "visualatom": FamilyExpectations(
        spec_name="va-test",
        num_classes=3,
        instances_per_class=4,
        image_size=48,
        seed=11,
        golden_sha256="8c2ee8a31d3952e34697f1704ed9129c73fca260e92cbecafd00c98d75bf416c",
        render_seconds=5.0,
        larger=(5, 6, 3),
        search=SearchCase(
            400,
            {},
            {
                "num_vertices": (200, 1000),
                "num_orbits": (1, 200),
                "perlin": (0, 4),
                "line_width": (0, 0.1),
                "radius": (10, 60),
                "freq1": (0, 20),
                "freq2": (0, 20),
                "oval_x": (1, 2),
                "oval_y": (1, 2),
            },
        ),
        # black background: 63 lit pixels < 512 * 512 / 4096 = 64
        degenerate=DegenerateEdge((512, 512), 0, start=(0, 0), count=63, ink=255, tip=(1, 0), tip_ink=255),
        bad_params_where="datasets.va",
        bad_params=(
            ({"vertices_min": 2}, "datasets.va.params.vertices_min: expected an integer >= 3 and <= 100000, got 2"),
            (
                {"vertices_min": 50, "vertices_max": 40},
                "datasets.va.params.vertices_max: expected an integer >= 50 and <= 100000, got 40",
            ),
            ({"orbits_max": 0}, "datasets.va.params.orbits_max: expected an integer >= 1 and <= 10000, got 0"),
            ({"perlin_min": -1.0}, "datasets.va.params.perlin_min: expected a number >= 0.0 and <= 1000.0, got -1.0"),
            ({"oval_rate": 0.5}, "datasets.va.params.oval_rate: expected a number >= 1.0 and <= 1000.0, got 0.5"),
            ({"freq_min": 3, "freq_max": 3}, "datasets.va.params.freq_max: expected freq_max > freq_min"),
            ({"radius_min": "10"}, "datasets.va.params.radius_min: expected an integer >= 0 and <= 65536, got '10'"),
            (
                {"orbits_max": 10_000, "vertices_max": 2000},
                "datasets.va.params.orbits_max: expected orbits_max * vertices_max",
            ),
            (
                {"vertex_num_min": 3},
                "datasets.va.params: unknown key(s) ['vertex_num_min']; expected some of ['canvas_size', ",
            ),
        ),
        published_look=PublishedLook(category=1, instance=0, background=0),  # gray orbits on black
    ),
    "exfractaldb": FamilyExpectations(
        spec_name="exf-test",
        num_classes=2,
        instances_per_class=6,
        image_size=48,
        seed=3,
        golden_sha256="b3f1cefe66985fa1490a2c8dc0670207473540fce34c862e5329d09f0e0834a2",
        render_seconds=10.0,
        larger=(3, 9, 4),
        search=SearchCase(3, {"num_points": 2000}, {"num_maps": (2, 7)}),
        # a variant collapsed onto a few points: 12 lit pixels < 224 * 224 / 4096 = 12.25
        degenerate=DegenerateEdge((224, 224), 0, start=(100, 100), count=12, ink=255, tip=(101, 100), tip_ink=255),
        bad_params_where="datasets.e",
        bad_params=(
            ({"maps_min": 0}, "datasets.e.params.maps_min: expected an integer >= 1 and <= 64, got 0"),
            ({"maps_min": 5, "maps_max": 3}, "datasets.e.params.maps_max: expected an integer >= 5 and <= 64, got 3"),
            ({"num_points": 0}, "datasets.e.params.num_points: expected an integer >= 1 and <= 1000000, got 0"),
            (
                {"weight_factors": [0.5, -1.0]},
                "datasets.e.params.weight_factors[1]: expected a number >= 0.0 and <= 100.0",
            ),
            ({"fov_deg": 180.0}, "datasets.e.params.fov_deg: expected a number >= 0.001 and <= 179.0, got 180.0"),
            (
                {"z_near": 5.0, "z_far": 2.0},
                "datasets.e.params.z_far: expected a number >= 5.0 and <= 1000000000.0, got 2.0",
            ),
            ({"views": 0}, "datasets.e.params.views: expected an integer >= 1 and <= 3600, got 0"),
            (
                {"view_sampling": "random"},
                "datasets.e.params.view_sampling: expected one of ['orbit', 'sphere'], got 'random'",
            ),
        ),
        levels=frozenset({0, 255}),  # white points on black
    ),
    "newton": FamilyExpectations(
        spec_name="nf-test",
        num_classes=3,
        instances_per_class=4,
        image_size=40,
        seed=2,
        golden_sha256="bb72518cb785cfbf94684441036d76cc1d4bf3da46561a07f151b7fad755fe07",
        render_seconds=5.0,
        larger=(4, 5, 3),
        search=SearchCase(
            200, {**get_family("newton").tiny_params, "degree_min": 3, "degree_max": 8}, {"degree": (3, 8)}
        ),
        # 15 differing pixels < 64 * 64 / 256 = 16
        degenerate=DegenerateEdge((64, 64, 3), 255, start=(0, 0), count=15, ink=0, tip=(1, 0), tip_ink=0),
        bad_params_where="datasets.n",
        bad_params=(
            ({"mode": "rgb"}, "datasets.n.params.mode: expected one of ['bw', 'gray', 'color'], got 'rgb'"),
            ({"degree_min": 1}, "datasets.n.params.degree_min: expected an integer >= 2 and <= 64, got 1"),
            (
                {"degree_min": 6, "degree_max": 4},
                "datasets.n.params.degree_max: expected an integer >= 6 and <= 64, got 4",
            ),
            ({"relax_max": 2.5}, "datasets.n.params.relax_max: expected a number >= 0.8 and <= 1.999, got 2.5"),
            ({"zoom_range": 0.5}, "datasets.n.params.zoom_range: expected a number >= 1.0 and <= 1000000.0, got 0.5"),
            ({"max_iter": 0}, "datasets.n.params.max_iter: expected an integer >= 1 and <= 10000, got 0"),
        ),
        levels=frozenset({0, 255}),  # the tiny variant draws in the default bw mode
    ),
    "fractaldb": FamilyExpectations(
        spec_name="fdb-test",
        num_classes=3,
        instances_per_class=4,
        image_size=32,
        seed=7,
        golden_sha256="c1975b21f4942fd31e7e08e045ba04f04aa24e58768132f1639cec8892b7cf47",
        render_seconds=5.0,
        larger=(4, 5, 3),
        search=SearchCase(4, FRACTALDB_TEST_PARAMS, {"num_maps": (2, 7), "fill_rate": (0.2, 1.0)}),
        # 5 lit pixels < 0.5 % of 32 * 32 = 5.12
        degenerate=DegenerateEdge((32, 32), 0, start=(0, 0), count=5, ink=127, tip=(1, 0), tip_ink=127),
        bad_params_where="datasets.f",
        bad_params=(
            ({"draw": "line"}, "datasets.f.params.draw: expected one of ['patch', 'point'], got 'line'"),
            ({"flips": 3}, "datasets.f.params.flips: expected one of [1, 2, 4], got 3"),
            ({"fill_rate": 1.5}, "datasets.f.params.fill_rate: expected a number >= 0.0 and <= 1.0, got 1.5"),
        ),
        params=FRACTALDB_TEST_PARAMS,
        levels=frozenset({0, 127}),  # point mode: every hit pixel is the published gray 127
        # As published, the map choices of every render come from the fixed render_seed; the dataset seed only draws
        # the patch masks, and the tiny variant draws single points.
        seed_changes_images=False,
    ),
}


def family_spec(family: str, params: dict | None = None, **overrides) -> dict:
    """The family's test spec (one shard); ``params`` replaces the test params as a whole."""
    row = EXPECTED[family]
    if params is None:
        params = row.params if row.params is not None else get_family(family).tiny_params
    spec = {
        "name": row.spec_name,
        "family": family,
        "num_classes": row.num_classes,
        "instances_per_class": row.instances_per_class,
        "image_size": row.image_size,
        "num_shards": 1,
        "seed": row.seed,
        "params": dict(params),
    }
    spec.update(overrides)
    return spec


def render_all(raw: dict) -> list[np.ndarray]:
    """Search, then render every image of a spec, class-major (the order of the golden hashes)."""
    ds, fam, params = resolve(raw)
    categories = fam.search(ds, params).to_dict("records")
    return [fam.render(ds, params, c, i) for c in categories for i in range(ds.instances_per_class)]


@functools.cache
def searched_categories(family: str):
    """The categories of the family's search case (``EXPECTED[family].search``), searched once per session: the
    contract checks their ranges, the family-specific modules the rest of their law. Read-only."""
    case = EXPECTED[family].search
    ds, fam, params = resolve(family_spec(family, num_classes=case.num_classes, params=case.params))
    return fam.search(ds, params)
