"""`pretrainflow pretrain-llm` and `pretrainflow evaluate-llm` (rules in workflow/rules/pretrain_llm.smk).

    pretrainflow pretrain-llm --spec "$SPEC" --out results/pretrain/gpt-micro-pydocs
    pretrainflow evaluate-llm --spec "$SPEC" --model results/pretrain/gpt-micro-pydocs/model.safetensors \\
        --out results/rows/gpt-micro-pydocs/heldout.parquet

pretrain-llm starts one process per device on this node (cpu_ranks on CPU, gpus_per_node on GPUs; under an outer
launcher such as srun/mpirun it runs as that rank), trains or resumes from results/checkpoints/{run}/{hash12}/, and
on success publishes the run directory. Exit code 75 = stopped by a walltime signal after a checkpoint: rerun resumes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pretrainflow.study.layout import CHECKPOINTS_ROOT, CORPORA_ROOT


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("pretrain-llm", help="pretrain a GPT through megatron-core (resumes automatically)")
    train.add_argument("--spec", required=True, help="resolved run spec (canonical JSON)")
    train.add_argument("--out", required=True, type=Path, help="run directory to publish, results/pretrain/{run}")
    train.add_argument("--corpora-dir", type=Path, default=Path(CORPORA_ROOT), help="default: %(default)s")
    train.add_argument("--checkpoints", type=Path, default=Path(CHECKPOINTS_ROOT), help="checkpoint root (%(default)s)")
    train.add_argument("--max-steps", type=int, default=None, help="stop after this step with a checkpoint (exit 75)")
    train.set_defaults(func=run_pretrain)

    ev = subparsers.add_parser("evaluate-llm", help="held-out loss and perplexity of a pretrained GPT -> result rows")
    ev.add_argument("--spec", required=True)
    ev.add_argument("--model", required=True, type=Path, help="results/pretrain/{run}/model.safetensors")
    ev.add_argument("--out", required=True, type=Path, help="results/rows/{run}/heldout.parquet")
    ev.add_argument("--corpora-dir", type=Path, default=Path(CORPORA_ROOT), help="default: %(default)s")
    ev.add_argument(
        "--checkpoints", type=Path, default=Path(CHECKPOINTS_ROOT), help="checkpoint root (data index cache)"
    )
    ev.set_defaults(func=run_evaluate)

    ex = subparsers.add_parser("export-llama", help="export a pretrained GPT to Hugging Face Llama format")
    ex.add_argument("--model", required=True, type=Path, help="results/pretrain/{run}/model.safetensors")
    ex.add_argument("--tokenizer", required=True, type=Path, help="results/corpora/{corpus}/tokenizer.json")
    ex.add_argument("--out", required=True, type=Path, help="directory for LlamaForCausalLM.from_pretrained")
    ex.set_defaults(func=run_export)


def checkpoint_dir(root: Path, spec: dict) -> Path:
    """results/checkpoints/{run}/{config_hash12} (train/checkpoints.py): the same directory for every route in."""
    from pretrainflow.study.layout import checkpoint_unit
    from pretrainflow.train.checkpoints import unit_dir

    return unit_dir(root, checkpoint_unit(spec["run_id"]), spec)


def run_pretrain(args: argparse.Namespace) -> int:
    import torch

    from pretrainflow.corpora.tokenizer import load_tokenizer
    from pretrainflow.launch import run_distributed, world_from_env
    from pretrainflow.train.llm.data import blend_prefixes
    from pretrainflow.train.llm.publish import publish
    from pretrainflow.train.llm.spec import llm_run_from_dict
    from pretrainflow.train.signals import EXIT_CHECKPOINTED

    spec = json.loads(args.spec)
    run = llm_run_from_dict(spec)
    cuda = torch.cuda.is_available()
    if not cuda:
        _refuse_gpu_only_features(run)
    # Inputs checked here, so a missing corpus is one clear line instead of a traceback per rank.
    blend_prefixes(args.corpora_dir, run.blend)
    vocab_size = load_tokenizer(args.corpora_dir / run.corpus / "tokenizer.json").get_vocab_size()
    root = checkpoint_dir(args.checkpoints, spec)
    worker_args = ["--spec", args.spec, "--corpora-dir", str(args.corpora_dir), "--checkpoint-dir", str(root)]
    if args.max_steps:
        worker_args += ["--max-steps", str(args.max_steps)]
    procs = run.gpus_per_node if cuda else run.cpu_ranks
    code = run_distributed("pretrainflow.train.llm.pretrain:train_worker", worker_args, procs)
    if code != 0 or world_from_env().rank != 0:
        if code == EXIT_CHECKPOINTED:
            print(f"[pretrain-llm] {run.run_id}: checkpointed, not finished; rerun to resume from {root}")
        return code
    summary = publish(run, vocab_size, root, args.out)
    print(f"[pretrain-llm] {run.run_id}: {summary['tokens']} tokens in {summary['wall_seconds']:.1f} s, "
          f"{summary['throughput']:.0f} tokens/s on {summary['devices']} -> {args.out}")  # fmt: skip
    return 0


def _refuse_gpu_only_features(run) -> None:
    """Clear errors before any process starts for what megatron-core cannot do on CPU / gloo."""
    from pretrainflow.errors import ConfigError

    where = f"pretrain.{run.run_id}.parallel"
    if run.pipeline > 1:
        raise ConfigError(f"{where}.pipeline: {run.pipeline} needs CUDA "
                          "(megatron-core's pipeline schedules allocate CUDA tensors); use 1 on CPU")  # fmt: skip
    if run.sequence_parallel:
        raise ConfigError(f"{where}.sequence_parallel: needs CUDA (gloo has no reduce-scatter); use false on CPU")


def run_evaluate(args: argparse.Namespace) -> int:
    from pretrainflow.results.rows import write_rows
    from pretrainflow.train.llm.evaluate import evaluate
    from pretrainflow.train.llm.spec import llm_run_from_dict

    spec = json.loads(args.spec)
    run = llm_run_from_dict(spec)
    rows = evaluate(
        run,
        corpora_dir=args.corpora_dir,
        model_path=args.model,
        summary_path=args.model.parent / "summary.json",
        cache_dir=checkpoint_dir(args.checkpoints, spec) / "data_cache",
    )
    write_rows(rows, args.out)
    return 0


def run_export(args: argparse.Namespace) -> int:
    from pretrainflow.export.hf_llama import export_llama

    out = export_llama(args.model, args.tokenizer, args.out)
    print(f"[export-llama] {args.model} -> {out} (transformers LlamaForCausalLM)")
    return 0
