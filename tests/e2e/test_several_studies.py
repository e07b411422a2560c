"""Two studies in one results/ tree: each plans its own tables, shares the units whose specs are equal, and is refused
at plan time where it would replace a unit another study built from a different spec under the same name.

No job runs: study "a" (config/test.yaml renamed) is made to look finished by creating every output its dry run lists,
with a config.json in every unit directory as the stage publisher writes it (provenance.study = "a"), and letting
`snakemake --touch --forceall` order their times and record every job's metadata (params included, as a real run
does). What it proves: the plan of a second study (which Snakemake derives from files, times and that metadata: a rule
param that differs between studies would rerun a shared unit), and the guard. That the real publisher records the
study is checked by the end-to-end study test.
"""

import json
import re
from pathlib import Path

import pytest
import yaml
from test_study import ROOT, planned_jobs, snakemake

from pretrainflow.io import config_hash
from pretrainflow.provenance import config_record
from pretrainflow.study import layout
from pretrainflow.study.load import load_study
from pretrainflow.study.shared_units import check_shared_units, study_units

pytestmark = pytest.mark.slow  # three Snakemake dry runs and a --touch (about 30 s on 2 cores)


def _study(tmp_path: Path, name: str, edit=None) -> Path:
    study = yaml.safe_load((ROOT / "config" / "test.yaml").read_text())
    study["study"] = name
    if edit:
        edit(study)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(study))
    return path


def _outputs(dry_run: str) -> list[str]:
    """Every file a dry run lists as a job's output or benchmark."""
    files = []
    for line in dry_run.splitlines():
        if match := re.match(r"^\s+(output|benchmark): (.*)$", line):
            files += match.group(2).split(", ")
    return files


def _fake_finished(workdir: Path, study_file: Path) -> None:
    """Every output of the study, each unit's config.json recorded as made by the study, times in DAG order."""
    study = load_study(study_file)
    dry = snakemake(workdir, "-n", study=study_file)
    assert dry.returncode == 0, dry.stderr[-3000:]
    for name in _outputs(dry.stdout):
        (workdir / name).parent.mkdir(parents=True, exist_ok=True)
        (workdir / name).touch()
    for _, directory, spec in study_units(study):
        record = config_record(spec)
        record["provenance"]["study"] = study.name
        (workdir / directory).mkdir(parents=True, exist_ok=True)
        (workdir / directory / "config.json").write_text(json.dumps(record))
    touch = snakemake(workdir, "--touch", "--forceall", study=study_file)  # every job: its metadata too
    assert touch.returncode == 0, touch.stderr[-3000:]
    assert planned_jobs(snakemake(workdir, "-n", study=study_file).stdout) == []


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """A results/ tree in which study "a" is finished."""
    workdir = tmp_path_factory.mktemp("tree")
    _fake_finished(workdir, _study(workdir, "a"))
    return workdir


def test_a_second_study_plans_its_own_tables_and_shares_equal_units(tree):
    # b = a with the lr grid at another value: one new cell (vit-test-fdb.lr-0.0002); every other unit is a's
    study_b = _study(tree, "b", lambda s: s["ablations"]["lr"]["grid"].update({"optimizer.lr": [2.0e-4]}))
    dry = snakemake(tree, "-n", study=study_b)
    assert dry.returncode == 0, dry.stderr[-3000:]
    jobs = {
        (rule, (re.search(r"run=([^,\s]+)", wildcards) or [None, None])[1])
        for rule, wildcards in planned_jobs(dry.stdout)
    }
    new = "vit-test-fdb.lr-0.0002"
    assert jobs == {
        ("pretrain_vit", new), ("pretrain_rows", new), ("finetune_vit", new), ("evaluate_vit", new),
        ("aggregate_results", None), ("all", None),
    }  # fmt: skip
    written = _outputs(dry.stdout)
    assert layout.study_path(layout.SUMMARY, "b") in written
    assert not [path for path in written if path.startswith(layout.study_path(layout.STUDY_DIR, "a"))]


def test_a_unit_of_the_same_name_with_another_spec_is_refused_at_plan_time(tree):
    study_c = _study(tree, "c", lambda s: s["pretrain"]["vit-test-fdb"]["optimizer"].update({"lr": 5.0e-4}))
    ours = config_hash(load_study(study_c).runs["vit-test-fdb"])[:12]
    theirs = config_hash(load_study(_study(tree, "a")).runs["vit-test-fdb"])[:12]
    dry = snakemake(tree, "-n", study=study_c)
    assert dry.returncode != 0 and "Building DAG" not in dry.stdout + dry.stderr
    message = dry.stdout + dry.stderr
    assert "study 'c' would replace units that another study built from a different spec" in message, message[-3000:]
    assert (
        f"run vit-test-fdb (results/pretrain/vit-test-fdb): built by study 'a' with config hash {theirs}; "
        f"study 'c' defines it with config hash {ours}"
    ) in message
    assert "fine-tune vit-test-fdb/digits" in message  # its pretrained weights differ, so its spec does too
    assert "run gpt-test" not in message and "dataset fdb-test" not in message  # equal units are shared
    assert "Rename the unit in one of the studies" in message and "delete its directory to replace it" in message


def test_the_same_study_with_a_changed_spec_is_an_ordinary_rerun(tree):
    # what the guard lets through (Snakemake then reruns the unit, as test_study shows): a's own earlier spec, and
    # a directory whose maker is not recorded
    changed = load_study(_study(tree, "a", lambda s: s["pretrain"]["vit-test-fdb"]["optimizer"].update({"lr": 5e-4})))
    check_shared_units(changed, root=tree)
    renamed = load_study(_study(tree, "d", lambda s: s["pretrain"]["vit-test-fdb"]["optimizer"].update({"lr": 5e-4})))
    with pytest.raises(Exception, match="built by study 'a'"):
        check_shared_units(renamed, root=tree)
    record = json.loads((tree / "results/pretrain/vit-test-fdb/config.json").read_text())
    del record["provenance"]["study"]
    unrecorded = tree / "unrecorded"
    (unrecorded / "results/pretrain/vit-test-fdb").mkdir(parents=True)
    (unrecorded / "results/pretrain/vit-test-fdb/config.json").write_text(json.dumps(record))
    check_shared_units(renamed, root=unrecorded)
