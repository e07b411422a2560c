"""Benchmark: GPT training throughput (tokens/s) through megatron-core, and MFU where a peak is known (GPUs).

    .venv/bin/python bench/bench_llm.py                          # CPU: gpt_micro and gpt_mini at TP=1 and TP=2
    .venv/bin/python bench/bench_llm.py --model llama_1b --seq-length 4096 --micro 2 --tp 1   # on a GPU node

TP degree = ranks (one per GPU on CUDA): the default degrees are 1 and 2 on CPU, and those the node's GPUs can hold
on CUDA (TP 1 only on one GPU); a ``--tp`` above the GPU count is refused before any process starts.

Each configuration runs in fresh processes (one per rank, gloo on CPU / NCCL on GPU): random token batches (data
loading excluded), ``--warmup`` untimed optimizer steps, then ``--steps`` timed ones. Printed: ms/step, tokens/s for
the whole world, and MFU = training FLOPs/token x tokens/s / (devices x bf16 peak) on GPUs (null on CPU, where no
meaningful peak exists). Figures depend on the machine's load; on a shared 2-core box repeat a few times.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def worker(argv: list[str]) -> int:
    """One rank: build the model + engine exactly as pretrain-llm does, time train_step on random tokens."""
    import torch
    import torch.distributed as dist

    from pretrainflow.train.llm.engine import make_engine
    from pretrainflow.train.llm.pretrain import (
        build_model,
        seed_everything,
        setup_world,
        teardown_world,
        worker_device,
    )
    from pretrainflow.train.llm.spec import LLMRunSpec

    args = json.loads(argv[0])
    run = LLMRunSpec.from_dict(args["spec"])
    device = worker_device(run)
    setup_world(run, device)
    try:
        seed_everything(0, device)
        engine = make_engine(build_model(run, args["vocab"], device), run, device)
        accum = run.accumulation(dist.get_world_size())
        micro, seq = run.batch.micro, run.seq_length
        gen = torch.Generator().manual_seed(dist.get_rank() // run.parallel.tensor)
        tokens = torch.randint(0, args["vocab"], (micro, seq + 1), generator=gen)
        batch = {
            "tokens": tokens[:, :-1],
            "labels": tokens[:, 1:],
            "loss_mask": torch.ones(micro, seq),
            "position_ids": torch.arange(seq).expand(micro, -1),
        }
        for _ in range(args["warmup"]):
            engine.train_step([batch] * accum)
        if device == "cuda":
            torch.cuda.synchronize()
        dist.barrier()
        start = time.perf_counter()
        for _ in range(args["steps"]):
            engine.train_step([batch] * accum)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds = (time.perf_counter() - start) / args["steps"]
        if dist.get_rank() == 0:
            Path(args["result"]).write_text(json.dumps({"seconds_per_step": seconds, "world": dist.get_world_size(),
                                                        "device": device}))  # fmt: skip
    finally:
        teardown_world()
    return 0


def bench_one(model: str, tp: int, ranks: int, seq: int, micro: int, vocab: int, steps: int, warmup: int) -> dict:
    from pretrainflow.launch import run_distributed
    from pretrainflow.models.gpt import padded_vocab_size
    from pretrainflow.train.llm.spec import LLMRunSpec
    from pretrainflow.train.mfu import device_name, mfu

    cuda = _cuda_devices() > 0
    spec = {
        "run_id": "bench", "kind": "llm", "model": {"name": model}, "corpus": "none", "seq_length": seq,
        "parallel": {"tensor": tp, "pipeline": 1}, "batch": {"micro": micro, "global": micro * ranks // tp},
        "schedule": {"train_steps": 10**6, "warmup_steps": 0, "min_lr": 1e-5}, "optimizer": {"lr": 1e-4},
        "devices": {"gpus_per_node": ranks, "cpu_ranks": 1} if cuda else {"cpu_ranks": ranks},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "result.json"
        payload = json.dumps({"spec": spec, "vocab": vocab, "steps": steps, "warmup": warmup, "result": str(result)})
        code = run_distributed("bench.bench_llm:worker", [payload], ranks)
        if code != 0:
            raise SystemExit(f"benchmark worker failed with exit code {code}")
        measured = json.loads(result.read_text())
    run = LLMRunSpec.from_dict(spec)
    tokens_per_s = run.tokens_per_step / measured["seconds_per_step"]
    flops_per_token = run.gpt_shape().flops_per_token(padded_vocab_size(vocab), run.seq_length)
    utilisation = mfu(train_flops_per_item=flops_per_token, items_per_s=tokens_per_s, world_size=ranks,
                      device_name=device_name(measured["device"]))  # fmt: skip
    return {
        "model": model, "tp": tp, "ranks": ranks, "seq_length": seq, "global_batch": run.batch.global_batch,
        "ms_per_step": round(measured["seconds_per_step"] * 1000, 1), "tokens_per_s": round(tokens_per_s),
        "mfu": utilisation, "device": measured["device"],
    }  # fmt: skip


def _cuda_devices() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def tensor_parallel_degrees(requested: list[int] | None, cuda_devices: int) -> list[int]:
    """The TP degrees to bench (one rank per degree): ``requested``, or 1 and 2 where the node has the devices.

    >>> tensor_parallel_degrees(None, 0), tensor_parallel_degrees(None, 1), tensor_parallel_degrees(None, 8)
    ([1, 2], [1], [1, 2])
    """
    if requested is None:
        return [tp for tp in (1, 2) if not cuda_devices or tp <= cuda_devices]
    too_many = [tp for tp in requested if cuda_devices and tp > cuda_devices]
    if too_many:
        raise SystemExit(
            f"--tp {too_many[0]}: needs {too_many[0]} GPUs (one rank per GPU), this node has {cuda_devices}"
        )
    return requested


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", help="registered shape(s); default gpt_micro and gpt_mini")
    parser.add_argument(
        "--tp",
        type=int,
        action="append",
        help="tensor-parallel degree(s); default 1 and 2 (on CUDA: as many as the GPUs hold)",
    )
    parser.add_argument("--seq-length", type=int, default=128)
    parser.add_argument("--micro", type=int, default=8)
    parser.add_argument("--vocab", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.path.insert(0, str(REPO))  # `bench.bench_llm:worker` importable here and (PYTHONPATH) in the ranks
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    print(
        f"{'model':<10} {'tp':>2} {'ranks':>5} {'seq':>5} {'batch':>5} {'ms/step':>9} {'tokens/s':>9}  mfu     device"
    )
    degrees = tensor_parallel_degrees(args.tp, _cuda_devices())
    for model in args.model or ["gpt_micro", "gpt_mini"]:
        for tp in degrees:
            r = bench_one(model, tp, tp, args.seq_length, args.micro, args.vocab, args.steps, args.warmup)
            mfu_text = "null" if r["mfu"] is None else f"{100 * r['mfu']:.1f}%"
            print(f"{r['model']:<10} {r['tp']:>2} {r['ranks']:>5} {r['seq_length']:>5} {r['global_batch']:>5} "
                  f"{r['ms_per_step']:>9} {r['tokens_per_s']:>9}  {mfu_text:<7} {r['device']}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
