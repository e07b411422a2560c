"""The training loop in this process, one rank (a DeepSpeed engine over a 1-process gloo group): batch arithmetic,
metrics, checkpoints, and a rerun that resumes from the final checkpoint instead of training again."""

from __future__ import annotations

import pytest
import torch

from pretrainflow.launch import World
from pretrainflow.models import create_vit
from pretrainflow.train.checkpoints import complete_tags
from pretrainflow.train.vit.loop import TrainPlan, train
from pretrainflow.train.vit.spec import AugmentSpec, BatchSpec, OptimizerSpec, ScheduleSpec


@pytest.fixture
def placement(monkeypatch):
    import torch.distributed as dist

    from pretrainflow.launch.local import free_port
    from pretrainflow.train.vit.engine import setup_distributed

    for key, value in World(master_port=free_port()).env().items():
        monkeypatch.setenv(key, value)  # restored after the test
    monkeypatch.setenv("DS_ACCELERATOR", "cpu")
    yield setup_distributed(World())
    if dist.is_initialized():
        dist.destroy_process_group()
    # DeepSpeed caches the groups of the destroyed world in module globals; the next test's engine (e.g. the bf16
    # optimizer) would look them up in the new world and fail. A real run inits its world once per process.
    from deepspeed.utils import groups

    groups._WORLD_GROUP = None
    groups._DATA_PARALLEL_GROUP = None
    groups._ZERO_PARAM_INTRA_PARALLEL_GROUP = None


def _plan(**overrides) -> TrainPlan:
    fields = dict(
        optimizer=OptimizerSpec(lr=1e-3, grad_clip=1.0),
        schedule=ScheduleSpec(epochs=2, warmup_epochs=0.5, min_lr=1e-5),
        batch=BatchSpec(micro=4, global_batch=8),  # accumulation 2 on 1 rank
        augment=AugmentSpec(randaugment_ops=1, mixup=0.8, cutmix=1.0),
        precision="fp32",
        zero_stage=0,
        log_every=1,
        num_workers=0,
        seed=3,
        image_size=16,
        in_chans=1,
        num_classes=4,
        checkpoint_every=3,
        keep=1,
    )
    return TrainPlan(**{**fields, **overrides})


def test_loop_trains_checkpoints_and_resumes(placement, stripes, tmp_path):
    torch.manual_seed(0)
    model = create_vit("vit_test", num_classes=4, in_chans=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = train(
        model,
        stripes,
        _plan(),
        World(),
        placement,
        checkpoint_root=tmp_path,
        config={"x": 1},
        config_hash="h",
        desc="test",
        tb_dir=None,
    )
    # 64 images / 1 rank / micro 4 = 16 micro-batches / accumulation 2 = 8 steps per epoch x 2 epochs
    assert result.exit_code == 0 and result.summary["steps"] == 16 and result.summary["global_batch"] == 8
    assert [row["step"] for row in result.metrics] == list(range(1, 17))
    assert result.metrics[-1]["epoch"] == 2.0 and result.metrics[-1]["lr"] == pytest.approx(1e-5)
    assert result.summary["images_seen"] == 16 * 8
    assert any(not torch.equal(before[k], result.state_dict[k]) for k in before)
    assert complete_tags(tmp_path) == ["step-00000016"]  # keep 1; the final state is checkpointed too

    again = train(
        create_vit("vit_test", num_classes=4, in_chans=1),
        stripes,
        _plan(),
        World(),
        placement,
        checkpoint_root=tmp_path,
        config={"x": 1},
        config_hash="h",
        desc="test",
        tb_dir=None,
    )
    assert again.summary["steps"] == 16 and again.metrics == result.metrics
    assert all(torch.equal(again.state_dict[k], result.state_dict[k]) for k in result.state_dict)


def test_too_small_dataset_and_cpu_fp16_are_named(placement, stripes, monkeypatch):
    from deepspeed.accelerator import get_accelerator

    from pretrainflow.errors import ConfigError

    # Some CPUs (AVX512-FP16) do have fp16 kernels: pin the answer of a CPU without them, which is what the check reads.
    monkeypatch.setattr(get_accelerator(), "is_fp16_supported", lambda: False)
    with pytest.raises(ConfigError, match="precision: fp16 is not supported by this machine's cpu"):
        train(
            create_vit("vit_test", num_classes=4, in_chans=1),
            stripes,
            _plan(precision="fp16"),
            World(),
            placement,
            checkpoint_root=None,
            config={},
            config_hash="h",
            desc="test",
            tb_dir=None,
        )
    with pytest.raises(ConfigError, match="64 images over 1 rank"):
        train(
            create_vit("vit_test", num_classes=4, in_chans=1),
            stripes,
            _plan(batch=BatchSpec(micro=64, global_batch=128)),
            World(),
            placement,
            checkpoint_root=None,
            config={},
            config_hash="h",
            desc="test",
            tb_dir=None,
        )


@pytest.mark.slow  # DeepSpeed's bf16 optimizer wrapper takes a while to set up on CPU
# ZeRO-1: DeepSpeed's bf16 optimizer (masters through safe_get_full_fp32_param); ZeRO-0: its unfused fp16 optimizer
# in bf16, whose masters that helper does not see (engine._fp16_optimizer_masters reads them).
@pytest.mark.parametrize(("zero_stage", "precision"), [(1, "bf16"), (0, "bf16")])
def test_half_precision_exports_fp32_master_weights(placement, stripes, zero_stage, precision):
    torch.manual_seed(0)
    plan = _plan(
        zero_stage=zero_stage, precision=precision, schedule=ScheduleSpec(epochs=1, warmup_epochs=0, min_lr=0.0)
    )
    result = train(
        create_vit("vit_test", num_classes=4, in_chans=1),
        stripes,
        plan,
        World(),
        placement,
        checkpoint_root=None,
        config={},
        config_hash="h",
        desc="test",
        tb_dir=None,
    )
    assert result.summary["precision"] == "bf16" and result.summary["steps"] == 8
    weights = result.state_dict
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in weights.values())
    # the exported weights are the optimizer's fp32 masters, not the bf16 copies the forward pass used
    assert any(not torch.equal(v, v.bfloat16().float()) for k, v in weights.items() if k.endswith("weight"))
