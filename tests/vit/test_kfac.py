"""K-FAC (train/vit/kfac.py): the preconditioned gradient against NumPy, the factors against ASDL, world 2 against world 1
through the real loop, bitwise resume, and the refused combinations naming their key."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pretrainflow.errors import ConfigError
from pretrainflow.launch import World
from pretrainflow.train.vit.kfac import KFAC
from pretrainflow.train.vit.spec import AugmentSpec, BatchSpec, OptimizerSpec, ScheduleSpec

# ----------------------------------------------------------------------------------------- 1. the math, by hand (fp64)


@pytest.mark.parametrize("kl_clip", [None, 1e-4])
def test_linear_preconditioned_gradient_matches_numpy(kl_clip):
    # fp64 throughout: factors, inverses (eigh in both), products. The damped factors have condition numbers < 1e3
    # here, so round-off stays near 1e3 x 2.2e-16; rtol 1e-10 leaves room and still catches any convention slip
    # (a missing 1/N, the bias column, pi on the wrong factor all change the result in the first digits).
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3)).double()
    x = torch.randn(5, 2, 4, dtype=torch.float64)  # N = 5 examples x T = 2 tokens
    target = torch.randn(5, 2, 3, dtype=torch.float64)
    lr, damping = 0.5, 0.1
    opt = KFAC(
        model,
        torch.optim.SGD(model.parameters(), lr=lr),
        damping=damping,
        inv_update_every=1,
        ema_decay=1.0,
        kl_clip=kl_clip,
    )
    w0 = model[0].weight.detach().clone()
    s = model(x)
    (0.5 * ((s - target) ** 2).sum(dim=(1, 2))).mean().backward()  # mean over examples, like the loop's loss
    opt.step()

    n, t = 5, 2
    a = np.hstack([x.numpy().reshape(n * t, 4), np.ones((n * t, 1))])  # input rows with the bias column
    e = (s.detach() - target).numpy().reshape(n * t, 3)  # d loss_n / d s per row (loss_n: example n's own loss)
    A = a.T @ a / (n * t)
    G = e.T @ e / n
    grad = e.T @ a / n  # [dW | db] of the mean loss
    pi = math.sqrt((np.trace(A) / 5) / (np.trace(G) / 3))
    P = (
        np.linalg.inv(G + math.sqrt(damping) / pi * np.eye(3))
        @ grad
        @ np.linalg.inv(A + pi * math.sqrt(damping) * np.eye(5))
    )
    scale = 1.0 if kl_clip is None else min(1.0, math.sqrt(kl_clip / (lr**2 * (P * grad).sum())))
    assert kl_clip is None or scale < 0.5  # the clip is active in the clipped case
    np.testing.assert_allclose(opt.factors["0"]["A"].numpy(), A, rtol=1e-12)
    np.testing.assert_allclose(opt.factors["0"]["G"].numpy(), G, rtol=1e-12)
    np.testing.assert_allclose(model[0].weight.grad.numpy(), scale * P[:, :4], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(model[0].bias.grad.numpy(), scale * P[:, 4], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose((w0 - model[0].weight.detach()).numpy(), lr * scale * P[:, :4], rtol=1e-10, atol=1e-14)


def test_patch_embedding_conv_is_a_linear_on_unfolded_patches():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, kernel_size=2, stride=2).double()
    lin = nn.Linear(8, 3).double()
    with torch.no_grad():
        lin.weight.copy_(conv.weight.reshape(3, -1))
        lin.bias.copy_(conv.bias)
    x = torch.randn(4, 2, 4, 4, dtype=torch.float64)
    patches = F.unfold(x, 2, stride=2).transpose(1, 2)  # [4 images, 4 patches, 2 x 2 x 2]
    opts = [KFAC(m, torch.optim.SGD(m.parameters(), lr=0.1), inv_update_every=1) for m in (conv, lin)]
    (0.5 * (conv(x) ** 2).sum(dim=(1, 2, 3))).mean().backward()
    (0.5 * (lin(patches) ** 2).sum(dim=(1, 2))).mean().backward()
    for opt in opts:
        opt.step()
    for key in ("A", "G", "A_inv", "G_inv"):
        torch.testing.assert_close(opts[0].factors[""][key], opts[1].factors[""][key], rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(conv.weight.grad.reshape(3, -1), lin.weight.grad, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------------------------------------- 2. ASDL as the oracle


@pytest.mark.filterwarnings("ignore:Using a non-full backward hook")  # ASDL registers module backward hooks
def test_factors_match_asdl_kfac(monkeypatch):
    """ASDL's KfacGradientMaker (fisher_emp, ema_decay 1: this step's factors only) on an MLP in a plain loop.

    Conventions that match: A = mean over examples of a a^T, G (ASDL's B) = 1/N sum e e^T, pi-split damping. One that
    does not: ASDL keeps the bias out of A and preconditions it by B^-1 alone, where we append the bias column to A
    (Martens & Grosse); so the factors are compared without the bias row/column and the preconditioned gradients on a
    bias-free MLP. fp64 everywhere: agreement to 1e-12 (ASDL inverts by Cholesky, we by eigh).
    """
    pytest.importorskip("asdl", reason="asdfghjkl (the dev extra) is not installed")
    import torch.cuda.nvtx as nvtx

    # ASDL wraps its inversion in torch.cuda.nvtx ranges, which raise on a CPU build of torch
    monkeypatch.setattr(nvtx, "range_push", lambda msg: 0)
    monkeypatch.setattr(nvtx, "range_pop", lambda: 0)
    from asdl.precondition import KfacGradientMaker, PreconditioningConfig

    gen = torch.Generator().manual_seed(1)
    x = torch.randn(16, 6, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 3, (16,), generator=gen)
    for bias, steps in ((True, 1), (False, 3)):  # with a bias column the updates differ, so the weights part after 1
        models = []
        for _ in range(2):
            torch.manual_seed(0)
            models.append(nn.Sequential(nn.Linear(6, 5, bias=bias), nn.Tanh(), nn.Linear(5, 3, bias=bias)).double())
        theirs, ours = models
        maker = KfacGradientMaker(
            theirs, PreconditioningConfig(data_size=16, damping=1e-2, ema_decay=1.0), fisher_type="fisher_emp"
        )
        their_sgd = torch.optim.SGD(theirs.parameters(), lr=0.5)
        opt = KFAC(ours, torch.optim.SGD(ours.parameters(), lr=0.5), damping=1e-2, inv_update_every=1, ema_decay=1.0)
        for _ in range(steps):  # a plain loop: forward, backward, precondition, SGD step
            their_sgd.zero_grad()
            maker.setup_loss_call(F.cross_entropy, maker.setup_model_call(theirs, x), y)
            maker.forward_and_backward()
            their_sgd.step()
            opt.zero_grad()
            F.cross_entropy(ours(x), y).backward()
            opt.step()
            for name, layer in opt.layers.items():
                kron = theirs.get_submodule(name).fisher.kron
                A = opt.factors[name]["A"]
                torch.testing.assert_close(A[:-1, :-1] if bias else A, kron.A, rtol=1e-12, atol=1e-14)
                torch.testing.assert_close(opt.factors[name]["G"], kron.B, rtol=1e-12, atol=1e-14)
                if not bias:
                    their_grad = theirs.get_submodule(name).weight.grad
                    torch.testing.assert_close(layer.weight.grad, their_grad, rtol=1e-10, atol=1e-14)


# ------------------------------------------------------------------------- 3./4. the real loop: world 1 = world 2, resume


def _stripe_images(n: int = 64, num_classes: int = 4, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Class k has a bright band at rows 3k..3k+2 over noise (conftest's StripeImages as tensors, for the workers)."""
    gen = torch.Generator().manual_seed(0)
    images = (torch.rand(n, 1, size, size, generator=gen) * 80).to(torch.uint8)
    labels = torch.arange(n) % num_classes
    for i in range(n):
        images[i, :, 3 * int(labels[i]) : 3 * int(labels[i]) + 3] = 255
    return images, labels


class _Scheduled(torch.utils.data.Dataset):
    """Items placed so that optimizer step s sees the same images at any world size: micro-batch m of step s (rank m
    at world 2, accumulation step m at world 1) is images[8 s + 4 m : 8 s + 4 m + 4], whatever order the RankSampler's
    epoch-0 permutation draws them in."""

    def __init__(self, images, labels, *, world: int, micro: int, accumulation: int, seed: int) -> None:
        from pretrainflow.train.vit.data import RankSampler

        perm = RankSampler(num_samples=len(images), rank=0, world_size=1, seed=seed).indices()
        per_rank, per_step = len(images) // world, micro * accumulation
        self.source = [0] * len(images)
        for position, index in enumerate(perm):
            rank, local = divmod(position, per_rank)
            step, within = divmod(local, per_step)
            self.source[index] = step * per_step * world + rank * per_step + within
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        return self.images[self.source[index]], int(self.labels[self.source[index]])


PLAN = dict(
    # 64 images / global 8 = 8 optimizer steps; inverses every 2 steps, so a resume at step 3 needs saved inverses
    optimizer=OptimizerSpec(name="kfac", lr=2e-3, inv_update_every=2, grad_clip=1.0),
    schedule=ScheduleSpec(epochs=1, warmup_epochs=0.25, min_lr=1e-5),
    # no random augmentation (its streams are seeded per rank, which differ between the worlds); label smoothing stays
    augment=AugmentSpec(
        random_resized_crop=False, randaugment_ops=0, color_jitter=0.0, random_erasing=0.0, mixup=0.0, cutmix=0.0
    ),
    precision="fp32",
    zero_stage=0,
    log_every=1,
    num_workers=0,
    seed=3,
    image_size=16,
    in_chans=1,
    num_classes=4,
    checkpoint_every=3,
    keep=5,
)


def _loop_worker(rank: int, world_size: int, port: int, images, labels, checkpoint_root: str, out: str) -> None:
    """One rank of a real ``loop.train`` run (DeepSpeed ZeRO-0 on gloo); writes its losses and weights to ``out``."""
    import logging

    import torch.distributed as dist

    from pretrainflow.launch import World
    from pretrainflow.models import create_vit
    from pretrainflow.train.vit.engine import setup_distributed
    from pretrainflow.train.vit.loop import TrainPlan, train

    world = World(rank=rank, local_rank=rank, world_size=world_size, local_world_size=world_size, master_port=port)
    os.environ.update({**world.env(), "DS_ACCELERATOR": "cpu"})
    placement = setup_distributed(world, use_gpu=False)
    torch.set_num_threads(1)  # the tests share 2 cores
    logging.getLogger("DeepSpeed").setLevel(logging.ERROR)
    accumulation = 2 // world_size
    plan = TrainPlan(batch=BatchSpec(micro=4, global_batch=8), **PLAN)
    data = _Scheduled(images, labels, world=world_size, micro=4, accumulation=accumulation, seed=plan.seed)
    torch.manual_seed(0)
    model = create_vit("vit_test", num_classes=4, in_chans=1, drop_path=0.0)  # no stochastic depth: same as above
    root = Path(checkpoint_root) if checkpoint_root else None
    result = train(
        model,
        data,
        plan,
        world,
        placement,
        checkpoint_root=root,
        config={},
        config_hash="h",
        desc=f"kfac-w{world_size}",
        tb_dir=None,
    )
    weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(
        {"losses": [r["loss"] for r in result.metrics], "weights": weights, "summary": result.summary},
        f"{out}.rank{rank}",
    )
    dist.destroy_process_group()


def _run(world_size: int, tmp, name: str, checkpoint_root=None) -> list[dict]:
    import torch.multiprocessing as mp

    from pretrainflow.launch.local import free_port

    images, labels = _stripe_images()
    out = str(tmp / name)
    mp.spawn(
        _loop_worker,
        args=(world_size, free_port(), images, labels, checkpoint_root and str(checkpoint_root), out),
        nprocs=world_size,
        join=True,
    )
    return [torch.load(f"{out}.rank{r}", weights_only=False) for r in range(world_size)]


@pytest.fixture(scope="module")
def world2(tmp_path_factory):
    """The reference: 2 ranks x micro 4, checkpoints at steps 3 and 6 and at the end (8)."""
    tmp = tmp_path_factory.mktemp("kfac")
    return tmp, _run(2, tmp, "w2", checkpoint_root=tmp / "ckpt")


def test_world2_equals_world1_with_accumulation(world2):
    tmp, (rank0, rank1) = world2
    (single,) = _run(1, tmp, "w1")  # 1 rank x micro 4 x accumulation 2: the same 8 images per step
    assert rank0["summary"]["steps"] == single["summary"]["steps"] == 8
    assert all(torch.equal(rank0["weights"][k], rank1["weights"][k]) for k in rank0["weights"])  # ranks agree bitwise
    # Same images and weights at step 1; afterwards only the summation order differs (all-reduce of means vs the sum
    # of two halves), which K-FAC's damped inverses amplify a little. Observed: losses 9e-8 relative, weights 5e-7
    # absolute; factors left un-reduced across ranks give 3e-3 (and ranks that disagree).
    np.testing.assert_allclose(rank0["losses"], single["losses"], rtol=1e-5)
    assert rank0["losses"][-1] < rank0["losses"][0]
    for key, value in single["weights"].items():
        torch.testing.assert_close(rank0["weights"][key], value, rtol=1e-4, atol=1e-5)


def test_kill_after_a_checkpoint_and_resume_is_bitwise(world2):
    """A run that died after its step-3 checkpoint (the later tags never written) resumes to the same weights."""
    tmp, (rank0, _) = world2
    killed = tmp / "killed"
    shutil.copytree(tmp / "ckpt", killed)
    for tag in killed.iterdir():
        if tag.name.startswith("step-") and tag.name != "step-00000003":
            shutil.rmtree(tag)
    resumed, _ = _run(2, tmp, "resumed", checkpoint_root=killed)
    assert resumed["losses"] == rank0["losses"]
    assert all(torch.equal(resumed["weights"][k], rank0["weights"][k]) for k in rank0["weights"])


# ------------------------------------------------------------------------------------------------------- 5. refusals

_RUN = {
    "kind": "vit",
    "run_id": "r",
    "model": {"name": "vit_test"},
    "dataset": "d",
    "schedule": {"epochs": 1, "warmup_epochs": 0},
    "batch": {"micro": 4},
    "optimizer": {"name": "kfac"},
}


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"zero_stage": 1},
            r"pretrain\.r\.zero_stage: optimizer.name kfac needs zero_stage 0, got 1 \(ZeRO 1/2/3 give",
        ),
        ({"precision": "bf16"}, r"pretrain\.r\.precision: optimizer.name kfac needs precision fp32, got 'bf16'"),
        ({"optimizer": {"name": "kfac", "base": "shampoo"}}, r"pretrain\.r\.optimizer\.base: kfac wraps one of"),
        ({"optimizer": {"name": "sam", "base": "kfac"}}, r"pretrain\.r\.optimizer\.base: .* neither wraps the other"),
        (
            {"optimizer": {"name": "kfac", "cov_update_every": 2, "inv_update_every": 5}},
            r"pretrain\.r\.optimizer\.inv_update_every: expected a multiple of cov_update_every 2",
        ),
    ],
)
def test_refused_combinations_name_the_key(overrides, message):
    from pretrainflow.train.vit.spec import check_vit_run

    with pytest.raises(ConfigError, match=message):
        check_vit_run({**_RUN, **overrides}, "pretrain.r")


