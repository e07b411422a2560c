"""The site profiles are valid Snakemake profiles, are found by bare name after `pretrainflow profiles install`, and
are not silently overridden by the workflow profile (profiles/default next to the Snakefile)."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from cluster_helpers import REPO, TOY_SNAKEFILE, VENV_BIN, snakemake_env

from pretrainflow.errors import PretrainflowError
from pretrainflow.schedulers.profiles import INSTALLED, install_profiles

SITES = ("abci", "tsubame", "slurm")


def _load(site: str) -> dict:
    return yaml.safe_load((REPO / "profiles" / site / "config.yaml").read_text())


@pytest.mark.parametrize("site", SITES)
def test_profile_is_accepted_by_snakemake(site, tmp_path):
    # a dry run parses every profile key as a Snakemake option (an unknown key or a bad value is an error)
    env = {**snakemake_env(), "PRETRAINFLOW_GROUP": "gaa50000"}
    result = subprocess.run(
        [str(VENV_BIN / "snakemake"), "-s", str(TOY_SNAKEFILE), "--profile", str(REPO / "profiles" / site),
         "--directory", str(tmp_path), "-n"],
        env=env, capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "part" in result.stdout


@pytest.mark.parametrize("site", ["abci", "tsubame"])
def test_generic_profiles_use_our_commands(site):
    config = _load(site)
    assert config["executor"] == "cluster-generic"
    assert config["cluster-generic-submit-cmd"].startswith(f"pretrainflow sched submit --site {site} ")
    assert config["cluster-generic-status-cmd"].startswith(f"pretrainflow sched status --site {site}")
    assert config["cluster-generic-cancel-cmd"] == "qdel"  # run without a shell: must be one program name
    assert "$" not in config["cluster-generic-submit-cmd"]  # nothing for the profile parser to expand into a shell


def test_workflow_profile_does_not_override_site_profiles():
    # Snakemake merges profiles/default (the workflow profile next to the Snakefile) over --profile, key by key:
    # any key set there (executor, default-resources, latency-wait ...) would silently replace the site's value.
    # Keys with the same value in both are harmless; `executor` must never be there (it would run everything locally).
    workflow = yaml.safe_load((REPO / "profiles" / "default" / "config.yaml").read_text()) or {}
    assert "executor" not in workflow, "profiles/default sets `executor`: `snakemake --profile abci` would run locally"
    for site in SITES:
        site_config = _load(site)
        clash = sorted(key for key in set(workflow) & set(site_config) if workflow[key] != site_config[key])
        assert not clash, f"profiles/default sets {clash}, which override profiles/{site} under `--profile {site}`"


def test_install_links_profiles_and_snakemake_finds_them_by_name(tmp_path):
    target = tmp_path / "config" / "snakemake"
    lines = install_profiles(target=target)
    assert len(lines) == len(INSTALLED)
    for site in INSTALLED:
        assert (target / site).is_symlink() and (target / site).resolve() == (REPO / "profiles" / site).resolve()
    assert all("already linked" in line for line in install_profiles(target=target))  # idempotent
    (target / "slurm").unlink()
    (target / "slurm").mkdir()
    with pytest.raises(PretrainflowError, match="exists and is not a link"):
        install_profiles(target=target)
    (target / "slurm").rmdir()
    (target / "slurm").symlink_to(tmp_path / "deleted-checkout" / "profiles" / "slurm")  # dangling: replaced silently
    install_profiles(target=target)
    assert (target / "slurm").resolve() == (REPO / "profiles" / "slurm").resolve()
    # `snakemake --profile slurm` resolves the bare name in $XDG_CONFIG_HOME/snakemake
    env = {**snakemake_env(), "XDG_CONFIG_HOME": str(tmp_path / "config")}
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run(
        [str(VENV_BIN / "snakemake"), "-s", str(TOY_SNAKEFILE), "--profile", "slurm", "-n"],
        env=env, capture_output=True, text=True, cwd=work,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    using = next(line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Using profile"))
    assert "slurm" in using, using
