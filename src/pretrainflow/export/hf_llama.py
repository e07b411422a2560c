"""Megatron-core GPT (Llama-style shape) <-> Hugging Face transformers Llama: the one home of the name mapping.

    pretrainflow export-llama --model results/pretrain/gpt-micro-pydocs/model.safetensors \\
        --tokenizer results/corpora/pydocs/tokenizer.json --out results/export/gpt-micro-pydocs-hf
    # then: transformers.LlamaForCausalLM.from_pretrained(out), AutoTokenizer.from_pretrained(out)

Export input: the published model.safetensors (megatron-core GPTModel state dict at TP=1, see train/llm/publish.py).
The import (train/llm/hf_import.py, ``pretrainflow import-hf``) runs the same mapping backwards (``hf_to_megatron``).
Weight mapping (per layer i; q/k/v de-interleaved from megatron's fused, group-major QKV):
  embedding.word_embeddings.weight                     <-> model.embed_tokens.weight
  decoder.layers.i.input_layernorm.weight              <-> model.layers.i.input_layernorm.weight
  decoder.layers.i.self_attention.linear_qkv.weight    <-> q_proj, k_proj, v_proj   (rows per query group g:
      [g's num_heads/num_groups query heads | 1 key head | 1 value head], each head_dim rows)
  decoder.layers.i.self_attention.linear_proj.weight   <-> self_attn.o_proj.weight
  decoder.layers.i.pre_mlp_layernorm.weight            <-> model.layers.i.post_attention_layernorm.weight
  decoder.layers.i.mlp.linear_fc1.weight               <-> mlp.gate_proj (first half) / mlp.up_proj (second half)
  decoder.layers.i.mlp.linear_fc2.weight               <-> mlp.down_proj.weight
  decoder.final_layernorm.weight <-> model.norm.weight;  output_layer.weight <-> lm_head.weight (absent when tied)
RoPE needs no permutation: megatron's non-interleaved rotary embedding rotates halves, as HF Llama does.
The vocabulary stays padded (multiple of 128); ids past the tokenizer's size are never produced by it.

Chat template: a model whose metadata records one (an SFT run's training template, or the Hugging Face template a
pretraining run's tokenizer came with; train/llm/publish.py) is exported with it as tokenizer_config.json's
``chat_template`` and with the bos/eos tokens it was rendered with, so ``apply_chat_template`` renders a conversation
character for character as training did; config.json's ``eos_token_id`` then lists the template's end of turn first
(and the end of document after it when they differ), so generation stops where the model learned to. Without one,
tokenizer_config.json has no template and bos = eos = the tokenizer's end-of-document token.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

import torch

from pretrainflow.errors import PretrainflowError
from pretrainflow.io import atomic_dir, atomic_write_json, read_json
from pretrainflow.models.gpt import GPTShape, create_gpt_shape

# Tensors that keep their values, (megatron-core name, HF name): per layer (after the layer prefixes) and whole-model.
LAYER_RENAMES = (
    ("input_layernorm.weight", "input_layernorm.weight"),
    ("self_attention.linear_proj.weight", "self_attn.o_proj.weight"),
    ("pre_mlp_layernorm.weight", "post_attention_layernorm.weight"),
    ("mlp.linear_fc2.weight", "mlp.down_proj.weight"),
)
MODEL_RENAMES = (
    ("embedding.word_embeddings.weight", "model.embed_tokens.weight"),
    ("decoder.final_layernorm.weight", "model.norm.weight"),
)
OUTPUT_RENAME = ("output_layer.weight", "lm_head.weight")  # neither exists when the embeddings are tied
# Fused megatron tensors and the HF tensors they hold, in order (rows).
QKV = (
    "self_attention.linear_qkv.weight",
    ("self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight"),
)
FC1 = ("mlp.linear_fc1.weight", ("mlp.gate_proj.weight", "mlp.up_proj.weight"))
# megatron-core's Llama-3.1 RoPE scaling fixes everything but the factor (RotaryEmbedding._apply_scaling).
MEGATRON_LLAMA3_ROPE = {"low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}


def megatron_layer(i: int) -> str:
    return f"decoder.layers.{i}."


def hf_layer(i: int) -> str:
    return f"model.layers.{i}."


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


def fuse_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, shape: GPTShape) -> torch.Tensor:
    """The inverse of ``split_qkv``: per query group, its query heads, then its key head, then its value head."""
    groups, hd, h = shape.query_groups, shape.head_dim, shape.hidden_size
    q_per_group = shape.num_attention_heads // groups
    parts = (q.reshape(groups, q_per_group * hd, h), k.reshape(groups, hd, h), v.reshape(groups, hd, h))
    return torch.cat(parts, dim=1).reshape(-1, h)


def hf_shapes(shape: GPTShape, vocab_size: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of a LlamaForCausalLM of ``shape`` (``vocab_size`` embedding rows) and its shape."""
    h, f, hd = shape.hidden_size, shape.ffn_hidden_size, shape.head_dim
    heads, groups = shape.num_attention_heads, shape.query_groups
    sizes = {"model.embed_tokens.weight": (vocab_size, h), "model.norm.weight": (h,)}
    if not shape.tie_embeddings:
        sizes["lm_head.weight"] = (vocab_size, h)
    for i in range(shape.num_layers):
        layer = hf_layer(i)
        sizes.update({
            layer + "input_layernorm.weight": (h,), layer + "post_attention_layernorm.weight": (h,),
            layer + "self_attn.q_proj.weight": (heads * hd, h), layer + "self_attn.k_proj.weight": (groups * hd, h),
            layer + "self_attn.v_proj.weight": (groups * hd, h), layer + "self_attn.o_proj.weight": (h, heads * hd),
            layer + "mlp.gate_proj.weight": (f, h), layer + "mlp.up_proj.weight": (f, h),
            layer + "mlp.down_proj.weight": (h, f),
        })  # fmt: skip
    return sizes


