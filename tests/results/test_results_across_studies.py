"""`pretrainflow results --study NAME`: the studies of one results/ tree (results/studies/<study>/summary.parquet,
written by `pretrainflow aggregate` as the results rule runs it), read alone, side by side, and compared."""

import json
from pathlib import Path

import pytest
from results_helpers import replicate_rows

from pretrainflow.cli import main
from pretrainflow.results.rows import write_rows
from pretrainflow.study import layout


def _aggregate_study(root: Path, name: str, shift: float) -> None:
    """Study ``name``'s tables where the results rule writes them, from the fixed rows with every value + ``shift``."""
    files = []
    for row in replicate_rows():
        path = root / name / "rows" / row["run_id"] / f"{row['metric']}.parquet"
        write_rows([{**row, "value": row["value"] + shift}], path)
        files.append(str(path))
    out = root / layout.study_path(layout.STUDY_DIR, name)
    code = main(["aggregate", "--rows", *files, "--study", json.dumps({"study": name}),
                 "--out", str(out / "summary.parquet"), "--plots", str(out / "plots")])  # fmt: skip
    assert code == 0


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A working directory whose results/ holds two studies: a, and b with every value one point higher."""
    root = tmp_path_factory.mktemp("tree")
    _aggregate_study(root, "a", 0.0)
    _aggregate_study(root, "b", 1.0)
    return root


def _results(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["results", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_two_studies_side_by_side(tree, monkeypatch, capsys):
    monkeypatch.chdir(tree)
    capsys.readouterr()
    code, out, _ = _results(capsys, "--study", "a", "--study", "b", "--cell", "vit-fdb")
    assert code == 0 and out.splitlines()[1:] == [
        "study  cell     pretrain_source     digits top1 (%)",
        "a      vit-fdb  fdb_1k           91.00 ± 3.61 (n=3)",
        "b      vit-fdb  fdb_1k           92.00 ± 3.61 (n=3)",
    ]
    # compared across the studies, paired on cell and replicate: every difference is exactly 1
    code, out, _ = _results(capsys, "--study", "a", "b", "--compare", "study=b", "study=a", "--by", "cell",
                            "--cell", "vit-fdb", "--format", "csv")  # fmt: skip
    assert code == 0 and out.splitlines()[1].startswith("digits,test,top1,%,vit-fdb,3,92.0,91.0,1.0,0.0,")


def test_one_study_is_read_by_default_several_must_be_named(tree, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tree)
    code, _, err = _results(capsys)
    assert code == 2 and "several studies under results/studies/: ['a', 'b']; name one or more with --study" in err
    code, _, err = _results(capsys, "--study", "a", "nope")
    assert code == 2 and "--study nope: no summary under results/studies/; studies there: ['a', 'b']" in err
    alone = tmp_path / "alone"
    _aggregate_study(alone, "a", 0.0)
    monkeypatch.chdir(alone)
    capsys.readouterr()
    code, out, _ = _results(capsys, "--cell", "vit-fdb")
    assert code == 0 and out.splitlines()[1:] == [
        "cell     pretrain_source     digits top1 (%)",
        "vit-fdb  fdb_1k           91.00 ± 3.61 (n=3)",
    ]
    monkeypatch.chdir(tmp_path)
    code, _, err = _results(capsys)
    assert code == 2 and "no study results under results/studies/; run a study first (snakemake)" in err
