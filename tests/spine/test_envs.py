"""The conda environments of `snakemake --sdm conda` (envs/*.yaml): one per stage family, pinned like pyproject.toml.

No conda is installed where the tests run, so the environments are never created here; what is checked instead:
- every envs/*.yaml parses, names python and pip, and installs through pip only requirements that pyproject.toml
  lists, with the same specifier and extras (nothing unpinned, nothing pyproject does not know);
- each environment serves its family's code: every third-party distribution the family's modules import (read with
  ``ast`` at any depth, following pretrainflow's own imports) is listed or installed by a listed requirement, and
  every distribution pyproject pins that a listed requirement pulls in is listed too, so pip cannot pick another
  version of it (dependencies are read from the metadata of the packages installed in this venv);
- every rule names one of these environments with `conda:`, and it is the family whose code its command runs
  (the rule's `pretrainflow <command>` is resolved through the CLI's own parser); read with Snakemake's API.
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata as metadata
import os
import sys
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
ENVS = ROOT / "envs"

# Which package areas each environment serves (the rules of the family call commands defined there).
FAMILIES = {
    "data": ("pretrainflow.datasets", "pretrainflow.corpora"),
    "vit": ("pretrainflow.train.vit",),
    "llm": ("pretrainflow.train.llm", "pretrainflow.benchmarks", "pretrainflow.export.hf_llama"),
    "results": ("pretrainflow.results",),
}
# Imports that need a distribution other than their top-level name says.
SUBMODULE_DISTRIBUTIONS = {"torch.utils.tensorboard": "tensorboard"}  # torch's SummaryWriter needs tensorboard
# Optional imports, guarded where they are used: Transformer Engine exists on GPU nodes only (models/gpt.py).
OPTIONAL_IMPORTS = {"transformer_engine"}


def _pyproject_pins() -> dict[str, Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(req.name): req for req in map(Requirement, project["dependencies"])}


PINS = _pyproject_pins()


def _env(family: str) -> dict:
    return yaml.safe_load((ENVS / f"{family}.yaml").read_text())


def _pip_requirements(env: dict) -> list[Requirement]:
    """The requirements of an environment's pip section (option lines such as --extra-index-url left out)."""
    (pip,) = [entry["pip"] for entry in env["dependencies"] if isinstance(entry, dict)]
    return [Requirement(line) for line in pip if not line.startswith("-")]


def _modules() -> dict[str, Path]:
    modules = {}
    for path in (SRC / "pretrainflow").rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


MODULES = _modules()


