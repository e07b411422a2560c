"""A site profile's environment block reaches every rank of a multi-node job (issue 12, "mpirun forwards the
environment a GPU job needs ... and the lab recipes' NCCL settings live in the site profiles").

The chain, run for real except for mpirun itself (no MPI is installed here, and PBS cannot run here):
profiles/abci `site_env` -> settings_from -> the rendered job wrapper (schedulers/jobscript.py), executed -> its
payload calls pretrainflow.launch.run_job in a PBS-style two-node job ($PBS_JOBID, $PBS_NODEFILE) -> mpirun argv ->
a stand-in `mpirun` that does what Open MPI's `-x NAME` does for a rank on another node: the rank starts with only
the names given with -x (plus Open MPI's OMPI_COMM_WORLD_*), so a variable the launcher forgets is missing there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import yaml
from cluster_helpers import REPO

from pretrainflow.schedulers import jobscript
from pretrainflow.schedulers.job import SubmitJob
from pretrainflow.schedulers.resources import ResourceRequest, place
from pretrainflow.schedulers.settings import settings_from

HERE = Path(__file__).resolve().parent

# Open MPI's -x NAME semantics for ranks on other nodes: nothing of mpirun's environment but the -x names. Strict: an
# option it does not know, or a -x name that is not set, fails the run (Open MPI would not pass it on either).
FAKE_MPIRUN = r"""#!{python}
import json, os, subprocess, sys
args, names, opts = sys.argv[1:], [], {}
with open(os.environ["FAKE_MPIRUN_LOG"], "w") as log:
    json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, log)
i = 0
while i < len(args) and args[i].startswith("-"):
    if args[i] == "-x":
        names.append(args[i + 1])
    elif args[i] in ("-np", "--npernode", "-hostfile", "-bind-to"):
        opts[args[i]] = args[i + 1]
    else:
        sys.exit(f"fake mpirun: unknown option {args[i]!r}")
    i += 2
command, size, per_node = args[i:], int(opts["-np"]), int(opts["--npernode"])
procs = []
for rank in range(size):
    env = {name: os.environ[name] for name in names}
    env.update(OMPI_COMM_WORLD_RANK=str(rank), OMPI_COMM_WORLD_SIZE=str(size),
               OMPI_COMM_WORLD_LOCAL_RANK=str(rank % per_node), OMPI_COMM_WORLD_LOCAL_SIZE=str(per_node))
    procs.append(subprocess.Popen(command, env=env))
