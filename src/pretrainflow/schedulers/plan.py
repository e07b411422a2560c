"""``pretrainflow sched plan --site abci [-- <snakemake args>]``: what a study would ask of a site, before submitting.

Runs ``snakemake --dry-run --profile <site profile>`` and maps every job that would be submitted through the same
resource mapping the submit command uses, printing one line per job (rule, wildcards, resource type x count, GPUs per
node, walltime). A job the site cannot satisfy (9 GPUs on one ABCI node, a walltime over the site limit) is reported
with its rule and the command exits with status 2, so a study is checked before anything reaches the queue.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pretrainflow.errors import ConfigError, PretrainflowError
from pretrainflow.schedulers.resources import Placement, ResourceRequest, place

_RULE = re.compile(r"^(local)?rule (\S+):$")
_FIELD = re.compile(r"^\s+(wildcards|resources|output): (.*)$")


@dataclass(kw_only=True, slots=True)
class PlannedJob:
    rule: str
    wildcards: str = ""
    localrule: bool = False
    has_output: bool = False
    resources: dict[str, str] = field(default_factory=dict)

    @property
    def submitted(self) -> bool:
        """Snakemake runs localrules and jobs without outputs (like ``all``) itself; the rest go to the scheduler."""
        return self.has_output and not self.localrule


def parse_dry_run(text: str) -> list[PlannedJob]:
    """Jobs of a ``snakemake --dry-run`` listing (rule, wildcards, resources as printed)."""
    jobs: list[PlannedJob] = []
    for line in text.splitlines():
        if match := _RULE.match(line.strip()):
            jobs.append(PlannedJob(rule=match.group(2), localrule=bool(match.group(1))))
        elif jobs and (match := _FIELD.match(line)):
            kind, value = match.groups()
            if kind == "output":
                jobs[-1].has_output = True
            elif kind == "wildcards":
                jobs[-1].wildcards = value
            else:
                # "tmpdir=<TBD>, mem_mb=200, mem=200 MB, site_modules=cuda/12.6 hpcx/2.20" -> dict
                for item in re.split(r", (?=[A-Za-z_][A-Za-z0-9_]*=)", value):
                    key, _, text_value = item.partition("=")
                    jobs[-1].resources[key.strip()] = text_value.strip()
    return jobs


def place_job(site: str, job: PlannedJob) -> Placement:
    max_runtime = job.resources.get("site_max_runtime")
    request = ResourceRequest.from_resources(job.resources, job.rule)
    return place(site, request, int(max_runtime) if max_runtime else None)


def default_profile(site: str) -> Path:
    from pretrainflow.schedulers.profiles import repository_profiles

    return repository_profiles() / site


def plan(site: str, snakemake_args: list[str], profile: Path | None = None, out=sys.stdout) -> int:
    """Print the plan; return 0, or 2 when a job cannot be placed on ``site``."""
    argv = [
        str(Path(sys.executable).parent / "snakemake"),
        "--dry-run",
        "--profile",
        str(profile or default_profile(site)),
    ]
    result = subprocess.run([*argv, *snakemake_args], capture_output=True, text=True)
    if result.returncode != 0:
        raise PretrainflowError(f"snakemake --dry-run failed:\n{(result.stderr or result.stdout)[-3000:]}")
    jobs = [job for job in parse_dry_run(result.stdout + result.stderr) if job.submitted]
    print(f"{site}: {len(jobs)} jobs would be submitted", file=out)
    print(f"{'rule':<22} {'wildcards':<44} {'type':<8} {'x':>3} {'GPU/node':>8} {'walltime':>9}", file=out)
    failures = 0
    for job in jobs:
        try:
            placed = place_job(site, job)
        except ConfigError as err:
            failures += 1
            print(f"{job.rule:<22} {job.wildcards[:44]:<44} ERROR: {err}", file=out)
            continue
        print(
            f"{job.rule:<22} {job.wildcards[:44]:<44} {placed.resource_type:<8} {placed.count:>3} "
            f"{placed.gpus_per_node:>8} {placed.walltime:>9}",
            file=out,
        )
    if failures:
        print(f"{failures} job(s) cannot run on {site}: fix their resources before submitting", file=out)
    return 2 if failures else 0
