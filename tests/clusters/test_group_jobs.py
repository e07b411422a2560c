"""Packed small jobs (issue 12): shard rendering and tokenising as Snakemake group jobs.

- a dry-run listing with group jobs plans one submission per group (`sched plan`), with the members' summed cores
  and memory and the longest runtime; jobs outside the group stay their own submissions;
- a group of CPU jobs lands on a CPU type of the site or is an error naming the group and the profile key, never a
  GPU node (the same rule in `sched plan` and `sched submit`);
- the shipped caps fit: 32 FractalDB-1k render jobs fill one ABCI rt_HC, 160 one TSUBAME cpu_160.
The group jobs running on the real Slurm and Grid Engine: test_study_on_schedulers.py.
"""

from __future__ import annotations

import json

import pytest
import yaml
from cluster_helpers import REPO

from pretrainflow.errors import ConfigError
from pretrainflow.schedulers.commands import prepare_submit
from pretrainflow.schedulers.plan import parse_dry_run, site_plan
from pretrainflow.schedulers.resources import ResourceRequest, place


def _member(shard: int, indent: str = "    ") -> str:
    return (
        f"{indent}[Tue Dec  1 20:50:45 2026]\n"
        f"{indent}rule render_shard:\n"
        f"{indent}    output: results/datasets/fdb1k/shards/shard-{shard:05d}.tar\n"
        f"{indent}    wildcards: dataset=fdb1k, shard={shard:05d}\n"
        f"{indent}    resources: tmpdir=/tmp, mem_mb=2374, runtime={10 + shard}, cpus_per_task=1\n"
    )


LISTING = (
    "[Tue Dec  1 20:50:45 2026] Group job render_shards (jobs in lexicogr. order):\n\n"
    + "".join(_member(k) for k in range(3))
    + "[Tue Dec  1 20:50:45 2026] Group job render_shards (jobs in lexicogr. order):\n\n"
    + _member(3)
    + "[Tue Dec  1 20:50:45 2026]\n"
    + _member(4, indent="").replace("rule render_shard", "rule dataset_manifest")
)


def test_dry_run_groups_plan_as_one_submission_each():
    jobs = parse_dry_run(LISTING)
    assert [(job.rule, job.group, job.group_index) for job in jobs] == [
        ("render_shard", "render_shards", 0), ("render_shard", "render_shards", 0),
        ("render_shard", "render_shards", 0), ("render_shard", "render_shards", 1), ("dataset_manifest", "", -1),
    ]  # fmt: skip
    plan = site_plan("abci", jobs)
    placed = [(job.rule, job.wildcards, p.resource_type, p.cpus_per_node, p.mem_mb_per_node, p.runtime_min)
              for job, p in plan.placed]  # fmt: skip
    assert placed == [
        ("dataset_manifest", "dataset=fdb1k, shard=00004", "rt_HC", 1, 2374, 14),
        ("render_shards", "3 jobs: render_shard", "rt_HC", 3, 3 * 2374, 12),  # summed; the longest runtime
        ("render_shards", "1 jobs: render_shard", "rt_HC", 1, 2374, 13),
    ]
    assert plan.by_type()["rt_HC"].submissions == 3


def test_a_cpu_group_never_becomes_a_gpu_node_request():
    big = ResourceRequest(cpus_per_task=64, mem_mb=64 * 2374)
    assert place("abci", big).resource_type == "rt_HF"  # a single 64-core job: a whole node, as before
    with pytest.raises(ConfigError, match=r"largest CPU type rt_HC \(32 cores.*lower its group-components in "
                                          r"profiles/abci \(a group never takes a GPU node\)"):  # fmt: skip
        place("abci", big, packed=True)
    assert place("tsubame", big, packed=True).resource_type == "cpu_80"
    with pytest.raises(ConfigError, match="largest CPU type cpu_160"):
        place("tsubame", ResourceRequest(cpus_per_task=161), packed=True)
    # a group with GPUs is placed like any GPU job
    assert place("abci", ResourceRequest(gpus_per_node=1, cpus_per_task=4), packed=True).resource_type == "rt_HG"


def test_submit_refuses_an_oversized_group_naming_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PRETRAINFLOW_GROUP", "gaa50000")
    props = {"type": "group", "groupid": "render_shards", "threads": 40,
             "resources": {"cpus_per_task": 40, "mem_mb": 40 * 2374, "runtime": 10}}  # fmt: skip
    script = tmp_path / "snakejob.render_shards.sh"
    script.write_text(f"#!/bin/sh\n# properties = {json.dumps(props)}\ntrue\n")
    with pytest.raises(ConfigError, match=r"^render_shards: resources: a packed group of CPU jobs needs 40 cores"):
        prepare_submit("abci", script, [], tmp_path)
    assert not (tmp_path / ".snakemake").exists()  # nothing written, nothing submitted
    props["resources"].update(cpus_per_task=32, mem_mb=32 * 2374)
    script.write_text(f"#!/bin/sh\n# properties = {json.dumps(props)}\ntrue\n")
    prepared = prepare_submit("abci", script, [], tmp_path)
    assert prepared.job.placement.resource_type == "rt_HC" and prepared.job.name == "pf.render_shards"
    assert "rt_HC" in prepared.argv


@pytest.mark.parametrize("site, cpu_type", [("abci", "rt_HC"), ("tsubame", "cpu_160")])
def test_shipped_caps_fill_one_cpu_unit(site, cpu_type):
    from pretrainflow.datasets.build import job_resources

    config = yaml.safe_load((REPO / "profiles" / site / "config.yaml").read_text())
    caps = dict(item.split("=") for item in config["group-components"])
    study = yaml.safe_load((REPO / "config" / "studies" / "fractaldb1k-vit-tiny.yaml").read_text())
    render = job_resources(study["datasets"]["fractaldb-1k"], "render")
    n = int(caps["render_shards"])
    assert place(site, ResourceRequest(cpus_per_task=n, mem_mb=n * render["mem_mb"]), packed=True).resource_type == (
        cpu_type
    )
    # build_indexed_shard: 2 cores, 4,000 MB each (workflow/rules/corpora.smk)
    n = int(caps["tokenise_shards"])
    assert place(site, ResourceRequest(cpus_per_task=2 * n, mem_mb=4000 * n), packed=True).resource_type == cpu_type
