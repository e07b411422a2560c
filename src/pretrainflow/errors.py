"""Errors a user can act on: every message names the key, file or value and what was expected."""


class PretrainflowError(Exception):
    """Base class for errors that are reported to the user without a traceback."""


class ConfigError(PretrainflowError, ValueError):
    """A study config value is wrong. The message starts with the key path, e.g. ``datasets.fdb.image_size: ...``."""
