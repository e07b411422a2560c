"""SFT data: chat templates, the loss mask on response tokens only, bad input named by file + line + key, the
per-epoch order, and the stdlib instruction set that never contains a name the shipped benchmark holds out."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from sft_helpers import arithmetic_records, write_jsonl

from pretrainflow.errors import PretrainflowError
from pretrainflow.train.llm.sft_data import (
    DEFAULT_CHAT_TEMPLATE,
    META_FILE,
    ChatTemplate,
    SFTDataset,
    chat_template,
    prepare_sft_data,
    render_with_responses,
)


@pytest.fixture(scope="module")
def tokenizer_json(corpora_dir) -> Path:
    return corpora_dir / "docs" / "tokenizer.json"


def decode_masked(tokenizer_json: Path, out: Path) -> list[str]:
    """The labels under the loss mask of every prepared row, decoded (special tokens kept)."""
    from pretrainflow.corpora.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(tokenizer_json)
    tokens, mask = np.load(out / "tokens.npy"), np.load(out / "loss_mask.npy")
    return [
        tokenizer.decode(row[1:][m.astype(bool)].tolist(), skip_special_tokens=False)
        for row, m in zip(tokens, mask, strict=True)
    ]


def test_prompt_response_mask_covers_exactly_the_response_and_eos(tokenizer_json, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "What is 2 plus 2?", "response": "4"},
                                              {"prompt": "Name a colour.", "response": "blue sky"}])  # fmt: skip
    meta = prepare_sft_data(data, tokenizer_json, tmp_path / "out", seq_length=32)
    assert decode_masked(tokenizer_json, tmp_path / "out") == [" 4<|endoftext|>", " blue sky<|endoftext|>"]
    assert meta["examples"] == 2 and meta["chat_template"] == "default" and meta["truncated"] == 0
    tokens = np.load(tmp_path / "out" / "tokens.npy")
    assert tokens.shape == (2, 33) and tokens.dtype == np.int32


def test_messages_mask_every_assistant_turn_and_nothing_else(tokenizer_json, tmp_path):
    record = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                           {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Bye?"},
                           {"role": "assistant", "content": "Goodbye."}]}  # fmt: skip
    prepare_sft_data(write_jsonl(tmp_path / "d.jsonl", [record]), tokenizer_json, tmp_path / "out", seq_length=48)
    assert decode_masked(tokenizer_json, tmp_path / "out") == [" Hello.<|endoftext|> Goodbye.<|endoftext|>"]


def test_the_tokenizers_own_chat_template_is_used_when_it_has_one(tokenizer_json, tmp_path):
    own = ("{% for m in messages %}{{ '<' + m['role'] + '>' + m['content'] }}{% if m['role'] == 'assistant' %}"
           "{{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<assistant>' }}{% endif %}")  # fmt: skip
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": own, "eos_token": {"content": "<|endoftext|>"}}))
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Hi?", "response": "Hello there"}])
    meta = prepare_sft_data(data, tokenizer_json, tmp_path / "out", seq_length=32, template_config=config)
    assert meta["chat_template"] == str(config)
    assert decode_masked(tokenizer_json, tmp_path / "out") == ["Hello there<|endoftext|>"]
    default = prepare_sft_data(data, tokenizer_json, tmp_path / "out2", seq_length=32, template_config=config,
                               chat_template_choice="default")  # fmt: skip
    assert default["chat_template"] == "default"
    assert chat_template(tmp_path / "absent.json", "auto", "</s>").source == DEFAULT_CHAT_TEMPLATE


def test_default_template_renders_the_harness_question_format():
    template = ChatTemplate("default", DEFAULT_CHAT_TEMPLATE, "", "<eos>")
    text, spans = render_with_responses(template, [{"role": "user", "content": "Docstring: x\nQuestion: Which?"},
                                                   {"role": "assistant", "content": "dumps"}])  # fmt: skip
    assert text == "Docstring: x\nQuestion: Which?\nAnswer: dumps<eos>"  # pydoc_mc's doc_to_text + " " + choice
    assert [text[a:b] for _, a, b in spans] == [" dumps<eos>"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"prompt": "a"}', "expected 'messages' or both 'prompt' and 'response'; missing ['response']"),
        ('{"response": "a"}', "missing ['prompt']"),
        ("not json", "not a JSON object"),
        ('["a"]', "expected a JSON object, got list"),
        ('{"prompt": "a", "response": 3}', "response: expected a string, got 3"),
        ('{"prompt": "a", "response": "  "}', "response: empty"),
        ('{"messages": []}', "messages: expected a non-empty list"),
        ('{"messages": [{"role": "bot", "content": "x"}]}', "messages[0].role: expected one of"),
        ('{"messages": [{"role": "user"}]}', "messages[0]: expected an object with role and content"),
        ('{"messages": [{"role": "user", "content": "x"}]}', "messages: no assistant turn"),
    ],
)
def test_bad_lines_are_errors_naming_file_line_and_key(tokenizer_json, tmp_path, line, message):
    data = write_jsonl(tmp_path / "d.jsonl", [*arithmetic_records(2), line])
    with pytest.raises(PretrainflowError) as err:
        prepare_sft_data(data, tokenizer_json, tmp_path / "out", seq_length=32)
    assert f"{data}:3: " in str(err.value) and message in str(err.value)
    assert not (tmp_path / "out").exists()  # checked before anything is written


def test_a_line_that_is_not_utf8_is_named(tokenizer_json, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", arithmetic_records(2))
    with open(data, "ab") as handle:
        handle.write(b'{"prompt": "caf\xe9", "response": "x"}\n')
    with pytest.raises(PretrainflowError, match=r"d\.jsonl:3: not UTF-8 text"):
        prepare_sft_data(data, tokenizer_json, tmp_path / "out", seq_length=32)


def test_a_template_leaving_no_response_tokens_is_an_error(tokenizer_json, tmp_path):
    # this template drops assistant turns: rendering with the turn adds nothing, so no response token exists
    config = tmp_path / "tokenizer_config.json"
    config.write_text(json.dumps({"chat_template": "{% for m in messages %}{% if m['role'] == 'user' %}"
                                                   "{{ m['content'] }}{% endif %}{% endfor %}"}))  # fmt: skip
    data = write_jsonl(tmp_path / "d.jsonl", arithmetic_records(2))
    with pytest.raises(PretrainflowError, match=r"d\.jsonl:1: messages\[1\]: the chat template leaves no response"):
        prepare_sft_data(data, tokenizer_json, tmp_path / "out", seq_length=32, template_config=config)
    assert not (tmp_path / "out").exists()


def test_a_prompt_filling_the_row_is_an_error_and_a_long_response_is_cut(tokenizer_json, tmp_path):
    long_prompt = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "word " * 60, "response": "yes"}])
    with pytest.raises(PretrainflowError, match=r"p\.jsonl:1: the prompt fills the row"):
        prepare_sft_data(long_prompt, tokenizer_json, tmp_path / "out", seq_length=32)
    long_response = write_jsonl(tmp_path / "r.jsonl", [{"prompt": "Say it.", "response": "word " * 60}])
    meta = prepare_sft_data(long_response, tokenizer_json, tmp_path / "out", seq_length=32)
    assert meta["truncated"] == 1
    assert np.load(tmp_path / "out" / "loss_mask.npy")[0, -1] == 1  # the cut response fills the row to its end


def test_max_examples_and_epoch_order(tokenizer_json, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", arithmetic_records(10))
    meta = prepare_sft_data(data, tokenizer_json, tmp_path / "out", seq_length=32, max_examples=6)
    assert meta["examples"] == 6 and json.loads((tmp_path / "out" / META_FILE).read_text()) == meta
    tokens = np.load(tmp_path / "out" / "tokens.npy")
    dataset = SFTDataset(tmp_path / "out", seed=3, num_samples=18)
    rows = [next(i for i, row in enumerate(tokens) if (row[:-1] == dataset[k]["tokens"].numpy()).all())
            for k in range(18)]  # fmt: skip
    epochs = [rows[0:6], rows[6:12], rows[12:18]]
    assert all(sorted(epoch) == list(range(6)) for epoch in epochs)  # every row once per epoch
    assert len({tuple(epoch) for epoch in epochs}) > 1  # reshuffled between epochs
    again = SFTDataset(tmp_path / "out", seed=3, num_samples=18)
    assert all((again[k]["tokens"] == dataset[k]["tokens"]).all() for k in (0, 7, 17))  # a pure function of k
    sample = dataset[0]
    assert (sample["labels"][:-1] == sample["tokens"][1:]).all()
    assert sample["position_ids"].tolist() == list(range(32))


def test_stdlib_instructions_drop_every_held_out_name():
    from pretrainflow.benchmarks.pydoc_instructions import build_instructions
    from pretrainflow.benchmarks.pydoc_tasks import StdlibFunction, is_held_out

    summary = "Return the thing that this function computes from its arguments. More text."
    functions = [
        StdlibFunction("os", name, summary.replace("thing", name)) for name in ("close", "walk", "join", "dumps")
    ]
    functions.append(StdlibFunction("ntpath", "join", summary))  # a second 'join': the first one is kept
    functions.append(StdlibFunction("a", "spam", ">>> spam(1) returns 2 and spam(2) returns 3 in this doctest"))
    functions.append(StdlibFunction("b", "spam", "Return one more than the number given as its only argument."))
    examples = build_instructions(functions)
    assert is_held_out("close") and is_held_out("walk") and not any(map(is_held_out, ("join", "dumps", "spam")))
    assert {e["name"] for e in examples} == {"join", "dumps", "spam"}
    assert len(examples) == 6
    assert examples[-1]["prompt"] == "Question: What does `b.spam` do?"  # the doctest summary is skipped
    assert examples[0]["response"] == "join" and "____" in examples[0]["prompt"] and "join" not in examples[0]["prompt"]
    assert examples[1] == {"name": "join", "prompt": "Question: What does `os.join` do?",
                           "response": "Return the join that this function computes from its arguments."}  # fmt: skip


@pytest.mark.slow
def test_the_built_stdlib_set_shares_no_name_with_the_benchmark(tmp_path):
    from pretrainflow.benchmarks.pydoc_instructions import INSTRUCTIONS_FILE, build_instruction_dir
    from pretrainflow.benchmarks.pydoc_tasks import build_items

    manifest = build_instruction_dir(tmp_path / "set")
    lines = [json.loads(line) for line in (tmp_path / "set" / INSTRUCTIONS_FILE).read_text().splitlines()]
    assert manifest["examples"] == len(lines) == 2 * manifest["names"] > 1000
    benchmark_names = {item["name"] for item in build_items()}
    trained_names = {line["name"] for line in lines}
    assert not benchmark_names & trained_names
    # what each example asks about or answers, read back from its text (not from the builder's "name" field)
    asked = {re.fullmatch(r"Question: What does `(.+)` do\?", line["prompt"])[1].rpartition(".")[2]
             for line in lines if line["prompt"].startswith("Question: What does")}  # fmt: skip
    answered = {line["response"] for line in lines if line["prompt"].startswith("Docstring: ")}
    assert asked == answered == trained_names
