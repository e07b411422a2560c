"""Bad dataset specs fail early with the key path, the value and the accepted range."""

from __future__ import annotations

import pytest
from dataset_testlib import tiny_spec

from pretrainflow.datasets.generic_spec import DatasetSpec
from pretrainflow.datasets.spec import check_spec
from pretrainflow.errors import ConfigError
from pretrainflow.spec_fields import SAFE_NAME


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"num_classes": 0}, "datasets.fdb-test.num_classes: expected an integer >= 1, got 0"),
        ({"instances_per_class": -3}, "datasets.fdb-test.instances_per_class: expected an integer >= 1, got -3"),
        ({"image_size": 4}, "datasets.fdb-test.image_size: expected an integer >= 8, got 4"),
        ({"num_shards": 0}, "datasets.fdb-test.num_shards: expected an integer >= 1, got 0"),
        ({"num_shards": 19}, "datasets.fdb-test.num_shards: expected at most num_classes * instances_per_class = 18"),
        ({"num_classes": 2.5}, "datasets.fdb-test.num_classes: expected an integer >= 1, got 2.5"),
        ({"num_classes": True}, "datasets.fdb-test.num_classes: expected an integer >= 1, got True"),
        ({"seed": -1}, "datasets.fdb-test.seed: expected an integer >= 0 and <= 9223372036854775807, got -1"),
        ({"seed": 2**63}, "datasets.fdb-test.seed: expected an integer >= 0 and <= 9223372036854775807, got 9223"),
        ({"family": "mandelbrot"}, "datasets.fdb-test.family: unknown dataset family 'mandelbrot'; expected one of"),
        ({"image_format": "jpeg"}, "datasets.fdb-test.image_format: expected one of ['png', 'npy'], got 'jpeg'"),
        ({"colour": 1}, "datasets.fdb-test: unknown key(s) ['colour']; expected some of ['family', 'image_format', "),
        ({"where": "x"}, "datasets.fdb-test: unknown key(s) ['where']; expected some of ['family', 'image_format', "),
        ({"name": "FDB test"}, f"datasets.fdb-test.name: expected a name matching {SAFE_NAME.pattern}, got 'FDB test'"),
        (
            {"params": {"num_point": 5}},
            "datasets.fdb-test.params: unknown key(s) ['num_point']; expected some of ['draw', 'fill_rate', ",
        ),
        (
            {"params": {"search": "fast"}},
            "datasets.fdb-test.params.search: expected one of ['reference', 'seeded'], got 'fast'",
        ),
        ({"params": {"draw": "line"}}, "datasets.fdb-test.params.draw: expected one of ['patch', 'point'], got 'line'"),
        ({"params": {"num_points": 0}}, "datasets.fdb-test.params.num_points: expected an integer >= 2, got 0"),
        (
            {"params": {"fill_rate": 1.5}},
            "datasets.fdb-test.params.fill_rate: expected a number >= 0.0 and <= 1.0, got 1.5",
        ),
        ({"params": {"flips": 3}}, "datasets.fdb-test.params.flips: expected one of [1, 2, 4], got 3"),
        ({"params": {"flips": True}}, "datasets.fdb-test.params.flips: expected an integer >= 1 and <= 4, got True"),
        ({"params": {"weights": [[1, 1, 1]]}}, "datasets.fdb-test.params.weights[0]: expected 6 finite numbers"),
        ({"params": {"pad": 15}}, "datasets.fdb-test.params.pad: expected pad <= (image_size - 4) / 2 = 14, got 15"),
        (
            {"params": {"search_pad": 0}},
            "datasets.fdb-test.params.search_pad: expected an integer >= 1 and <= 255, got 0",
        ),
        ({"params": {"max_maps": 2}}, "datasets.fdb-test.params.max_maps: expected an integer >= 3 and <= 33, got 2"),
    ],
)
def test_bad_spec_names_key_and_range(override, message):
    with pytest.raises(ConfigError) as err:
        check_spec(tiny_spec(**override), "datasets.fdb-test")
    assert str(err.value).startswith(message)


def test_params_must_be_a_mapping():
    spec = {**tiny_spec(), "params": [1]}
    with pytest.raises(
        ConfigError, match=r"^datasets.fdb-test.params: expected a mapping of family parameters, got \[1\]"
    ):
        check_spec(spec, "datasets.fdb-test")


def test_missing_key_is_named():
    spec = tiny_spec()
    del spec["image_size"]
    with pytest.raises(ConfigError, match=r"^datasets.fdb-test: missing required key\(s\) \['image_size'\]"):
        check_spec(spec, "datasets.fdb-test")


def test_check_spec_returns_every_default():
    resolved = check_spec(tiny_spec(params={}), "datasets.fdb-test")
    assert resolved["image_format"] == "png"
    params = resolved["params"]
    # the published settings, filled in (so they are hashed into the config and stored in the manifest)
    assert params["search_points"] == 100_000 and params["fill_rate"] == 0.2 and params["render_seed"] == 100
    assert len(params["weights"]) == 25 and params["weights"][2] == [1.0] * 6
    assert check_spec(resolved, "datasets.fdb-test") == resolved  # idempotent


def test_spec_from_json_text():
    spec = DatasetSpec.from_dict(
        '{"name": "x", "family": "fractaldb", "num_classes": 1, "instances_per_class": 1, '
        '"image_size": 8, "num_shards": 1, "seed": 0}'
    )
    assert spec.where == "datasets.x" and spec.params == {}
    with pytest.raises(ConfigError, match="not valid JSON"):
        DatasetSpec.from_dict("{oops", "datasets.x")
