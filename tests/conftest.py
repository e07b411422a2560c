"""Suite-wide environment (the virtual environment's bin/ first on PATH, as `make test` runs the suite) and how the
two pytest-xdist workers of `make test` share the tests.

Why: DeepSpeed JIT-builds its CPU shared-memory op (~/.cache/torch_extensions/*/deepspeed_shm_comm) with whichever
`ninja` is first on PATH. The venv's (pip, 1.13) and a system one (Debian, 1.11) keep incompatible build logs ("build
log version is too old; starting over"), so a suite run as `.venv/bin/python -m pytest` without the venv on PATH
compiled the op again (1-3 min on 2 cores) each time a training started by Snakemake (venv first on PATH,
cluster_helpers.snakemake_env) and one started directly took turns. The op is also built in a directory of the venv's
own (TORCH_EXTENSIONS_DIR, unless set), which every process of the suite shares: the two-node tests' ranks, which start
from an empty environment (`env -i`, tests/launch/netns_hosts.py), get it and PATH from the launcher (mpirun forwards
both by name, pretrainflow.launch.env), as a job's ranks on other nodes do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from pretrainflow.provenance import STUDY_ENV
from pretrainflow.train.tracking import ENV_SECTION as TRACKING_ENV

_VENV_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _VENV_BIN:
    os.environ["PATH"] = f"{_VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch_extensions"))


@pytest.fixture(autouse=True)
def _workflow_env_restored():
    """Loading the Snakefile in-process exports the study's name and W&B section into os.environ (common.smk, for the
    jobs it runs); put them back after each test, so no later test runs its jobs under another test's study."""
    saved = {name: os.environ.get(name) for name in (STUDY_ENV, TRACKING_ENV)}
    yield
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


# The real local schedulers' tests (tests/clusters): one work unit, so they never queue behind each other for the local
# Slurm's / Grid Engine's two slots, and their waits on the scheduler overlap the other worker's tests instead.
SCHEDULER_TESTS = "tests/clusters/"


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """`make test` runs two pytest-xdist workers with ``--dist loadfile``: a whole module runs on one worker (its module
    and session fixtures are built once), and here all of SCHEDULER_TESTS counts as one module. (Not xdist_group marks:
    pytest 9 computes ``nodeid`` from ``_id``, so xdist 3.8's loadgroup no longer sees the group suffix it writes.)"""
    if config.getvalue("dist") != "loadfile":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ModulesSchedulerTestsTogether(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return SCHEDULER_TESTS if module.startswith(SCHEDULER_TESTS) else module

    return ModulesSchedulerTestsTogether(config, log)
