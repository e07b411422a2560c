"""A built wheel carries the study schemas and templates: installed outside the checkout, `pretrainflow check`
validates a study and `pretrainflow studies` prints the shipped ones.

The schemas stay in workflow/schemas/ (the rules read them there); src/pretrainflow/study/schemas is a symlink to that
folder and the wheel build copies the files behind it (pyproject's package-data). The wheel is built from a copy of
pyproject.toml, src/ and workflow/schemas/ (so the checkout gets no build/ folder), with the venv's setuptools (no
build isolation: no network), and installed with `pip --target` next to the venv's dependencies. About 15 s.
"""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from pretrainflow.study.schema import SCHEMA_DIR

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = sorted(path.name for path in (ROOT / "workflow" / "schemas").glob("*.schema.yaml"))


def test_the_package_reads_the_workflow_schemas_in_the_checkout():
    assert SCHEMA_DIR.resolve() == (ROOT / "workflow" / "schemas").resolve()
    assert "config.schema.yaml" in SCHEMAS


def test_missing_schemas_are_one_line_naming_the_file(tmp_path):
    from pretrainflow.errors import PretrainflowError
    from pretrainflow.study.schema import validate_study_schema

    with pytest.raises(PretrainflowError, match=r"study schemas not found: .*config\.schema\.yaml is missing"):
        validate_study_schema({"study": "x"}, schema_dir=tmp_path)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A folder holding the wheel's files (pip install --no-deps --target), far from the checkout."""
    source = tmp_path_factory.mktemp("source")
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copytree(
        ROOT / "src", source / "src", symlinks=True, ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    shutil.copytree(ROOT / "workflow" / "schemas", source / "workflow" / "schemas")
    shutil.copytree(ROOT / "config", source / "config")  # behind the study/templates link
    wheels = tmp_path_factory.mktemp("wheels")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, source], check=True)
    (wheel,) = wheels.glob("pretrainflow-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert sorted(n.rsplit("/", 1)[1] for n in names if n.startswith("pretrainflow/study/schemas/")) == SCHEMAS
    templates = sorted(n.split("pretrainflow/study/templates/")[1] for n in names if "study/templates/" in n)
    shipped = ["config.yaml", *(f"studies/{p.name}" for p in sorted((ROOT / "config" / "studies").glob("*.yaml")))]
    assert templates == shipped  # not config/test.yaml, the test suite's own study
    target = tmp_path_factory.mktemp("site")
    subprocess.run([*pip, "install", "--no-deps", "--target", target, wheel], check=True)
    return target


def _pretrainflow(installed: Path, *args, cwd: Path) -> subprocess.CompletedProcess:
    # PYTHONPATH puts the installed copy before the venv's editable one; the console script is the wheel's own.
    env = {**os.environ, "PYTHONPATH": str(installed)}
    return subprocess.run([installed / "bin" / "pretrainflow", *args], cwd=cwd, env=env, capture_output=True,
                          text=True)  # fmt: skip


def _check(installed: Path, study: Path, cwd: Path) -> subprocess.CompletedProcess:
    return _pretrainflow(installed, "check", study, cwd=cwd)


def test_an_installed_wheel_ships_the_study_templates(installed, tmp_path):
    listed = _pretrainflow(installed, "studies", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == ["default", *(p.stem for p in sorted((ROOT / "config" / "studies").glob("*.yaml")))]
    shown = _pretrainflow(installed, "studies", "newton-digits-cpu", cwd=tmp_path)
    assert shown.stdout == (ROOT / "config" / "studies" / "newton-digits-cpu.yaml").read_text()
    study = tmp_path / "mine.yaml"
    study.write_text(shown.stdout)
    done = _check(installed, study, tmp_path)
    assert done.returncode == 0 and done.stdout.startswith("study newton-digits-cpu: OK"), done.stderr
    unknown = _pretrainflow(installed, "studies", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "no template 'nope'; shipped: default," in unknown.stderr


def test_an_installed_wheel_checks_a_study_outside_the_checkout(installed, tmp_path):
    study = tmp_path / "study.yaml"
    shutil.copy(ROOT / "config" / "config.yaml", study)
    where = subprocess.run([sys.executable, "-c", "import pretrainflow.study.schema as s; print(s.SCHEMA_DIR)"],
                           cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(installed)}, capture_output=True,
                           text=True, check=True)  # fmt: skip
    assert Path(where.stdout.strip()) == installed / "pretrainflow" / "study" / "schemas"  # not the checkout's
    done = _check(installed, study, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("study default: OK")


def test_the_installed_schemas_reject_a_bad_study(installed, tmp_path):
    study = tmp_path / "bad.yaml"
    text = (ROOT / "config" / "config.yaml").read_text()
    study.write_text(text.replace("num_shards: 2 ", 'num_shards: "two" ', 1))
    assert study.read_text() != text
    done = _check(installed, study, tmp_path)
    assert done.returncode == 2 and "num_shards" in done.stderr and "Traceback" not in done.stderr, done.stderr
