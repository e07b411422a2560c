"""``pretrainflow sched plan --site abci [-- <snakemake args>]``: what a study would ask of a site, before submitting.

Runs ``snakemake --dry-run --profile <site profile>`` and maps every job that would be submitted through the same
resource mapping the submit command uses (a total of GPUs is shaped into the site's nodes there too): one line per job
(rule, wildcards, resource type x count, GPUs per node, walltime), then the totals of the study on that site:
submissions, node-hours and the site's points. A job the site cannot satisfy (8 GPUs on one TSUBAME node, a walltime
over the site limit) is reported with its rule and wildcards (the run), and the command exits with status 2.

The totals are upper bounds from the requested walltimes: a site charges elapsed time (ABCI books the walltime at
the start and pays the rest back), and a run longer than one walltime is submitted again (``restart-times``, resuming
from its checkpoint), which no plan can know. Node-hours weigh a shared type by its part of a node
(``Site.node_share``: rt_HG 1/8, node_q 1/4). Points need the site's rate of each resource type (``site_points`` in
the profile; docs/clusters.md cites the published tables, whose values are not in our reference). Jobs of local rules
(``LOCAL_RULES``; this Snakemake's dry run does not mark them) run in Snakemake itself and are listed apart.
Jobs that Snakemake packs into one group job (a rule's ``group:`` with the profile's ``group-components``: shard
rendering, corpus tokenising) are one submission, listed as the group with its number of jobs (``group_job``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from pretrainflow.errors import ConfigError, PretrainflowError
from pretrainflow.schedulers.resources import Placement, ResourceRequest, place
from pretrainflow.schedulers.settings import settings_from
from pretrainflow.schedulers.sites import site
from pretrainflow.study.resources import LOCAL_RULES

_RULE = re.compile(r"^(local)?rule (\S+):$")
_FIELD = re.compile(r"^\s+(wildcards|resources|output): (.*)$")
# "[Tue Dec  1 20:50:45 2026] Group job render_shards (jobs in lexicogr. order):", then its jobs indented by 4
_GROUP = re.compile(r"^\[[^\]]*\] Group job (\S+) ")


@dataclass(kw_only=True, slots=True)
class PlannedJob:
    rule: str
    wildcards: str = ""
    localrule: bool = False
    has_output: bool = False
    resources: dict[str, str] = field(default_factory=dict)
    group: str = ""  # the Snakemake group (rule `group:`) of a packed job; "" for a job submitted on its own
    group_index: int = -1  # which group job of the listing it belongs to (one submission per index)

    @property
    def submitted(self) -> bool:
        """Snakemake runs localrules and jobs without outputs (like ``all``) itself; the rest go to the scheduler."""
        return self.has_output and not self.localrule


def parse_dry_run(text: str, local_rules: tuple[str, ...] = LOCAL_RULES) -> list[PlannedJob]:
    """Jobs of a ``snakemake --dry-run`` listing (rule, wildcards, resources as printed); ``local_rules`` are local
    whether or not the listing says ``localrule``."""
    jobs: list[PlannedJob] = []
    group, group_index = "", -1
    for line in text.splitlines():
        if match := _GROUP.match(line):
            group, group_index = match.group(1), group_index + 1
        elif match := _RULE.match(line.strip()):
            local = bool(match.group(1)) or match.group(2) in local_rules
            if not line.startswith(" "):  # a job at the left margin is not a member of the group listed above it
                group = ""
            job = PlannedJob(rule=match.group(2), localrule=local)
            if group:
                job.group, job.group_index = group, group_index
            jobs.append(job)
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


def place_job(site_name: str, job: PlannedJob) -> Placement:
    """The job's placement on the site, as ``sched submit`` would compute it (profile values from its resources)."""
    settings = settings_from(job.resources, env={})
    request = ResourceRequest.from_resources(job.resources, job.rule)
    return place(site_name, request, settings.max_runtime_min, node_gpus=settings.node_gpus, packed=bool(job.group))


