"""Suite-wide environment: the virtual environment's bin/ first on PATH, as `make test` runs the suite.

Why: DeepSpeed JIT-builds its CPU shared-memory op (~/.cache/torch_extensions/*/deepspeed_shm_comm) with whichever
`ninja` is first on PATH. The venv's (pip, 1.13) and a system one (Debian, 1.11) keep incompatible build logs ("build
log version is too old; starting over"), so a suite run as `.venv/bin/python -m pytest` without the venv on PATH
compiled the op again (1-3 min on 2 cores) each time a training started by Snakemake (venv first on PATH,
cluster_helpers.snakemake_env) and one started directly took turns. The op is also built in a directory of the venv's
own (TORCH_EXTENSIONS_DIR, unless set), which every process of the suite shares: the two-node tests' ranks, which start
from an empty environment (`env -i`, tests/launch/netns_hosts.py), get it and PATH from the launcher (mpirun forwards
both by name, pretrainflow.launch.env), as a job's ranks on other nodes do.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_VENV_BIN = str(Path(sys.executable).parent)
if os.environ.get("PATH", "").split(os.pathsep)[0] != _VENV_BIN:
    os.environ["PATH"] = f"{_VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(Path(sys.prefix) / "torch_extensions"))
