"""Category parameters as the published VisualAtom and RCDB scripts draw them, for benches that set our speed beside theirs.

A family's drawing cost depends on its categories (VisualAtom: K orbits x q vertices, from 200 to 200,000 per image), so a
figure is comparable with a published one only over the same categories. Our ``search`` draws each category from its
own seeded stream; the published scripts draw them from Python's ``random``, seeded ``thread_num + 1`` once per thread,
with every image's draws (gray levels, noise positions, centres) in the same stream between two categories. This module
replays that stream call for call (see /work/shared/reference/fdsl.md) and returns the categories of the released data
sets in our columns, so ``family.render`` draws the published categories (the instances' own draws stay ours: same laws,
our streams). Nothing is drawn: a noise position ``random.uniform(0, 10000)`` is one ``random()`` = two 32-bit words of
the Mersenne Twister, so the 2 q positions of an orbit are skipped with one ``getrandbits(64 * 2 q)`` (the same words).

Released layouts (``make_VisualAtom.sh``, ``RCDB_render.sh``): 1,000 categories x 1,000 instances; VisualAtom over 20
threads (category c is the (c mod 50)-th of thread c // 50), RCDB over 10 (100 per thread). FractalDB needs nothing
here: our search reproduces the published search stream exactly (``bench_fractaldb.py --verify``).

Checked against the unmodified published scripts, run with a stand-in ``noise`` module (the stream never depends on the
noise values): tests/datasets/test_bench_published_categories.py holds the values they wrote.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pandas as pd

from pretrainflow.datasets.rcdb import RCDBParams
from pretrainflow.datasets.visualatom import VisualAtomParams

# Released layout per family: (categories in all, threads, instances per category).
RELEASED = {"visualatom": (1000, 20, 1000), "rcdb": (1000, 10, 1000)}
FAMILIES = tuple(RELEASED)


class Stream:
    """Python's ``random.Random(seed)``: the calls the published scripts make, with the same values and the same words
    of the Mersenne Twister consumed (CPython's algorithms: ``randint`` by rejection on ``getrandbits(n.bit_length())``,
    ``random()`` from two words, ``expovariate`` = -log(1 - random()) / lambda), plus ``skip_random``. The words come
    in blocks from numpy's MT19937 started from ``random.Random(seed)``'s state: skipping millions of noise positions
    per category costs microseconds instead of seconds. tests/datasets/test_bench_published_categories.py checks every
    call against ``random.Random``."""

    BLOCK = 256  # words generated at a time; longer skips are advanced without output (twice as fast)

    def __init__(self, seed: int) -> None:
        key = random.Random(seed).getstate()[1]
        self._generator = np.random.MT19937()
        self._generator.state = {"bit_generator": "MT19937", "state": {"key": np.array(key[:624], dtype=np.uint32),
                                                                        "pos": key[624]}}  # fmt: skip
        self._words = np.empty(0, dtype=np.uint64)
        self._next = 0  # index of the next word; may point past the block (words skipped but not yet generated)

    def _word(self) -> int:
        if self._next >= self._words.size:
            beyond = self._next - self._words.size  # skipped words not generated yet
            if beyond:
                self._generator.random_raw(beyond, output=False)
            self._words, self._next = self._generator.random_raw(self.BLOCK), 0
        self._next += 1
        return int(self._words[self._next - 1])

    def skip_random(self, calls: int) -> None:
        """Advance past ``calls`` calls of ``random()`` (two words each), drawing nothing."""
        self._next += 2 * calls

    def getrandbits(self, bits: int) -> int:
        return self._word() >> (32 - bits)  # 1 <= bits <= 32: one word, its top bits

    def random(self) -> float:
        high, low = self._word() >> 5, self._word() >> 6
        return (high * 67108864.0 + low) * (1.0 / 9007199254740992.0)

    def randint(self, low: int, high: int) -> int:
        span = high - low + 1
        bits = span.bit_length()
        value = self.getrandbits(bits)
        while value >= span:
            value = self.getrandbits(bits)
        return low + value

    def uniform(self, low: float, high: float) -> float:
        return low + (high - low) * self.random()

    def expovariate(self, rate: float) -> float:
        return -math.log(1.0 - self.random()) / rate


def _visualatom_thread(stream: Stream, count: int, instances: int, p: VisualAtomParams) -> list[dict]:
    """The first ``count`` categories of a published thread's ``stream`` (render_VisualAtom.py's call order)."""
    rows = []
    for _ in range(count):
        row = {
            "num_vertices": stream.randint(p.vertices_min, p.vertices_max),
            "num_orbits": stream.randint(p.orbits_min, p.orbits_max),
            "perlin": stream.uniform(p.perlin_min, p.perlin_min + p.perlin_range),
            "line_width": stream.uniform(0.0, p.line_width_max),
            "radius": stream.randint(p.radius_min, p.radius_min + p.radius_range),
            "freq1": stream.randint(p.freq_min, p.freq_max),
        }
        while True:
            row["freq2"] = stream.randint(p.freq_min, p.freq_max)
            if row["freq2"] != row["freq1"] or row["freq1"] == 0:
                break
        row["oval_x"] = stream.uniform(1.0, p.oval_rate)
        row["oval_y"] = stream.uniform(1.0, p.oval_rate)
        rows.append(row)
        stream.randint(-p.start_pos, p.start_pos)  # the first instance's centre (row, column)
        stream.randint(-p.start_pos, p.start_pos)
        for _ in range(instances):
            for _ in range(row["num_orbits"]):
                stream.randint(0, 255)  # the orbit's gray
                stream.skip_random(2 * row["num_vertices"])  # its noise positions, x then y
            stream.randint(-p.start_pos, p.start_pos)  # the next instance's centre
            stream.randint(-p.start_pos, p.start_pos)
    return rows


def _rcdb_thread(stream: Stream, count: int, instances: int, p: RCDBParams) -> list[dict]:
    """The first ``count`` categories of a published thread's ``stream`` (make_rcdb.py's call order)."""
    rows = []
    for _ in range(count):
        while True:
            vertices = int(stream.expovariate(1 / p.vertices_mean))
            if 2 < vertices <= p.vertices_max:
                break
        row = {
            "num_vertices": vertices,
            "num_orbits": stream.randint(p.orbits_min, p.orbits_min + p.orbits_range),
            "perlin": stream.uniform(p.perlin_min, p.perlin_min + p.perlin_range),
            "line_width": stream.uniform(0.0, p.line_width_max),
        }
        rows.append(row)
        stream.randint(p.radius_min, p.radius_min + p.radius_range)  # the first instance's radius, ovals, centre
        stream.skip_random(2)
        stream.randint(-p.start_pos, p.start_pos)
        stream.randint(-p.start_pos, p.start_pos)
        for _ in range(instances):
            for _ in range(row["num_orbits"]):
                stream.randint(0, p.canvas_size // 2)  # the orbit's gray (the script's randint(0, size / 2))
                stream.skip_random(2 * vertices)  # its noise positions, x then y
            stream.skip_random(2)  # the next instance's ovals, radius, centre
            stream.randint(p.radius_min, p.radius_min + p.radius_range)
            stream.randint(-p.start_pos, p.start_pos)
            stream.randint(-p.start_pos, p.start_pos)
    return rows


def published(family: str, classes: int, instances: int | None = None, params=None, stream_type=Stream) -> pd.DataFrame:
    """Categories 0 .. classes - 1 of the released ``family`` data set, as its published script draws them, with our
    columns (``class_id`` first). ``instances``: instances per category of the run replayed (default: the released
    1,000; the images' draws sit between two categories in the stream, so this changes every category after the
    first of a thread). ``params``: the family's params (default: its released values). ``stream_type``: a class like
    ``Stream`` built from the thread's seed (tests pass a ``random.Random`` with ``skip_random``)."""
    if family not in RELEASED:
        raise ValueError(f"family: expected one of {', '.join(FAMILIES)}, got {family!r}")
    total, threads, released_instances = RELEASED[family]
    if not 1 <= classes <= total:
        raise ValueError(f"classes: expected 1 .. {total} (the released {family} categories), got {classes!r}")
    instances = released_instances if instances is None else instances
    if instances < 1:
        raise ValueError(f"instances: expected >= 1, got {instances!r}")
    per_thread = total // threads
    draw, params = (
        (_visualatom_thread, params or VisualAtomParams())
        if family == "visualatom"
        else (_rcdb_thread, params or RCDBParams())
    )
    rows = []
    for thread in range((classes - 1) // per_thread + 1):
        rows += draw(stream_type(thread + 1), min(per_thread, classes - thread * per_thread), instances, params)
    return pd.DataFrame([{"class_id": c, **row} for c, row in enumerate(rows)])


def from_file(path: Path, like: pd.DataFrame) -> pd.DataFrame:
    """Category parameters from a CSV or parquet file, one row per category with the columns of ``like`` (a family's
    ``search`` output); ``class_id`` is renumbered 0 .. n - 1 in file order."""
    if not path.is_file():
        raise SystemExit(f"{path}: no such file of category parameters (expected a CSV or parquet file)")
    table = pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    missing = [c for c in like.columns if c != "class_id" and c not in table.columns]
    if missing:
        raise SystemExit(f"{path}: missing category columns {missing} (expected {list(like.columns)})")
    if len(table) < len(like):
        raise SystemExit(f"{path}: {len(table)} categories, the bench needs {len(like)}")
    table = table.head(len(like))[[c for c in like.columns if c != "class_id"]].copy()
    for column in table.columns:  # same types as our search's columns (integers stay integers)
        table[column] = table[column].astype(like[column].dtype)
    table.insert(0, "class_id", range(len(table)))
    return table
