"""The Hugging Face export carries the chat template a model was trained with: ``apply_chat_template`` of the exported
tokenizer renders a conversation character for character as SFT training did (and tokenises it to the training row),
with the template's bos/eos; a pretraining run keeps the template of the Hugging Face model it came from, and one
without a template exports none."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from llm_helpers import cli, pretrain, run_spec
from sft_helpers import arithmetic_records, sft, sft_spec, write_jsonl
from test_llm_import import MODEL, corpora_with_tokenizer, hf_corpus_spec, imported, make_hf_llama

from pretrainflow.errors import PretrainflowError

pytestmark = pytest.mark.slow

# Two turns, so the test sees how turns join; it is the first example of every SFT run here (row 0 of its rows).
CONVERSATION = [
    {"role": "user", "content": "What is 3 plus 4?"}, {"role": "assistant", "content": "7"},
    {"role": "user", "content": "What is 1 plus 1?"}, {"role": "assistant", "content": "2"},
]  # fmt: skip
ONE_STEP = {"train_steps": 1, "warmup_steps": 0, "min_lr": 0.0}
SEQ = 64  # CONVERSATION is 46 tokens of the test BPE (57 with OWN): one untruncated row
# A model's own template that uses bos_token, eos_token and add_generation_prompt, with an end-of-turn token that is
# not the end of document (as Llama-3-Instruct's <|eot_id|> is not <|end_of_text|>).
BOS, EOT = "<|begin|>", "<|im_end|>"
OWN = ("{{ bos_token }}{% for m in messages %}{{ '<' + m['role'] + '> ' + m['content'] }}{% if m['role'] == "
       "'assistant' %}{{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<assistant> ' }}{% endif %}")  # fmt: skip
# What training renders, written out: the default template ("{user}\nAnswer: {assistant}<eos>"), and OWN.
DEFAULT_TEXT = "What is 3 plus 4?\nAnswer: 7<|endoftext|>What is 1 plus 1?\nAnswer: 2<|endoftext|>"
OWN_TEXT = f"{BOS}<user> What is 3 plus 4?<assistant> 7{EOT}<user> What is 1 plus 1?<assistant> 2{EOT}"


@pytest.fixture(scope="module")
def instructions(tmp_path_factory) -> Path:
    """CONVERSATION, then 7 prompt/response pairs: 8 examples, one step of 8 rows."""
    return write_jsonl(tmp_path_factory.mktemp("tpl-data") / "chat.jsonl",
                       [{"messages": CONVERSATION}, *arithmetic_records(7)])  # fmt: skip


def export(model: Path, tokenizer: Path, out: Path, check: bool = True):
    return cli("export-llama", "--model", str(model), "--tokenizer", str(tokenizer), "--out", str(out), check=check)


def training_row(checkpoints: Path, spec: dict) -> np.ndarray:
    """Row 0 of the rows the SFT run trained on (CONVERSATION, rendered and tokenised by sft_prepare)."""
    from llm_helpers import checkpoint_root

    return np.load(checkpoint_root(checkpoints, spec) / "sft_data" / "tokens.npy")[0]


def assert_renders_as_trained(hf_dir: Path, text: str, response: str, row: np.ndarray | None) -> None:
    """The exported tokenizer renders CONVERSATION as ``text``, its prompt for the last answer as ``text`` without
    ``response``, and tokenises ``text`` to the training ``row`` (then padding)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    assert tokenizer.apply_chat_template(CONVERSATION, tokenize=False) == text
    prompt = tokenizer.apply_chat_template(CONVERSATION[:-1], tokenize=False, add_generation_prompt=True)
    assert text.endswith(response) and prompt == text[: -len(response)]
    if row is not None:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]  # as apply_chat_template(tokenize=True) does
        assert len(ids) < len(row), "CONVERSATION must fit one row to compare all of it"
        assert row[: len(ids)].tolist() == ids
        assert set(row[len(ids) :].tolist()) == {tokenizer.pad_token_id}


@pytest.fixture(scope="module")
def default_sft(tp1_run, corpora_dir, instructions, tmp_path_factory):
    """One SFT step from the session's reference run (pretrainflow's BPE: the default template), exported."""
    init_spec, init_out, _ = tp1_run
    work = tmp_path_factory.mktemp("tpl-default")
    spec = sft_spec("sft-tpl", init_spec, instructions, steps=1, schedule=ONE_STEP, seq_length=SEQ)
    _, out, checkpoints = sft(corpora_dir, work, spec, init_out.parent)
    export(out / "model.safetensors", corpora_dir / "docs" / "tokenizer.json", work / "hf")
    return work / "hf", out, training_row(checkpoints, spec)


