"""Model FLOPs utilisation: one table of device peaks for every stage (ViT images/s, GPT tokens/s).

MFU = training FLOPs per second achieved / (devices x peak FLOP/s of one device). Training FLOPs count 2 per
multiply-add and 3 passes (forward + backward at twice the forward): a ViT image costs 3 x ``flops_per_image()``
(forward only), a GPT token ``flops_per_token()`` (which already includes the 6 = 2 x 3). CPUs and devices missing
from the table get None: there is no meaningful peak to divide by.
"""

from __future__ import annotations

# Dense bf16/fp16 tensor-core peak FLOP/s per device, no sparsity (vendor data sheets). Order matters: "GH200" must
# be tried before "H200"/"H100" would match inside it.
PEAK_FLOPS = {
    "GH200": 989e12,
    "H200": 989e12,
    "H100": 989e12,
    "B200": 2250e12,
    "A100": 312e12,
    "L40S": 362e12,
    "V100": 125e12,
}


def peak_flops(device_name: str) -> float | None:
    """Peak of a known GPU (matched by name), None for CPUs and unknown devices.

    >>> peak_flops("NVIDIA H200"), peak_flops("cpu")
    (989000000000000.0, None)
    """
    return next((peak for key, peak in PEAK_FLOPS.items() if key in device_name), None)


def mfu(*, train_flops_per_item: float, items_per_s: float | None, world_size: int, device_name: str) -> float | None:
    """Utilisation of ``world_size`` devices named ``device_name`` at ``items_per_s`` (images or tokens per second).

    >>> round(mfu(train_flops_per_item=6e9, items_per_s=40_000, world_size=1, device_name="NVIDIA H100"), 3)
    0.243
    """
    peak = peak_flops(device_name)
    if peak is None or not items_per_s:
        return None
    return train_flops_per_item * items_per_s / (peak * world_size)


def device_name(device: str) -> str:
    """The name a device kind reports: the CUDA device's marketing name, or "cpu"."""
    if device != "cuda":
        return "cpu"
    import torch

    return torch.cuda.get_device_name(0)