def test_finetune_recipe_takes_kfac_in_fp32_only():
    from pretrainflow.train.vit.spec import check_finetune

    recipe = {"epochs": 1, "optimizer": {"name": "kfac", "base": "sgd", "kl_clip": 1e-3}, "precision": "fp32"}
    resolved = check_finetune({"tasks": ["digits"], "recipe": recipe}, "finetune")
    assert (
        resolved["recipe"]["optimizer"]["kl_clip"] == 1e-3 and resolved["recipe"]["optimizer"]["inv_update_every"] == 10
    )
    with pytest.raises(ConfigError, match=r"finetune\.recipe\.precision: optimizer.name kfac needs precision fp32"):
        check_finetune({"tasks": ["digits"], "recipe": {**recipe, "precision": "bf16"}}, "finetune")


def test_backstops_in_the_loop_and_in_step(stripes):
    from pretrainflow.models import create_vit
    from pretrainflow.train.vit.loop import TrainPlan, train
    from pretrainflow.train.vit.optim import build_optimizer

    # a TrainPlan built by hand skips the spec checks: the loop refuses before DeepSpeed wraps the optimizer
    plan = TrainPlan(**{**PLAN, "zero_stage": 1}, batch=BatchSpec(micro=4, global_batch=8))
    with pytest.raises(ConfigError, match="optimizer.name: kfac needs zero_stage 0 and precision fp32"):
        train(
            create_vit("vit_test", num_classes=4, in_chans=1),
            stripes,
            plan,
            World(),
            None,
            checkpoint_root=None,
            config={},
            config_hash="h",
            desc="t",
            tb_dir=None,
        )
    # what ZeRO 1/2 do to a client optimizer: its groups hold one flat partition instead of the layers' parameters
    model = create_vit("vit_test", num_classes=4, in_chans=1)
    opt = build_optimizer(model, OptimizerSpec(name="kfac"), 1e-3)
    for group in opt.param_groups:
        group["params"] = [torch.cat([p.detach().flatten() for p in group["params"]])]
    with pytest.raises(RuntimeError, match="DeepSpeed replaced them by flat ZeRO partitions or fp32 master copies"):
        opt.step()
