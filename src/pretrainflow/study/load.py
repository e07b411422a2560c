"""Load a study, validate it (schema, cross-references, each area's typed checks) and expand it into specs.

The Snakefile calls ``load_study(config)`` once at parse time: a malformed study stops there with a ConfigError naming
the key path, before any job starts and before any file is written. Every unit of work (a dataset, a corpus, a
pretraining run, a fine-tuning cell) gets a self-contained resolved spec; its canonical JSON is what a rule passes to
``pretrainflow <command> --spec`` and what is hashed into ``config_hash``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pretrainflow.corpora.spec import check_corpus
from pretrainflow.datasets.spec import check_spec as check_dataset
from pretrainflow.errors import ConfigError
from pretrainflow.io import canonical_json
from pretrainflow.study import layout
from pretrainflow.study.ablations import expand_ablation
from pretrainflow.study.schema import validate_study_schema
from pretrainflow.train.llm.spec import check_llm_run
from pretrainflow.train.vit.spec import check_finetune, check_task, check_vit_run

# Typed checks owned by each area, called as check(spec, where); a returned dict replaces the spec (that is how an area
# fills in its defaults, so the resolved spec that is hashed shows every value used).
AREA_CHECKS = {
    "dataset": check_dataset,
    "corpus": check_corpus,
    "vit": check_vit_run,
    "llm": check_llm_run,
    "task": check_task,
    "finetune": check_finetune,
}


def _area_check(area: str, spec: dict[str, Any], where: str) -> dict[str, Any]:
    resolved = AREA_CHECKS[area](spec, where)
    return spec if resolved is None else resolved


@dataclass(kw_only=True, slots=True)
class Study:
    """A validated, expanded study. All specs are plain JSON-able dicts."""

    name: str
    seed: int
    datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    corpora: dict[str, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)  # run id -> pretrain run spec
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    finetunes: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (run id, task) -> spec
    results: dict[str, Any] = field(default_factory=dict)

    def runs_of_kind(self, kind: str) -> list[str]:
        return [run_id for run_id, run in self.runs.items() if run["kind"] == kind]

    def spec_json(self, section: str, key: Any) -> str:
        """Canonical JSON of one spec, e.g. ``spec_json("runs", "vit-micro-fdb")`` (what rules pass as --spec)."""
        return canonical_json(getattr(self, section)[key])

    def row_files(self) -> list[str]:
        """Every result row file the study produces (inputs of the aggregation)."""
        files = [layout.rows_file(run_id, layout.PRETRAIN_ROWS_TASK) for run_id in self.runs_of_kind("vit")]
        files += [layout.rows_file(run_id, task) for run_id, task in self.finetunes]
        files += [layout.rows_file(run_id, layout.HELDOUT_ROWS_TASK) for run_id in self.runs_of_kind("llm")]
        return files


def read_study_file(path: str | Path) -> dict[str, Any]:
    """Read a study YAML file (errors name the file)."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"{path}: cannot read the study ({err})") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of study sections, got {type(data).__name__}")
    return data


def load_study(config: dict[str, Any] | str | Path) -> Study:
    """Validate and expand a study given as a dict (Snakemake's ``config``) or a YAML path."""
    raw = read_study_file(config) if isinstance(config, (str, Path)) else copy.deepcopy(dict(config))
    validate_study_schema(raw)
    seed = raw.get("seed", 0)
    study = Study(name=raw["study"], seed=seed, results=raw.get("results", {}))
    for name, dataset in raw.get("datasets", {}).items():
        spec = {"seed": seed, **dataset, "name": name}
        study.datasets[name] = _area_check("dataset", spec, f"datasets.{name}")
    for name, corpus in raw.get("corpora", {}).items():
        study.corpora[name] = _area_check("corpus", {"seed": seed, **corpus, "name": name}, f"corpora.{name}")
    for name, task in raw.get("tasks", {}).items():
        study.tasks[name] = _area_check("task", {**task, "name": name}, f"tasks.{name}")
    runs = _expand_runs(raw)
    for run_id, run in runs.items():
        study.runs[run_id] = _resolve_run(study, run_id, run, seed)
    _expand_finetunes(study, raw.get("finetune"))
    return study


