"""Helpers for the real-scheduler tests: detect a running Slurm / Grid Engine, derive test profiles from the
repository's site profiles, and run Snakemake against them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
TOY_SNAKEFILE = Path(__file__).resolve().parent / "workflow" / "Snakefile"
VENV_BIN = Path(sys.executable).parent


def _probe(argv: list[str]) -> tuple[bool, str]:
    if shutil.which(argv[0]) is None:
        return False, f"{argv[0]} not installed"
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except subprocess.TimeoutExpired:
        return False, f"{' '.join(argv)} timed out"
    return result.returncode == 0, (result.stdout + result.stderr).strip()


def slurm_reason() -> str | None:
    """None when a Slurm node is up and accepting jobs, else why not."""
    ok, out = _probe(["sinfo", "-h", "-N", "-o", "%t"])
    if not ok:
        return f"no Slurm reachable ({out[:120]}); start one with `sudo scripts/start_slurm.sh`"
    if not any(state.startswith(("idle", "mix", "alloc")) for state in out.split()):
        return f"Slurm node not available (state {out!r}); rerun scripts/start_slurm.sh"
    return None


def sge_reason() -> str | None:
    """None when a Grid Engine queue instance is available, else why not."""
    ok, out = _probe(["qstat", "-f", "-q", "all.q"])
    if not ok or shutil.which("qacct") is None:
        return f"no Grid Engine reachable ({out[:120]}); start one with `sudo scripts/start_gridengine.sh`"
    # PBS's qstat would also answer: make sure this is Grid Engine (qconf exists only there)
    if shutil.which("qconf") is None:
        return "qstat is not Grid Engine's (no qconf)"
    if not any(line.startswith("all.q@") and len(line.split()) == 5 for line in out.splitlines()):
        return f"Grid Engine queue all.q not available:\n{out}"
    return None


def derive_profile(site: str, dest: Path, overrides: dict, resources: dict | None = None) -> Path:
    """Copy profiles/<site>/config.yaml into ``dest`` with test overrides (seconds-level status checks ...)."""
    config = yaml.safe_load((REPO / "profiles" / site / "config.yaml").read_text())
    config.update(overrides)
    config.setdefault("default-resources", {}).update(resources or {})
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return dest


def snakemake_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}"
    env.pop("SNAKEMAKE_PROFILE", None)
    return env


def snakemake_argv(profile: Path, workdir: Path, snakefile: Path = TOY_SNAKEFILE, config: dict | None = None) -> list:
    argv = [str(VENV_BIN / "snakemake"), "-s", str(snakefile), "--profile", str(profile), "--directory", str(workdir)]
    if config:
        argv += ["--config", *(f"{k}={v}" for k, v in config.items())]
    return argv


def wait_until(predicate, timeout_s: float, interval_s: float = 0.5, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval_s)
    pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
