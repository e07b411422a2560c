"""`pretrainflow aggregate` / `pretrainflow results` with replicates: statistics.parquet, paste-ready tables (golden
strings), --compare, several summaries, summaries from before replicates, and plots with error bars."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from results_helpers import TOP1, replicate_rows

from pretrainflow.cli import main
from pretrainflow.results import plots
from pretrainflow.results.aggregate import STUDY_METADATA_KEY, read_summary
from pretrainflow.results.cli import schema_markdown
from pretrainflow.results.rows import make_row, rows_table, write_rows

ROOT = Path(__file__).resolve().parents[2]


def _aggregate(tmp: Path, rows: list[dict], study: dict, *extra: str) -> Path:
    files = []
    for row in rows:  # one file per run x metric, like the evaluate rules write per run x task
        path = tmp / "rows" / row["run_id"] / f"{row['metric']}.parquet"
        write_rows([row], path)
        files.append(str(path))
    summary = tmp / "results" / "summary.parquet"
    code = main(["aggregate", "--rows", *files, "--study", json.dumps(study), "--out", str(summary),
                 "--plots", str(tmp / "results" / "plots"), *extra])  # fmt: skip
    assert code == 0
    return summary


@pytest.fixture(scope="module")
def summary(tmp_path_factory) -> Path:
    return _aggregate(tmp_path_factory.mktemp("study"), replicate_rows(), {"study": "reps", "seed": 0})


def _results(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["results", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_aggregate_writes_statistics_next_to_the_summary(summary):
    path = summary.with_name("statistics.parquet")
    stats = pq.read_table(path).to_pandas()
    assert json.loads(pq.read_schema(path).metadata[STUDY_METADATA_KEY]) == {"study": "reps", "seed": 0}
    assert list(stats.columns) == [
        *("cell", "stage", "model", "pretrain_source", "task", "split", "metric"),
        *("n", "mean", "std", "ci95_low", "ci95_high"),
    ]
    top1 = stats[stats["metric"] == "top1"].set_index("cell")
    assert top1.loc["vit-fdb", "n"] == 3 and top1.loc["vit-fdb", "mean"] == pytest.approx(91.0, abs=1e-12)
    assert top1.loc["vit-fdb", "std"] == pytest.approx(math.sqrt(13.0), abs=1e-12)  # 88, 90, 95: see conftest
    assert top1.loc["vit-rcdb", "n"] == 1 and math.isnan(top1.loc["vit-rcdb", "ci95_low"])
    page = (summary.parent / "tables" / "statistics.html").read_text()  # what `snakemake --report` shows
    assert "91.00 ± 3.61 (n=3)" in page and "rcdb&amp;50%" in page


def test_statistics_path_can_be_given(tmp_path):
    target = tmp_path / "elsewhere" / "stats.parquet"
    summary = _aggregate(tmp_path, replicate_rows()[:2], {"study": "s"}, "--statistics", str(target))
    assert len(pq.read_table(target)) == 2 and not summary.with_name("statistics.parquet").exists()


TEXT = """\
top1 (%), test split: mean ± sd (n runs)
cell         pretrain_source     digits top1 (%)
scratch-vit  scratch          83.00 ± 2.65 (n=3)
vit-fdb      fdb_1k           91.00 ± 3.61 (n=3)
vit-rcdb     rcdb&50%                77.50 (n=1)
"""

MARKDOWN = """\
top1 (%), test split: mean ± sd (n runs)

