"""Units shared between studies in one results/ tree, and the plan-time guard against one study replacing another's.

Each study writes its tables under results/studies/<study>/ (study/layout.py), but its units (datasets, corpora,
pretraining, SFT and fine-tuning directories) live under shared, readable names: a unit whose resolved spec is equal
in two studies is one directory, built once. A unit of the same name with a different spec would be rebuilt in place
by the second study, silently replacing the first study's model (Snakemake sees changed params; without its metadata,
e.g. a copied results/ folder, it may not even notice). ``check_shared_units`` refuses that before any job starts.

Who made a unit: every unit's config.json (provenance.config_record, the one shape of datasets, corpora, imports,
pretraining, SFT and fine-tuning directories) records the study in ``provenance.study``, from the environment
variable STUDY_ENV that the workflow sets when it loads the study (workflow/rules/common.smk; jobs inherit it, and a
cluster job loads the study again). A directory without it (one made outside a study, or before the study was
recorded) is not refused: nothing tells another study's spec from this study's own earlier one, which is an ordinary
rerun.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pretrainflow.errors import ConfigError
from pretrainflow.io import config_hash
from pretrainflow.study import layout
from pretrainflow.train.vit.spec import trained_dict


def study_units(study) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(label, directory, resolved spec) of every unit directory the study's DAG builds. ``study`` is a
    ``pretrainflow.study.load.Study``."""
    vit_runs, llm_runs = study.runs_of_kind("vit"), study.runs_of_kind("llm")
    for name in sorted({study.runs[run]["dataset"] for run in vit_runs}):
        yield f"dataset {name}", layout.dataset_dir(name), study.datasets[name]
    blends = {name for run in llm_runs for name in study.runs[run].get("blend") or {study.runs[run]["corpus"]: 1}}
    for name in sorted(blends):
        yield f"corpus {name}", layout.corpus_dir(name), study.corpora[name]
    for run in vit_runs:  # its config.json records what it trains, without how it reads its data
        yield f"run {run}", layout.pretrain_dir(run), trained_dict(study.runs[run])
    for run in llm_runs:
        yield f"run {run}", layout.llm_run_dir(run, study.runs[run]), study.runs[run]
    for (run, task), spec in study.finetunes.items():
        yield f"fine-tune {run}/{task}", layout.FINETUNE_DIR.format(run=run, task=task), spec


def _record(directory: Path) -> dict[str, Any] | None:
    """The config.json of a unit directory, or None when there is none (not built yet) or it cannot be read (the
    stage's own check reports that when it reads the directory)."""
    try:
        record = json.loads((directory / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def check_shared_units(study, root: str | Path = ".") -> None:
    """Refuse a study whose unit directory under ``root`` was built by another study from a different spec.

    One ConfigError lists every such unit with both studies, both config hashes and the remedy; an equal spec (the
    unit is shared) and this study's own earlier spec (Snakemake reruns it) pass.
    """
    conflicts = []
    for label, directory, spec in study_units(study):
        record = _record(Path(root) / directory)
        if record is None:
            continue
        maker = (record.get("provenance") or {}).get("study")
        theirs, ours = str(record.get("config_hash", "")), config_hash(spec)
        if maker and maker != study.name and theirs != ours:
            conflicts.append(
                f"  {label} ({directory}): built by study {maker!r} with config hash {theirs[:12]}; "
                f"study {study.name!r} defines it with config hash {ours[:12]}"
            )
    if conflicts:
        raise ConfigError(
            f"study {study.name!r} would replace units that another study built from a different spec:\n"
            + "\n".join(conflicts)
            + "\nRename the unit in one of the studies (units of equal specs are shared, different ones need their "
            "own names), or delete its directory to replace it."
        )
