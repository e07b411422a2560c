"""Import a Hugging Face Llama and continue pretraining from it (``init:``), all on CPU.

Round trip: a randomly initialised transformers ``LlamaForCausalLM`` built here (GQA: 8 query heads in 2 KV groups,
RoPE base 50,000, RMSNorm eps 1e-6, norm weights perturbed so that they count; untied, tied, and with Llama-3.1 RoPE
scaling) -> ``import_hf`` -> loaded at TP=2 on 2 gloo ranks by the product's ``load_initial_weights`` -> megatron-core
dist checkpoint -> consolidated at TP=1 (megatron's resharding, as publishing does) -> ``export_llama`` ->
transformers again: logits equal to the original's within 1e-4 (and the TP=2 logits themselves).
Continued pretraining: one step from the import at TP=2 against the same step at TP=1 through ``pretrain-llm``; from an
earlier run (``init.run``); with an extended tokenizer (new rows from the mean).
Bad input: each is an error naming the path / key before anything is written.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from llm_helpers import CORPUS_SPEC, REPO, cli, cli_env, pretrain, read_losses, run_spec
from safetensors.torch import load_file, save_file

from pretrainflow.errors import ConfigError, PretrainflowError
from pretrainflow.study.load import load_study
from pretrainflow.train.llm.hf_import import check_init, import_hf, import_name

HERE = Path(__file__).resolve().parent
VOCAB = 512  # the test corpus's BPE, which serves as the HF model's tokenizer (already a multiple of 128)
HF_CONFIG = {
    "vocab_size": VOCAB, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
    "num_attention_heads": 8, "num_key_value_heads": 2, "rope_theta": 50000.0, "rms_norm_eps": 1e-6,
    "max_position_embeddings": 256, "initializer_range": 0.02,
}  # fmt: skip
# The same architecture as a study's model block: gpt_micro is 2 x 64 with 2 KV groups and a 128-wide FFN.
MODEL = {"name": "gpt_micro", "num_attention_heads": 8, "norm_epsilon": 1e-6, "rotary_base": 50000}
LLAMA3_ROPE = {"rope_type": "llama3", "rope_theta": 50000.0, "factor": 8.0, "low_freq_factor": 1.0,
               "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}  # fmt: skip
VARIANTS = {
    "untied": ({"tie_word_embeddings": False}, {}),
    "tied": ({"tie_word_embeddings": True}, {"tie_embeddings": True}),
    "llama3-rope": ({"tie_word_embeddings": False, "rope_parameters": LLAMA3_ROPE, "max_position_embeddings": 16384},
                    {"rope_scaling_factor": 8.0}),
}  # fmt: skip


def make_hf_llama(directory: Path, tokenizer: Path, seed: int = 0, **overrides):
    """A random LlamaForCausalLM saved as a Hugging Face directory (safetensors + config.json + tokenizer.json)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(**{**HF_CONFIG, **overrides})).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):  # ones at init: a norm mapped to the wrong place would go unnoticed
                param.add_(0.2 * torch.randn_like(param))
    model.save_pretrained(directory)
    shutil.copy(tokenizer, directory / "tokenizer.json")
    return model


def hf_corpus_spec(tokenizer: Path) -> dict:
    """The test corpus, declared as tokenised with the model's tokenizer (it was: the HF dir holds a copy of its BPE)."""
    return {**CORPUS_SPEC, "tokenizer": {"path": str(tokenizer)}}


def imported(hf_dir: Path, imports: Path) -> Path:
    out = imports / import_name(str(hf_dir))
    import_hf(hf_dir, out)
    return out


