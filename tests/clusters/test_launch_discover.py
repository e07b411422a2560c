"""In-job discovery (Slurm / PBS / Grid Engine / local), deterministic rendezvous, rank layout across nodes, and the
mpirun / srun command lines. Two "nodes" on this machine really rendezvous over gloo; real Slurm and Grid Engine jobs
report their own layout."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cluster_helpers import wait_until

from pretrainflow.launch import discover_job, master_port_for
from pretrainflow.launch.discover import JobLayout, expand_nodelist
from pretrainflow.launch.multinode import mpirun_argv, node_worlds, srun_argv, write_hostfile

HERE = Path(__file__).parent


def test_expand_slurm_nodelist():
    assert expand_nodelist("gpu[01-03,07]") == ["gpu01", "gpu02", "gpu03", "gpu07"]
    assert expand_nodelist("a1,b[8-10]") == ["a1", "b8", "b9", "b10"]
    assert expand_nodelist("single") == ["single"]


def test_discover_each_scheduler(tmp_path):
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("hnode001\n" * 8 + "hnode002\n" * 8)  # select=2:mpiprocs=8
    pbs = discover_job({"PBS_JOBID": "4321.pbs1", "PBS_NODEFILE": str(nodefile)}, hostname="hnode002.abci.local")
    assert (pbs.scheduler, pbs.hosts, pbs.slots, pbs.node_rank) == ("pbs", ("hnode001", "hnode002"), (8, 8), 1)
    assert (pbs.master_addr, pbs.master_port) == ("hnode001", 10000 + 4321)
    pe = tmp_path / "pe_hostfile"
    pe.write_text("r1n1 192 node.q@r1n1 UNDEFINED\nr1n2 192 node.q@r1n2 UNDEFINED\n")
    sge = discover_job({"JOB_ID": "777777", "PE_HOSTFILE": str(pe)}, hostname="r1n1")
    assert (sge.scheduler, sge.hosts, sge.slots, sge.node_rank) == ("sge", ("r1n1", "r1n2"), (192, 192), 0)
    assert sge.master_port == 10000 + 777777 % 50000
    slurm = discover_job({"SLURM_JOB_ID": "99", "SLURM_JOB_NODELIST": "n[1-4]", "SLURM_NODEID": "2"})
    assert (slurm.scheduler, slurm.num_nodes, slurm.node_rank, slurm.master_addr) == ("slurm", 4, 2, "n1")
    local = discover_job({}, hostname="laptop")
    assert (local.scheduler, local.hosts, local.master_port) == ("local", ("laptop",), 29500)
    assert master_port_for("49999") != master_port_for("50001") and master_port_for("50000") == 10000


def test_ranks_across_nodes_and_launch_lines(tmp_path):
    layout = JobLayout(scheduler="pbs", job_id="12.pbs1", hosts=("a", "b", "c"), node_rank=1)
    worlds = node_worlds(layout, 8)
    assert [w.rank for w in worlds] == list(range(8, 16)) and {w.world_size for w in worlds} == {24}
    assert {(w.master_addr, w.master_port) for w in worlds} == {("a", 10012)}
    hostfile = write_hostfile(layout, 8, tmp_path / "hosts")
    assert hostfile.read_text() == "a slots=8\nb slots=8\nc slots=8\n"
    argv = mpirun_argv(layout, 8, hostfile, "pretrainflow.train.vit.pretrain:worker", ["--spec", '{"a": 1}; rm -rf ~'])
    assert argv[:5] == ["mpirun", "-np", "24", "--npernode", "8"]
    assert argv[-1] == '{"a": 1}; rm -rf ~'  # one argv item, no shell
    srun = srun_argv(layout, 4, "m:f", [])
    assert srun[:7] == ["srun", "--overlap", "--nodes", "3", "--ntasks-per-node", "1", "--kill-on-bad-exit=1"]


@pytest.mark.slow
def test_two_nodes_rendezvous_with_global_ranks(tmp_path):
    # two node launchers on this machine stand in for two nodes of a PBS job: 2 nodes x 1 process = world of 2
    nodefile = tmp_path / "nodefile"
    nodefile.write_text("127.0.0.1\nlocalhost\n")
    env = {
        **os.environ,
        "PBS_JOBID": str(40000 + os.getpid() % 9000),
        "PBS_NODEFILE": str(nodefile),
        "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path]),
        "OMP_NUM_THREADS": "1",
    }
    for var in ("RANK", "WORLD_SIZE", "SLURM_JOB_ID", "JOB_ID", "OMPI_COMM_WORLD_RANK", "SUBMITIT_EXECUTOR"):
        env.pop(var, None)
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pretrainflow.launch.node",
                "--procs-per-node",
                "1",
                "launch_workers:allreduce_world",
                str(tmp_path),
            ],
            env={**env, "PRETRAINFLOW_NODE_RANK": str(n)},
        )
        for n in (0, 1)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    seen = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert [s["rank"] for s in seen] == [0, 1] and {s["size"] for s in seen} == {2}
    assert {s["sum"] for s in seen} == {1.0}  # 0 + 1 all-reduced across the two "nodes"
    assert {s["port"] for s in seen} == {master_port_for(env["PBS_JOBID"])} and {s["addr"] for s in seen} == {
        "127.0.0.1"
    }


@pytest.mark.slurm
def test_layout_inside_a_real_slurm_job(slurm, tmp_path):
    out = tmp_path / "layout.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), *sys.path])}
    job_id = (
        subprocess.run(
            [
                "sbatch",
                "--parsable",
                "--nodes",
                "1",
                "--mem",
                "200",
                "--time",
                "2",
                "--output",
                str(out),
                "--wrap",
                f"{sys.executable} {HERE / 'launch_workers.py'}",
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
            cwd=tmp_path,
        )
        .stdout.strip()
        .split(";")[0]
    )
    layout = wait_until(
        lambda: out.exists() and out.read_text().strip() and json.loads(out.read_text()),
        240,  # a busy single-node Slurm may hold the job behind earlier test jobs
        what="the Slurm job's layout",
    )
    assert layout["scheduler"] == "slurm" and layout["job_id"] == job_id
    assert layout["port"] == 10000 + int(job_id) % 50000 and layout["node_rank"] == 0 and len(layout["hosts"]) == 1


@pytest.mark.sge
def test_layout_inside_a_real_gridengine_job(sge, tmp_path):
    out = tmp_path / "layout.json"
    script = tmp_path / "job.sh"
    script.write_text(
        f"#!/bin/bash\nexport PYTHONPATH={os.pathsep.join([str(HERE), *sys.path])}\n"
        f"{sys.executable} {HERE / 'launch_workers.py'}\n"
    )
    job_id = subprocess.run(
        [
            "qsub",
            "-terse",
            "-pe",
            "smp",
            "2",
            "-l",
            "cpu_4=1",
            "-l",
            "h_rt=00:02:00",
            "-j",
            "y",
            "-o",
            str(out),
            "-S",
            "/bin/bash",
            str(script),
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    layout = wait_until(
        lambda: out.exists() and out.read_text().strip() and json.loads(out.read_text()),
        240,  # likewise for Grid Engine
        what="the Grid Engine job's layout",
    )
    assert layout["scheduler"] == "sge" and layout["job_id"] == job_id
    assert layout["slots"] == [2] and len(layout["hosts"]) == 1  # from $PE_HOSTFILE: "<host> 2 all.q@<host> ..."
    assert layout["port"] == 10000 + int(job_id) % 50000


def test_submitit_local_jobs_and_scheduler_variables_first(monkeypatch):
    # inside submitit's local executor: its JobEnvironment answers
    monkeypatch.setenv("SUBMITIT_EXECUTOR", "local")
    monkeypatch.setenv("SUBMITIT_LOCAL_JOB_ID", "321")
    for var in ("SUBMITIT_LOCAL_NTASKS", "SUBMITIT_LOCAL_GLOBAL_RANK"):
        monkeypatch.delenv(var, raising=False)
    layout = discover_job(dict(os.environ))
    assert (layout.scheduler, layout.job_id, layout.master_port) == ("submitit", "321", 10321)
    # a submitit job run by our Grid Engine executor: JOB_ID decides, even where submitit has no plugin for it
    layout = discover_job({"SUBMITIT_EXECUTOR": "sge", "JOB_ID": "77"}, hostname="vm")
    assert (layout.scheduler, layout.job_id) == ("sge", "77")
