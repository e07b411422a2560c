"""A one-page HTML report: the statistics table (mean ± sd over replicates), the plots, and the study config."""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from pretrainflow.io import atomic_write_text


def write_report(
    table: pd.DataFrame, heading: str, plots: Sequence[str | Path], study: Mapping[str, Any], path: str | Path
) -> None:
    """Write ``path`` (atomically): ``table`` (text cells, pretrainflow.results.table.stats_table) under ``heading``;
    plot links are relative to the report so the results folder can be moved."""
    base = Path(path).parent
    images = "\n".join(
        f'<figure><img src="{html.escape(os.path.relpath(plot, base))}" style="max-width:100%"></figure>'
        for plot in plots
    )
    body = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>pretrainflow: {html.escape(str(study.get("study", "")))}</title>
<style>body{{font-family:sans-serif;margin:2em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:right}}</style></head><body>
<h1>Study {html.escape(str(study.get("study", "")))}</h1>
<h2>{html.escape(heading)}</h2>
{table.to_html(index=False, na_rep="-")}
<h2>Plots</h2>
{images}
<h2>Study config</h2>
<pre>{html.escape(json.dumps(study, indent=2, sort_keys=True))}</pre>
</body></html>
"""
    atomic_write_text(path, body)
