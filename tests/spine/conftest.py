import copy
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def default_study() -> dict:
    """A fresh copy of the default study (config/config.yaml) as a dict, to mutate in tests."""
    return copy.deepcopy(yaml.safe_load((ROOT / "config" / "config.yaml").read_text()))