def megatron_to_hf(mc: dict[str, torch.Tensor], shape: GPTShape) -> dict[str, torch.Tensor]:
    """megatron-core GPTModel (TP=1) tensors -> LlamaForCausalLM tensors (see the module docstring's mapping)."""
    f = shape.ffn_hidden_size
    renames = list(MODEL_RENAMES) + ([] if shape.tie_embeddings else [OUTPUT_RENAME])
    hf: dict[str, torch.Tensor] = {dst: mc[src] for src, dst in renames}
    for i in range(shape.num_layers):
        src, dst = megatron_layer(i), hf_layer(i)
        hf.update({dst + hf_name: mc[src + mc_name] for mc_name, hf_name in LAYER_RENAMES})
        hf.update(zip([dst + name for name in QKV[1]], split_qkv(mc[src + QKV[0]], shape), strict=True))
        fc1 = mc[src + FC1[0]]
        hf.update({dst + FC1[1][0]: fc1[:f], dst + FC1[1][1]: fc1[f:]})
    return {key: value.contiguous().clone() for key, value in hf.items()}


convert_state_dict = megatron_to_hf  # the export's older name


def hf_to_megatron(hf: dict[str, torch.Tensor], shape: GPTShape) -> dict[str, torch.Tensor]:
    """LlamaForCausalLM tensors -> megatron-core GPTModel (TP=1) tensors: ``megatron_to_hf`` backwards."""
    renames = list(MODEL_RENAMES) + ([] if shape.tie_embeddings else [OUTPUT_RENAME])
    mc: dict[str, torch.Tensor] = {src: hf[dst] for src, dst in renames}
    for i in range(shape.num_layers):
        dst, src = megatron_layer(i), hf_layer(i)
        mc.update({dst + mc_name: hf[src + hf_name] for mc_name, hf_name in LAYER_RENAMES})
        mc[dst + QKV[0]] = fuse_qkv(*(hf[src + name] for name in QKV[1]), shape)
        mc[dst + FC1[0]] = torch.cat([hf[src + name] for name in FC1[1]], dim=0)
    return {key: value.contiguous() for key, value in mc.items()}


def shape_from_metadata(meta: dict[str, str], path: str | Path) -> GPTShape:
    """The GPTShape of a pretrainflow model.safetensors: a run's ``{name, ...overrides}`` of a registered shape, or an
    import's complete field list (its name is the import's, not a registered one)."""
    if "shape" not in meta:
        raise PretrainflowError(
            f"{path}: no 'shape' metadata (expected a pretrainflow pretrain-llm or import-hf model)"
        )
    spec = json.loads(meta["shape"])
    if set(spec) == {item.name for item in fields(GPTShape)}:
        return GPTShape(**spec)
    return create_gpt_shape(spec.pop("name"), **spec)


def rope_parameters(shape: GPTShape) -> dict[str, Any]:
    """transformers' ``rope_parameters`` of ``shape``: plain RoPE, or Llama-3.1 scaling as megatron-core applies it."""
    if shape.rope_scaling_factor is None:
        return {"rope_type": "default", "rope_theta": float(shape.rotary_base)}
    return {"rope_type": "llama3", "rope_theta": float(shape.rotary_base), "factor": float(shape.rope_scaling_factor),
            **MEGATRON_LLAMA3_ROPE}  # fmt: skip


