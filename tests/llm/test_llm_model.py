"""GPT shapes registry, megatron-core model construction on CPU, SDPA core attention, FLOPs arithmetic."""

from __future__ import annotations

import math
import os

import pytest
import torch

from pretrainflow.errors import ConfigError
from pretrainflow.models.gpt import create_gpt_shape, list_gpts, padded_vocab_size


@pytest.mark.parametrize("name", list_gpts())
def test_every_registered_shape_is_consistent(name):
    shape = create_gpt_shape(name)
    assert shape.hidden_size % shape.num_attention_heads == 0
    assert shape.num_attention_heads % shape.query_groups == 0
    shape.check_parallel(1, 1)
    assert shape.num_parameters(padded_vocab_size(32000)) > 0


def test_llama_1b_has_the_published_size():
    # Llama-3.2-1B: 1.24 B parameters with its 128,256-token vocabulary and tied embeddings
    shape = create_gpt_shape("llama_1b")
    assert shape.num_parameters(128256) == pytest.approx(1.236e9, rel=0.01)
    # 6 N per token plus attention scores: about 9.0 GFLOP/token at 4k context (N = 0.97 B blocks + 0.26 B lm head)
    assert shape.flops_per_token(128256, 4096) == pytest.approx(6 * 1.236e9 + 12 * 16 * 4096 * 2048, rel=0.01)


def test_llama_8b_has_the_published_size():
    assert create_gpt_shape("llama_8b").num_parameters(128256) == pytest.approx(8.03e9, rel=0.01)


def test_overrides_and_errors_name_the_key():
    assert create_gpt_shape("gpt_micro", num_layers=3).num_layers == 3
    with pytest.raises(ConfigError, match=r"pretrain.x.model.name: expected one of"):
        create_gpt_shape("gpt_huge", where="pretrain.x.model")
    with pytest.raises(ConfigError, match=r"model: unknown model keys \['layers'\]"):
        create_gpt_shape("gpt_micro", layers=3)
    with pytest.raises(ConfigError, match=r"model.num_query_groups: expected a divisor of num_attention_heads=4"):
        create_gpt_shape("gpt_micro", num_query_groups=3)
    with pytest.raises(ConfigError, match=r"parallel.tensor: 4 does not divide query groups=2"):
        create_gpt_shape("gpt_micro").check_parallel(4, 1)


def test_padded_vocab():
    assert padded_vocab_size(2048) == 2048 and padded_vocab_size(50257) == 50304 and padded_vocab_size(300) == 384


def test_micro_model_builds_and_predicts_uniformly_at_init(megatron_world):
    from pretrainflow.models.gpt import build_gpt_model

    torch.manual_seed(0)
    shape = create_gpt_shape("gpt_micro")
    model = build_gpt_model(shape, vocab_size=512, seq_length=16)
    assert sum(p.numel() for p in model.parameters()) == shape.num_parameters(512)
    tokens = torch.randint(0, 512, (2, 16))
    loss = model(tokens, torch.arange(16).expand(2, 16), None, labels=tokens)
    assert loss.shape == (2, 16)
    assert loss.mean().item() == pytest.approx(math.log(512), abs=0.2)  # small init -> near-uniform predictions
    loss.mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_sdpa_core_attention_matches_explicit_softmax(megatron_world):
    from megatron.core.transformer.enums import AttnMaskType

    from pretrainflow.models.gpt import transformer_config
    from pretrainflow.models.gpt_attention import SDPACoreAttention

    shape = create_gpt_shape("gpt_micro")  # 4 heads, 2 KV groups, head_dim 16
    attn = SDPACoreAttention(transformer_config(shape, device="cpu"), 1, AttnMaskType.causal, "self")
    s, b, h, g, d = 5, 2, 4, 2, 16
    q, k, v = torch.randn(s, b, h, d), torch.randn(s, b, g, d), torch.randn(s, b, g, d)
    out = attn(q, k, v, None)
    assert out.shape == (s, b, h * d)
    k_full, v_full = k.repeat_interleave(h // g, dim=2), v.repeat_interleave(h // g, dim=2)
    scores = torch.einsum("sbhd,tbhd->bhst", q, k_full) / math.sqrt(d)
    scores = scores.masked_fill(torch.triu(torch.ones(s, s, dtype=torch.bool), 1), float("-inf"))
    ref = torch.einsum("bhst,tbhd->sbhd", scores.softmax(-1), v_full).reshape(s, b, h * d)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_helpers_cpp_is_importable():
    # BlendedMegatronDatasetBuilder needs megatron-core's compiled index helpers (shipped prebuilt in the wheel)
    from megatron.core.datasets import helpers_cpp

    assert hasattr(helpers_cpp, "build_sample_idx_int32")
    assert os.path.exists(helpers_cpp.__file__)


def test_bf16_model_keeps_every_parameter_in_bf16(megatron_world):
    # megatron-core builds its linears in params_dtype but torch norms and the learned position embedding in fp32;
    # without a cast the fp32 position embedding meets the first bf16 linear ("expected m1 and m2 to have the same
    # dtype"). On CUDA bf16 runs take this path; on CPU it runs the same way with params_dtype bf16.
    from pretrainflow.models.gpt import build_gpt_model, cast_floating_params, transformer_config

    shape = create_gpt_shape("gpt_micro", position_embedding="learned_absolute")
    config = transformer_config(shape, device="cpu", params_dtype=torch.bfloat16)
    model = build_gpt_model(shape, vocab_size=512, seq_length=16, config=config)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert model.embedding.position_embeddings.weight.dtype == torch.bfloat16
    tokens = torch.randint(0, 512, (2, 16))
    loss = model(tokens, torch.arange(16).expand(2, 16), None, labels=tokens)
    assert torch.isfinite(loss).all() and loss.float().mean().item() == pytest.approx(math.log(512), abs=0.3)
    cast_floating_params(model, torch.float32)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


@pytest.mark.parametrize(("device", "transformer_engine"), [("cuda", False), ("cpu", False), ("cpu", True)])
def test_core_attention_is_sdpa_without_transformer_engine(device, transformer_engine):
    # not megatron's local DotProductAttention: it needs CUDA, and on CUDA it materialises fp32 [b, heads, s, s] scores
    from pretrainflow.models.gpt import layer_spec
    from pretrainflow.models.gpt_attention import SDPACoreAttention

    spec = layer_spec(create_gpt_shape("gpt_micro"), device=device, transformer_engine=transformer_engine)
    assert spec.submodules.self_attention.submodules.core_attention is SDPACoreAttention


def test_rotary_frequencies_move_with_the_model(megatron_world):
    # evaluation builds the model on CPU and moves it to CUDA: inv_freq (a plain attribute) must follow the module
    from pretrainflow.models.gpt import build_gpt_model

    model = build_gpt_model(create_gpt_shape("gpt_micro"), vocab_size=512, seq_length=16)
    rope = model.rotary_pos_emb
    assert rope(16).device.type == "cpu"  # forward is lru_cached per length: the move must drop this entry
    model.to(torch.float64)
    assert rope.inv_freq.dtype == torch.float32  # the frequencies stay fp32 whatever the parameters' dtype
    model.to("meta")
    assert rope.inv_freq.device.type == "meta" and rope(16).device.type == "meta"
    assert next(model.parameters()).device.type == "meta"
