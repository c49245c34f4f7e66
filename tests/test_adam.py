"""linr.adam: torch.optim.Adam's numbers on the CPU without importing torch._dynamo."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import linr
from linr import adam as adam_module
from linr.adam import CpuAdam, adam


def _params(seed: int) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(3, 16, 16, generator=g).requires_grad_(), torch.randn(3, 16, generator=g).requires_grad_(),
            torch.randn(5, generator=g).requires_grad_()]


def test_the_same_parameters_and_moments_as_torchs_adam_to_the_bit():
    ours, theirs = _params(0), _params(0)

    def groups(p: list[torch.Tensor]) -> list[dict]:  # as adam_for folds omega_0: its own rate and epsilon
        return [{"params": p[:2], "lr": 3e-3, "eps": 1e-8 / 30}, {"params": p[2:], "lr": 1e-4}]

    mine, torchs = CpuAdam(groups(ours), lr=1e-4, eps=1e-8), torch.optim.Adam(groups(theirs), lr=1e-4, eps=1e-8)
    g = torch.Generator().manual_seed(1)
    for step in range(40):
        for opt in (mine, torchs):
            for group, base in zip(opt.param_groups, (3e-3, 1e-4)):
                group["lr"] = base * (0.5 + 0.5 * np.cos(np.pi * step / 40))  # a schedule, in place
        grads = [torch.randn(p.shape, generator=g) * 10.0 ** float(torch.randint(-6, 2, (), generator=g))
                 for p in ours]
        for params in (ours, theirs):
            for k, (p, grad) in enumerate(zip(params, grads)):
                p.grad = None if (step % 7 == 3 and k == 1) else grad.clone()  # a parameter without a gradient
        mine.step()
        torchs.step()
        mine.zero_grad(set_to_none=True)
        torchs.zero_grad(set_to_none=True)
        for p, q in zip(ours, theirs):
            assert torch.equal(p, q), step
    for p, q in zip(ours, theirs):
        for key in ("exp_avg", "exp_avg_sq", "step"):
            assert torch.equal(mine.state[p][key], torchs.state[q][key]), key


def test_adam_gives_torchs_own_where_it_cannot_run_and_refuses_what_it_does_not_do():
    assert isinstance(adam([torch.zeros(2, requires_grad=True)], lr=1e-3), CpuAdam)
    if torch.cuda.is_available():
        assert isinstance(adam([torch.zeros(2, device="cuda", requires_grad=True)]), torch.optim.Adam)
    with pytest.raises(ValueError, match="weight_decay"):
        CpuAdam([{"params": [torch.zeros(2)], "weight_decay": 0.1}])
    p = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="more than one group"):
        CpuAdam([{"params": [p]}, {"params": [p]}])
    with pytest.raises(TypeError, match="not a tensor"):
        adam(p)
    with pytest.raises(ValueError, match="empty"):
        adam([])
    net = torch.nn.Linear(2, 1)
    one = adam([{"params": net.parameters()}])  # a generator in a group: every parameter kept
    assert len(one.param_groups[0]["params"]) == 2


def test_a_fit_and_a_stack_that_drops_members_give_the_same_numbers_as_with_torchs_adam(monkeypatch):
    from linr.engine import FastSiren, adam_for, select_members
    from linr.models import ModelConfig, Siren

    rng = np.random.default_rng(3)
    clean = np.cumsum(np.cumsum(rng.random((24, 24, 3)), 0), 1)
    noisy = np.clip(clean / clean.max() + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    images, stacks = {}, {}
    for name in ("ours", "torch's"):
        if name == "torch's":
            monkeypatch.setattr(adam_module, "CpuAdam", lambda params, **kw: torch.optim.Adam(params, **kw))
        images[name] = linr.restore([linr.noisy(noisy)], steps=30, device="cpu", progress=False, refine="none",
                                    model=ModelConfig(width=16, depth=2)).image
        torch.manual_seed(0)
        stack = FastSiren([Siren(width=16, depth=3) for _ in range(3)])
        optimizer = adam_for(stack, lr=1e-3)
        assert isinstance(optimizer, CpuAdam) is (name == "ours")
        gen = torch.Generator().manual_seed(2)
        for step in range(6):
            if step == 3:  # a member stops: the stack of the others carries on
                stack, optimizer = select_members(stack, optimizer, [2, 0])
            for p in stack.params:
                p.grad = torch.randn(p.shape, generator=gen)
            optimizer.step()
        stacks[name] = [p.detach().clone() for p in stack.params]
    np.testing.assert_array_equal(images["ours"], images["torch's"])
    for p, q in zip(stacks["ours"], stacks["torch's"]):
        assert torch.equal(p, q)


def test_a_restore_does_not_import_torchs_compiler():
    code = ("import sys, numpy as np, linr\n"
            "x = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)\n"
            "linr.restore([linr.noisy(x)], steps=3, device='cpu', progress=False)\n"
            "print('torch._dynamo' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
