"""`pretrainflow results --format json`, the metric and unit in every header, and filters that match nothing.

The summary is the fixed replicate table of results_helpers (top1 on digits/test: vit-fdb 88, 90, 95; scratch-vit
80, 84, 85; vit-rcdb 77.5; top5 rows ride along), written as a summary Parquet file.
"""

import json
import math

import pyarrow.parquet as pq
import pytest
from results_helpers import replicate_rows

from pretrainflow.cli import main
from pretrainflow.results import cli as results_cli
from pretrainflow.results import table
from pretrainflow.results.rows import rows_table


@pytest.fixture(scope="module")
def summary(tmp_path_factory):
    path = tmp_path_factory.mktemp("json") / "summary.parquet"
    pq.write_table(rows_table(replicate_rows()), path)
    return str(path)


def _results(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["results", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_formats_are_the_table_and_tidy_formats():
    # the CLI spells them out so that --help does not import pandas; one list must not drift from the other
    assert results_cli.FORMATS == (*table.TABLE_FORMATS, *table.TIDY_FORMATS)


def test_json_is_the_tidy_statistics_with_units(summary, capsys):
    code, out, err = _results(capsys, "--summary", summary, "--format", "json")
    assert (code, err) == (0, "")
    records = json.loads(out)
    assert [(r["cell"], r["metric"], r["unit"], r["n"]) for r in records] == [
        ("scratch-vit", "top1", "%", 3),
        ("vit-fdb", "top1", "%", 3),
        ("vit-rcdb", "top1", "%", 1),
    ]
    fdb = records[1]
    assert fdb["mean"] == pytest.approx(91.0, abs=1e-12) and fdb["std"] == pytest.approx(math.sqrt(13.0), abs=1e-12)
    assert fdb["ci95_low"] < 91.0 < fdb["ci95_high"]
    # one run: no spread, and strict JSON says so with null (never NaN, which json.loads would accept)
    assert {records[2][key] for key in ("std", "ci95_low", "ci95_high")} == {None}
    assert "NaN" not in out


def test_json_and_csv_carry_the_same_statistics(summary, capsys):
    _, out, _ = _results(capsys, "--summary", summary, "--metric", "top5", "--format", "json")
    _, csv, _ = _results(capsys, "--summary", summary, "--metric", "top5", "--format", "csv")
    header, *lines = csv.splitlines()
    records = json.loads(out)
    assert list(records[0]) == header.split(",") and len(records) == len(lines)
    assert [(r["cell"], r["unit"], r["n"], r["mean"]) for r in records] == [
        (line.split(",")[0], line.split(",")[5], int(line.split(",")[6]), float(line.split(",")[7])) for line in lines
    ]


def test_json_of_a_paired_comparison(summary, capsys):
    code, out, _ = _results(capsys, "--summary", summary, "--compare", "vit-fdb", "scratch-vit", "--format", "json")
    (record,) = json.loads(out)
    # pairs by replicate: 88-80, 90-84, 95-85 -> 8, 6, 10, mean 8
    assert code == 0 and (record["metric"], record["unit"], record["n"]) == ("top1", "%", 3)
    assert record["mean_diff"] == pytest.approx(8.0) and record["p_value"] < 0.05


@pytest.mark.parametrize("fmt", ["text", "markdown", "latex"])
def test_every_table_header_names_metric_and_unit(summary, capsys, fmt):
    code, out, _ = _results(capsys, "--summary", summary, "--metric", "top5", "--format", fmt)
    title, *rest = out.splitlines()
    header = next(line for line in rest if "pretrain" in line)  # the column header line of the table
    expected = "digits top5 (\\%)" if fmt == "latex" else "digits top5 (%)"
    assert code == 0 and "top5 (%)" in title and expected in header


def test_metrics_side_by_side_each_name_their_unit(summary, capsys):
    code, out, _ = _results(capsys, "--summary", summary, "--metric", "", "--cell", "vit-rcdb")
    assert code == 0 and out.splitlines()[1].split("  ")[-2:] == ["digits / top1 (%)", "digits / top5 (%)"]


@pytest.mark.parametrize(
    "args, named, present",
    [
        (["--task", "digts"], "--task 'digts'", "digits"),
        (["--task", "digits", "cifar"], "--task 'cifar'", "digits"),
        (["--metric", "acc"], "--metric 'acc'", "top1, top5"),
        (["--cell", "vit-fbd"], "--cell 'vit-fbd'", "scratch-vit, vit-fdb, vit-rcdb"),
        (["--split", "valid"], "--split 'valid'", "test"),
        (["--run", "nope"], "--run 'nope'", "scratch-vit.rep-0, scratch-vit.rep-1"),
    ],
)
def test_a_filter_that_matches_nothing_names_itself_and_the_values_present(summary, capsys, args, named, present):
    code, out, err = _results(capsys, "--summary", summary, *args)
    assert (code, out) == (2, "")
    assert err.startswith(f"pretrainflow results: error: {named} matches no row; ") and present in err


def test_filters_that_hold_only_apart_name_what_fits_the_others(summary, capsys):
    code, _, err = _results(capsys, "--summary", summary, "--run", "vit-rcdb", "--cell", "vit-fdb")
    assert code == 2
    assert "no row matches --metric 'top1' --run 'vit-rcdb' --cell 'vit-fdb' together" in err
    assert "--run is one of vit-fdb.rep-0, vit-fdb.rep-1, vit-fdb.rep-2" in err and "--cell is one of vit-rcdb" in err
