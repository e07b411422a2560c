"""submit / status / cancel as Snakemake's cluster-generic executor calls them (see profiles/abci, profiles/tsubame).

    submit: pretrainflow sched submit --site abci --dependencies "<ids>" <snakemake jobscript>   -> prints the job id
    status: pretrainflow sched status --site abci <job id>           -> prints exactly running | success | failed
    cancel: pretrainflow sched cancel --site abci <job id>...

The job's resources come from the JSON ``# properties = {...}`` line Snakemake writes into every job script (rule,
wildcards, resources including the profile's site_* values), so nothing from the study or the profile passes through
a shell: qsub/qstat/qacct/qdel are called with argv lists. Each submission is recorded under
``.snakemake/pretrainflow-sched/submitted/``: a Snakemake restarted after a killed session (``--unlock``, then the same
command) follows a job of the earlier session that is still queued or running instead of queueing it twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pretrainflow.errors import ConfigError, PretrainflowError
from pretrainflow.io import atomic_write_json
from pretrainflow.schedulers import jobscript, pbs, sge, slurm
from pretrainflow.schedulers.job import SubmitJob, job_name
from pretrainflow.schedulers.resources import ResourceRequest, place
from pretrainflow.schedulers.settings import check_job_id, settings_from

# site -> (scheduler family, module with submit_argv/parse_submit_output/cancel_argv)
SITE_SCHEDULER = {"abci": ("pbs", pbs), "tsubame": ("sge", sge), "slurm": ("slurm", slurm)}
STATE_DIR = Path(".snakemake") / "pretrainflow-sched"  # wrapper scripts, logs, exit-code files (relative to workdir)


def scheduler_of(site: str):
    if site not in SITE_SCHEDULER:
        raise ConfigError(f"--site: expected one of {', '.join(SITE_SCHEDULER)}, got {site!r}")
    return SITE_SCHEDULER[site]


def read_properties(script: Path) -> dict:
    """The job properties Snakemake writes as ``# properties = {json}`` into its job scripts."""
    for line in Path(script).read_text().splitlines()[:5]:
        if line.startswith("# properties = "):
            return json.loads(line[len("# properties = ") :])
    raise PretrainflowError(f"{script}: no '# properties = ' line (not a Snakemake job script?)")


def describe(props: Mapping) -> str:
    """Rule name plus wildcard values, e.g. ``render_shard.fdb-tiny.3`` (group jobs: the group id)."""
    wildcards = props.get("wildcards") or {}
    parts = [str(props.get("rule") or props.get("groupid") or "job"), *map(str, wildcards.values())]
    return ".".join(parts)


@dataclass(kw_only=True, slots=True)
class Prepared:
    job: SubmitJob
    scheduler: str
    argv: list[str]


def prepare_submit(site: str, snakemake_script: Path, dependencies: list[str], workdir: Path) -> Prepared:
    """Everything up to (not including) running qsub: validation, placement, wrapper script, argv."""
    scheduler, module = scheduler_of(site)
    props = read_properties(snakemake_script)
    resources = props.get("resources") or {}
    settings = settings_from(resources)
    request = ResourceRequest.from_resources({**resources, "threads": props.get("threads", 1)}, describe(props))
    try:
        placement = place(site, request, settings.max_runtime_min, node_gpus=settings.node_gpus,
                          packed=props.get("type") == "group")  # fmt: skip
    except ConfigError as err:  # name the job (rule and run) as well as the site: "pretrain_vit.vit-b: tsubame ..."
        raise ConfigError(f"{describe(props)}: {err}") from None
    name = job_name(describe(props))
    state = workdir / STATE_DIR
    job = SubmitJob(
        name=name,
        script=state / "scripts" / f"{Path(snakemake_script).name}.{scheduler}.sh",
        log=state / "logs" / f"{name}.{Path(snakemake_script).name}.log",
        workdir=workdir,
        placement=placement,
        settings=settings,
        dependencies=tuple(dependencies),
    )
    argv = module.submit_argv(job)  # raises ConfigError (e.g. missing group) before anything is written or submitted
    return Prepared(job=job, scheduler=scheduler, argv=argv)


def submission_key(props: Mapping) -> str:
    """What identifies one Snakemake job across Snakemake sessions: rule and wildcards, or a group job's id (the uuid
    of its last job, stable for the same set of jobs).

    >>> submission_key({"rule": "part", "wildcards": {"i": "0"}}) == submission_key({"wildcards": {"i": "0"},
    ...     "rule": "part", "jobid": 7})
    True
    """
    if props.get("type") == "group":
        identity = {"group": props.get("groupid"), "jobid": props.get("jobid")}
    else:
        identity = {"rule": props.get("rule"), "wildcards": props.get("wildcards") or {}}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:20]


def live_submission(site: str, props: Mapping, workdir: Path) -> str | None:
    """The id of this job's earlier submission from this working directory if the scheduler still has it queued or
    running, else None. After a killed Snakemake and `--unlock`, the new Snakemake then follows that job instead of
    queueing a second copy of it (the training run lock is the second line of defence)."""
    record = workdir / STATE_DIR / "submitted" / f"{submission_key(props)}.json"
    try:
        job_id = json.loads(record.read_text())["job_id"]
    except (OSError, ValueError, KeyError):
        return None
    return job_id if status(site, job_id, workdir=workdir) == "running" else None