def run_ranks(entry: str, args: list[str], ranks: int) -> None:
    """``entry`` (module:function of this directory) on ``ranks`` gloo ranks through the product's launcher."""
    env = {**cli_env({"devices": {}}), "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(HERE)])}
    code = f"import sys; from pretrainflow.launch import run_distributed; sys.exit(run_distributed({entry!r}, sys.argv[1:], {ranks}))"  # fmt: skip
    proc = subprocess.run([sys.executable, "-c", code, *args], env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:]


def consolidate(spec: dict, checkpoint: Path, out: Path) -> Path:
    """A dist checkpoint of any layout -> TP=1 model.safetensors as publishing writes it (publish.py)."""
    import torch.distributed as dist
    from megatron.core import parallel_state

    from pretrainflow.train.llm.publish import load_consolidated_model, plain_state_dict, single_process_world
    from pretrainflow.train.llm.spec import LLMRunSpec

    single_process_world()
    try:
        tensors = plain_state_dict(load_consolidated_model(LLMRunSpec.from_dict(spec), VOCAB, checkpoint))
    finally:
        parallel_state.destroy_model_parallel()
        dist.destroy_process_group()
    meta = {"shape": json.dumps(spec["model"]), "vocab_size": str(VOCAB), "seq_length": str(spec["seq_length"])}
    save_file(tensors, str(out), metadata=meta)
    return out


@pytest.fixture(scope="module")
def tokenizer(corpora_dir) -> Path:
    return corpora_dir / "docs" / "tokenizer.json"


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 24), generator=torch.Generator().manual_seed(7))


# ------------------------------------------------------------------------------------------------ round trip


def test_name_mapping_inverts_exactly(tmp_path, tokenizer):
    from pretrainflow.export.hf_llama import hf_to_megatron, megatron_to_hf
    from pretrainflow.models.gpt import create_gpt_shape

    for tied in (False, True):
        hf = make_hf_llama(tmp_path / f"hf-{tied}", tokenizer, tie_word_embeddings=tied)
        shape = create_gpt_shape(**MODEL, tie_embeddings=tied)
        original = {k: v for k, v in hf.state_dict().items() if not (tied and k == "lm_head.weight")}
        back = megatron_to_hf(hf_to_megatron(original, shape), shape)
        assert back.keys() == original.keys()
        assert all(torch.equal(back[k], original[k]) for k in original)


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_import_at_tp2_then_export_gives_the_original_logits(variant, tmp_path, tokenizer, batch):
    from transformers import LlamaForCausalLM

    from pretrainflow.export.hf_llama import export_llama

    hf_overrides, model_overrides = VARIANTS[variant]
    hf_dir = tmp_path / "hf"
    original = make_hf_llama(hf_dir, tokenizer, **hf_overrides)
    source = imported(hf_dir, tmp_path / "imports")
    spec = run_spec("rt", tensor=2, ranks=2, model={**MODEL, **model_overrides}, init={"hf": str(hf_dir)},
                    corpus_spec=hf_corpus_spec(hf_dir / "tokenizer.json"))  # fmt: skip
    work = tmp_path / "tp2"
    (work / "checkpoint").mkdir(parents=True)
    torch.save(batch, work / "ids.pt")
    run_ranks("llm_import_workers:load_at_tp", [json.dumps(spec), str(source / "model.safetensors"), str(VOCAB), str(work)], 2)  # fmt: skip
    with torch.no_grad():
        expected = original(batch).logits
    assert expected.std() > 0.05  # random weights give logits worth comparing
    # megatron-core at TP=2 (its attention, RoPE, norms, vocab-parallel output) computes the original's logits
    tp2_diff = (torch.load(work / "logits.pt") - expected).abs().max()
    assert tp2_diff < 1e-4, f"TP=2 logits differ by {tp2_diff:.2e}"

    export_llama(consolidate(spec, work / "checkpoint", tmp_path / "tp1.safetensors"), tokenizer, tmp_path / "export")
    exported = LlamaForCausalLM.from_pretrained(tmp_path / "export").eval()
    with torch.no_grad():
        diff = (exported(batch).logits - expected).abs().max()
    print(
        f"[{variant}] max |logit diff| vs the original: megatron-core at TP=2 {tp2_diff:.3e}, "
        f"after TP=2 -> TP=1 -> export {diff:.3e}"
    )
    assert diff < 1e-4
    # tensors come back bit for bit (only names and layouts change), the RoPE frequencies too
    theirs = exported.state_dict()
    assert all(torch.equal(theirs[k], v) for k, v in original.state_dict().items())
    assert torch.allclose(exported.model.rotary_emb.inv_freq, original.model.rotary_emb.inv_freq)


