"""Data terms: how far a rendered observation ``A f`` is from the observed ``y``.

A data term is an object (as deepinv's ``DataFidelity``) with

- ``elementwise(pred, target)``: the loss of every entry (pred, target on the fit's [-1, 1] scale);
- ``value(pred, target, keep)``: its mean over all entries, unobserved ones (``keep`` 0) counting
  0 (the fit's data term of one observation);
- ``slope(pred, target)``: d elementwise / d pred, in closed form (the fast engine's pixel path
  pushes it straight into the network's backward);
- ``expected(sigma)``: the expected loss per entry at the true image for noise of level ``sigma``
  (0-1 scale), the discrepancy principle's yardstick, or None where there is no such number.

The fit, the fast engine, the hold-out and discrepancy stop rules and the stopping benchmark all
ask the observation's data term (:attr:`linr.problem.Observation.fidelity`), so a noise model is
one class here plus one registry line. :class:`SquaredError` is the paper's (Gaussian noise);
:class:`Poisson` is photon noise, the negative log-likelihood of counts; :class:`PoissonGaussian`
is photon noise plus a camera's Gaussian read noise (shifted-Poisson likelihood).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["DataTerm", "SquaredError", "Poisson", "PoissonGaussian", "DATA_TERMS", "data_term"]


class DataTerm:
    """The interface; see the module docstring."""

    name = "data term"

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def slope(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def value(self, pred: torch.Tensor, target: torch.Tensor,
              keep: torch.Tensor | None = None) -> torch.Tensor:
        """Mean over all entries of the loss, counting only the entries ``keep`` (0/1, the
        observed ones) marks when given."""
        values = self.elementwise(pred, target)
        return torch.mean(values if keep is None else values * keep)

    def expected(self, sigma: float) -> float | None:
        return None

    def describe(self) -> dict[str, object]:
        return {"name": self.name}


@dataclass(frozen=True)
class SquaredError(DataTerm):
    """``(pred - target)^2``: the paper's data term, maximum likelihood for Gaussian noise."""

    name = "squared_error"

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return (pred - target) ** 2

    def value(self, pred: torch.Tensor, target: torch.Tensor,
              keep: torch.Tensor | None = None) -> torch.Tensor:
        # The paper's exact expression; unobserved entries are 0 in both pred and target, so
        # they add nothing and ``keep`` is not needed.
        return torch.mean((pred - target) ** 2)

    def slope(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 2 * (pred - target)

    def expected(self, sigma: float) -> float:
        """``(2 sigma)^2``: noise of std ``sigma`` on [0, 1] is ``2 sigma`` on the fit's scale."""
        return (2.0 * sigma) ** 2

    def describe(self) -> dict[str, object]:
        return {"name": self.name}


class _PhotonCounts(DataTerm):
    """The negative log-likelihood of counts ``k + s ~ Poisson(lam + s)`` per entry, up to a
    constant: ``(lam + s) - (k + s) log(lam + s)`` with ``lam = peak * x`` for an image ``x`` on
    [0, 1] and a fixed shift ``s`` counts (:attr:`shift`); ``lam + s`` is kept above ``floor``
    counts so that the logarithm stays finite where the rendering dips below zero. Subclasses
    give ``peak``, ``floor`` and the shift."""

    peak: float
    floor: float

    @property
    def shift(self) -> float:
        return 0.0

    def _counts(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam = torch.clamp(self.peak * (pred + 1) / 2 + self.shift, min=self.floor)
        k = self.peak * (target + 1) / 2 + self.shift
        return lam, k

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        lam, k = self._counts(pred, target)
        return lam - k * torch.log(lam)

    def slope(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        lam, k = self._counts(pred, target)
        inside = (self.peak * (pred + 1) / 2 + self.shift > self.floor).to(pred.dtype)  # the clamp's gradient
        return inside * (1 - k / lam) * (self.peak / 2)


@dataclass(frozen=True)
class Poisson(_PhotonCounts):
    """Photon noise: counts ``k ~ Poisson(lam)`` with ``lam = peak * x`` for an image ``x`` on
    [0, 1] (``peak``: the expected count of a white pixel). The loss is the negative
    log-likelihood up to a constant, ``lam - k log lam``, per entry; ``lam`` is kept above
    ``floor`` counts so that the logarithm stays finite where the rendering dips below zero."""

    peak: float = 1.0
    floor: float = 1e-3
    name = "poisson"

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "peak": self.peak}


@dataclass(frozen=True)
class PoissonGaussian(_PhotonCounts):
    """Photon noise plus Gaussian read noise: ``peak * y = Poisson(peak * x) + N(0, r^2)`` with
    ``r = peak * read_sigma`` counts (``read_sigma``: the read noise's std on the image's [0, 1]
    scale). Its exact likelihood is a sum over counts; this is the shifted-Poisson one (as in
    PURE-LET and Richardson-Lucy with read noise): ``k + s ~ Poisson(lam + s)`` with ``s = r^2``,
    which has the true mean and variance, is convex in ``lam`` and is :class:`Poisson` at
    ``read_sigma = 0``. The loss per entry is ``(lam + s) - (k + s) log(lam + s)``, ``lam + s``
    kept above ``floor`` counts."""

    peak: float = 1.0
    read_sigma: float = 0.0
    floor: float = 1e-3
    name = "poisson_gaussian"

    @property
    def shift(self) -> float:
        return (self.peak * self.read_sigma) ** 2

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "peak": self.peak, "read_sigma": self.read_sigma}


DATA_TERMS: dict[str, type[DataTerm]] = {"squared_error": SquaredError, "poisson": Poisson,
                                         "poisson_gaussian": PoissonGaussian}
"""Every data term by name: adding one is a class above and one line here."""


def data_term(name: str, **options: float) -> DataTerm:
    """The data term registered as ``name``, with its options (e.g. ``peak`` for poisson)."""
    if name not in DATA_TERMS:
        raise ValueError(f"unknown data term {name!r}; choose from {', '.join(DATA_TERMS)}")
    return DATA_TERMS[name](**options)
