"""Measured jobs: Snakemake's `benchmark:` files -> the study's benchmarks.parquet (`pretrainflow aggregate --benchmarks`).

The files read here are written by Snakemake itself: by a tiny Snakemake run with `benchmark:` rules laid out like
ours (what a job really measures), and by Snakemake's own writer for the case a real run cannot force (a job that ended
before the first sample: NA). The last test checks the workflow: the aggregate reads the benchmark file of exactly the
jobs Snakemake plans with one (default and test studies).
"""

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pretrainflow.cli import main
from pretrainflow.errors import PretrainflowError
from pretrainflow.results.aggregate import BENCHMARK_SCHEMA, STUDY_METADATA_KEY, read_job_benchmark
from pretrainflow.study import layout
from pretrainflow.study.load import load_study

ROOT = Path(__file__).resolve().parents[2]

# Two rules shaped like ours: a job holding 100 MiB for 1.5 s, and a quick job benchmarked twice (repeat).
SNAKEFILE = """
rule all:
    input: "shards/fdb-tiny/00001.txt", "runs/vit-a.rep-0.txt"

rule render_shard:
    output: "shards/{dataset}/{shard}.txt"
    benchmark: "results/benchmarks/jobs/render_shard/{dataset}/{shard}.tsv"
    shell: "%(python)s -c 'import time; x = b\\"x\\" * (100 * 2**20); time.sleep(1.5)' && touch {output}"

rule pretrain_vit:
    output: "runs/{run}.txt"
    benchmark: repeat("results/benchmarks/jobs/pretrain_vit/{run}.tsv", 2)
    shell: "touch {output}"
"""


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> Path:
    """A directory where Snakemake ran the two rules above and wrote their benchmark files."""
    work = tmp_path_factory.mktemp("measured")
    (work / "Snakefile").write_text(SNAKEFILE % {"python": sys.executable})
    run = subprocess.run([sys.executable, "-m", "snakemake", "--cores", "1", "--directory", str(work), "--snakefile",
                          str(work / "Snakefile")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    return work


def test_aggregate_gathers_benchmark_files_written_by_snakemake(measured, tmp_path):
    files = sorted(str(path) for path in (measured / layout.JOB_BENCHMARKS_ROOT).rglob("*.tsv"))
    assert [Path(f).relative_to(measured).as_posix() for f in files] == [
        layout.job_benchmark_file("pretrain_vit", "vit-a.rep-0"),
        layout.job_benchmark_file("render_shard", "fdb-tiny", "00001"),
    ]
    out = tmp_path / "benchmarks.parquet"
    assert main(["aggregate", "--study", json.dumps({"study": "t"}), "--out", str(tmp_path / "summary.parquet"),
                 "--plots", str(tmp_path / "plots"), "--benchmarks", *files, "--benchmarks-out", str(out)]) == 0  # fmt: skip
    table = pq.read_table(out)
    assert table.schema.remove_metadata() == BENCHMARK_SCHEMA
    assert json.loads(table.schema.metadata[STUDY_METADATA_KEY]) == {"study": "t"}
    assert [list(row.values()) for row in table.select(["rule", "unit", "run", "repeat"]).to_pylist()] == [
        ["pretrain_vit", "vit-a.rep-0", "vit-a.rep-0", 0],
        ["pretrain_vit", "vit-a.rep-0", "vit-a.rep-0", 1],
        ["render_shard", "fdb-tiny/00001", None, 0],
    ]
    render = table.to_pandas().iloc[2]
    assert json.loads(render["wildcards"]) == {"dataset": "fdb-tiny", "shard": "00001"}
    assert 1.5 <= render["seconds"] < 60
    assert render["max_rss_mb"] >= 100, render  # the 100 MiB the job held, sampled over its process tree
    assert render["cpu_seconds"] >= 0 and render["mean_load"] >= 0
    # the report's page of measured jobs: one table per rule
    page = (tmp_path / "tables" / "jobs.html").read_text()
    assert "pretrain_vit: 2 job(s)" in page and "render_shard: 1 job(s)" in page and "fdb-tiny/00001" in page


def test_a_job_that_ended_before_the_first_sample_has_null_figures(tmp_path):
    from snakemake.benchmark import BenchmarkRecord, write_benchmark_records

    record = BenchmarkRecord(running_time=0.25)
    record.process_gone = True  # what Snakemake records when the job exited before it could be sampled
    path = tmp_path / layout.job_benchmark_file("finetune_vit", "vit-a", "digits")
    path.parent.mkdir(parents=True)
    write_benchmark_records([record], str(path), False)
    assert path.read_text().splitlines()[1].startswith("0.25\t0:00:00\tNA\tNA")  # Snakemake's own format
    row = read_job_benchmark(path).iloc[0]
    assert (row["rule"], row["unit"], row["run"], row["seconds"]) == ("finetune_vit", "vit-a/digits", "vit-a", 0.25)
    assert row[["max_rss_mb", "cpu_seconds", "mean_load", "io_in_mb"]].isna().all()


def test_files_outside_the_layout_or_format_are_named(tmp_path):
    stray = tmp_path / "results" / "benchmarks" / "jobs" / "no_such_rule" / "x.tsv"
    stray.parent.mkdir(parents=True)
    stray.write_text("s\th:m:s\n1.0\t0:00:01\n")
    with pytest.raises(PretrainflowError, match=r"no_such_rule/x\.tsv: not a job benchmark file"):
        read_job_benchmark(stray)
    alien = tmp_path / layout.job_benchmark_file("evaluate_llm", "gpt")
    alien.parent.mkdir(parents=True)
    alien.write_text("seconds\tmemory\n1.0\t2.0\n")
    with pytest.raises(PretrainflowError, match=r"gpt\.tsv: not a Snakemake benchmark file: no column\(s\) \['s', "):
        read_job_benchmark(alien)


@pytest.mark.slow
@pytest.mark.parametrize("study", ["config.yaml", "test.yaml"])
def test_aggregate_reads_the_benchmark_of_every_benchmarked_job_planned(study, tmp_path):
    """`snakemake -n` from nothing: the benchmark files Snakemake plans are exactly those the aggregate reads
    (layout.benchmark_files); one it does not plan would stop the plan as a missing input."""
    run = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--snakefile", str(ROOT / "Snakefile"),
                          "--directory", str(tmp_path), "--configfile", str(ROOT / "config" / study)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    planned = set(re.findall(r"^\s+benchmark: (\S+)$", run.stdout, re.MULTILINE))
    expected = layout.benchmark_files(load_study(ROOT / "config" / study))
    assert len(expected) == len(set(expected)) and planned == set(expected)
    assert {path.split("/")[3] for path in planned} <= set(layout.JOB_BENCHMARKS)
