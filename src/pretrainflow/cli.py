"""The one console entry point: ``pretrainflow <command> ...``. Snakemake rules call only this.

Each area registers its own subcommands (``add_commands(subparsers)`` in the modules below); heavy libraries (torch,
DeepSpeed, megatron-core) are imported inside the commands so that ``pretrainflow --help`` answers at once.
``--help`` lists the user's commands first and the workflow's steps (WORKFLOW_STEPS) apart, at every level.
A PretrainflowError (bad config, bad input file) is printed as one line and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
import textwrap
from collections.abc import Iterator
from importlib import metadata

from pretrainflow.benchmarks import cli as benchmarks_cli
from pretrainflow.corpora import cli as corpora_cli
from pretrainflow.datasets import cli as datasets_cli
from pretrainflow.errors import PretrainflowError
from pretrainflow.results import cli as results_cli
from pretrainflow.schedulers import cli as schedulers_cli
from pretrainflow.study import cli as study_cli
from pretrainflow.train.llm import cli as llm_cli
from pretrainflow.train.vit import cli as vit_cli

COMMAND_MODULES = (study_cli, datasets_cli, corpora_cli, vit_cli, llm_cli, benchmarks_cli, results_cli, schedulers_cli)

# Commands that the Snakemake rules (workflow/rules/*.smk) and the site profiles' cluster-generic hooks run for the
# user. A group name stands for all its subcommands. Every other command is a user command (export-llama and import-hf
# are run by rules too, but are also useful by hand). tests/spine/test_cli_help.py checks this list against the rules.
WORKFLOW_STEPS = frozenset({
    "datasets search", "datasets render-shard", "datasets manifest",
    "corpora",
    "pretrain-vit", "finetune", "evaluate", "pretrain-rows",
    "pretrain-llm", "sft-llm", "evaluate-llm",
    "benchmarks",
    "aggregate",
    "sched submit", "sched status", "sched cancel",
})  # fmt: skip
STEPS_HEADING = "workflow steps (run by the Snakemake rules and site profiles; rarely typed by hand)"


def version() -> str:
    """The installed distribution's version (pyproject's ``version``), as ``pip show pretrainflow`` reports it."""
    try:
        return metadata.version("pretrainflow")
    except metadata.PackageNotFoundError:  # imported from a source tree that was never installed
        return "unknown (not installed; run `make env` or `pip install .`)"


def subcommands(parser: argparse.ArgumentParser) -> Iterator[tuple[str, argparse.ArgumentParser, str]]:
    """(name, parser, one-line help) of each direct subcommand of ``parser``, in the order they were registered."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            # argparse keeps each add_parser(help=...) text only on these pseudo-actions (no public accessor)
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield name, sub, helps.get(name, "")


def is_workflow_step(path: str) -> bool:
    """Whether ``path`` ("datasets search", "corpora merge") is a workflow step, itself or through its group."""
    words = path.split()
    return any(" ".join(words[:i]) in WORKFLOW_STEPS for i in range(1, len(words) + 1))


def _leaves(parser: argparse.ArgumentParser, prefix: str) -> Iterator[tuple[str, str]]:
    """(command path, help) of every runnable command under ``parser``, groups opened up to their subcommands."""
    for name, sub, text in subcommands(parser):
        path = f"{prefix} {name}".strip()
        children = list(_leaves(sub, path))
        yield from children or [(path, text)]


def _listing(entries: list[tuple[str, str]]) -> str:
    width = max(len(path) for path, _ in entries) + 2
    return "\n".join(f"  {path.ljust(width)}{text}" for path, text in entries)


def group_help(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    """Replace argparse's one flat list of subcommands by two: user commands, then the workflow's steps.

    Applied to ``parser`` and every group below it (``pretrainflow datasets --help`` is split the same way).
    """
    groups = [(name, sub) for name, sub, _ in subcommands(parser)]
    if not groups:
        return
    for name, sub in groups:
        group_help(sub, f"{prefix} {name}".strip())
    entries = list(_leaves(parser, prefix))
    user = [(path[len(prefix) :].strip(), text) for path, text in entries if not is_workflow_step(path)]
    steps = [(path[len(prefix) :].strip(), text) for path, text in entries if is_workflow_step(path)]
    usage = parser.format_usage().removeprefix("usage: ").strip()  # computed while the subcommand action still shows
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            action.help = argparse.SUPPRESS  # the flat list; the description below replaces it
    parser.usage = usage
    sections = [textwrap.fill(parser.description or "", 100)]  # raw formatting below: wrap the prose here
    sections += [f"user commands:\n{_listing(user)}"] if user else []
    sections += [f"{STEPS_HEADING}:\n{_listing(steps)}"] if steps else []
    parser.description = "\n\n".join(section for section in sections if section)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pretrainflow",
        description="Declarative pretraining studies on Snakemake: synthetic data -> pretraining -> fine-tuning -> "
        "results. Run a study with `snakemake`; these commands check, inspect and submit it.",
        epilog="`pretrainflow <command> --help` describes each command.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for module in COMMAND_MODULES:
        module.add_commands(subparsers)
    group_help(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PretrainflowError as err:
        print(f"pretrainflow {args.command}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # `pretrainflow results | head`: the reader left; stop quietly like other Unix tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
