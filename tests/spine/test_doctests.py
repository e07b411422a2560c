"""The examples in the spine's docstrings are checked, so they cannot drift from the code."""

import doctest

import pytest

import pretrainflow.errors
import pretrainflow.results.rows
import pretrainflow.results.table


@pytest.mark.parametrize("module", [pretrainflow.errors, pretrainflow.results.rows, pretrainflow.results.table])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