def test_megatron_rope_scaling_matches_transformers(tmp_path, tokenizer, megatron_world):
    # The logits above hardly see low-frequency RoPE changes over 24 positions: compare the frequencies directly.
    from pretrainflow.models.gpt import build_gpt_model, create_gpt_shape

    original = make_hf_llama(tmp_path / "hf", tokenizer, **VARIANTS["llama3-rope"][0])
    shape = create_gpt_shape(**MODEL, rope_scaling_factor=8.0)
    ours = build_gpt_model(shape, vocab_size=VOCAB, seq_length=32).rotary_pos_emb.inv_freq
    plain = build_gpt_model(create_gpt_shape(**MODEL), vocab_size=VOCAB, seq_length=32).rotary_pos_emb.inv_freq
    assert torch.allclose(ours, original.model.rotary_emb.inv_freq.float(), rtol=1e-6)
    assert not torch.allclose(plain, ours)  # scaling changes the low frequencies


# ------------------------------------------------------------------------------------------------ continued pretraining


@pytest.fixture(scope="module")
def hf_source(tmp_path_factory, tokenizer):
    root = tmp_path_factory.mktemp("hf-source")
    hf_dir = root / "Tiny-Llama"
    make_hf_llama(hf_dir, tokenizer)
    return hf_dir, imported(hf_dir, root / "imports")


def continued_spec(run_id: str, hf_dir: Path, *, tensor: int, **extra) -> dict:
    """One step from the import at lr 1e-3, no warmup (step 1 takes the full lr), no weight decay."""
    keys = {"model": MODEL, "init": {"hf": str(hf_dir)}, "corpus_spec": hf_corpus_spec(hf_dir / "tokenizer.json"),
            "optimizer": {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0},
            "schedule": {"train_steps": 1, "warmup_steps": 0, "min_lr": 0.0}}  # fmt: skip
    return run_spec(run_id, tensor=tensor, ranks=tensor, steps=1, **{**keys, **extra})


@pytest.fixture(scope="module")
def continued(hf_source, corpora_dir, tmp_path_factory):
    hf_dir, source = hf_source
    runs = {}
    for tensor in (1, 2):
        spec = continued_spec(f"cont-tp{tensor}", hf_dir, tensor=tensor)
        _, out, root = pretrain(corpora_dir, tmp_path_factory.mktemp(f"cont{tensor}"), spec, "--imports-dir",
                                str(source.parent))  # fmt: skip
        runs[tensor] = (spec, out, root)
    return source, runs


@pytest.mark.slow
def test_one_step_from_the_import_tp2_matches_tp1(continued):
    source, runs = continued
    (_, out1, root1), (_, out2, root2) = runs[1], runs[2]
    loss1, loss2 = read_losses(root1), read_losses(root2)
    # The step-1 loss is the imported model's on the first batch: the same weights, only the reduction order of the
    # row-parallel all-reduce and the vocab-parallel cross entropy differ (fp32 rounding, ~1e-7 relative).
    assert abs(loss1[1] - loss2[1]) < 1e-5, (loss1, loss2)
    start, w1, w2 = (load_file(str(p)) for p in (source / "model.safetensors", out1 / "model.safetensors",
                                                 out2 / "model.safetensors"))  # fmt: skip
    assert start.keys() == w1.keys() == w2.keys()
    lr = 1e-3
    for key in start:
        # Adam's first step moves each weight by lr * g / (|g| + eps), at most lr: the run started from the import
        assert (w1[key] - start[key]).abs().max() <= lr * 1.001, key
        assert (w2[key] - start[key]).abs().max() <= lr * 1.001, key
        # TP=1 and TP=2 take the same step: a difference needs a gradient within rounding of 0 (|g| ~ eps = 1e-8,
        # where g / (|g| + eps) is not ~ +-1); it is bounded by the two steps' sum, 2 lr, and rare
        diff = (w1[key] - w2[key]).abs()
        assert diff.max() <= 2 * lr * 1.001 and (diff > 1e-6).float().mean() < 1e-3, (key, diff.max())
    tp_diff = max(float((w1[k] - w2[k]).abs().max()) for k in start)
    print(f"one step from the import: loss TP=1 {loss1[1]:.7f}, TP=2 {loss2[1]:.7f}; max |weight diff| {tp_diff:.2e}")
    moved = torch.cat([(w1[k] - start[k]).abs().flatten() for k in start])
    assert moved.mean() > 0.5 * lr  # and it did train: most weights moved by about lr
    summary = json.loads((out2 / "summary.json").read_text())
    assert summary["init"] == {"hf": runs[2][0]["init"]["hf"], "tokenizer": "keep"}


