"""Environment modules the Snakemake way: the rules that ask for GPUs declare `envmodules:` with the site profile's
`site_modules` (workflow/rules/common.smk: SITE_MODULES), and `snakemake --sdm env-modules` loads them through real Lmod.

The Lmod test writes a module file `probe/1.0` that sets a variable and puts a directory first on PATH, holding a
`pretrainflow` that records its environment and then runs the real one; the scratch fine-tune of config/test.yaml (a
GPU rule, about 20 s on CPU) then runs with `--sdm env-modules`. It needs Lmod (Debian: `apt-get install lmod`; `make
test` installs it as root) and skips with the reason otherwise.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LMOD_INIT = Path("/usr/share/lmod/lmod/init/bash")  # Debian's lmod package; defines `module` in non-interactive bash
MODULES = ("probe/1.0", "cuda/12.6/12.6.1")


def parse_rules(workdir: Path, default_resources: list[str]) -> dict:
    """The workflow's rules as Snakemake parses them for config/test.yaml with these default resources (nothing runs)."""
    from snakemake.api import SnakemakeApi
    from snakemake.resources import Resources
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(
                    default_resources=Resources.parse(default_resources, allow_expressions=True, defaults="full")
                ),
                config_settings=ConfigSettings(configfiles=[ROOT / "config" / "test.yaml"]),
                snakefile=ROOT / "Snakefile",
                workdir=workdir,
            )
            return {rule.name: rule for rule in workflow._workflow.rules}
    finally:
        os.chdir(cwd)


def _modules(rule) -> tuple[str, ...]:
    return tuple(rule.env_modules.names) if rule.env_modules else ()


def test_rules_that_ask_for_gpus_load_the_profiles_modules(tmp_path):
    # quoted as a profile may write it ("'a b'"): the quotes are not part of the names
    rules = parse_rules(tmp_path, [f"site_modules='{' '.join(MODULES)}'"])
    gpu_rules = {name for name, rule in rules.items() if "gpus" in rule.resources}
    assert {"pretrain_vit", "finetune_vit", "pretrain_llm", "evaluate_llm"} <= gpu_rules
    assert {name: _modules(rules[name]) for name in gpu_rules} == dict.fromkeys(gpu_rules, MODULES)
    assert {name: _modules(rule) for name, rule in rules.items() if name not in gpu_rules and _modules(rule)} == {}


def test_a_site_without_modules_loads_none(tmp_path, monkeypatch):
    monkeypatch.delenv("PRETRAINFLOW_MODULES", raising=False)
    rules = parse_rules(tmp_path, [])
    assert [name for name, rule in rules.items() if _modules(rule)] == []


def test_the_environment_fallback_of_the_job_wrapper_applies_too(tmp_path, monkeypatch):
    monkeypatch.setenv("PRETRAINFLOW_MODULES", "probe/1.0")
    rules = parse_rules(tmp_path, [])
    assert _modules(rules["pretrain_vit"]) == ("probe/1.0",) and _modules(rules["search_categories"]) == ()


def test_a_module_name_a_shell_would_parse_is_refused_before_anything_runs(tmp_path):
    from snakemake.exceptions import WorkflowError

    with pytest.raises(WorkflowError, match=r"site_modules: expected module names like cuda/12.6/12.6.1, got 'x;'"):
        parse_rules(tmp_path, ["site_modules='probe/1.0 x;'"])


@pytest.mark.slow
@pytest.mark.skipif(not LMOD_INIT.is_file(), reason=f"needs Lmod ({LMOD_INIT}; Debian: apt-get install lmod)")
def test_lmod_loads_the_modules_into_a_gpu_rules_job(tmp_path):
    probe_bin = tmp_path / "probe-bin"
    probe_bin.mkdir()
    record = tmp_path / "probe.txt"
    shim = probe_bin / "pretrainflow"
    shim.write_text(
        "#!/bin/sh\n"
        f'echo "$* | PRETRAINFLOW_PROBE=$PRETRAINFLOW_PROBE | LOADEDMODULES=$LOADEDMODULES" >> "{record}"\n'
        f'exec "{Path(sys.executable).parent / "pretrainflow"}" "$@"\n'
    )
    shim.chmod(0o755)
    modulefile = tmp_path / "modules" / "probe" / "1.0.lua"
    modulefile.parent.mkdir(parents=True)
    modulefile.write_text(f'setenv("PRETRAINFLOW_PROBE", "set by Lmod")\nprepend_path("PATH", "{probe_bin}")\n')
    workdir = tmp_path / "study"
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "BASH_ENV": str(LMOD_INIT),  # what a login shell on a cluster node gets from /etc/profile.d
        "MODULEPATH": str(tmp_path / "modules"),
    }
    target = "results/finetune/scratch-vit-test/digits/model.safetensors"
    run = subprocess.run(
        [sys.executable, "-m", "snakemake", target, "--snakefile", ROOT / "Snakefile", "--directory", workdir,
         "--configfile", ROOT / "config" / "test.yaml", "--cores", "2", "--sdm", "env-modules",
         "--default-resources", "site_modules=probe/1.0"],  # last: --default-resources takes every word after it
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    assert (workdir / target).is_file()
    (line,) = record.read_text().splitlines()  # the rule's command ran once, through the module's PATH entry
    assert line.startswith("finetune --spec ")
    assert line.endswith("| PRETRAINFLOW_PROBE=set by Lmod | LOADEDMODULES=probe/1.0")
