"""The docstring examples of the results modules that tests/spine/test_doctests.py does not list are checked too."""

import doctest

import pytest

import pretrainflow.results.aggregate
import pretrainflow.results.columns
import pretrainflow.results.stats

MODULES = [pretrainflow.results.aggregate, pretrainflow.results.columns, pretrainflow.results.stats]


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
