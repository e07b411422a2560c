"""Weights & Biases tracking (train/tracking.py), in offline mode for real (wandb installed, no network).

- a tiny real ViT run (pretrain-vit, one CPU rank) with tracking on writes an offline W&B run whose history holds
  exactly TensorBoard's scalars: the same keys, steps and values (read from both files); run id = config hash[:12] =
  the checkpoint directory's name; config = the resolved spec; nothing W&B inside the published run;
- a tiny real LLM run, turned on by PRETRAINFLOW_WANDB alone, stopped by SIGUSR1 sent to its whole process group
  (checkpoint, exit 75, W&B service included) and resumed: two attempts, one W&B run id, their histories together =
  TensorBoard's;
- steps an attempt redoes after its checkpoint (the one before died after logging them) are not sent twice;
- tracking changes no config hash, no spec and no rule: the workflow exports it to its jobs (PRETRAINFLOW_TRACKING);
- off (no section, mode disabled, or PRETRAINFLOW_WANDB=disabled): wandb is never imported and no wandb/ directory;
- wandb missing while on: one error naming the key that turned it on and `pip install wandb`.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pretrainflow.errors import ConfigError
from pretrainflow.io import canonical_json, config_hash
from pretrainflow.train import tracking

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "pretrainflow.cli"]
ON = {"wandb": {"mode": "offline", "project": "tracking-test", "tags": ["ci"]}}
DATASET = {  # newton: a tiny dataset in a tenth of a second (FractalDB's category search takes seconds)
    "name": "newton-wandb",
    "family": "newton",
    "num_classes": 2,
    "instances_per_class": 8,
    "image_size": 16,
    "num_shards": 1,
    "seed": 0,
}


def env(**extra: str) -> dict[str, str]:
    # not the switches either: a test that loaded the Snakefile in this process exported the default study's section
    skip = {tracking.ENV_MODE, tracking.ENV_SECTION}
    base = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_") and k not in skip}
    # no network: WANDB_MODE would not matter (our mode wins), but keep W&B from reading a user's settings
    return {**base, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO / "src"), "CUDA_VISIBLE_DEVICES": "", **extra}


def run(argv: list[str], **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *argv], env=env(**extra), cwd=REPO, capture_output=True, text=True, timeout=240, check=False
    )


# ------------------------------------------------------------------------------------------------ reading the files


def wandb_records(path: Path) -> list:
    """Every record of a W&B transaction log (run-<id>.wandb): a 7-byte header (":W&B", magic, version), then
    LevelDB-style records in 32 KiB blocks (crc32 4 bytes, length 2, type 1: full / 2: first / 3: middle / 4: last),
    each payload a wandb_internal Record protobuf."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", f"{path}: not a W&B transaction log"
    pos, block, pending, records = 7, 32768, b"", []
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a record header is padding
            pos += block - pos % block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        payload, pos = data[pos + 7 : pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        pending += payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def wandb_history(path: Path) -> dict[str, dict[int, float]]:
    """The run's logged scalars: key -> {step: value} (W&B's own _step/_runtime/_timestamp left out)."""
    history: dict[str, dict[int, float]] = {}
    for record in wandb_records(path):
        if record.WhichOneof("record_type") != "history":
            continue
        for item in record.history.item:
            key = item.key or "/".join(item.nested_key)
            if not key.startswith("_"):
                assert record.history.step.num not in history.get(key, {}), f"{key} step logged twice"
                history.setdefault(key, {})[record.history.step.num] = json.loads(item.value_json)
    return history


def wandb_run_record(path: Path):
    (record,) = [r for r in wandb_records(path) if r.WhichOneof("record_type") == "run"]
    return record.run


def tensorboard_history(directory: Path) -> dict[str, dict[int, float]]:
    """key -> {step: value} of TensorBoard's event files (the last value written for a step wins, as TB shows it)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    acc.Reload()
    return {key: {event.step: event.value for event in acc.Scalars(key)} for key in acc.Tags()["scalars"]}


def assert_same_scalars(wandb: dict, board: dict) -> None:
    """Same keys and steps; every W&B value is TensorBoard's (which stores float32)."""
    assert sorted(wandb) == sorted(board) and board, (sorted(wandb), sorted(board))
    for key in board:
        assert sorted(wandb[key]) == sorted(board[key]), key
        for step, value in board[key].items():
            assert np.float32(wandb[key][step]) == np.float32(value), (key, step, wandb[key][step], value)


def offline_runs(directory: Path) -> list[Path]:
    return sorted((directory / "wandb").glob("offline-run-*"))


# ------------------------------------------------------------------------------------------------ a real ViT run


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory):
    """pretrain-vit with tracking offline: 16 images, micro 4, one rank -> 4 steps/epoch x 2 epochs, a row a step."""
    from pretrainflow.datasets.build import build_dataset
    from pretrainflow.train.vit.spec import VitRunSpec

    root = tmp_path_factory.mktemp("vit-wandb")
    build_dataset(DATASET, root / "data")
    spec = {
        "kind": "vit",
        "run_id": "vit-wandb",
        "seed": 0,
        "dataset": DATASET["name"],
        "dataset_spec": DATASET,
        "model": {"name": "vit_test", "image_size": 16, "patch_size": 4},
        "optimizer": {"name": "adamw", "lr": 1e-3},
        "schedule": {"epochs": 2, "warmup_epochs": 1, "min_lr": 1e-5},
        "batch": {"micro": 4},
        "zero_stage": 0,
        "precision": "fp32",
        "devices": {"nodes": 1, "gpus_per_node": 0, "cpu_ranks": 1},
        "checkpoint": {"every_steps": 0, "keep": 1},
        "log": {"every_steps": 1},
    }
    argv = ["pretrain-vit", "--spec", json.dumps(spec), "--dataset", str(root / "data"), "--out", str(root / "out")]
    argv += ["--checkpoints", str(root / "ckpt"), "--tracking", json.dumps(ON)]
    proc = run(argv)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    resolved = VitRunSpec.from_dict(spec, "spec").to_dict()
    return resolved, root / "ckpt" / "vit-wandb" / config_hash(resolved)[:12], root


