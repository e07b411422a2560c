"""The DeepSpeed config dict of a run: batch arithmetic, ZeRO stage, precision and clipping from the spec."""

from __future__ import annotations

# DeepSpeed's own step printing is replaced by our metrics; print only on errors.
_QUIET_STEPS = 10**9


def deepspeed_config(
    *, micro: int, accumulation: int, world_size: int, zero_stage: int, precision: str, grad_clip: float | None
) -> dict:
    """DeepSpeed JSON config; ``train_batch_size`` = micro x accumulation x world size (DeepSpeed checks the product)."""
    config = {
        "train_batch_size": micro * accumulation * world_size,
        "train_micro_batch_size_per_gpu": micro,
        "gradient_accumulation_steps": accumulation,
        "gradient_clipping": float(grad_clip or 0.0),
        "zero_optimization": {"stage": zero_stage},
        # Our optimizers come from train/vit/optim.py (client optimizers); ZeRO partitions any torch optimizer's state.
        "zero_allow_untested_optimizer": True,
        "bf16": {"enabled": precision == "bf16"},
        "fp16": {"enabled": precision == "fp16", "initial_scale_power": 16, "loss_scale_window": 1000},
        "steps_per_print": _QUIET_STEPS,
        "wall_clock_breakdown": False,
    }
    if zero_stage == 3:
        # Gather the full fp32 weights on save so that rank 0 can write model.safetensors.
        config["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"] = True
    return config
