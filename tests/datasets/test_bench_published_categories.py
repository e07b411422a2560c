"""bench/published_categories.py draws the categories the published VisualAtom / RCDB scripts draw, and bench_table.py
prints the side-by-side table with the recorded published figures.

The expected rows were written by the unmodified published scripts (render_VisualAtom.py @de80c69, make_rcdb.py
@7a28054) run once with a stand-in ``noise`` module (``pnoise1`` returning 0: their random stream never depends on the
noise values) and the released settings (make_VisualAtom.sh, RCDB_render.sh), read from their log of ``random`` calls
and from make_rcdb.py's param/*.csv files.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

import published_categories as pc  # noqa: E402

VA_COLUMNS = ["num_vertices", "num_orbits", "perlin", "line_width", "radius", "freq1", "freq2", "oval_x", "oval_y"]
RCDB_COLUMNS = ["num_vertices", "num_orbits", "perlin", "line_width"]
# render_VisualAtom.py --numof_thread 20 --thread_num 0 --numof_classes 60 --numof_instances 2: classes 0-2
VISUALATOM_2_INSTANCES = [
    (337, 146, 3.3897349477489307, 0.07637746189766141, 26, 3, 15, 1.7609624449125756, 1.4722452435761166),
    (238, 79, 1.6700199961351063, 0.09593893354436678, 44, 8, 14, 1.327133513224674, 1.6255482522247728),
    (227, 183, 3.9538263457879377, 0.019822093356212368, 46, 7, 11, 1.671536514182407, 1.7262252949556764),
]
# the released layout (--numof_classes 40 --numof_instances 1000, thread 0): class 1 of VisualAtom-1k
VISUALATOM_RELEASED_1 = (
    849,
    74,
    2.7951053512363737,
    0.07318350413001727,
    11,
    14,
    12,
    1.2331427942758284,
    1.5865415842722588,
)
# --thread_num 1 --numof_classes 20 --numof_instances 1: the first category of thread 1 (class 50 when released)
VISUALATOM_THREAD_1 = (
    257,
    24,
    0.3394879806356865,
    0.08354988781294496,
    57,
    9,
    8,
    1.6059441656784625,
    1.6068017336408378,
)
# make_rcdb.py --numof_thread 10 --thread_num 0 --numof_classes 40 --numof_instances 2: classes 0-3
RCDB_2_INSTANCES = [
    (14, 196, 0.2524272875508373, 0.011791870367106105),
    (36, 57, 1.8431727330485597, 0.09788587669890009),
    (142, 169, 2.0388506544617138, 0.04957243578272344),
    (60, 139, 2.6391218101573446, 0.08481770672323036),
]
# the released layout (--numof_classes 20 --numof_instances 1000, thread 0): class 1 of RCDB-1k
RCDB_RELEASED_1 = (126, 107, 2.8526813690941095, 0.0004573978502549814)
# --thread_num 1 --numof_classes 10 --numof_instances 1: the first category of thread 1 (class 100 when released)
RCDB_THREAD_1 = (5, 22, 1.4442298959344289, 0.01690836156604437)


def rows(table: pd.DataFrame, columns: list[str]) -> list[tuple]:
    return [tuple(row) for row in table[columns].itertuples(index=False)]


def test_stream_is_pythons_random_call_for_call():
    ours, theirs = pc.Stream(7), random.Random(7)
    for span in (1, 2, 3, 100, 101, 255, 256, 257, 1000, 1025, 2**31 - 1):  # powers of two and off-by-ones
        for _ in range(50):
            assert ours.randint(-span // 2, span - span // 2) == theirs.randint(-span // 2, span - span // 2)
        assert ours.uniform(0.0, 4.0) == theirs.uniform(0.0, 4.0)
        assert ours.expovariate(1 / 100) == theirs.expovariate(1 / 100)
        calls = span % 977 + 300  # skips across the 256-word blocks and past the generated words
        ours.skip_random(calls)
        for _ in range(calls):
            theirs.random()
        assert ours.random() == theirs.random()
    assert ours.getrandbits(9) == theirs.getrandbits(9)


def test_visualatom_categories_are_the_published_scripts():
    assert rows(pc.published("visualatom", 3, instances=2), VA_COLUMNS) == VISUALATOM_2_INSTANCES
    assert rows(pc.published("visualatom", 2), VA_COLUMNS)[1] == VISUALATOM_RELEASED_1  # 1,000 instances between
    released_layout = pc.published("visualatom", 51, instances=1)  # classes 50.. come from thread 1 (seed 2)
    assert rows(released_layout, VA_COLUMNS)[50] == VISUALATOM_THREAD_1
    assert list(released_layout.class_id) == list(range(51))


def test_rcdb_categories_are_the_published_scripts():
    assert rows(pc.published("rcdb", 4, instances=2), RCDB_COLUMNS) == RCDB_2_INSTANCES
    assert rows(pc.published("rcdb", 2), RCDB_COLUMNS)[1] == RCDB_RELEASED_1  # 1,000 instances replayed in between
    assert rows(pc.published("rcdb", 101, instances=1), RCDB_COLUMNS)[100] == RCDB_THREAD_1


def test_bad_requests_name_the_value():
    with pytest.raises(ValueError, match="family: .*'fractaldb'"):
        pc.published("fractaldb", 2)
    with pytest.raises(ValueError, match="classes: expected 1 .. 1000 .* got 1001"):
        pc.published("rcdb", 1001)
    with pytest.raises(ValueError, match="instances: expected >= 1, got 0"):
        pc.published("rcdb", 1, instances=0)


def test_categories_from_a_file(tmp_path):
    like = pc.published("rcdb", 3, instances=1)
    path = tmp_path / "cats.csv"
    like.drop(columns="class_id").iloc[::-1].to_csv(path, index=False)  # reversed: renumbered in file order
    got = pc.from_file(path, like)
    assert list(got.class_id) == [0, 1, 2] and rows(got, RCDB_COLUMNS) == rows(like, RCDB_COLUMNS)[::-1]
    assert got.dtypes.equals(like.dtypes)
    like.drop(columns=["class_id", "perlin"]).to_csv(path, index=False)
    with pytest.raises(SystemExit, match=r"cats.csv: missing category columns \['perlin'\]"):
        pc.from_file(path, like)
    like.head(2).to_csv(path, index=False)
    with pytest.raises(SystemExit, match="cats.csv: 2 categories, the bench needs 3"):
        pc.from_file(path, like)
    with pytest.raises(SystemExit, match="nope.csv: no such file of category parameters"):
        pc.from_file(tmp_path / "nope.csv", like)


def test_bench_table_prints_the_readme_table():
    # the smallest run: one RCDB category, two images, one round, no search (a few seconds)
    argv = [sys.executable, str(REPO / "bench" / "bench_table.py"), "--families", "rcdb", "--classes", "1",
            "--instances", "2", "--rounds", "1", "--search", "0"]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO / "src"))
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "| family | published (recorded) | ours, same PNG as published | ours, own shard format |" in out
    row = next(line for line in out.splitlines() if line.startswith("| RCDB 512 px (1 x 2) | 32 images/s | "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    for text in cells[2:]:  # "rate (ratio x)": the ratio is the rate over the recorded 32 images/s
        rate, ratio = text.split(" (")
        quotient = float(rate.replace(",", "")) / 32.0  # of the printed (rounded) rate: within half a unit and a bit
        assert abs(quotient - int(ratio.rstrip("x)").replace(",", ""))) <= 0.52, text
    assert "recorded on a 2-core project VM" in out and "not measured by this run" in out
    assert "categories: published" in out and "load average" in out
