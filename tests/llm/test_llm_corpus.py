"""Corpus preparation: document sources, spec checks, BPE tokenizer, megatron-core indexed shards and their merge."""

from __future__ import annotations

import json

import numpy as np
import pytest
from llm_helpers import cli

from pretrainflow.corpora.sources import iter_documents, iter_shard, sample_documents
from pretrainflow.corpora.spec import SourceSpec, check_corpus, corpus_from_dict
from pretrainflow.errors import ConfigError, PretrainflowError


def jsonl_spec(path, **kw):
    return {"name": "web", "source": {"kind": "jsonl", "paths": [str(path)]}, "tokenizer": {"vocab_size": 300}, **kw}


@pytest.fixture
def jsonl(tmp_path):
    path = tmp_path / "docs.jsonl"
    docs = [f"Document {i}: the quick brown fox jumps over the lazy dog {i} times." for i in range(10)]
    path.write_text("".join(json.dumps({"text": d, "id": i}) + "\n" for i, d in enumerate(docs)))
    return path, docs


def test_jsonl_and_text_sources(jsonl, tmp_path):
    path, docs = jsonl
    assert list(iter_documents(SourceSpec(kind="jsonl", paths=(str(path),)))) == docs
    text = tmp_path / "a.txt"
    text.write_text("first block\nstill first\n\n\nsecond block\n")
    assert list(iter_documents(SourceSpec(kind="text", paths=(str(text),)))) == [
        "first block\nstill first",
        "second block",
    ]


@pytest.mark.parametrize("num_shards", [1, 2, 3, 7, 25])
def test_jsonl_byte_range_shards_partition_the_input_in_order(jsonl, tmp_path, num_shards):
    path, docs = jsonl
    second = tmp_path / "more.jsonl"  # a second file with multi-byte text and a blank line
    extra = ["naïve café — ünïcode " * (i + 1) for i in range(5)]
    second.write_text("\n".join(json.dumps({"text": d}) for d in extra[:2]) + "\n\n" +
                      "".join(json.dumps({"text": d}) + "\n" for d in extra[2:]))  # fmt: skip
    source = SourceSpec(kind="jsonl", paths=(str(path), str(second)))
    shards = [list(iter_shard(source, k, num_shards)) for k in range(num_shards)]
    assert sum(shards, []) == docs + extra  # every document once, in input order
    if num_shards <= 3:
        assert all(shards)  # byte ranges much larger than a line: no empty shard


def test_modulo_shards_for_other_sources(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("\n\n".join(f"block {i}" for i in range(10)))
    source = SourceSpec(kind="text", paths=(str(text),))
    shards = [list(iter_shard(source, k, 3)) for k in range(3)]
    assert shards[1] == ["block 1", "block 4", "block 7"]


def test_bad_jsonl_line_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"body": "no text field"}\n')
    with pytest.raises(PretrainflowError, match=r"bad.jsonl:2: expected a JSON object with a string field 'text'"):
        list(iter_documents(SourceSpec(kind="jsonl", paths=(str(path),))))


def test_missing_input_file_is_named(tmp_path):
    with pytest.raises(PretrainflowError, match="nope.jsonl: corpus input file not found"):
        list(iter_documents(SourceSpec(kind="jsonl", paths=(str(tmp_path / "nope.jsonl"),))))


def test_stdlib_docstrings_are_deterministic_english_text():
    source = SourceSpec(kind="python-stdlib-docstrings", max_documents=50)
    first, second = list(iter_documents(source)), list(iter_documents(source))
    assert first == second and len(first) == 50
    assert all(len(doc) >= 200 and doc.isascii() for doc in first)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"source": {"kind": "csv"}}, r"corpora.web.source.kind: expected one of"),
        ({"source": {"kind": "jsonl"}}, r"corpora.web.source.paths: expected at least one file path"),
        (
            {"tokenizer": {"vocab_size": 100}},
            r"corpora.web.tokenizer.vocab_size: expected an integer >= 300 and <= 1000000, got 100",
        ),
        ({"tokenizer": {"vocab_size": 300, "path": "t.json"}}, r"corpora.web.tokenizer: expected exactly one of"),
        ({"split": "99,0,1"}, r"corpora.web.split: expected a non-zero valid weight"),
        ({"num_shards": 0}, r"corpora.web.num_shards: expected an integer >= 1 and <= 4096, got 0"),
        ({"shards": 2}, r"corpora.web: unknown key\(s\) \['shards'\]"),
        (
            {"source": {"kind": "jsonl", "paths": "docs.jsonl"}},
            r"corpora.web.source.paths: expected a list of file paths",
        ),
        ({"source": {"kind": "python-stdlib-docstrings", "paths": ["a"]}}, r"corpora.web.source.paths: not used with"),
        ({"source": {"kind": "text", "paths": ["a"], "lines": 1}}, r"corpora.web.source: unknown key\(s\) \['lines'\]"),
        ({"tokenizer": {"vocab_size": 300, "min_frequency": 0}}, r"corpora.web.tokenizer.min_frequency: expected an"),
        ({"tokenizer": {"path": ""}}, r"corpora.web.tokenizer.path: expected a non-empty string, got ''"),
        ({"split": "98,1"}, r"corpora.web.split: expected 'train,valid,test' weights like '98,1,1', got '98,1'"),
        ({"seed": -1}, r"corpora.web.seed: expected an integer >= 0, got -1"),
        ({"name": "Web"}, r"corpora.web.name: expected a name matching"),
    ],
)
def test_corpus_spec_errors_name_the_key(jsonl, change, message):
    spec = {**jsonl_spec(jsonl[0]), **change}
    with pytest.raises(ConfigError, match=message):
        check_corpus(spec, "corpora.web")


