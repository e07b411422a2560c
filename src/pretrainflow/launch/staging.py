"""Stage a run's dataset on node-local storage inside the job: local rank 0 of each node copies, every rank waits.

    local_dir = stage_dataset(Path("results/datasets/fdb1k"), world_from_env())  # collective: every rank calls it
    dataset = open_dataset(local_dir)                                            # reads the node's own copy

Why: without it every rank reads its images from the shared file system (Lustre / GPFS) for the whole run, in small
random reads of one image each, and so does every rank of every requeue. A ViT run opts in with ``stage_data: true``
(train/vit/spec.py); it changes where the bytes come from, never which bytes, so it stays out of the config hash.

Where, first match wins (``node_local_root``):
    PRETRAINFLOW_LOCAL_DIR    an explicit directory: the site profile's ``site_env`` or the user's environment
    PBS_LOCALDIR              ABCI 3.0: the job's directory on the node's local disk, removed when the job ends
    SLURM_TMPDIR              Slurm sites that give each job a local directory (a site convention, not Slurm's own)
    TMPDIR of a Grid Engine job  TSUBAME 4.0: the job's local scratch directory on the node
Anything else (a laptop, a Slurm site without SLURM_TMPDIR) is an error that names these variables.

Layout: ``{root}/pretrainflow-data/{dataset}-{dataset checksum[:16]}/`` holding manifest.json and the manifest's shards
and offset indexes under their relative names; the checksum in the name keeps two versions of a dataset apart.

Each file is reused when it is already there with the manifest's sha256 (a requeued job on a node whose directory
survived), else copied under a temporary name beside its place, hashed from the local copy (what training will read)
and renamed into place only when the hash is the manifest's (io.atomic_path): a crash or a failed check leaves no
file under a final name. manifest.json is copied last. Then the ranks meet: an all-reduce of one failure flag per rank
over a gloo group, which is the barrier and also tells every rank whether some node failed, so that no rank waits
forever for a node whose copy failed; the failing rank raises its own error, naming the shard.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

from pretrainflow.datasets.manifest import read_manifest
from pretrainflow.errors import PretrainflowError
from pretrainflow.io import atomic_path, sha256_file
from pretrainflow.launch.world import World

# Copies in flight on one node: enough to keep a parallel file system and a local NVMe busy (each copy is one
# sendfile, each hash reads 1 MiB chunks with the GIL released), few enough not to flood the metadata servers.
COPY_THREADS = 8
# The staging barrier waits for the slowest node's copy, which can outlast the 30 min default of DeepSpeed's group:
# 1 TB at 200 MB/s is 83 minutes. A gloo group of its own carries this longer limit.
STAGING_TIMEOUT = timedelta(hours=3)
SUBDIR = "pretrainflow-data"
ROOT_VARIABLES = ("PRETRAINFLOW_LOCAL_DIR", "PBS_LOCALDIR", "SLURM_TMPDIR")


def node_local_root(env: Mapping[str, str] | None = None) -> Path:
    """The node-local directory of this job (module docstring: the order of the sources).

    >>> str(node_local_root({"PBS_LOCALDIR": "/local/1234.pbs1", "TMPDIR": "/tmp"}))
    '/local/1234.pbs1'
    >>> str(node_local_root({"JOB_ID": "77", "SGE_ROOT": "/opt/sge", "TMPDIR": "/scr/77.1.node_f.q"}))
    '/scr/77.1.node_f.q'
    """
    env = os.environ if env is None else env
    for name in ROOT_VARIABLES:
        if env.get(name):
            return Path(env[name])
    grid_engine = "JOB_ID" in env and ("SGE_ROOT" in env or "PE_HOSTFILE" in env)
    if grid_engine and env.get("TMPDIR"):
        return Path(env["TMPDIR"])
    raise PretrainflowError(
        "stage_data: no node-local directory here: set PRETRAINFLOW_LOCAL_DIR (e.g. in the site profile's site_env), "
        "or run inside a job that provides one (ABCI $PBS_LOCALDIR, Slurm $SLURM_TMPDIR, TSUBAME's $TMPDIR); "
        "or drop stage_data from the run"
    )


def staged_dir(dataset_dir: Path, manifest: Mapping, env: Mapping[str, str] | None = None) -> Path:
    """Where this node keeps its copy of the dataset in ``dataset_dir`` (same on every rank of a node)."""
    name = manifest.get("spec", {}).get("name") or Path(dataset_dir).name
    return node_local_root(env) / SUBDIR / f"{name}-{manifest['dataset_checksum'][:16]}"


def staged_files(manifest: Mapping) -> list[tuple[str, str, int | None]]:
    """(relative name, sha256, bytes or None) of every shard and offset index the manifest lists."""
    files = []
    for entry in manifest["shards"]:
        files.append((entry["name"], entry["sha256"], entry["bytes"]))
        if entry.get("index"):
            files.append((entry["index"]["name"], entry["index"]["sha256"], None))
    return files


def stage_dataset(dataset_dir: str | os.PathLike, world: World, env: Mapping[str, str] | None = None) -> Path:
    """Copy the dataset to node-local storage (local rank 0 of each node), check it, meet every rank; return the local
    directory to read. Collective over the initialised process group (if any); raises on every rank when a node failed.
    """
    import torch.distributed as dist

    source = Path(dataset_dir)
    distributed = dist.is_available() and dist.is_initialized()
    if world.world_size > 1 and not distributed:
        raise PretrainflowError(
            "stage_data: the ranks of a distributed run stage inside its process group; none is set up"
        )
    manifest = read_manifest(source)
    target = staged_dir(source, manifest, env)
    failure: BaseException | None = None
    if world.local_rank == 0:
        try:
            copy_dataset(source, target, manifest)
        except Exception as err:  # re-raised below, after the other ranks have heard of it
            failure = err
    failed = _failed_ranks(failure is not None, world) if distributed else []
    if failure is not None:
        raise failure
    if failed:
        raise PretrainflowError(
            f"stage_data: staging {source} to node-local storage failed on rank(s) {failed} (local rank 0 of their "
            "node); their error names the file"
        )
    return target


def _failed_ranks(failed: bool, world: World) -> list[int]:
    """The barrier: every rank contributes its failure flag to a sum over a gloo group; returns the failed ranks."""
    import torch
    import torch.distributed as dist

    group = dist.new_group(backend="gloo", timeout=STAGING_TIMEOUT)
    flags = torch.zeros(world.world_size, dtype=torch.int32)
    flags[world.rank] = int(failed)
    dist.all_reduce(flags, op=dist.ReduceOp.SUM, group=group)
    dist.destroy_process_group(group)
    return [rank for rank, flag in enumerate(flags.tolist()) if flag]


def copy_dataset(source: Path, target: Path, manifest: Mapping) -> None:
    """Copy and check every file of ``manifest`` from ``source`` to ``target``, then the manifest itself."""
    started = time.perf_counter()
    files = staged_files(manifest)
    for name, _, _ in files:
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise PretrainflowError(f"{source}/manifest.json: file name {name!r} leaves the dataset directory")
    target.mkdir(parents=True, exist_ok=True)
    missing = [(n, s, b) for n, s, b in files if not (target / n).is_file()]
    need = sum(b if b is not None else (source / n).stat().st_size for n, _, b in missing if (source / n).is_file())
    free = shutil.disk_usage(target).free
    if need > free:
        raise PretrainflowError(
            f"stage_data: {target} has {free / 1e9:.1f} GB free, the dataset {source} needs {need / 1e9:.1f} GB more; "
            "point PRETRAINFLOW_LOCAL_DIR at a larger local disk or drop stage_data"
        )
    with ThreadPoolExecutor(max_workers=COPY_THREADS) as pool:
        copied = list(pool.map(lambda item: _stage_file(source, target, *item), files))
    with atomic_path(target / "manifest.json") as tmp:  # last: a local directory with a manifest is complete
        shutil.copyfile(source / "manifest.json", tmp)
    seconds = time.perf_counter() - started
    moved = sum(copied)
    print(
        f"stage_data: {source} -> {target} on {socket.gethostname()}: {len(files)} files checked, "
        f"{moved / 1e9:.2f} GB copied in {seconds:.1f} s ({moved / 1e6 / max(seconds, 1e-9):.0f} MB/s)",
        file=sys.stderr,
        flush=True,
    )


def _stage_file(source: Path, target: Path, name: str, sha256: str, size: int | None) -> int:
    """One file: keep a checked local copy, or copy + check + rename; returns the bytes copied."""
    dest = target / name
    if dest.is_file() and (size is None or dest.stat().st_size == size) and sha256_file(dest) == sha256:
        return 0
    src = source / name
    if not src.is_file():
        raise PretrainflowError(f"{src}: listed in the manifest but missing")
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        got = sha256_file(tmp)
        if got != sha256:
            raise PretrainflowError(
                f"{src}: its node-local copy on {socket.gethostname()} has sha256 {got[:16]}, the manifest says "
                f"{sha256[:16]} (the file on the shared file system or the copy is corrupt; `pretrainflow datasets "
                f"verify {source}` checks the source)"
            )
    return dest.stat().st_size