| cell | pretrain_source | digits top1 (%) |
|---|---|---:|
| scratch-vit | scratch | 83.00 ± 2.65 (n=3) |
| vit-fdb | fdb_1k | 91.00 ± 3.61 (n=3) |
| vit-rcdb | rcdb&50% | 77.50 (n=1) |
"""

LATEX = r"""% top1 (%), test split: mean ± sd (n runs)
\begin{tabular}{llr}
\toprule
cell & pretrain\_source & digits top1 (\%) \\
\midrule
scratch-vit & scratch & $83.00 \pm 2.65$ ($n=3$) \\
vit-fdb & fdb\_1k & $91.00 \pm 3.61$ ($n=3$) \\
vit-rcdb & rcdb\&50\% & $77.50$ ($n=1$) \\
\bottomrule
\end{tabular}
"""


@pytest.mark.parametrize("fmt, golden", [("text", TEXT), ("markdown", MARKDOWN), ("latex", LATEX)])
def test_tables_a_paper_can_paste(summary, capsys, fmt, golden):
    # sd: sqrt(7) = 2.6458 -> 2.65 (scratch-vit), sqrt(13) = 3.6056 -> 3.61 (vit-fdb); vit-rcdb has one run
    assert _results(capsys, "--summary", str(summary), "--format", fmt) == (0, golden, "")


def test_csv_is_the_tidy_statistics(summary, capsys):
    code, out, _ = _results(capsys, "--summary", str(summary), "--metric", "top5", "--format", "csv")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "cell,pretrain_source,task,split,metric,unit,n,mean,std,ci95_low,ci95_high"
    # top5 of vit-fdb: 99, 99.5, 100 -> mean 99.5, sd sqrt((0.25 + 0 + 0.25) / 2) = 0.5
    assert lines[2].startswith("vit-fdb,fdb_1k,digits,test,top5,%,3,99.5,0.5,")
    assert lines[3] == "vit-rcdb,rcdb&50%,digits,test,top5,%,1,99.0,,,"


def test_compare_prints_the_paired_test(summary, capsys):
    code, out, err = _results(capsys, "--summary", str(summary), "--compare", "pretrain_source=fdb_1k",
                              "pretrain_source=scratch", "--format", "markdown")  # fmt: skip
    # differences 8, 6, 10: mean 8, sd 2, CI 8 +- 4.3027 * 2 / sqrt(3) = [3.03, 12.97], t = 4 sqrt(3) = 6.93,
    # p = 1 - 2 sqrt(6) / 5 = 0.0202 (hand arithmetic in test_stats.py)
    assert code == 0 and err == ""
    assert out.splitlines()[-3:] == [
        "| task | split | metric | n | A mean | B mean | A - B | 95% CI | t | p |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
        "| digits | test | top1 | 3 | 91.00 | 83.00 | +8.00 | [3.03, 12.97] | 6.93 | 0.0202 |",
    ]
    assert "A = pretrain_source=fdb_1k, B = pretrain_source=scratch" in out.splitlines()[0]


def test_compare_errors_exit_2_naming_the_selectors(summary, capsys):
    code, _, err = _results(capsys, "--summary", str(summary), "--compare", "vit-fdb", "vit-nothing")
    assert code == 2 and "--compare B 'vit-nothing': no row has cell = 'vit-nothing'" in err
    code, _, err = _results(capsys, "--summary", str(summary), "--compare", "cell=vit-fdb,replicate=1", "vit-rcdb")
    assert code == 2 and "'cell=vit-fdb,replicate=1' 'vit-rcdb': no replicate of A" in err
    code, _, err = _results(capsys, "--summary", str(summary), "--compare", "vit-rcdb", "scratch-vit")
    assert code == 0 and "note: rows without a partner replicate (left out): A 0, B 2" in err


def _old_style(tmp_path: Path) -> Path:
    """A summary written before replicates: no cell and no replicate column."""
    old = rows_table(replicate_rows()).drop_columns(["cell", "replicate"])
    path = tmp_path / "old" / "summary.parquet"
    path.parent.mkdir()
    pq.write_table(old, path)
    return path


def test_summary_without_cell_and_replicate_still_reads(tmp_path, capsys):
    path = _old_style(tmp_path)
    frame = read_summary(path)
    assert (frame["cell"] == frame["run_id"]).all() and (frame["replicate"] == 0).all()
    code, out, _ = _results(capsys, "--summary", str(path), "--format", "markdown")
    # every run is its own cell: single runs, no spread
    assert code == 0 and out.splitlines()[0] == "top1 (%), test split: single runs (n = 1, no spread)"
    assert "| vit-fdb.rep-2 | fdb_1k | 95.00 |" in out.splitlines()


def test_row_files_without_cell_and_replicate_aggregate(tmp_path):
    old = tmp_path / "old.parquet"
    pq.write_table(rows_table(replicate_rows()[:1]).drop_columns(["cell", "replicate"]), old)
    summary = tmp_path / "summary.parquet"
    assert main(["aggregate", "--rows", str(old), "--study", "{}", "--out", str(summary), "--plots",
                 str(tmp_path / "plots")]) == 0  # fmt: skip
    # an old row knows no cells: its run is its own cell, the one replicate 0
    assert read_summary(summary)[["cell", "replicate"]].values.tolist() == [["vit-fdb.rep-0", 0]]


def test_several_summaries_are_tagged_by_study(summary, tmp_path, capsys):
    other = _old_style(tmp_path)  # no study metadata: tagged by its folder, "old"
    code, out, _ = _results(capsys, "--summary", str(summary), "--summary", str(other), "--cell", "vit-fdb",
                            "vit-fdb.rep-0")  # fmt: skip
    assert code == 0 and out.splitlines()[1:] == [
        "study  cell           pretrain_source     digits top1 (%)",
        "old    vit-fdb.rep-0  fdb_1k                  88.00 (n=1)",
        "reps   vit-fdb        fdb_1k           91.00 ± 3.61 (n=3)",
    ]


def test_two_studies_of_one_name_are_told_apart_by_path(summary, tmp_path, capsys):
    copy = tmp_path / "results" / "summary.parquet"  # same study name ("reps") and same folder name ("results")
    copy.parent.mkdir()
    copy.write_bytes(summary.read_bytes())
    code, out, _ = _results(capsys, "--summary", str(summary), str(copy), "--cell", "vit-rcdb", "--format", "csv")
    assert code == 0 and [line.split(",")[0] for line in out.splitlines()[1:]] == sorted([str(summary), str(copy)])


def test_compare_the_same_cells_across_two_studies(summary, tmp_path, capsys):
    shifted = [{**row, "value": row["value"] + 1.0} for row in replicate_rows()]  # every value one point higher
    again = _aggregate(tmp_path, shifted, {"study": "reps-v2"})
    capsys.readouterr()  # what aggregate printed
    code, out, _ = _results(capsys, "--summary", str(summary), str(again), "--compare", "study=reps-v2",
                            "study=reps", "--by", "cell", "--format", "csv")  # fmt: skip
    # paired on cell and replicate: every difference is exactly 1, so sd = 0 and t, p are undefined (empty)
    assert code == 0 and out.splitlines() == [
        "task,split,metric,unit,cell,n,mean_a,mean_b,mean_diff,std_diff,ci95_low,ci95_high,t,p_value",
        "digits,test,top1,%,scratch-vit,3,84.0,83.0,1.0,0.0,1.0,1.0,,",
        "digits,test,top1,%,vit-fdb,3,92.0,91.0,1.0,0.0,1.0,1.0,,",
        "digits,test,top1,%,vit-rcdb,1,78.5,77.5,1.0,,,,,",
    ]
    code, _, err = _results(capsys, "--summary", str(summary), str(again), "--compare", "study=reps-v2", "study=reps")
    assert code == 2 and "several rows for one replicate" in err and "add --by cell" in err


def test_group_by_config_key(summary, capsys):
    code, out, _ = _results(capsys, "--summary", str(summary), "--by", "config.dataset.num_classes")
    assert code == 0 and out.splitlines()[1:] == [
        "config.dataset.num_classes     digits top1 (%)",
        "8                                  77.50 (n=1)",
        "16                          91.00 ± 3.61 (n=3)",
        "null                        83.00 ± 2.65 (n=3)",
    ]


class _Captured:
    """Replaces plots._save: keeps the figure for the test instead of writing it."""

    def __init__(self):
        self.figures = []

    def __call__(self, fig, path, study):
        self.figures.append(fig)


def test_downstream_plot_has_ci_error_bars_only_where_n_exceeds_one(monkeypatch):
    captured = _Captured()
    monkeypatch.setattr(plots, "_save", captured)
    plots.plot_downstream(rows_table(replicate_rows()).to_pandas(), "unused.png", {})
    (ax,) = captured.figures[0].axes
    bars = [container for container in ax.containers if hasattr(container, "has_xerr")]
    assert len(bars) == 1 and bars[0].has_xerr
    segments = bars[0].lines[2][0].get_segments()
    # bars sorted by mean: vit-rcdb 77.5 (y 0, n = 1: no bar), scratch-vit 83 (y 1), vit-fdb 91 (y 2)
    # half-widths t(0.975, 2) * sd / sqrt(3): sqrt(7) for scratch-vit, sqrt(13) for vit-fdb (see results_helpers)
    half_scratch = 4.302652729749464 * math.sqrt(7.0 / 3.0)
    half_fdb = 4.302652729749464 * math.sqrt(13.0 / 3.0)
    assert [seg.size for seg in segments] == [0, 4, 4]
    np.testing.assert_allclose(segments[1], [[83 - half_scratch, 1], [83 + half_scratch, 1]], rtol=0, atol=1e-9)
    np.testing.assert_allclose(segments[2], [[91 - half_fdb, 2], [91 + half_fdb, 2]], rtol=0, atol=1e-9)


def test_metric_against_a_numeric_config_key(monkeypatch):
    captured = _Captured()
    monkeypatch.setattr(plots, "_save", captured)
    frame = rows_table(replicate_rows()).to_pandas()
    left_out = plots.plot_metric_against(frame, "config.dataset.num_classes", "unused.png", {})
    assert left_out == len(TOP1["scratch-vit"][2])  # scratch has no dataset: its 3 top1 rows are left out
    (ax,) = captured.figures[0].axes
    (errorbar,) = ax.containers  # one line: no series
    line, _, (bars,) = errorbar.lines
    assert list(line.get_xdata()) == [8, 16] and list(line.get_ydata()) == [77.5, 91.0]
    half_fdb = 4.302652729749464 * math.sqrt(13.0 / 3.0)  # 16 classes: vit-fdb, n = 3; 8 classes: n = 1, no bar
    assert [seg.size for seg in bars.get_segments()] == [0, 4]
    np.testing.assert_allclose(bars.get_segments()[1], [[16, 91 - half_fdb], [16, 91 + half_fdb]], atol=1e-9)
    assert ax.get_xscale() == "linear" and ax.get_ylabel() == "top1 (%)"


def test_plot_command_writes_a_png_and_names_bad_axes(summary, tmp_path, capsys):
    png = tmp_path / "classes.png"
    code, out, _ = _results(capsys, "--summary", str(summary), "--x", "config.dataset.num_classes", "--plot", str(png))
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "3 rows without" in out
    code, _, err = _results(capsys, "--summary", str(summary), "--x", "pretrain_source", "--plot", str(png))
    assert code == 2 and "--x 'pretrain_source': expected numbers" in err
    code, _, err = _results(capsys, "--summary", str(summary), "--x", "config.dataset.num_classes")
    assert code == 2 and "--x KEY and --plot PNG go together" in err


def test_readme_results_rows_section_is_the_generated_schema():
    readme = (ROOT / "README.md").read_text()
    section = re.search(r"### Results rows\n\n.*?\n\n(\| column \|.*?)\n\n", readme, re.S)
    assert section, "README.md: no '### Results rows' table"
    assert section.group(1) == schema_markdown(), "regenerate it with `pretrainflow results --schema`"


def test_aggregate_takes_cells_and_replicates_from_the_study(tmp_path):
    # rows written without cell/replicate (as the evaluate commands write them) get them from the study's expansion
    study = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    study["replicates"] = 2
    rows = []
    for run in ("vit-micro-fdb.rep-0", "vit-micro-fdb.rep-1", "scratch-vit-micro.rep-1"):
        rows.append(make_row(config={}, run_id=run, stage="evaluate", model="vit_micro", pretrain_source="x",
                             task="digits", split="test", metric="top1", value=50.0))  # fmt: skip
    files = [tmp_path / f"{row['run_id']}.parquet" for row in rows]
    for row, path in zip(rows, files, strict=True):
        write_rows([row], path)
    summary = tmp_path / "summary.parquet"
    assert main(["aggregate", "--rows", *map(str, files), "--study", json.dumps(study), "--cells-from-study",
                 "--out", str(summary), "--plots", str(tmp_path / "plots")]) == 0  # fmt: skip
    got = read_summary(summary).set_index("run_id")[["cell", "replicate"]]
    assert got.to_dict("index") == {
        "scratch-vit-micro.rep-1": {"cell": "scratch-vit-micro", "replicate": 1},
        "vit-micro-fdb.rep-0": {"cell": "vit-micro-fdb", "replicate": 0},
        "vit-micro-fdb.rep-1": {"cell": "vit-micro-fdb", "replicate": 1},
    }
