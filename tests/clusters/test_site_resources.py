"""The one resource mapping: abstract rule resources -> ABCI / TSUBAME / Slurm resource types, and its errors."""

from __future__ import annotations

import pytest

from pretrainflow.errors import ConfigError
from pretrainflow.schedulers.resources import ResourceRequest, place
from pretrainflow.schedulers.settings import settings_from


@pytest.mark.parametrize(
    ("request_kw", "abci", "tsubame"),
    [
        ({"gpus_per_node": 8}, "rt_HF", None),  # 8 GPUs: a whole ABCI node; more than a TSUBAME node has
        ({"gpus_per_node": 4}, "rt_HF", "node_f"),
        ({"gpus_per_node": 2}, "rt_HF", "node_h"),
        ({"gpus_per_node": 1}, "rt_HG", "gpu_1"),
        ({"gpus_per_node": 1, "cpus_per_task": 24}, "rt_HF", "node_q"),  # rt_HG has 16 cores, gpu_1 8
        ({"gpus_per_node": 1, "mem_mb": 170_000}, "rt_HF", "node_q"),  # rt_HG has 160 GB (163,840 MB), node_q 192 GB
        ({"cpus_per_task": 1}, "rt_HC", "cpu_4"),  # CPU-only shard rendering
        ({"cpus_per_task": 32}, "rt_HC", "cpu_40"),
        ({"cpus_per_task": 64}, "rt_HF", "cpu_80"),  # more than rt_HC's 32 cores: a whole node
        ({"gpus_per_node": 8, "nodes": 4}, "rt_HF", None),
        ({"gpus_per_node": 4, "nodes": 3}, "rt_HF", "node_f"),
        ({"nodes": 2}, "rt_HF", "node_f"),  # multi-node CPU job: whole nodes
    ],
)
def test_site_resource_types(request_kw, abci, tsubame):
    req = ResourceRequest(**request_kw)
    assert place("abci", req).resource_type == abci
    assert place("abci", req).count == req.nodes
    if tsubame is None:
        with pytest.raises(ConfigError, match="tsubame cannot give one node"):
            place("tsubame", req)
    else:
        assert place("tsubame", req).resource_type == tsubame
    assert place("slurm", req).resource_type == ("gpu" if req.gpus_per_node else "cpu")


def test_unsatisfiable_requests_are_clear_errors():
    with pytest.raises(ConfigError, match=r"abci cannot give one node 9 GPUs.*at most 8 gpus per node"):
        place("abci", ResourceRequest(gpus_per_node=9))
    with pytest.raises(ConfigError, match="abci cannot give one node"):
        place("abci", ResourceRequest(cpus_per_task=193))
    with pytest.raises(ConfigError, match="at most 720 minutes"):
        place("abci", ResourceRequest(gpus_per_node=8, runtime_min=721))
    assert place("abci", ResourceRequest(gpus_per_node=8, runtime_min=7 * 24 * 60), max_runtime_min=7 * 24 * 60)
    with pytest.raises(ConfigError, match="site: expected one of abci, tsubame, slurm"):
        place("fugaku", ResourceRequest())
    with pytest.raises(ConfigError, match=r"resources.gpus_per_node: expected an integer >= 0"):
        ResourceRequest(gpus_per_node=-1)
    with pytest.raises(ConfigError, match=r"rule pretrain_vit: resources.gpus: expected an integer, got 'eight'"):
        ResourceRequest.from_resources({"gpus": "eight"}, "pretrain_vit")


def test_snakemake_resource_names():
    # `gpu` is the Slurm plugin's name and an alias; threads fill cpus_per_task when it is not given; without `nodes`
    # the GPUs are a total whose node shape the site decides (2 fit one node everywhere)
    req = ResourceRequest.from_resources({"gpu": 2, "runtime": 30, "mem_mb": 4000, "threads": 4})
    assert (req.total_gpus, req.runtime_min, req.mem_mb, req.cpus_per_task) == (2, 30, 4000, 4)
    assert [(p.resource_type, p.count, p.gpus_per_node) for p in (place(s, req) for s in ("abci", "tsubame"))] == [
        ("rt_HF", 1, 2), ("node_h", 1, 2)
    ]  # fmt: skip
    # `gpus` is the job's total, as the rules declare it (gpus_per_node * nodes): 32 over 4 nodes -> 8 per node
    multi = ResourceRequest.from_resources({"gpus": 32, "nodes": 4})
    assert (multi.gpus_per_node, place("abci", multi).resource_type, place("abci", multi).count) == (8, "rt_HF", 4)
    with pytest.raises(ConfigError, match="rule r: resources.gpus: 12 GPUs do not split evenly over 8 nodes"):
        ResourceRequest.from_resources({"gpus": 12, "nodes": 8}, "r")
    assert place("abci", req).walltime == "00:30:00"
    assert place("tsubame", ResourceRequest(runtime_min=1439)).walltime == "23:59:00"


