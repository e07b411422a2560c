"""The one console entry point: ``pretrainflow <command> ...``. Snakemake rules call only this.

Each area registers its own subcommands (``add_commands(subparsers)`` in the modules below); heavy libraries (torch,
DeepSpeed, megatron-core) are imported inside the commands so that ``pretrainflow --help`` answers at once.
A PretrainflowError (bad config, bad input file) is printed as one line and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pretrainflow", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for module in COMMAND_MODULES:
        module.add_commands(subparsers)
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
