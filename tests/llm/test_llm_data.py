"""GPT datasets through megatron-core's BlendedMegatronDatasetBuilder: split, blend weights, batch slicing per rank."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from llm_helpers import CORPUS

from pretrainflow.errors import PretrainflowError
from pretrainflow.train.llm.data import BatchStream, blend_prefixes, build_gpt_datasets

pytestmark = pytest.mark.usefixtures("megatron_world")  # the dataset builder logs through torch.distributed


@pytest.fixture
def two_corpora(corpora_dir, tmp_path):
    """The test corpus plus a copy named 'twin' (same tokenizer), as a second member of a blend."""
    root = tmp_path / "corpora"
    shutil.copytree(corpora_dir / CORPUS, root / CORPUS)
    twin = root / "twin"
    twin.mkdir()
    for suffix in (".bin", ".idx"):
        shutil.copy(root / CORPUS / f"{CORPUS}_text_document{suffix}", twin / f"twin_text_document{suffix}")
    shutil.copy(root / CORPUS / "manifest.json", twin / "manifest.json")
    return root


def build(root, blend, samples, tmp_path):
    prefixes, weights = blend_prefixes(root, blend)
    return build_gpt_datasets(prefixes=prefixes, weights=weights, tokenizer_path=root / CORPUS / "tokenizer.json",
                              split="90,5,5", seq_length=32, seed=0, num_samples=samples,
                              cache_dir=tmp_path / "cache", is_first_rank=True)  # fmt: skip


def test_single_corpus_splits(corpora_dir, tmp_path):
    train, valid, _ = build(corpora_dir, {CORPUS: 1.0}, (64, None, 0), tmp_path)
    assert len(train) >= 64 and len(valid) > 0
    sample = train[0]
    assert sample["tokens"].shape == (32,) and sample["labels"].shape == (32,)
    assert np.array_equal(sample["tokens"][1:].numpy(), sample["labels"][:-1].numpy())  # next-token targets
    # held-out samples come from other documents than training samples: the splits are disjoint document ranges
    assert not np.array_equal(valid[0]["tokens"].numpy(), train[0]["tokens"].numpy())


def test_blend_follows_weights(two_corpora, tmp_path):
    train, _, _ = build(two_corpora, {CORPUS: 0.75, "twin": 0.25}, (2000, 0, 0), tmp_path)
    share = np.bincount(train.dataset_index[:2000], minlength=2) / 2000
    assert share == pytest.approx([0.75, 0.25], abs=0.02)


def test_blend_rejects_different_tokenizers(two_corpora):
    manifest = two_corpora / "twin" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["sha256"]["tokenizer"] = "0" * 64
    manifest.write_text(json.dumps(data))
    with pytest.raises(PretrainflowError, match="different tokenizers"):
        blend_prefixes(two_corpora, {CORPUS: 1, "twin": 1})


def test_missing_corpus_is_named(tmp_path):
    with pytest.raises(PretrainflowError, match=r"absent_text_document.idx: indexed corpus not found"):
        blend_prefixes(tmp_path, {"absent": 1.0})


def test_batch_stream_slices_the_global_batch_per_data_parallel_rank():
    dataset = [{"tokens": np.full(4, i), "labels": np.full(4, i), "loss_mask": np.ones(4), "position_ids": np.arange(4)}
               for i in range(100)]  # fmt: skip
    seen = []
    for rank in range(2):
        stream = BatchStream(dataset, micro=2, global_batch=8, dp_rank=rank, dp_size=2)
        micro_batches = list(stream.step(3))
        assert len(micro_batches) == 2  # 8 = micro 2 x dp 2 x accumulation 2
        seen += [int(t) for b in micro_batches for t in b["tokens"][:, 0]]
    assert sorted(seen) == list(range(24, 32))  # step 3 covers samples [24, 32), each exactly once
