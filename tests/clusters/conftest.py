"""pytest fixtures `slurm` and `sge`: skip (with the reason and how to start one) when no scheduler is reachable.

CI runs as root and starts both schedulers first (scripts/start_slurm.sh, scripts/start_gridengine.sh): there, a skipped
Slurm or Grid Engine test means the run did not test what it claims, so the skip is turned into a failure carrying the
skip's reason. A test is a scheduler test when it carries the `slurm` / `sge` marker or uses the fixture of that name,
and a test that uses a fixture must carry its marker (so that `-m slurm` selects it): checked at collection.
"""

import os

import pytest
from cluster_helpers import sge_reason, slurm_reason

SCHEDULER_MARKS = ("slurm", "sge")


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


def scheduler_marks(item: pytest.Item) -> list[str]:
    return [name for name in SCHEDULER_MARKS if item.get_closest_marker(name) or name in item.fixturenames]


def skips_fail() -> bool:
    """Skipped scheduler tests fail the run as root (CI). Elsewhere they skip; to leave them out on purpose, deselect
    them (`-m "not slurm and not sge"`): a deselected test is not a test that claimed to run."""
    return os.geteuid() == 0


def pytest_collection_modifyitems(config, items):
    for item in items:
        missing = [name for name in SCHEDULER_MARKS if name in item.fixturenames and not item.get_closest_marker(name)]
        if missing:
            raise pytest.UsageError(f"{item.nodeid} uses the {missing[0]!r} fixture without @pytest.mark.{missing[0]}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marks = scheduler_marks(item)
    if report.skipped and marks and skips_fail():
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = (
            f"{'/'.join(marks)} test skipped while running as root (CI must run it: start the scheduler, or "
            f"deselect with -m 'not slurm and not sge'): {reason}"
        )
