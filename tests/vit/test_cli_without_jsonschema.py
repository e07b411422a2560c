"""The CLI where jsonschema is not installed (the GPU image lacks jsonschema, referencing, rpds-py): ``--help`` and
the stage commands, which take resolved ``--spec`` JSON, work; ``check``, which validates a study, says what to
install in one line instead of a traceback. A meta-path blocker in sitecustomize.py makes the libraries unimportable."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BLOCKER = """
import sys

class _Blocked:
    NAMES = {"jsonschema", "jsonschema_specifications", "referencing", "rpds"}

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in self.NAMES:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
        return None

sys.meta_path.insert(0, _Blocked())
"""


@pytest.fixture
def without_jsonschema(tmp_path):
    """Run ``pretrainflow ...`` in a fresh interpreter where jsonschema & co. cannot be imported."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(textwrap.dedent(BLOCKER))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocker), str(REPO / "src")]), "OMP_NUM_THREADS": "1"}

    def run(*argv: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "pretrainflow.cli", *argv]
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path)

    probe = subprocess.run([sys.executable, "-c", "import jsonschema"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "blocked by the test" in probe.stderr  # the blocker is active
    return run


def test_help_and_stage_commands_run_without_jsonschema(without_jsonschema, tmp_path):
    from pretrainflow.datasets.spec import check_spec

    helped = without_jsonschema("--help")
    assert helped.returncode == 0 and "pretrain-vit" in helped.stdout, helped.stderr
    tiny = {"name": "t", "family": "fractaldb", "num_classes": 2, "instances_per_class": 2, "image_size": 16}
    spec = check_spec({**tiny, "num_shards": 1, "seed": 0, "params": {}}, "datasets.t")
    out = tmp_path / "categories.parquet"
    searched = without_jsonschema("datasets", "search", "--spec", json.dumps(spec), "--out", str(out))
    assert searched.returncode == 0 and out.is_file(), searched.stderr[-2000:]
    # a stage command with a bad spec reports it like everywhere else (one line, exit 2), not an ImportError
    bad = without_jsonschema("pretrain-vit", "--spec", '{"kind": "vit"}', "--dataset", "d", "--out", "o")
    assert bad.returncode == 2 and "--spec: missing required key(s)" in bad.stderr and "Traceback" not in bad.stderr


def test_check_names_what_to_install(without_jsonschema):
    checked = without_jsonschema("check", str(REPO / "config" / "test.yaml"))
    assert checked.returncode == 2 and "Traceback" not in checked.stderr
    assert "validating a study needs jsonschema and referencing" in checked.stderr
