"""GPT pretraining through megatron-core: the worker that runs on every rank.

Launched by ``pretrainflow pretrain-llm`` (train/llm/cli.py) through ``pretrainflow.launch.run_distributed``; by hand::

    python -m pretrainflow.launch.worker pretrainflow.train.llm.pretrain:train_worker --spec "$(cat run.json)" \\
        --corpora-dir results/corpora --checkpoint-dir results/checkpoints/gpt-micro/abc123

Step arithmetic (default study): global 8 sequences x 128 tokens = 1,024 tokens/step; TP=2 on 2 ranks -> DP=1,
so each step is one micro-batch of 8 on the single data-parallel replica, split by heads/FFN across the 2 ranks.
The loop reads top to bottom: set up the world -> model (its ``init`` weights on a fresh start) -> engine -> data ->
resume -> steps (log, checkpoint, walltime signal) -> final checkpoint. It never writes the run's output directory:
the launcher publishes that.
Where a run trains (``run_device``): on CUDA when its ``devices.gpus_per_node`` > 0 and the node has the GPUs, else on
``cpu_ranks`` gloo ranks that see no GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

from pretrainflow.errors import ConfigError
from pretrainflow.train.llm.spec import LLMRunSpec
from pretrainflow.train.run_lock import hold_run_lock


def run_device(run: LLMRunSpec, *, cuda_devices: int, transformer_engine: bool) -> str:
    """Where ``run`` trains on a node with ``cuda_devices`` CUDA devices ("cuda" or "cpu"), or a ConfigError naming the
    key this machine cannot honour (checked by the launcher before any process starts, and by every worker).

    ``devices.gpus_per_node`` > 0 on a CUDA node: one rank per GPU. Otherwise ``cpu_ranks`` gloo ranks: a run with
    gpus_per_node 0 is a CPU run on any machine (the launcher hides a CUDA node's GPUs from its ranks), and a GPU run
    on a machine without CUDA trains on CPU.

    >>> run = LLMRunSpec.from_dict({"run_id": "r", "model": {"name": "gpt_micro"}, "corpus": "c", "seq_length": 32,
    ...     "batch": {"micro": 4, "global": 8}, "schedule": {"train_steps": 8}, "devices": {"gpus_per_node": 1}})
    >>> [run_device(run, cuda_devices=gpus, transformer_engine=False) for gpus in (1, 0)]
    ['cuda', 'cpu']
    """
    where, devices, parallel = f"pretrain.{run.run_id}", run.devices, run.parallel
    if cuda_devices and devices.gpus_per_node:
        if devices.gpus_per_node > cuda_devices:  # rank r of a node takes its GPU r
            raise ConfigError(f"{where}.devices.gpus_per_node: {devices.gpus_per_node}, but this node has "
                              f"{cuda_devices} CUDA device(s)")  # fmt: skip
        if parallel.sequence_parallel and not transformer_engine:
            raise ConfigError(f"{where}.parallel.sequence_parallel: needs Transformer Engine (megatron-core's "
                              "torch norms refuse sequence parallelism); install transformer_engine or use false")  # fmt: skip
        return "cuda"
    if parallel.pipeline > 1:
        raise ConfigError(f"{where}.parallel.pipeline: {parallel.pipeline} needs CUDA "
                          "(megatron-core's pipeline schedules allocate CUDA tensors); use 1 on CPU")  # fmt: skip
    if parallel.sequence_parallel:
        raise ConfigError(
            f"{where}.parallel.sequence_parallel: needs CUDA (gloo has no reduce-scatter); use false on CPU"
        )
    return "cpu"


def this_machine_device(run: LLMRunSpec) -> str:
    """``run_device`` for this machine: its CUDA devices and whether Transformer Engine imports."""
    from pretrainflow.models.gpt import transformer_engine_available

    cuda_devices = torch.cuda.device_count() if torch.cuda.is_available() else 0
    return run_device(
        run, cuda_devices=cuda_devices, transformer_engine=cuda_devices > 0 and transformer_engine_available()
    )


def worker_device(run: LLMRunSpec) -> str:
    """``this_machine_device`` in a rank: CPU ranks must not see a GPU (they would run the CPU path on a machine that
    megatron-core and dist_checkpointing treat as a CUDA one), which pretrain-llm ensures for the ranks it starts."""
    device = this_machine_device(run)
    if device == "cpu" and torch.cuda.is_available():
        raise ConfigError(
            f"pretrain.{run.run_id}.devices.gpus_per_node: {run.devices.gpus_per_node} (CPU ranks), but this "
            "process sees CUDA devices; start it through `pretrainflow pretrain-llm`, or with CUDA_VISIBLE_DEVICES= "
            "to hide them"
        )
    return device


def setup_world(run: LLMRunSpec, device: str) -> None:
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
        tensor_model_parallel_size=run.parallel.tensor, pipeline_model_parallel_size=run.parallel.pipeline
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


def build_model(run: LLMRunSpec, vocab_size: int, device: str):
    """The run's GPTModel on ``device``: bf16 parameters on CUDA when ``precision`` is bf16, fp32 otherwise."""
    from pretrainflow.models.gpt import build_gpt_model, transformer_config

    shape = run.gpt_shape()
    dtype = torch.bfloat16 if device == "cuda" and run.precision == "bf16" else torch.float32
    config = transformer_config(
        shape, device=device, params_dtype=dtype, sequence_parallel=run.parallel.sequence_parallel
    )
    return build_gpt_model(shape, vocab_size=vocab_size, seq_length=run.seq_length, device=device, config=config)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="pretrainflow.train.llm.pretrain")
    parser.add_argument("--spec", required=True, help="resolved run spec (canonical JSON)")
    parser.add_argument("--corpora-dir", required=True, type=Path)
    parser.add_argument("--checkpoint-dir", required=True, type=Path)
    parser.add_argument("--max-steps", type=int, default=None, help="stop (with a checkpoint) after this step")
    parser.add_argument("--init", type=Path, default=None, help="TP=1 weights to start from (init:, checked already)")
    parser.add_argument("--init-vocab", type=int, default=None, help="tokenizer size of the --init weights")
    parser.add_argument("--sft-data", type=Path, default=None, help="SFT rows prepared by sft-llm (instead of corpora)")
    parser.add_argument("--tracking", default=None, help="W&B settings (train/tracking.py), JSON")
    return parser.parse_args(argv)


