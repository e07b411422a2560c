"""CI runs the README's test command, `make test`, and that lints (ruff, `snakemake --lint`) before any test runs."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_ci_runs_exactly_the_readme_test_command():
    commands = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert commands[-1] == "make test"
    assert re.search(r"^make test\b", (ROOT / "README.md").read_text(), re.MULTILINE)


@pytest.mark.skipif(not shutil.which("make"), reason="needs GNU make")
def test_make_test_lints_before_the_tests():
    # -n: print the recipes without running them; -o: leave the venv stamp alone (no reinstall for this test)
    done = subprocess.run(["make", "-n", "-o", ".venv/.installed", "test"], cwd=ROOT, capture_output=True,
                          text=True, check=True)  # fmt: skip
    # "/abs/.venv/bin/ruff check src ..." -> "ruff check src": the program's name and its first arguments
    steps = [" ".join([words[0].rsplit("/", 1)[-1], *words[1:3]]) for words in map(str.split, done.stdout.splitlines())
             if words]  # fmt: skip
    order = [
        next(i for i, step in enumerate(steps) if step.startswith(prefix))
        for prefix in ("ruff check", "ruff format --check", "snakemake --lint", "pytest")
    ]
    assert order == sorted(order), steps
