"""Slurm: sbatch argv for our own submit path (``pretrainflow sched submit --site slurm``, used where the Snakemake
Slurm plugin is not wanted) and the resource names the Snakemake Slurm executor plugin reads.

    sbatch --parsable --job-name <name> [--partition P] [--account A] --nodes N --ntasks-per-node 1
           --cpus-per-task C --mem <MB> --time <minutes> [--gres gpu:G] --signal USR1@300 [--dependency afterok:1:2]
           --output <log> <script>
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pretrainflow.errors import PretrainflowError
from pretrainflow.schedulers.job import SubmitJob
from pretrainflow.schedulers.resources import Placement, ResourceRequest, place


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


def plugin_resources(place: Placement) -> dict[str, object]:
    """A placement in the resource names snakemake-executor-plugin-slurm (2.8) turns into sbatch options.

    That plugin asks for GPUs only from ``gres`` (-> ``--gres=<value>``, per node) or ``gpu`` (-> ``--gpus=N``, the
    job's total, which Slurm may spread unevenly over the nodes), never from our ``gpus``: a GPU job says
    ``gres=gpu:<GPUs per node>``, so every node gets the GPUs the launcher starts ranks on. ``gpus`` and
    ``cpus_per_gpu`` are dropped (None): the plugin's job step (``srun -n1``, slurm-jobstep) would ask for
    ``--gpus=<gpus>`` on its one node, which a multi-node job's step cannot hold; without it the step gets the GPUs
    the job holds on its node. Cores and memory are per node (--cpus-per-task, --mem) with one task per node:
    profiles/slurm sets ``tasks_per_gpu: 0`` so that the plugin adds no --ntasks-per-gpu (one task per GPU would
    multiply the cores asked for).

    >>> plugin_resources(Placement(site="slurm", resource_type="gpu", count=4, gpus_per_node=8, cpus_per_node=128,
    ...                            mem_mb_per_node=700000, runtime_min=720))["gres"]
    'gpu:8'
    """
    return {
        "nodes": place.count,
        "gres": f"gpu:{place.gpus_per_node}" if place.gpus_per_node else None,
        "gpus": None,
        "cpus_per_gpu": None,
        "cpus_per_task": place.cpus_per_node,
        "mem_mb": place.mem_mb_per_node,
        "runtime": place.runtime_min,
    }


def plugin_view(resources: Mapping[str, Any], *, node_gpus: int | str | None, rule: str = "?") -> dict[str, Any]:
    """A rule's abstract resources (pretrainflow.study.resources) as the Slurm plugin reads them: a GPU job placed by
    the one mapping of every site (``place("slurm", ...)``, a total shaped by the profile's ``site_gpus_per_node``)
    and renamed by ``plugin_resources``; a CPU job unchanged (``gres`` None). Raises ConfigError as ``place`` does.

    >>> view = plugin_view({"nodes": None, "gpus": 32, "cpus_per_gpu": 16, "cpus_per_task": 16, "mem_mb": 700000,
    ...                     "runtime": 720, "threads": 1}, node_gpus="8")
    >>> {key: view[key] for key in ("nodes", "gres", "gpus", "cpus_per_task", "threads")}
    {'nodes': 4, 'gres': 'gpu:8', 'gpus': None, 'cpus_per_task': 128, 'threads': 1}
    """
    given = {key: value for key, value in resources.items() if value is not None}
    request = ResourceRequest.from_resources(given, rule)
    if not (request.gpus_per_node or request.total_gpus):
        return {**resources, "gres": None}
    per_node = int(node_gpus) if node_gpus not in (None, "", "none", "None") else None
    return {**resources, **plugin_resources(place("slurm", request, node_gpus=per_node))}


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
