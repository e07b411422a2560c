"""Entry of test_two_node_netns.py's launcher probe: each rank records its host address and environment."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

KEYS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "GLOO_SOCKET_IFNAME", "OMP_NUM_THREADS", "VIRTUAL_ENV",
        "PRETRAINFLOW_SITE", "NOT_FORWARDED_PROBE")  # fmt: skip


def main(args: list[str]) -> int:
    shown = subprocess.run(["ip", "-4", "-o", "addr", "show", "pf0"], capture_output=True, text=True, check=True)
    record = {key: os.environ.get(key) for key in KEYS} | {"addr": shown.stdout.split()[3].split("/")[0]}
    (Path(args[0]) / f"rank{os.environ['RANK']}.json").write_text(json.dumps(record))
    return 0
