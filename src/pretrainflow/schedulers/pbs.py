"""PBS Professional (ABCI 3.0): qsub argv, qstat -x -f -F json status parser, qdel argv.

    qsub -N <name> -P <group> -q rt_HF -l select=2:mpiprocs=8 -l walltime=12:00:00 -j oe -o <log> \
         [-v USE_SSH=1] [-W depend=afterok:<id>:<id>] <script>

qsub prints the job id (``1234.pbs1``). ``qstat -x`` keeps finished jobs (history), so a job id unknown to it is failed.
"""

from __future__ import annotations

import json

from pretrainflow.errors import PretrainflowError
from pretrainflow.schedulers.job import SubmitJob

# job_state letters (PBS Pro reference): Q queued, H held, W waiting, T transit, S suspended, U suspended (keyboard),
# B array begun, R running, E exiting, F finished (with -x), X finished subjob, M moved.
ACTIVE_STATES = frozenset("QHWTSUBRE")
DONE_STATES = frozenset("FX")


def submit_argv(job: SubmitJob) -> list[str]:
    """The qsub argv for ``job`` on ABCI (no shell: each item is one argument)."""
    place, settings = job.placement, job.settings
    group = settings.require_group("abci")
    select = f"select={place.count}"
    if place.resource_type == "rt_HF" and place.gpus_per_node:
        # one $PBS_NODEFILE line per process: mpirun and our launcher then see G slots on each node
        select += f":mpiprocs={place.gpus_per_node}"
    argv = ["qsub", "-N", job.name, "-P", group]
    variables = []
    if settings.queue:
        # a reservation (-q R1234) carries the resource type in RTYPE (ABCI job-execution docs)
        argv += ["-q", settings.queue]
        variables.append(f"RTYPE={place.resource_type}")
    else:
        argv += ["-q", place.resource_type]
    argv += ["-l", select, "-l", f"walltime={place.walltime}", "-j", "oe", "-o", str(job.log)]
    if place.count > 1:
        variables.append("USE_SSH=1")  # ssh between the job's nodes (needed by mpirun across nodes)
    if variables:
        argv += ["-v", ",".join(variables)]
    if job.dependencies:
        argv += ["-W", "depend=afterok:" + ":".join(job.dependencies)]
    return [*argv, *settings.extra, str(job.script)]


def parse_submit_output(stdout: str) -> str:
    """The job id qsub printed (first non-empty line)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise PretrainflowError(f"qsub printed no job id (output: {stdout!r})")
    return lines[0]


def status_argv(job_id: str) -> list[str]:
    return ["qstat", "-x", "-f", "-F", "json", job_id]


def parse_status(document: str, job_id: str) -> str | None:
    """'running' | 'success' | 'failed' from a ``qstat -x -f -F json`` document, or None if the job is not in it.

    A finished job (F, or X for an array subjob) succeeded iff its Exit_status is 0. PBS reports a job killed at its
    walltime with Exit_status 271 (256 + SIGTERM) and a job that could not start with a negative status: both failed.
    """
    try:
        jobs = json.loads(document).get("Jobs", {}) if document.strip() else {}
    except json.JSONDecodeError as err:
        raise PretrainflowError(f"qstat -F json: not valid JSON ({err}): {document[:200]!r}") from err
    # qstat may answer with the full id (1234.pbs1.abci.local) when asked for 1234.pbs1, or the reverse
    short = job_id.split(".")[0]
    info = jobs.get(job_id) or next((v for k, v in jobs.items() if k.split(".")[0] == short), None)
    if info is None:
        return None
    state = str(info.get("job_state", "")).strip()
    if state in DONE_STATES:
        exit_status = info.get("Exit_status")
        return "success" if exit_status is not None and int(exit_status) == 0 else "failed"
    if state in ACTIVE_STATES:
        return "running"
    raise PretrainflowError(f"qstat: job {job_id} has unknown job_state {state!r}")


def cancel_argv(job_ids: list[str]) -> list[str]:
    return ["qdel", *job_ids]