def test_check_corpus_fills_defaults(jsonl):
    resolved = check_corpus(jsonl_spec(jsonl[0]), "corpora.web")
    assert resolved["split"] == "98,1,1" and resolved["num_shards"] == 1 and resolved["tokenizer"]["min_frequency"] == 2
    assert resolved["source"]["text_key"] == "text"


def test_tokenizer_shards_and_merge(jsonl, tmp_path):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    from pretrainflow.corpora.indexed import build_shard, merge_shards, write_indexed
    from pretrainflow.corpora.tokenizer import load_tokenizer, train_bpe

    path, docs = jsonl
    spec = corpus_from_dict(jsonl_spec(path, num_shards=2))
    tok_path = tmp_path / "tokenizer.json"
    train_bpe(iter_documents(spec.source), 300, tok_path, min_frequency=1)
    tokenizer = load_tokenizer(tok_path)
    assert tokenizer.get_vocab_size() == 300
    assert tokenizer.decode(tokenizer.encode(docs[3]).ids) == docs[3]  # byte-level: lossless round trip
    prefixes = [tmp_path / "shards" / f"shard-{k:05d}" for k in range(2)]
    counts = [build_shard(spec, k, tok_path, prefixes[k]) for k in range(2)]
    assert sum(c["documents"] for c in counts) == 10 and min(c["documents"] for c in counts) >= 4
    manifest = merge_shards(spec, prefixes, tok_path, tmp_path / "out")
    assert manifest["documents"] == 10 and manifest["tokens"] == sum(c["tokens"] for c in counts)
    merged = IndexedDataset(str(tmp_path / "out" / "web_text_document"))
    assert merged.index.dtype == np.uint16  # 300 ids fit in 2 bytes
    # merged order = input order (byte-range shards); each document ends with the EOD token
    eod = tokenizer.token_to_id("<|endoftext|>")
    assert merged[0][-1] == eod and tokenizer.decode(merged[0][:-1].tolist()) == docs[0]
    assert tokenizer.decode(merged[7][:-1].tolist()) == docs[7]
    # sharded build == the same documents built in one go
    write_indexed(docs, tok_path, tmp_path / "single")
    assert (tmp_path / "single.bin").read_bytes() == (tmp_path / "out" / "web_text_document.bin").read_bytes()
    assert json.loads((tmp_path / "out" / "config.json").read_text())["config"]["name"] == "web"


def test_cli_reports_bad_spec_in_one_line(tmp_path):
    proc = cli("corpora", "train-tokenizer", "--spec", json.dumps({"name": "x", "source": {"kind": "csv"},
               "tokenizer": {"vocab_size": 300}}), "--out", str(tmp_path / "t.json"), check=False)  # fmt: skip
    assert proc.returncode == 2
    assert "corpora.source.kind: expected one of" in proc.stdout and "Traceback" not in proc.stdout


def test_reservoir_sample_is_uniform_deterministic_and_ordered():
    docs = [str(i) for i in range(1000)]
    sample = sample_documents(iter(docs), 100, seed=0)
    assert sample == sample_documents(iter(docs), 100, seed=0) and len(sample) == 100
    assert [int(d) for d in sample] == sorted(int(d) for d in sample)  # stream order kept
    assert sample != sample_documents(iter(docs), 100, seed=1)
    # uniform: about half of the sample from each half of the stream (binomial sd = 5)
    assert 35 <= sum(int(d) < 500 for d in sample) <= 65
    assert sample_documents(iter(docs[:10]), 100, seed=0) == docs[:10]


def test_bad_line_in_a_byte_shard_names_file_and_offset(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\nnot json\n')
    with pytest.raises(PretrainflowError, match=r"bad.jsonl \(byte 17\): expected a JSON object"):
        list(iter_shard(SourceSpec(kind="jsonl", paths=(str(path),)), 0, 1))
