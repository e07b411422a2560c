"""`pretrainflow aggregate` (the results rule) and `pretrainflow results` (what a user reads).

pretrainflow results                                   # runs x tasks, primary metric, as aligned text
pretrainflow results --by pretrain_source --metric top1 --format markdown
pretrainflow results --task digits --format csv > digits.csv
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pretrainflow.errors import PretrainflowError


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    agg = subparsers.add_parser("aggregate", help="gather row files into summary.parquet, plots and an HTML report")
    agg.add_argument("--rows", nargs="*", default=[], help="result row Parquet files")
    agg.add_argument("--vit-curves", nargs="*", default=[], help="metrics.parquet of ViT pretraining runs")
    agg.add_argument("--llm-curves", nargs="*", default=[], help="metrics.parquet of LLM pretraining runs")
    agg.add_argument("--study", required=True, help="canonical JSON of the study config")
    agg.add_argument("--metric", default="top1", help="primary metric (default: %(default)s)")
    agg.add_argument("--out", required=True, help="summary Parquet file")
    agg.add_argument("--plots", required=True, help="directory for the PNG plots")
    agg.add_argument("--report", required=True, help="HTML report file")
    agg.set_defaults(func=run_aggregate)

    res = subparsers.add_parser("results", help="show the aggregated results table, filtered and pivoted")
    res.add_argument("--summary", default="results/summary.parquet", help="summary file (default: %(default)s)")
    res.add_argument("--metric", default="top1", help="metric to show (default: %(default)s)")
    res.add_argument("--by", nargs="+", default=["run_id", "pretrain_source"], help="row grouping columns")
    res.add_argument("--columns", default="task", help="column that becomes table columns (default: %(default)s)")
    res.add_argument("--task", nargs="*", default=[], help="only these tasks")
    res.add_argument("--run", nargs="*", default=[], help="only these run ids")
    res.add_argument("--split", default=None, help="only this split (e.g. test)")
    res.add_argument("--format", choices=["text", "csv", "markdown"], default="text")
    res.add_argument("--schema", action="store_true", help="print the row schema (Markdown) instead")
    res.set_defaults(func=run_results)


def _curves(paths: list[str]):
    import pandas as pd

    # results/pretrain/<run>/metrics.parquet -> label <run>
    return {Path(path).parent.name: pd.read_parquet(path) for path in paths}


def run_aggregate(args: argparse.Namespace) -> int:
    from pretrainflow.results import plots, table
    from pretrainflow.results.aggregate import aggregate
    from pretrainflow.results.report import write_report

    study = json.loads(args.study)
    summary = aggregate(args.rows, args.out, study).to_pandas()
    plot_dir = Path(args.plots)
    written = [
        plot_dir / "downstream_accuracy.png",
        plot_dir / "pretrain_loss_vit.png",
        plot_dir / "pretrain_loss_llm.png",
    ]
    plots.plot_downstream(summary, written[0], study, metric=args.metric)
    plots.plot_loss_curves(_curves(args.vit_curves), written[1], study, "ViT pretraining (DeepSpeed)")
    plots.plot_loss_curves(_curves(args.llm_curves), written[2], study, "LLM pretraining (megatron-core)")
    pivoted = table.pivot(table.select(summary, metric=args.metric))
    write_report(pivoted, written, study, args.report, args.metric)
    print(table.render(pivoted, "text"))
    return 0


def run_results(args: argparse.Namespace) -> int:
    from pretrainflow.results import table
    from pretrainflow.results.aggregate import read_summary

    if args.schema:
        print(schema_markdown())
        return 0
    summary = read_summary(args.summary)
    for column in [*args.by, args.columns]:
        if column not in summary.columns:
            raise PretrainflowError(f"--by/--columns {column!r}: not a column; expected one of {list(summary.columns)}")
    chosen = table.select(summary, metric=args.metric, tasks=args.task, runs=args.run, split=args.split)
    if chosen.empty:
        metrics = sorted(summary["metric"].unique())
        raise PretrainflowError(f"no rows match (metric {args.metric!r}; metrics present: {metrics})")
    print(table.render(table.pivot(chosen, by=args.by, columns=args.columns), args.format))
    return 0


def schema_markdown() -> str:
    """The row schema as a Markdown table (the README's "Results rows" section is this output)."""
    from pretrainflow.results.rows import ROW_SCHEMA

    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {dtype} | {meaning} |" for name, (dtype, meaning) in ROW_SCHEMA.items()]
    return "\n".join(lines)
