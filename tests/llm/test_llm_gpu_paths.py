"""The GPU engine's glue to megatron-core, exercised on CPU where megatron's own code allows it.

The GPU engine itself cannot run here: megatron's DDP and DistributedOptimizer refuse CPU tensors and
``forward_backward_no_pipelining`` allocates a CUDA tensor. What can run is checked with megatron's real code: its
per-micro-batch ``forward_step`` (the in-place loss scaling) and its DistributedOptimizer ``state_dict`` (the one-step
assertion that a fresh optimizer trips on load). tests/llm/test_llm_gpu.py runs the whole path on a CUDA node.
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace

import pytest
import torch


def micro_batch(seed: int, *, batch: int = 2, seq: int = 16, vocab: int = 512) -> dict[str, torch.Tensor]:
    tokens = torch.randint(0, vocab, (batch, seq + 1), generator=torch.Generator().manual_seed(seed))
    loss_mask = torch.ones(batch, seq)
    loss_mask[:, : seed + 1] = 0  # a different number of counted tokens in each micro-batch
    return {"tokens": tokens[:, :-1], "labels": tokens[:, 1:], "loss_mask": loss_mask,
            "position_ids": torch.arange(seq).expand(batch, -1)}  # fmt: skip


def test_logged_loss_is_the_mean_of_the_micro_batch_losses(megatron_world):
    # With 3 micro-batches per step megatron's forward_step divides the loss it backpropagates by 3 in place; the loss
    # the engine logs must still be the mean of the 3 micro-batch losses, not a third of it.
    from megatron.core.pipeline_parallel.schedules import forward_step

    from pretrainflow.models.gpt import build_gpt_model, create_gpt_shape
    from pretrainflow.train.llm.engine import _gpu_forward_step, forward_loss, mean_micro_batch_loss

    torch.manual_seed(0)
    model = build_gpt_model(create_gpt_shape("gpt_micro"), vocab_size=512, seq_length=16)
    batches = [micro_batch(seed) for seed in range(3)]
    with torch.no_grad():
        expected = [float(forward_loss(model, batch, "cpu")) for batch in batches]
    store: list[dict[str, torch.Tensor]] = []
    for index, batch in enumerate(batches):
        scaled, _ = forward_step(partial(_gpu_forward_step, device="cpu"), iter([batch]), model, len(batches), None,
                                 store, model.config, 1, current_microbatch=index)  # fmt: skip
        assert float(scaled.detach()) == pytest.approx(expected[index] / len(batches), rel=1e-5)  # what backward sees
    assert float(mean_micro_batch_loss(store)) == pytest.approx(sum(expected) / len(expected), rel=1e-5)


def test_fresh_distributed_optimizer_state_can_be_asked_for_before_loading():
    # Loading asks megatron's DistributedOptimizer for state_dict() first; with torch's AdamW (no TE / Apex) it asserts
    # one Adam step across the inner optimizer's state, which a fresh optimizer does not have yet.
    from megatron.core.optimizer.distrib_optimizer import HAVE_APEX_OR_TE, DistributedOptimizer

    from pretrainflow.train.llm.checkpoint import init_inner_adam_state

    if HAVE_APEX_OR_TE:
        pytest.skip("a fused Adam keeps its step in the param groups: nothing to initialise")
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
    inner = SimpleNamespace(optimizer=torch.optim.AdamW(params, lr=1e-3), grad_scaler=None)
    with pytest.raises(AssertionError):
        DistributedOptimizer.state_dict(inner)
    init_inner_adam_state(SimpleNamespace(chained_optimizers=[inner]))  # get_megatron_optimizer's ChainedOptimizer
    state = DistributedOptimizer.state_dict(inner)
    assert [group["step"] for group in state["optimizer"]["param_groups"]] == [0.0]
    assert all(torch.count_nonzero(s["exp_avg"]) == 0 for s in inner.optimizer.state.values())


class RecordingMegatronOptimizer:
    """Stands in for megatron's DistributedOptimizer: records the calls, and asks megatron's own state_dict() first,
    as DistributedOptimizer.sharded_state_dict does."""

    def __init__(self) -> None:
        self.optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.randn(4))], lr=1e-3)
        self.grad_scaler = None
        self.calls: list[dict] = []

    def sharded_state_dict(self, model_sharded_state_dict, is_loading=False, metadata=None):
        from megatron.core.optimizer.distrib_optimizer import DistributedOptimizer

        self.calls.append({"is_loading": is_loading, "metadata": metadata})
        return DistributedOptimizer.state_dict(self)


def test_distributed_optimizer_checkpoint_is_dp_reshardable_on_save_and_load():
    # megatron's default sharding ("fully_sharded_model_space") writes ShardedTensors with a flattened_range, which
    # dist_checkpointing rejects; save and load must name the same supported format.
    from megatron.core.optimizer.distrib_optimizer import HAVE_APEX_OR_TE, DistributedOptimizer

    from pretrainflow.train.llm.checkpoint import sharded_checkpoint

    if HAVE_APEX_OR_TE:
        pytest.skip("the stand-in replays torch AdamW's state_dict (no TE / Apex)")
    assert "dp_reshardable" in DistributedOptimizer.sharded_state_dict.__doc__
    model = SimpleNamespace(sharded_state_dict=lambda: {})
    optimizer = RecordingMegatronOptimizer()
    loading = sharded_checkpoint(model, optimizer, {"step": 0}, is_loading=True)  # a fresh optimizer, as on resume
    assert loading["optimizer"]["optimizer"]["param_groups"][0]["step"] == 0.0
    optimizer.optimizer.step()  # grads are None: no update, the state stays as initialised
    sharded_checkpoint(model, optimizer, {"step": 1})
    expected = {"distrib_optim_sharding_type": "dp_reshardable"}
    assert optimizer.calls == [{"is_loading": True, "metadata": expected}, {"is_loading": False, "metadata": expected}]


def test_bench_tensor_parallel_degrees_fit_the_node():
    # bench_llm starts one rank per TP degree: on one GPU its old default (TP 1 and 2) started a rank without a GPU
    import importlib.util

    from llm_helpers import REPO

    spec = importlib.util.spec_from_file_location("bench_llm", REPO / "bench" / "bench_llm.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.tensor_parallel_degrees(None, 0) == [1, 2]  # CPU: gloo ranks
    assert bench.tensor_parallel_degrees(None, 1) == [1] and bench.tensor_parallel_degrees(None, 8) == [1, 2]
    assert bench.tensor_parallel_degrees([4], 0) == [4] and bench.tensor_parallel_degrees([2], 2) == [2]
    with pytest.raises(SystemExit, match=r"--tp 2: needs 2 GPUs \(one rank per GPU\), this node has 1"):
        bench.tensor_parallel_degrees([1, 2], 1)
