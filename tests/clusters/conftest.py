"""pytest fixtures `slurm` and `sge`: skip (with the reason and how to start one) when no scheduler is reachable."""

import pytest
from cluster_helpers import sge_reason, slurm_reason


@pytest.fixture
def slurm():
    reason = slurm_reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def sge():
    reason = sge_reason()
    if reason:
        pytest.skip(reason)
