"""GPT / Llama-style language models built from megatron-core layer specs, and a registry of named sizes.

    from pretrainflow.models.gpt import create_gpt_shape, build_gpt_model
    shape = create_gpt_shape("gpt_micro", num_layers=4)       # registered shape + overrides
    model = build_gpt_model(shape, vocab_size=2048, seq_length=128, device="cpu")   # inside initialize_model_parallel

A shape is a plain typed config; ``build_gpt_model`` turns it into a megatron-core ``GPTModel`` whose parallel layout
comes from ``megatron.core.parallel_state`` (the caller initialises it). Llama switches: RoPE (``position_embedding``),
SwiGLU (``swiglu``), RMSNorm (``normalization``), grouped-query attention (``num_query_groups``), no linear biases.
On CUDA with Transformer Engine installed the TE spec (fused kernels, flash attention) is used; otherwise, on CPU and
on CUDA alike, the local spec with ``SDPACoreAttention`` (see gpt_attention.py). Every floating-point parameter is
kept in ``params_dtype`` (``cast_floating_params``), as megatron-LM's Float16Module would.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pretrainflow.errors import ConfigError
from pretrainflow.models.registry import Registry
from pretrainflow.spec_fields import flag, number, one_of, positive_int

VOCAB_PAD_MULTIPLE = 128  # Megatron convention: padded vocab divisible by 128 (and so by any TP degree <= 128)


@dataclass(kw_only=True, slots=True)
class GPTShape:
    """Architecture of one GPT variant (sizes in elements; ``ffn_hidden_size`` is the SwiGLU inner width)."""

    name: str
    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_query_groups: int | None = None  # None = multi-head attention (groups == heads)
    ffn_hidden_size: int
    swiglu: bool = True
    normalization: str = "RMSNorm"
    norm_epsilon: float = 1e-5
    position_embedding: str = "rope"  # "rope" (Llama) or "learned_absolute" (GPT-2)
    rotary_base: int = 10000
    # Llama-3.1-style RoPE scaling (megatron-core's: low/high frequency factors 1 / 4 over an original context of
    # 8,192 tokens; only the factor is free); None = plain RoPE
    rope_scaling_factor: float | None = None
    tie_embeddings: bool = False
    init_method_std: float = 0.02

    def __post_init__(self) -> None:
        # Field checks raise ValueError("<key>: ..."); create_gpt_shape prefixes the study path (model.<key>).
        for key in ("num_layers", "hidden_size", "num_attention_heads", "ffn_hidden_size"):
            positive_int(key, getattr(self, key))
        if self.num_query_groups is not None:
            positive_int("num_query_groups", self.num_query_groups)  # null: one group per head
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size: expected a multiple of num_attention_heads={self.num_attention_heads}, "
                f"got {self.hidden_size}"
            )
        if self.num_attention_heads % self.query_groups:
            raise ValueError(
                f"num_query_groups: expected a divisor of num_attention_heads={self.num_attention_heads}, "
                f"got {self.query_groups}"
            )
        number("norm_epsilon", self.norm_epsilon, 0.0, open_low=True)
        number("init_method_std", self.init_method_std, 0.0, open_low=True)
        number("rotary_base", self.rotary_base, 1.0)
        if self.rope_scaling_factor is not None:
            number("rope_scaling_factor", self.rope_scaling_factor, 1.0)
            if self.position_embedding != "rope":
                raise ValueError("rope_scaling_factor: needs position_embedding 'rope'")
        one_of("normalization", self.normalization, ["RMSNorm", "LayerNorm"])
        one_of("position_embedding", self.position_embedding, ["rope", "learned_absolute"])
        flag("swiglu", self.swiglu)
        flag("tie_embeddings", self.tie_embeddings)

    @property
    def query_groups(self) -> int:
        return self.num_query_groups or self.num_attention_heads

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    def check_parallel(self, tensor: int, pipeline: int, where: str = "parallel") -> None:
        """Tensor parallel splits heads, query groups and the FFN; pipeline parallel splits layers."""
        for key, value in (("query groups", self.query_groups), ("ffn_hidden_size", self.ffn_hidden_size)):
            if value % tensor:
                raise ConfigError(f"{where}.tensor: {tensor} does not divide {key}={value} of {self.name}")
        if self.num_layers % pipeline:
            raise ConfigError(
                f"{where}.pipeline: {pipeline} does not divide num_layers={self.num_layers} of {self.name}"
            )

    def num_parameters(self, vocab_size: int) -> int:
        """Parameter count (padded vocab), for FLOPs and logs."""
        h, f, L = self.hidden_size, self.ffn_hidden_size, self.num_layers
        kv = 2 * self.query_groups * self.head_dim
        attn = h * (h + kv) + h * h
        mlp = h * f * (3 if self.swiglu else 2)
        per_layer = attn + mlp + 2 * h
        embed = vocab_size * h * (1 if self.tie_embeddings else 2)
        return L * per_layer + embed + h

    def flops_per_token(self, vocab_size: int, seq_length: int) -> float:
        """Training FLOPs per token: 6 x (non-embedding matmul params + output layer) + attention scores.

        6 = 2 (multiply-add) x 3 (forward + backward); attention QK^T and AV add 6 x 2 x L x s x h per token
        with causal masking not discounted (the usual MFU convention, e.g. PaLM appendix B / Megatron).
        """
        h, L = self.hidden_size, self.num_layers
        matmul_params = self.num_parameters(vocab_size) - vocab_size * h * (1 if self.tie_embeddings else 2)
        matmul_params += vocab_size * h  # the output projection is a matmul even when tied
        return 6.0 * matmul_params + 12.0 * L * seq_length * h


GPTS: Registry[Callable[..., GPTShape]] = Registry("GPT shape")
register_gpt = GPTS.register  # ``@register_gpt`` on ``def llama_1b(**overrides) -> GPTShape``
list_gpts = GPTS.names


@register_gpt
def gpt_micro(**kw: Any) -> GPTShape:
    """CPU tests: 2 layers x 64 wide, 4 heads in 2 KV groups (TP=2 splits both)."""
    return GPTShape(**{"name": "gpt_micro", "num_layers": 2, "hidden_size": 64, "num_attention_heads": 4,
                       "num_query_groups": 2, "ffn_hidden_size": 128, **kw})  # fmt: skip


@register_gpt
def gpt_mini(**kw: Any) -> GPTShape:
    """Default study on CPU: 4 layers x 128 wide, 4 heads in 2 KV groups (about 0.9 M non-embedding params)."""
    return GPTShape(**{"name": "gpt_mini", "num_layers": 4, "hidden_size": 128, "num_attention_heads": 4,
                       "num_query_groups": 2, "ffn_hidden_size": 352, **kw})  # fmt: skip


@register_gpt
def llama_1b(**kw: Any) -> GPTShape:
    """Llama-3.2-1B shape: 16 x 2048, 32 heads / 8 KV groups, SwiGLU 8192, RoPE base 500k, tied embeddings."""
    return GPTShape(**{"name": "llama_1b", "num_layers": 16, "hidden_size": 2048, "num_attention_heads": 32,
                       "num_query_groups": 8, "ffn_hidden_size": 8192, "rotary_base": 500000,
                       "tie_embeddings": True, **kw})  # fmt: skip


@register_gpt
def llama_8b(**kw: Any) -> GPTShape:
    """Llama-3-8B shape: 32 x 4096, 32 heads / 8 KV groups, SwiGLU 14336, RoPE base 500k."""
    return GPTShape(**{"name": "llama_8b", "num_layers": 32, "hidden_size": 4096, "num_attention_heads": 32,
                       "num_query_groups": 8, "ffn_hidden_size": 14336, "rotary_base": 500000, **kw})  # fmt: skip


def create_gpt_shape(name: str, where: str = "model", **overrides: Any) -> GPTShape:
    """The registered shape ``name`` with ``overrides`` applied; errors name ``where`` and the known names."""
    if name not in GPTS:
        raise ConfigError(f"{where}.name: expected one of {list_gpts()}, got {name!r}")
    fields = {f.name for f in dataclasses.fields(GPTShape)} - {"name"}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown model keys {unknown}; expected some of {sorted(fields)}")
    try:
        return GPTS.factory(name)(**overrides)
    except ValueError as err:
        raise ConfigError(f"{where}.{err}") from None


def padded_vocab_size(vocab_size: int) -> int:
    """Round the tokenizer's vocab up to a multiple of 128 (e.g. 2048 -> 2048, 50257 -> 50304)."""
    return -(-vocab_size // VOCAB_PAD_MULTIPLE) * VOCAB_PAD_MULTIPLE


def transformer_config(shape: GPTShape, *, device: str, params_dtype=None, sequence_parallel: bool = False):
    """megatron-core TransformerConfig for ``shape`` in the current parallel state (no dropout: pretraining)."""
    import torch
    import torch.nn.functional as F
    from megatron.core import parallel_state
    from megatron.core.transformer import TransformerConfig

    on_cuda = device == "cuda"
    dtype = params_dtype or (torch.bfloat16 if on_cuda else torch.float32)
    return TransformerConfig(
        num_layers=shape.num_layers,
        hidden_size=shape.hidden_size,
        num_attention_heads=shape.num_attention_heads,
        num_query_groups=shape.query_groups,
        ffn_hidden_size=shape.ffn_hidden_size,
        kv_channels=shape.head_dim,
        gated_linear_unit=shape.swiglu,
        activation_func=F.silu if shape.swiglu else F.gelu,
        normalization=shape.normalization,
        layernorm_epsilon=shape.norm_epsilon,
        add_bias_linear=False,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        init_method_std=shape.init_method_std,
        tensor_model_parallel_size=parallel_state.get_tensor_model_parallel_world_size(),
        pipeline_model_parallel_size=parallel_state.get_pipeline_model_parallel_world_size(),
        sequence_parallel=sequence_parallel,
        params_dtype=dtype,
        pipeline_dtype=dtype,
        bf16=dtype == torch.bfloat16,
        # CPU: initialise the full weight on CPU from the default generator and slice it, so TP=1 and TP=2 start
        # from identical weights (this is what makes the TP equivalence test meaningful).
        use_cpu_initialization=not on_cuda,
        bias_activation_fusion=on_cuda and shape.swiglu,
        bias_dropout_fusion=on_cuda,
        apply_rope_fusion=False,
        # Apex-only kernels (fused masked softmax, persistent layer norm) stay off: TE attention/norms are fused already.
        masked_softmax_fusion=False,
        persist_layer_norm=False,
        gradient_accumulation_fusion=False,
    )


def transformer_engine_available() -> bool:
    """Whether Transformer Engine imports (fused kernels, flash attention, sequence-parallel norms)."""
    try:
        import transformer_engine  # noqa: F401
    except ImportError:
        return False
    return True


def layer_spec(shape: GPTShape, *, device: str, transformer_engine: bool | None = None):
    """Transformer Engine spec on CUDA when TE imports (``transformer_engine`` None = look), else the local spec with
    SDPA core attention, on CPU and CUDA alike.

    Not megatron's local DotProductAttention: it needs CUDA at all, and on CUDA it materialises the [batch, heads, s, s]
    scores in fp32 (llama_1b at s 4,096, micro 2: 2 x 32 x 4,096^2 x 4 bytes = 4.3 GB per layer, kept for the backward
    pass in each of 16 layers), where SDPA picks a flash or memory-efficient kernel.
    """
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

    from pretrainflow.models.gpt_attention import SDPACoreAttention

    if transformer_engine is None:
        transformer_engine = device == "cuda" and transformer_engine_available()
    if device == "cuda" and transformer_engine:
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_with_transformer_engine_spec

        return get_gpt_layer_with_transformer_engine_spec()
    spec = get_gpt_layer_local_spec(normalization=shape.normalization)
    spec.submodules.self_attention.submodules.core_attention = SDPACoreAttention
    return spec


def cast_floating_params(model, dtype) -> None:
    """Every floating-point parameter in ``dtype``, in place; buffers keep theirs (RoPE frequencies stay fp32).

    megatron-core builds its parallel linears and embeddings in ``params_dtype`` but torch norms and the learned
    position embedding in fp32; megatron-LM's Float16Module casts them. Without it a bf16 model adds an fp32 position
    embedding to bf16 word embeddings and the first bf16 linear then refuses the fp32 activations.
    """
    for param in model.parameters():
        if param.is_floating_point() and param.dtype != dtype:
            param.data = param.data.to(dtype)


def build_gpt_model(shape: GPTShape, *, vocab_size: int, seq_length: int, device: str = "cpu", config=None):
    """A megatron-core GPTModel for this pipeline stage (``initialize_model_parallel`` must have run)."""
    from megatron.core import parallel_state
    from megatron.core.models.gpt import GPTModel

    config = config or transformer_config(shape, device=device)
    model = GPTModel(
        config=config,
        transformer_layer_spec=layer_spec(shape, device=device),
        vocab_size=padded_vocab_size(vocab_size),
        max_sequence_length=seq_length,
        pre_process=parallel_state.is_pipeline_first_stage(),
        post_process=parallel_state.is_pipeline_last_stage(),
        share_embeddings_and_output_weights=shape.tie_embeddings,
        position_embedding_type=shape.position_embedding,
        rotary_base=shape.rotary_base,
        rope_scaling=shape.rope_scaling_factor is not None,
        rope_scaling_factor=shape.rope_scaling_factor or 8.0,  # megatron-core's default, unused without scaling
    )
    cast_floating_params(model, config.params_dtype)
    if device != "cuda":
        from pretrainflow.models.gpt_attention import make_rope_cpu_safe

        make_rope_cpu_safe(model)
    return model.to(device)