def test_vit_offline_run_logs_exactly_tensorboards_scalars(vit_run):
    resolved, unit_dir, _root = vit_run
    (first,) = offline_runs(unit_dir)
    run_id = config_hash(resolved)[:12]
    log = first / f"run-{run_id}.wandb"
    assert first.name.endswith(f"-{run_id}") and log.is_file(), sorted(p.name for p in first.iterdir())
    history = wandb_history(log)
    assert_same_scalars(history, tensorboard_history(unit_dir / "tensorboard"))
    assert sorted(history) == ["train/epoch", "train/images_per_s", "train/loss", "train/lr"]
    assert sorted(history["train/loss"]) == list(range(1, 9))  # 2 epochs x 4 steps, every step logged


def test_vit_run_identity_and_config(vit_run):
    resolved, unit_dir, _root = vit_run
    (first,) = offline_runs(unit_dir)
    record = wandb_run_record(next(first.glob("run-*.wandb")))
    assert record.run_id == config_hash(resolved)[:12] == unit_dir.name  # f(config hash) = checkpoint directory
    assert (record.project, record.display_name, record.job_type) == ("tracking-test", "vit-wandb", "pretrain")
    assert list(record.tags) == ["ci"]
    config = {item.key: json.loads(item.value_json) for item in record.config.update if item.key != "_wandb"}
    assert config == resolved  # the unit's resolved spec, nothing added, nothing left out


def test_wandb_files_stay_out_of_the_published_run(vit_run):
    _resolved, unit_dir, root = vit_run
    assert (root / "out" / "model.safetensors").is_file() and not list((root / "out").rglob("*wandb*"))
    assert json.loads((unit_dir / "wandb" / "logged_step.json").read_text()) == {"run_id": unit_dir.name, "step": 8}


# ------------------------------------------------------------------------------------------------ a real LLM run


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    import builtins

    from pretrainflow.corpora.indexed import build_shard, merge_shards
    from pretrainflow.corpora.sources import iter_documents
    from pretrainflow.corpora.spec import corpus_from_dict
    from pretrainflow.corpora.tokenizer import train_bpe

    # plain text: the docstrings of the builtins, one document each (the stdlib source reads every module first)
    text = tmp_path_factory.mktemp("text") / "builtins.txt"
    docs = [obj.__doc__.strip() for _name, obj in sorted(vars(builtins).items()) if getattr(obj, "__doc__", None)]
    text.write_text("\n\n".join(doc.replace("\n\n", "\n") for doc in docs) + "\n")
    corpus = {
        "name": "docs",
        "source": {"kind": "text", "paths": [str(text)]},
        "tokenizer": {"vocab_size": 300, "min_frequency": 2},
        "split": "90,5,5",
        "seed": 0,
        "num_shards": 1,
    }
    root = tmp_path_factory.mktemp("corpora")
    spec, out = corpus_from_dict(corpus), root / "docs"
    train_bpe(iter_documents(spec.source), spec.tokenizer.vocab_size, out / "tokenizer.json")
    shard = out / "shards" / "shard-00000"
    build_shard(spec, 0, out / "tokenizer.json", shard)
    merge_shards(spec, [shard], out / "tokenizer.json", out)
    return root, corpus