sys.exit(max(proc.wait() for proc in procs))
"""

# A value no shell or option parser may touch: it must arrive byte for byte, and never appear in mpirun's argv.
HOSTILE = "mlx5_0:1 ;$(touch PWNED) `id` 'x\" *"
PATTERNS = re.compile(r"(PATH|VIRTUAL_ENV|LD_LIBRARY_PATH|CUDA_\w+|NCCL_\w+)")


def record_rank_env(args):
    """The training entry of this test: each rank writes the environment it started with."""
    rank = os.environ["RANK"]
    Path(args[0], f"rank{rank}.json").write_text(json.dumps(dict(os.environ)))
    return 0


def _profile_env(site: str) -> str:
    config = yaml.safe_load((REPO / "profiles" / site / "config.yaml").read_text())
    return str(config["default-resources"]["site_env"])


def test_profiles_carry_the_recorded_recipe_setting():
    # reference/clusters.md: the lab recipes pass -x CUDA_DEVICE_MAX_CONNECTIONS=1 on ABCI and TSUBAME
    for site in ("abci", "tsubame"):
        assert settings_from({"site_env": _profile_env(site)}, env={}).env == {"CUDA_DEVICE_MAX_CONNECTIONS": "1"}


def test_site_env_reaches_every_rank_through_wrapper_and_mpirun(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "mpirun").write_text(FAKE_MPIRUN.replace("{python}", sys.executable))
    (fake_bin / "mpirun").chmod(0o755)
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("hnode001\n" * 8 + "hnode002\n" * 8)  # PBS: one line per MPI slot
    out = tmp_path / "ranks"
    out.mkdir()

    # the shipped ABCI block, plus the NCCL settings a user adds there (the reference records none for ABCI 3.0)
    site_env = f"{_profile_env('abci')} NCCL_SOCKET_IFNAME=ib0 NCCL_IB_HCA=mlx5_0,mlx5_1"
    settings = settings_from({"site_env": site_env, "site_walltime_signal": "none"}, env={})
    job = SubmitJob(
        name="pf.env",
        script=tmp_path / "wrapper.sh",
        log=tmp_path / "log",
        workdir=tmp_path,
        placement=place("abci", ResourceRequest(gpus_per_node=8, nodes=2, runtime_min=5)),
        settings=settings,
    )
    code = f"import sys; from pretrainflow.launch import run_job; sys.exit(run_job({__name__ + ':record_rank_env'!r}, [{str(out)!r}], 1))"
    python_bin = Path(sys.executable).parent
    job.script.write_text(
        jobscript.render(
            job,
            scheduler="pbs",
            payload=[sys.executable, "-c", code],
            status_dir=tmp_path / "status",
            python_bin=python_bin,
        )
    )
    env = {
        "PATH": f"{fake_bin}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
        "TMPDIR": str(tmp_path),
        "PBS_JOBID": "4321.pbs1",
        "PBS_NODEFILE": str(nodefile),
        "FAKE_MPIRUN_LOG": str(tmp_path / "mpirun.json"),
        # what `module load cuda nccl hpcx` and an activated venv leave in a job's environment
        "LD_LIBRARY_PATH": "/apps/cuda/12.6/lib64:/apps/nccl/2.23/lib",
        "CUDA_HOME": "/apps/cuda/12.6",
        "VIRTUAL_ENV": str(python_bin.parent),
        "NCCL_DEBUG": HOSTILE,
        "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7",
        "SECRET_TOKEN": "never-forwarded",
    }
    result = subprocess.run(["/bin/bash", str(job.script)], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "status" / "4321.pbs1.exit").read_text().strip() == "0"

    mpirun = json.loads((tmp_path / "mpirun.json").read_text())
    argv, launcher_env = mpirun["argv"], mpirun["env"]
    forwarded = [argv[i + 1] for i, item in enumerate(argv) if item == "-x"]
    # every variable of the listed kinds that the job has is passed on by name (-x NAME), and only by name
    wanted = {name for name in launcher_env if PATTERNS.fullmatch(name)} - {"CUDA_VISIBLE_DEVICES"}
    assert wanted <= set(forwarded), sorted(wanted - set(forwarded))
    assert {"LD_LIBRARY_PATH", "CUDA_HOME", "VIRTUAL_ENV", "PATH", "NCCL_SOCKET_IFNAME", "NCCL_IB_HCA"} <= wanted
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name) for name in forwarded), forwarded
    assert "CUDA_VISIBLE_DEVICES" not in forwarded and "SECRET_TOKEN" not in forwarded and "HOME" not in forwarded
    assert not any(HOSTILE in item or "mlx5_0,mlx5_1" in item for item in argv)  # values travel in the environment
    assert argv[: argv.index("-x")] == ["-np", "2", "--npernode", "1", "-hostfile", f"{tmp_path}/hostfile.4321.pbs1",
                                        "-bind-to", "none"]  # fmt: skip

    ranks = [json.loads((out / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    for seen in ranks:
        # the profile's block, the modules' libraries and the venv reach a rank that got nothing else of ours
        assert seen["CUDA_DEVICE_MAX_CONNECTIONS"] == "1"
        assert (seen["NCCL_SOCKET_IFNAME"], seen["NCCL_IB_HCA"]) == ("ib0", "mlx5_0,mlx5_1")
        assert seen["NCCL_DEBUG"] == HOSTILE
        assert seen["LD_LIBRARY_PATH"] == env["LD_LIBRARY_PATH"] and seen["CUDA_HOME"] == "/apps/cuda/12.6"
        assert seen["VIRTUAL_ENV"] == env["VIRTUAL_ENV"]
        assert seen["PATH"].split(":")[0] == str(python_bin)  # the wrapper put the venv's bin first
        assert (seen["MASTER_ADDR"], seen["MASTER_PORT"], seen["WORLD_SIZE"]) == ("hnode001", "14321", "2")
        assert "SECRET_TOKEN" not in seen and "CUDA_VISIBLE_DEVICES" not in seen
    assert [seen["RANK"] for seen in ranks] == ["0", "1"]
    assert not list(tmp_path.rglob("PWNED"))
