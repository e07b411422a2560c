"""The examples in the scheduler and launch docstrings are true."""

import doctest

import pytest

from pretrainflow.launch import discover
from pretrainflow.schedulers import job, resources, settings, sites


@pytest.mark.parametrize("module", [discover, job, resources, settings, sites], ids=lambda m: m.__name__)
def test_docstring_examples(module):
    failures, tried = doctest.testmod(module)
    assert tried > 0 and failures == 0