def test_missing_group_is_an_error_before_submission(tmp_path, monkeypatch):
    from pretrainflow.schedulers.commands import prepare_submit

    monkeypatch.delenv("PRETRAINFLOW_GROUP", raising=False)
    script = tmp_path / "snakejob.sh"
    script.write_text('#!/bin/sh\n# properties = {"rule": "r", "resources": {"gpus": 1}, "wildcards": {}}\ntrue\n')
    with pytest.raises(ConfigError, match="site_group: abci needs your group.*PRETRAINFLOW_GROUP"):
        prepare_submit("abci", script, [], tmp_path)
    assert not (tmp_path / ".snakemake").exists()  # nothing written, nothing submitted
    monkeypatch.setenv("PRETRAINFLOW_GROUP", "gaa50000")
    assert "-P" in prepare_submit("abci", script, [], tmp_path).argv
    # stock Grid Engine: the group flag is switched off in the profile, so no group is needed
    assert settings_from({"site_group_flag": "none"}, env={}).group_flag is None


# A portable request: the total of GPUs, shaped into each site's whole nodes (cores per GPU follow the shape).
@pytest.mark.parametrize(
    ("site", "node_gpus", "total", "expected"),
    [
        ("abci", None, 32, ("rt_HF", 4, 8, 64)),  # 4 x rt_HF, 8 H200 each
        ("tsubame", None, 32, ("node_f", 8, 4, 32)),  # 8 x node_f, 4 H100 each
        ("slurm", 8, 32, ("gpu", 4, 8, 64)),  # the profile's site_gpus_per_node
        ("slurm", None, 32, ("gpu", 1, 32, 256)),  # no node shape known: one node (as --gres gpu:32 would ask)
        ("abci", None, 8, ("rt_HF", 1, 8, 64)),
        ("tsubame", None, 8, ("node_f", 2, 4, 32)),
        ("abci", None, 1, ("rt_HG", 1, 1, 8)),  # one GPU: the shared types
        ("tsubame", None, 1, ("gpu_1", 1, 1, 8)),
        ("tsubame", None, 2, ("node_h", 1, 2, 16)),
    ],
)
def test_portable_request_is_shaped_by_the_site(site, node_gpus, total, expected):
    req = ResourceRequest.from_resources({"gpus": total, "cpus_per_gpu": 8, "cpus_per_task": 8, "mem_mb": 16_000})
    placed = place(site, req, node_gpus=node_gpus)
    assert (placed.resource_type, placed.count, placed.gpus_per_node, placed.cpus_per_node) == expected


def test_portable_request_that_fills_no_whole_node_is_an_error():
    with pytest.raises(ConfigError, match=r"12 GPUs do not fill whole abci nodes \(rt_HF: 8 GPUs each\); ask for a "
                                          r"multiple of 8, or give nodes and gpus_per_node"):  # fmt: skip
        place("abci", ResourceRequest(total_gpus=12))
    assert place("tsubame", ResourceRequest(total_gpus=12)).count == 3  # 3 x node_f holds 12 there
    # a node shape given explicitly is kept: 8 GPUs per node do not fit a TSUBAME node
    with pytest.raises(ConfigError, match="tsubame cannot give one node 8 GPUs.*or give the total as gpus"):
        place("tsubame", ResourceRequest.from_resources({"gpus": 32, "nodes": 4}))
    with pytest.raises(ConfigError, match="a total of GPUs leaves nodes and gpus_per_node to the site"):
        ResourceRequest(total_gpus=8, nodes=2)
