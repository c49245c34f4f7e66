"""Deep Image Prior (Ulyanov, Vedaldi & Lempitsky, "Deep Image Prior", CVPR 2018).

Implemented here from the paper's description (its supplementary material): an hourglass
("skip") network ``g_theta(z)`` maps a fixed random code ``z`` to the image; ``theta`` is fitted
with Adam so that the degraded output matches each observation, ``sum_i w_i mean((A_i g - y_i)^2)``
on the [0, 1] scale. The forward operators are LINR's (:mod:`linr.operators`), so DIP and LINR
see exactly the same data terms.

The paper's recipe: 5 levels of 128 channels down and up, 4-channel 1x1 skip connections,
3x3 convolutions with reflection padding, stride-2 downsampling, bilinear upsampling,
BatchNorm + LeakyReLU(0.2), a sigmoid output; ``z`` has 32 channels drawn from U(0, 0.1); at every
step ``z`` is perturbed by fresh N(0, reg_noise_std^2) noise (1/30 for denoising, 0.03 for SR);
Adam with lr 0.01. For denoising the returned image is an exponential moving average of the
outputs (weight 0.99), and the paper runs 3000 steps (1800 on its smaller table).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..adam import adam
from ..errors import InputError
from ..fit import Observation, build_problem
from . import BaselineResult

__all__ = ["DIPConfig", "SkipNet", "dip_restore"]


@dataclass(frozen=True)
class DIPConfig:
    """Settings of one DIP fit (defaults: the paper's denoising recipe)."""

    steps: int = 3000
    """Adam steps."""
    lr: float = 0.01
    """Adam learning rate."""
    input_depth: int = 32
    """Channels of the random input code ``z``."""
    input_scale: float = 0.1
    """``z`` is drawn from U(0, input_scale)."""
    reg_noise_std: float = 1.0 / 30.0
    """Std of the fresh perturbation added to ``z`` at every step (0 disables it)."""
    average: float | None = 0.99
    """Exponential averaging weight of the returned output; None returns the last output."""
    channels: int = 128
    """Channels of every encoder and decoder level."""
    skip_channels: int = 4
    """Channels of each skip connection (0 disables skips)."""
    levels: int = 5
    """Number of stride-2 levels."""
    seed: int = 0
    """Seeds the network initialisation, the input code and the input's perturbations (on the CPU
    one generator for all three; on a GPU the perturbations are drawn there by a generator of
    their own seeded with ``seed + 1``, since the fortieth session)."""
    device: str = "auto"
    """'cpu', 'cuda[:N]' or 'auto'."""

    def __post_init__(self) -> None:
        if int(self.steps) != self.steps or self.steps < 1:
            raise InputError(f"DIP steps must be a positive integer, got {self.steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"DIP learning rate must be positive, got {self.lr}")
        if self.average is not None and not 0.0 <= self.average < 1.0:
            raise InputError(f"DIP averaging weight must be in [0, 1), got {self.average}")
        if self.levels < 1 or self.channels < 1 or self.skip_channels < 0 or self.input_depth < 1:
            raise InputError("DIP needs levels, channels and input depth >= 1, skip channels >= 0")


def _conv(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Module:
    """Convolution with reflection padding, as DIP uses, so borders see no zeros."""
    pad = (kernel - 1) // 2
    layers: list[nn.Module] = [nn.ReflectionPad2d(pad)] if pad else []
    layers.append(nn.Conv2d(cin, cout, kernel, stride=stride))
    return nn.Sequential(*layers)


def _block(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Module:
    return nn.Sequential(_conv(cin, cout, kernel, stride), nn.BatchNorm2d(cout), nn.LeakyReLU(0.2))


class _Level(nn.Module):
    """One level of the hourglass: skip branch ``x -> s`` and deep branch
    ``x -> down -> deeper -> upsample``, concatenated, normalised and decoded."""

    def __init__(self, cin: int, channels: int, skip: int, deeper: nn.Module | None):
        super().__init__()
        self.skip = _block(cin, skip, 1) if skip else None
        self.down = nn.Sequential(_block(cin, channels, 3, stride=2), _block(channels, channels, 3))
        self.deeper = deeper
        self.norm = nn.BatchNorm2d(skip + channels)
        self.up = nn.Sequential(_block(skip + channels, channels, 3), _block(channels, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        if self.deeper is not None:
            d = self.deeper(d)
        # Upsample to x's exact size so that odd sizes need no padding or cropping.
        d = F.interpolate(d, size=x.shape[-2:], mode="bilinear", align_corners=False)
        if self.skip is not None:
            d = torch.cat([self.skip(x), d], dim=1)
        return self.up(self.norm(d))


class SkipNet(nn.Module):
    """DIP's encoder-decoder with skip connections.

    Shape:
        - Input: (B, input_depth, H, W), any H, W >= 1.
        - Output: (B, out_channels, H, W), values in (0, 1) (sigmoid).
    """

    def __init__(
        self,
        *,
        input_depth: int = 32,
        out_channels: int = 3,
        channels: int = 128,
        skip_channels: int = 4,
        levels: int = 5,
    ):
        super().__init__()
        inner: nn.Module | None = None
        for level in reversed(range(levels)):
            cin = input_depth if level == 0 else channels
            inner = _Level(cin, channels, skip_channels, inner)
        self.body = inner
        self.head = nn.Conv2d(channels, out_channels, 1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(self.body(z)))


def dip_restore(
    observations: Sequence[Observation],
    config: DIPConfig | None = None,
    *,
    reference: np.ndarray | None = None,
) -> BaselineResult:
    """Restore one scene from ``observations`` with Deep Image Prior.

    Weights of None count as 1. ``reference`` (H, W, C) on [0, 1], when given, adds a per-step
    ``psnr`` (RGB, data range 1) of the estimate that would be returned at that step.
    Returns the image (H, W, C) on [0, 1].
    """
    config = config or DIPConfig()
    # Targets stay on [0, 1]: the network ends in a sigmoid.
    problem = build_problem(observations, config.device, reference, signed=False)
    height, width, c, device = problem.height, problem.width, problem.channels, problem.device
    ref = problem.reference

    # BatchNorm needs more than one value per channel: the deepest level must keep >= 2x2
    # pixels, so small images get fewer levels (64 px keeps all 5).
    levels = max(1, min(config.levels, int(math.log2(min(height, width))) - 1))
    gen = torch.Generator().manual_seed(config.seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = SkipNet(input_depth=config.input_depth, out_channels=c, channels=config.channels,
                      skip_channels=config.skip_channels, levels=levels)
    net.to(device)
    z = (torch.rand(1, config.input_depth, height, width, generator=gen) * config.input_scale).to(device)
    optimizer = adam(net.parameters(), lr=config.lr)
    # The input's perturbation is drawn where the network runs: on a GPU, one draw a step of the
    # whole input on the host (and its copy to the card) took a large part of each step's time.
    # The CPU keeps one generator for the input and the perturbations (its results unchanged).
    noise_gen = gen if device.type == "cpu" else torch.Generator(device=device).manual_seed(config.seed + 1)
    losses = torch.empty(config.steps, device=device)
    psnrs = torch.empty(config.steps, device=device) if ref is not None else None
    average = None
    t0 = time.perf_counter()
    for step in range(config.steps):
        code = z
        if config.reg_noise_std > 0:
            noise = torch.randn(z.shape, generator=noise_gen, device=device)
            code = z + config.reg_noise_std * noise
        out = net(code)
        loss = problem.data_term(out)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses[step] = loss.detach()
        current = out.detach()
        if config.average is not None:
            average = current if average is None else config.average * average + (1 - config.average) * current
            current = average
        if psnrs is not None:
            psnrs[step] = -10 * torch.log10(torch.mean((current - ref) ** 2))
    fit_s = time.perf_counter() - t0
    if not torch.isfinite(losses).all():
        raise InputError("DIP diverged (non-finite loss); try a lower learning rate")
    image = current[0].permute(1, 2, 0).float().cpu().numpy()
    history = {"loss": losses.tolist()}
    if psnrs is not None:
        history["psnr"] = psnrs.tolist()
    settings = {"method": "dip", **asdict(config), "levels_used": levels, "device": str(device),
                "perturbations_drawn_on": noise_gen.device.type,
                "parameters": sum(p.numel() for p in net.parameters())}
    return BaselineResult(image=image, fit_s=fit_s, steps_run=config.steps, history=history,
                          settings=settings)
