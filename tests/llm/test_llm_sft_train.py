"""Supervised fine-tuning through the pretraining loop: sft-llm from a published run, kill-and-resume with bitwise-equal
weights, tensor parallelism, and bad input stopped before any rank starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from llm_helpers import REPO, cli, cli_env, read_losses
from safetensors.torch import load_file
from sft_helpers import arithmetic_records, sft, sft_spec, write_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pretrained(tp1_run) -> tuple[dict, Path]:
    """(spec, results/pretrain root) of the session's 8-step reference run, the run every SFT here starts from."""
    spec, out, _ = tp1_run
    return spec, out.parent


@pytest.fixture(scope="module")
def instructions(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("sft-data") / "arith.jsonl", arithmetic_records())


@pytest.fixture(scope="module")
def reference(corpora_dir, pretrained, instructions, tmp_path_factory):
    """An uninterrupted 8-step SFT at TP=1, checkpointing every step (as the killed run does)."""
    work = tmp_path_factory.mktemp("sft-ref")
    spec = sft_spec("sft-ref", pretrained[0], instructions, checkpoint={"every_steps": 1})
    proc, out, checkpoints = sft(corpora_dir, work, spec, pretrained[1])
    return spec, proc, out, checkpoints


def checkpoint_root(checkpoints: Path, spec: dict) -> Path:
    from pretrainflow.train.llm.cli import checkpoint_dir

    return checkpoint_dir(checkpoints, spec)


def test_sft_trains_from_the_pretrained_run_and_publishes(reference, pretrained):
    spec, proc, out, checkpoints = reference
    assert "48 examples" in proc.stdout and "chat template default" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == 8 and summary["sft"]["examples"] == 48
    assert summary["init"] == {"run": "tp1", "tokenizer": "keep"}
    config = json.loads((out / "config.json").read_text())["config"]
    assert config["sft"]["data"]["kind"] == "jsonl"
    start = load_file(str(pretrained[1] / "tp1" / "model.safetensors"))
    tuned = load_file(str(out / "model.safetensors"))
    assert start.keys() == tuned.keys()
    assert any(not torch.equal(start[k], tuned[k]) for k in start), "SFT left every weight unchanged"
    losses = read_losses(checkpoint_root(checkpoints, spec))
    assert sorted(losses) == list(range(1, 9))
    assert losses[8] < losses[1], f"SFT loss did not fall: {losses}"


def test_sigkill_during_sft_then_resume_gives_bitwise_equal_weights(corpora_dir, pretrained, instructions, reference,
                                                                     tmp_path):  # fmt: skip
    from pretrainflow.train.checkpoints import latest

    spec = sft_spec("sft-killed", pretrained[0], instructions, checkpoint={"every_steps": 1})
    root = checkpoint_root(tmp_path / "checkpoints", spec)
    argv = [sys.executable, "-m", "pretrainflow.cli", "sft-llm", "--spec", json.dumps(spec), "--out",
            str(tmp_path / "sft" / "sft-killed"), "--corpora-dir", str(corpora_dir), "--checkpoints",
            str(tmp_path / "checkpoints"), "--pretrained-dir", str(pretrained[1])]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=REPO, env=cli_env(spec), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # fmt: skip
    from test_llm_resume import wait_for_step

    wait_for_step(root, 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at, _ = latest(root)
    assert 1 <= killed_at < 8, "the kill must land mid-run"
    assert not (tmp_path / "sft" / "sft-killed" / "model.safetensors").exists()
    resumed, out, _ = sft(corpora_dir, tmp_path, spec, pretrained[1])
    assert f"at step {killed_at}" in resumed.stdout
    expected = load_file(str(reference[2] / "model.safetensors"))
    got = load_file(str(out / "model.safetensors"))
    assert expected.keys() == got.keys()
    different = [name for name in expected if not torch.equal(expected[name], got[name])]
    assert not different, f"weights differ after kill-and-resume: {different}"
    assert read_losses(root) == read_losses(checkpoint_root(reference[3], reference[0]))


@pytest.mark.parametrize(("tensor", "data"), [(2, 1), (1, 2)], ids=["tp2", "dp2"])
def test_sft_on_2_ranks_follows_tp1(corpora_dir, pretrained, instructions, reference, tmp_path, tensor, data):
    # TP=2 splits heads and FFN; DP=2 gives each rank one micro-batch of 4 where TP=1 accumulates two: same step
    spec = sft_spec(f"sft-{tensor}x{data}", pretrained[0], instructions, tensor=tensor, ranks=2,
                    checkpoint={"every_steps": 1})  # fmt: skip
    _, out, checkpoints = sft(corpora_dir, tmp_path, spec, pretrained[1])
    losses = read_losses(checkpoint_root(checkpoints, spec))
    reference_losses = read_losses(checkpoint_root(reference[3], reference[0]))
    assert sorted(losses) == sorted(reference_losses)
    for step, loss in reference_losses.items():
        assert losses[step] == pytest.approx(loss, abs=1e-4), f"step {step}: {losses[step]} vs {loss}"
    parallel = json.loads((out / "summary.json").read_text())["parallel"]
    assert parallel == {"tensor": tensor, "pipeline": 1, "data": data}


def test_bad_line_stops_sft_before_any_rank_and_writes_nothing(corpora_dir, pretrained, tmp_path):
    data = write_jsonl(tmp_path / "bad.jsonl", [*arithmetic_records(3), {"prompt": "What is 1 plus 1?"}])
    spec = sft_spec("sft-bad", pretrained[0], data)
    proc, out, checkpoints = sft(corpora_dir, tmp_path, spec, pretrained[1], check=False)
    assert proc.returncode != 0
    assert f"{data}:4: expected 'messages' or both 'prompt' and 'response'; missing ['response']" in proc.stdout
    assert "Traceback" not in proc.stdout
    assert not out.exists()
    assert not (checkpoint_root(checkpoints, spec) / "sft_data").exists()


def test_pretrain_llm_refuses_an_sft_run_and_sft_llm_a_pretraining_run(corpora_dir, pretrained, instructions, tmp_path):
    spec = sft_spec("sft-wrong", pretrained[0], instructions)
    proc = cli("pretrain-llm", "--spec", json.dumps(spec), "--out", str(tmp_path / "x"), "--corpora-dir",
               str(corpora_dir), "--checkpoints", str(tmp_path / "c"), check=False, spec=spec)  # fmt: skip
    assert proc.returncode != 0 and "pretrain-llm cannot train this run; use sft-llm" in proc.stdout
    plain = pretrained[0]
    proc = cli("sft-llm", "--spec", json.dumps(plain), "--out", str(tmp_path / "y"), "--corpora-dir",
               str(corpora_dir), "--checkpoints", str(tmp_path / "c"), check=False, spec=plain)  # fmt: skip
    assert proc.returncode != 0 and "sft-llm cannot train this run; use pretrain-llm" in proc.stdout


def test_a_rerun_after_the_outputs_were_removed_publishes_the_final_checkpoint_again(
    corpora_dir, pretrained, reference
):
    # Snakemake deletes the outputs of a job it reruns (code or params changed): the run finds its final checkpoint,
    # trains no step and publishes the same weights
    import shutil

    spec, _, out, checkpoints = reference
    before = load_file(str(out / "model.safetensors"))
    shutil.rmtree(out)
    proc, out_again, _ = sft(corpora_dir, checkpoints.parent, spec, pretrained[1])
    assert out_again == out and "no step in this segment" in proc.stdout
    after = load_file(str(out / "model.safetensors"))
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)