def group_job(members: list[PlannedJob]) -> PlannedJob:
    """One submission for the jobs of one Snakemake group job: cores and memory summed, the longest runtime, as
    Snakemake sums a group whose jobs all run side by side (its inner run has ``--cores all``). Snakemake narrows the
    group to the ``cores`` it is given (profiles/default: all cores of the login node): with fewer, the real request has
    fewer cores and a longer walltime; the number of submissions is the same.

    >>> job = group_job([PlannedJob(rule="render_shard", group="render_shards", resources={"mem_mb": "2374",
    ...     "runtime": "10", "cpus_per_task": "1", "site_group": "x"})] * 32)
    >>> job.rule, job.wildcards, job.resources["cpus_per_task"], job.resources["mem_mb"], job.resources["runtime"]
    ('render_shards', '32 jobs: render_shard', '32', '75968', '10')
    """

    def total(key: str, default: int) -> int:
        return sum(int(job.resources.get(key, default)) for job in members)

    resources = {key: value for key, value in members[0].resources.items() if key.startswith("site_")}
    resources.update(cpus_per_task=str(total("cpus_per_task", 1)), mem_mb=str(total("mem_mb", 1000)),
                     runtime=str(max(int(job.resources.get("runtime", 60)) for job in members)))  # fmt: skip
    rules = ", ".join(sorted({job.rule for job in members}))
    return PlannedJob(rule=members[0].group, wildcards=f"{len(members)} jobs: {rules}", has_output=True,
                      resources=resources, group=members[0].group, group_index=members[0].group_index)  # fmt: skip


@dataclass(kw_only=True, slots=True)
class TypeTotal:
    submissions: int = 0
    unit_hours: float = 0.0  # units of the type x requested hours (rt_HF select=4 for 12 h: 48)
    node_hours: float = 0.0  # unit_hours x the type's part of a node (Slurm: whole nodes, an upper bound)
    gpu_hours: float = 0.0  # GPUs x requested hours


@dataclass(kw_only=True, slots=True)
class SitePlan:
    """A study's jobs placed on one site, with totals by resource type."""

    site: str
    placed: list[tuple[PlannedJob, Placement]] = field(default_factory=list)
    failed: list[tuple[PlannedJob, str]] = field(default_factory=list)
    local: list[PlannedJob] = field(default_factory=list)
    rates: dict[str, float] = field(default_factory=dict)  # points per unit-hour, from the profile's site_points

    def by_type(self) -> dict[str, TypeTotal]:
        totals: dict[str, TypeTotal] = {}
        for _, placed in self.placed:
            total = totals.setdefault(placed.resource_type, TypeTotal())
            hours = placed.count * placed.runtime_min / 60
            total.submissions += 1
            total.unit_hours += hours
            total.node_hours += hours * site(self.site).node_share(placed.resource_type)
            total.gpu_hours += hours * placed.gpus_per_node
        return dict(sorted(totals.items()))

    @property
    def node_hours(self) -> float:
        return sum(total.node_hours for total in self.by_type().values())

    @property
    def gpu_hours(self) -> float:
        return sum(total.gpu_hours for total in self.by_type().values())

    @property
    def missing_rates(self) -> list[str]:
        return [name for name in self.by_type() if name not in self.rates]

    @property
    def points(self) -> float | None:
        """Points of the whole plan, or None while a resource type it uses has no rate."""
        if self.missing_rates:
            return None
        return sum(self.rates[name] * total.unit_hours for name, total in self.by_type().items())


def site_plan(site_name: str, jobs: list[PlannedJob]) -> SitePlan:
    """Place every job of a dry run on ``site_name`` (pure: no Snakemake, no scheduler)."""
    result = SitePlan(site=site_name, local=[job for job in jobs if job.has_output and job.localrule])
    groups: dict[int, list[PlannedJob]] = {}
    for job in jobs:
        if job.submitted and job.group:
            groups.setdefault(job.group_index, []).append(job)
    submissions = [job for job in jobs if job.submitted and not job.group]
    submissions += [group_job(members) for members in groups.values()]
    for job in submissions:
        try:
            result.placed.append((job, place_job(site_name, job)))
        except ConfigError as err:
            result.failed.append((job, str(err)))
    if jobs:
        result.rates = settings_from(jobs[0].resources, env={}).points
    return result


