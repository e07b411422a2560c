"""The examples in the spine's and the training floor's docstrings are checked, so they cannot drift from the code."""

import doctest

import pytest

import pretrainflow.models.registry
import pretrainflow.provenance
import pretrainflow.results.rows
import pretrainflow.results.table
import pretrainflow.spec_fields
import pretrainflow.study.ablations
import pretrainflow.study.layout
import pretrainflow.study.replicates
import pretrainflow.train.checkpoints
import pretrainflow.train.devices
import pretrainflow.train.mfu
import pretrainflow.train.publish

MODULES = [
    pretrainflow.models.registry,
    pretrainflow.provenance,
    pretrainflow.results.rows,
    pretrainflow.results.table,
    pretrainflow.spec_fields,
    pretrainflow.study.ablations,
    pretrainflow.study.layout,
    pretrainflow.study.replicates,
    pretrainflow.train.checkpoints,
    pretrainflow.train.devices,
    pretrainflow.train.mfu,
    pretrainflow.train.publish,
]


@pytest.mark.parametrize("module", MODULES, ids=[m.__name__ for m in MODULES])
def test_docstring_examples(module):
    result = doctest.testmod(module)
    assert result.attempted > 0 and result.failed == 0
