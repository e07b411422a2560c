"""submitit executors for PBS Professional (ABCI) and Grid Engine (TSUBAME), through submitit's plugin interface.

    executor = PBSExecutor(folder="results/submitit", settings=SiteSettings(group="gaa50000"))
    executor.update_parameters(gpus_per_node=8, nodes=1, timeout_min=600, name="vit-tiny")
    job = executor.submit(function, *args)     # -> qsub -P gaa50000 -q rt_HF -l select=1:mpiprocs=8 ...
    job.result()

They share everything with the Snakemake profiles: resource mapping (resources.place), qsub argv (pbs/sge.submit_argv),
wrapper job script (jobscript.render: modules, SIGUSR1 before the walltime) and status (commands.status: qstat -F json;
qstat -xml then qacct). Inside the job, ``python -m pretrainflow.schedulers.submitit_run <folder>`` registers the job
environments below and hands over to submitit. Walltime: the job gets SIGUSR1 (SUBMITIT_PREEMPT_SIGNAL=USR1) before
its limit; submitit calls the function's ``checkpoint()`` and our environment requeues the job under the same id:
Grid Engine reschedules a job whose script exits with 99; PBS with ``qrerun`` (an operator command on many PBS sites:
where users may not run it, the job ends and must be resubmitted).

Entry points (pyproject, group ``submitit``): ``executor = pretrainflow.schedulers.submitit_plugins:PBSExecutor`` and
``job_environment = pretrainflow.schedulers.submitit_plugins:PBSJobEnvironment`` (submitit takes one of each per
package; the Grid Engine executor is used directly, and both environments are registered by submitit_run).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import typing as tp
from pathlib import Path

from submitit.core import core, job_environment, utils

from pretrainflow.errors import ConfigError
from pretrainflow.launch.discover import read_pbs_nodefile, read_pe_hostfile
from pretrainflow.schedulers import jobscript, pbs, sge
from pretrainflow.schedulers.job import SubmitJob, job_name
from pretrainflow.schedulers.resources import ResourceRequest, place
from pretrainflow.schedulers.settings import SiteSettings

STATE = {"running": "RUNNING", "success": "COMPLETED", "failed": "FAILED"}  # commands.status -> submitit states
SGE_RESCHEDULE_EXIT = 99  # Grid Engine puts a job whose script exits 99 back into the queue, same job id


class QsubInfoWatcher(core.InfoWatcher):
    """Polls `pretrainflow sched status` logic for all registered jobs in one subprocess call."""

    site = ""

    def _make_command(self) -> list[str] | None:
        to_check = sorted(self._registered - self._finished)
        if not to_check:
            return None
        return [sys.executable, "-m", "pretrainflow.schedulers.submitit_plugins", self.site, *to_check]

    def get_state(self, job_id: str, mode: str = "standard") -> str:
        return self.get_info(job_id, mode=mode).get("State") or "UNKNOWN"

    def read_info(self, string: bytes | str) -> dict[str, dict[str, str]]:
        text = string.decode() if isinstance(string, bytes) else string
        return {job_id: {"State": state} for job_id, state in json.loads(text or "{}").items()}


class PBSInfoWatcher(QsubInfoWatcher):
    site = "abci"


class SGEInfoWatcher(QsubInfoWatcher):
    site = "tsubame"


class PBSJob(core.Job[core.R]):
    _cancel_command = "qdel"
    watcher = PBSInfoWatcher(delay_s=30)


class SGEJob(core.Job[core.R]):
    _cancel_command = "qdel"
    watcher = SGEInfoWatcher(delay_s=30)


class _QsubExecutor(core.PicklingExecutor):
    """Shared by PBSExecutor and SGEExecutor: parameters are the generic submitit ones."""

    site = ""
    scheduler = ""
    job_id_variable = ""

    def __init__(self, folder: str | Path, settings: SiteSettings | None = None, max_num_timeout: int = 3) -> None:
        if "%" in str(folder):
            raise ConfigError(f"folder: {folder!r}: %j/%A patterns are not supported by the {self.site} executor")
        super().__init__(Path(folder).resolve(), max_num_timeout=max_num_timeout)
        self.settings = settings or SiteSettings()
        # the job must answer SIGUSR1 (sent before the walltime) with submitit's checkpoint-and-requeue
        self.settings.env = {**self.settings.env, "SUBMITIT_EXECUTOR": self.name(), "SUBMITIT_PREEMPT_SIGNAL": "USR1"}
        self.parameters = {"timeout_min": 60, "nodes": 1, "gpus_per_node": 0, "cpus_per_task": 1, "mem_gb": 4.0,
                           "name": "submitit"}  # fmt: skip

    @classmethod
    def _valid_parameters(cls) -> set[str]:
        return {"timeout_min", "nodes", "gpus_per_node", "cpus_per_task", "mem_gb", "name"}

    @classmethod
    def _equivalence_dict(cls) -> core.EquivalenceDict:
        return {name: name for name in cls._valid_parameters()}  # type: ignore[return-value]

    def _internal_update_parameters(self, **kwargs: tp.Any) -> None:
        unknown = sorted(set(kwargs) - self._valid_parameters())
        if unknown:
            raise ValueError(f"Unavailable parameter(s) {unknown}; valid: {sorted(self._valid_parameters())}")
        super()._internal_update_parameters(**kwargs)
        self._placement()  # fail at update time, not at submission, on what the site cannot give

    def _placement(self):
        p = self.parameters
        request = ResourceRequest(
            gpus_per_node=int(p["gpus_per_node"]), nodes=int(p["nodes"]), cpus_per_task=int(p["cpus_per_task"]),
            mem_mb=int(float(p["mem_gb"]) * 1024), runtime_min=int(p["timeout_min"]),
        )  # fmt: skip
        return place(self.site, request, self.settings.max_runtime_min, node_gpus=self.settings.node_gpus)

    @property
    def _submitit_command_str(self) -> str:
        return "pretrainflow.schedulers.submitit_run"  # the payload is built as an argv in _submit_job below

    def _submit_job(self, script: Path) -> SubmitJob:
        return SubmitJob(
            name=job_name(str(self.parameters["name"])),
            script=script,
            log=script.with_suffix(".log"),
            workdir=Path.cwd(),
            placement=self._placement(),
            settings=self.settings,
        )

    def _make_submission_file_text(self, command: str, uid: str) -> str:
        script = utils.JobPaths.get_first_id_independent_folder(self.folder) / f".submission_file_{uid}.sh"
        folder = str(self.folder)
        # stdout/stderr where submitit's Job.stdout()/stderr() look: <folder>/<job id>_0_log.out
        redirect = f'exec "$0" -u -m {command} "$1" >> "$1/${{{self.job_id_variable}}}_0_log.out" ' \
                   f'2>> "$1/${{{self.job_id_variable}}}_0_log.err"'  # fmt: skip
        payload = ["/bin/bash", "-c", redirect, sys.executable, folder]
        return jobscript.render(self._submit_job(script), scheduler=self.scheduler, payload=payload,
                                status_dir=self.folder / "status", python_bin=Path(sys.executable).parent)  # fmt: skip

    def _make_submission_command(self, submission_file_path: Path) -> list[str]:
        module = pbs if self.scheduler == "pbs" else sge
        return module.submit_argv(self._submit_job(Path(submission_file_path)))

    def _num_tasks(self) -> int:
        return 1  # one task per job: multi-node training starts its own processes (pretrainflow.launch)


class PBSExecutor(_QsubExecutor):
    """PBS Professional (ABCI 3.0)."""

    job_class = PBSJob
    site, scheduler, job_id_variable = "abci", "pbs", "PBS_JOBID"

    @classmethod
    def name(cls) -> str:
        return "pbs"

    @staticmethod
    def _get_job_id_from_submission_command(string: bytes | str) -> str:
        return pbs.parse_submit_output(string.decode() if isinstance(string, bytes) else string)

    @classmethod
    def affinity(cls) -> int:
        return 2 if subprocess.run(["which", "pbsnodes"], capture_output=True).returncode == 0 else -1


class SGEExecutor(_QsubExecutor):
    """Grid Engine (TSUBAME 4.0; stock Son of Grid Engine with ``SiteSettings(group_flag=None)``)."""

    job_class = SGEJob
    site, scheduler, job_id_variable = "tsubame", "sge", "JOB_ID"

    @classmethod
    def name(cls) -> str:
        return "sge"

    @staticmethod
    def _get_job_id_from_submission_command(string: bytes | str) -> str:
        return sge.parse_submit_output(string.decode() if isinstance(string, bytes) else string)

    @classmethod
    def affinity(cls) -> int:
        return 2 if subprocess.run(["which", "qconf"], capture_output=True).returncode == 0 else -1


class PBSJobEnvironment(job_environment.JobEnvironment):
    """Inside a PBS job: ids from PBS_JOBID, nodes from $PBS_NODEFILE; one task per job."""

    _env = {"job_id": "PBS_JOBID", "num_tasks": "_PF_NUM_TASKS", "num_nodes": "_PF_NUM_NODES", "node": "_PF_NODE",
            "global_rank": "_PF_RANK", "local_rank": "_PF_LOCAL_RANK"}  # fmt: skip

    @classmethod
    def name(cls) -> str:
        return "pbs"

    @property
    def hostnames(self) -> list[str]:
        nodefile = os.environ.get("PBS_NODEFILE")
        return read_pbs_nodefile(nodefile)[0] if nodefile else [self.hostname]

    @property
    def num_nodes(self) -> int:
        return len(self.hostnames)

    def _requeue(self, countdown: int) -> None:
        # qrerun puts the job back into the queue with the same id; it may need operator rights (site policy)
        subprocess.run(["qrerun", self.job_id], check=False, timeout=60)


class SGEJobEnvironment(job_environment.JobEnvironment):
    """Inside a Grid Engine job: JOB_ID, nodes from $PE_HOSTFILE; requeue = exit 99 (Grid Engine reschedules)."""

    _env = {"job_id": "JOB_ID", "num_tasks": "_PF_NUM_TASKS", "num_nodes": "_PF_NUM_NODES", "node": "_PF_NODE",
            "global_rank": "_PF_RANK", "local_rank": "_PF_LOCAL_RANK"}  # fmt: skip

    @classmethod
    def name(cls) -> str:
        return "sge"

    @property
    def hostnames(self) -> list[str]:
        hostfile = os.environ.get("PE_HOSTFILE")
        return read_pe_hostfile(hostfile)[0] if hostfile else [self.hostname]

    @property
    def num_nodes(self) -> int:
        return len(self.hostnames)

    def _requeue(self, countdown: int) -> None:
        # the checkpoint pickle is written; exiting 99 makes Grid Engine reschedule this job under the same id
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(SGE_RESCHEDULE_EXIT)


def _status_main(argv: list[str]) -> None:
    """``python -m pretrainflow.schedulers.submitit_plugins <site> <job id>...`` -> JSON {id: submitit state}."""
    from pretrainflow.schedulers.commands import status

    site, job_ids = argv[0], argv[1:]
    print(json.dumps({job_id: STATE[status(site, job_id)] for job_id in job_ids}))


if __name__ == "__main__":
    _status_main(sys.argv[1:])
