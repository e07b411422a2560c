"""`pretrainflow check`: validate a study and list what it expands to, without Snakemake; `pretrainflow studies`:
the shipped study templates (config/config.yaml as "default" and config/studies/*.yaml), also from an installed wheel.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pretrainflow.errors import PretrainflowError

# config/ of the source tree: study/templates is a symlink to it there, and a copy of the templates in a built wheel
# (pyproject's package-data), as study/schemas is for workflow/schemas
TEMPLATES = Path(__file__).parent / "templates"


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    check = subparsers.add_parser("check", help="validate a study file (schema, references, typed checks)")
    check.add_argument("study", nargs="?", default="config/config.yaml", help="study YAML (default: %(default)s)")
    check.set_defaults(func=run_check)
    studies = subparsers.add_parser(
        "studies", help="list the shipped study templates, or print one (`pretrainflow studies NAME > my-study.yaml`)"
    )
    studies.add_argument("name", nargs="?", help="template to print (default: list them)")
    studies.set_defaults(func=run_studies)


def shipped_studies(root: Path = TEMPLATES) -> dict[str, Path]:
    """Template name -> file: "default" (config.yaml, the tiny CPU study) and each config/studies/<name>.yaml."""
    found = {"default": root / "config.yaml"} if (root / "config.yaml").is_file() else {}
    found.update({path.stem: path for path in sorted((root / "studies").glob("*.yaml"))})
    return found


def _summary(path: Path) -> str:
    """The template's first comment line (each starts with one saying what it is)."""
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            return line.lstrip("# ").strip()
    return ""


def run_studies(args: argparse.Namespace) -> int:
    studies = shipped_studies()
    if not studies:
        raise PretrainflowError(f"no study templates found in {TEMPLATES} (a broken install: reinstall pretrainflow)")
    if args.name is None:
        width = max(map(len, studies))
        for name, path in studies.items():
            print(f"{name:<{width}}  {_summary(path)}")
        return 0
    if args.name not in studies:
        raise PretrainflowError(f"studies: no template {args.name!r}; shipped: {', '.join(studies)}")
    print(studies[args.name].read_text(), end="")
    return 0


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
