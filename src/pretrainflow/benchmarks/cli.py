"""`pretrainflow benchmarks build|instructions|evaluate` (rules build_benchmarks, evaluate_llm_harness in
workflow/rules/evaluate_llm_harness.smk; build_instructions in workflow/rules/finetune_llm.smk).

    pretrainflow benchmarks build --out results/benchmarks/tasks
    pretrainflow benchmarks instructions --out results/instructions/python-stdlib
    pretrainflow benchmarks evaluate --spec "$SPEC" --model results/export/gpt-micro-pydocs-hf \\
        --tasks-dir results/benchmarks/tasks --summary results/pretrain/gpt-micro-pydocs/summary.json \\
        --out results/rows/gpt-micro-pydocs/harness.parquet
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    group = subparsers.add_parser("benchmarks", help="LLM benchmarks through lm-evaluation-harness (offline)")
    commands = group.add_subparsers(dest="benchmarks_command", required=True, metavar="<step>")

    build = commands.add_parser("build", help="build the shipped tasks' data from this Python's stdlib docstrings")
    build.add_argument("--out", required=True, type=Path, help="task directory to write (an lm-eval include path)")
    build.set_defaults(func=run_build)

    ins = commands.add_parser(
        "instructions", help="build the SFT instruction set from the stdlib docstrings the benchmark does not hold out"
    )
    ins.add_argument("--out", required=True, type=Path, help="directory to write (instructions.jsonl, manifest.json)")
    ins.set_defaults(func=run_instructions)

    ev = commands.add_parser("evaluate", help="score a Hugging Face export on the study's tasks -> result rows")
    ev.add_argument("--spec", required=True, help="resolved harness spec (canonical JSON, Study.llm_evals)")
    ev.add_argument("--model", required=True, type=Path, help="Hugging Face directory, results/export/{run}-hf")
    ev.add_argument("--tasks-dir", type=Path, default=None, help="the built shipped tasks, results/benchmarks/tasks")
    ev.add_argument("--summary", type=Path, default=None, help="the run's summary.json (the step of the rows)")
    ev.add_argument("--out", required=True, type=Path, help="results/rows/{run}/harness.parquet")
    ev.set_defaults(func=run_evaluate)


def run_build(args: argparse.Namespace) -> int:
    from pretrainflow.benchmarks.pydoc_tasks import build_task_dir

    start = time.time()
    manifest = build_task_dir(args.out)
    print(f"[benchmarks] {manifest['items']} items from the Python {manifest['python']} stdlib for "
          f"{manifest['tasks']} -> {args.out} ({time.time() - start:.1f} s)")  # fmt: skip
    return 0


def run_instructions(args: argparse.Namespace) -> int:
    from pretrainflow.benchmarks.pydoc_instructions import build_instruction_dir

    start = time.time()
    manifest = build_instruction_dir(args.out)
    print(f"[benchmarks] {manifest['examples']} instruction examples about {manifest['names']} stdlib names (none "
          f"held out by the benchmark) -> {args.out} ({time.time() - start:.1f} s)")  # fmt: skip
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from pretrainflow.benchmarks.harness import evaluate_harness
    from pretrainflow.benchmarks.spec import HarnessSpec
    from pretrainflow.results.rows import write_rows

    spec = HarnessSpec.from_dict(json.loads(args.spec))
    summary = json.loads(args.summary.read_text()) if args.summary else None
    rows = evaluate_harness(spec, args.model, args.tasks_dir, summary)
    write_rows(rows, args.out)
    for row in rows:
        stderr = "" if row["stderr"] is None else f" +- {row['stderr']:.2f}"
        print(f"[benchmarks] {spec.run_id} {row['task']} {row['metric']} = {row['value']:.2f}{stderr}")
    return 0