def _imports(module: str) -> set[str]:
    """Every dotted name ``module`` imports, at any depth (function-level imports included), and every pretrainflow
    module it names in a string (imported by name: task and family registries, worker entry points "module:function")."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.partition(":")[0] in MODULES:
            names.add(node.value.partition(":")[0])
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]).strip(".")
            names |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return names


def third_party_imports(family: str) -> set[str]:
    """Dotted third-party names imported by the family's modules and every pretrainflow module they import."""
    todo = [name for name in MODULES if any(name == p or name.startswith(p + ".") for p in FAMILIES[family])]
    seen: set[str] = set()
    found: set[str] = set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        for name in _imports(module):
            top = name.partition(".")[0]
            if top == "pretrainflow":
                parts = name.split(".")
                todo += [".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) in MODULES]
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(name)
    return found


def needed_distributions(family: str) -> set[str]:
    """The distributions the family's code imports (canonical names)."""
    providers = metadata.packages_distributions()
    needed = set()
    for name in third_party_imports(family):
        top = name.partition(".")[0]
        if top in OPTIONAL_IMPORTS:
            continue
        assert top in providers, f"the {family} code imports {name!r}, which no installed distribution provides"
        needed |= {canonicalize_name(dist) for dist in providers[top]}
        needed |= {canonicalize_name(dist) for sub, dist in SUBMODULE_DISTRIBUTIONS.items() if name.startswith(sub)}
    return needed


def installed_with(requirements: list[Requirement]) -> dict[str, str]:
    """Every distribution pip installs for ``requirements`` (per this venv's metadata), mapped to the listed
    requirement that pulls it in."""
    via: dict[str, str] = {}
    todo = [(req, canonicalize_name(req.name)) for req in requirements]
    while todo:
        req, root = todo.pop()
        name = canonicalize_name(req.name)
        if name in via:
            continue
        via[name] = root
        for line in metadata.requires(name) or []:
            dep = Requirement(line)
            wanted = dep.marker is None or any(dep.marker.evaluate({"extra": extra}) for extra in {"", *req.extras})
            if wanted:
                todo.append((dep, root))
    return via


def test_every_family_has_an_environment_file():
    assert sorted(path.stem for path in ENVS.glob("*.yaml")) == sorted(FAMILIES)


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_environment_names_python_and_pins_like_pyproject(family):
    env = _env(family)
    assert env["channels"][0] == "conda-forge" and "nodefaults" in env["channels"], env["channels"]
    conda = [entry for entry in env["dependencies"] if isinstance(entry, str)]
    assert [entry for entry in conda if entry.split("=")[0] == "python"] == ["python=3.11"], conda
    assert "pip" in conda, conda
    requirements = _pip_requirements(env)
    assert requirements, f"envs/{family}.yaml installs nothing through pip"
    for req in requirements:
        name = canonicalize_name(req.name)
        assert name in PINS, f"envs/{family}.yaml: {req} is not a dependency of pyproject.toml"
        pin = PINS[name]
        assert (req.specifier, req.extras) == (pin.specifier, pin.extras), f"envs/{family}.yaml: {req} != {pin}"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_environment_serves_its_family_and_nothing_drifts(family):
    requirements = _pip_requirements(_env(family))
    listed = {canonicalize_name(req.name) for req in requirements}
    via = installed_with(requirements)
    missing = needed_distributions(family) - set(via)
    assert not missing, f"envs/{family}.yaml: the {family} code imports {sorted(missing)}; list them"
    drifting = {name: via[name] for name in set(via) & set(PINS) - listed}
    assert not drifting, f"envs/{family}.yaml: pinned in pyproject, pulled in unpinned by {drifting}; list them"


@pytest.fixture(scope="module")
def workflow_rules(tmp_path_factory):
    """The workflow's rules as Snakemake parses them (the default study; nothing runs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(),
                config_settings=ConfigSettings(configfiles=[ROOT / "config" / "config.yaml"]),
                snakefile=ROOT / "Snakefile",
                workdir=tmp_path_factory.mktemp("workflow"),
            )
            return {rule.name: rule for rule in workflow._workflow.rules}
    finally:
        os.chdir(cwd)


def command_module(shellcmd: str) -> str:
    """The module defining the function that ``pretrainflow <command> [<subcommand>]`` runs."""
    from pretrainflow.cli import build_parser

    words = shellcmd.split()
    assert words[0] == "pretrainflow", shellcmd
    parser = build_parser()
    for word in words[1:]:
        (subparsers,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = subparsers.choices[word]
        if parser.get_default("func"):
            return parser.get_default("func").__module__
    raise AssertionError(f"no command in {shellcmd!r}")


def test_every_rule_names_the_environment_of_its_command(workflow_rules):
    jobs = {name: rule for name, rule in workflow_rules.items() if rule.shellcmd}
    assert set(workflow_rules) - set(jobs) == {"all"}
    for name, rule in jobs.items():
        assert rule.conda_env is not None, f"rule {name}: no conda: directive"
        env = (Path(rule.snakefile).parent / rule.conda_env).resolve()  # as written: relative to the rule file
        module = command_module(rule.shellcmd)
        (family,) = [f for f, areas in FAMILIES.items() if any(module.startswith(area + ".") for area in areas)]
        assert env == ENVS / f"{family}.yaml", f"rule {name} runs {module}: expected envs/{family}.yaml, got {env}"
