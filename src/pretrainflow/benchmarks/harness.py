"""Score a Hugging Face export of an LLM run with lm-evaluation-harness, offline, and turn its metrics into rows.

    pretrainflow benchmarks evaluate --spec "$SPEC" --model results/export/gpt-micro-pydocs-hf \\
        --tasks-dir results/benchmarks/tasks --summary results/pretrain/gpt-micro-pydocs/summary.json \\
        --out results/rows/gpt-micro-pydocs/harness.parquet

Order of work, so that bad input is one clear error before the model loads and nothing is written:
1. the model directory must hold config.json (``pretrainflow export-llama`` writes it);
2. every task name must be known: the shipped tasks (``--tasks-dir``), the study's ``include_path`` directories, or,
   only when a name is in neither, the ~14,000 tasks installed with lm-eval (indexing them takes ~10 CPU-seconds);
3. every task's data is read (offline: HF_DATASETS_OFFLINE, HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE = 1, the Hugging
   Face cache at ``hf_home``); a task whose data is not on disk is named;
4. only then ``lm_eval.simple_evaluate`` loads the model (``hf``, float32 on CPU; bfloat16 on a GPU for a bf16 run).

Rows: stage ``evaluate``, task = the harness task (or group) name, split ``test`` (``valid`` for a task scored on its
validation split), metric = the harness's name (``acc``, ``acc_norm``, ``exact_match``; ``<metric>,<filter>`` only
when a task reports one metric under several filters), ``stderr`` = its ``<metric>_stderr``. Accuracy-like metrics
(``PERCENT_METRICS``) are in percent, like the ViT top1 rows; others (bleu, perplexities, ...) as the harness
reports them.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pretrainflow.benchmarks.pydoc_tasks import MANIFEST, shipped_task_names
from pretrainflow.benchmarks.spec import HarnessSpec
from pretrainflow.errors import PretrainflowError
from pretrainflow.results.rows import make_row
from pretrainflow.train.devices import trains_on_gpus

OFFLINE_ENV = {"HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
# Fractions in [0, 1] in the harness; rows give them in percent (value and stderr), as top1 / top5.
PERCENT_METRICS = frozenset({"acc", "acc_norm", "acc_mutual_info", "exact_match", "f1", "em"})


@contextlib.contextmanager
def offline_environment(hf_home: str | None) -> Iterator[None]:
    """The harness's environment: no network, and the Hugging Face cache at ``hf_home`` when given.

    Set before ``datasets`` / ``huggingface_hub`` are imported (they read it at import): the command runs in a fresh
    process and imports lm_eval inside this block.
    """
    saved = dict(os.environ)
    os.environ.update(OFFLINE_ENV)
    if hf_home is not None:
        os.environ["HF_HOME"] = str(Path(hf_home).resolve())
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_model_dir(model_dir: Path) -> None:
    if not (model_dir / "config.json").is_file():
        raise PretrainflowError(
            f"{model_dir}: not a Hugging Face model directory (no config.json); export the run first "
            "(`pretrainflow export-llama`, rule export_llm)"
        )


def _include_paths(names: list[str], tasks_dir: Path | None, include_path: list[str]) -> list[Path]:
    """The directories the task manager searches: the built shipped tasks, then the study's include_path."""
    paths = []
    shipped = sorted(set(names) & set(shipped_task_names()))
    if shipped and tasks_dir is None:
        raise PretrainflowError(
            f"llm_eval.tasks: {shipped} ship with pretrainflow and are built by `pretrainflow benchmarks build --out "
            "DIR`; pass that directory as --tasks-dir"
        )
    if tasks_dir is not None:
        if not (tasks_dir / MANIFEST).is_file():
            raise PretrainflowError(
                f"{tasks_dir}: the shipped tasks are not built there (no {MANIFEST}); run "
                f"`pretrainflow benchmarks build --out {tasks_dir}` (rule build_benchmarks)"
            )
        paths.append(tasks_dir)
    for index, path in enumerate(include_path):
        if not Path(path).is_dir():
            raise PretrainflowError(f"llm_eval.include_path[{index}]: {path} is not a directory")
        paths.append(Path(path))
    return paths


def task_manager(names: list[str], include_paths: list[Path]):
    """An lm-eval TaskManager that knows every name in ``names`` (installed tasks indexed only when needed)."""
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_defaults=False, include_path=[str(p) for p in include_paths] or None)
    if set(names) <= set(manager.all_tasks):
        return manager
    manager = TaskManager(include_path=[str(p) for p in include_paths] or None)
    for name in names:
        if name not in manager.all_tasks:
            close = difflib.get_close_matches(name, manager.all_tasks, n=3, cutoff=0.75)
            hint = f"; close names: {close}" if close else ""
            raise PretrainflowError(
                f"llm_eval.tasks: {name!r} is not an lm-eval task installed here (lm-eval {_lm_eval_version()}), "
                f"nor a shipped one {shipped_task_names()}, nor one in {[str(p) for p in include_paths]}{hint}"
            )
    return manager


