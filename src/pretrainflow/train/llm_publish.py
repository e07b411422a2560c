"""Publish a finished LLM run: consolidate the dist checkpoint to one safetensors file and write the run directory.

``results/pretrain/{run}/`` (written whole through ``atomic_dir``):
  model.safetensors  megatron-core GPTModel state dict at TP=1/PP=1 (fp32), metadata: shape, vocab, step
  metrics.parquet    step, loss, lr, grad_norm, tokens, tokens_per_s, wall   (from metrics.jsonl)
  summary.json       wall_seconds, tokens, throughput (tokens/s), world_size, devices, device_hours, mfu, ...
  loss.png           training loss curve;  tensorboard/  event files;  config.json  the resolved run spec

Consolidation loads the checkpoint into a one-process TP=1 model: dist_checkpointing reshards on load, so this works
for any training layout (and exercises the "resume under another TP degree" path on every run).
"""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

from pretrainflow.io import atomic_dir, atomic_write_json
from pretrainflow.train.llm_spec import LLMRun

# Dense bf16 peak FLOP/s per device, from vendor datasheets (no sparsity). MFU is null for anything not listed (CPU).
PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "GH200": 989e12, "B200": 2250e12}


def single_process_world():
    """Initialise gloo + megatron parallel state for a world of one (consolidation and evaluation)."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    parallel_state.initialize_model_parallel(1, 1)


def load_consolidated_model(run: LLMRun, vocab_size: int, checkpoint: Path):
    """TP=1 CPU GPTModel with the weights of ``checkpoint`` (needs single_process_world())."""
    import torch

    from pretrainflow.models.gpt import build_gpt_model, transformer_config
    from pretrainflow.train.llm_checkpoint import load_model_only

    config = transformer_config(run.shape, device="cpu", params_dtype=torch.float32)
    model = build_gpt_model(run.shape, vocab_size=vocab_size, seq_length=run.seq_length, device="cpu", config=config)
    load_model_only(checkpoint, model)
    return model


def plain_state_dict(model) -> dict[str, Any]:
    """Tensors only (no TE/_extra_state), contiguous, as safetensors requires."""
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.endswith("_extra_state")}


def device_name(device: str) -> str:
    if device != "cuda":
        return "cpu"
    import torch

    return torch.cuda.get_device_name(0)


def mfu(run: LLMRun, vocab_size: int, tokens_per_s: float | None, world: int, device: str) -> float | None:
    """Model FLOPs utilisation: flops/token x tokens/s / (devices x peak). None on CPU (no meaningful peak)."""
    from pretrainflow.models.gpt import padded_vocab_size

    name = device_name(device)
    peak = next((flops for key, flops in PEAK_BF16_FLOPS.items() if key in name), None)
    if peak is None or not tokens_per_s:
        return None
    return run.shape.flops_per_token(padded_vocab_size(vocab_size), run.seq_length) * tokens_per_s / (world * peak)


def publish(run: LLMRun, vocab_size: int, checkpoint_root: Path, out_dir: Path) -> dict[str, Any]:
    """Write the run directory from the finished checkpoint (see module docstring); returns the summary."""
    import pandas as pd
    import torch.distributed as dist
    from megatron.core import parallel_state
    from safetensors.torch import save_file

    from pretrainflow.train import llm_checkpoint

    final = json.loads((checkpoint_root / "final.json").read_text())
    step, path = llm_checkpoint.latest(checkpoint_root)
    single_process_world()
    try:
        model = load_consolidated_model(run, vocab_size, path)
        tensors = plain_state_dict(model)
    finally:
        parallel_state.destroy_model_parallel()
        dist.destroy_process_group()
    world, device = int(final["world_size"]), str(final["device"])
    summary = {
        "run_id": run.run_id, "model": run.shape.name, "corpus": run.corpus, "step": step, "tokens": final["tokens"],
        "wall_seconds": final["wall_seconds"], "throughput": final["tokens_per_s"], "throughput_unit": "tokens/s",
        "world_size": world, "devices": f"{world} x {device_name(device)}",
        "device_hours": final["wall_seconds"] * world / 3600.0,
        "mfu": mfu(run, vocab_size, final["tokens_per_s"], world, device),
        "parameters": sum(t.numel() for t in tensors.values()), "vocab_size": vocab_size,
        "parallel": {"tensor": run.tensor, "pipeline": run.pipeline, "data": run.data_parallel(world)},
    }  # fmt: skip
    metadata = {"shape": json.dumps(run.spec["model"], sort_keys=True), "vocab_size": str(vocab_size),
                "seq_length": str(run.seq_length), "step": str(step), "format": "megatron-core GPTModel, TP=1"}  # fmt: skip
    metrics = pd.read_json(checkpoint_root / "metrics.jsonl", lines=True)
    with atomic_dir(out_dir) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata=metadata)
        metrics.to_parquet(tmp / "metrics.parquet", index=False)
        atomic_write_json(tmp / "summary.json", summary)
        atomic_write_json(tmp / "config.json", run.spec)
        if (checkpoint_root / "tensorboard").is_dir():
            shutil.copytree(checkpoint_root / "tensorboard", tmp / "tensorboard")
        plot_loss(metrics, tmp / "loss.png", run.run_id)
    return summary


def plot_loss(metrics, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.2), dpi=120)
    ax.plot(metrics["tokens"], metrics["loss"], lw=1.2)
    ax.set(xlabel="tokens seen", ylabel="training loss (nats/token)", title=title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
