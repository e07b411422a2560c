"""Hugging Face export: transformers' LlamaForCausalLM loads it on CPU and gives the megatron-core model's logits."""

from __future__ import annotations

import json

import pytest
import torch
from llm_helpers import cli

TEXT = "Return a new list containing all items from the iterable in ascending order."


def megatron_logits(spec, model_path, ids):
    """Logits of the published megatron-core model (TP=1) in this process."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    from pretrainflow.train.llm.evaluate import load_published_model
    from pretrainflow.train.llm.publish import single_process_world
    from pretrainflow.train.llm.spec import LLMRunSpec

    single_process_world()
    try:
        model, _ = load_published_model(LLMRunSpec.from_dict(spec), model_path)
        with torch.no_grad():
            return model(ids, torch.arange(ids.shape[1])[None], None)
    finally:
        parallel_state.destroy_model_parallel()
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def exported(tp2_run, corpora_dir, tmp_path_factory):
    spec, out, _ = tp2_run
    hf_dir = tmp_path_factory.mktemp("export") / "hf"
    cli("export-llama", "--model", str(out / "model.safetensors"), "--tokenizer",
        str(corpora_dir / "docs" / "tokenizer.json"), "--out", str(hf_dir))  # fmt: skip
    return spec, out, hf_dir


def test_llama_logits_match_megatron(exported):
    from transformers import AutoTokenizer, LlamaForCausalLM

    spec, out, hf_dir = exported
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = LlamaForCausalLM.from_pretrained(hf_dir).eval()
    ids = torch.tensor([tokenizer(TEXT)["input_ids"]])
    assert ids.shape[1] > 8
    with torch.no_grad():
        hf = model(ids).logits
    mc = megatron_logits(spec, out / "model.safetensors", ids)
    assert hf.shape == mc.shape
    assert mc.std() > 0.05  # trained weights, not an all-zero comparison
    assert torch.allclose(hf, mc, atol=1e-4, rtol=1e-4), (hf - mc).abs().max()
    # The comparison can fail: swapping key and value projections of one layer changes the logits.
    attn = model.model.layers[0].self_attn
    k = attn.k_proj.weight.data.clone()
    attn.k_proj.weight.data.copy_(attn.v_proj.weight.data)
    attn.v_proj.weight.data.copy_(k)
    with torch.no_grad():
        assert not torch.allclose(model(ids).logits, mc, atol=1e-4)


def test_export_files(exported, corpora_dir):
    _, _, hf_dir = exported
    config = json.loads((hf_dir / "config.json").read_text())
    assert config["architectures"] == ["LlamaForCausalLM"]
    assert config["num_key_value_heads"] == 2 and config["num_attention_heads"] == 4  # gpt_micro's GQA
    assert config["vocab_size"] == 512  # padded to a multiple of 128 (512 already is)
    assert (hf_dir / "tokenizer.json").read_bytes() != b""


def test_export_rejects_non_llama_shape():
    from pretrainflow.errors import PretrainflowError
    from pretrainflow.export.hf_llama import check_llama_compatible
    from pretrainflow.models.gpt import create_gpt_shape

    with pytest.raises(PretrainflowError, match="position_embedding='learned_absolute'"):
        check_llama_compatible(create_gpt_shape("gpt_micro", position_embedding="learned_absolute"))


def test_split_qkv_group_major_layout():
    from pretrainflow.export.hf_llama import split_qkv
    from pretrainflow.models.gpt import create_gpt_shape

    shape = create_gpt_shape("gpt_micro", hidden_size=8, num_attention_heads=4, num_query_groups=2)  # head_dim 2
    # rows of group g: 2 query heads (4 rows), 1 key head (2 rows), 1 value head (2 rows)
    rows = torch.arange(16, dtype=torch.float32)[:, None].repeat(1, 8)
    q, k, v = split_qkv(rows, shape)
    assert q[:, 0].tolist() == [0, 1, 2, 3, 8, 9, 10, 11]
    assert k[:, 0].tolist() == [4, 5, 12, 13]
    assert v[:, 0].tolist() == [6, 7, 14, 15]