def load_tasks(names: list[str], include_paths: list[Path]) -> tuple[Any, list[Any]]:
    """(task manager, the built tasks/groups in the order given); each task's data is read here, offline."""
    manager = task_manager(names, include_paths)
    built = []
    for name in names:
        try:
            loaded = manager.load([name])
        except Exception as err:  # datasets raises many kinds (FileNotFoundError, ConnectionError, DatasetNotFound...)
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else ""
            raise PretrainflowError(
                f"llm_eval.tasks: task {name!r}: its data could not be read offline ({type(err).__name__}: "
                f"{first_line[:300]}); put the dataset in the Hugging Face cache named by llm_eval.hf_home "
                f"(now HF_HOME={os.environ.get('HF_HOME', '~/.cache/huggingface')}) or point the task's YAML at local files"
            ) from err
        if name in loaded["groups"]:
            built.append(loaded["groups"][name])
        elif name in loaded["tasks"]:
            built.append(loaded["tasks"][name])
        else:  # a tag: its tasks
            built += list(loaded["tasks"].values())
    return manager, built


def _lm_eval_version() -> str:
    from importlib.metadata import version

    return version("lm_eval")


def _device(spec: HarnessSpec) -> tuple[str, str, str]:
    """(device for the harness, its name for the rows, dtype): a GPU when the run trained on GPUs and one is here."""
    import torch

    if trains_on_gpus(spec.pretrain_spec.get("devices") or {}) and torch.cuda.is_available():
        dtype = "bfloat16" if spec.pretrain_spec.get("precision") == "bf16" else "float32"
        return "cuda", torch.cuda.get_device_name(0), dtype
    return "cpu", "cpu", "float32"


def _number(value: Any) -> float | None:
    """A finite float, or None for the harness's "N/A" and the like."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def metric_values(task_results: dict[str, Any]) -> list[tuple[str, float, float | None]]:
    """(metric, value, stderr) of one task's harness results, percent where the metric is a fraction.

    >>> metric_values({"alias": "x", "acc,none": 0.25, "acc_stderr,none": 0.024, "acc_norm,none": "N/A"})
    [('acc', 25.0, 2.4)]
    """
    keys = [key for key in task_results if "," in key and not key.split(",")[0].endswith("_stderr")]
    filters_of: dict[str, int] = {}
    for key in keys:
        filters_of[key.split(",")[0]] = filters_of.get(key.split(",")[0], 0) + 1
    out = []
    for key in keys:
        metric, filter_name = key.split(",", 1)
        value, stderr = _number(task_results[key]), _number(task_results.get(f"{metric}_stderr,{filter_name}"))
        if value is None:
            continue
        scale = 100.0 if metric in PERCENT_METRICS else 1.0
        name = metric if filters_of[metric] == 1 else key
        out.append((name, value * scale, None if stderr is None else round(stderr * scale, 12)))
    return out


def _split(config: dict[str, Any]) -> str:
    if config.get("test_split"):
        return "test"
    return "valid" if config.get("validation_split") else "train" if config.get("training_split") else "test"


def result_rows(
    results: dict[str, Any], spec: HarnessSpec, *, common: dict[str, Any], checksums: dict[str, str]
) -> list[dict[str, Any]]:
    """Rows of every task (and group) in ``lm_eval.simple_evaluate``'s results."""
    rows = []
    for task, task_results in results["results"].items():
        split = _split(results.get("configs", {}).get(task, {}))
        for metric, value, stderr in metric_values(task_results):
            fields = {"task": task, "split": split, "metric": metric, "value": value, "stderr": stderr}
            rows.append(make_row(config=spec.to_dict(), dataset_checksum=checksums.get(task), **fields, **common))
    return rows


def evaluate_harness(
    spec: HarnessSpec, model_dir: Path, tasks_dir: Path | None, summary: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Run the harness on ``model_dir`` for ``spec``'s tasks and return the result rows (see the module docstring)."""
    check_model_dir(model_dir)
    include_paths = _include_paths(spec.eval.tasks, tasks_dir, spec.eval.include_path)
    checksums = {}
    if tasks_dir is not None:
        manifest = json.loads((tasks_dir / MANIFEST).read_text())
        checksums = dict.fromkeys(manifest["tasks"], manifest["sha256"])
    with offline_environment(spec.eval.hf_home):
        manager, tasks = load_tasks(spec.eval.tasks, include_paths)
        import lm_eval
        from lm_eval.utils import make_table

        device, device_name, dtype = _device(spec)
        start = time.time()
        results = lm_eval.simple_evaluate(
            model="hf",
            model_args={"pretrained": str(model_dir), "dtype": dtype},
            tasks=tasks,
            task_manager=manager,
            batch_size=spec.eval.batch_size,
            device=device,
            limit=spec.eval.limit,
            num_fewshot=spec.eval.num_fewshot,
            log_samples=False,
        )
        wall = time.time() - start
    print(make_table(results))
    run = spec.pretrain_spec
    common = {
        "run_id": spec.run_id, "stage": "evaluate", "model": (run.get("model") or {}).get("name", "hf"),
        "pretrain_source": run.get("corpus", "unknown"), "seed": run.get("seed"),
        "step": (summary or {}).get("step"), "world_size": 1, "devices": f"1 x {device_name}", "wall_seconds": wall,
    }  # fmt: skip
    return result_rows(results, spec, common=common, checksums=checksums)
