"""Node-local staging (pretrainflow.launch.staging) under real 2-process torch.distributed gloo groups: local rank 0 of
each node copies and checks the shards, the ranks meet, every rank reads its node's copy; a corrupt copy is an error
naming the shard on the rank that made it and an error on every other rank, and no half copy is left behind."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pretrainflow.errors import PretrainflowError
from pretrainflow.io import sha256_file
from pretrainflow.launch import World, run_distributed, staging, world_from_env
from pretrainflow.launch.env import worker_env
from pretrainflow.launch.local import free_port

HERE = Path(__file__).resolve().parent
DATASET = {
    "name": "fdb-stage",
    "family": "fractaldb",
    "num_classes": 3,
    "instances_per_class": 4,
    "image_size": 16,
    "num_shards": 2,
    "seed": 3,
    "params": {"num_points": 1000, "search_batch": 64},
}
SCHEDULER_VARS = ("PBS_LOCALDIR", "SLURM_TMPDIR", "JOB_ID", "SGE_ROOT", "PE_HOSTFILE", "SLURM_JOB_ID", "PBS_JOBID")


def stage_worker(args: list[str]) -> int:
    """Rank entry of the tests: join a gloo group, stage args[0], open the staged dataset, report to args[1]."""
    import torch.distributed as dist

    from pretrainflow.datasets import open_dataset

    world = world_from_env()
    dist.init_process_group("gloo")
    report: dict = {"rank": world.rank}
    try:
        local = staging.stage_dataset(Path(args[0]), world)
        dataset = open_dataset(local)
        pixels = hashlib.sha256(b"".join(dataset[i][0].numpy().tobytes() for i in range(len(dataset))))
        report |= {"dir": str(local), "paths": [str(p) for p in dataset.paths], "pixels": pixels.hexdigest()}
    except PretrainflowError as err:
        report["error"] = str(err)
    Path(args[1], f"rank-{world.rank}.json").write_text(json.dumps(report))
    dist.destroy_process_group()
    return 3 if "error" in report else 0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from pretrainflow.datasets.build import build_dataset

    root = tmp_path_factory.mktemp("shared") / "fdb-stage"
    build_dataset(DATASET, root)
    return root


@pytest.fixture()
def clean_env(monkeypatch):
    """No outer launcher or scheduler: the test decides the world and the node-local directory."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "MASTER_PORT", *SCHEDULER_VARS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(HERE), *sys.path]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    return monkeypatch


def reports(out: Path, ranks: int) -> list[dict]:
    return [json.loads((out / f"rank-{rank}.json").read_text()) for rank in range(ranks)]


def source_pixels(dataset: Path) -> str:
    from pretrainflow.datasets import open_dataset

    ds = open_dataset(dataset)
    return hashlib.sha256(b"".join(ds[i][0].numpy().tobytes() for i in range(len(ds)))).hexdigest()


def assert_complete_copy(local: Path, source: Path) -> None:
    manifest = json.loads((source / "manifest.json").read_text())
    names = sorted(p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file())
    expected = [e["name"] for e in manifest["shards"]] + [e["index"]["name"] for e in manifest["shards"]]
    assert names == sorted([*expected, "manifest.json"])  # no temporary file left
    for entry in manifest["shards"]:
        assert sha256_file(local / entry["name"]) == entry["sha256"]
        assert sha256_file(local / entry["index"]["name"]) == entry["index"]["sha256"]


def test_two_ranks_of_one_node_read_the_copy_of_local_rank_0(dataset, clean_env, tmp_path):
    clean_env.setenv("PRETRAINFLOW_LOCAL_DIR", str(tmp_path / "node"))
    code = run_distributed("test_node_local_staging:stage_worker", [str(dataset), str(tmp_path)], procs_per_node=2)
    got = reports(tmp_path, 2)
    assert code == 0, got
    checksum = json.loads((dataset / "manifest.json").read_text())["dataset_checksum"]
    local = tmp_path / "node" / staging.SUBDIR / f"fdb-stage-{checksum[:16]}"
    assert {r["dir"] for r in got} == {str(local)}
    assert all(Path(p).parent == local / "shards" for r in got for p in r["paths"])
    assert {r["pixels"] for r in got} == {source_pixels(dataset)}
    assert_complete_copy(local, dataset)