def _expand_runs(raw: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Base runs plus every ablation cell; each expanded run is re-validated against the schema."""
    base_runs = raw.get("pretrain", {})
    runs = dict(base_runs)
    for name, ablation in raw.get("ablations", {}).items():
        for run_id, run in expand_ablation(name, ablation, base_runs).items():
            if run_id in runs:
                raise ConfigError(f"ablations.{name}: run id {run_id!r} already exists")
            plain = {key: value for key, value in run.items() if key != "ablation"}
            try:
                validate_study_schema({"study": raw["study"], "pretrain": {ablation["base"]: plain}})
            except ConfigError as err:
                raise ConfigError(f"ablations.{name} (run {run_id}): {err}") from err
            runs[run_id] = run
    return runs


def _resolve_run(study: Study, run_id: str, run: dict[str, Any], seed: int) -> dict[str, Any]:
    """Cross-reference a run's dataset/corpus and merge in its spec, then run the area's typed check."""
    where = f"pretrain.{run.get('ablation', {}).get('base', run_id)}"
    spec = {"seed": seed, **run, "run_id": run_id}
    if run["kind"] == "vit":
        dataset = run.get("dataset")
        if dataset not in study.datasets:
            raise ConfigError(f"{where}.dataset: unknown dataset {dataset!r}; expected one of {sorted(study.datasets)}")
        spec["dataset_spec"] = study.datasets[dataset]
    else:
        corpus = run.get("corpus")
        if corpus not in study.corpora:
            raise ConfigError(f"{where}.corpus: unknown corpus {corpus!r}; expected one of {sorted(study.corpora)}")
        unknown = sorted(set(run.get("blend") or {}) - set(study.corpora))
        if unknown:
            raise ConfigError(f"{where}.blend: unknown corpora {unknown}; expected some of {sorted(study.corpora)}")
        spec["corpus_spec"] = study.corpora[corpus]
    return _area_check(run["kind"], spec, where)


def scratch_run_id(model: dict[str, Any]) -> str:
    """Id of the from-scratch baseline of a model: ``scratch-vit-micro``."""
    return "scratch-" + str(model["name"]).replace("_", "-")


def _expand_finetunes(study: Study, finetune: dict[str, Any] | None) -> None:
    """Every ViT run x every fine-tuning task, plus one scratch baseline per distinct model when asked for."""
    if not finetune:
        return
    finetune = _area_check("finetune", finetune, "finetune")
    for task in finetune.get("tasks", []):
        if task not in study.tasks:
            raise ConfigError(f"finetune.tasks: unknown task {task!r}; expected one of {sorted(study.tasks)}")
    sources: dict[str, tuple[str, dict[str, Any], dict[str, Any] | None]] = {}
    for run_id in study.runs_of_kind("vit"):
        run = study.runs[run_id]
        sources[run_id] = ("pretrained", run["model"], run)
    if finetune.get("scratch_baseline", False):
        for run_id in study.runs_of_kind("vit"):
            model = study.runs[run_id]["model"]
            scratch_id = scratch_run_id(model)
            if scratch_id in sources and sources[scratch_id][1] != model:
                raise ConfigError(
                    f"finetune.scratch_baseline: runs use model {model['name']!r} with different settings; "
                    "give the variants distinct registered names so each scratch baseline has its own id"
                )
            sources[scratch_id] = ("scratch", model, None)
    for run_id, (source, model, pretrain_spec) in sources.items():
        for task in finetune.get("tasks", []):
            study.finetunes[(run_id, task)] = {
                "run_id": run_id,
                "source": source,
                "model": model,
                "task": task,
                "task_spec": study.tasks[task],
                "recipe": finetune.get("recipe", {}),
                "seed": (pretrain_spec or {}).get("seed", study.seed),
                "pretrain_spec": pretrain_spec,
            }