@pytest.mark.slow
def test_continue_from_an_earlier_run(tp1_run, corpora_dir, tmp_path):
    earlier_spec, earlier_out, _ = tp1_run
    spec = run_spec("after-tp1", tensor=2, ranks=2, steps=1, init={"run": "tp1", "run_spec": earlier_spec},
                    optimizer={"name": "adamw", "lr": 1e-3, "weight_decay": 0.0},
                    schedule={"train_steps": 1, "warmup_steps": 0, "min_lr": 0.0})  # fmt: skip
    _, out, _ = pretrain(corpora_dir, tmp_path, spec, "--pretrained-dir", str(earlier_out.parent))
    start, after = load_file(str(earlier_out / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert all((after[k] - start[k]).abs().max() <= 1e-3 * 1.001 for k in start)
    assert json.loads((out / "summary.json").read_text())["init"] == {"run": "tp1", "tokenizer": "keep"}


def extended_tokenizer(tokenizer: Path, out: Path, new_tokens: int) -> Path:
    """``tokenizer`` with ``new_tokens`` appended (ids VOCAB, VOCAB + 1, ...), as a vocabulary extension makes."""
    from tokenizers import Tokenizer

    extended = Tokenizer.from_file(str(tokenizer))
    extended.add_tokens([f"<new-{i}>" for i in range(new_tokens)])
    out.parent.mkdir(parents=True, exist_ok=True)
    extended.save(str(out))
    return out


def corpora_with_tokenizer(corpora_dir: Path, root: Path, tokenizer: Path) -> Path:
    """A corpora root whose docs corpus has the same token files but ``tokenizer`` (its ids are a subset)."""
    (root / "docs").mkdir(parents=True)
    for item in (corpora_dir / "docs").iterdir():
        if item.is_file() and item.name != "tokenizer.json":
            (root / "docs" / item.name).symlink_to(item)
    shutil.copy(tokenizer, root / "docs" / "tokenizer.json")
    return root


@pytest.mark.slow
def test_extend_the_vocabulary_new_rows_start_at_the_mean(hf_source, corpora_dir, tmp_path):
    hf_dir, source = hf_source
    new = extended_tokenizer(hf_dir / "tokenizer.json", tmp_path / "ext" / "tokenizer.json", 100)  # 612 -> 640 rows
    corpora = corpora_with_tokenizer(corpora_dir, tmp_path / "corpora", new)
    spec = continued_spec("extended", hf_dir, tensor=2, init={"hf": str(hf_dir), "tokenizer": "extend"},
                          corpus_spec=hf_corpus_spec(new))  # fmt: skip
    _, out, _ = pretrain(corpora, tmp_path, spec, "--imports-dir", str(source.parent))
    start, after = load_file(str(source / "model.safetensors")), load_file(str(out / "model.safetensors"))
    for key in ("embedding.word_embeddings.weight", "output_layer.weight"):
        assert after[key].shape == (640, 64)
        old = start[key][:VOCAB]
        assert (after[key][:VOCAB] - old).abs().max() <= 1e-3 * 1.001
        assert (after[key][VOCAB:] - old.mean(dim=0)).abs().max() <= 1e-3 * 1.001  # new ids: the mean row, one step on


def test_extension_rule_and_tensor_parallel_slices():
    from pretrainflow.train.llm.checkpoint import extended_vocab, tp_partition, tp_shard_ranges

    rows = torch.arange(12.0).reshape(6, 2)
    grown = extended_vocab(rows, old_vocab=4, rows=8)  # rows 4, 5 were padding of the old vocabulary: replaced
    assert torch.equal(grown[:4], rows[:4]) and torch.equal(grown[4:], rows[:4].mean(0).expand(4, 2))
    assert tp_partition("decoder.layers.3.mlp.linear_fc1.weight", swiglu=True) == (0, 2)
    assert tp_partition("decoder.layers.3.self_attention.linear_proj.weight", swiglu=True) == (1, 1)
    assert tp_partition("decoder.final_layernorm.weight", swiglu=True) is None
    assert tp_shard_ranges(12, 1, 2, 3) == [(8, 12)]


# ------------------------------------------------------------------------------------------------ checks at start


def check(spec: dict, imports: Path, corpora: Path, pretrained: Path | None = None):
    return check_init(spec, imports_dir=imports, pretrained_dir=pretrained or imports, corpora_dir=corpora)


def test_start_checks_shape_tokenizer_and_files(hf_source, corpora_dir, tmp_path):
    hf_dir, source = hf_source
    good = continued_spec("c", hf_dir, tensor=1)
    assert check(good, source.parent, corpora_dir).init_vocab == VOCAB
    with pytest.raises(ConfigError, match=r"pretrain\.c\.model: .*query groups: 4 vs 2"):
        check({**good, "model": {**MODEL, "num_query_groups": 4}}, source.parent, corpora_dir)
    with pytest.raises(PretrainflowError, match=r"pretrain\.c\.init\.hf: .*model\.safetensors not found .*import-hf"):
        check(good, tmp_path / "no-imports", corpora_dir)
    # a corpus tokenised with another tokenizer: keep refuses it, extend accepts an extension only
    new = extended_tokenizer(hf_dir / "tokenizer.json", tmp_path / "ext" / "tokenizer.json", 3)
    corpora = corpora_with_tokenizer(corpora_dir, tmp_path / "corpora", new)
    with pytest.raises(ConfigError, match=r"pretrain\.c\.init\.tokenizer: keep, but the corpus tokenizer .*515 tokens"):
        check(good, source.parent, corpora)
    extend = {**good, "init": {"hf": str(hf_dir), "tokenizer": "extend"}}
    assert check(extend, source.parent, corpora).vocab == VOCAB + 3
    with pytest.raises(ConfigError, match=r"init\.tokenizer: extend, but .* adds no token"):
        check(extend, source.parent, corpora_dir)
    from tokenizers import Tokenizer, models

    other = Tokenizer(models.BPE(vocab={"a": 0, "<|endoftext|>": 1}, merges=[]))  # a foreign vocabulary
    other.save(str(tmp_path / "other.json"))
    foreign = corpora_with_tokenizer(corpora_dir, tmp_path / "foreign", tmp_path / "other.json")
    with pytest.raises(ConfigError, match=r"extend, but .* has another id"):
        check(extend, source.parent, foreign)


def test_pretrain_refuses_a_foreign_tokenizer_before_writing(hf_source, corpora_dir, tmp_path):
    hf_dir, source = hf_source
    new = extended_tokenizer(hf_dir / "tokenizer.json", tmp_path / "ext" / "tokenizer.json", 3)
    corpora = corpora_with_tokenizer(corpora_dir, tmp_path / "corpora", new)
    spec = continued_spec("foreign", hf_dir, tensor=1)
    proc, out, root = pretrain(corpora, tmp_path / "work", spec, "--imports-dir", str(source.parent), check=False)
    assert proc.returncode != 0 and "init.tokenizer: keep, but the corpus tokenizer" in proc.stdout
    assert "Traceback" not in proc.stdout
    assert not out.exists() and not (tmp_path / "work" / "checkpoints").exists()


# ------------------------------------------------------------------------------------------------ bad input


@pytest.fixture()
def hf_copy(hf_source, tmp_path) -> Path:
    """A writable copy of the good HF directory, to break."""
    return Path(shutil.copytree(hf_source[0], tmp_path / "broken"))


def edit_config(hf_dir: Path, **changes) -> None:
    config = json.loads((hf_dir / "config.json").read_text())
    config.update(changes)
    (hf_dir / "config.json").write_text(json.dumps(config))


def assert_import_fails(hf_dir: Path, tmp_path: Path, pattern: str) -> None:
    out = tmp_path / "imports" / "x"
    with pytest.raises(PretrainflowError, match=pattern):
        import_hf(hf_dir, out)
    assert not (tmp_path / "imports").exists()  # nothing written, not even the parent


def test_missing_directory(tmp_path):
    assert_import_fails(tmp_path / "nowhere", tmp_path, r"nowhere: Hugging Face model directory not found")


def test_malformed_config(hf_copy, tmp_path):
    (hf_copy / "config.json").write_text('{"hidden_size": 64,')
    assert_import_fails(hf_copy, tmp_path, r"broken/config\.json: not a JSON file")


def test_missing_config_key(hf_copy, tmp_path):
    config = json.loads((hf_copy / "config.json").read_text())
    del config["hidden_size"]
    (hf_copy / "config.json").write_text(json.dumps(config))
    assert_import_fails(hf_copy, tmp_path, r"config\.json: hidden_size: missing")


@pytest.mark.parametrize(
    ("changes", "pattern"),
    [
        ({"architectures": ["MistralForCausalLM"], "model_type": "mistral"}, r"config\.json: architectures: \['MistralForCausalLM'\] is not supported"),
        ({"attention_bias": True}, r"config\.json: attention_bias: True is not supported"),
        ({"hidden_act": "gelu"}, r"config\.json: hidden_act: 'gelu' is not supported"),
        ({"head_dim": 16}, r"config\.json: head_dim: 16 is not supported"),
        ({"rope_parameters": {"rope_type": "yarn", "rope_theta": 5e4, "factor": 4.0}}, r"rope_parameters\.rope_type: 'yarn' is not supported"),
        ({"rope_parameters": {**LLAMA3_ROPE, "original_max_position_embeddings": 4096}}, r"rope_parameters\.original_max_position_embeddings: 4096"),
        ({"rope_parameters": {"rope_type": "default", "rope_theta": 1e4 + 0.5}}, r"rope_parameters\.rope_theta: 10000\.5 is not supported"),
        ({"quantization_config": {"quant_method": "gptq"}}, r"quantization_config: quantised weights"),
    ],
    ids=["architecture", "attention-bias", "hidden-act", "head-dim", "rope-type", "llama3-rope-context", "rope-theta", "quantised"],
)  # fmt: skip
def test_unsupported_architecture(hf_copy, tmp_path, changes, pattern):
    edit_config(hf_copy, **changes)
    assert_import_fails(hf_copy, tmp_path, pattern)


def test_vocab_mismatch(hf_copy, tmp_path):
    edit_config(hf_copy, vocab_size=640)
    assert_import_fails(hf_copy, tmp_path, r"config\.json: vocab_size: 640 does not fit .*tokenizer\.json \(512 tokens")


def test_missing_tokenizer(hf_copy, tmp_path):
    (hf_copy / "tokenizer.json").unlink()
    assert_import_fails(hf_copy, tmp_path, r"broken/tokenizer\.json: tokenizer\.json not found")


def test_missing_or_unexpected_weights(hf_copy, tmp_path):
    tensors = load_file(str(hf_copy / "model.safetensors"))
    tensors["model.layers.0.self_attn.q_proj.bias"] = torch.zeros(64)
    save_file(tensors, str(hf_copy / "model.safetensors"))
    assert_import_fails(
        hf_copy, tmp_path, r"model\.safetensors: unexpected tensor model\.layers\.0\.self_attn\.q_proj\.bias"
    )
    (hf_copy / "model.safetensors").unlink()
    assert_import_fails(hf_copy, tmp_path, r"broken: no model\.safetensors or model\.safetensors\.index\.json")


def test_cli_import_error_is_one_line(tmp_path):
    proc = cli("import-hf", "--hf", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out"), check=False)
    assert proc.returncode != 0 and "nowhere: Hugging Face model directory not found" in proc.stdout
    assert "Traceback" not in proc.stdout and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------------------------ the study


def study(**runs) -> dict:
    corpus = {"source": {"kind": "python-stdlib-docstrings"}, "tokenizer": {"vocab_size": 512}}
    base = {"kind": "llm", "model": {"name": "gpt_micro"}, "corpus": "docs", "seq_length": 32,
            "batch": {"micro": 4, "global": 8}, "schedule": {"train_steps": 4}}  # fmt: skip
    return {"study": "s", "corpora": {"docs": corpus, "hfdocs": {**corpus, "tokenizer": {"path": "data/hf/x/tokenizer.json"}}},
            "pretrain": {name: {**base, **run} for name, run in runs.items()}}  # fmt: skip


def test_study_resolves_init_run_with_its_spec():
    loaded = load_study(study(b={"init": {"run": "a"}}, a={}))
    init = loaded.runs["b"]["init"]
    assert init["run"] == "a" and init["run_spec"] == loaded.runs["a"] and init["tokenizer"] == "keep"
    changed = load_study(study(b={"init": {"run": "a"}}, a={"optimizer": {"lr": 1e-3}}))
    from pretrainflow.io import config_hash

    assert config_hash(changed.runs["b"]) != config_hash(loaded.runs["b"])  # a's change retrains b from scratch
    replicated = load_study({**study(b={"init": {"run": "a"}}, a={}), "replicates": 2})
    assert replicated.runs["b.rep-1"]["init"]["run"] == "a.rep-1"


@pytest.mark.parametrize(
    ("runs", "pattern"),
    [
        ({"b": {"init": {"run": "nope"}}}, r"pretrain\.b\.init\.run: unknown LLM run 'nope'; expected one of \['b'\]"),
        ({"a": {"init": {"run": "b"}}, "b": {"init": {"run": "a"}}}, r"pretrain\.a\.init\.run: runs start from each other in a cycle \(a -> b -> a\)"),
        ({"b": {"init": {"run": "b"}}}, r"pretrain\.b\.init\.run: .*cycle"),
        ({"a": {}, "b": {"init": {"run": "a", "hf": "data/hf/x"}}}, r"pretrain\.b\.init: expected exactly one of hf"),
        ({"b": {"init": {"hf": "data/hf/x", "tokenizer": "extnd"}}}, r"pretrain\.b\.init\.tokenizer: expected one of \['keep', 'extend'\]"),
        ({"b": {"init": {"hf": "data/hf/x"}}}, r"pretrain\.b\.init\.hf: corpus 'docs' trains its own tokenizer.*corpora\.docs\.tokenizer to \{path: data/hf/x/tokenizer\.json\}"),
        ({"a": {}, "b": {"init": {"run": "a"}, "model": {"name": "gpt_micro", "num_layers": 4}}}, r"pretrain\.b\.model: differs from the model of init\.run 'a' \(num_layers: 4 vs 2\)"),
        ({"a": {}, "b": {"init": {"run": "a"}, "corpus": "hfdocs"}}, r"pretrain\.b\.init\.tokenizer: keep needs corpus 'hfdocs' tokenised with the tokenizer of init\.run 'a'"),
    ],
    ids=["unknown", "cycle", "itself", "both", "tokenizer-mode", "hf-corpus", "model", "tokenizer"],
)  # fmt: skip
def test_study_init_errors_name_the_key(runs, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_study(study(**runs))


def test_study_hf_init_plans_without_the_directory():
    loaded = load_study(study(b={"init": {"hf": "data/hf/x"}, "corpus": "hfdocs"}))
    assert loaded.runs["b"]["init"] == {"hf": "data/hf/x", "tokenizer": "keep"}
    assert any("pretrain.b.init.hf: data/hf/x is not on this machine" in note for note in loaded.notes)


def test_snakemake_plans_import_and_order(hf_source, tmp_path):
    hf_dir, _ = hf_source
    plan = study(a={}, b={"init": {"run": "a"}}, c={"init": {"hf": str(hf_dir)}, "corpus": "hfdocs",
                                                    "model": MODEL})  # fmt: skip
    plan["corpora"]["hfdocs"]["tokenizer"]["path"] = str(hf_dir / "tokenizer.json")
    (tmp_path / "study.yaml").write_text(json.dumps(plan))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "snakemake"), "-s", str(REPO / "Snakefile"), "--configfile",
         str(tmp_path / "study.yaml"), "--directory", str(tmp_path), "-n", "-p"],
        cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:]
    name = import_name(str(hf_dir))
    assert f"pretrainflow import-hf --hf {hf_dir} --out results/import/{name}" in proc.stdout
    jobs = proc.stdout.split("rule ")
    (b_job,) = [job for job in jobs if job.startswith("pretrain_llm") and "wildcards: run=b" in job]
    assert "results/pretrain/a/model.safetensors" in b_job  # a's weights are b's input: a runs first
    (c_job,) = [job for job in jobs if job.startswith("pretrain_llm") and "wildcards: run=c" in job]
    assert f"results/import/{name}/model.safetensors" in c_job
