"""Export a pretrained megatron-core GPT (Llama-style shape) to Hugging Face transformers Llama format.

    pretrainflow export-llama --model results/pretrain/gpt-micro-pydocs/model.safetensors \\
        --tokenizer results/corpora/pydocs/tokenizer.json --out results/export/gpt-micro-pydocs-hf
    # then: transformers.LlamaForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)

Input: the published model.safetensors (megatron-core GPTModel state dict at TP=1, see train/llm/publish.py).
Weight mapping (per layer i; q/k/v de-interleaved from megatron's fused, group-major QKV):
  embedding.word_embeddings.weight                     -> model.embed_tokens.weight
  decoder.layers.i.input_layernorm.weight              -> model.layers.i.input_layernorm.weight
  decoder.layers.i.self_attention.linear_qkv.weight    -> q_proj, k_proj, v_proj   (rows per query group g:
      [g's num_heads/num_groups query heads | 1 key head | 1 value head], each head_dim rows)
  decoder.layers.i.self_attention.linear_proj.weight   -> self_attn.o_proj.weight
  decoder.layers.i.pre_mlp_layernorm.weight            -> model.layers.i.post_attention_layernorm.weight
  decoder.layers.i.mlp.linear_fc1.weight               -> mlp.gate_proj (first half) / mlp.up_proj (second half)
  decoder.layers.i.mlp.linear_fc2.weight               -> mlp.down_proj.weight
  decoder.final_layernorm.weight -> model.norm.weight;  output_layer.weight -> lm_head.weight (absent when tied)
RoPE needs no permutation: megatron's non-interleaved rotary embedding rotates halves, as HF Llama does.
The vocabulary stays padded (multiple of 128); ids past the tokenizer's size are never produced by it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from pretrainflow.errors import PretrainflowError
from pretrainflow.io import atomic_dir, atomic_write_json
from pretrainflow.models.gpt import GPTShape, create_gpt_shape


def check_llama_compatible(shape: GPTShape) -> None:
    """Llama = RoPE + SwiGLU + RMSNorm without biases; anything else has no faithful LlamaForCausalLM form."""
    problems = []
    if shape.position_embedding != "rope":
        problems.append(f"position_embedding={shape.position_embedding!r} (needs 'rope')")
    if not shape.swiglu:
        problems.append("swiglu=false (needs true)")
    if shape.normalization != "RMSNorm":
        problems.append(f"normalization={shape.normalization!r} (needs 'RMSNorm')")
    if problems:
        raise PretrainflowError(f"model {shape.name}: cannot export as Llama: {', '.join(problems)}")


def split_qkv(qkv: torch.Tensor, shape: GPTShape) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Megatron's fused QKV [groups x (q_per_group + 2) x head_dim, hidden] -> q [heads*hd, h], k, v [groups*hd, h]."""
    groups, hd = shape.query_groups, shape.head_dim
    q_per_group = shape.num_attention_heads // groups
    per_group = qkv.view(groups, (q_per_group + 2) * hd, shape.hidden_size)
    q = per_group[:, : q_per_group * hd].reshape(-1, shape.hidden_size)
    k = per_group[:, q_per_group * hd : (q_per_group + 1) * hd].reshape(-1, shape.hidden_size)
    v = per_group[:, (q_per_group + 1) * hd :].reshape(-1, shape.hidden_size)
    return q, k, v


def convert_state_dict(mc: dict[str, torch.Tensor], shape: GPTShape) -> dict[str, torch.Tensor]:
    """megatron-core GPTModel (TP=1) tensors -> LlamaForCausalLM tensors (see the module docstring's mapping)."""
    f = shape.ffn_hidden_size
    hf: dict[str, torch.Tensor] = {"model.embed_tokens.weight": mc["embedding.word_embeddings.weight"]}
    for i in range(shape.num_layers):
        src, dst = f"decoder.layers.{i}.", f"model.layers.{i}."
        q, k, v = split_qkv(mc[src + "self_attention.linear_qkv.weight"], shape)
        fc1 = mc[src + "mlp.linear_fc1.weight"]
        hf.update({
            dst + "input_layernorm.weight": mc[src + "input_layernorm.weight"],
            dst + "self_attn.q_proj.weight": q,
            dst + "self_attn.k_proj.weight": k,
            dst + "self_attn.v_proj.weight": v,
            dst + "self_attn.o_proj.weight": mc[src + "self_attention.linear_proj.weight"],
            dst + "post_attention_layernorm.weight": mc[src + "pre_mlp_layernorm.weight"],
            dst + "mlp.gate_proj.weight": fc1[:f],
            dst + "mlp.up_proj.weight": fc1[f:],
            dst + "mlp.down_proj.weight": mc[src + "mlp.linear_fc2.weight"],
        })  # fmt: skip
    hf["model.norm.weight"] = mc["decoder.final_layernorm.weight"]
    if not shape.tie_embeddings:
        hf["lm_head.weight"] = mc["output_layer.weight"]
    return {key: value.contiguous().clone() for key, value in hf.items()}


def llama_config(shape: GPTShape, vocab_size: int, seq_length: int, eos_id: int) -> dict[str, Any]:
    """config.json of the export (transformers LlamaConfig fields)."""
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab_size,
        "hidden_size": shape.hidden_size, "intermediate_size": shape.ffn_hidden_size,
        "num_hidden_layers": shape.num_layers, "num_attention_heads": shape.num_attention_heads,
        "num_key_value_heads": shape.query_groups, "head_dim": shape.head_dim, "hidden_act": "silu",
        "max_position_embeddings": seq_length, "rms_norm_eps": shape.norm_epsilon,
        "rope_parameters": {"rope_type": "default", "rope_theta": float(shape.rotary_base)},
        "tie_word_embeddings": shape.tie_embeddings, "attention_bias": False, "mlp_bias": False,
        "bos_token_id": eos_id, "eos_token_id": eos_id, "initializer_range": shape.init_method_std,
        "torch_dtype": "float32",
    }  # fmt: skip


def export_llama(model_path: str | Path, tokenizer_path: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir`` (model.safetensors, config.json, tokenizer.json, tokenizer_config.json) atomically."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from pretrainflow.corpora.tokenizer import EOD_TOKEN, PAD_TOKEN, load_tokenizer, special_ids

    with safe_open(str(model_path), "pt") as handle:
        meta = handle.metadata() or {}
    if "shape" not in meta:
        raise PretrainflowError(f"{model_path}: no 'shape' metadata (expected a pretrainflow pretrain-llm model)")
    model_spec = json.loads(meta["shape"])
    shape = create_gpt_shape(model_spec.pop("name"), **model_spec)
    check_llama_compatible(shape)
    tensors = load_file(str(model_path))
    vocab_size = tensors["embedding.word_embeddings.weight"].shape[0]
    tokenizer = load_tokenizer(tokenizer_path)
    eos_id, pad_id = special_ids(tokenizer)
    with atomic_dir(out_dir) as tmp:
        save_file(convert_state_dict(tensors, shape), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = llama_config(shape, vocab_size, int(meta.get("seq_length", 2048)), eos_id)
        if pad_id is not None:
            config["pad_token_id"] = pad_id
        atomic_write_json(tmp / "config.json", config)
        tokenizer.save(str(tmp / "tokenizer.json"))
        atomic_write_json(tmp / "tokenizer_config.json", {
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": EOD_TOKEN, "eos_token": EOD_TOKEN,
            "pad_token": PAD_TOKEN if pad_id is not None else None, "model_max_length": config["max_position_embeddings"],
        })  # fmt: skip
    return Path(out_dir)
