"""Where and with what a result was produced: git commit, host, site, scheduler job, package versions."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

# Packages whose versions decide a result; recorded in every row.
TRACKED_PACKAGES = (
    "pretrainflow", "torch", "deepspeed", "megatron-core", "numpy", "snakemake", "pandas", "pyarrow", "transformers",
    "lm-eval",
)  # fmt: skip

# Environment variables that identify the scheduler and the job id, checked in order.
SCHEDULER_JOB_VARS = (("slurm", "SLURM_JOB_ID"), ("pbs", "PBS_JOBID"), ("gridengine", "JOB_ID"))


@functools.cache
def git_commit(start: str | None = None) -> str | None:
    """The commit of the pretrainflow checkout (``None`` when not run from a git checkout); ``+dirty`` if modified."""
    root = Path(start or __file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}+dirty" if dirty else commit


@functools.cache
def package_versions() -> dict[str, str]:
    """Installed versions of TRACKED_PACKAGES (missing ones are left out)."""
    versions = {}
    for name in TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def scheduler_and_job(env: dict[str, str] | None = None) -> tuple[str, str | None]:
    """(scheduler name, job id) from the environment; ("local", None) outside a batch job."""
    env = dict(os.environ) if env is None else env
    for name, var in SCHEDULER_JOB_VARS:
        if env.get(var):
            return name, env[var]
    return "local", None


def provenance(env: dict[str, str] | None = None) -> dict[str, object]:
    """Provenance fields of a result row (see README "Results rows")."""
    env = dict(os.environ) if env is None else env
    scheduler, job_id = scheduler_and_job(env)
    return {
        "git_commit": git_commit(),
        "host": socket.gethostname(),
        # The site comes from the job wrapper of the site profiles (PRETRAINFLOW_SITE: abci, tsubame); a job submitted by
        # another route (e.g. the Snakemake Slurm plugin) is named after its scheduler.
        "site": env.get("PRETRAINFLOW_SITE") or (scheduler if job_id else "local"),
        "scheduler": scheduler,
        "job_id": job_id,
        "versions": package_versions(),
    }


# The study whose workflow runs this job (set by workflow/rules/common.smk when it loads the study, inherited by every
# job): recorded in each unit's config.json, so that another study shares the unit instead of replacing it
# (study/shared_units.py). Not hashed: which study built a unit does not change what it is.
STUDY_ENV = "PRETRAINFLOW_STUDY"


def config_record(config: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, Any]:
    """The one ``config.json`` shape of every stage directory: the resolved config, its hash, and where it was made
    (``provenance``, with ``study``: the study that built it, None outside a workflow).

    >>> record = config_record({"lr": 0.1}, env={STUDY_ENV: "newton"})
    >>> sorted(record), record["provenance"]["study"]
    (['config', 'config_hash', 'provenance'], 'newton')
    """
    from pretrainflow.io import config_hash

    env = dict(os.environ) if env is None else env
    made = {**provenance(env), "study": env.get(STUDY_ENV) or None}
    return {"config": config, "config_hash": config_hash(config), "provenance": made}