def llama_config(shape: GPTShape, vocab_size: int, seq_length: int, eos_id: int) -> dict[str, Any]:
    """config.json of the export (transformers LlamaConfig fields)."""
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab_size,
        "hidden_size": shape.hidden_size, "intermediate_size": shape.ffn_hidden_size,
        "num_hidden_layers": shape.num_layers, "num_attention_heads": shape.num_attention_heads,
        "num_key_value_heads": shape.query_groups, "head_dim": shape.head_dim, "hidden_act": "silu",
        "max_position_embeddings": seq_length, "rms_norm_eps": shape.norm_epsilon,
        "rope_parameters": rope_parameters(shape),
        "tie_word_embeddings": shape.tie_embeddings, "attention_bias": False, "mlp_bias": False,
        "bos_token_id": eos_id, "eos_token_id": eos_id, "initializer_range": shape.init_method_std,
        "torch_dtype": "float32",
    }  # fmt: skip


def recorded_template(meta: dict[str, str], model_path: str | Path):
    """The ChatTemplate (train/llm/sft_data.py) recorded in a published model's metadata, or None.

    An SFT run published before templates were recorded has none: exporting it would drop the template it was trained
    with, so that is an error (its summary.json beside the weights says it is an SFT run).
    """
    from pretrainflow.train.llm.sft_data import template_from_json

    if "chat_template" in meta:
        return template_from_json(meta["chat_template"], f"{model_path} (metadata chat_template)")
    summary = Path(model_path).parent / "summary.json"
    if summary.is_file() and "sft" in read_json(summary):
        raise PretrainflowError(
            f"{model_path}: an SFT model without its chat template in the metadata (published before templates were "
            "recorded); rerun its sft-llm (it republishes from the final checkpoint without training), then export"
        )
    return None


def chat_settings(template, tokenizer, eod_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tokenizer_config.json keys, config.json keys) of an export with ``template``: the source and the exact bos and
    eos strings training rendered it with; an error names a token the tokenizer lacks (it would be added anew)."""
    if not template.eos_token:  # training always has one (sft_data.chat_template falls back to the end of document)
        raise PretrainflowError(f"chat template {template.name}: records no eos_token (the end of turn it ends with)")
    ids = {}
    for role, token in (("bos_token", template.bos_token), ("eos_token", template.eos_token)):
        if token and tokenizer.token_to_id(token) is None:
            raise PretrainflowError(f"chat template {template.name}: its {role} {token!r} is not a token of the "
                                    "tokenizer being exported (the template must come with the model's tokenizer)")  # fmt: skip
        ids[role] = tokenizer.token_to_id(token) if token else None
    if template.bos_token:
        bos = template.bos_token
    else:
        # Training rendered ``bos_token`` as "": a template that uses it gets no bos_token (undefined, rendered as
        # ""); one that does not keeps the end-of-document token, as every export without a template has.
        bos = None if "bos_token" in template.source else tokenizer.id_to_token(eod_id)
    eot = ids["eos_token"]
    tokenizer_keys = {"chat_template": template.source, "bos_token": bos, "eos_token": template.eos_token}
    config_keys = {"eos_token_id": eot if eot == eod_id else [eot, eod_id]}
    if ids["bos_token"] is not None:
        config_keys["bos_token_id"] = ids["bos_token"]
    return tokenizer_keys, config_keys


def export_llama(model_path: str | Path, tokenizer_path: str | Path, out_dir: str | Path) -> Path:
    """Write ``out_dir`` (model.safetensors, config.json, tokenizer.json, tokenizer_config.json) atomically; with the
    chat template the model's metadata records (see the module docstring)."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from pretrainflow.corpora.tokenizer import PAD_TOKEN, load_tokenizer, special_ids

    with safe_open(str(model_path), "pt") as handle:
        meta = handle.metadata() or {}
    shape = shape_from_metadata(meta, model_path)
    check_llama_compatible(shape)
    tensors = load_file(str(model_path))
    vocab_size = tensors["embedding.word_embeddings.weight"].shape[0]
    tokenizer = load_tokenizer(tokenizer_path)
    eos_id, pad_id = special_ids(tokenizer)
    eos_token = tokenizer.id_to_token(eos_id)
    template = recorded_template(meta, model_path)
    chat_tokenizer, chat_config = ({}, {}) if template is None else chat_settings(template, tokenizer, eos_id)
    with atomic_dir(out_dir) as tmp:
        save_file(megatron_to_hf(tensors, shape), str(tmp / "model.safetensors"), metadata={"format": "pt"})
        config = llama_config(shape, vocab_size, int(meta.get("seq_length", 2048)), eos_id) | chat_config
        if pad_id is not None:
            config["pad_token_id"] = pad_id
        atomic_write_json(tmp / "config.json", config)
        tokenizer.save(str(tmp / "tokenizer.json"))
        atomic_write_json(tmp / "tokenizer_config.json", {
            # the end-of-document token the tokenizer has (ours: <|endoftext|>; an imported Llama-3's: <|end_of_text|>)
            "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": eos_token, "eos_token": eos_token,
            "pad_token": PAD_TOKEN if pad_id is not None else None, "model_max_length": config["max_position_embeddings"],
        } | chat_tokenizer)  # fmt: skip
    return Path(out_dir)
