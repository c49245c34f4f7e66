"""Image priors: explicit regularisers of the rendered image, added to a fit's data term.

The paper's fit has none: the network is the only prior. A prior here is an object with

- ``value(image)``: a 0-d tensor for an image (1, C, H, W) on the fit's [-1, 1] scale, added to
  the loss (differentiable: the fit takes its gradient by autograd, so a fit with a prior
  renders the whole image every step, like an operator that mixes pixels);
- ``spec``: the short form :func:`parse_prior` reads back (such as ``tv:0.05``).

Adding one is a class here plus one line in :data:`PRIORS`. (torch is imported where a value
is computed, so that the command line checks a spec without loading it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from .errors import InputError

__all__ = ["ImagePrior", "TotalVariation", "PRIORS", "parse_prior"]


class ImagePrior:
    """The interface; see the module docstring."""

    name = "prior"

    def value(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def spec(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class TotalVariation(ImagePrior):
    """``weight * mean sqrt(dx^2 + dy^2 + eps^2)``: isotropic total variation of each channel,
    forward differences on the (H-1) x (W-1) pixels that have both neighbours, smoothed by ``eps``
    (fit scale) so that its gradient exists where the image is flat. The mean is over channels
    and those pixels, so ``weight`` does not depend on the image size. On the [0, 1] scale the
    loss ``mean((f - y)^2) + weight * TV`` of the fit's [-1, 1] values is ``4 mean((u - y')^2) +
    2 weight * TV(u)``: the ROF model's ``0.5 |u - y'|^2 + lambda TV(u)`` per pixel at
    ``lambda = weight / 4``."""

    weight: float
    eps: float = 1e-3
    name = "tv"

    def __post_init__(self) -> None:
        if not (self.weight > 0 and self.weight < float("inf")):
            raise ValueError(f"total variation weight must be a positive number, got {self.weight}")
        if not self.eps > 0:
            raise ValueError(f"total variation eps must be positive, got {self.eps}")

    def value(self, image: torch.Tensor) -> torch.Tensor:
        dx = image[..., :-1, 1:] - image[..., :-1, :-1]
        dy = image[..., 1:, :-1] - image[..., :-1, :-1]
        return self.weight * (dx * dx + dy * dy + self.eps**2).sqrt().mean()

    @property
    def spec(self) -> str:
        return f"tv:{self.weight!r}" + ("" if self.eps == 1e-3 else f":{self.eps!r}")  # exact


PRIORS = {"tv": TotalVariation}
"""Every prior by name: adding one is a class above and one line here."""


def parse_prior(spec: str) -> ImagePrior:
    """``NAME:WEIGHT[:EPS]`` (such as ``tv:0.05``); :class:`~linr.errors.InputError` (a ValueError)
    naming the problem if bad."""
    name, _, rest = spec.partition(":")
    if name not in PRIORS:
        raise InputError(f"unknown prior {name!r} in {spec!r}; choose from {', '.join(PRIORS)} (such as tv:0.05)")
    try:
        numbers = [float(x) for x in rest.split(":")] if rest else []
    except ValueError:
        raise InputError(f"bad prior {spec!r}: expected {name}:WEIGHT[:EPS], such as {name}:0.05") from None
    if not 1 <= len(numbers) <= 2:
        raise InputError(f"bad prior {spec!r}: expected {name}:WEIGHT[:EPS], such as {name}:0.05")
    try:
        return PRIORS[name](*numbers)
    except ValueError as exc:  # the prior's own check of its numbers
        raise InputError(str(exc)) from None
