"""The environment the launchers give training processes (pretrainflow.launch.env): the world always exported (also
under mpirun, whose ranks start with OMPI_COMM_WORLD_* only), NCCL_* / LD_LIBRARY_PATH forwarded by mpirun, one shared
TorchInductor cache unless the user chose one, and a free rendezvous port for every run on one node."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from pretrainflow.launch import World, run_distributed, run_job
from pretrainflow.launch.discover import JobLayout
from pretrainflow.launch.env import forwarded_names, worker_env
from pretrainflow.launch.local import in_process_world, local_worlds
from pretrainflow.launch.multinode import launcher_env, mpirun_argv

HERE = Path(__file__).parent
WORLD_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
OMPI = {
    "OMPI_COMM_WORLD_RANK": "6",
    "OMPI_COMM_WORLD_SIZE": "8",
    "OMPI_COMM_WORLD_LOCAL_RANK": "2",
    "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
    "MASTER_ADDR": "hnode001",
    "MASTER_PORT": "14321",
}


def record_env(args):
    """Worker used by the tests: write the world variables and the inductor cache this process sees to args[0]."""
    names = (*WORLD_VARS, "TORCHINDUCTOR_CACHE_DIR")
    Path(args[0]).write_text(json.dumps({name: os.environ.get(name) for name in names}))
    return 0


def _clean_env(monkeypatch, **extra: str) -> None:
    for name in (*WORLD_VARS, "OMPI_COMM_WORLD_RANK", "SLURM_JOB_ID", "PBS_JOBID", "JOB_ID", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), *sys.path]))
    for name, value in extra.items():
        monkeypatch.setenv(name, value)


def test_worker_env_exports_the_world_under_mpirun():
    env = worker_env({**OMPI, "HOME": "/home/u", "PATH": "/bin"})
    assert {name: env[name] for name in WORLD_VARS} == {
        "RANK": "6",
        "LOCAL_RANK": "2",
        "WORLD_SIZE": "8",
        "LOCAL_WORLD_SIZE": "4",
        "MASTER_ADDR": "hnode001",
        "MASTER_PORT": "14321",
    }
    assert env["PATH"] == "/bin" and env["OMPI_COMM_WORLD_RANK"] == "6"  # the rest of the environment stays
    # a given world wins over what the base describes (the local launcher's children)
    mine = worker_env({**OMPI, "HOME": "/h"}, World(rank=1, local_rank=1, world_size=2, local_world_size=2))
    assert (mine["RANK"], mine["WORLD_SIZE"], mine["MASTER_PORT"]) == ("1", "2", "29500")


def test_inductor_cache_is_shared_unless_the_user_chose_one():
    assert worker_env({"HOME": "/home/u"})["TORCHINDUCTOR_CACHE_DIR"] == "/home/u/.cache/pretrainflow/torchinductor"
    xdg = worker_env({"HOME": "/home/u", "XDG_CACHE_HOME": "/scratch/c"})
    assert xdg["TORCHINDUCTOR_CACHE_DIR"] == "/scratch/c/pretrainflow/torchinductor"
    assert (
        worker_env({"HOME": "/h", "TORCHINDUCTOR_CACHE_DIR": "/fast/mine"})["TORCHINDUCTOR_CACHE_DIR"] == "/fast/mine"
    )
    assert "TORCHINDUCTOR_CACHE_DIR" not in worker_env({})  # no home: torch's own default
    layout = JobLayout(scheduler="pbs", job_id="77.pbs1", hosts=("a", "b"), node_rank=0)
    env = launcher_env({"HOME": "/home/u", "PATH": "/bin"}, layout)
    assert env["TORCHINDUCTOR_CACHE_DIR"] == "/home/u/.cache/pretrainflow/torchinductor"
    assert (env["MASTER_ADDR"], env["MASTER_PORT"], env["CUDA_DEVICE_MAX_CONNECTIONS"]) == ("a", "10077", "1")


def test_mpirun_forwards_nccl_and_library_paths(tmp_path):
    layout = JobLayout(scheduler="sge", job_id="5", hosts=("r1n1", "r1n2"), node_rank=0)
    base = {
        "PATH": "/bin",
        "LD_LIBRARY_PATH": "/apps/cuda/lib64",
        "NCCL_IB_HCA": "mlx5_0",
        "NCCL_SOCKET_IFNAME": "ib0",
        "PRETRAINFLOW_SITE": "tsubame",
        "CUDA_HOME": "/apps/cuda/12.6",
        "CUDA_VISIBLE_DEVICES": "0,1,2,3",  # set by the scheduler on each node: never copied from the first one
        "VIRTUAL_ENV": "/home/u/venv",
        "HOME": "/home/u",
        "SECRET_TOKEN": "x",
    }
    env = launcher_env(base, layout)
    argv = mpirun_argv(layout, 4, tmp_path / "hosts", "m:f", ["--a", "1"], env)
    forwarded = [argv[i + 1] for i, item in enumerate(argv) if item == "-x"]
    assert forwarded == forwarded_names(env)
    assert {"MASTER_ADDR", "MASTER_PORT", "LD_LIBRARY_PATH", "NCCL_IB_HCA", "NCCL_SOCKET_IFNAME"} <= set(forwarded)
    assert {"TORCHINDUCTOR_CACHE_DIR", "PRETRAINFLOW_SITE", "CUDA_DEVICE_MAX_CONNECTIONS"} <= set(forwarded)
    assert {"CUDA_HOME", "VIRTUAL_ENV", "PATH"} <= set(forwarded) and "CUDA_VISIBLE_DEVICES" not in forwarded
    assert "HOME" not in forwarded and "SECRET_TOKEN" not in forwarded and "PYTHONPATH" not in forwarded
    assert not [item for item in argv if "/apps/cuda" in item or "/home/u" in item]  # names only, values in the env
    assert argv[-2:] == ["--a", "1"]


def test_worker_under_mpirun_exports_rank_variables(tmp_path, monkeypatch):
    _clean_env(monkeypatch)
    out = tmp_path / "env.json"
    env = {**os.environ, **OMPI}
    argv = [sys.executable, "-m", "pretrainflow.launch.worker", "test_worker_env:record_env", str(out)]
    subprocess.run(argv, env=env, check=True, timeout=120)
    seen = json.loads(out.read_text())
    assert (seen["RANK"], seen["LOCAL_RANK"], seen["WORLD_SIZE"], seen["MASTER_PORT"]) == ("6", "2", "8", "14321")
    assert seen["TORCHINDUCTOR_CACHE_DIR"].endswith(os.path.join("pretrainflow", "torchinductor"))


def test_local_workers_get_one_world_and_the_shared_cache(tmp_path, monkeypatch):
    _clean_env(monkeypatch, HOME=str(tmp_path / "home"))
    worlds = local_worlds(2, 12345)
    assert [(w.rank, w.local_rank, w.world_size, w.master_port) for w in worlds] == [(0, 0, 2, 12345), (1, 1, 2, 12345)]
    assert run_distributed("test_worker_env:record_env", [str(tmp_path / "rank.json")], procs_per_node=1) == 0
    seen = json.loads((tmp_path / "rank.json").read_text())
    assert seen["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "home" / ".cache" / "pretrainflow" / "torchinductor")


def test_single_process_runs_do_not_share_a_port(tmp_path, monkeypatch):
    # Two single-GPU runs at once on one machine used to meet on 29500. Each run now takes a port that is free when
    # it starts: hold the first run's port (as its rendezvous would) and start a second run.
    _clean_env(monkeypatch)
    assert run_distributed("test_worker_env:record_env", [str(tmp_path / "a.json")], procs_per_node=1) == 0
    first = json.loads((tmp_path / "a.json").read_text())
    assert first["RANK"] == "0" and first["WORLD_SIZE"] == "1" and first["MASTER_ADDR"] == "127.0.0.1"
    assert int(first["MASTER_PORT"]) != 29500
    with socket.socket() as held:
        held.bind(("127.0.0.1", int(first["MASTER_PORT"])))
        # run_job (what the commands call) on a machine without a scheduler job goes the same way
        assert run_job("test_worker_env:record_env", [str(tmp_path / "b.json")], procs_per_node=1) == 0
    second = json.loads((tmp_path / "b.json").read_text())
    assert second["MASTER_PORT"] != first["MASTER_PORT"] and int(second["MASTER_PORT"]) != 29500
    assert "RANK" not in os.environ and "MASTER_PORT" not in os.environ  # exported for the run only
    # a port the user exported, or an outer launcher's world, is kept
    assert in_process_world({"MASTER_PORT": "23456"}).master_port == 23456
    assert in_process_world({"RANK": "0", "WORLD_SIZE": "1", "MASTER_PORT": "23457"}).master_port == 23457


def test_docstring_examples_of_the_launch_environment():
    import doctest

    import pretrainflow.launch.env
    import pretrainflow.launch.local

    for module in (pretrainflow.launch.env, pretrainflow.launch.local):
        result = doctest.testmod(module)
        assert result.attempted > 0 and result.failed == 0, module.__name__
