"""Grid Engine (TSUBAME 4.0; also stock Son of Grid Engine): qsub argv, qstat -xml and qacct -j parsers, qdel argv.

    qsub -terse -N <name> -g <group> -l node_f=2 -l h_rt=24:00:00 [-l s_rt=23:55:00] -j y -o <log> -cwd \
         -S /bin/bash [-hold_jid <id>,<id>] <script>

`-terse` makes qsub print only the job id. A running or queued job is in ``qstat -xml``; once it has left, its record
appears in the accounting file (``qacct -j <id>``) after the accounting flush (1 s on the test cluster). ``failed`` 0
and ``exit_status`` 0 mean success; ``failed`` 37 is a job killed at h_rt, 100 a job deleted while running.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from pretrainflow.errors import PretrainflowError
from pretrainflow.schedulers.job import SubmitJob


def submit_argv(job: SubmitJob) -> list[str]:
    """The qsub argv for ``job`` (no shell: each item is one argument)."""
    place, settings = job.placement, job.settings
    argv = ["qsub", "-terse", "-N", job.name]
    if settings.group_flag:
        # TSUBAME: `-g <group>` charges the group (without it the job is a short free trial); stock SGE rejects -g
        argv += [settings.group_flag, settings.require_group("tsubame")]
    argv += ["-l", f"{place.resource_type}={place.count}", "-l", f"h_rt={place.walltime}"]
    if settings.walltime_signal == "s_rt" and place.runtime_min * 60 > settings.signal_margin_s:
        # soft limit: Grid Engine sends SIGUSR1 when s_rt passes, SIGKILL at h_rt
        soft = place.runtime_min * 60 - settings.signal_margin_s
        argv += ["-l", f"s_rt={soft // 3600:02d}:{soft % 3600 // 60:02d}:{soft % 60:02d}"]
    if settings.queue:
        argv += ["-q", settings.queue]
    argv += ["-j", "y", "-o", str(job.log), "-wd", str(job.workdir), "-S", "/bin/bash"]
    if job.dependencies:
        argv += ["-hold_jid", ",".join(job.dependencies)]
    return [*argv, *settings.extra, str(job.script)]


def parse_submit_output(stdout: str) -> str:
    """The job id printed by ``qsub -terse`` (``123``, or ``123.1-4:1`` for arrays -> ``123``)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        raise PretrainflowError(f"qsub printed no job id (output: {stdout!r})")
    return lines[0].split(".")[0]


def qstat_argv() -> list[str]:
    return ["qstat", "-xml", "-u", "*"]


def parse_qstat_xml(document: str) -> dict[str, str]:
    """Map job id -> state letters (``qw``, ``r``, ``t``, ``Eqw``, ``dr`` ...) for every job in ``qstat -xml``."""
    try:
        root = ET.fromstring(document)
    except ET.ParseError as err:
        raise PretrainflowError(f"qstat -xml: not valid XML ({err}): {document[:200]!r}") from err
    states = {}
    for element in root.iter("job_list"):
        number = element.findtext("JB_job_number")
        if number:
            states[number.strip()] = (element.findtext("state") or "").strip()
    return states


def state_to_status(state: str) -> str:
    """A job still in qstat: 'E' in its state (Eqw: could not start, waits forever) is a failure, the rest running."""
    return "failed" if "E" in state else "running"


def qacct_argv(job_id: str) -> list[str]:
    return ["qacct", "-j", job_id]


def parse_qacct(document: str) -> str | None:
    """'success' | 'failed' from ``qacct -j <id>`` output, or None when it has no record (yet).

    A job id may have several records (a rescheduled job): the last one counts.
    """
    records: list[dict[str, str]] = []
    for line in document.splitlines():
        if line.startswith("====="):
            records.append({})
            continue
        key, _, value = line.partition(" ")
        if records and key:
            records[-1][key] = value.strip()
    records = [r for r in records if "exit_status" in r]
    if not records:
        return None
    last = records[-1]
    failed = int(last.get("failed", "0").split()[0])  # e.g. "100 : assumedly after job"
    exit_status = int(last["exit_status"].split()[0])
    return "success" if failed == 0 and exit_status == 0 else "failed"


def cancel_argv(job_ids: list[str]) -> list[str]:
    return ["qdel", *job_ids]
