"""What sft-llm does before the ranks start (train/llm/sft_prepare.py): rows reused when made from the same bytes,
changed data under existing checkpoints refused, other launcher processes waiting for the first one's rows."""

from __future__ import annotations

import pytest
from llm_helpers import run_spec
from sft_helpers import arithmetic_records, write_jsonl

from pretrainflow.errors import PretrainflowError
from pretrainflow.train.llm.sft_data import META_FILE
from pretrainflow.train.llm.sft_prepare import PREPARED_DIR, prepare
from pretrainflow.train.llm.spec import LLMRunSpec


@pytest.fixture
def setup(corpora_dir, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", arithmetic_records(6))
    spec = run_spec("s", init={"run": "base"}, sft={"data": {"kind": "jsonl", "path": str(data)}})
    run = LLMRunSpec.from_dict(spec)
    return run, data, corpora_dir / "docs" / "tokenizer.json", tmp_path / "ckpt"


def fake_checkpoint(root):
    from pretrainflow.train.checkpoints import MARKER, tag_of

    (root / tag_of(3)).mkdir(parents=True)
    (root / tag_of(3) / MARKER).write_text("{}")


def test_rows_are_reused_when_made_from_the_same_bytes(setup):
    run, data, tokenizer, root = setup
    out, meta = prepare(run, jsonl=data, tokenizer_json=tokenizer, checkpoint_root=root)
    written = (out / "tokens.npy").stat().st_mtime_ns
    again, meta_again = prepare(run, jsonl=data, tokenizer_json=tokenizer, checkpoint_root=root)
    assert again == out == root / PREPARED_DIR and meta_again == meta and meta["examples"] == 6
    assert (out / "tokens.npy").stat().st_mtime_ns == written  # not tokenised again


def test_changed_data_under_checkpoints_is_refused_and_nothing_is_touched(setup):
    run, data, tokenizer, root = setup
    out, _ = prepare(run, jsonl=data, tokenizer_json=tokenizer, checkpoint_root=root)
    fake_checkpoint(root)
    before = (out / META_FILE).read_text()
    write_jsonl(data, arithmetic_records(7))
    with pytest.raises(PretrainflowError, match=r"changed since the checkpoints .* were written"):
        prepare(run, jsonl=data, tokenizer_json=tokenizer, checkpoint_root=root)
    assert (out / META_FILE).read_text() == before


def test_without_checkpoints_changed_data_is_prepared_afresh(setup):
    run, data, tokenizer, root = setup
    prepare(run, jsonl=data, tokenizer_json=tokenizer, checkpoint_root=root)
    write_jsonl(data, arithmetic_records(7))
    _, meta = prepare(run, jsonl=data, tokenizer_json=tokenizer, checkpoint_root=root)
    assert meta["examples"] == 7


def test_other_launcher_processes_wait_for_the_first_ones_rows(setup):
    run, data, tokenizer, root = setup
    with pytest.raises(PretrainflowError, match="the first rank did not prepare the SFT rows"):
        prepare(run, jsonl=data, tokenizer_json=tokenizer, checkpoint_root=root, is_first=False, wait_seconds=0.1)
    assert not (root / PREPARED_DIR).exists()
    out, meta = prepare(run, jsonl=data, tokenizer_json=tokenizer, checkpoint_root=root)
    assert prepare(run, jsonl=data, tokenizer_json=tokenizer, checkpoint_root=root, is_first=False) == (out, meta)


def test_a_missing_jsonl_names_the_key(setup, tmp_path):
    run, _, tokenizer, root = setup
    with pytest.raises(PretrainflowError, match=r"pretrain\.s\.sft\.data: .*absent\.jsonl not found"):
        prepare(run, jsonl=tmp_path / "absent.jsonl", tokenizer_json=tokenizer, checkpoint_root=root)
