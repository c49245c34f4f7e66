"""Adam for every fit, the same numbers as ``torch.optim.Adam`` without its start-up.

Constructing ``torch.optim.Adam`` imports ``torch._dynamo`` (about 1.2 s on this project's CPU, in
every process that fits: a ``linr restore``, each tile or batch worker), and its ``step`` calls
into it, although nothing here is compiled. On the CPU torch's Adam runs its single-tensor
algorithm, one parameter after another; :class:`CpuAdam` is that algorithm operation for
operation (the same in-place tensor operations, the bias corrections in Python floats, the step
count in a float32 tensor), so a fit's parameters are the same to the bit (tested against torch's,
groups with their own rates and epsilons included). :func:`adam` gives it for parameters on the
CPU and torch's own elsewhere (on a GPU torch's multi-tensor kernels are faster).

Only what linr uses is offered: parameter groups with ``lr``, ``betas`` and ``eps`` (no weight
decay, AMSGrad, maximisation or complex parameters), ``param_groups`` and ``state`` as torch
names them (their rates changed in place by schedules, their moments copied when a stack drops
members: :func:`linr.engine.select_members`), ``step`` and ``zero_grad``.
"""
from __future__ import annotations

from typing import Any, Iterable

import torch

__all__ = ["CpuAdam", "adam"]

DEFAULTS = {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8}
"""torch.optim.Adam's defaults for what linr uses."""


class CpuAdam:
    """torch.optim.Adam's single-tensor algorithm (module docstring) over ``params``: tensors, or
    groups (dicts with ``params`` and any of ``lr``, ``betas``, ``eps``), the rest from the
    keyword arguments."""

    def __init__(self, params: Iterable[Any], *, lr: float = DEFAULTS["lr"],
                 betas: tuple[float, float] = DEFAULTS["betas"], eps: float = DEFAULTS["eps"]) -> None:
        groups = _groups(params)
        self.param_groups: list[dict[str, Any]] = []
        seen: set[int] = set()
        for group in groups:
            unknown = set(group) - {"params", *DEFAULTS}
            if unknown:
                raise ValueError(f"CpuAdam takes lr, betas and eps per group, not {sorted(unknown)}")
            if any(id(p) in seen for p in group["params"]):
                raise ValueError("a parameter appears in more than one group")
            seen.update(id(p) for p in group["params"])
            self.param_groups.append({"lr": lr, "betas": betas, "eps": eps, **group})
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.detach_()
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            lr, eps = group["lr"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if not state:
                    state = self.state[p] = {  # the step count's dtype as torch's _get_scalar_dtype()
                        "step": torch.tensor(0.0, dtype=torch.float64 if torch.get_default_dtype() == torch.float64
                                             else torch.float32),
                        "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                        "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
                grad, exp_avg, exp_avg_sq, step_t = p.grad, state["exp_avg"], state["exp_avg_sq"], state["step"]
                step_t += 1
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = step_t.item()
                bias_correction1 = 1 - beta1 ** step
                bias_correction2 = 1 - beta2 ** step
                step_size = lr / bias_correction1
                denom = (exp_avg_sq.sqrt() / bias_correction2 ** 0.5).add_(eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)


def _groups(params: Any) -> list[dict[str, Any]]:
    """``params`` (tensors, or groups of them) as groups, each's ``params`` a list; a bare tensor
    or nothing at all refused, as torch refuses them."""
    if isinstance(params, torch.Tensor):
        raise TypeError("params must be an iterable of tensors or of groups, not a tensor")
    given = list(params)
    if not given:
        raise ValueError("Adam got an empty parameter list")
    groups = given if isinstance(given[0], dict) else [{"params": given}]
    out = []
    for group in groups:
        tensors = group["params"]
        tensors = [tensors] if isinstance(tensors, torch.Tensor) else list(tensors)
        out.append({**group, "params": tensors})
    return out


def adam(params: Iterable[Any], **settings: Any) -> Any:
    """Adam over ``params`` (tensors or groups, as torch's): :class:`CpuAdam` when every parameter
    is on the CPU, else ``torch.optim.Adam``."""
    groups = _groups(params)
    if all(t.device.type == "cpu" for g in groups for t in g["params"]):
        return CpuAdam(groups, **settings)
    return torch.optim.Adam(groups, **settings)
