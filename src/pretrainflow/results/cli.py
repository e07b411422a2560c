"""`pretrainflow aggregate` (the results rule) and `pretrainflow results` (what a user reads).

pretrainflow results                                   # the study under results/studies/ (when it is the only one)
pretrainflow results --study newton-digits-cpu         # cells x tasks, top-1 mean ± sd over replicates, as text
pretrainflow results --by pretrain_source --format latex                     # a table a paper can paste
pretrainflow results --by config.recipe.optimizer.name model                 # group by a config key
pretrainflow results --compare pretrain_source=fdb-tiny pretrain_source=scratch   # paired over replicates
pretrainflow results --study default --study test                            # two studies of one results/ tree
pretrainflow results --summary elsewhere/results/studies/a/summary.parquet      # a summary anywhere (with --study too)
pretrainflow results --x config.pretrain_spec.dataset_spec.num_classes --plot classes.png
pretrainflow results --task digits --format csv > digits.csv                # tidy statistics, full precision
pretrainflow results --format json | jq '.[] | {cell, mean, unit}'          # the same, one JSON object per row
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pretrainflow.errors import PretrainflowError
from pretrainflow.study import layout

# table.TABLE_FORMATS + table.TIDY_FORMATS, spelled out so that `--help` does not import pandas (a test compares them)
FORMATS = ("text", "markdown", "latex", "csv", "json")
# The plots `pretrainflow aggregate` writes into --plots and the pages into --tables, named as rule aggregate_results
# expects them (study/layout.py; each flagged for the report)
PLOTS = tuple(Path(path).name for path in (layout.DOWNSTREAM_PLOT, layout.VIT_LOSS_PLOT, layout.LLM_LOSS_PLOT))
PAGES = tuple(Path(path).name for path in (layout.STATISTICS_PAGE, layout.JOBS_PAGE))


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    agg = subparsers.add_parser(
        "aggregate", help="gather row files and job benchmarks into summary.parquet, plots and the report's tables"
    )
    agg.add_argument("--rows", nargs="*", default=[], help="result row Parquet files")
    agg.add_argument("--vit-curves", nargs="*", default=[], help="metrics.parquet of ViT pretraining runs")
    agg.add_argument("--llm-curves", nargs="*", default=[], help="metrics.parquet of LLM pretraining runs")
    agg.add_argument("--study", required=True, help="canonical JSON of the study config")
    agg.add_argument("--cells-from-study", action="store_true",
                     help="set each row's cell and replicate from the study's expansion (else: run id, 0)")  # fmt: skip
    agg.add_argument("--metric", default="top1", help="primary metric (default: %(default)s)")
    agg.add_argument("--out", required=True, help="summary Parquet file")
    agg.add_argument("--statistics", default=None, help="statistics Parquet file (default: next to --out)")
    agg.add_argument("--plots", required=True, help="directory for the PNG plots")
    agg.add_argument("--benchmarks", nargs="*", default=[],
                     help="Snakemake benchmark files of the jobs (results/benchmarks/jobs/<rule>/<wildcards>.tsv)")  # fmt: skip
    agg.add_argument("--benchmarks-out", default=None,
                     help="measured jobs Parquet file (default: benchmarks.parquet next to --out)")  # fmt: skip
    agg.add_argument("--tables", default=None,
                     help="directory for the HTML tables `snakemake --report` shows (default: tables/ next to --out)")  # fmt: skip
    agg.add_argument("--study-out", default=None, help="the study as JSON (default: study.json next to --out)")
    agg.set_defaults(func=run_aggregate)

    res = subparsers.add_parser("results", help="statistics of the aggregated results: tables, comparisons, plots")
    res.add_argument("--study", nargs="+", action="extend", default=None, metavar="NAME",
                     help="studies under results/studies/ to read, each tagged in a `study` column (default: the "
                          "only study there)")  # fmt: skip
    res.add_argument("--summary", nargs="+", action="extend", default=None, metavar="PATH",
                     help="summary file(s) anywhere, read with the --study ones and tagged alike")  # fmt: skip
    res.add_argument("--metric", default="top1", help="metric to show (default: %(default)s)")
    res.add_argument("--by", nargs="+", default=None, metavar="COL",
                     help="group columns or config.<dotted key> (default: cell pretrain_source, and study first "
                          "when several summaries; with --compare: none)")  # fmt: skip
    res.add_argument("--columns", default="task", help="column that becomes table columns (default: %(default)s)")
    res.add_argument("--task", nargs="*", default=[], help="only these tasks")
    res.add_argument("--run", nargs="*", default=[], help="only these run ids")
    res.add_argument("--cell", nargs="*", default=[], help="only these cells")
    res.add_argument("--split", default=None, help="only this split (e.g. test)")
    res.add_argument("--format", choices=FORMATS, default="text",
                     help="text, markdown, latex: tables to read; csv, json: tidy statistics (default: %(default)s)")  # fmt: skip
    res.add_argument("--compare", nargs=2, metavar=("A", "B"),
                     help="paired A - B over replicates; A and B are KEY=VALUE[,KEY=VALUE] or a cell name")  # fmt: skip
    res.add_argument("--x", metavar="KEY", help="with --plot: the numeric column or config key on the x axis")
    res.add_argument("--plot", metavar="PNG", help="with --x: write the metric against --x (series: --by)")
    res.add_argument("--schema", action="store_true", help="print the row schema (Markdown) instead")
    res.set_defaults(func=run_results)


def _curves(paths: list[str]):
    import pandas as pd

    # results/pretrain/<run>/metrics.parquet -> label <run>
    return {Path(path).parent.name: pd.read_parquet(path) for path in paths}


def run_aggregate(args: argparse.Namespace) -> int:
    from pretrainflow.results import plots, report, table
    from pretrainflow.results.aggregate import aggregate, write_job_benchmarks

    study = json.loads(args.study)
    cells = None
    if args.cells_from_study:
        from pretrainflow.study.load import load_study  # the training specs (torch): only when asked

        cells = {run: (ref.cell, ref.replicate) for run, ref in load_study(study).cells.items()}
    out = Path(args.out)
    summary = aggregate(args.rows, out, study, args.statistics, cells).to_pandas()
    jobs = write_job_benchmarks(args.benchmarks, args.benchmarks_out or out.with_name("benchmarks.parquet"), study)
    downstream, vit_loss, llm_loss = (Path(args.plots) / name for name in PLOTS)
    plots.plot_downstream(summary, downstream, study, metric=args.metric)
    plots.plot_loss_curves(_curves(args.vit_curves), vit_loss, study, "ViT pretraining (DeepSpeed)")
    plots.plot_loss_curves(_curves(args.llm_curves), llm_loss, study, "LLM pretraining (megatron-core)")
    # What Snakemake's report shows beside the plots (report() flags in workflow/rules/results.smk)
    tables_dir = Path(args.tables) if args.tables else out.with_name("tables")
    statistics = report.statistics_tables(summary, args.metric)
    statistics_page, jobs_page = (tables_dir / name for name in PAGES)
    report.write_tables_page(statistics, f"Study {study.get('study', '')}: results", statistics_page)
    report.write_tables_page(report.jobs_tables(jobs.to_pandas()), "Measured jobs", jobs_page)
    report.write_study(study, args.study_out or out.with_name("study.json"))
    if statistics:
        heading, grid = statistics[0]
        print(table.render(grid, 2, "text", heading))
    return 0


def run_results(args: argparse.Namespace) -> int:
    from pretrainflow.results import table
    from pretrainflow.results.aggregate import read_summaries, study_summaries

    if args.schema:
        print(schema_markdown())
        return 0
    paths = study_summaries(args.study, args.summary)
    summary = read_summaries(paths)
    # a filter that matches nothing is an error there, naming the filter and the values present
    chosen = table.select(
        summary, metric=args.metric, tasks=args.task, runs=args.run, cells=args.cell, split=args.split
    )
    if chosen.empty:
        raise PretrainflowError(f"no result rows in {', '.join(paths)}")
    if args.x or args.plot:
        return _plot(args, chosen, paths)
    if args.compare:
        return _compare(args, chosen)
    by = args.by or [*(["study"] if len(paths) > 1 else []), "cell", "pretrain_source"]
    if args.columns in by:
        raise PretrainflowError(f"--columns {args.columns!r} is also in --by {by}: a column cannot be both")
    from pretrainflow.results.columns import with_columns
    from pretrainflow.results.stats import describe

    chosen = with_columns(chosen, [*by, args.columns])
    if args.format in table.TIDY_FORMATS:
        print(table.tidy(describe(chosen, [*by, args.columns]), args.format), end="")
        return 0
    grid, heading = table.stats_table(chosen, by, args.columns, args.metric, args.format)
    print(table.render(grid, len(by), args.format, heading))
    return 0


def _compare(args: argparse.Namespace, chosen) -> int:
    from pretrainflow.results import table
    from pretrainflow.results.columns import Selector, with_columns
    from pretrainflow.results.stats import compare

    a, b = Selector.parse(args.compare[0], "--compare A"), Selector.parse(args.compare[1], "--compare B")
    by = args.by or []
    result = compare(with_columns(chosen, [*a.keys, *b.keys, *by]), a, b, by)
    if any(result.unpaired):
        print(f"note: rows without a partner replicate (left out): A {result.unpaired[0]}, B {result.unpaired[1]}",
              file=sys.stderr)  # fmt: skip
    if args.format in table.TIDY_FORMATS:
        print(table.tidy(result.table, args.format), end="")
        return 0
    keys = list(result.matched_on)
    what = (f"A - B paired by replicate and {', '.join(keys)}; A = {a.text}, B = {b.text}; "
            "95% CI of the mean difference, paired t-test")  # fmt: skip
    heading = table.title(args.metric, sorted(set(chosen["split"])), what)
    print(table.render(table.compare_grid(result.table, keys, args.format), len(keys), args.format, heading))
    return 0


def _plot(args: argparse.Namespace, chosen, paths: list[str]) -> int:
    from pretrainflow.results import plots
    from pretrainflow.results.aggregate import study_of, study_tags

    if not (args.x and args.plot):
        raise PretrainflowError("--x KEY and --plot PNG go together: the x axis and the file to write")
    studies = {tag: json.loads(study_of(path) or "null") for path, tag in zip(paths, study_tags(paths), strict=True)}
    left_out = plots.plot_metric_against(chosen, args.x, args.plot, studies, metric=args.metric, series=args.by or [])
    note = f" ({left_out} rows without {args.x} left out)" if left_out else ""
    print(f"wrote {args.plot}: {args.metric} against {args.x}{note}")
    return 0


def schema_markdown() -> str:
    """The row schema as a Markdown table (the README's "Results rows" section is this output)."""
    from pretrainflow.results.rows import ROW_SCHEMA

    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{name}` | {dtype} | {meaning} |" for name, (dtype, meaning) in ROW_SCHEMA.items()]
    return "\n".join(lines)
