"""Golden tests: the exact qsub / sbatch argv and wrapper job scripts we generate for ABCI (PBS Pro, which cannot run
here), TSUBAME and stock Grid Engine, and Slurm; and the status parsers on scheduler documents in the documented formats
(PBS `qstat -x -f -F json`; Grid Engine `qstat -xml` and `qacct -j` captured from the real Grid Engine of the tests).

A deliberate change of the generated text: `PRETRAINFLOW_UPDATE_GOLDEN=1 pytest tests/golden` rewrites the files; review
the diff before committing.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest

from pretrainflow.schedulers import jobscript, pbs, sge, slurm
from pretrainflow.schedulers.commands import SITE_SCHEDULER
from pretrainflow.schedulers.job import SubmitJob
from pretrainflow.schedulers.resources import ResourceRequest, place
from pretrainflow.schedulers.settings import SiteSettings

DATA = Path(__file__).parent / "data"
ABCI_MODULES = ("cuda/12.6/12.6.1", "cudnn/9.5/9.5.1", "nccl/2.23/2.23.4-1", "hpcx/2.20")
WORK = Path("/home/user/study")

# name -> (site, request, settings, dependencies)
CASES = {
    "abci_8gpu": (
        "abci",
        ResourceRequest(gpus_per_node=8, cpus_per_task=96, mem_mb=500_000, runtime_min=720),
        SiteSettings(group="gaa50000", modules=ABCI_MODULES, signal_margin_s=600),
        ("1234.pbs1",),
    ),
    "abci_4nodes": (
        "abci",
        ResourceRequest(gpus_per_node=8, nodes=4, runtime_min=600),
        SiteSettings(group="gaa50000", modules=ABCI_MODULES),
        ("1234.pbs1", "1235.pbs1"),
    ),
    "abci_1gpu": (
        "abci",
        ResourceRequest(gpus_per_node=1, cpus_per_task=8, mem_mb=64_000, runtime_min=90),
        SiteSettings(group="gaa50000"),
        (),
    ),
    "abci_cpu_shard": (
        "abci",
        ResourceRequest(cpus_per_task=32, mem_mb=64_000, runtime_min=30),
        SiteSettings(group="gaa50000", walltime_signal="none"),
        (),
    ),
    "abci_reservation": (
        "abci",
        ResourceRequest(gpus_per_node=8, runtime_min=60),
        SiteSettings(group="gaa50000", queue="R1234", extra=("-m", "n")),
        (),
    ),
    "tsubame_2nodes": (
        "tsubame",
        ResourceRequest(gpus_per_node=4, nodes=2, runtime_min=1440),
        SiteSettings(group="tga-mylab", walltime_signal="s_rt", signal_margin_s=600),
        ("987",),
    ),
    "tsubame_cpu": (
        "tsubame",
        ResourceRequest(cpus_per_task=12, mem_mb=16_000, runtime_min=20),
        SiteSettings(group="tga-mylab"),
        (),
    ),
    "sge_stock_gpu_1": (
        "tsubame",
        ResourceRequest(gpus_per_node=1, runtime_min=5),
        SiteSettings(group_flag=None, walltime_signal="s_rt", signal_margin_s=60),
        (),
    ),
    "slurm_2gpu": (
        "slurm",
        ResourceRequest(gpus_per_node=2, cpus_per_task=16, mem_mb=64_000, runtime_min=120),
        SiteSettings(queue="gpu", account="mylab", signal_margin_s=300),
        ("4242",),
    ),
}


def render_case(name: str) -> str:
    site, request, settings, deps = CASES[name]
    scheduler, module = SITE_SCHEDULER[site]
    snakemake_script = WORK / ".snakemake/tmp.abc123/snakejob.pretrain_vit.7.sh"
    job = SubmitJob(
        name="pf.pretrain_vit.vit-tiny-fdb1k",
        script=WORK / ".snakemake/pretrainflow-sched/scripts/snakejob.pretrain_vit.7.sh.sh",
        log=WORK / ".snakemake/pretrainflow-sched/logs/pf.pretrain_vit.vit-tiny-fdb1k.log",
        workdir=WORK,
        placement=place(site, request, settings.max_runtime_min),
        settings=settings,
        dependencies=deps,
    )
    argv = module.submit_argv(job)
    script = jobscript.render(
        job,
        scheduler=scheduler,
        payload=["/bin/sh", str(snakemake_script)],
        status_dir=WORK / ".snakemake/pretrainflow-sched/status",
        python_bin=Path("/opt/venv/bin"),
    )
    return f"## argv\n{shlex.join(argv)}\n## script\n{script}"


@pytest.mark.parametrize("name", sorted(CASES))
def test_generated_submission_matches_golden(name):
    text = render_case(name)
    path = DATA / f"submit_{name}.txt"
    if os.environ.get("PRETRAINFLOW_UPDATE_GOLDEN") == "1" or not path.exists():
        path.write_text(text)
        if os.environ.get("PRETRAINFLOW_UPDATE_GOLDEN") != "1":
            pytest.fail(f"{path} did not exist: written now, review and commit it")
    assert text == path.read_text()


def test_golden_argv_have_the_site_resource_types():
    # a reader's check that the golden files say what the mapping promises (not only "same as before")
    assert "-q rt_HF -l select=1:mpiprocs=8 -l walltime=12:00:00" in render_case("abci_8gpu")
    assert "-W depend=afterok:1234.pbs1:1235.pbs1" in render_case("abci_4nodes")
    assert "-l select=4:mpiprocs=8" in render_case("abci_4nodes") and "USE_SSH=1" in render_case("abci_4nodes")
    assert "-q rt_HG -l select=1 " in render_case("abci_1gpu")
    assert "-q rt_HC" in render_case("abci_cpu_shard")
    assert "-q R1234 -l select=1:mpiprocs=8" in render_case("abci_reservation") and "RTYPE=rt_HF" in render_case(
        "abci_reservation"
    )
    assert "-g tga-mylab -l node_f=2 -l h_rt=24:00:00 -l s_rt=23:50:00" in render_case("tsubame_2nodes")
    assert "-hold_jid 987" in render_case("tsubame_2nodes")
    assert "-l cpu_16=1" in render_case("tsubame_cpu")
    assert " -g " not in render_case("sge_stock_gpu_1") and "-l gpu_1=1" in render_case("sge_stock_gpu_1")
    assert "--gres gpu:2" in render_case("slurm_2gpu") and "--signal B:USR1@300" in render_case("slurm_2gpu")
    # PBS has no pre-walltime signal: the wrapper's watchdog sends SIGUSR1 at 12 h - 600 s = 42,600 s
    assert "sleep 42600" in render_case("abci_8gpu")
    assert "module load cuda/12.6/12.6.1" in render_case("abci_8gpu")


@pytest.mark.parametrize(
    ("document", "job_id", "expected"),
    [
        ("pbs_qstat_finished.json", "1234.pbs1", "success"),
        ("pbs_qstat_failed.json", "1235.pbs1", "failed"),
        ("pbs_qstat_walltime.json", "1236.pbs1", "failed"),
        ("pbs_qstat_running.json", "1237.pbs1", "running"),
        ("pbs_qstat_queued.json", "1238.pbs1", "running"),
        ("pbs_qstat_held.json", "1239.pbs1", "running"),
        ("pbs_qstat_unknown.json", "1240.pbs1", None),
        ("pbs_qstat_running.json", "1237", "running"),  # short id matches the server-qualified one
        ("pbs_qstat_running.json", "9999.pbs1", None),  # another job's document does not answer for this one
    ],
)
def test_pbs_status_parser(document, job_id, expected):
    assert pbs.parse_status((DATA / document).read_text(), job_id) == expected


def test_pbs_status_parser_rejects_garbage():
    from pretrainflow.errors import PretrainflowError

    with pytest.raises(PretrainflowError, match="not valid JSON"):
        pbs.parse_status("qstat: Unknown Job Id 1.pbs1", "1.pbs1")
    with pytest.raises(PretrainflowError, match="unknown job_state"):
        pbs.parse_status('{"Jobs": {"1.pbs1": {"job_state": "Z"}}}', "1.pbs1")


def test_sge_parsers_on_real_documents():
    states = sge.parse_qstat_xml((DATA / "sge_qstat.xml").read_text())
    assert states == {"24": "r", "25": "hqw"}
    assert [sge.state_to_status(s) for s in ("r", "hqw", "qw", "t", "dr", "Eqw")] == ["running"] * 5 + ["failed"]
    assert sge.parse_qacct((DATA / "sge_qacct_success.txt").read_text()) == "success"
    assert sge.parse_qacct((DATA / "sge_qacct_exit3.txt").read_text()) == "failed"
    assert sge.parse_qacct((DATA / "sge_qacct_deleted_running.txt").read_text()) == "failed"  # failed 100, exit 137
    assert sge.parse_qacct("error: job id 999999 not found\n") is None
    # a rescheduled job has two records: the last one decides
    two = (DATA / "sge_qacct_exit3.txt").read_text() + (DATA / "sge_qacct_success.txt").read_text()
    assert sge.parse_qacct(two) == "success"


def test_submit_output_parsers():
    assert pbs.parse_submit_output("1234.pbs1\n") == "1234.pbs1"
    assert sge.parse_submit_output("123\n") == "123"
    assert sge.parse_submit_output("123.1-4:1\n") == "123"
    assert slurm.parse_submit_output("4242;cluster\n") == "4242"
    assert slurm.parse_status("COMPLETED\n") == "success" and slurm.parse_status("CANCELLED\n") == "failed"
    assert slurm.parse_status("PENDING\n") == "running" and slurm.parse_status("") is None
