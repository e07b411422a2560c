import pytest

from pretrainflow.study.ablations import format_value, short_key


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e-3, "0.001"),
        (3e-5, "3e-5"),
        (True, "true"),
        ("adamw", "adamw"),
        ([2, 4], "2x4"),
        ("a/b;c d", "a_b_c_d"),
        ("$(rm -rf ~)", "rm_-rf"),
    ],
)
def test_values_are_readable_and_filesystem_safe(value, text):
    assert format_value(value) == text


def test_short_keys():
    assert short_key("optimizer.lr") == "lr"
    assert short_key("optimizer.name") == "optimizer"
    assert short_key("zero_stage") == "zero_stage"
