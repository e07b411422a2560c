"""The one console entry point: ``pretrainflow <command> ...``. Snakemake rules call only this.

Each area registers its own subcommands (``add_commands(subparsers)`` in the modules below); heavy libraries (torch,
DeepSpeed, megatron-core) are imported inside the commands so that ``pretrainflow --help`` answers at once.
A PretrainflowError (bad config, bad input file) is printed as one line and exits with status 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from pretrainflow.errors import PretrainflowError

COMMAND_MODULES = (
    "pretrainflow.study_cli",
    "pretrainflow.datasets.cli",
    "pretrainflow.corpora.cli",
    "pretrainflow.train.vit_cli",
    "pretrainflow.train.llm_cli",
    "pretrainflow.results.cli",
    "pretrainflow.schedulers.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pretrainflow", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="<command>")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).add_commands(subparsers)
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
