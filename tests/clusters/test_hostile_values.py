"""No value from a profile, the environment or a study reaches a shell unquoted.

Fifteen hostile values are tried as group, queue, account, module, job name (wildcards), extra qsub argument, job
environment value, working directory and job id. Names the scheduler must parse are refused with a ConfigError naming
the key; free-form values travel as single argv items or shlex-quoted words. A fake `qsub` on PATH records its argv
and runs the wrapper script like a scheduler would, and a canary file shows that no command substitution ever ran.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest

from pretrainflow.errors import ConfigError
from pretrainflow.schedulers import commands
from pretrainflow.schedulers.settings import check_job_id, settings_from

CANARY = "/tmp/pretrainflow-canary-{pid}"


def hostile_values(canary: str) -> list[str]:
    return [
        "grp; rm -rf ~",
        "grp\nqsub evil.sh",
        f"$(touch {canary})",
        f"`touch {canary}`",
        "grp' -W 'depend=x",
        'grp" -v "X=1',
        "grp|cat /etc/passwd",
        f"grp&&touch {canary}",
        "../../etc/passwd",
        "grp\x00x",
        "-P",
        " grp",
        "grp>out",
        "*",
        "grp\r",
        f"grp${{IFS}}touch${{IFS}}{canary}",
    ]


@pytest.fixture
def canary(tmp_path):
    path = tmp_path / "canary"
    yield str(path)
    assert not path.exists(), "a hostile value was executed by a shell"


@pytest.mark.parametrize("key", ["site_group", "site_queue", "site_account"])
def test_hostile_names_are_refused_with_the_key(key, canary):
    for value in hostile_values(canary):
        with pytest.raises(ConfigError, match=key):
            settings_from({key: value}, env={})


def test_hostile_names_from_the_environment_are_refused(canary):
    for value in hostile_values(canary):
        with pytest.raises(ConfigError, match="site_group"):
            settings_from({}, env={"PRETRAINFLOW_GROUP": value})


SHELL_SPECIAL = set(";|&$`'\"<>*?()~\\\n\r\x00{}")


def test_hostile_modules_and_job_ids_are_refused(canary):
    refused = 0
    for value in hostile_values(canary):
        # modules are whitespace-separated words: a value either is refused, or splits into plain module names only
        try:
            modules = settings_from({"site_modules": f"cuda/12.6/12.6.1 {value}"}, env={}).modules
        except ConfigError as err:
            assert "site_modules" in str(err)
            refused += 1
        else:
            assert not any(SHELL_SPECIAL & set(m) or m.startswith(("-", ".")) for m in modules), modules
        with pytest.raises(ConfigError, match="job id"):
            check_job_id(value)
        with pytest.raises(ConfigError):
            commands.status("abci", value)
        with pytest.raises(ConfigError):
            commands.cancel("tsubame", ["123", value])
    assert refused >= 12


FAKE_QSUB = r"""#!{python}
# records its argv (JSON) and runs the job script like a scheduler, then prints a job id
import json, os, subprocess, sys
with open(os.environ["FAKE_QSUB_LOG"], "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\n")
env = dict(os.environ, PBS_JOBID="77.pbs1")
subprocess.run(["/bin/bash", sys.argv[-1]], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print("77.pbs1")
"""


def _fake_snakemake_script(path: Path, resources: dict, wildcards: dict) -> Path:
    props = {"rule": "pretrain_vit", "wildcards": wildcards, "resources": resources, "threads": 1, "jobid": 7}
    # the payload prints the job environment value it received, byte for byte
    path.write_text(f"#!/bin/sh\n# properties = {json.dumps(props)}\nprintf '%s' \"$HOSTILE\" > envout\n")
    return path


def test_hostile_values_reach_qsub_as_single_argv_items(tmp_path, monkeypatch, canary):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    qsub = bin_dir / "qsub"
    qsub.write_text(FAKE_QSUB.replace("{python}", sys.executable))
    qsub.chmod(qsub.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_QSUB_LOG", str(tmp_path / "qsub.log"))
    monkeypatch.delenv("PRETRAINFLOW_GROUP", raising=False)
    checked = 0
    for i, value in enumerate(hostile_values(canary)):
        if any(ord(ch) < 32 for ch in value):
            continue  # control characters are refused (tested below); everything else must arrive intact
        workdir = tmp_path / f"work {i} ;$(x)'\""  # a hostile working directory too
        workdir.mkdir()
        script = _fake_snakemake_script(
            workdir / "snakejob.sh",
            {
                "site_group": "gaa50000",
                "site_extra": value,
                "site_env": f"HOSTILE={value.replace(' ', '_')}",
                "gpus": 1,
                "runtime": 5,
            },
            {"run": value},
        )
        job_id = commands.submit("abci", script, [], workdir=workdir)
        assert job_id == "77.pbs1"
        argv = json.loads((tmp_path / "qsub.log").read_text().splitlines()[-1])
        assert argv[argv.index("-P") + 1] == "gaa50000"
        assert value.strip() in argv  # the extra argument: one argv item, unchanged
        name = argv[argv.index("-N") + 1]
        assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-"), name
        # the wrapper ran in the hostile directory and passed the environment value through exactly
        assert (workdir / "envout").read_text() == value.replace(" ", "_")
        # (its exit-code file was written and then dropped by submit as "stale": this fake qsub runs the job
        # before returning the id, which a real scheduler never does)
        checked += 1
    assert checked >= 10


def test_control_characters_in_extra_arguments_are_refused(canary):
    for value in hostile_values(canary):
        if any(ord(ch) < 32 for ch in value.strip()):  # leading/trailing whitespace is trimmed, inner is refused
            with pytest.raises(ConfigError, match="site_extra"):
                settings_from({"site_extra": value}, env={})


FAKE_QSTAT = r"""#!{python}
# qstat -x -f -F json <id>: 1.pbs1 finished, 2.pbs1 running (the documented document shape)
import json, sys
state = {"1.pbs1": {"job_state": "F", "Exit_status": 0}, "2.pbs1": {"job_state": "R"}}[sys.argv[-1]]
print(json.dumps({"Jobs": {sys.argv[-1]: state}}))
"""


def test_pbs_dependencies_on_finished_jobs_are_dropped(tmp_path, monkeypatch):
    # Snakemake passes the ids of all input jobs; PBS would refuse afterok on the finished one
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("qsub", FAKE_QSUB), ("qstat", FAKE_QSTAT)):
        (bin_dir / name).write_text(text.replace("{python}", sys.executable))
        (bin_dir / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_QSUB_LOG", str(tmp_path / "qsub.log"))
    script = _fake_snakemake_script(tmp_path / "snakejob.sh", {"site_group": "gaa50000"}, {})
    commands.submit("abci", script, ["1.pbs1", "2.pbs1"], workdir=tmp_path)
    argv = json.loads((tmp_path / "qsub.log").read_text().splitlines()[-1])
    assert argv[argv.index("-W") + 1] == "depend=afterok:2.pbs1"
