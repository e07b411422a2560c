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
