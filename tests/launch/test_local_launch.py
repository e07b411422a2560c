"""The local launcher starts N ranks with a consistent torchrun-style world and propagates exit codes."""

import json
import os
import sys

from pretrainflow.launch import World, run_distributed, world_from_env


def record_world(args):
    """Worker used by the test: write this rank's world to <dir>/rank-<r>.json; exit with args[1] on rank 1."""
    world = world_from_env()
    out_dir = args[0]
    with open(os.path.join(out_dir, f"rank-{world.rank}.json"), "w") as handle:
        json.dump({"rank": world.rank, "size": world.world_size, "port": world.master_port}, handle)
    return int(args[1]) if world.rank == 1 else 0


def test_two_ranks_see_one_world(tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.path.dirname(__file__), *sys.path]))
    code = run_distributed("test_local_launch:record_world", [str(tmp_path), "0"], procs_per_node=2)
    assert code == 0
    worlds = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in range(2)]
    assert [w["rank"] for w in worlds] == [0, 1]
    assert {w["size"] for w in worlds} == {2}
    assert worlds[0]["port"] == worlds[1]["port"]


def test_failing_rank_exit_code_propagates(tmp_path, monkeypatch):
    for var in ("RANK", "WORLD_SIZE", "OMPI_COMM_WORLD_RANK"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([os.path.dirname(__file__), *sys.path]))
    assert run_distributed("test_local_launch:record_world", [str(tmp_path), "7"], procs_per_node=2) == 7


def test_world_from_openmpi_env():
    env = {
        "OMPI_COMM_WORLD_RANK": "3",
        "OMPI_COMM_WORLD_SIZE": "8",
        "OMPI_COMM_WORLD_LOCAL_RANK": "3",
        "OMPI_COMM_WORLD_LOCAL_SIZE": "4",
        "MASTER_ADDR": "node1",
        "MASTER_PORT": "10042",
    }
    world = world_from_env(env)
    assert world == World(
        rank=3, local_rank=3, world_size=8, local_world_size=4, master_addr="node1", master_port=10042
    )
    assert world.num_nodes == 2 and not world.is_main
