"""GPT pretraining through megatron-core: the worker that runs on every rank.

Launched by ``pretrainflow pretrain-llm`` (train/llm/cli.py) through ``pretrainflow.launch.run_distributed``; by hand::

    python -m pretrainflow.launch.worker pretrainflow.train.llm.pretrain:train_worker --spec "$(cat run.json)" \\
        --corpora-dir results/corpora --checkpoint-dir results/checkpoints/gpt-micro/abc123

Step arithmetic (default study): global 8 sequences x 128 tokens = 1,024 tokens/step; TP=2 on 2 ranks -> DP=1,
so each step is one micro-batch of 8 on the single data-parallel replica, split by heads/FFN across the 2 ranks.
The loop reads top to bottom: set up the world -> model -> engine -> data -> resume -> steps (log, checkpoint,
walltime signal) -> final checkpoint. It never writes the run's output directory: the launcher publishes that.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from pretrainflow.train.llm.spec import LLMRun, llm_run_from_dict


def setup_world(run: LLMRun, device: str) -> None:
    """torch.distributed (NCCL on GPUs, gloo on CPU) from torchrun-style env, then megatron-core's parallel groups."""
    from megatron.core import parallel_state

    from pretrainflow.launch import world_from_env

    world = world_from_env()
    if device == "cpu":
        # Each rank gets its share of the job's cores: OMP_NUM_THREADS (Snakemake sets it to the rule's threads) or
        # all cores, divided by the ranks on this node (N ranks x all cores each oversubscribes badly).
        budget = int(os.environ.get("OMP_NUM_THREADS") or os.cpu_count() or 1)
        torch.set_num_threads(max(1, budget // world.local_world_size))
    os.environ.setdefault("MASTER_ADDR", world.master_addr)
    os.environ.setdefault("MASTER_PORT", str(world.master_port))
    if device == "cuda":
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group(
            backend="nccl" if device == "cuda" else "gloo", rank=world.rank, world_size=world.world_size
        )
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=run.tensor, pipeline_model_parallel_size=run.pipeline
    )


def teardown_world() -> None:
    from megatron.core import parallel_state

    parallel_state.destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()


def seed_everything(seed: int, device: str) -> None:
    """Same seed on every rank: CPU initialisation slices one full weight, so every TP layout starts identical."""
    torch.manual_seed(seed)
    if device == "cuda":
        from megatron.core.tensor_parallel import model_parallel_cuda_manual_seed

        model_parallel_cuda_manual_seed(seed)


def build_model(run: LLMRun, vocab_size: int, device: str):
    from pretrainflow.models.gpt import build_gpt_model, transformer_config

    dtype = torch.bfloat16 if device == "cuda" and run.precision == "bf16" else torch.float32
    config = transformer_config(run.shape, device=device, params_dtype=dtype, sequence_parallel=run.sequence_parallel)
    return build_gpt_model(run.shape, vocab_size=vocab_size, seq_length=run.seq_length, device=device, config=config)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pretrainflow.train.llm.pretrain")
    parser.add_argument("--spec", required=True, help="resolved run spec (canonical JSON)")
    parser.add_argument("--corpora-dir", required=True, type=Path)
    parser.add_argument("--checkpoint-dir", required=True, type=Path)
    parser.add_argument("--max-steps", type=int, default=None, help="stop (with a checkpoint) after this step")
    return parser.parse_args(argv)


def train_worker(argv: list[str]) -> int:
    """Train (or resume) one run on this rank; returns 0 when done, EXIT_CHECKPOINTED after a walltime signal."""
    from pretrainflow.corpora.tokenizer import load_tokenizer
    from pretrainflow.train.llm.data import BatchStream, blend_prefixes, build_gpt_datasets
    from pretrainflow.train.llm.engine import make_engine
    from pretrainflow.train.llm.loop import TrainLoop

    args = _parse(argv)
    spec = json.loads(args.spec)
    run = llm_run_from_dict(spec)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    setup_world(run, device)
    try:
        from megatron.core import parallel_state

        corpus_dir = args.corpora_dir / run.corpus
        tokenizer_path = corpus_dir / "tokenizer.json"
        vocab_size = load_tokenizer(tokenizer_path).get_vocab_size()
        seed_everything(run.seed, device)
        engine = make_engine(build_model(run, vocab_size, device), run, device)
        world = dist.get_world_size()
        prefixes, weights = blend_prefixes(args.corpora_dir, run.blend)
        train, _, _ = build_gpt_datasets(
            prefixes=prefixes,
            weights=weights,
            tokenizer_path=tokenizer_path,
            split=spec["corpus_spec"]["split"],
            seq_length=run.seq_length,
            seed=run.seed,
            num_samples=(run.train_steps * run.global_batch, 0, 0),
            cache_dir=args.checkpoint_dir / "data_cache",
            is_first_rank=dist.get_rank() == 0,
        )
        stream = BatchStream(
            train,
            micro=run.micro_batch,
            global_batch=run.global_batch,
            dp_rank=parallel_state.get_data_parallel_rank(),
            dp_size=run.data_parallel(world),
        )
        loop = TrainLoop(run=run, spec=spec, engine=engine, stream=stream, root=args.checkpoint_dir, device=device)
        return loop.train(max_steps=args.max_steps)
    finally:
        teardown_world()
