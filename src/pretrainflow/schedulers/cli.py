"""``pretrainflow sched submit|status|cancel`` (called by the cluster-generic executor of profiles/abci and
profiles/tsubame), ``pretrainflow sched plan``, ``pretrainflow profiles install`` and ``pretrainflow submit``
(submitit, no DAG)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pretrainflow.schedulers.resources import SITES


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    sched = subparsers.add_parser("sched", help="plan a study's jobs on a site; submit, status, cancel for profiles")
    sched_sub = sched.add_subparsers(dest="sched_command", required=True, metavar="<submit|status|plan|cancel>")

    submit = sched_sub.add_parser("submit", help="submit a Snakemake job script; prints the job id")
    submit.add_argument("--site", required=True, choices=SITES)
    submit.add_argument("--dependencies", default="", help="space-separated job ids that must succeed first")
    submit.add_argument("--dry-run", action="store_true", help="print the qsub argv and wrapper script, submit nothing")
    submit.add_argument("jobscript", type=Path)
    submit.set_defaults(func=_submit)

    status = sched_sub.add_parser("status", help="print running | success | failed for a job id")
    status.add_argument("--site", required=True, choices=SITES)
    status.add_argument(
        "--grace-seconds",
        type=float,
        default=120.0,
        help="Grid Engine: how long a job may be missing from qstat and qacct before it counts as failed",
    )
    status.add_argument("job_id")
    status.set_defaults(func=_status)

    plan = sched_sub.add_parser("plan", help="list the jobs a study would submit to a site, with resource types")
    plan.add_argument("--site", required=True, choices=SITES)
    plan.add_argument("--profile", type=Path, default=None, help="default: the repository's profiles/<site>")
    plan.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="after --: arguments for snakemake")
    plan.set_defaults(func=_plan)

    cancel = sched_sub.add_parser("cancel", help="cancel job ids")
    cancel.add_argument("--site", required=True, choices=SITES)
    cancel.add_argument("job_ids", nargs="*")
    cancel.set_defaults(func=_cancel)

    submit_run = subparsers.add_parser("submit", help="run study runs through submitit (no DAG), requeued on timeout")
    submit_run.add_argument("--site", required=True, choices=(*SITES, "local"))
    submit_run.add_argument("--study", required=True, help="study file, e.g. config/test.yaml")
    submit_run.add_argument("--run", action="append", default=[], help="run id (repeatable)")
    submit_run.add_argument("--ablation", default=None, help="submit every run of this ablation grid")
    submit_run.add_argument("--folder", type=Path, default=Path("results/submitit"), help="submitit's job folder")
    submit_run.add_argument("--max-num-timeout", type=int, default=3, help="how many times a timed-out job is requeued")
    submit_run.add_argument("--group", help="ABCI/TSUBAME group (default: $PRETRAINFLOW_GROUP)")
    submit_run.add_argument("--queue", help="Slurm partition / PBS reservation / Grid Engine queue")
    submit_run.add_argument("--account", help="Slurm account")
    submit_run.add_argument("--no-group-flag", action="store_true", help="stock Grid Engine: do not pass -g <group>")
    submit_run.add_argument(
        "--gpus-per-node", type=int, default=None, help="Slurm: GPUs of one node (shapes a run's total `gpus`)"
    )
    submit_run.add_argument("--wait", action="store_true", help="wait for the jobs and print their summaries")
    submit_run.set_defaults(func=_submit_runs)

    profiles = subparsers.add_parser("profiles", help="make the site profiles findable by `snakemake --profile <site>`")
    profiles_sub = profiles.add_subparsers(dest="profiles_command", required=True, metavar="<install>")
    install = profiles_sub.add_parser("install", help="link profiles/<site> into ~/.config/snakemake/<site>")
    install.add_argument("--target", type=Path, default=None, help="default: $XDG_CONFIG_HOME/snakemake")
    install.add_argument("--force", action="store_true", help="replace existing links or directories of that name")
    install.set_defaults(func=_install)


def _submit(args: argparse.Namespace) -> int:
    from pretrainflow.schedulers import commands

    deps = args.dependencies.split()
    if args.dry_run:
        prepared = commands.prepare_submit(args.site, args.jobscript.resolve(), deps, Path.cwd())
        print(" ".join(prepared.argv))
        return 0
    print(commands.submit(args.site, args.jobscript, deps))
    return 0


def _status(args: argparse.Namespace) -> int:
    from pretrainflow.schedulers import commands

    print(commands.status(args.site, args.job_id, grace_s=args.grace_seconds))
    return 0


def _plan(args: argparse.Namespace) -> int:
    from pretrainflow.schedulers.plan import plan

    extra = args.snakemake_args[1:] if args.snakemake_args[:1] == ["--"] else args.snakemake_args
    return plan(args.site, extra, profile=args.profile)


def _cancel(args: argparse.Namespace) -> int:
    from pretrainflow.schedulers import commands

    commands.cancel(args.site, args.job_ids)
    return 0


def _submit_runs(args: argparse.Namespace) -> int:
    import json

    from pretrainflow.schedulers.submit import make_executor, run_tasks

    tasks, specs = run_tasks(args.study, args.run, args.ablation)
    site_values = {"site_group": args.group, "site_queue": args.queue, "site_account": args.account,
                   "site_gpus_per_node": args.gpus_per_node}  # fmt: skip
    if args.no_group_flag:
        site_values["site_group_flag"] = "none"
    jobs = []
    for task, spec in zip(tasks, specs, strict=True):
        executor = make_executor(args.site, args.folder, spec, site_values, args.max_num_timeout)
        executor.update_parameters(name=task.run_id)
        job = executor.submit(task)
        print(f"{task.run_id}: submitted job {job.job_id} ({args.site}); logs in {args.folder}")
        jobs.append((task, job))
    if args.wait:
        for task, job in jobs:
            print(f"{task.run_id}: {json.dumps(job.result(), sort_keys=True)}")
    return 0


def _install(args: argparse.Namespace) -> int:
    from pretrainflow.schedulers.profiles import install_profiles

    for line in install_profiles(target=args.target, force=args.force):
        print(line)
    return 0


if __name__ == "__main__":  # pragma: no cover - convenience for debugging
    parser = argparse.ArgumentParser(prog="pretrainflow")
    add_commands(parser.add_subparsers(dest="command", required=True))
    ns = parser.parse_args()
    sys.exit(ns.func(ns))
