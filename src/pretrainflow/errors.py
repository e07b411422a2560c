"""Errors a user can act on: every message names the key, file or value and what was expected."""


class PretrainflowError(Exception):
    """Base class for errors that are reported to the user without a traceback."""


class ConfigError(PretrainflowError, ValueError):
    """A study config value is wrong. The message starts with the key path, e.g. ``datasets.fdb.image_size: ...``."""


def expect(condition: bool, where: str, message: str) -> None:
    """Raise ``ConfigError(f"{where}: {message}")`` unless ``condition`` holds.

    >>> expect(4 >= 8, "datasets.fdb.image_size", "expected an integer >= 8, got 4")
    Traceback (most recent call last):
    ...
    pretrainflow.errors.ConfigError: datasets.fdb.image_size: expected an integer >= 8, got 4
    """
    if not condition:
        raise ConfigError(f"{where}: {message}")


def expect_in_range(where: str, value: object, low: float, high: float, integer: bool) -> None:
    """Raise ConfigError unless ``value`` is an integer (or, with ``integer=False``, a number) in [low, high].

    Booleans are rejected: YAML ``true`` is not a count.
    """
    kind = "an integer" if integer else "a number"
    ok = isinstance(value, int) if integer else isinstance(value, int | float)
    ok = ok and not isinstance(value, bool) and low <= value <= high  # type: ignore[operator]
    expect(ok, where, f"expected {kind} in [{low}, {high}], got {value!r}")