def test_llm_run_stopped_by_a_walltime_signal_resumes_into_one_wandb_run(corpora, tmp_path):
    """W&B on (by PRETRAINFLOW_WANDB alone) keeps the walltime protocol: SIGUSR1 to the job's whole process group
    (the W&B service included) -> checkpoint, exit 75; the rerun resumes there and appends to the same W&B run."""
    from pretrainflow.train import checkpoints
    from pretrainflow.train.llm.cli import checkpoint_dir

    root, corpus = corpora
    spec = {
        "run_id": "gpt-wandb", "kind": "llm", "seed": 0, "model": {"name": "gpt_micro"}, "corpus": "docs",
        "seq_length": 16, "batch": {"micro": 2, "global": 2}, "optimizer": {"name": "adamw", "lr": 3e-3},
        "schedule": {"train_steps": 500, "warmup_steps": 1, "min_lr": 3e-4}, "devices": {"cpu_ranks": 1},
        "log": {"every_steps": 1}, "checkpoint": {"every_steps": 0, "keep": 1}, "corpus_spec": corpus,
    }  # fmt: skip
    argv = [*CLI, "pretrain-llm", "--spec", json.dumps(spec), "--out", str(tmp_path / "out")]
    argv += ["--corpora-dir", str(root), "--checkpoints", str(tmp_path / "ckpt")]
    unit_dir = checkpoint_dir(tmp_path / "ckpt", spec)
    marker = unit_dir / "wandb" / "logged_step.json"
    proc = subprocess.Popen(
        argv, env=env(PRETRAINFLOW_WANDB="offline"), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not (marker.is_file() and json.loads(marker.read_text())["step"] >= 2):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stdout.read()[-3000:]
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGUSR1)  # as a scheduler's walltime warning reaches every process of the job
        output, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 75, output[-3000:]
    stopped_at = json.loads(marker.read_text())["step"]
    assert checkpoints.latest(unit_dir)[0] == stopped_at  # the checkpoint is at the last step sent to W&B
    finished = run([*argv[len(CLI) :], "--max-steps", str(stopped_at + 2)], PRETRAINFLOW_WANDB="offline")
    assert finished.returncode == 75, finished.stdout[-2000:] + finished.stderr[-3000:]
    attempts = offline_runs(unit_dir)
    assert len(attempts) == 2 and all(p.name.endswith(f"-{unit_dir.name}") for p in attempts), attempts
    logs = [next(p.glob("run-*.wandb")) for p in attempts]
    assert {wandb_run_record(log).run_id for log in logs} == {config_hash(spec)[:12]}
    assert wandb_run_record(logs[0]).project == tracking.DEFAULT_PROJECT  # no --tracking: the default project
    first, second = (wandb_history(log) for log in logs)
    assert sorted(first["train/loss"]) == list(range(1, stopped_at + 1))
    assert sorted(second["train/loss"]) == [stopped_at + 1, stopped_at + 2]
    merged = {key: {**first[key], **second[key]} for key in first}
    assert_same_scalars(merged, tensorboard_history(unit_dir / "tensorboard"))
    assert sorted(merged) == [f"train/{k}" for k in ("grad_norm", "loss", "lr", "tokens", "tokens_per_s", "wall")]


def test_redone_steps_are_not_sent_twice(tmp_path):
    """Attempt 1 logs steps 1-5 and dies after its checkpoint at step 3; attempt 2 redoes 4-5, then 6-7."""
    from pretrainflow.train.runlog import RunLog

    def attempt(steps: range, initial: int) -> None:
        tracked = tracking.tracked_run(
            tracking.parse_option(json.dumps(ON)), unit="u", config={"lr": 0.1}, directory=tmp_path,
            job_type="pretrain", env={},
        )  # fmt: skip
        log = RunLog(is_main=True, total_steps=7, initial_step=initial, desc="t", tb_dir=None, tracking=tracked)
        for step in steps:
            log.record({"step": step, "loss": 1.0 / step, "lr": 0.1})
        log.close()

    attempt(range(1, 6), 0)
    # W&B names an attempt's directory offline-run-<start second>-<id>: a real resume starts seconds later at least
    time.sleep(1.05 - time.time() % 1)
    attempt(range(4, 8), 3)
    first, second = (wandb_history(next(p.glob("run-*.wandb"))) for p in offline_runs(tmp_path))
    assert sorted(first["train/loss"]) == [1, 2, 3, 4, 5] and sorted(second["train/loss"]) == [6, 7]
    assert second["train/loss"][6] == 1.0 / 6


