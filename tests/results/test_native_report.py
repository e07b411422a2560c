"""`snakemake --report` builds Snakemake's own report from the aggregate rule's report() flags and workflow/report/.

Running a study first would take minutes, so the test study's working directory holds only stand-ins for the files
the aggregate rule flags (the report needs the flagged files and nothing else: other outputs may be missing, and
missing job metadata is a warning). What this proves: exactly these files are flagged (one more would stop the report
as "marked for report but does not exist", one fewer would be missing from it), each under its category with its
caption, every caption and the front page render (jinja and reStructuredText, no error or docutils system message),
and the report builds with this Snakemake. It does not prove what the real files contain: the aggregate's tests
check the tables and plots it writes, and the end-to-end study test runs the rule that writes them.
Reads the report's embedded `var results` / `var categories` JSON (Snakemake 9's html_reporter).
"""

import json
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

# flagged file -> (category, subcategory, a phrase of its caption)
FLAGGED = {
    "results/studies/test/tables/statistics.html": ("Results", "Tables", "mean ± sd (n=N)"),
    "results/studies/test/plots/downstream_accuracy.png": ("Results", "Plots", "confidence interval of that mean"),
    "results/studies/test/plots/pretrain_loss_vit.png": ("Training", "Other", "Training loss against optimizer step"),
    "results/studies/test/plots/pretrain_loss_llm.png": ("Training", "Other", "Training loss against optimizer step"),
    "results/studies/test/tables/jobs.html": ("Jobs", "Other", "Memory is sampled, not traced"),
    "results/studies/test/study.json": ("Study", "Other", "plans it again"),
}


def _embedded(html: str, name: str) -> dict:
    match = re.search(rf"^\s*var {name} = (\{{.*\}});?\s*$", html, re.MULTILINE)
    assert match, f"no `var {name}` in the report (Snakemake's report layout changed?)"
    return json.loads(match.group(1))


def test_report_shows_the_flagged_results_with_their_captions(tmp_path):
    for path in FLAGGED:
        stub = tmp_path / path
        stub.parent.mkdir(parents=True, exist_ok=True)
        stub.write_bytes(b"\x89PNG\r\n\x1a\n" if path.endswith(".png") else b"<p>stand-in</p>")
    (tmp_path / "results" / "studies" / "test" / "study.json").write_text('{"study": "test"}\n')
    report = tmp_path / "report.zip"
    run = subprocess.run([sys.executable, "-m", "snakemake", "--report", str(report), "--snakefile",
                          str(ROOT / "Snakefile"), "--directory", str(tmp_path), "--configfile",
                          str(ROOT / "config" / "test.yaml")], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    with zipfile.ZipFile(report) as archive:
        html = archive.read("report/report.html").decode()
        embedded = {Path(name).name for name in archive.namelist() if name.startswith("report/data/raw/")}
    assert embedded == {Path(path).name for path in FLAGGED}
    results = _embedded(html, "results")
    assert set(results) == set(FLAGGED)
    for path, (category, subcategory, phrase) in FLAGGED.items():
        assert results[path]["job_properties"]["rule"] == "aggregate_results"
        assert phrase in results[path]["caption"], (path, results[path]["caption"])
        assert path in _embedded(html, "categories")[category][subcategory], path
    assert '"ablations": {' in html.replace("&quot;", '"')  # the study config, rendered into its caption
    assert "pretrainflow study <strong>test</strong>" in html  # the front page, workflow/report/workflow.rst
    assert "system-message" not in html  # docutils' mark of a caption it could not render