def start_two_nodes(dataset: Path, out: Path, local_dirs: list[Path]) -> list[subprocess.Popen]:
    """Two 'nodes' of one rank each (local rank 0 on both), each with its own node-local directory."""
    port = free_port()
    procs = []
    for rank, local in enumerate(local_dirs):
        world = World(rank=rank, local_rank=0, world_size=2, local_world_size=1, master_port=port)
        env = {**worker_env(os.environ, world), "PRETRAINFLOW_LOCAL_DIR": str(local)}
        argv = [sys.executable, "-m", "pretrainflow.launch.worker", "test_node_local_staging:stage_worker"]
        procs.append(subprocess.Popen([*argv, str(dataset), str(out)], env=env))
    return procs


def test_each_node_stages_its_own_copy(dataset, clean_env, tmp_path):
    nodes = [tmp_path / "node-a", tmp_path / "node-b"]
    codes = [proc.wait(timeout=120) for proc in start_two_nodes(dataset, tmp_path, nodes)]
    got = reports(tmp_path, 2)
    assert codes == [0, 0], got
    for node, report in zip(nodes, got, strict=True):
        assert Path(report["dir"]).parent == node / staging.SUBDIR
        assert_complete_copy(Path(report["dir"]), dataset)
    assert got[0]["pixels"] == got[1]["pixels"] == source_pixels(dataset)


def test_a_corrupt_shard_fails_every_rank_and_names_the_shard(dataset, clean_env, tmp_path):
    """A byte flipped in the shared copy of shard 1: its node-local copy fails the manifest's sha256 on local rank 0,
    which names it; rank 1 (same node) hears it at the barrier instead of training on a bad copy or waiting forever."""
    source = tmp_path / "shared"
    shutil.copytree(dataset, source)
    shard = source / "shards" / "shard-00001.tar"
    data = bytearray(shard.read_bytes())
    data[2000] ^= 0xFF
    shard.write_bytes(bytes(data))
    clean_env.setenv("PRETRAINFLOW_LOCAL_DIR", str(tmp_path / "node"))
    code = run_distributed("test_node_local_staging:stage_worker", [str(source), str(tmp_path)], procs_per_node=2)
    got = reports(tmp_path, 2)
    assert code == 3
    assert "shard-00001.tar: its node-local copy" in got[0]["error"] and "the manifest says" in got[0]["error"]
    assert "failed on rank(s) [0]" in got[1]["error"]
    local_shards = next((tmp_path / "node" / staging.SUBDIR).iterdir()) / "shards"
    assert not (local_shards / "shard-00001.tar").exists()
    assert not [p for p in local_shards.iterdir() if p.name.startswith(".")]  # no temporary copy left
    assert not (local_shards.parent / "manifest.json").exists()  # never looks complete


def test_a_byte_flipped_in_the_local_copy_is_caught_and_a_bad_leftover_replaced(dataset, clean_env, tmp_path):
    """In one process: a copy damaged on its way to the local disk (after the copy, before the check) is an error naming
    the shard and leaves nothing under its name; a rerun copies it again; a later damaged local copy is not reused."""
    clean_env.setenv("PRETRAINFLOW_LOCAL_DIR", str(tmp_path / "node"))
    real_copy = shutil.copyfile

    def copy_then_flip(src, dst, **kwargs):
        real_copy(src, dst, **kwargs)
        if str(src).endswith("shard-00000.tar"):
            data = bytearray(Path(dst).read_bytes())
            data[700] ^= 0x10
            Path(dst).write_bytes(bytes(data))
        return dst

    clean_env.setattr(staging.shutil, "copyfile", copy_then_flip)
    with pytest.raises(PretrainflowError, match=r"shard-00000.tar: its node-local copy on .* has sha256"):
        staging.stage_dataset(dataset, World())
    clean_env.setattr(staging.shutil, "copyfile", real_copy)
    local = staging.staged_dir(dataset, json.loads((dataset / "manifest.json").read_text()))
    assert not (local / "shards" / "shard-00000.tar").exists() and not (local / "manifest.json").exists()

    assert staging.stage_dataset(dataset, World()) == local
    assert_complete_copy(local, dataset)
    damaged = local / "shards" / "shard-00001.tar"
    data = bytearray(damaged.read_bytes())
    data[900] ^= 0x01
    damaged.write_bytes(bytes(data))
    untouched = (local / "shards" / "shard-00000.tar").stat().st_mtime_ns
    staging.stage_dataset(dataset, World())
    assert_complete_copy(local, dataset)  # the damaged leftover was copied again
    assert (local / "shards" / "shard-00000.tar").stat().st_mtime_ns == untouched  # the good one was reused


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PRETRAINFLOW_LOCAL_DIR": "/fast", "PBS_LOCALDIR": "/local/1.pbs"}, "/fast"),
        ({"PBS_LOCALDIR": "/local/1.pbs", "TMPDIR": "/tmp"}, "/local/1.pbs"),
        ({"SLURM_JOB_ID": "9", "SLURM_TMPDIR": "/localscratch/9", "TMPDIR": "/tmp"}, "/localscratch/9"),
        ({"JOB_ID": "77", "PE_HOSTFILE": "/sge/pe", "TMPDIR": "/scr/77.1.all.q"}, "/scr/77.1.all.q"),
    ],
)
def test_node_local_root_of_each_site(env, expected):
    assert str(staging.node_local_root(env)) == expected


