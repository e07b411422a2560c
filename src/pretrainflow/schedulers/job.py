"""One job to submit, independent of the scheduler: the wrapper script, its name, log, dependencies and placement."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from pretrainflow.errors import ConfigError
from pretrainflow.schedulers.resources import Placement
from pretrainflow.schedulers.settings import SiteSettings, check_job_id

# What PBS, Grid Engine and Slurm all accept in a job name (PBS: <= 236 chars starting with a letter; Grid Engine
# forbids / : @ \ * ?): letters, digits, _ . -; we keep 64 characters so qstat columns stay readable.
_NAME_BAD = re.compile(r"[^A-Za-z0-9_.-]+")


def job_name(text: str) -> str:
    """A scheduler-safe job name made from any text (rule name + wildcards): unsafe runs of characters become '_'.

    >>> job_name("pretrain_vit.run=vit-tiny;rm -rf ~")
    'pf.pretrain_vit.run_vit-tiny_rm_-rf_'
    """
    cleaned = _NAME_BAD.sub("_", text)[:60]
    return f"pf.{cleaned}" if cleaned else "pf.job"


@dataclass(kw_only=True, slots=True)
class SubmitJob:
    """Everything a submit command needs; built by commands.py from a Snakemake job script (or by submitit)."""

    name: str
    script: Path  # the wrapper script (jobscript.py) that qsub/sbatch receives
    log: Path  # stdout+stderr of the job
    workdir: Path
    placement: Placement
    settings: SiteSettings
    dependencies: tuple[str, ...] = field(default_factory=tuple)  # job ids that must succeed first (afterok)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self.name):
            raise ConfigError(f"job name: expected letters, digits, '_', '.', '-' (max 64), got {self.name!r}")
        for dep in self.dependencies:
            check_job_id(dep, "dependencies")