def train_worker(argv: list[str]) -> int:
    """Train (or resume) one run on this rank; returns 0 when done, EXIT_CHECKPOINTED after a walltime signal."""
    from pretrainflow.corpora.tokenizer import load_tokenizer
    from pretrainflow.train import checkpoints
    from pretrainflow.train.llm.checkpoint import load_initial_weights
    from pretrainflow.train.llm.data import BatchStream, blend_prefixes, build_gpt_datasets
    from pretrainflow.train.llm.engine import make_engine
    from pretrainflow.train.llm.loop import TrainLoop
    from pretrainflow.train.llm.sft_data import SFTDataset
    from pretrainflow.train.tracking import parse_option

    args = _parse(argv)
    spec = json.loads(args.spec)
    run = LLMRunSpec.from_dict(spec)
    device = worker_device(run)
    setup_world(run, device)
    # one writer per checkpoint directory (train/run_lock.py): taken before the data cache or any tag is written
    held = contextlib.ExitStack()
    try:
        held.enter_context(hold_run_lock(args.checkpoint_dir, run.run_id))
        from megatron.core import parallel_state

        corpus_dir = args.corpora_dir / run.corpus
        tokenizer_path = corpus_dir / "tokenizer.json"
        vocab_size = load_tokenizer(tokenizer_path).get_vocab_size()
        seed_everything(run.seed, device)
        model = build_model(run, vocab_size, device)
        if args.init is not None and checkpoints.latest(args.checkpoint_dir) is None:
            # A fresh start of a continued run: before the engine, whose optimizer copies the weights (fp32 main
            # params on GPU). A resume loads its own checkpoint instead.
            load_initial_weights(model, args.init, swiglu=run.gpt_shape().swiglu, old_vocab=args.init_vocab)
        engine = make_engine(model, run, device)
        world, global_batch = dist.get_world_size(), run.batch.global_batch
        assert global_batch is not None  # resolved by LLMRunSpec
        if args.sft_data is not None:  # SFT: the example rows sft-llm prepared (train/llm/sft_data.py)
            train = SFTDataset(args.sft_data, seed=run.seed, num_samples=run.schedule.train_steps * global_batch)
        else:
            prefixes, weights = blend_prefixes(args.corpora_dir, run.blend)
            train, _, _ = build_gpt_datasets(
                prefixes=prefixes,
                weights=weights,
                tokenizer_path=tokenizer_path,
                split=run.corpus_split,
                seq_length=run.seq_length,
                seed=run.seed,
                num_samples=(run.schedule.train_steps * global_batch, 0, 0),
                cache_dir=args.checkpoint_dir / "data_cache",
                is_first_rank=dist.get_rank() == 0,
            )
        stream = BatchStream(
            train,
            micro=run.batch.micro,
            global_batch=global_batch,
            dp_rank=parallel_state.get_data_parallel_rank(),
            dp_size=run.parallel.data_parallel(world),
        )
        loop = TrainLoop(run=run, spec=spec, engine=engine, stream=stream, root=args.checkpoint_dir, device=device,
                         tracking=parse_option(args.tracking))  # fmt: skip
        return loop.train(max_steps=args.max_steps)
    finally:
        held.close()
        teardown_world()
