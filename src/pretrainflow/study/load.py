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

from pretrainflow.benchmarks.spec import check_llm_eval
from pretrainflow.corpora.spec import check_corpus
from pretrainflow.datasets.spec import check_spec as check_dataset
from pretrainflow.errors import ConfigError
from pretrainflow.io import canonical_json
from pretrainflow.study import layout
from pretrainflow.study.ablations import (
    FINETUNE_PREFIX,
    expand_ablation,
    override_id,
    set_dotted,
    split_dataset_key,
    stage_overrides,
)
from pretrainflow.study.replicates import CellRef, first_of_equals, replicate_id, replicate_seeds
from pretrainflow.study.schema import validate_study_schema
from pretrainflow.train.llm.spec import check_llm_run
from pretrainflow.train.tracking import check_tracking
from pretrainflow.train.vit.spec import check_finetune, check_task, check_vit_run, trained_dict

# Typed checks owned by each area, called as check(spec, where); a returned dict replaces the spec (that is how an area
# fills in its defaults, so the resolved spec that is hashed shows every value used).
AREA_CHECKS = {
    "dataset": check_dataset,
    "corpus": check_corpus,
    "vit": check_vit_run,
    "llm": check_llm_run,
    "task": check_task,
    "finetune": check_finetune,
    "llm_eval": check_llm_eval,
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
    cells: dict[str, CellRef] = field(
        default_factory=dict
    )  # run id (pretraining, fine-tuning source) -> cell, replicate
    notes: list[str] = field(default_factory=list)  # what the plan should say: units found identical and run once
    llm_evals: dict[str, dict[str, Any]] = field(default_factory=dict)  # LLM run id -> harness spec (llm_eval section)
    tracking: dict[str, Any] = field(default_factory=dict)  # W&B (train/tracking.py): never in a spec, never hashed

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
        files += [layout.rows_file(run_id, layout.HARNESS_ROWS_TASK) for run_id in self.llm_evals]
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
    study.tracking = check_tracking(raw.get("tracking"), raw["study"])  # passed to the training rules as --tracking
    for name, dataset in raw.get("datasets", {}).items():
        spec = {"seed": seed, **dataset, "name": name}
        study.datasets[name] = _area_check("dataset", spec, f"datasets.{name}")
    for name, corpus in raw.get("corpora", {}).items():
        study.corpora[name] = _area_check("corpus", {"seed": seed, **corpus, "name": name}, f"corpora.{name}")
    for name, task in raw.get("tasks", {}).items():
        study.tasks[name] = _area_check("task", {**task, "name": name}, f"tasks.{name}")
    runs = _expand_runs(raw)
    _add_dataset_cells(study, raw, runs)
    sources = _replicate_and_resolve_runs(study, raw, runs)
    _expand_finetunes(study, raw.get("finetune"), sources)
    _expand_llm_evals(study, raw.get("llm_eval"))
    return study


def _expand_llm_evals(study: Study, section: dict[str, Any] | None) -> None:
    """One harness evaluation per LLM run (pretrainflow.benchmarks.spec): the checked section, the run's id and spec."""
    if section is None:
        return
    if layout.HARNESS_ROWS_TASK in study.tasks:
        raise ConfigError(
            f"tasks.{layout.HARNESS_ROWS_TASK}: the name is reserved for the lm-evaluation-harness rows of LLM runs "
            f"(results/rows/{{run}}/{layout.HARNESS_ROWS_TASK}.parquet, llm_eval); choose another task name"
        )
    resolved = _area_check("llm_eval", section, "llm_eval")
    for run_id in study.runs_of_kind("llm"):
        study.llm_evals[run_id] = {"run_id": run_id, **resolved, "pretrain_spec": study.runs[run_id]}


def _replicate_and_resolve_runs(
    study: Study, raw: dict[str, Any], runs: dict[str, dict[str, Any]]
) -> list[tuple[str, dict[str, Any], dict[str, Any], int]]:
    """Resolve every replicate of every run into ``study.runs`` and ``study.cells``; return the fine-tuning sources.

    A grid cell pretrains under the id of its dataset and pretraining parts only (``base.draw-patch``, not
    ``base.draw-patch.lr-0.1``): cells that differ only in fine-tune keys share one pretraining. Runs equal apart from
    their names pretrain once (a note says which). Each source is (unit id, the resolved spec it pretrains as, its
    definition, its replicate seed).
    """
    seeds = _replicate_seeds(raw)
    resolved: dict[str, dict[str, Any]] = {}
    sources = []
    for cell_id, run in _init_order(runs):
        replicate_keys = seeds[(run.get("ablation") or {}).get("name")]
        pretrain_cell = _pretrain_cell_id(cell_id, run)
        for index, key in enumerate(replicate_keys):
            unit_id = replicate_id(cell_id, index, len(replicate_keys))
            run_id = replicate_id(pretrain_cell, index, len(replicate_keys))
            if run_id not in resolved:
                spec = {**run, "seed": run.get("seed", study.seed) + key}
                spec = _with_init_run(spec, index, runs, seeds, resolved, run.get("ablation", {}).get("base", cell_id))
                resolved[run_id] = _resolve_run(study, run_id, spec, cell_id)
                study.cells[run_id] = CellRef(pretrain_cell, index)
            study.cells.setdefault(unit_id, CellRef(cell_id, index))
            sources.append((unit_id, run_id, run, key))
    trained_as = first_of_equals(resolved.items())
    for spec in resolved.values():  # a run started from a run found equal to another starts from the one trained
        init = spec.get("init") or {}
        if init.get("run") in trained_as and trained_as[init["run"]] != init["run"]:
            init["run"] = trained_as[init["run"]]
            init["run_spec"] = resolved[init["run"]]
    for run_id, spec in resolved.items():
        if trained_as[run_id] == run_id:
            study.runs[run_id] = spec
        else:
            study.notes.append(f"run {run_id} equals run {trained_as[run_id]}: pretrained once, as the latter")
    return [(unit_id, resolved[trained_as[run_id]], run, key) for unit_id, run_id, run, key in sources]


def _init_order(runs: dict[str, dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """The runs with every run an ``init.run`` names before the runs that start from it; an unknown name, a ViT run or
    a cycle is an error naming the key."""
    ordered: list[tuple[str, dict[str, Any]]] = []
    state: dict[str, str] = {}

    def visit(run_id: str, chain: list[str]) -> None:
        if state.get(run_id) == "visiting":
            raise ConfigError(
                f"pretrain.{chain[0]}.init.run: runs start from each other in a cycle ({' -> '.join(chain)})"
            )
        if state.get(run_id) == "done":
            return
        state[run_id] = "visiting"
        target = (runs[run_id].get("init") or {}).get("run")
        if target is not None:
            where = f"pretrain.{runs[run_id].get('ablation', {}).get('base', run_id)}.init.run"
            llm_runs = sorted(name for name, run in runs.items() if run["kind"] == "llm")
            if runs.get(target, {}).get("kind") != "llm":
                raise ConfigError(f"{where}: unknown LLM run {target!r}; expected one of {llm_runs}")
            visit(target, [*chain, target])
        state[run_id] = "done"
        ordered.append((run_id, runs[run_id]))

    for run_id in runs:
        visit(run_id, [run_id])
    return ordered


def _with_init_run(
    spec: dict[str, Any],
    index: int,
    runs: dict[str, dict[str, Any]],
    seeds: dict,
    resolved: dict[str, dict[str, Any]],
    name: str,
) -> dict[str, Any]:
    """``spec`` starting from replicate ``index`` of the run its ``init.run`` names (its only one when that run has one
    replicate), with that run's resolved spec merged in as ``init.run_spec`` (so it is hashed with this run)."""
    target = (spec.get("init") or {}).get("run")
    if target is None:
        return spec
    count = len(seeds[(runs[target].get("ablation") or {}).get("name")])
    if index >= count > 1:
        raise ConfigError(f"pretrain.{name}.init.run: {target!r} has {count} replicates, fewer than this run")
    source = replicate_id(_pretrain_cell_id(target, runs[target]), min(index, count - 1), count)
    return {**spec, "init": {**spec["init"], "run": source, "run_spec": resolved[source]}}


def _pretrain_cell_id(cell_id: str, run: dict[str, Any]) -> str:
    """The id a grid cell pretrains under: its base and its non-fine-tune parts."""
    if not stage_overrides(run, "finetune"):
        return cell_id
    ablation = run["ablation"]
    kept = {key: value for key, value in ablation["overrides"].items() if key not in stage_overrides(run, "finetune")}
    return override_id(ablation["base"], kept)


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


def _resolve_run(study: Study, run_id: str, run: dict[str, Any], cell_id: str) -> dict[str, Any]:
    """Cross-reference a run's dataset/corpus and merge in its spec, then run the area's typed check (errors name the
    study key: ``pretrain.<name>`` of a written run, ``ablations.<grid> (run <id>)`` of a grid cell)."""
    ablation = run.get("ablation")
    # A grid cell's error names the grid and the cell before the base run's key the value ended up in.
    where = (
        f"ablations.{ablation['name']} (run {run_id}): pretrain.{ablation['base']}"
        if ablation
        else f"pretrain.{cell_id}"
    )
    spec = {"seed": study.seed, **run, "run_id": run_id}
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
        hf = (run.get("init") or {}).get("hf")
        note = f"{where}.init.hf: {hf} is not on this machine (the import_hf job reads it)"
        if isinstance(hf, str) and not Path(hf).is_dir() and note not in study.notes:
            study.notes.append(note)  # not an error: a study is planned where its data may not be
    return _area_check(run["kind"], spec, where)


def _replicate_seeds(raw: dict[str, Any]) -> dict[str | None, list[int]]:
    """Replicate seeds of the base runs (key None, the study's ``replicates``) and of each ablation's cells."""
    study_seeds = replicate_seeds(raw.get("replicates", 1), "replicates")
    seeds: dict[str | None, list[int]] = {None: study_seeds}
    for name, ablation in raw.get("ablations", {}).items():
        value = ablation.get("replicates")
        seeds[name] = study_seeds if value is None else replicate_seeds(value, f"ablations.{name}.replicates")
    return seeds


def _add_dataset_cells(study: Study, raw: dict[str, Any], runs: dict[str, dict[str, Any]]) -> None:
    """Make the dataset of every grid cell with ``datasets.*`` axes, and point the cell's run at it.

    A dataset cell is ``<dataset>.<key>-<value>...``; cells of several runs that vary the dataset alike share it, and a
    cell equal to a dataset the study already has is that dataset (generated once).
    """
    same_as: dict[str, str] = {}  # dataset cell id -> the dataset generated for it
    for run_id, run in runs.items():
        overrides = stage_overrides(run, "dataset")
        if not overrides:
            continue
        base = run["dataset"]
        where = f"ablations.{run['ablation']['name']} (run {run_id})"
        cell_id = override_id(base, overrides)
        if cell_id not in same_as:
            dataset = copy.deepcopy(raw["datasets"][base])
            for key, value in overrides.items():
                set_dotted(dataset, split_dataset_key(key, where)[1], value, f"{where}.grid.{key}")
            try:
                validate_study_schema({"study": raw["study"], "pretrain": {}, "datasets": {base: dataset}})
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from err
            spec = _area_check("dataset", {"seed": study.seed, **dataset, "name": base}, f"{where}: datasets.{base}")
            study.datasets[cell_id] = {**spec, "name": cell_id}
            same_as[cell_id] = first_of_equals(study.datasets.items())[cell_id]
            if same_as[cell_id] != cell_id:
                del study.datasets[cell_id]
                study.notes.append(
                    f"dataset {cell_id} equals dataset {same_as[cell_id]}: generated once, as the latter"
                )
        run["dataset"] = same_as[cell_id]


def scratch_run_id(model: dict[str, Any]) -> str:
    """Id of the from-scratch baseline of a model: ``scratch-vit-micro``."""
    return "scratch-" + str(model["name"]).replace("_", "-")


def _finetune_recipe(finetune: dict[str, Any], overrides: dict[str, Any], where: str) -> dict[str, Any]:
    """The study's recipe as written, with a cell's ``finetune.recipe.*`` overrides applied, checked and resolved."""
    recipe = copy.deepcopy(finetune.get("recipe", {}))
    for key, value in overrides.items():
        set_dotted(recipe, key[len(FINETUNE_PREFIX) :], value, f"{where}.grid.{key}")
    return _area_check("finetune", {**finetune, "recipe": recipe}, f"{where}: finetune")["recipe"]


def _expand_finetunes(
    study: Study,
    finetune: dict[str, Any] | None,
    sources: list[tuple[str, dict[str, Any], dict[str, Any], int]],
) -> None:
    """Every ViT run (id, the resolved spec it pretrains as, its definition, its replicate seed) x every task, plus
    one scratch baseline per distinct model, fine-tune recipe and replicate when asked for.

    Fine-tunes whose specs are equal apart from their run ids run once (a note says which).
    """
    if not finetune:
        return
    written, finetune = finetune, _area_check("finetune", finetune, "finetune")
    for task in finetune.get("tasks", []):
        if task not in study.tasks:
            raise ConfigError(f"finetune.tasks: unknown task {task!r}; expected one of {sorted(study.tasks)}")
    units: dict[str, dict[str, Any]] = {}  # fine-tune source id -> {source, model, recipe, seed, pretrain_spec}
    scratch: dict[str, dict[str, Any]] = {}
    for run_id, pretrain_spec, run, key in sources:
        if pretrain_spec["kind"] != "vit":
            continue
        overrides = stage_overrides(run, "finetune")
        where = f"ablations.{(run.get('ablation') or {}).get('name')} (run {run_id})"
        recipe = _finetune_recipe(written, overrides, where) if overrides else finetune.get("recipe", {})
        common = {"model": pretrain_spec["model"], "recipe": recipe, "seed": study.seed + key}
        # what the run trains: staging its data (DATA_ACCESS_KEYS) changes no fine-tune built on it
        units[run_id] = {"source": "pretrained", **common, "pretrain_spec": trained_dict(pretrain_spec)}
        if finetune.get("scratch_baseline", False):
            cell, index = study.cells[run_id].cell, study.cells[run_id].replicate
            scratch_cell = override_id(scratch_run_id(pretrain_spec["model"]), overrides)
            scratch_id = scratch_cell if run_id == cell else f"{scratch_cell}.rep-{index}"
            other = scratch.get(scratch_id)
            if other is not None and other["model"] != common["model"]:
                raise ConfigError(
                    f"finetune.scratch_baseline: runs use model {common['model']['name']!r} with different settings; "
                    "give the variants distinct registered names so each scratch baseline has its own id"
                )
            scratch[scratch_id] = {"source": "scratch", **common, "pretrain_spec": None}
            study.cells.setdefault(scratch_id, CellRef(scratch_cell, index))
    specs = {
        (unit_id, task): {
            "run_id": unit_id,
            "source": unit["source"],
            "model": unit["model"],
            "task": task,
            "task_spec": study.tasks[task],
            "recipe": unit["recipe"],
            "seed": unit["seed"],
            "pretrain_spec": unit["pretrain_spec"],
        }
        for unit_id, unit in {**units, **scratch}.items()
        for task in finetune.get("tasks", [])
    }
    same_as = first_of_equals(specs.items())
    for key, spec in specs.items():
        if same_as[key] == key:
            study.finetunes[key] = spec
        else:
            study.notes.append(f"fine-tune {'/'.join(key)} equals {'/'.join(same_as[key])}: run once, as the latter")