def dry_run(snakemake_args: list[str], profile: Path | None) -> list[PlannedJob]:
    """The jobs ``snakemake --dry-run [--profile P] <args>`` lists."""
    argv = [str(Path(sys.executable).parent / "snakemake"), "--dry-run"]
    argv += ["--profile", str(profile)] if profile is not None else []
    result = subprocess.run([*argv, *snakemake_args], capture_output=True, text=True)
    if result.returncode != 0:
        raise PretrainflowError(f"snakemake --dry-run failed:\n{(result.stderr or result.stdout)[-3000:]}")
    return parse_dry_run(result.stdout + result.stderr)


def default_profile(site_name: str) -> Path:
    from pretrainflow.schedulers.profiles import repository_profiles

    return repository_profiles() / site_name


def print_plan(result: SitePlan, out=sys.stdout) -> None:
    """One line per submitted job, then the totals by resource type (see the module docstring for their meaning)."""
    name = result.site
    local = Counter(job.rule for job in result.local)
    local_text = ", ".join(f"{rule} x {n}" for rule, n in sorted(local.items())) or "none"
    print(f"{name}: {len(result.placed) + len(result.failed)} jobs would be submitted "
          f"(run by Snakemake itself: {local_text})", file=out)  # fmt: skip
    print(f"{'rule':<22} {'wildcards':<44} {'type':<8} {'x':>3} {'GPU/node':>8} {'walltime':>9}", file=out)
    for job, placed in result.placed:
        print(
            f"{job.rule:<22} {job.wildcards[:44]:<44} {placed.resource_type:<8} {placed.count:>3} "
            f"{placed.gpus_per_node:>8} {placed.walltime:>9}",
            file=out,
        )
    for job, error in result.failed:
        print(f"{job.rule:<22} {job.wildcards[:44]:<44} ERROR: {job.rule} {job.wildcards} on {name}: {error}", file=out)
    print(f"\n{name} totals at the requested walltimes (upper bounds; a run longer than one walltime is resubmitted):",
          file=out)  # fmt: skip
    print(f"{'type':<8} {'submissions':>11} {'units x h':>11} {'node-h':>10} {'GPU-h':>10}", file=out)
    for type_name, total in result.by_type().items():
        print(f"{type_name:<8} {total.submissions:>11} {total.unit_hours:>11.1f} {total.node_hours:>10.1f} "
              f"{total.gpu_hours:>10.1f}", file=out)  # fmt: skip
    points = result.points
    if points is not None:
        points_text = f"{points:,.1f}"
    else:  # the published tables are cited in docs/clusters.md; their values are not in our reference
        points_text = f"n/a (no rate for {', '.join(result.missing_rates)}: set site_points in the profile)"
    print(f"total: {len(result.placed)} submissions, {result.node_hours:,.1f} node-hours, {result.gpu_hours:,.1f} "
          f"GPU-hours, points {points_text}", file=out)  # fmt: skip
    if points is None and result.missing_rates:
        print(f"{name} charges: {site(name).points}", file=out)
    if result.failed:
        print(f"{len(result.failed)} job(s) cannot run on {name}: fix their resources before submitting", file=out)


def plan(site_name: str, snakemake_args: list[str], profile: Path | None = None, out=sys.stdout) -> int:
    """Print the plan; return 0, or 2 when a job cannot be placed on ``site_name``."""
    site(site_name)  # an unknown site is an error before Snakemake runs
    result = site_plan(site_name, dry_run(snakemake_args, profile or default_profile(site_name)))
    print_plan(result, out)
    return 2 if result.failed else 0