def test_the_default_template_exports_as_trained(default_sft, corpora_dir):
    hf_dir, _, row = default_sft
    assert_renders_as_trained(hf_dir, DEFAULT_TEXT, " 2<|endoftext|>", row)
    tokenizer_config = json.loads((hf_dir / "tokenizer_config.json").read_text())
    config = json.loads((hf_dir / "config.json").read_text())
    eod = json.loads((corpora_dir / "docs" / "tokenizer.json").read_text())["model"]["vocab"]["<|endoftext|>"]
    # the default template ends a turn with the end of document, and uses no bos_token (kept as before)
    assert tokenizer_config["eos_token"] == tokenizer_config["bos_token"] == "<|endoftext|>"
    assert config["eos_token_id"] == config["bos_token_id"] == eod


def test_a_pretraining_export_without_a_template_has_none(tp1_run, corpora_dir, tmp_path):
    _, out, _ = tp1_run
    from transformers import AutoTokenizer

    export(out / "model.safetensors", corpora_dir / "docs" / "tokenizer.json", tmp_path / "hf")
    assert json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text()) == {
        "tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>",
        "pad_token": "<|pad|>", "model_max_length": 32,
    }  # fmt: skip
    assert AutoTokenizer.from_pretrained(tmp_path / "hf").chat_template is None


def test_an_sft_model_published_without_its_template_is_not_exported(default_sft, corpora_dir, tmp_path):
    # an SFT run published before templates were recorded: its weights lack the metadata, its summary says "sft"
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    _, out, _ = default_sft
    with safe_open(str(out / "model.safetensors"), "pt") as handle:
        meta = handle.metadata()
    old = tmp_path / "old-sft"
    old.mkdir()
    save_file(load_file(str(out / "model.safetensors")), str(old / "model.safetensors"),
              metadata={k: v for k, v in meta.items() if k != "chat_template"})  # fmt: skip
    (old / "summary.json").write_bytes((out / "summary.json").read_bytes())
    proc = export(old / "model.safetensors", corpora_dir / "docs" / "tokenizer.json", tmp_path / "hf", check=False)
    assert proc.returncode != 0 and "an SFT model without its chat template" in proc.stdout
    assert not (tmp_path / "hf").exists()


@pytest.fixture(scope="module")
def hf_runs(corpora_dir, instructions, tmp_path_factory):
    """A Hugging Face Llama with OWN (bos <|begin|>, eos <|im_end|>: two tokens added to the test BPE), imported;
    one SFT step (sft.chat_template auto) and one pretraining step from it, both exported."""
    from tokenizers import Tokenizer

    root = tmp_path_factory.mktemp("tpl-hf")
    tokenizer = Tokenizer.from_file(str(corpora_dir / "docs" / "tokenizer.json"))
    tokenizer.add_special_tokens([BOS, EOT])  # ids 512, 513: 514 tokens, padded to 640 rows
    (root / "tok").mkdir()
    tokenizer.save(str(root / "tok" / "tokenizer.json"))
    hf_dir = root / "Chat-Llama"
    make_hf_llama(hf_dir, root / "tok" / "tokenizer.json", vocab_size=640)
    (hf_dir / "tokenizer_config.json").write_text(json.dumps({"chat_template": OWN, "bos_token": BOS,
                                                              "eos_token": {"content": EOT, "special": True}}))  # fmt: skip
    corpora = corpora_with_tokenizer(corpora_dir, root / "corpora", hf_dir / "tokenizer.json")
    imports = imported(hf_dir, root / "imports").parent
    keys = {"model": MODEL, "init": {"hf": str(hf_dir)}, "corpus_spec": hf_corpus_spec(hf_dir / "tokenizer.json"),
            "schedule": ONE_STEP}  # fmt: skip
    sft_run = run_spec("sft-own", steps=1, seq_length=SEQ, sft={"data": {"kind": "jsonl", "path": str(instructions)}},
                       **keys)  # fmt: skip
    _, sft_out, checkpoints = sft(corpora, root, sft_run, root / "pretrain", "--imports-dir", str(imports))
    _, pre_out, _ = pretrain(corpora, root, run_spec("pre-own", steps=1, **keys), "--imports-dir", str(imports))
    for out in (sft_out, pre_out):
        export(out / "model.safetensors", corpora / "docs" / "tokenizer.json", root / "hf" / out.name)
    return root / "hf", training_row(checkpoints, sft_run), tokenizer


