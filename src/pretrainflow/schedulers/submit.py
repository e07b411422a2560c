"""``pretrainflow submit``: run study runs directly through submitit (no DAG), one job per run, requeued on timeout.

    pretrainflow submit --site abci --study config/studies/fdb1k-vit-tiny.yaml --run vit-tiny-fdb1k
    pretrainflow submit --site tsubame --study config/test.yaml --ablation lr        # the whole grid, one job each
    pretrainflow submit --site slurm --study config/test.yaml --run gpt-test --wait

Each job runs the same command as the Snakemake rule (``pretrainflow pretrain-vit|pretrain-llm --spec ... --out
results/pretrain/<run> --checkpoints results/checkpoints``, paths from pretrainflow.study.layout), so outputs land and
checkpoints resume where the DAG expects them. The
dataset / corpus must exist already (build it with Snakemake first; checked before anything is submitted). Before the
walltime the job gets a signal; the training checkpoints and exits 75, RunTask.checkpoint() waits for that, and
submitit requeues the job (Slurm: scontrol requeue; Grid Engine: exit 99; PBS: qrerun), which resumes from the
checkpoint. ``max_num_timeout`` bounds the number of requeues.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from pretrainflow.errors import ConfigError
from pretrainflow.io import canonical_json
from pretrainflow.provenance import STUDY_ENV
from pretrainflow.study import layout


@dataclass(kw_only=True)
class RunTask:
    """A picklable call that runs one pretraining run as a subprocess (so its signals and exit code stay its own)."""

    run_id: str
    argv: list[str]  # pretrainflow arguments, e.g. ["pretrain-vit", "--spec", "{...}", "--out", ...]
    summary: str  # path of summary.json written by the run
    study: str | None = None  # recorded in the run's config.json (provenance.study), as under Snakemake
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["proc"] = None  # a process handle does not travel to the requeued job
        return state

    def __call__(self) -> dict:
        import json

        env = dict(os.environ)
        if self.study:
            env[STUDY_ENV] = self.study
        self.proc = subprocess.Popen([sys.executable, "-m", "pretrainflow.cli", *self.argv], env=env)
        code = self.proc.wait()
        if code != 0:
            raise RuntimeError(f"run {self.run_id}: `pretrainflow {self.argv[0]}` exited with {code}")
        return json.loads(Path(self.summary).read_text())

    def checkpoint(self):
        """Called by submitit on the pre-walltime signal: let the training finish its checkpoint, then requeue."""
        import submitit

        if self.proc is not None and self.proc.poll() is None:
            try:
                self.proc.wait(timeout=600)  # the training got the same signal: it saves and exits 75
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return submitit.helpers.DelayedSubmission(replace(self, proc=None))


def run_tasks(study_path: str, run_ids: list[str], ablation: str | None) -> tuple[list[RunTask], list[dict]]:
    """The RunTasks (and run specs) selected by ``--run`` / ``--ablation``; every check happens here, before submitting."""
    from pretrainflow.study.load import load_study

    study = load_study(study_path)
    selected = list(run_ids)
    if ablation:
        selected += [rid for rid, run in study.runs.items() if (run.get("ablation") or {}).get("name") == ablation]
        if not selected:
            raise ConfigError(f"--ablation: no runs of ablation {ablation!r} in {study_path}")
    if not selected:
        raise ConfigError("submit: give --run <run id> (repeatable) or --ablation <name>")
    tasks, specs = [], []
    for run_id in selected:
        if run_id not in study.runs:
            raise ConfigError(f"--run: {run_id!r} is not a run of {study_path} (runs: {', '.join(study.runs)})")
        spec = study.runs[run_id]
        out = layout.pretrain_dir(run_id)
        if spec["kind"] == "vit":
            data = Path(layout.dataset_dir(spec["dataset"]))
            argv = ["pretrain-vit", "--spec", canonical_json(spec), "--dataset", str(data)]
        else:
            data = Path(layout.corpus_dir(spec["corpus"]))
            argv = ["pretrain-llm", "--spec", canonical_json(spec), "--corpora-dir", layout.CORPORA_ROOT]
        if not (data / "manifest.json").is_file():
            raise ConfigError(
                f"run {run_id}: {data}/manifest.json missing: build it first with `snakemake {data}/manifest.json`"
            )
        tasks.append(
            RunTask(
                run_id=run_id,
                # The study's W&B section as the workflow passes it (common.smk exports it; here, the option).
                argv=[
                    *argv,
                    "--tracking",
                    canonical_json(study.tracking),
                    "--out",
                    out,
                    "--checkpoints",
                    layout.CHECKPOINTS_ROOT,
                ],  # fmt: skip
                summary=f"{out}/summary.json",
                study=study.name,
            )
        )
        specs.append(spec)
    return tasks, specs


def make_executor(site: str, folder: Path, spec: dict, settings_resources: dict, max_num_timeout: int):
    """A submitit executor for ``site`` with the run's devices as parameters."""
    import submitit

    from pretrainflow.schedulers.resources import ResourceRequest, place, shape_total
    from pretrainflow.schedulers.settings import settings_from
    from pretrainflow.schedulers.sites import SITES
    from pretrainflow.schedulers.submitit_plugins import PBSExecutor, SGEExecutor
    from pretrainflow.train.devices import job_resources

    settings = settings_from(settings_resources)
    # the numbers the Snakemake rule asks for, shaped as `sched submit` shapes them (a total of GPUs: the site's nodes)
    request = ResourceRequest.from_resources(job_resources(spec["devices"]), f"run {spec.get('run_id')}")
    if site == "local":  # this machine: one node
        shaped = shape_total(SITES["slurm"], request)
        nodes, gpus_per_node, cores = shaped.nodes, shaped.gpus_per_node, shaped.cpus_per_task
    else:
        placed = place(site, request, settings.max_runtime_min, node_gpus=settings.node_gpus)
        nodes, gpus_per_node, cores = placed.count, placed.gpus_per_node, placed.cpus_per_node
    params = {
        "nodes": nodes,
        "gpus_per_node": gpus_per_node,
        "cpus_per_task": cores,
        "mem_gb": request.mem_mb / 1024,
        "timeout_min": request.runtime_min,
    }
    if site in ("abci", "tsubame"):
        executor_class = PBSExecutor if site == "abci" else SGEExecutor
        executor = executor_class(folder, settings=settings, max_num_timeout=max_num_timeout)
        executor.update_parameters(**params)
        return executor
    if site == "slurm":
        executor = submitit.AutoExecutor(folder, cluster="slurm", slurm_max_num_timeout=max_num_timeout)
    else:
        executor = submitit.AutoExecutor(folder, cluster="local")
    executor.update_parameters(**params)
    if site == "slurm":
        extra = {"slurm_partition": settings.queue, "slurm_account": settings.account}
        executor.update_parameters(**{k: v for k, v in extra.items() if v})
    return executor
