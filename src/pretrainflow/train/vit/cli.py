"""``pretrainflow`` commands of the ViT area: pretrain-vit, finetune, evaluate, pretrain-rows, export-timm.

torch and DeepSpeed are imported inside the commands so that ``pretrainflow --help`` answers at once. The training
commands validate ``--spec`` here, then start one worker per device with pretrainflow.launch (or run in this process
under an outer launcher such as torchrun/srun).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from pretrainflow.train.tracking import OPTION_HELP as TRACKING_HELP


def _spec(text: str, kind: str):
    from pretrainflow.errors import ConfigError
    from pretrainflow.train.vit.spec import FinetuneSpec, VitRunSpec

    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ConfigError(f"--spec: not valid JSON ({err})") from err
    return (VitRunSpec if kind == "vit" else FinetuneSpec).from_dict(data, "--spec")


def _forward(args: argparse.Namespace, names: tuple[str, ...]) -> list[str]:
    """The worker's argv: each value its own item (no shell ever parses them)."""
    argv = []
    for name in names:
        value = getattr(args, name)
        if value is not None:
            argv += [f"--{name}", str(value)]
    return argv


def _resolve_tracking(args: argparse.Namespace) -> None:
    """``args.tracking`` from the option or the workflow's environment (tracking.tracking_option), checked: a bad
    section, or W&B turned on where wandb is not installed, is one error before any rank starts."""
    from pretrainflow.train.tracking import check_available, parse_option, tracking_option

    args.tracking = tracking_option(getattr(args, "tracking", None))  # tests build args by hand
    check_available(parse_option(args.tracking))


def _procs_per_node(devices, where: str) -> int:
    """Ranks to start on this node: one per GPU (checked against the GPUs it has), or ``cpu_ranks`` on the CPU (also
    on a GPU machine: a spec with ``gpus_per_node: 0`` trains on the CPU there, see train/vit/engine.py)."""
    if devices.gpus_per_node > 1:
        import torch

        from pretrainflow.train.devices import check_visible_gpus

        check_visible_gpus(devices, torch.cuda.device_count(), where)
    return devices.procs_per_node


def cmd_pretrain_vit(args: argparse.Namespace) -> int:
    from pretrainflow.launch import run_distributed

    spec = _spec(args.spec, "vit")
    _resolve_tracking(args)
    argv = _forward(args, ("spec", "dataset", "out", "checkpoints", "tracking"))
    procs = _procs_per_node(spec.devices, "--spec devices")
    return run_distributed("pretrainflow.train.vit.pretrain:worker", argv, procs)


def cmd_finetune(args: argparse.Namespace) -> int:
    from pretrainflow.launch import run_distributed

    spec = _spec(args.spec, "finetune")
    _resolve_tracking(args)
    argv = _forward(args, ("spec", "pretrained", "out", "checkpoints", "tracking"))
    procs = _procs_per_node(spec.recipe.devices, "--spec recipe.devices")
    return run_distributed("pretrainflow.train.vit.finetune:worker", argv, procs)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from pretrainflow.train.vit.evaluate import evaluate

    scores = evaluate(args.spec, args.finetuned, args.out)
    print(" ".join(f"{k}={v:.2f}" for k, v in scores.items()))
    return 0


def cmd_pretrain_rows(args: argparse.Namespace) -> int:
    from pretrainflow.train.vit.evaluate import pretrain_rows

    pretrain_rows(args.pretrained, args.out)
    return 0


def cmd_export_timm(args: argparse.Namespace) -> int:
    from pretrainflow.export.timm import export_timm

    export_timm(args.model, args.out)
    return 0


def add_commands(subparsers) -> None:
    p = subparsers.add_parser("pretrain-vit", help="pretrain a ViT through DeepSpeed on a synthetic dataset")
    p.add_argument("--spec", required=True, help="resolved run spec (canonical JSON)")
    p.add_argument("--dataset", required=True, type=Path, help="dataset directory (results/datasets/<name>)")
    p.add_argument("--out", required=True, type=Path, help="output directory (results/pretrain/<run>)")
    p.add_argument("--checkpoints", type=Path, help="checkpoint root (results/checkpoints); resumes from <root>/<run>/")
    p.add_argument("--tracking", help=TRACKING_HELP)
    p.set_defaults(func=cmd_pretrain_vit)

    p = subparsers.add_parser("finetune", help="fine-tune a ViT (pretrained or scratch) on a downstream task")
    p.add_argument("--spec", required=True, help="resolved fine-tune spec (canonical JSON)")
    p.add_argument("--pretrained", type=Path, help="model.safetensors to start from (omit for scratch)")
    p.add_argument("--out", required=True, type=Path, help="output directory (results/finetune/<run>/<task>)")
    p.add_argument("--checkpoints", type=Path, help="checkpoint root; resumes from <root>/finetune/<run>/<task>/")
    p.add_argument("--tracking", help=TRACKING_HELP)
    p.set_defaults(func=cmd_finetune)

    p = subparsers.add_parser("evaluate", help="top-1/top-5 of a fine-tuned ViT on the held-out split -> rows")
    p.add_argument("--spec", required=True, help="the fine-tune spec (canonical JSON)")
    p.add_argument("--finetuned", required=True, type=Path, help="fine-tune output directory")
    p.add_argument("--out", required=True, type=Path, help="rows file (results/rows/<run>/<task>.parquet)")
    p.set_defaults(func=cmd_evaluate)

    p = subparsers.add_parser("pretrain-rows", help="result row of a ViT pretraining run (final loss, throughput)")
    p.add_argument("--pretrained", required=True, type=Path, help="pretraining output directory")
    p.add_argument("--out", required=True, type=Path, help="rows file (results/rows/<run>/pretrain.parquet)")
    p.set_defaults(func=cmd_pretrain_rows)

    p = subparsers.add_parser("export-timm", help="write weights that timm.create_model(...).load_state_dict accepts")
    p.add_argument("--model", required=True, type=Path, help="our model.safetensors")
    p.add_argument("--out", required=True, type=Path, help="output .safetensors")
    p.set_defaults(func=cmd_export_timm)
