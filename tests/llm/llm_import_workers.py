"""Rank entry points of the import tests, run by ``pretrainflow.launch.run_distributed`` (one process per rank).

``load_at_tp``: build the run's GPTModel at its tensor-parallel degree, fill it with the product's
``load_initial_weights`` from an import, write the gathered logits of a fixed batch (rank 0) and a megatron-core dist
checkpoint of the model (every rank writes its shards), which the test consolidates to TP=1 and exports.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch


def load_at_tp(argv: list[str]) -> int:
    from megatron.core import dist_checkpointing, parallel_state

    from pretrainflow.train.llm.checkpoint import _cpu_safe_dist_checkpointing, load_initial_weights
    from pretrainflow.train.llm.pretrain import build_model, setup_world, teardown_world
    from pretrainflow.train.llm.spec import LLMRunSpec

    spec, init, vocab, out = json.loads(argv[0]), Path(argv[1]), int(argv[2]), Path(argv[3])
    run = LLMRunSpec.from_dict(spec)
    setup_world(run, "cpu")
    try:
        torch.manual_seed(1)  # a random initialisation that the import must overwrite everywhere
        model = build_model(run, vocab, "cpu").eval()
        load_initial_weights(model, init, swiglu=run.gpt_shape().swiglu, old_vocab=vocab)
        ids = torch.load(out / "ids.pt")
        with torch.no_grad():
            logits = model(ids, torch.arange(ids.shape[1])[None], None)  # [batch, seq, vocab / tp]
            # vocab-parallel logits: gather the vocabulary shards (megatron's gather helper wants CUDA)
            group = parallel_state.get_tensor_model_parallel_group()
            shards = [torch.empty_like(logits) for _ in range(torch.distributed.get_world_size(group))]
            torch.distributed.all_gather(shards, logits.contiguous(), group=group)
            logits = torch.cat(shards, dim=-1)
        if torch.distributed.get_rank() == 0:
            torch.save(logits, out / "logits.pt")
        with _cpu_safe_dist_checkpointing():
            dist_checkpointing.save({"model": model.sharded_state_dict(), "common": {}}, str(out / "checkpoint"))
        assert parallel_state.get_tensor_model_parallel_world_size() == run.parallel.tensor
    finally:
        teardown_world()
    return 0
