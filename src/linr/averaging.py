"""Averages of a fit's iterates (its rendered outputs), kept step by step.

A denoising fit's iterates wander around the clean image with a noise of their own (Adam's
steps, SIREN's periodic loss spikes); an average of the last iterates cancels part of it. The
averages here are of the *outputs* (the images the fit renders), not of the weights: when a
stop rule already sees the whole output every step (the default denoising fit), an output
average costs one image buffer and a few element-wise operations per step, and no extra render.

- :class:`ExponentialAverage`: ``a_0 = x_0``, ``a_t = decay * a_{t-1} + (1 - decay) * x_t``.
  Starting from the first iterate (rather than from zero) needs no bias correction.
- :class:`WindowAverage`: the mean of the last ``window`` iterates (fewer at the start).

Both keep their state on the iterates' device and never read it back to the host.
"""

from __future__ import annotations

from collections import deque

import torch

__all__ = ["IterateAverage", "ExponentialAverage", "WindowAverage", "parse_average"]


class IterateAverage:
    """Base class: ``update(x)`` takes the next iterate and returns the current average."""

    name = "average"

    def reset(self) -> None:
        """Forget every iterate seen."""

    def update(self, iterate: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def spec(self) -> str:
        """The short name :func:`parse_average` reads back (such as ``ema0.95``)."""
        raise NotImplementedError


class ExponentialAverage(IterateAverage):
    """Exponential moving average with ``decay`` in (0, 1), started at the first iterate."""

    name = "ema"

    def __init__(self, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"average decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.reset()

    def reset(self) -> None:
        self._average: torch.Tensor | None = None

    def update(self, iterate: torch.Tensor) -> torch.Tensor:
        if self._average is None:
            self._average = iterate.detach().clone()
        else:
            self._average.mul_(self.decay).add_(iterate.detach(), alpha=1.0 - self.decay)
        return self._average

    @property
    def spec(self) -> str:
        return f"ema{self.decay:g}"


class WindowAverage(IterateAverage):
    """Mean of the last ``window`` iterates (of all of them while fewer have been seen).

    Keeps the window's iterates and their running sum (re-summed every ``window`` steps so
    that rounding does not accumulate)."""

    name = "window"

    def __init__(self, window: int):
        if int(window) != window or window < 2:
            raise ValueError(f"average window must be an integer >= 2, got {window}")
        self.window = int(window)
        self.reset()

    def reset(self) -> None:
        self._buffer: deque[torch.Tensor] = deque()
        self._sum: torch.Tensor | None = None
        self._seen = 0

    def update(self, iterate: torch.Tensor) -> torch.Tensor:
        iterate = iterate.detach().clone()
        self._buffer.append(iterate)
        self._seen += 1
        if self._sum is None:
            self._sum = iterate.clone()
        else:
            self._sum.add_(iterate)
        if len(self._buffer) > self.window:
            self._sum.sub_(self._buffer.popleft())
        if self._seen % self.window == 0:
            self._sum = torch.stack(list(self._buffer)).sum(dim=0)
        return self._sum / len(self._buffer)

    @property
    def spec(self) -> str:
        return f"window{self.window}"


def parse_average(spec: str) -> IterateAverage:
    """``emaDECAY`` (such as ``ema0.95``) or ``windowN`` (such as ``window10``); ValueError if bad."""
    try:
        if spec.startswith("ema"):
            return ExponentialAverage(float(spec[3:]))
        if spec.startswith("window"):
            return WindowAverage(int(spec[6:]))
    except ValueError as exc:
        raise ValueError(f"bad iterate average {spec!r}: {exc}") from None
    raise ValueError(f"unknown iterate average {spec!r}; use emaDECAY (ema0.95) or windowN (window10)")
