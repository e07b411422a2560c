"""`pretrainflow --version` and `--help`: the user's commands first, the workflow's steps apart under their own
heading, every command listed once, and the split checked against what the rules and site profiles actually run."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pretrainflow.cli import STEPS_HEADING, WORKFLOW_STEPS, build_parser, is_workflow_step, main, subcommands

ROOT = Path(__file__).resolve().parents[2]
# Commands a rule runs that are also the user's to run by hand (so --help lists them with the user commands).
RUN_BY_RULES_AND_USERS = {"export-llama", "import-hf"}


def command_paths(parser=None, prefix="") -> list[str]:
    """Every runnable command path ("check", "datasets verify", ...) of the parser tree."""
    paths = []
    for name, sub, _ in subcommands(parser or build_parser()):
        path = f"{prefix} {name}".strip()
        paths += command_paths(sub, path) or [path]
    return paths


def sections(help_text: str) -> dict[str, list[str]]:
    """The heading of each block of the help (the line ending in ':') -> the command paths listed under it."""
    found: dict[str, list[str]] = {}
    heading = None
    for line in help_text.splitlines():
        if line and not line.startswith(" ") and line.endswith(":"):
            heading = line[:-1]
            found[heading] = []
        elif heading and line.startswith("  ") and not line.lstrip().startswith("-"):
            found[heading].append(re.split(r"\s{2,}", line.strip())[0])  # the path, before the help column
        elif not line:
            heading = None
    return found


def test_version_comes_from_the_package_metadata(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"pretrainflow {pyproject['project']['version']}\n"


def test_help_lists_user_commands_then_the_workflow_steps_apart():
    shown = sections(build_parser().format_help())
    user, steps = shown["user commands"], shown[STEPS_HEADING]
    assert "run by the Snakemake rules" in STEPS_HEADING
    for command in ("check", "results", "sched plan", "submit", "profiles install", "datasets verify",
                    "datasets preview", "export-timm", "export-llama", "import-hf"):  # fmt: skip
        assert command in user, command
    for step in ("datasets render-shard", "corpora merge", "pretrain-vit", "pretrain-llm", "finetune", "aggregate",
                 "sched submit", "benchmarks evaluate"):  # fmt: skip
        assert step in steps, step
    # each runnable command exactly once, in one of the two lists
    assert sorted(user + steps) == sorted(command_paths())
    assert list(shown).index("user commands") < list(shown).index(STEPS_HEADING) < list(shown).index("options")


def test_a_group_splits_its_own_help_the_same_way():
    (datasets,) = [sub for name, sub, _ in subcommands(build_parser()) if name == "datasets"]
    text = datasets.format_help()
    shown = sections(text)
    assert text.startswith("usage: pretrainflow datasets [-h] <step> ...")
    assert shown["user commands"] == ["verify", "preview", "build"]
    assert shown[STEPS_HEADING] == ["search", "render-shard", "manifest"]


def test_every_listed_workflow_step_is_a_command():
    paths = command_paths()
    stale = [step for step in WORKFLOW_STEPS if not any(p == step or p.startswith(step + " ") for p in paths)]
    assert not stale, f"WORKFLOW_STEPS names commands that do not exist: {stale}"


def invoked_commands() -> dict[str, str]:
    """command path -> file, for each `pretrainflow ...` that a rule's shell or a profile's scheduler hook runs."""
    words = {path.split()[0]: path for path in command_paths()}
    paths = set(command_paths())
    found = {}
    sources = [*sorted((ROOT / "workflow" / "rules").glob("*.smk")), *sorted((ROOT / "profiles").glob("*/config.yaml"))]
    for source in sources:
        for line in source.read_text().splitlines():
            code = line.split("#", 1)[0]  # comments mention user commands (`pretrainflow sched plan`)
            for first, second in re.findall(r"\bpretrainflow ([a-z][a-z0-9-]*)(?: ([a-z][a-z0-9-]*))?", code):
                assert first in words, f"{source.name}: `pretrainflow {first}` is not a command"
                path = f"{first} {second}" if f"{first} {second}" in paths else first
                found[path] = source.name
    return found


def test_the_commands_rules_and_profiles_run_are_listed_as_workflow_steps():
    invoked = invoked_commands()
    assert {"datasets render-shard", "pretrain-vit", "aggregate", "sched submit"} <= set(invoked)  # the scan works
    misfiled = {path: source for path, source in invoked.items() if not is_workflow_step(path)}
    assert set(misfiled) == RUN_BY_RULES_AND_USERS, (
        f"run by the workflow but listed as user commands: {misfiled}; add them to pretrainflow.cli.WORKFLOW_STEPS"
    )


def test_help_answers_without_the_heavy_libraries():
    code = (
        "import sys; from pretrainflow.cli import build_parser; build_parser().format_help(); "
        "print(sorted(m for m in ('pandas', 'torch', 'deepspeed', 'megatron', 'jsonschema') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout == "[]\n"