# ------------------------------------------------------------------------------------------------ off, and the study


def test_off_imports_no_wandb_and_writes_no_directory(tmp_path):
    """The run log with tracking off (disabled in the study, or switched off by the site): no wandb anywhere."""
    code = f"""
import json, sys
from pathlib import Path
from pretrainflow.train.runlog import RunLog
from pretrainflow.train.tracking import parse_option, tracked_run
root = Path({str(tmp_path)!r})
for text, env in [(None, {{}}), ('{{"wandb": {{"mode": "disabled"}}}}', {{}}), ({json.dumps(json.dumps(ON))}, {{"PRETRAINFLOW_WANDB": "disabled"}})]:
    tracked = tracked_run(parse_option(text), unit="u", config={{"a": 1}}, directory=root, job_type="pretrain", env=env)
    assert tracked is None, tracked
    log = RunLog(is_main=True, total_steps=2, initial_step=0, desc="t", tb_dir=None, tracking=tracked)
    log.record({{"step": 1, "loss": 1.0, "lr": 0.1}})
    log.close()
assert "wandb" not in sys.modules, "wandb imported"
print("ok")
"""
    proc = subprocess.run([sys.executable, "-c", code], env=env(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]
    assert not list(tmp_path.rglob("*wandb*"))


def test_wandb_missing_names_the_key_and_the_install(monkeypatch, tmp_path):
    from pretrainflow.train.wandb_log import WandbLog

    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError; find_spec -> None
    with pytest.raises(ConfigError, match=r"^tracking\.wandb\.mode: .*`pip install wandb`"):
        tracking.check_available(tracking.parse_option(json.dumps(ON)), env={})
    with pytest.raises(ConfigError, match=r"^PRETRAINFLOW_WANDB=online: .*`pip install wandb`"):
        tracking.check_available(tracking.TrackingSpec(), env={"PRETRAINFLOW_WANDB": "online"})
    tracked = tracking.tracked_run(
        tracking.parse_option(json.dumps(ON)), unit="u", config={}, directory=tmp_path, job_type="pretrain", env={}
    )
    with pytest.raises(ConfigError, match=r"^tracking\.wandb\.mode: .*`pip install wandb`"):
        WandbLog(tracked)
    tracking.check_available(tracking.TrackingSpec(), env={})  # off: wandb is not needed


def test_cli_refuses_tracking_without_wandb_before_any_rank(tmp_path):
    """The launcher's check: a python where wandb cannot be imported stops with one line, before a worker starts."""
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text("import sys\nsys.modules['wandb'] = None\n")
    spec = {"kind": "vit", "run_id": "r", "dataset": "d", "model": {"name": "vit_test"}, "batch": {"micro": 4}}
    proc = subprocess.run(
        [*CLI, "pretrain-vit", "--spec", json.dumps(spec), "--dataset", str(tmp_path), "--out", str(tmp_path / "o")],
        env=env(PYTHONPATH=f"{tmp_path}{os.pathsep}{REPO / 'src'}", PRETRAINFLOW_WANDB="offline"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "PRETRAINFLOW_WANDB=offline: W&B tracking (offline) needs the wandb package" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "o").exists()


def _specs(study) -> dict[str, str]:
    sections = ("datasets", "corpora", "runs", "tasks", "finetunes", "llm_evals")
    return {f"{s}:{key}": canonical_json(spec) for s in sections for key, spec in getattr(study, s).items()}


def test_tracking_changes_no_spec_and_no_config_hash():
    import yaml

    from pretrainflow.study.load import load_study

    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert "tracking" not in raw
    plain = load_study(raw)
    tracked = load_study(
        {**raw, "tracking": {"wandb": {"mode": "online", "project": "p", "entity": "e", "tags": ["t"]}}}
    )
    assert _specs(plain) and _specs(plain) == _specs(tracked)
    assert {k: config_hash(json.loads(v)) for k, v in _specs(plain).items()} == {
        k: config_hash(json.loads(v)) for k, v in _specs(tracked).items()
    }
    assert not any("wandb" in text or "tracking" in text for text in _specs(tracked).values())
    assert plain.tracking == {"wandb": {"mode": "disabled", "project": raw["study"], "entity": None, "tags": []}}
    assert tracked.tracking == {"wandb": {"mode": "online", "project": "p", "entity": "e", "tags": ["t"]}}


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"wandb": {"mode": "sometimes"}}, r"^tracking\.wandb\.mode: got 'sometimes', expected one of"),
        ({"wandb": {"projekt": "x"}}, r"^tracking\.wandb: unknown key\(s\) \['projekt'\]"),
        ({"mlflow": {}}, r"^tracking: unknown key\(s\) \['mlflow'\]"),
        ({"wandb": {"project": "lab/vit"}}, r"^tracking\.wandb\.project: expected at most 128 characters and none of"),
        ({"wandb": {"tags": ["x" * 65]}}, r"^tracking\.wandb\.tags\[0\]: .* is too long"),
    ],
)
def test_bad_tracking_section_names_the_key(section, message):
    import yaml

    from pretrainflow.study.load import load_study

    raw = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    with pytest.raises(ConfigError, match=message):
        load_study({**raw, "tracking": section})


