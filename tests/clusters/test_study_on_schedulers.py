"""The project's own test study (config/test.yaml, the real Snakefile and rules) on the real Slurm and Grid Engine,
through profiles derived from profiles/slurm and profiles/tsubame. Its dataset branch (search_categories -> 2 x
render_shard -> dataset_manifest) runs as scheduler jobs; one render_shard job is cancelled while it runs (scancel /
qdel); Snakemake retries it and the finished dataset is byte-identical (same checksum) to an uninterrupted build.
With group-components both render_shard jobs are packed into one group job: one submission of 2 cores, each shard
still its own Snakemake job (own log and benchmark), on Slurm (through the plugin) and Grid Engine (our qsub path); that
test starts from the category search's result."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cluster_helpers import REPO, VENV_BIN, derive_profile, snakemake_env, wait_until

from pretrainflow.schedulers import sge as gridengine

TARGET = "results/datasets/fdb-test/manifest.json"
FAST = {"seconds-between-status-checks": 2, "max-status-checks-per-second": 5, "latency-wait": 10, "jobs": 4,
        "restart-times": 1, "keep-going": False}  # fmt: skip
SITES = {
    # the plugin checks 1 s after a submission, then 10 s more each time no job has finished (1, 12, 33, 64 s ...)
    "slurm": ({**FAST, "slurm-init-seconds-before-status-checks": 1}, {"mem_mb": 1000}),
    "tsubame": (
        {**FAST, "cluster-generic-status-cmd": "pretrainflow sched status --site tsubame --grace-seconds 20"},
        {"mem_mb": 1000, "site_group_flag": "none", "site_walltime_signal": "s_rt", "site_signal_margin_s": 60},
    ),
}


# One submission per group job, as each scheduler's front end reports it (Slurm plugin / cluster-generic).
GROUP_SUBMITTED = {
    "slurm": re.compile(r"has been submitted with SLURM jobid (\d+) \(log: \S*group_render_shards"),
    "tsubame": re.compile(r"Submitted group job \S+ with external jobid '(\d+)'"),
}


def _running_render_job(site: str) -> str | None:
    if site == "slurm":
        out = subprocess.run(["squeue", "-h", "-t", "RUNNING", "-o", "%i %k"], capture_output=True, text=True).stdout
        return next((line.split()[0] for line in out.splitlines() if "render_shard" in line), None)
    # job names are long (pf.render_shard.fdb-test.00000): read them from the XML, the plain listing truncates them
    root = ET.fromstring(subprocess.run(gridengine.qstat_argv(), capture_output=True, text=True).stdout)
    for job in root.iter("job_list"):
        if "render_shard" in (job.findtext("JB_name") or "") and job.findtext("state") == "r":
            return job.findtext("JB_job_number")
    return None


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    """The test dataset built in one process without a scheduler: built once for every test here."""
    from pretrainflow.study.load import load_study

    spec = load_study(REPO / "config" / "test.yaml").spec_json("datasets", "fdb-test")
    out = tmp_path_factory.mktemp("uninterrupted") / "reference"
    subprocess.run([str(VENV_BIN / "pretrainflow"), "datasets", "build", "--spec", spec, "--out", str(out)],
                   check=True, capture_output=True)  # fmt: skip
    return out


@pytest.fixture(scope="module")
def uninterrupted_checksum(uninterrupted) -> str:
    return json.loads((uninterrupted / "manifest.json").read_text())["dataset_checksum"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "site", [pytest.param("slurm", marks=pytest.mark.slurm), pytest.param("tsubame", marks=pytest.mark.sge)]
)
def test_test_study_dataset_survives_a_cancelled_job(site, request, tmp_path):
    request.getfixturevalue("slurm" if site == "slurm" else "sge")  # skip with the reason if not running
    overrides, resources = SITES[site]
    # one shard per submission here (profiles/tsubame packs them): the retry is of the cancelled shard alone
    profile = derive_profile(site, tmp_path / "profile", {**overrides, "group-components": ["render_shards=1"]},
                             resources)  # fmt: skip
    work = tmp_path / "work"
    argv = [str(VENV_BIN / "snakemake"), TARGET, "-s", str(REPO / "Snakefile"), "-d", str(work), "--profile",
            str(profile), "--workflow-profile", "none", "--configfile", str(REPO / "config" / "test.yaml")]  # fmt: skip
    with subprocess.Popen(argv, env=snakemake_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          cwd=tmp_path) as proc:  # fmt: skip
        job_id = wait_until(lambda: _running_render_job(site), 240, what=f"a render_shard job running on {site}")
        cancel = ["scancel", job_id] if site == "slurm" else ["qdel", job_id]
        subprocess.run(cancel, check=True, capture_output=True)
        output, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, output[-4000:]
    # two shards + one retry of the cancelled one, each a group job of one render_shard (the rule's `group:`)
    assert len(GROUP_SUBMITTED[site].findall(output)) == 3, output[-4000:]
    assert "Error in group render_shards" in output  # the cancelled attempt was seen as failed
    verify = subprocess.run([str(VENV_BIN / "pretrainflow"), "datasets", "verify", str(work / "results/datasets/fdb-test")],
                            capture_output=True, text=True)  # fmt: skip
    assert verify.returncode == 0, verify.stdout + verify.stderr
    manifest = json.loads((work / TARGET).read_text())
    # nothing lost, nothing different
    assert manifest["dataset_checksum"] == request.getfixturevalue("uninterrupted_checksum")


@pytest.mark.slow
@pytest.mark.parametrize(
    "site", [pytest.param("slurm", marks=pytest.mark.slurm), pytest.param("tsubame", marks=pytest.mark.sge)]
)
def test_render_shards_packed_into_one_group_job(site, request, tmp_path):
    # group-components render_shards=2 (the profiles ship 32 on ABCI, 160 on TSUBAME): both shards of the test dataset
    # in one scheduler job of 2 cores, each shard still its own Snakemake job with its own log and benchmark
    request.getfixturevalue("slurm" if site == "slurm" else "sge")
    overrides, resources = SITES[site]
    profile = derive_profile(site, tmp_path / "profile", {**overrides, "group-components": ["render_shards=2"]},
                             resources)  # fmt: skip
    work = tmp_path / "work"
    # The category search as a scheduler job is the test above's: here the study starts from its result (the
    # uninterrupted build's), so that the scheduler jobs are the packed group and the manifest.
    categories = work / "results/datasets/fdb-test/categories.parquet"
    categories.parent.mkdir(parents=True)
    shutil.copy2(request.getfixturevalue("uninterrupted") / "categories.parquet", categories)
    argv = [str(VENV_BIN / "snakemake"), TARGET, "-s", str(REPO / "Snakefile"), "-d", str(work), "--profile",
            str(profile), "--workflow-profile", "none", "--configfile", str(REPO / "config" / "test.yaml")]  # fmt: skip
    result = subprocess.run(argv, env=snakemake_env(), capture_output=True, text=True, cwd=tmp_path, timeout=600)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert output.count("Group job render_shards") == 1, output[-4000:]
    assert len([line for line in output.splitlines() if line.strip() == "rule render_shard:"]) == 2
    (job_id,) = GROUP_SUBMITTED[site].findall(output)  # exactly one submission for the two shards
    if site == "slurm":
        record = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True).stdout
        # one task holding both jobs' cores and memory (tasks 0 in profiles/slurm: the sum is not 2 tasks on 2 nodes)
        assert "NumNodes=1 " in record and "NumCPUs=2 " in record and "NumTasks=1 " in record, record
        assert "JobState=COMPLETED" in record, record
    else:
        acct = subprocess.run(["qacct", "-j", job_id], capture_output=True, text=True).stdout
        assert gridengine.parse_qacct(acct) == "success", acct
        category = next(line for line in acct.splitlines() if line.startswith("category"))
        assert "cpu_4=1" in category, category  # 2 x 1 core, 2 x 2,000 MB: the smallest CPU type, not a GPU node
    for shard in ("00000", "00001"):  # each shard its own Snakemake job inside the group
        assert (work / f"results/logs/render_shard/fdb-test-{shard}.log").is_file()
        assert (work / f"results/benchmarks/jobs/render_shard/fdb-test/{shard}.tsv").is_file()
    manifest = json.loads((work / TARGET).read_text())
    assert manifest["dataset_checksum"] == request.getfixturevalue("uninterrupted_checksum")
