"""Slurm: sbatch argv for our own submit path (``pretrainflow sched submit --site slurm``, used where the Snakemake
Slurm plugin is not wanted) and the resource names the Snakemake Slurm executor plugin reads.

    sbatch --parsable --job-name <name> [--partition P] [--account A] --nodes N --ntasks-per-node 1
           --cpus-per-task C --mem <MB> --time <minutes> [--gres gpu:G] --signal USR1@300 [--dependency afterok:1:2]
           --output <log> <script>
"""

from __future__ import annotations

from pretrainflow.errors import PretrainflowError
from pretrainflow.schedulers.job import SubmitJob
from pretrainflow.schedulers.resources import Placement
from pretrainflow.schedulers.settings import SiteSettings


def submit_argv(job: SubmitJob) -> list[str]:
    place, settings = job.placement, job.settings
    argv = ["sbatch", "--parsable", "--job-name", job.name]
    if settings.queue:
        argv += ["--partition", settings.queue]
    if settings.account:
        argv += ["--account", settings.account]
    # one task per node: our launcher starts one process per GPU inside it (torchrun-style)
    argv += ["--nodes", str(place.count), "--ntasks-per-node", "1", "--cpus-per-task", str(place.cpus_per_node)]
    argv += ["--mem", str(place.mem_mb_per_node), "--time", str(place.runtime_min)]
    if place.gpus_per_node:
        argv += ["--gres", f"gpu:{place.gpus_per_node}"]
    if settings.walltime_signal != "none" and settings.signal_margin_s:
        # B: -> the batch shell (our wrapper) gets SIGUSR1 and forwards it to the training processes
        argv += ["--signal", f"B:USR1@{settings.signal_margin_s}"]
    if job.dependencies:
        argv += ["--dependency", "afterok:" + ":".join(job.dependencies)]
    argv += ["--output", str(job.log), "--chdir", str(job.workdir)]
    return [*argv, *settings.extra, str(job.script)]


def parse_submit_output(stdout: str) -> str:
    """``sbatch --parsable`` prints ``<id>`` or ``<id>;<cluster>``."""
    text = stdout.strip().splitlines()
    if not text:
        raise PretrainflowError(f"sbatch printed no job id (output: {stdout!r})")
    return text[0].split(";")[0].strip()


def plugin_resources(place: Placement, settings: SiteSettings) -> dict[str, object]:
    """The same placement in the resource names of snakemake-executor-plugin-slurm (for ``set-resources``)."""
    resources: dict[str, object] = {
        "nodes": place.count,
        "tasks": place.count,  # one task per node (the plugin otherwise runs the job once per GPU)
        "cpus_per_task": place.cpus_per_node,
        "mem_mb": place.mem_mb_per_node,
        "runtime": place.runtime_min,
    }
    if place.gpus_per_node:
        resources["gres"] = f"gpu:{place.gpus_per_node}"
    if settings.queue:
        resources["slurm_partition"] = settings.queue
    if settings.account:
        resources["slurm_account"] = settings.account
    return resources


# squeue state codes (long names with -o %T): finished ones stay visible for MinJobAge seconds
SQUEUE_RUNNING = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING", "SIGNALING"}
SQUEUE_SUCCESS = {"COMPLETED"}


def status_argv(job_id: str) -> list[str]:
    return ["squeue", "--noheader", "--states=all", "--format=%T", "--jobs", job_id]


def parse_status(stdout: str) -> str | None:
    """'running' | 'success' | 'failed' from ``squeue --format=%T``, or None if squeue no longer knows the job."""
    states = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not states:
        return None
    state = states[0].split()[0]
    if state in SQUEUE_RUNNING:
        return "running"
    return "success" if state in SQUEUE_SUCCESS else "failed"


def cancel_argv(job_ids: list[str]) -> list[str]:
    return ["scancel", *job_ids]
