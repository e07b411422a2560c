"""Worker process entry: ``python -m pretrainflow.launch.worker package.module:function [args...]``."""

from __future__ import annotations

import importlib
import sys


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
    sys.exit(call_entry(sys.argv[1], sys.argv[2:]))


if __name__ == "__main__":
    main()
