"""Result rows, their aggregation into summary.parquet, plots, the report's tables and the `pretrainflow results`
command."""

import json

import pandas as pd
import pyarrow.parquet as pq
import pytest

from pretrainflow.cli import main
from pretrainflow.results.aggregate import study_of
from pretrainflow.results.rows import ARROW_SCHEMA, make_row, read_rows, write_rows


def _row(run, source, task, value, metric="top1", **extra):
    return make_row(
        config={"run": run, "task": task},
        run_id=run,
        stage="evaluate",
        model="vit_micro",
        pretrain_source=source,
        task=task,
        split="test",
        metric=metric,
        value=value,
        world_size=2,
        wall_seconds=72.0,
        **extra,
    )


def test_row_carries_config_and_provenance():
    row = _row("a", "fdb", "digits", 91.0)
    assert json.loads(row["config_json"]) == {"run": "a", "task": "digits"}
    assert len(row["config_hash"]) == 64
    assert row["device_hours"] == pytest.approx(72.0 * 2 / 3600)
    assert "torch" in json.loads(row["versions"])
    assert row["host"] and row["created_at"] is not None


def test_row_rejects_unknown_and_missing_fields():
    with pytest.raises(KeyError, match="accuracy"):
        _row("a", "fdb", "digits", 1.0, accuracy=3)
    with pytest.raises(KeyError, match="value"):
        make_row(
            config={},
            run_id="a",
            stage="evaluate",
            model="m",
            pretrain_source="s",
            task="t",
            split="test",
            metric="top1",
        )


def test_rows_roundtrip_and_alien_file_is_named(tmp_path):
    write_rows([_row("a", "fdb", "digits", 91.0)], tmp_path / "a.parquet")
    assert read_rows([tmp_path / "a.parquet"]).schema.equals(ARROW_SCHEMA)
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "alien.parquet")
    with pytest.raises(ValueError, match="alien.parquet"):
        read_rows([tmp_path / "a.parquet", tmp_path / "alien.parquet"])


@pytest.fixture
def study_results(tmp_path):
    rows = tmp_path / "rows"
    write_rows(
        [_row("vit-fdb", "fdb-tiny", "digits", 91.0), _row("vit-fdb", "fdb-tiny", "digits", 99.0, "top5")],
        rows / "vit-fdb" / "digits.parquet",
    )
    write_rows([_row("scratch-vit", "scratch", "digits", 85.5)], rows / "scratch-vit" / "digits.parquet")
    curve = tmp_path / "pretrain" / "vit-fdb" / "metrics.parquet"
    curve.parent.mkdir(parents=True)
    pd.DataFrame({"step": [1, 2, 3], "epoch": [0.3, 0.6, 1.0], "loss": [2.0, 1.5, 1.2], "lr": [1e-3] * 3}).to_parquet(
        curve
    )
    summary = tmp_path / "summary.parquet"
    code = main(
        [
            "aggregate",
            "--rows",
            str(rows / "vit-fdb" / "digits.parquet"),
            str(rows / "scratch-vit" / "digits.parquet"),
            "--vit-curves",
            str(curve),
            "--study",
            json.dumps({"study": "t", "seed": 0}),
            "--out",
            str(summary),
            "--plots",
            str(tmp_path / "plots"),
        ]
    )
    assert code == 0
    return tmp_path, summary


def test_aggregate_writes_summary_plots_and_the_reports_files(study_results):
    tmp_path, summary = study_results
    table = pq.read_table(summary).to_pandas()
    assert len(table) == 3 and set(table["run_id"]) == {"vit-fdb", "scratch-vit"}
    assert json.loads(study_of(summary)) == {"study": "t", "seed": 0}
    for name in ("downstream_accuracy.png", "pretrain_loss_vit.png", "pretrain_loss_llm.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # next to the summary: what `snakemake --report` shows (tables, the study) and the measured jobs (none here)
    page = (tmp_path / "tables" / "statistics.html").read_text()
    assert page.index("top1 (%), test split") < page.index("top5 (%), test split") and "91.00" in page
    assert json.loads((tmp_path / "study.json").read_text()) == {"study": "t", "seed": 0}
    assert pq.read_table(tmp_path / "benchmarks.parquet").num_rows == 0
    assert "nothing to show" in (tmp_path / "tables" / "jobs.html").read_text()
    assert not list(tmp_path.glob(".*.tmp*")), "no temporary files left behind"


def test_results_command_pivots_and_formats(study_results, capsys):
    _, summary = study_results
    assert (
        main(
            [
                "results",
                "--summary",
                str(summary),
                "--by",
                "pretrain_source",
                "--metric",
                "top1",
                "--format",
                "markdown",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "top1 (%), test split: single runs (n = 1, no spread)"  # metric, unit, split; one run per cell
    assert out[2] == "| pretrain_source | digits top1 (%) |"
    assert "| fdb-tiny | 91.00 |" in out and "| scratch | 85.50 |" in out
    assert main(["results", "--summary", str(summary), "--metric", "top5", "--format", "csv"]) == 0
    csv = capsys.readouterr().out.splitlines()
    assert csv[0] == "cell,pretrain_source,task,split,metric,unit,n,mean,std,ci95_low,ci95_high"
    assert csv[1] == "vit-fdb,fdb-tiny,digits,test,top5,%,1,99.0,,,"  # a run without replicates is a cell with n = 1


def test_results_command_errors_name_the_problem(study_results, capsys, tmp_path):
    _, summary = study_results
    assert main(["results", "--summary", str(summary), "--metric", "perplexity"]) == 2
    assert "perplexity" in capsys.readouterr().err
    assert main(["results", "--summary", str(summary), "--by", "colour"]) == 2
    assert "'colour'" in capsys.readouterr().err
    assert main(["results", "--summary", str(tmp_path / "missing.parquet")]) == 2
    assert "missing.parquet" in capsys.readouterr().err