@pytest.mark.parametrize("env", [{}, {"TMPDIR": "/tmp"}, {"SLURM_JOB_ID": "9", "TMPDIR": "/tmp"}])
def test_no_node_local_directory_is_an_error_naming_the_ways_to_give_one(env):
    with pytest.raises(PretrainflowError, match=r"stage_data: no node-local directory.*PRETRAINFLOW_LOCAL_DIR"):
        staging.node_local_root(env)


VIT_RUN = {
    "kind": "vit",
    "run_id": "vit-stage",
    "dataset": DATASET["name"],
    "dataset_spec": DATASET,
    "model": {"name": "vit_test", "image_size": 16, "patch_size": 4},
    "schedule": {"epochs": 1, "warmup_epochs": 0},
    "batch": {"micro": 2, "global": 4},  # 2 x 1 accumulation x 2 ranks: 12 images -> 3 steps
    "augment": {"randaugment_ops": 0, "mixup": 0, "cutmix": 0, "random_erasing": 0},
    "devices": {"nodes": 1, "gpus_per_node": 0, "cpu_ranks": 2},
    "checkpoint": {"every_steps": 100},
}


@pytest.mark.slow  # DeepSpeed start-up of 2 ranks: ~30 s on 2 free cores, minutes on a loaded machine
def test_a_staged_two_rank_vit_run_trains_on_the_local_copy(dataset, clean_env, tmp_path):
    """The tiny ViT on 2 gloo ranks with ``stage_data: true``: the shared shards are moved away after a first staging,
    so the run can only train on the node-local copy (which staging checks and reuses); its checkpoints and outputs
    carry the config of the same run without stage_data."""
    from pretrainflow.io import config_hash
    from pretrainflow.study.layout import checkpoint_unit
    from pretrainflow.train.vit.spec import VitRunSpec

    source = tmp_path / "shared"
    shutil.copytree(dataset, source)
    clean_env.setenv("PRETRAINFLOW_LOCAL_DIR", str(tmp_path / "node"))
    local = staging.stage_dataset(source, World())
    (source / "shards").rename(tmp_path / "moved-away")
    spec = {**VIT_RUN, "stage_data": True}
    argv = ["pretrain-vit", "--spec", json.dumps(spec), "--dataset", str(source), "--out", str(tmp_path / "out")]
    proc = subprocess.run(
        [sys.executable, "-m", "pretrainflow.cli", *argv, "--checkpoints", str(tmp_path / "ckpt")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert f"stage_data: {source} -> {local}" in proc.stderr and "0.00 GB copied" in proc.stderr
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["num_images"] == 12
    plain = VitRunSpec.from_dict(VIT_RUN).to_dict()
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert "stage_data" not in json.dumps(config) and config["config"] == plain
    unit = tmp_path / "ckpt" / checkpoint_unit("vit-stage")
    assert [p.name for p in unit.iterdir()] == [config_hash(plain)[:12]]
