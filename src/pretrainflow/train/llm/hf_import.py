"""Import a local Hugging Face Llama directory as the starting weights of a megatron-core run (``init: {hf: DIR}``).

    pretrainflow import-hf --hf data/hf/Meta-Llama-3-8B --out results/import/meta-llama-3-8b-3e6ff725

Reads ``config.json`` (checked key by key: what megatron-core's GPTModel cannot reproduce is an error naming the file
and the key, before anything is written), ``tokenizer.json`` and the safetensors (``model.safetensors`` or the shards
of ``model.safetensors.index.json``), and writes ``results/import/{name}/`` atomically:
  model.safetensors  megatron-core GPTModel state dict at TP=1 (fp32), exactly what a finished run publishes
                     (train/llm/publish.py; names mapped by export/hf_llama.hf_to_megatron), so an import and an earlier
                     run are one kind of ``init`` source; metadata: shape (every GPTShape field, from config.json),
                     vocab_size (the tokenizer's), seq_length (max_position_embeddings), step 0, source
  tokenizer.json     the model's tokenizer, byte for byte
  config.json        the one config.json shape: {config: {hf, hf_config, shape}, config_hash, provenance}
The training ranks then read only their tensor-parallel slice of model.safetensors (train/llm/checkpoint.py
``load_initial_weights``). ``{name}`` is the directory's name, lower-cased, plus 8 hex digits of its path
(``import_name``): runs that start from one directory share one import.

Supported: LlamaForCausalLM with SiLU, no biases, any GQA grouping, any integral RoPE base, plain RoPE or Llama-3.1
scaling as megatron-core implements it (factor free; low/high frequency factors 1 / 4 over 8,192 original positions),
tied or untied embeddings, a vocabulary that is the tokenizer's size rounded up to a multiple of 128 (the padding every
pretrainflow model uses; Llama-2's 32,000 and Llama-3's 128,256 are).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pretrainflow.errors import ConfigError, PretrainflowError
from pretrainflow.models.gpt import GPTShape, padded_vocab_size
from pretrainflow.study.layout import IMPORT_TOKENIZER, IMPORT_WEIGHTS

SUPPORTED_ARCHITECTURES = ("LlamaForCausalLM",)
WEIGHTS_INDEX = "model.safetensors.index.json"


def import_name(hf: str) -> str:
    """Directory name of the import of ``hf``: its base name made safe, plus 8 hex digits of the normalised path.

    >>> import_name("data/hf/Meta-Llama-3-8B")
    'meta-llama-3-8b-3e6ff725'
    """
    normalised = os.path.normpath(hf)
    base = re.sub(r"[^a-z0-9_-]+", "-", Path(normalised).name.lower()).strip("-_") or "model"
    return f"{base}-{hashlib.sha256(normalised.encode()).hexdigest()[:8]}"


def hf_input_files(hf: str) -> list[str]:
    """The files of ``hf`` an import reads (the Snakemake rule's inputs): config.json, tokenizer.json and the weights
    (the index and its shards, or model.safetensors; when the directory is absent, the files it must have)."""
    root = Path(hf)
    files = [root / "config.json", root / "tokenizer.json"]
    index = root / WEIGHTS_INDEX
    if index.is_file():
        return [str(p) for p in [*files, index, *(root / name for name in _weight_map(index).values())]]
    return [str(p) for p in [*files, root / "model.safetensors"]]


@dataclass(frozen=True, slots=True)
class HFImport:
    """One import of a study: the directory and the shape its runs declare (to size the job before config.json)."""

    hf: str
    shape: GPTShape


def study_imports(runs: Mapping[str, Mapping[str, Any]]) -> dict[str, HFImport]:
    """Import name -> HFImport for every run with ``init.hf`` (``runs``: the study's resolved run specs)."""
    from pretrainflow.train.llm.spec import LLMRunSpec

    found: dict[str, HFImport] = {}
    for run_id, spec in runs.items():
        hf = (spec.get("init") or {}).get("hf") if spec.get("kind") == "llm" else None
        if hf is not None:
            found.setdefault(
                import_name(hf), HFImport(hf, LLMRunSpec.from_dict(spec, f"pretrain.{run_id}").gpt_shape())
            )
    return found


def import_job_resources(shape: GPTShape) -> dict[str, int]:
    """One CPU process holding the converted fp32 tensors: 4 bytes x parameters x 2.5 (fused tensors are built next to
    their parts; safetensors serialises from memory), the vocabulary taken as 131,072 rows before config.json is read.
    Llama-3-8B: 8.0 G parameters x 4 x 2.5 = 80 GB."""
    params = shape.num_parameters(131072)
    return {"nodes": 1, "gpus": 0, "cpus_per_task": 4, "mem_mb": max(4000, -(-params * 10 // 10**6)), "runtime": 60}


def init_input_files(spec: Mapping[str, Any]) -> list[str]:
    """What a run's ``init`` reads (rule inputs): the import's or the earlier run's weights, and their tokenizer."""
    from pretrainflow.study import layout

    init = spec.get("init") or {}
    if "hf" in init:
        name = import_name(init["hf"])
        return [IMPORT_WEIGHTS.format(model=name), IMPORT_TOKENIZER.format(model=name)]
    if "run" in init:
        run_spec = init.get("run_spec") or {}
        weights = f"{layout.llm_run_dir(init['run'], run_spec)}/model.safetensors"  # an SFT run publishes elsewhere
        return [weights, layout.CORPUS_TOKENIZER.format(corpus=run_spec.get("corpus"))]
    return []


# ------------------------------------------------------------------------------------------------ config.json


def read_hf_config(hf_dir: Path) -> dict[str, Any]:
    """config.json of ``hf_dir`` as a dict; errors name the directory or the file."""
    if not hf_dir.is_dir():
        raise PretrainflowError(f"{hf_dir}: Hugging Face model directory not found")
    path = hf_dir / "config.json"
    if not path.is_file():
        raise PretrainflowError(f"{path}: not found (a Hugging Face model directory has its config.json)")
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PretrainflowError(f"{path}: not a JSON file ({err})") from None
    if not isinstance(config, dict):
        raise PretrainflowError(f"{path}: expected a JSON object of model settings, got {type(config).__name__}")
    return config


class _Keys:
    """Typed reads of config.json with transformers' LlamaConfig defaults; errors name the file and the key."""

    def __init__(self, config: Mapping[str, Any], path: Path) -> None:
        self.config, self.path = config, path

    def fail(self, key: str, message: str) -> PretrainflowError:
        return PretrainflowError(f"{self.path}: {key}: {message}")

    def integer(self, key: str, default: int | None = None) -> int:
        value = self.config.get(key, default)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise self.fail(key, f"expected a positive integer, got {value!r}" if key in self.config else "missing")
        return value

    def number(
        self, key: str, default: float, where: Mapping[str, Any] | None = None, name: str | None = None
    ) -> float:
        value = (self.config if where is None else where).get(key, default)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise self.fail(name or key, f"expected a number > 0, got {value!r}")
        return float(value)

    def equal(self, key: str, expected: Any, default: Any, why: str) -> None:
        value = self.config.get(key, default)
        if value != expected:
            raise self.fail(key, f"{value!r} is not supported ({why})")


def llama_shape(config: Mapping[str, Any], path: Path, name: str) -> tuple[GPTShape, int, int]:
    """(GPTShape, vocab_size, max_position_embeddings) of a Llama config.json, or an error naming the key.

    Defaults are transformers' LlamaConfig's for keys an older config.json leaves out.
    """
    keys = _Keys(config, path)
    architectures = config.get("architectures")
    if architectures is not None and list(architectures) != list(SUPPORTED_ARCHITECTURES):
        raise keys.fail(
            "architectures", f"{architectures!r} is not supported (the importer reads {list(SUPPORTED_ARCHITECTURES)})"
        )
    keys.equal("model_type", "llama", None, "the importer reads Llama models only")
    if config.get("quantization_config") is not None:
        raise keys.fail("quantization_config", "quantised weights are not supported (import the full-precision model)")
    keys.equal("hidden_act", "silu", "silu", "megatron's SwiGLU gates with SiLU")
    keys.equal("attention_bias", False, False, "megatron-core's GPT here has no linear biases")
    keys.equal("mlp_bias", False, False, "megatron-core's GPT here has no linear biases")
    hidden, heads = keys.integer("hidden_size"), keys.integer("num_attention_heads")
    head_dim = config.get("head_dim")
    if head_dim is not None and head_dim * heads != hidden:
        raise keys.fail("head_dim", f"{head_dim!r} is not supported (must be hidden_size / num_attention_heads = "
                                    f"{hidden / heads:g}: megatron's heads split the hidden size)")  # fmt: skip
    theta, factor = _rope(config, keys)
    tie = config.get("tie_word_embeddings", False)
    if not isinstance(tie, bool):
        raise keys.fail("tie_word_embeddings", f"expected true or false, got {tie!r}")
    try:
        shape = GPTShape(
            name=name, num_layers=keys.integer("num_hidden_layers"), hidden_size=hidden, num_attention_heads=heads,
            num_query_groups=keys.integer("num_key_value_heads", heads), ffn_hidden_size=keys.integer("intermediate_size"),
            norm_epsilon=keys.number("rms_norm_eps", 1e-6), rotary_base=theta, rope_scaling_factor=factor,
            tie_embeddings=tie, init_method_std=keys.number("initializer_range", 0.02),
        )  # fmt: skip
    except ValueError as err:
        raise PretrainflowError(f"{path}: describes no valid GPT shape ({err})") from None
    return shape, keys.integer("vocab_size"), keys.integer("max_position_embeddings", 2048)


def _rope(config: Mapping[str, Any], keys: _Keys) -> tuple[int, float | None]:
    """(RoPE base, Llama-3.1 scaling factor or None) from ``rope_parameters`` (transformers 5) or ``rope_theta`` +
    ``rope_scaling`` (transformers 4)."""
    from pretrainflow.export.hf_llama import MEGATRON_LLAMA3_ROPE

    key = "rope_parameters" if isinstance(config.get("rope_parameters"), Mapping) else "rope_scaling"
    params = config.get(key) or {}
    theta_key = f"{key}.rope_theta" if "rope_theta" in params else "rope_theta"
    theta = keys.number("rope_theta", 10000.0, params if "rope_theta" in params else None, theta_key)
    if not theta.is_integer():
        raise keys.fail(theta_key, f"{theta!r} is not supported (the study's model.rotary_base is an integer)")
    kind = params.get("rope_type", params.get("type", "default"))
    if kind == "default":
        return int(theta), None
    if kind != "llama3":
        raise keys.fail(f"{key}.rope_type", f"{kind!r} is not supported (supported: 'default', and 'llama3' as "
                                             "megatron-core implements it)")  # fmt: skip
    for name, value in MEGATRON_LLAMA3_ROPE.items():
        if params.get(name) != value:
            raise keys.fail(f"{key}.{name}", f"{params.get(name)!r} is not supported (megatron-core's Llama-3.1 RoPE "
                                              f"scaling fixes it to {value:g})")  # fmt: skip
    return int(theta), keys.number("factor", 8.0, params, f"{key}.factor")


# ------------------------------------------------------------------------------------------------ weights


def _weight_map(index: Path) -> dict[str, str]:
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise PretrainflowError(f"{index}: not a safetensors index with a weight_map ({err!r})") from None
    if not isinstance(weight_map, dict):
        raise PretrainflowError(f"{index}: weight_map: expected a mapping of tensor names to files")
    return weight_map


def read_hf_weights(hf_dir: Path, expected: Mapping[str, tuple[int, ...]], optional: set[str]) -> dict[str, Any]:
    """The tensors ``expected`` (name -> shape) as fp32, read from the directory's safetensors; a missing, misshapen
    or unexpected tensor (a bias, say) is an error naming the file. ``optional`` names are skipped when present."""
    import torch
    from safetensors import safe_open

    index = hf_dir / WEIGHTS_INDEX
    if index.is_file():
        files = sorted(set(_weight_map(index).values()))
    elif (hf_dir / "model.safetensors").is_file():
        files = ["model.safetensors"]
    else:
        raise PretrainflowError(f"{hf_dir}: no model.safetensors or {WEIGHTS_INDEX} (pytorch_model.bin is not "
                                "read: save the model with safe_serialization=True)")  # fmt: skip
    tensors: dict[str, Any] = {}
    for file in files:
        path = hf_dir / file
        if not path.is_file():
            raise PretrainflowError(f"{path}: not found (listed in {index.name})")
        with safe_open(str(path), "pt") as handle:
            for key in handle.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if key in optional or key.endswith("rotary_emb.inv_freq"):  # recomputed from the RoPE base
                    continue
                if key not in expected:
                    raise PretrainflowError(f"{path}: unexpected tensor {key} (not part of a bias-free Llama of the "
                                            "shape config.json describes)")  # fmt: skip
                tensor = handle.get_tensor(key)
                if tuple(tensor.shape) != tuple(expected[key]):
                    raise PretrainflowError(f"{path}: {key} has shape {list(tensor.shape)}, config.json implies "
                                            f"{list(expected[key])}")  # fmt: skip
                tensors[key] = tensor.to(torch.float32)
    missing = sorted(set(expected) - set(tensors))
    if missing:
        raise PretrainflowError(f"{hf_dir}: the safetensors lack {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    return tensors


# ------------------------------------------------------------------------------------------------ the import


def import_hf(hf_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    """Check ``hf_dir`` completely, then write the import directory ``out_dir`` atomically; returns its config."""
    from safetensors.torch import save_file

    from pretrainflow.corpora.tokenizer import load_tokenizer, special_ids
    from pretrainflow.export.hf_llama import hf_shapes, hf_to_megatron
    from pretrainflow.io import atomic_dir, atomic_write_json
    from pretrainflow.provenance import config_record

    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    config = read_hf_config(hf_dir)
    shape, vocab_size, max_positions = llama_shape(config, hf_dir / "config.json", import_name(str(hf_dir)))
    tokenizer_path = hf_dir / "tokenizer.json"
    tokenizer = load_tokenizer(tokenizer_path)
    try:
        special_ids(tokenizer)
    except PretrainflowError as err:
        raise PretrainflowError(f"{tokenizer_path}: {err}") from None
    tokens = tokenizer.get_vocab_size()
    if padded_vocab_size(tokens) != vocab_size:
        raise PretrainflowError(
            f"{hf_dir / 'config.json'}: vocab_size: {vocab_size} does not fit {tokenizer_path} ({tokens} tokens, "
            f"padded to {padded_vocab_size(tokens)}: the tokenizer must be the model's, and the vocabulary its size "
            "rounded up to a multiple of 128)"
        )
    optional = {"lm_head.weight"} if shape.tie_embeddings else set()  # tied: the embedding is the output layer
    tensors = hf_to_megatron(read_hf_weights(hf_dir, hf_shapes(shape, vocab_size), optional), shape)
    record = {"hf": str(hf_dir), "hf_config": config, "shape": asdict(shape), "vocab_size": tokens}
    metadata = {"shape": json.dumps(asdict(shape), sort_keys=True), "vocab_size": str(tokens),
                "seq_length": str(max_positions), "step": "0", "source": str(hf_dir),
                "format": "megatron-core GPTModel, TP=1"}  # fmt: skip
    with atomic_dir(out_dir) as tmp:
        save_file(tensors, str(tmp / "model.safetensors"), metadata=metadata)
        (tmp / "tokenizer.json").write_bytes(tokenizer_path.read_bytes())
        atomic_write_json(tmp / "config.json", config_record(record))
    return record


# ------------------------------------------------------------------------------------------------ checks at start


@dataclass(frozen=True, slots=True)
class InitSource:
    """What a run starts from, checked: TP=1 weights, their tokenizer's size, and the run's tokenizer's size."""

    weights: Path
    init_vocab: int
    vocab: int


def init_files(
    spec: Mapping[str, Any], *, imports_dir: Path, pretrained_dir: Path, corpora_dir: Path, sft_dir: Path | None = None
) -> tuple[Path, Path]:
    """(weights, tokenizer.json) that ``init`` names, under the given roots (``sft_dir``: where SFT runs publish)."""
    init = spec["init"]
    if "hf" in init:
        name = import_name(init["hf"])
        return imports_dir / name / "model.safetensors", imports_dir / name / "tokenizer.json"
    run_spec = init.get("run_spec") or {}
    if "corpus" not in run_spec:
        raise ConfigError(f"pretrain.{spec['run_id']}.init.run_spec: missing (the study loader merges in the "
                          f"resolved spec of init.run {init['run']!r}; pass the spec the loader made)")  # fmt: skip
    runs_dir = sft_dir if run_spec.get("sft") and sft_dir is not None else pretrained_dir
    return runs_dir / init["run"] / "model.safetensors", corpora_dir / run_spec["corpus"] / "tokenizer.json"


def check_init(spec: Mapping[str, Any], *, imports_dir: Path, pretrained_dir: Path, corpora_dir: Path,
               sft_dir: Path | None = None) -> InitSource:  # fmt: skip
    """Everything an ``init`` run needs, checked before any process starts (nothing is written): the init files
    exist, their shape is the run's ``model``, and the corpus tokenizer keeps or extends the init's vocabulary."""
    from safetensors import safe_open

    from pretrainflow.corpora.tokenizer import load_tokenizer
    from pretrainflow.export.hf_llama import shape_from_metadata
    from pretrainflow.train.llm.spec import LLMRunSpec, shape_differences

    run = LLMRunSpec.from_dict(spec)
    assert run.init is not None
    where = f"pretrain.{run.run_id}"
    key = f"{where}.init.hf" if run.init.hf is not None else f"{where}.init.run"
    weights, init_tokenizer = init_files(spec, imports_dir=imports_dir, pretrained_dir=pretrained_dir,
                                         corpora_dir=corpora_dir, sft_dir=sft_dir)  # fmt: skip
    for path in (weights, init_tokenizer):
        if not path.is_file():
            how = (f"import it first: pretrainflow import-hf --hf {run.init.hf} --out {weights.parent}"
                   if run.init.hf is not None else f"pretrain run {run.init.run!r} first")  # fmt: skip
            raise PretrainflowError(f"{key}: {path} not found ({how})")
    with safe_open(str(weights), "pt") as handle:
        meta = handle.metadata() or {}
    differences = shape_differences(run.gpt_shape(), shape_from_metadata(meta, weights))
    if differences:
        raise ConfigError(f"{where}.model: does not describe the model it starts from ({weights}): "
                          f"{'; '.join(differences)} (this run's value vs the init's)")  # fmt: skip
    corpus_tokenizer = corpora_dir / run.corpus / "tokenizer.json"
    old_tokenizer, new_tokenizer = load_tokenizer(init_tokenizer), load_tokenizer(corpus_tokenizer)
    old, new = old_tokenizer.get_vocab(), new_tokenizer.get_vocab()
    old_size, new_size = old_tokenizer.get_vocab_size(), new_tokenizer.get_vocab_size()
    if run.init.tokenizer == "keep" and old != new:
        raise ConfigError(f"{where}.init.tokenizer: keep, but the corpus tokenizer {corpus_tokenizer} ({new_size} "
                          f"tokens) is not the tokenizer of the model it starts from, {init_tokenizer} ({old_size} "
                          f"tokens): tokenise corpus {run.corpus!r} with the latter (corpora.{run.corpus}.tokenizer.path), "
                          "or use init.tokenizer: extend for a tokenizer that extends it")  # fmt: skip
    if run.init.tokenizer == "extend":
        changed = sorted((i, t) for t, i in old.items() if new.get(t) != i)
        if changed or new_size <= old_size:
            what = f"token {changed[0][1]!r} (id {changed[0][0]}) has another id" if changed else "it adds no token"
            raise ConfigError(f"{where}.init.tokenizer: extend, but the corpus tokenizer {corpus_tokenizer} does not "
                              f"extend {init_tokenizer}: {what} (an extension keeps every old token's id and appends)")  # fmt: skip
    if meta.get("vocab_size") != str(old_size):
        raise PretrainflowError(f"{weights}: vocab_size metadata {meta.get('vocab_size')!r} is not the size of "
                                f"{init_tokenizer} ({old_size}): not the tokenizer these weights were made with")  # fmt: skip
    return InitSource(weights=weights, init_vocab=old_size, vocab=new_size)
