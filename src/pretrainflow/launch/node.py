"""Node launcher: ``python -m pretrainflow.launch.node --procs-per-node G package.module:function [args...]``.

Started once per node (by ``srun --ntasks-per-node 1``, or by hand); discovers the job (pretrainflow.launch.discover),
then starts G workers with global ranks ``node_rank * G + local_rank``. PRETRAINFLOW_NODE_RANK overrides the node
index (for launchers that start this on each node themselves, and for tests).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys

from pretrainflow.launch.discover import discover_job
from pretrainflow.launch.multinode import spawn_node


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pretrainflow.launch.node")
    parser.add_argument("--procs-per-node", type=int, required=True)
    parser.add_argument("entry")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    layout = discover_job()
    if "PRETRAINFLOW_NODE_RANK" in os.environ:
        layout = dataclasses.replace(layout, node_rank=int(os.environ["PRETRAINFLOW_NODE_RANK"]))
    return spawn_node(ns.entry, ns.args, layout, ns.procs_per_node)


if __name__ == "__main__":
    sys.exit(main())
