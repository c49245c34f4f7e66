"""Baselines beside LINR, for the benchmark tables.

- :mod:`linr.baselines.dip`: Deep Image Prior (Ulyanov et al., 2018), implemented from its paper:
  an encoder-decoder "skip" network fed a fixed noise tensor, trained with Adam on the same data
  terms (forward operators) as LINR.
- :mod:`linr.baselines.classical`: scikit-image and PIL references (TV, non-local means, BM3D via the
  optional ``bm3d`` package, biharmonic inpainting, Wiener and Richardson-Lucy deblurring, nearest
  and bicubic upscaling).

Every baseline returns a :class:`BaselineResult`. Nothing here is imported by the core.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["BaselineResult", "BaselineUnavailable"]


class BaselineUnavailable(RuntimeError):
    """A baseline cannot run here (an optional package is missing); the message says why."""


@dataclass
class BaselineResult:
    """A baseline's output.

    ``image`` is (H, W, C) float32 on the [0, 1] scale; ``history`` holds per-step values for
    iterative methods (``loss``, and ``psnr`` when a reference was given); ``fit_s`` is the wall
    time of the restoration alone (no I/O, no metrics).
    """

    image: np.ndarray
    fit_s: float
    steps_run: int | None = None
    history: dict[str, list[float]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