@pytest.mark.parametrize("run", ["sft-own", "pre-own"])
def test_a_hugging_face_models_own_template_comes_out(hf_runs, run):
    hf, row, tokenizer = hf_runs
    # the SFT run trained on it (the row checks the tokens too); the pretraining run keeps its source's template
    assert_renders_as_trained(hf / run, OWN_TEXT, f"2{EOT}", row if run == "sft-own" else None)
    tokenizer_config = json.loads((hf / run / "tokenizer_config.json").read_text())
    assert tokenizer_config["chat_template"] == OWN
    assert (tokenizer_config["bos_token"], tokenizer_config["eos_token"]) == (BOS, EOT)
    config = json.loads((hf / run / "config.json").read_text())
    # generation stops at the end of turn the model learned, and still at the end of document
    eod = tokenizer.token_to_id("<|endoftext|>")
    assert config["eos_token_id"] == [tokenizer.token_to_id(EOT), eod]
    assert config["bos_token_id"] == tokenizer.token_to_id(BOS)


def test_a_recorded_template_with_a_token_the_tokenizer_lacks_is_an_error(corpora_dir):
    from pretrainflow.corpora.tokenizer import load_tokenizer, special_ids
    from pretrainflow.export.hf_llama import chat_settings
    from pretrainflow.train.llm.sft_data import ChatTemplate

    tokenizer = load_tokenizer(corpora_dir / "docs" / "tokenizer.json")
    with pytest.raises(PretrainflowError, match=r"its eos_token '<\|im_end\|>' is not a token of the tokenizer"):
        chat_settings(ChatTemplate("x", OWN, "", EOT), tokenizer, special_ids(tokenizer)[0])


def test_a_template_that_uses_an_empty_bos_renders_it_empty_after_export(corpora_dir, tmp_path):
    # training renders bos_token as "" when the model's config has none; the export must not put a token there
    from transformers import AutoTokenizer

    from pretrainflow.corpora.tokenizer import load_tokenizer, special_ids
    from pretrainflow.export.hf_llama import chat_settings
    from pretrainflow.train.llm.sft_data import DEFAULT_CHAT_TEMPLATE, ChatTemplate, render_with_responses

    template = ChatTemplate("x", "{{ bos_token }}" + DEFAULT_CHAT_TEMPLATE, "", "<|endoftext|>")
    tokenizer = load_tokenizer(corpora_dir / "docs" / "tokenizer.json")
    keys, _ = chat_settings(template, tokenizer, special_ids(tokenizer)[0])
    tokenizer.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", **keys}))
    rendered = AutoTokenizer.from_pretrained(tmp_path).apply_chat_template(CONVERSATION, tokenize=False)
    assert rendered == render_with_responses(template, CONVERSATION)[0] == DEFAULT_TEXT


def test_the_published_template_is_the_one_kept_with_the_rows(corpora_dir, tmp_path):
    from pretrainflow.train.llm.sft_data import TEMPLATE_FILE, ChatTemplate, chat_template, template_json
    from pretrainflow.train.llm.sft_prepare import run_chat_template
    from pretrainflow.train.llm.spec import LLMRunSpec

    tokenizer_json = corpora_dir / "docs" / "tokenizer.json"
    run = LLMRunSpec.from_dict(sft_spec("sft-kept", run_spec("tp1"), tmp_path / "chat.jsonl"))
    # rows prepared before chat_template.json was kept: the template prepare renders with, from the same inputs
    assert run_chat_template(run, tokenizer_json, tmp_path) == chat_template(None, "auto", "<|endoftext|>")
    kept = ChatTemplate("kept", "{{ messages[0]['content'] }}", "", "<|endoftext|>")
    (tmp_path / "sft_data").mkdir()
    (tmp_path / "sft_data" / TEMPLATE_FILE).write_text(template_json(kept))
    assert run_chat_template(run, tokenizer_json, tmp_path) == kept
    assert run_chat_template(LLMRunSpec.from_dict(run_spec("plain")), tokenizer_json, tmp_path) is None
