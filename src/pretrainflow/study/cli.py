"""`pretrainflow check` and `pretrainflow plan`: validate a study and list what it expands to, without Snakemake."""

from __future__ import annotations

import argparse


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser("check", help="validate a study file (schema, references, typed checks)")
    check.add_argument("study", nargs="?", default="config/config.yaml", help="study YAML (default: %(default)s)")
    check.set_defaults(func=run_check)


def run_check(args: argparse.Namespace) -> int:
    from pretrainflow.study.load import load_study  # imports the training specs (torch): not at --help time

    study = load_study(args.study)
    print(f"study {study.name}: OK")
    print(f"  datasets  {', '.join(study.datasets) or '-'}")
    print(f"  corpora   {', '.join(study.corpora) or '-'}")
    print(f"  runs      {', '.join(study.runs) or '-'}")
    cells = [f"{run}/{task}" for run, task in study.finetunes]
    print(f"  finetune  {', '.join(cells) or '-'}")
    for note in study.notes:
        print(f"  note      {note}")
    return 0