def test_typed_check_agrees_with_the_schema():
    """The same limits without the schema (a --tracking given by hand is checked by the dataclasses alone)."""
    with pytest.raises(ConfigError, match=r"^--tracking\.wandb\.tags\[0\]: expected at most 64 characters"):
        tracking.parse_option(json.dumps({"wandb": {"tags": ["x" * 65]}}))
    with pytest.raises(ConfigError, match=r"^--tracking\.wandb\.tags: expected distinct tags"):
        tracking.parse_option(json.dumps({"wandb": {"tags": ["a", "a"]}}))
    with pytest.raises(ConfigError, match=r"^--tracking: not valid JSON"):
        tracking.parse_option("{wandb")
    with pytest.raises(ConfigError, match=r"^PRETRAINFLOW_WANDB: expected one of \['offline', 'online', 'disabled'\]"):
        tracking.effective_wandb(None, env={"PRETRAINFLOW_WANDB": "on"})


def test_site_switch_overrides_the_study_mode(tmp_path):
    study = tracking.parse_option(json.dumps(ON))
    assert tracking.effective_wandb(study, env={})[0].mode == "offline"
    assert tracking.effective_wandb(study, env={"PRETRAINFLOW_WANDB": "online"})[0].mode == "online"
    assert tracking.effective_wandb(study, env={"PRETRAINFLOW_WANDB": "disabled"}) is None
    with pytest.raises(ConfigError, match=r"^tracking\.wandb\.mode: W&B files live beside the run's checkpoints"):
        tracking.tracked_run(study, unit="u", config={}, directory=None, job_type="finetune", env={})


def test_the_workflow_gives_jobs_the_study_tracking_without_a_rule_param(tmp_path, monkeypatch):
    """Loading the study exports its resolved section (jobs inherit it; the training commands read it when no
    --tracking is given); no rule has it as a param or in its command, so it reruns nothing and a unit shared with
    another study (another default project) stays shared."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import ConfigSettings, OutputSettings, Quietness, ResourceSettings

    monkeypatch.delenv(tracking.ENV_SECTION, raising=False)
    cwd = os.getcwd()
    try:
        with SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
            workflow = api.workflow(
                resource_settings=ResourceSettings(),
                config_settings=ConfigSettings(configfiles=[REPO / "config" / "config.yaml"]),
                snakefile=REPO / "Snakefile",
                workdir=tmp_path,
            )
            rules = {rule.name: rule for rule in workflow._workflow.rules}
            exported = os.environ.get(tracking.ENV_SECTION)
    finally:
        os.chdir(cwd)
        os.environ.pop(tracking.ENV_SECTION, None)
    expected = canonical_json({"wandb": {"mode": "disabled", "project": "default", "entity": None, "tags": []}})
    assert exported == expected
    assert tracking.tracking_option(None, env={tracking.ENV_SECTION: exported}) == expected
    for name, rule in rules.items():
        assert "tracking" not in (rule.shellcmd or "") and "tracking" not in dict(rule.params.items()), name
