"""Image priors: explicit regularisers of the rendered image, added to a fit's data term.

The paper's fit has none: the network is the only prior. A prior here is an object with

- ``value(image)``: a 0-d tensor for an image (1, C, H, W) on the fit's [-1, 1] scale, added to
  the loss (the fit takes its gradient by autograd);
- ``halo_rows`` and ``band_value(band, shape)`` for a prior that is a sum of local terms (total
  variation): the fast engine then keeps its pixel path, adding each chunk's prior gradient from
  the band of rows around it; a prior without them (``halo_rows = None``) makes the fit take the
  image step, like an operator that mixes pixels;
- ``spec``: the short form :func:`parse_prior` reads back (such as ``tv:0.05``);
- ``weight_for_noise(sigma)``: the weight ``NAME:auto`` gets (see below).

A weight may be ``auto`` (such as ``tv:auto``, the defaults' prior for one noisy photo, but a
colour one above 128 px): it is set from the noise level measured on the noisy observations when
each fit is built (:func:`linr.problem.build_prior`), by the prior's ``weight_for_noise``; the
fit records the number it used (``settings['prior_used']``). ``none`` names no prior.

Adding one is a class here plus one line in :data:`PRIORS`. (torch is imported where a value
is computed, so that the command line checks a spec without loading it.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

from .errors import InputError

__all__ = ["ImagePrior", "TotalVariation", "PRIORS", "NO_PRIOR", "AUTO_WEIGHT", "parse_prior",
           "weight_is_auto", "check_prior_spec", "is_local"]

NO_PRIOR = "none"
"""The spec of no prior (the paper's fit), which turns off a default one."""
AUTO_WEIGHT = "auto"
"""The weight that is set from the measured noise level."""


class ImagePrior:
    """The interface; see the module docstring."""

    name = "prior"
    halo_rows: int | None = None
    """How many rows above and below a pixel its gradient depends on, for a prior that is a sum
    of local terms (it then also gives :meth:`band_value`, and the fast engine adds its gradient
    chunk by chunk on the pixel path); None: it needs the whole image (the image step)."""

    def value(self, image: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def band_value(self, band: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        """For a local prior (``halo_rows`` set): the sum of the terms that lie within ``band``,
        whole rows (1, C, rows, W) of an image of ``shape`` (H, W, C), on the scale of the whole
        image's :meth:`value` (so the gradient at a pixel more than ``halo_rows`` rows inside the
        band is the whole image's)."""
        raise NotImplementedError

    @property
    def spec(self) -> str:
        raise NotImplementedError

    @classmethod
    def weight_for_noise(cls, sigma: float) -> float:
        """The weight ``NAME:auto`` gets for a measured noise std ``sigma`` (data range 1)."""
        raise InputError(f"the {cls.name} prior has no automatic weight; give a number")


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
        if not (self.eps > 0 and self.eps < float("inf")):
            raise ValueError(f"total variation eps must be a positive number, got {self.eps}")

    halo_rows = 1  # a term joins a pixel, its right and its lower neighbour

    def value(self, image: torch.Tensor) -> torch.Tensor:
        c, h, w = image.shape[-3:]
        return self.band_value(image, (h, w, c))

    def band_value(self, band: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
        h, w, c = shape
        count = c * (h - 1) * (w - 1)
        if count == 0:  # a single row or column: no pixel has both neighbours (a zero of the graph)
            return band.sum() * 0
        dx = band[..., :-1, 1:] - band[..., :-1, :-1]
        dy = band[..., 1:, :-1] - band[..., :-1, :-1]
        return (self.weight / count) * (dx * dx + dy * dy + self.eps**2).sqrt().sum()

    NOISE_TO_WEIGHT = 1.0
    """``tv:auto``'s weight per unit of measured noise std (data range 1): the weight follows the
    noise linearly (a total variation weight has the units of the image, as the noise std has).
    Chosen on the four tune crops of the denoising variants bench (set9 128 px, RGB; BENCHMARKS.md,
    '#15 quality'), where the best of the weights tried was 0.1 at sigma 25 (0.098) and 0.2 at
    sigma 50 (0.196)."""

    @classmethod
    def weight_for_noise(cls, sigma: float) -> float:
        return cls.NOISE_TO_WEIGHT * float(sigma)

    @property
    def spec(self) -> str:
        return f"tv:{self.weight!r}" + ("" if self.eps == 1e-3 else f":{self.eps!r}")  # exact


PRIORS = {"tv": TotalVariation}
"""Every prior by name: adding one is a class above and one line here."""


def _split(spec: str) -> tuple[str, list[str]]:
    name, _, rest = spec.partition(":")
    if name == NO_PRIOR:
        raise InputError(f"bad prior {spec!r}: {NO_PRIOR} takes no weight")
    if name not in PRIORS:
        raise InputError(f"unknown prior {name!r} in {spec!r}; choose from {', '.join(PRIORS)} or "
                         f"{NO_PRIOR} (such as tv:0.05 or tv:auto)")
    parts = rest.split(":") if rest else []
    if not 1 <= len(parts) <= 2:
        raise InputError(f"bad prior {spec!r}: expected {name}:WEIGHT[:EPS] (WEIGHT a number or "
                         f"{AUTO_WEIGHT}), such as {name}:0.05")
    return name, parts


def is_local(spec: str) -> bool:
    """Whether a spec's prior is a sum of local terms (``halo_rows`` set: the pixel path)."""
    return PRIORS[_split(spec)[0]].halo_rows is not None


def weight_is_auto(spec: str | None) -> bool:
    """Whether a spec's weight is ``auto`` (to be set from the measured noise level)."""
    if spec is None or spec == NO_PRIOR:
        return False
    return _split(spec)[1][0] == AUTO_WEIGHT


def check_prior_spec(spec: str) -> str:
    """A spec as it will be recorded, checked (``auto`` weights left to be resolved); an
    :class:`~linr.errors.InputError` naming the problem if bad."""
    if spec == NO_PRIOR:
        return spec
    if weight_is_auto(spec):
        parse_prior(spec, noise_sigma=0.1)  # the rest checked with a stand-in noise level
        return spec
    return parse_prior(spec).spec


def parse_prior(spec: str, *, noise_sigma: float | None = None) -> ImagePrior:
    """``NAME:WEIGHT[:EPS]`` (such as ``tv:0.05``); :class:`~linr.errors.InputError` (a ValueError)
    naming the problem if bad. A weight ``auto`` needs ``noise_sigma``, the measured noise std
    (data range 1) that sets it (the prior's ``weight_for_noise``)."""
    name, parts = _split(spec)
    cls = PRIORS[name]
    if parts[0] == AUTO_WEIGHT:
        if noise_sigma is None:
            raise InputError(f"prior {spec!r} sets its weight from the Gaussian noise measured on a noisy "
                             f"input, and this restore has none (photon noise fitted by its likelihood and noise-free inputs "
                             f"are not measured); give a weight ({name}:0.05)")
        parts = [repr(cls.weight_for_noise(noise_sigma)), *parts[1:]]
    try:
        numbers = [float(x) for x in parts]
    except ValueError:
        raise InputError(f"bad prior {spec!r}: expected {name}:WEIGHT[:EPS] (WEIGHT a number or "
                         f"{AUTO_WEIGHT}), such as {name}:0.05") from None
    try:
        return cls(*numbers)
    except ValueError as exc:  # the prior's own check of its numbers
        raise InputError(str(exc)) from None