def submit(site: str, snakemake_script: Path, dependencies: list[str], workdir: Path | None = None) -> str:
    """Submit a Snakemake job script; return the scheduler's job id (an earlier submission of the same job that is
    still queued or running is returned instead of a new one: ``live_submission``)."""
    workdir = Path(workdir or os.getcwd()).resolve()
    for dep in dependencies:
        check_job_id(dep, "dependencies")
    props = read_properties(Path(snakemake_script))
    if (earlier := live_submission(site, props, workdir)) is not None:
        print(f"[sched submit] {describe(props)}: job {earlier} of an earlier Snakemake is still queued or running "
              "here: following it instead of submitting again", file=sys.stderr)  # fmt: skip
        return earlier
    if site == "abci":
        dependencies = pending_pbs_dependencies(dependencies)
    prepared = prepare_submit(site, Path(snakemake_script).resolve(), dependencies, workdir)
    job = prepared.job
    text = jobscript.render(
        job,
        scheduler=prepared.scheduler,
        payload=["/bin/sh", str(Path(snakemake_script).resolve())],
        status_dir=workdir / STATE_DIR / "status",
        python_bin=Path(sys.executable).parent,
    )
    job.script.parent.mkdir(parents=True, exist_ok=True)
    job.log.parent.mkdir(parents=True, exist_ok=True)
    job.script.write_text(text)
    job.script.chmod(0o755)
    try:
        result = subprocess.run(prepared.argv, capture_output=True, text=True, cwd=workdir)
    except FileNotFoundError:
        raise PretrainflowError(f"{prepared.argv[0]}: command not found (is this a login node of {site}?)") from None
    if result.returncode != 0:
        raise PretrainflowError(f"{prepared.argv[0]} failed ({result.returncode}): {result.stderr.strip()}")
    job_id = check_job_id(SITE_SCHEDULER[site][1].parse_submit_output(result.stdout), "submitted job id")
    # a stale exit file from an earlier scheduler instance that reused this id must not answer for the new job
    # (the new job cannot have finished yet: qsub returns before the scheduler's next cycle starts it)
    (workdir / STATE_DIR / "status" / f"{job_id}.exit").unlink(missing_ok=True)
    record = {"job_id": job_id, "name": job.name, "submitted": time.time()}
    atomic_write_json(workdir / STATE_DIR / "submitted" / f"{submission_key(props)}.json", record)
    return job_id


def pending_pbs_dependencies(dependencies: list[str]) -> list[str]:
    """The dependencies that have not finished yet. Snakemake hands over the ids of every input's job, and without
    --immediate-submit those have already succeeded; PBS refuses `-W depend=afterok:<id>` on a finished job, while Grid
    Engine ignores a -hold_jid on one (checked on the test cluster), so only PBS needs this filter."""
    return [dep for dep in dependencies if pbs.parse_status(_run(pbs.status_argv(dep)).stdout, dep) == "running"]


def _run(argv: list[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(argv, capture_output=True, text=True)
    except FileNotFoundError:
        raise PretrainflowError(
            f"{argv[0]}: command not found (is this a login node of the site's scheduler?)"
        ) from None


def _exit_file_status(workdir: Path, job_id: str) -> str | None:
    path = workdir / STATE_DIR / "status" / f"{job_id}.exit"
    if not path.exists():
        return None
    return "success" if path.read_text().strip() == "0" else "failed"


def status(site: str, job_id: str, workdir: Path | None = None, grace_s: float = 120.0) -> str:
    """running | success | failed for ``job_id`` (the exit-code file first, then the scheduler)."""
    check_job_id(job_id)
    scheduler, _ = scheduler_of(site)
    workdir = Path(workdir or os.getcwd()).resolve()
    if scheduler == "pbs":
        answer = pbs.parse_status(_run(pbs.status_argv(job_id)).stdout, job_id)
        if answer == "running":
            return answer
        # finished: our exit file is exact; without it (killed before the wrapper ended) trust PBS; unknown -> failed
        return _exit_file_status(workdir, job_id) or answer or "failed"
    if scheduler == "slurm":
        answer = slurm.parse_status(_run(slurm.status_argv(job_id)).stdout)
        if answer == "running":
            return answer
        return _exit_file_status(workdir, job_id) or answer or "failed"
    return _sge_status(job_id, workdir, grace_s)


def _sge_status(job_id: str, workdir: Path, grace_s: float) -> str:
    listing = _run(sge.qstat_argv())
    if listing.returncode == 0:
        state = sge.parse_qstat_xml(listing.stdout).get(job_id)
        if state is not None:
            return sge.state_to_status(state)
    exit_file = _exit_file_status(workdir, job_id)
    if exit_file:
        return exit_file
    answer = sge.parse_qacct(_run(sge.qacct_argv(job_id)).stdout)
    if answer:
        return answer
    # Gone from qstat, no accounting record yet: the accounting file is flushed late, or the job was deleted while
    # pending (no record ever). Report running until a grace period from the first miss has passed, then failed.
    marker = workdir / STATE_DIR / "status" / f"{job_id}.missing"
    marker.parent.mkdir(parents=True, exist_ok=True)
    if not marker.exists():
        marker.write_text(str(time.time()))
    return "failed" if time.time() - float(marker.read_text() or 0) > grace_s else "running"


def cancel(site: str, job_ids: list[str]) -> None:
    """Cancel jobs (Snakemake calls this on Ctrl-C); unknown ids are not an error."""
    for job_id in job_ids:
        check_job_id(job_id)
    _, module = scheduler_of(site)
    if job_ids:
        _run(module.cancel_argv(job_ids))
