"""The SFT loss counts response tokens only: the training loss (engine.forward_loss on a real megatron-core GPTModel,
rows from the real data path) is bitwise unchanged when every prompt, template and padding position is given other
targets, changes with any response target, and equals cross entropy over the response tokens alone."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from sft_helpers import write_jsonl


@pytest.fixture(scope="module")
def batch_and_model(corpora_dir, megatron_world, tmp_path_factory):
    from pretrainflow.corpora.tokenizer import load_tokenizer
    from pretrainflow.models.gpt import build_gpt_model, create_gpt_shape, transformer_config
    from pretrainflow.train.llm.data import collate
    from pretrainflow.train.llm.sft_data import SFTDataset, prepare_sft_data

    tmp = tmp_path_factory.mktemp("sft-loss")
    records = [{"prompt": "What does os.path.join do?", "response": "Join paths."},
               {"messages": [{"role": "system", "content": "Short answers."}, {"role": "user", "content": "2+2?"},
                             {"role": "assistant", "content": "4"}, {"role": "user", "content": "3+3?"},
                             {"role": "assistant", "content": "6"}]},
               {"prompt": "Name a prime.", "response": "seven"}]  # fmt: skip
    tokenizer_json = corpora_dir / "docs" / "tokenizer.json"
    prepare_sft_data(write_jsonl(tmp / "d.jsonl", records), tokenizer_json, tmp / "rows", seq_length=40)
    dataset = SFTDataset(tmp / "rows", seed=0, num_samples=3)
    batch = collate([dataset[i] for i in range(3)])
    torch.manual_seed(0)
    shape = create_gpt_shape("gpt_micro")
    vocab = load_tokenizer(tokenizer_json).get_vocab_size()
    config = transformer_config(shape, device="cpu", params_dtype=torch.float32)
    model = build_gpt_model(shape, vocab_size=vocab, seq_length=40, device="cpu", config=config).eval()
    return batch, model, vocab


def loss_of(model, batch):
    from pretrainflow.train.llm.engine import forward_loss

    with torch.no_grad():
        return forward_loss(model, batch, "cpu")


def test_targets_outside_responses_do_not_change_the_loss_bitwise(batch_and_model):
    batch, model, vocab = batch_and_model
    outside = batch["loss_mask"] == 0
    assert outside.any() and (~outside).any()
    assert 0 < int((~outside).sum()) < outside.numel() // 4  # prompts, template and padding are most positions
    changed = dict(batch, labels=batch["labels"].clone())
    generator = torch.Generator().manual_seed(1)
    changed["labels"][outside] = torch.randint(0, vocab, (int(outside.sum()),), generator=generator)
    assert not torch.equal(changed["labels"], batch["labels"])
    assert torch.equal(loss_of(model, changed), loss_of(model, batch))


def test_any_response_target_changes_the_loss(batch_and_model):
    batch, model, vocab = batch_and_model
    reference = loss_of(model, batch)
    for position in torch.nonzero(batch["loss_mask"])[:3]:
        changed = dict(batch, labels=batch["labels"].clone())
        row, column = position.tolist()
        changed["labels"][row, column] = (changed["labels"][row, column] + 1) % vocab
        assert not torch.equal(loss_of(model, changed), reference)


def test_the_loss_is_cross_entropy_over_response_tokens_alone(batch_and_model):
    batch, model, _ = batch_and_model
    with torch.no_grad():
        logits = model(batch["tokens"], batch["position_ids"], None)  # [b, s, padded vocab]
    response = batch["loss_mask"].bool()
    expected = F.cross_entropy(logits[response].float(), batch["labels"][response])
    assert float(loss_of(model, batch)) == pytest.approx(float(expected), rel=1e-6)