def test_the_sft_model_exports_to_hugging_face_with_its_logits(corpora_dir, reference, tmp_path):
    from test_llm_export import megatron_logits
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec, _, out, _ = reference
    hf_dir = tmp_path / "hf"
    cli("export-llama", "--model", str(out / "model.safetensors"), "--tokenizer",
        str(corpora_dir / "docs" / "tokenizer.json"), "--out", str(hf_dir))  # fmt: skip
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    model = AutoModelForCausalLM.from_pretrained(hf_dir).eval()
    ids = torch.tensor([tokenizer("What is 3 plus 4?\nAnswer:")["input_ids"]])
    with torch.no_grad():
        hf = model(ids).logits
    mc = megatron_logits(spec, out / "model.safetensors", ids)
    assert torch.allclose(hf, mc, atol=1e-4, rtol=1e-4), (hf - mc).abs().max()


def test_sft_from_a_hugging_face_import_uses_the_models_own_chat_template(corpora_dir, instructions, tmp_path):
    from llm_helpers import run_spec
    from test_llm_import import MODEL, hf_corpus_spec, imported, make_hf_llama

    hf_dir = tmp_path / "Tiny-Llama"
    make_hf_llama(hf_dir, corpora_dir / "docs" / "tokenizer.json")
    own = ("{% for m in messages %}{{ '<' + m['role'] + '> ' + m['content'] }}{% if m['role'] == 'assistant' %}"
           "{{ eos_token }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<assistant> ' }}{% endif %}")  # fmt: skip
    (hf_dir / "tokenizer_config.json").write_text(json.dumps({"chat_template": own, "eos_token": "<|endoftext|>"}))
    imports = tmp_path / "imports"
    imported(hf_dir, imports)
    spec = run_spec("sft-hf", steps=3, model=MODEL, init={"hf": str(hf_dir)},
                    corpus_spec=hf_corpus_spec(hf_dir / "tokenizer.json"),
                    sft={"data": {"kind": "jsonl", "path": str(instructions)}})  # fmt: skip
    proc, out, _ = sft(corpora_dir, tmp_path, spec, tmp_path / "pretrain", "--imports-dir", str(imports))
    assert f"chat template {hf_dir / 'tokenizer_config.json'}" in proc.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["init"] == {"hf": str(hf_dir), "tokenizer": "keep"} and summary["step"] == 3
    assert summary["sft"]["chat_template"] == str(hf_dir / "tokenizer_config.json")
