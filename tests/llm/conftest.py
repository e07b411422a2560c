"""Fixtures of the LLM area: a small real corpus (stdlib docstrings) built through the CLI, and reference runs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from llm_helpers import CORPUS, CORPUS_SPEC, pretrain, run_spec

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def corpora_dir(tmp_path_factory) -> Path:
    """results/corpora/docs: tokenizer, 2 shards, merge (in-process; the CLI is exercised by test_corpus.py)."""
    from pretrainflow.corpora.indexed import build_shard, merge_shards
    from pretrainflow.corpora.sources import iter_documents
    from pretrainflow.corpora.spec import corpus_from_dict
    from pretrainflow.corpora.tokenizer import train_bpe

    root = tmp_path_factory.mktemp("corpora")
    spec, out = corpus_from_dict(CORPUS_SPEC), root / CORPUS
    tokenizer = out / "tokenizer.json"
    train_bpe(iter_documents(spec.source), spec.tokenizer.vocab_size, tokenizer)
    shards = [out / "shards" / f"shard-{k:05d}" for k in range(spec.num_shards)]
    for k, prefix in enumerate(shards):
        build_shard(spec, k, tokenizer, prefix)
    merge_shards(spec, shards, tokenizer, out)
    return root


@pytest.fixture(scope="session")
def tp1_run(corpora_dir, tmp_path_factory):
    """The reference: 8 steps at TP=1 on one process."""
    work = tmp_path_factory.mktemp("tp1")
    spec = run_spec("tp1", tensor=1, ranks=1)
    _, out, root = pretrain(corpora_dir, work, spec)
    return spec, out, root


@pytest.fixture(scope="session")
def tp2_run(corpora_dir, tmp_path_factory):
    """The same run at TP=2 over 2 gloo ranks."""
    work = tmp_path_factory.mktemp("tp2")
    spec = run_spec("tp2", tensor=2, ranks=2)
    _, out, root = pretrain(corpora_dir, work, spec)
    return spec, out, root


@pytest.fixture(scope="module")
def megatron_world():
    """A one-process gloo world with megatron-core's parallel state (TP=1)."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    from pretrainflow.train.llm.publish import single_process_world

    single_process_world()
    yield
    parallel_state.destroy_model_parallel()
    dist.destroy_process_group()
