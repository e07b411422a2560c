"""Held-out evaluation of a pretrained GPT: validation loss and perplexity -> results rows.

The validation split is the corpus's ``split`` middle weight (e.g. "98,1,1" -> 1 % of documents), built by the same
megatron-core GPTDataset machinery as training (documents never seen in training). Loss is the token-weighted mean
cross entropy over ``eval.iters`` x ``batch.global`` sequences (in micro-batches) (fewer if the split is smaller: one pass, no
repetition); perplexity = exp(loss). Rows go to ``results/rows/{run}/heldout.parquet`` with task "heldout".
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import torch

from pretrainflow.train.llm.spec import LLMRunSpec


def load_published_model(run: LLMRunSpec, model_path: Path, device: str = "cpu"):
    """TP=1 GPTModel with the weights of a published model.safetensors (needs single_process_world()).

    Always the local layer spec with SDPA attention (the names model.safetensors uses; SDPA also runs on CUDA),
    in fp32, then moved to ``device`` (the rotary frequencies move with it: models/gpt_attention.py).
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    from pretrainflow.models.gpt import build_gpt_model, transformer_config

    with safe_open(str(model_path), "pt") as handle:
        vocab_size = int(handle.metadata()["vocab_size"])
    shape = run.gpt_shape()
    config = transformer_config(shape, device="cpu", params_dtype=torch.float32)
    model = build_gpt_model(shape, vocab_size=vocab_size, seq_length=run.seq_length, device="cpu", config=config)
    missing, unexpected = model.load_state_dict(load_file(str(model_path)), strict=False)
    missing = [key for key in missing if not key.endswith("_extra_state")]
    if missing or unexpected:
        raise RuntimeError(
            f"{model_path}: weights do not match {shape.name} (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    return model.to(device).eval(), vocab_size


@torch.no_grad()
def heldout_loss(model, dataset, *, batch: int, iters: int, device: str = "cpu") -> tuple[float, int]:
    """(mean loss in nats/token, tokens evaluated) over the first ``iters x batch`` samples of ``dataset``."""
    from pretrainflow.train.llm.data import collate

    total, count = 0.0, 0
    n = min(len(dataset), iters * batch)
    for start in range(0, n, batch):
        b = collate([dataset[i] for i in range(start, min(start + batch, n))])
        b = {key: value.to(device) for key, value in b.items()}
        per_token = model(b["tokens"], b["position_ids"], None, labels=b["labels"])
        mask = b["loss_mask"].float()
        total += float((per_token.float() * mask).sum())
        count += int(mask.sum())
    return total / max(count, 1), count


def evaluate(
    run: LLMRunSpec, *, corpora_dir: Path, model_path: Path, summary_path: Path, cache_dir: Path
) -> list[dict]:
    """Validation loss and perplexity rows of one run (single process, TP=1)."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    from pretrainflow.results.rows import make_row, stage_cost_fields
    from pretrainflow.train.llm.data import build_gpt_datasets, corpus_prefix
    from pretrainflow.train.llm.publish import single_process_world

    summary: dict[str, Any] = json.loads(summary_path.read_text())
    manifest = json.loads((corpora_dir / run.corpus / "manifest.json").read_text())
    torch.manual_seed(run.seed)
    single_process_world()
    try:
        device = "cuda" if torch.cuda.is_available() else "cpu"
        model, _ = load_published_model(run, model_path, device)
        _, valid, _ = build_gpt_datasets(
            prefixes=[str(corpus_prefix(corpora_dir, run.corpus))],  # held-out text of the run's own corpus
            weights=None,
            tokenizer_path=corpora_dir / run.corpus / "tokenizer.json",
            split=run.corpus_split,
            seq_length=run.seq_length,
            seed=run.seed,
            num_samples=(1, None, 0),  # valid: None = exactly one epoch of the split, no repeated samples
            cache_dir=cache_dir,
            is_first_rank=True,
        )
        if valid is None or len(valid) == 0:
            raise RuntimeError(f"corpus {run.corpus}: the validation split is empty (split {run.corpus_split})")
        start = time.time()
        micro, global_batch = run.batch.micro, run.batch.global_batch
        assert global_batch is not None  # resolved by LLMRunSpec
        # eval.iters batches of batch.global sequences, read in micro-batches: e.g. 10 x 512 / 4 = 1,280 of 4
        loss, tokens = heldout_loss(
            model, valid, batch=micro, iters=run.eval.iters * global_batch // micro, device=device
        )
        eval_seconds = time.time() - start
    finally:
        parallel_state.destroy_model_parallel()
        dist.destroy_process_group()
    common = {
        # an SFT run's held-out perplexity on its corpus: what fine-tuning kept of the language model
        "run_id": run.run_id, "stage": "finetune" if run.sft is not None else "pretrain", "model": run.model["name"], "pretrain_source": run.corpus,
        "task": "heldout", "split": "valid", "step": summary["step"], "seed": run.seed,
        "dataset_checksum": manifest["checksum"], **stage_cost_fields(summary),
    }  # fmt: skip
    print(f"[evaluate-llm] {run.run_id}: held-out loss {loss:.4f} nats/token, perplexity {math.exp(loss):.2f} "
          f"over {tokens} tokens ({eval_seconds:.1f} s)")  # fmt: skip
    resolved = run.to_dict()
    return [
        make_row(config=resolved, metric="loss", value=loss, **common),
        make_row(config=resolved, metric="perplexity", value=math.exp(loss), **common),
        make_row(config=resolved, metric="tokens_seen", value=float(summary["tokens"]), **common),
        make_row(config=resolved, metric="eval_tokens", value=float(tokens), **common),
    ]
