"""Publish a finished LLM run: consolidate the dist checkpoint to one safetensors file and write the run directory.

``results/pretrain/{run}/`` (``results/sft/{run}/`` for an SFT run) through the shared stage publisher (train/publish.py):
  model.safetensors  megatron-core GPTModel state dict at TP=1/PP=1 (fp32), metadata: shape, vocab, step, and
                     chat_template (JSON {name, source, bos_token, eos_token}) when the run has one: an SFT run's
                     training template, or the Hugging Face template its tokenizer came with (sft_prepare.py
                     ``run_chat_template``); in the weights file so the export (export/hf_llama.py) always finds it
  metrics.parquet    step, loss, lr, grad_norm, tokens, tokens_per_s, wall   (from metrics.jsonl)
  summary.json       wall_seconds, tokens, throughput (tokens/s), world_size, devices, device_hours, mfu, ...
  loss.png           training loss against tokens seen;  tensorboard/;  config.json

Consolidation loads the checkpoint into a one-process TP=1 model: dist_checkpointing reshards on load, so this works
for any training layout (and exercises the "resume under another TP degree" path on every run).
"""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pretrainflow.errors import PretrainflowError
from pretrainflow.train import checkpoints
from pretrainflow.train.llm.spec import LLMRunSpec
from pretrainflow.train.mfu import device_name
from pretrainflow.train.publish import LossAxis, device_fields, write_stage_dir

if TYPE_CHECKING:
    from pretrainflow.train.llm.sft_data import ChatTemplate

TOKENS_AXIS = LossAxis(column="tokens", label="tokens seen", loss_label="training loss (nats/token)")


def single_process_world():
    """Initialise gloo + megatron parallel state for a world of one (consolidation and evaluation)."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=0, world_size=1)
    parallel_state.initialize_model_parallel(1, 1)


def load_consolidated_model(run: LLMRunSpec, vocab_size: int, checkpoint: Path):
    """TP=1 CPU GPTModel with the weights of ``checkpoint`` (needs single_process_world())."""
    import torch

    from pretrainflow.models.gpt import build_gpt_model, transformer_config
    from pretrainflow.train.llm.checkpoint import load_model_only

    shape = run.gpt_shape()
    config = transformer_config(shape, device="cpu", params_dtype=torch.float32)
    model = build_gpt_model(shape, vocab_size=vocab_size, seq_length=run.seq_length, device="cpu", config=config)
    load_model_only(checkpoint, model)
    return model


def plain_state_dict(model) -> dict[str, Any]:
    """Tensors only (no TE/_extra_state), contiguous, as safetensors requires."""
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if not k.endswith("_extra_state")}


def publish(
    run: LLMRunSpec, vocab_size: int, checkpoint_root: Path, out_dir: Path, sft_data: dict[str, Any] | None = None,
    chat_template: ChatTemplate | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Write the run directory from the finished checkpoint (see module docstring); returns the summary.

    ``sft_data``: an SFT run's prepared-data meta (train/llm/sft_data.py: examples, response tokens, template, sha256
    of the JSONL), kept in the summary as ``sft``. An SFT run's ``tokens`` count whole rows, padding included.
    ``chat_template``: the run's template (sft_prepare.run_chat_template), recorded in the weights' metadata.
    """
    import torch.distributed as dist
    from megatron.core import parallel_state

    from pretrainflow.models.gpt import padded_vocab_size
    from pretrainflow.train.llm.sft_data import template_json

    final_path = checkpoint_root / "final.json"
    if not final_path.is_file():  # rank 0 writes it when training ends: no worker trained to the end
        raise PretrainflowError(f"{final_path}: missing, so no rank finished training {run.run_id}; nothing to publish")
    final = json.loads(final_path.read_text())
    step, path = checkpoints.latest(checkpoint_root)
    single_process_world()
    try:
        model = load_consolidated_model(run, vocab_size, path)
        tensors = plain_state_dict(model)
    finally:
        parallel_state.destroy_model_parallel()
        dist.destroy_process_group()
    world, shape, parallel = int(final["world_size"]), run.gpt_shape(), run.parallel
    summary = {
        "run_id": run.run_id, "model": shape.name, "corpus": run.corpus, "step": step, "tokens": final["tokens"],
        "throughput": final["tokens_per_s"], "throughput_unit": "tokens/s", "world_size": world,
        **device_fields(world_size=world, device_name=device_name(str(final["device"])), wall=final["wall_seconds"],
                        train_flops_per_item=shape.flops_per_token(padded_vocab_size(vocab_size), run.seq_length),
                        items_per_s=final["tokens_per_s"]),
        "parameters": sum(t.numel() for t in tensors.values()), "vocab_size": vocab_size,
        "parallel": {"tensor": parallel.tensor, "pipeline": parallel.pipeline, "data": parallel.data_parallel(world)},
        # continued pretraining: what it started from ({hf: DIR} or {run: ID}, and the tokenizer rule)
        "init": None if run.init is None else {k: v for k, v in run.to_dict()["init"].items() if k != "run_spec"},
        **({} if sft_data is None else {"sft": sft_data}),
    }  # fmt: skip
    metadata = {"shape": json.dumps(run.model, sort_keys=True), "vocab_size": str(vocab_size),
                "seq_length": str(run.seq_length), "step": str(step), "format": "megatron-core GPTModel, TP=1"}  # fmt: skip
    if chat_template is not None:
        metadata["chat_template"] = template_json(chat_template)
    metrics = [json.loads(line) for line in (checkpoint_root / "metrics.jsonl").read_text().splitlines()]
    write_stage_dir(
        out_dir,
        state_dict=tensors,
        weights_meta=metadata,
        metrics=metrics,
        summary=summary,
        config=run.to_dict(),
        tb_dir=checkpoint_root / "tensorboard",
        title=run.run_id,
        axis=TOKENS_AXIS,
    )
    return summary
