"""Worker process entry: ``python -m pretrainflow.launch.worker package.module:function [args...]``.

Under mpirun a worker starts with Open MPI's OMPI_COMM_WORLD_* only: it exports its world as RANK, LOCAL_RANK,
WORLD_SIZE, ... first (pretrainflow.launch.env), so that DeepSpeed and megatron see the same world as under srun.
"""

from __future__ import annotations

import importlib
import os
import sys

from pretrainflow.launch.env import worker_env


def call_entry(entry: str, args: list[str]) -> int:
    """Import ``package.module:function`` and call it with ``args``; its return value (int or None) is the exit code."""
    module_name, _, function_name = entry.partition(":")
    if not function_name:
        raise ValueError(f"entry {entry!r}: expected 'package.module:function'")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(args)
    return int(result or 0)


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit("usage: python -m pretrainflow.launch.worker package.module:function [args...]")
    os.environ.update(worker_env(os.environ))
    sys.exit(call_entry(sys.argv[1], sys.argv[2:]))


if __name__ == "__main__":
    main()
