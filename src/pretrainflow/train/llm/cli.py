"""`pretrainflow pretrain-llm`, `sft-llm` and `evaluate-llm` (rules in workflow/rules/pretrain_llm.smk, finetune_llm.smk).

    pretrainflow pretrain-llm --spec "$SPEC" --out results/pretrain/gpt-micro-pydocs
    pretrainflow sft-llm --spec "$SPEC" --out results/sft/gpt-micro-pydocs-sft   # a run with an sft section
    pretrainflow evaluate-llm --spec "$SPEC" --model results/pretrain/gpt-micro-pydocs/model.safetensors \\
        --out results/rows/gpt-micro-pydocs/heldout.parquet

pretrain-llm starts one process per device on this node (gpus_per_node on GPUs; cpu_ranks for a run with
gpus_per_node 0, with the node's GPUs hidden from them, or on a machine without CUDA; under an outer launcher such as
srun/mpirun it runs as that rank), trains or resumes from results/checkpoints/{run}/{hash12}/, and
on success publishes the run directory. Exit code 75 = stopped by a walltime signal after a checkpoint: rerun resumes.
sft-llm is the same command for an SFT run (train/llm/sft_spec.py): it first checks and tokenises the instruction
data (train/llm/sft_prepare.py), then the ranks train on those rows instead of the corpus.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

from pretrainflow.errors import ConfigError
from pretrainflow.study.layout import CHECKPOINTS_ROOT, CORPORA_ROOT, IMPORTS_ROOT, PRETRAIN_DIR, SFT_DIR
from pretrainflow.train.tracking import OPTION_HELP as TRACKING_HELP

PRETRAIN_ROOT = PRETRAIN_DIR.rpartition("/")[0]  # results/pretrain: where init.run finds the run it starts from
SFT_ROOT = SFT_DIR.rpartition("/")[0]  # results/sft: the same for an init.run that is an SFT run


def _add_training_options(parser: argparse.ArgumentParser) -> None:
    """The options pretrain-llm and sft-llm share: where checkpoints and init weights live, and a step limit."""
    parser.add_argument(
        "--checkpoints", type=Path, default=Path(CHECKPOINTS_ROOT), help="checkpoint root (%(default)s)"
    )
    parser.add_argument("--max-steps", type=int, default=None, help="stop after this step with a checkpoint (exit 75)")
    parser.add_argument("--imports-dir", type=Path, default=Path(IMPORTS_ROOT), help="init.hf imports (%(default)s)")
    parser.add_argument("--pretrained-dir", type=Path, default=Path(PRETRAIN_ROOT), help="init.run runs (%(default)s)")
    parser.add_argument("--tracking", help=TRACKING_HELP)


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("pretrain-llm", help="pretrain a GPT through megatron-core (resumes automatically)")
    train.add_argument("--spec", required=True, help="resolved run spec (canonical JSON)")
    train.add_argument("--out", required=True, type=Path, help="run directory to publish, results/pretrain/{run}")
    train.add_argument("--corpora-dir", type=Path, default=Path(CORPORA_ROOT), help="default: %(default)s")
    _add_training_options(train)
    train.set_defaults(func=run_pretrain, sft=False)

    sft = subparsers.add_parser(
        "sft-llm", help="fine-tune an LLM run on instruction data, loss on responses only (resumes automatically)"
    )
    sft.add_argument("--spec", required=True, help="resolved spec of an LLM run with an sft section (canonical JSON)")
    sft.add_argument("--out", required=True, type=Path, help="run directory to publish, results/sft/{run}")
    sft.add_argument("--data", type=Path, default=None, help="the instruction JSONL (default: from sft.data)")
    sft.add_argument("--corpora-dir", type=Path, default=Path(CORPORA_ROOT), help="the tokenizer (%(default)s)")
    _add_training_options(sft)
    sft.add_argument("--sft-dir", type=Path, default=Path(SFT_ROOT), help="init.run SFT runs (%(default)s)")
    sft.set_defaults(func=run_pretrain, sft=True)

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

    im = subparsers.add_parser(
        "import-hf", help="import a local Hugging Face Llama as the weights an init: run starts from"
    )
    im.add_argument("--hf", required=True, type=Path, help="the directory (config.json, safetensors, tokenizer.json)")
    im.add_argument("--out", required=True, type=Path, help="results/import/{name} (train/llm/hf_import.import_name)")
    im.set_defaults(func=run_import)


def checkpoint_dir(root: Path, spec: dict) -> Path:
    """results/checkpoints/{run}/{config_hash12} (train/checkpoints.py): the same directory for every route in."""
    from pretrainflow.study.layout import checkpoint_unit
    from pretrainflow.train.checkpoints import unit_dir

    return unit_dir(root, checkpoint_unit(spec["run_id"]), spec)


def run_pretrain(args: argparse.Namespace) -> int:
    from pretrainflow.corpora.tokenizer import load_tokenizer
    from pretrainflow.launch import run_distributed, world_from_env
    from pretrainflow.train.llm.data import blend_prefixes
    from pretrainflow.train.llm.hf_import import check_init
    from pretrainflow.train.llm.pretrain import this_machine_device
    from pretrainflow.train.llm.publish import publish
    from pretrainflow.train.llm.sft_prepare import run_chat_template
    from pretrainflow.train.llm.spec import LLMRunSpec
    from pretrainflow.train.signals import EXIT_CHECKPOINTED
    from pretrainflow.train.tracking import check_available, parse_option, tracking_option

    spec = json.loads(args.spec)
    run = LLMRunSpec.from_dict(spec)
    sft = getattr(args, "sft", False)  # set by the subcommand: sft-llm or pretrain-llm (tests build args by hand)
    command = "sft-llm" if sft else "pretrain-llm"  # the same loop, checkpoints and publisher; other data
    if (run.sft is not None) != sft:
        other = "pretrain-llm (it has no sft section)" if sft else "sft-llm (it has an sft section)"
        raise ConfigError(f"pretrain.{run.run_id}: {command} cannot train this run; use {other}")
    # What this machine cannot run is one clear error here, before any process starts.
    device = this_machine_device(run)
    # W&B settings: the option, else the workflow's environment (train/tracking.py); tests build args by hand
    tracking = tracking_option(getattr(args, "tracking", None))
    check_available(parse_option(tracking))
    # Inputs checked here, so a missing corpus is one clear line instead of a traceback per rank.
    if not sft:
        blend_prefixes(args.corpora_dir, run.blend)
    tokenizer_json = args.corpora_dir / run.corpus / "tokenizer.json"
    vocab_size = load_tokenizer(tokenizer_json).get_vocab_size()
    root = checkpoint_dir(args.checkpoints, spec)
    worker_args = ["--spec", args.spec, "--corpora-dir", str(args.corpora_dir), "--checkpoint-dir", str(root)]
    if run.init is not None:  # the weights it starts from, their shape and tokenizer: checked before any rank starts
        init = check_init(spec, imports_dir=args.imports_dir, pretrained_dir=args.pretrained_dir,
                          corpora_dir=args.corpora_dir, sft_dir=getattr(args, "sft_dir", Path(SFT_ROOT)))  # fmt: skip
        worker_args += ["--init", str(init.weights), "--init-vocab", str(init.init_vocab)]
    sft_meta = None
    if sft:  # every example checked and tokenised here, before any rank starts (train/llm/sft_prepare.py)
        from pretrainflow.train.llm.sft_prepare import prepare, sft_data_file

        jsonl = args.data or Path(sft_data_file(spec))
        prepared, sft_meta = prepare(run, jsonl=jsonl, tokenizer_json=tokenizer_json, checkpoint_root=root,
                                     is_first=world_from_env().rank == 0)  # fmt: skip
        worker_args += ["--sft-data", str(prepared)]
        print(f"[sft-llm] {run.run_id}: {sft_meta['examples']} examples from {jsonl} ({sft_meta['truncated']} cut "
              f"to {run.seq_length + 1} tokens), {sft_meta['response_tokens']} response tokens, rows "
              f"{100 * sft_meta['fill']:.0f} % filled; chat template {sft_meta['chat_template']}")  # fmt: skip
    # the template the published model carries (and the export writes): read now, so a bad one stops before training
    template = run_chat_template(run, tokenizer_json, root)
    if args.max_steps:
        worker_args += ["--max-steps", str(args.max_steps)]
    if tracking is not None:
        worker_args += ["--tracking", tracking]
    procs = run.devices.gpus_per_node if device == "cuda" else run.devices.cpu_ranks
    with gpus_hidden(device == "cpu"):
        code = run_distributed("pretrainflow.train.llm.pretrain:train_worker", worker_args, procs)
    if code != 0 or world_from_env().rank != 0:
        if code == EXIT_CHECKPOINTED:
            print(f"[{command}] {run.run_id}: checkpointed, not finished; rerun to resume from {root}")
        return code
    summary = publish(run, vocab_size, root, args.out, sft_data=sft_meta, chat_template=template)
    # throughput is None when this segment trained no step (a rerun that found the final checkpoint)
    speed = "no step in this segment" if summary["throughput"] is None else f"{summary['throughput']:.0f} tokens/s"
    print(f"[{command}] {run.run_id}: {summary['tokens']} tokens in {summary['wall_seconds']:.1f} s, "
          f"{speed} on {summary['devices']} -> {args.out}")  # fmt: skip
    return 0


@contextlib.contextmanager
def gpus_hidden(hide: bool):
    """CPU ranks started inside see no GPU (CUDA_VISIBLE_DEVICES=""), so they run exactly as on a CPU machine."""
    saved = os.environ.get("CUDA_VISIBLE_DEVICES")
    if hide:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved


def run_evaluate(args: argparse.Namespace) -> int:
    from pretrainflow.results.rows import write_rows
    from pretrainflow.train.llm.evaluate import evaluate
    from pretrainflow.train.llm.spec import LLMRunSpec

    spec = json.loads(args.spec)
    rows = evaluate(
        LLMRunSpec.from_dict(spec),
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


def run_import(args: argparse.Namespace) -> int:
    from pretrainflow.train.llm.hf_import import import_hf

    record = import_hf(args.hf, args.out)
    shape = record["shape"]
    print(f"[import-hf] {args.hf} -> {args.out}: {shape['num_layers']} layers x {shape['hidden_size']}, "
          f"{shape['num_attention_heads']} heads / {shape['num_query_groups']} KV groups, vocab {record['vocab_size']}")  # fmt: skip
    return 0
