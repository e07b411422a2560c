"""Adapters for megatron-core GPT models without Transformer Engine: SDPA core attention, a CPU-safe rotary embedding.

megatron-core's local ``DotProductAttention`` asks ``torch.cuda.current_device()`` for a scratch buffer, so it cannot
run on CPU, and on CUDA it materialises fp32 attention scores. ``SDPACoreAttention`` takes its place in
``SelfAttentionSubmodules.core_attention``: same constructor and ``forward(query, key, value, attention_mask, ...)``
contract, inputs ``[seq, batch, heads_per_partition, head_dim]`` (keys/values with ``query_groups_per_partition`` heads
under GQA), output ``[seq, batch, heads_per_partition * head_dim]``. It is causal (the only mask GPT pretraining uses)
and works under tensor parallelism because every rank only sees its own heads.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from megatron.core.models.common.embeddings.rotary_pos_embedding import RotaryEmbedding
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.module import MegatronModule


class SDPACoreAttention(MegatronModule):
    """Causal scaled-dot-product attention over this rank's heads (see module docstring)."""

    def __init__(
        self,
        config,
        layer_number: int,
        attn_mask_type: AttnMaskType,
        attention_type: str,
        attention_dropout: float | None = None,
        softmax_scale: float | None = None,
        cp_comm_type: str | None = None,
        pg_collection=None,
    ) -> None:
        super().__init__(config=config)
        if config.context_parallel_size != 1:
            raise ValueError("SDPACoreAttention does not support context parallelism (use the Transformer Engine spec)")
        if attn_mask_type not in (AttnMaskType.causal, AttnMaskType.padding_causal):
            raise ValueError(f"SDPACoreAttention is causal only, got {attn_mask_type}")
        head_dim = config.kv_channels
        self.softmax_scale = softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(head_dim)
        self.dropout_p = config.attention_dropout if attention_dropout is None else attention_dropout

    def forward(
        self, query, key, value, attention_mask, attn_mask_type=None, attention_bias=None, packed_seq_params=None
    ):
        if packed_seq_params is not None or attention_bias is not None:
            raise NotImplementedError("SDPACoreAttention supports neither packed sequences nor attention bias")
        seq, batch, heads, head_dim = query.shape
        groups = key.shape[2]
        if heads != groups:  # GQA: each key/value head serves heads // groups query heads
            key = key.repeat_interleave(heads // groups, dim=2)
            value = value.repeat_interleave(heads // groups, dim=2)
        # [s, b, h, d] -> [b, h, s, d] as SDPA expects
        q, k, v = (t.permute(1, 2, 0, 3) for t in (query, key, value))
        out = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout_p if self.training else 0.0, scale=self.softmax_scale
        )
        # [b, h, s, d] -> [s, b, h * d]
        return out.permute(2, 0, 1, 3).reshape(seq, batch, heads * head_dim)


class CPURotaryEmbedding(RotaryEmbedding):
    """megatron-core's RotaryEmbedding without its move of ``inv_freq`` to ``torch.cuda.current_device()``.

    ``RotaryEmbedding.get_emb`` unconditionally moves a CPU ``inv_freq`` to CUDA on the first forward; on a CPU-only
    machine that raises. The frequencies and their layout (non-interleaved halves, as Hugging Face Llama) are the same.
    ``inv_freq`` is a plain attribute, which ``Module.to()`` skips: ``_apply`` moves it with the module (a model built
    on CPU and moved to CUDA for evaluation) but keeps it fp32, as megatron does (bf16 frequencies would blur the
    positions of a long sequence).
    """

    def _apply(self, fn, recurse=True):
        module = super()._apply(fn, recurse)
        self.inv_freq = self.inv_freq.to(device=fn(self.inv_freq).device, dtype=torch.float32)
        # forward is lru_cached per (module, length): drop the embeddings computed on the old device
        RotaryEmbedding.forward.cache_clear()
        return module

    def get_emb(self, max_seq_len: int, offset: int = 0):
        freqs = self.get_freqs_non_repeated(max_seq_len, offset)
        if self.rotary_interleaved:
            emb = torch.stack((freqs.view(-1, 1), freqs.view(-1, 1)), dim=-1).view(freqs.shape[0], -1)
        else:
            emb = torch.cat((freqs, freqs), dim=-1)
        return emb[:, None, None, :]  # [seq, 1, 1, head_dim]


def make_rope_cpu_safe(model) -> None:
    """Swap the class of ``model.rotary_pos_emb`` (if any) for CPURotaryEmbedding: same state, CPU-safe ``get_emb``."""
    rope = getattr(model, "rotary_pos_emb", None)
    if rope is not None and type(rope) is RotaryEmbedding:
        rope.__class__ = CPURotaryEmbedding
