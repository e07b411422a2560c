"""Benchmarks through lm-evaluation-harness: the shipped pydoc tasks, the harness on a real export, the study keys and
the bad-input errors (each before the model loads, nothing written)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from llm_helpers import REPO, cli

from pretrainflow.benchmarks.pydoc_tasks import (
    DATA_FILE,
    MANIFEST,
    MASK,
    MAX_SUMMARY_CHARS,
    NUM_CHOICES,
    StdlibFunction,
    build_items,
    build_task_dir,
    is_held_out,
    stdlib_functions,
)
from pretrainflow.benchmarks.spec import LLMEvalSection, check_llm_eval
from pretrainflow.errors import ConfigError

# ------------------------------------------------------------------------------------------------ the task builder


@pytest.fixture(scope="module")
def functions() -> list[StdlibFunction]:
    return list(stdlib_functions())


@pytest.fixture(scope="module")
def items(functions) -> list[dict]:
    return build_items(functions)


@pytest.fixture(scope="module")
def tasks_dir(items, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("benchmarks") / "tasks"
    build_task_dir(out, items)
    return out


def test_items_are_deterministic(functions, items):
    assert build_items(functions) == items
    assert build_items(list(reversed(functions))) != items  # file order decides which function stands for a name
    assert 250 <= len(items) <= 450, len(items)  # 316 on CPython 3.11.7: about 1 in 8 of ~2,500 names


def test_each_item_has_four_names_and_the_answer_once(items):
    names = {item["name"] for item in items}
    assert len(names) == len(items)  # one item per name
    for item in items:
        choices = item["choices"]
        assert len(choices) == NUM_CHOICES == len(set(choices))
        assert choices.count(item["name"]) == 1 and choices[item["answer"]] == item["name"]
        assert set(choices) <= names  # distractors are other items' names: a prior over names is worth nothing
        assert len(item["summary"]) <= MAX_SUMMARY_CHARS
        assert not re.search(rf"(?<![\w.]){re.escape(item['name'])}(?!\w)", item["summary"]), item
    positions = pd.Series([item["answer"] for item in items]).value_counts(normalize=True)
    assert positions.between(0.15, 0.35).all(), positions  # the right answer is not always in one place


def test_held_out_rule_splits_names_not_functions(functions, items):
    """Benchmark names are exactly the held-out ones; SFT (which drops held-out names) can never see them."""
    assert all(is_held_out(item["name"]) for item in items)
    names = {f.name for f in functions}
    held_out = {name for name in names if is_held_out(name)}
    assert 0.09 < len(held_out) / len(names) < 0.16  # one in eight
    sft_side = {f.name for f in functions if not is_held_out(f.name)}
    assert sft_side.isdisjoint(item["name"] for item in items)
    # every function sharing a held-out name (posixpath.join / ntpath.join) is on the benchmark side together
    assert all(is_held_out(f.name) == (f.name in held_out) for f in functions)
    assert is_held_out("close") and not is_held_out("join")  # fixed: independent of the Python version


def test_masking_and_dedup_rules():
    fake = [
        StdlibFunction("m", "A.close", "Close the file; close() may be called more than once safely here."),
        StdlibFunction("n", "close", "A second function of the same name is not a second item at all."),
        StdlibFunction("m", "walk", "Recursively yield all descendant nodes in the tree starting at node."),
        StdlibFunction("m", "join", "Join two paths; this name is not held out, so it never becomes an item."),
    ] + [StdlibFunction("x", name, f"Some summary of at least forty characters for {i}.") for i, name in
         enumerate(n for n in (f"name{i}" for i in range(200)) if is_held_out(n))]  # fmt: skip
    items = build_items(fake)
    by_name = {item["name"]: item for item in items}
    assert "join" not in by_name and by_name["close"]["qualname"] == "A.close"
    assert by_name["close"]["summary"] == f"Close the file; {MASK}() may be called more than once safely here."


def test_task_dir_is_an_include_path(tasks_dir, items):
    manifest = json.loads((tasks_dir / MANIFEST).read_text())
    assert manifest["items"] == len(items) and manifest["chance_percent"]["pydoc_mc"] == 25.0
    lines = (tasks_dir / DATA_FILE).read_text().splitlines()
    assert [json.loads(line) for line in lines] == items
    for task in ("pydoc_mc", "pydoc_name"):
        config = yaml.safe_load((tasks_dir / f"{task}.yaml").read_text())
        assert config["task"] == task
        assert config["dataset_kwargs"]["data_files"]["test"] == str(tasks_dir.resolve() / DATA_FILE)


# ------------------------------------------------------------------------------------------------ the study keys


def test_default_study_gets_one_harness_unit_per_llm_run():
    from pretrainflow.study.load import load_study
    from pretrainflow.study.resources import rule_resources

    study = load_study(REPO / "config" / "config.yaml")
    assert set(study.llm_evals) == set(study.runs_of_kind("llm")) == {"gpt-micro-pydocs", "gpt-micro-pydocs-sft"}
    spec = study.llm_evals["gpt-micro-pydocs"]
    assert spec["tasks"] == ["pydoc_mc"] and spec["pretrain_spec"] == study.runs["gpt-micro-pydocs"]
    assert "results/rows/gpt-micro-pydocs/harness.parquet" in study.row_files()
    wildcards = type("W", (), {"run": "gpt-micro-pydocs"})()
    assert rule_resources(study, "evaluate_llm_harness", wildcards)["gpus"] == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"tasks": []}, "llm_eval.tasks"),
        ({"tasks": ["pydoc mc"]}, "llm_eval.tasks[0]"),
        ({"batch_size": 0}, "llm_eval.batch_size"),
        ({"limit": 0}, "llm_eval.limit"),
        ({"num_fewshot": -1}, "llm_eval.num_fewshot"),
        ({"include_path": [""]}, "llm_eval.include_path[0]"),
        ({"runtime_minutes": 0}, "llm_eval.runtime_minutes"),
        ({"bogus": 1}, "llm_eval"),
    ],
)
def test_bad_llm_eval_keys_name_the_key(change, expected):
    from pretrainflow.study.load import load_study

    study = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    study["llm_eval"].update(change)
    with pytest.raises(ConfigError) as err:
        load_study(study)
    assert str(err.value).startswith(expected), err.value
    with pytest.raises(ConfigError):  # the typed check alone rejects it too
        check_llm_eval({"tasks": ["pydoc_mc"], **change}, "llm_eval")


def test_task_named_harness_is_reserved_with_llm_eval():
    from pretrainflow.study.load import load_study

    study = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    study["tasks"]["harness"] = study["tasks"]["digits"]
    study["finetune"]["tasks"] = ["harness"]
    with pytest.raises(ConfigError, match=r"^tasks\.harness: the name is reserved"):
        load_study(study)
    del study["llm_eval"]
    load_study(study)  # without harness rows the name is free


def test_schema_keys_and_bounds_equal_the_dataclass():
    from pretrainflow.spec_fields import study_keys

    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "llm_eval.schema.yaml").read_text())
    assert set(schema["properties"]) == set(study_keys(LLMEvalSection))
    assert all(node.get("description") for node in schema["properties"].values())
    for key, node in schema["properties"].items():
        if "minimum" in node:
            check_llm_eval({"tasks": ["t"], **({} if key == "tasks" else {key: node["minimum"]})})
            with pytest.raises(ConfigError, match=key):
                check_llm_eval({"tasks": ["t"], key: node["minimum"] - 1})


# ------------------------------------------------------------------------------------------- the harness, for real


def _spec(run_spec: dict, **section) -> dict:
    return {"run_id": run_spec["run_id"], **check_llm_eval(section), "pretrain_spec": run_spec}


def _evaluate(spec: dict, model: Path, out: Path, tasks_dir: Path | None, check: bool = True):
    args = ["benchmarks", "evaluate", "--spec", json.dumps(spec), "--model", str(model), "--out", str(out)]
    return cli(*args, *(["--tasks-dir", str(tasks_dir)] if tasks_dir else []), check=check, timeout=600)


def test_harness_rows_from_a_real_export(tp1_run, corpora_dir, tasks_dir, tmp_path):
    run_spec, run_dir, _ = tp1_run
    hf_dir = tmp_path / "hf"
    cli("export-llama", "--model", str(run_dir / "model.safetensors"), "--tokenizer",
        str(corpora_dir / "docs" / "tokenizer.json"), "--out", str(hf_dir))  # fmt: skip
    out = tmp_path / "rows" / "harness.parquet"
    spec = _spec(run_spec, tasks=["pydoc_mc", "pydoc_name"], batch_size=16, limit=24)
    proc = _evaluate(spec, hf_dir, out, tasks_dir)
    rows = pd.read_parquet(out)
    assert {(r.task, r.metric) for r in rows.itertuples()} == {
        ("pydoc_mc", "acc"), ("pydoc_mc", "acc_norm"), ("pydoc_name", "exact_match")
    }  # fmt: skip
    assert (rows["stage"] == "evaluate").all() and (rows["split"] == "test").all()
    assert rows["value"].between(0, 100).all() and rows["stderr"].notna().all()
    acc = rows[rows["metric"] == "acc"].iloc[0]
    assert abs(acc["value"] * 24 / 100 - round(acc["value"] * 24 / 100)) < 1e-9  # percent of 24 items
    p = acc["value"] / 100
    assert acc["stderr"] == pytest.approx(100 * (p * (1 - p) / 23) ** 0.5)  # the harness's stderr, in percent
    manifest = json.loads((tasks_dir / MANIFEST).read_text())
    assert (rows["dataset_checksum"] == manifest["sha256"]).all()
    assert json.loads(rows["config_json"].iloc[0])["pretrain_spec"]["run_id"] == run_spec["run_id"]
    assert "pydoc_mc acc =" in proc.stdout


# ------------------------------------------------------------------------- bad input: named, before the model loads


@pytest.fixture
def fake_model(tmp_path) -> Path:
    """A directory that passes the config.json check but cannot load: reaching the model would fail differently."""
    model = tmp_path / "not-a-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    return model


def test_missing_model_dir_is_named(tmp_path, tasks_dir):
    out = tmp_path / "harness.parquet"
    proc = _evaluate(_spec({"run_id": "r"}, tasks=["pydoc_mc"]), tmp_path / "nowhere", out, tasks_dir, check=False)
    assert proc.returncode == 2 and "nowhere: not a Hugging Face model directory" in proc.stdout
    assert not out.exists()


def test_shipped_task_without_tasks_dir_is_named(tmp_path, fake_model):
    out = tmp_path / "harness.parquet"
    proc = _evaluate(_spec({"run_id": "r"}, tasks=["pydoc_name"]), fake_model, out, None, check=False)
    assert proc.returncode == 2 and "['pydoc_name'] ship with pretrainflow" in proc.stdout
    assert not out.exists()


def test_task_whose_data_is_missing_is_named(tmp_path, fake_model, tasks_dir):
    user_tasks = tmp_path / "my tasks"  # a hostile path: a space
    user_tasks.mkdir()
    config = {"task": "my_mc", "dataset_path": "json", "output_type": "multiple_choice", "test_split": "test",
              "dataset_kwargs": {"data_files": {"test": str(tmp_path / "absent.jsonl")}},
              "doc_to_text": "{{q}}", "doc_to_choice": "choices", "doc_to_target": "answer"}  # fmt: skip
    (user_tasks / "my_mc.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "harness.parquet"
    spec = _spec({"run_id": "r"}, tasks=["pydoc_mc", "my_mc"], include_path=[str(user_tasks)])
    proc = _evaluate(spec, fake_model, out, tasks_dir, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "llm_eval.tasks: task 'my_mc': its data could not be read offline" in proc.stdout
    assert "Traceback" not in proc.stdout and not out.exists()


def test_task_not_installed_is_named(tmp_path, fake_model, tasks_dir):
    out = tmp_path / "harness.parquet"
    proc = _evaluate(_spec({"run_id": "r"}, tasks=["pydoc_mcq"]), fake_model, out, tasks_dir, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "llm_eval.tasks: 'pydoc_mcq' is not an lm-eval task installed here" in proc.stdout
    assert "close names: ['pydoc_mc']" in proc.stdout and not out.exists()


def test_installed_task_without_its_data_is_named(tmp_path, fake_model, tasks_dir):
    out = tmp_path / "harness.parquet"
    spec = _spec({"run_id": "r"}, tasks=["arc_easy"], hf_home=str(tmp_path / "empty-hf-cache"))
    proc = _evaluate(spec, fake_model, out, tasks_dir, check=False)
    assert proc.returncode == 2, proc.stdout[-2000:]
    assert "task 'arc_easy': its data could not be read offline" in proc.stdout and "empty-hf-cache" in proc.stdout
    assert not out.exists()


@pytest.mark.parametrize("module", ["pydoc_tasks", "spec", "harness"])
def test_docstring_examples(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"pretrainflow.benchmarks.{module}"))
    assert result.attempted > 0 and result.failed == 0


def test_stderr_column_defaults_to_null_and_old_files_still_read(tmp_path):
    import pyarrow.parquet as pq

    from pretrainflow.results.rows import make_row, read_rows, rows_table

    row = make_row(config={}, run_id="r", stage="evaluate", model="m", pretrain_source="p", task="t", split="test",
                   metric="top1", value=50.0)  # fmt: skip
    assert row["stderr"] is None
    old = tmp_path / "old.parquet"  # a rows file written before the stderr column existed
    pq.write_table(rows_table([row]).drop_columns(["stderr"]), old)
    table = read_rows([old])
    assert table.column("stderr").null_count == 1 and table.column("value").to_pylist() == [50.0]
