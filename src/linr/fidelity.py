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
is photon noise plus a camera's Gaussian read noise (shifted-Poisson likelihood);
:class:`SquaredErrorCensoredAtWhite` is Gaussian noise in a photo clipped at white.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["DataTerm", "SquaredError", "SquaredErrorCensoredAtWhite", "ClippedMeanSquaredError", "Poisson", "PoissonGaussian", "DATA_TERMS",
           "data_term", "PHOTON_METHODS"]


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

    variance_known = False
    """Whether :meth:`variance` gives the noise's variance from the image (photon counts); else it
    is measured on the photo (Gaussian noise of one level, :func:`linr.noise.estimate_noise_sigma`)."""

    def variance(self, image: np.ndarray) -> np.ndarray | None:
        """The variance of each entry of an observation (0-1 scale, float64, the shape of
        ``image``) of the clean ``image`` (0-1 scale) under this noise model, or None where the
        model does not say (:attr:`variance_known`)."""
        return None

    def clipped_ends(self) -> tuple[bool, bool]:
        """Whether an observation under this model is clipped at black and at white (its noise cut
        off there, so values near an end are biased): a file's Gaussian noise is at both."""
        return True, True

    def holdout_term(self) -> DataTerm:
        """The data term the hold-out stop rule measures the held-out pixels with (this one,
        unless a subclass says otherwise)."""
        return self

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


@dataclass(frozen=True)
class SquaredErrorCensoredAtWhite(SquaredError):
    """Squared error where an entry below white says its value, and one at white (a clipped
    photo's saturated pixel: its value reached the file's white or beyond) only that the rendering
    is at least white: ``(pred - target)^2``, but ``min(pred - target, 0)^2`` where ``target`` is
    white (1 on the fit's scale). A Gaussian photo's censored likelihood, as :class:`Poisson`'s is
    for counts; a :class:`SquaredError` for everything that reads the noise level (measured on the
    photo) or the blur. For one blurred photo clipped at white (:func:`linr.headroom.clipped_at_white`)."""

    name = "squared_error_censored_at_white"

    @staticmethod
    def _difference(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        difference = pred - target
        return torch.where(target >= 1.0 - 1e-6, torch.clamp(difference, max=0.0), difference)

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self._difference(pred, target) ** 2

    def value(self, pred: torch.Tensor, target: torch.Tensor,
              keep: torch.Tensor | None = None) -> torch.Tensor:
        # unobserved entries are 0 in both pred and target (as SquaredError's): below white
        return torch.mean(self._difference(pred, target) ** 2)

    def slope(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return 2 * self._difference(pred, target)


STOP_MEASURES = ("likelihood", "squared_error")
"""What the hold-out stop may measure a photon-count fit's held-out pixels with."""

PHOTON_METHODS = ("anscombe", "likelihood")
"""How a photo with photon noise is restored (:attr:`Poisson.method`)."""


class _PhotonCounts(DataTerm):
    """The negative log-likelihood of counts ``k + s ~ Poisson(lam + s)`` per entry, up to a
    constant: ``(lam + s) - (k + s) log(lam + s)`` with ``lam = peak * x`` for an image ``x`` on
    [0, 1] and a fixed shift ``s`` counts (:attr:`shift`); ``lam + s`` is kept above ``floor``
    counts so that the logarithm stays finite where the rendering dips below zero. Subclasses
    give ``peak``, ``floor``, ``saturated`` and the shift.

    ``saturated``: the image was clipped at white (an 8- or 16-bit file of counts above the
    peak): an entry at white says only that at least ``peak`` photons came, and its loss is the
    censored likelihood ``-log P(K + s >= peak + s)`` (the regularised lower incomplete gamma
    function ``P(peak + s, lam + s)``), not that of exactly ``peak`` photons.

    ``stop_on``: what the hold-out stop rule measures the held-out pixels with: the squared
    error (the default: an unbiased estimate of the mean squared error to the clean image plus a
    constant, for any zero-mean noise; in a saturated image, against the rendering's expected
    clipped observation, :class:`ClippedMeanSquaredError`) or the likelihood itself, whose
    1/brightness weighting stopped fits when their dark areas began to fit noise, up to 27 steps
    before the PSNR peak (BENCHMARKS.md, "Photon noise").

    ``method``: how :func:`linr.restore` restores a photo with this noise
    (:data:`PHOTON_METHODS`): 'likelihood' fits this term; 'anscombe' restores the photo's
    variance-stabilising transform as a photo with Gaussian noise, then inverts it
    (:mod:`linr.stabilise`); None, the default: 'anscombe' for noisy photos alone (one, or an
    aligned burst of one photon level, averaged after the transform), else 'likelihood'. Only :func:`linr.restore` reads it: a bare
    :func:`linr.fit.fit` fits the likelihood.
    """

    peak: float
    floor: float
    saturated: bool
    stop_on: str
    method: str | None

    @property
    def shift(self) -> float:
        return 0.0

    variance_known = True

    def variance(self, image: np.ndarray) -> np.ndarray:
        """``(lam + s) / peak^2`` for ``lam = peak * x`` counts, ``lam`` taken as at least one count
        (where the image is near black a count's own variance is not a level that the image's
        error, of that order, can be believed to): the variance of the unclipped observation (in a
        ``saturated`` image an entry at white is censored, and its caller leaves it out)."""
        counts = np.maximum(self.peak * np.asarray(image, np.float64), 1.0)
        return (counts + self.shift) / self.peak ** 2

    def clipped_ends(self) -> tuple[bool, bool]:
        """Counts never go below zero, so they are clipped at black only with read noise (the
        shift), and at white only in a ``saturated`` image."""
        return self.shift > 0, self.saturated

    def _counts(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lam = torch.clamp(self.peak * (pred + 1) / 2 + self.shift, min=self.floor)
        k = self.peak * (target + 1) / 2 + self.shift
        return lam, k

    def _at_white(self, target: torch.Tensor) -> torch.Tensor | None:
        """Where the entry is censored (at white in a saturated image), or None: none is."""
        if not self.saturated:
            return None
        white = target >= 1.0 - 1e-6
        return white if bool(white.any()) else None

    def _censored_log_p(self, lam: torch.Tensor) -> torch.Tensor:
        """``log P(K + s >= peak + s)`` for ``K ~ Poisson(lam - s)``, in float64 (the tail
        probability of a dark rendering at a white pixel underflows float32)."""
        a = torch.full_like(lam, self.peak + self.shift, dtype=torch.float64)
        return torch.log(torch.special.gammainc(a, lam.double()).clamp_min(1e-300))

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        lam, k = self._counts(pred, target)
        values = lam - k * torch.log(lam)
        white = self._at_white(target)
        if white is None:
            return values
        values = values.clone()
        values[white] = -self._censored_log_p(lam[white]).to(values.dtype)
        return values

    def slope(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        lam, k = self._counts(pred, target)
        inside = (self.peak * (pred + 1) / 2 + self.shift > self.floor).to(pred.dtype)  # the clamp's gradient
        per_count = 1 - k / lam
        white = self._at_white(target)
        if white is not None:
            # d/dlam -log P(a, lam) = -lam^(a-1) e^(-lam) / (Gamma(a) P(a, lam))
            a = self.peak + self.shift
            lam64 = lam[white].double()
            log_density = (a - 1) * torch.log(lam64) - lam64 - torch.lgamma(torch.tensor(a, dtype=torch.float64))
            per_count = per_count.clone()
            per_count[white] = -torch.exp(log_density - self._censored_log_p(lam64)).to(per_count.dtype)
        return inside * per_count * (self.peak / 2)

    def __post_init__(self) -> None:
        if self.stop_on not in STOP_MEASURES:
            raise ValueError(f"stop_on must be one of {', '.join(STOP_MEASURES)}, got {self.stop_on!r}")
        if self.method is not None and self.method not in PHOTON_METHODS:
            raise ValueError(f"method must be None or one of {', '.join(PHOTON_METHODS)}, got {self.method!r}")

    def expected_observation(self, pred: torch.Tensor) -> torch.Tensor:
        """The mean observation (fit's [-1, 1] scale, float64) of a rendering ``pred``:
        ``E[min(N, peak + s)] - s`` counts for ``N ~ Poisson(lam + s)``, clipped at white only in a
        saturated image. With ``m`` the largest integer below ``c = peak + s`` and ``F`` the
        Poisson distribution function (``F(j; mu) = Q(j + 1, mu)``, the regularised upper
        incomplete gamma function): ``E[min(N, c)] = mu F(m - 1) + c (1 - F(m))``."""
        lam = self._counts(pred, pred)[0].double()  # lam + s, kept above the floor
        if self.saturated:
            c = self.peak + self.shift
            m = math.ceil(c) - 1

            def cdf(j: int) -> torch.Tensor:
                if j < 0:
                    return torch.zeros_like(lam)
                return torch.special.gammaincc(torch.full_like(lam, j + 1.0), lam)

            lam = lam * cdf(m - 1) + c * (1 - cdf(m))
        return 2 * (lam - self.shift) / self.peak - 1

    def holdout_term(self) -> DataTerm:
        """Squared error (``stop_on='squared_error'``: an unbiased estimate of the mean squared
        error to the clean image, plus a constant; against the expected clipped observation in a
        saturated image) or this likelihood (``'likelihood'``)."""
        if self.stop_on == "likelihood":
            return self
        return ClippedMeanSquaredError(self) if self.saturated else SquaredError()


@dataclass(frozen=True)
class ClippedMeanSquaredError(DataTerm):
    """``(E[y | pred] - y)^2`` with ``E[y | pred]`` the mean of a clipped observation of the
    rendering ``pred`` under ``noise`` (:meth:`_PhotonCounts.expected_observation`): the hold-out
    measure of a photon-count fit to an image clipped at white. Plain squared error there
    compares a rendering with observations whose mean is pulled below the truth at every bright
    pixel, not only at those recorded as white (``E[min(K, peak)] < peak x`` for any ``x`` near 1,
    whether or not a given count reached the peak), so it scores a fit that is right in the bright
    areas (as the censored likelihood makes it) as worse than one still below them, and stopped
    such fits early: on parrots at 10 photons (96 px) its minimum was at step 26, the clean
    image's error's at step 37-40 and this measure's at step 37 (BENCHMARKS.md, eighth session).
    Its expectation is ``(g(pred) - g(x))^2`` plus a constant for a ``g`` increasing in the
    rendering, so it is smallest at the true image, as far as the noise model holds (clipping at
    black, which read noise in an 8- or 16-bit file also causes, is not modelled). A measure, not
    a training term: it has no slope."""

    noise: _PhotonCounts
    name = "clipped_mean_squared_error"

    def elementwise(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return ((self.noise.expected_observation(pred) - target.double()) ** 2).to(pred.dtype)

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "noise": self.noise.describe()}


@dataclass(frozen=True)
class Poisson(_PhotonCounts):
    """Photon noise: counts ``k ~ Poisson(lam)`` with ``lam = peak * x`` for an image ``x`` on
    [0, 1] (``peak``: the expected count of a white pixel). The loss is the negative
    log-likelihood up to a constant, ``lam - k log lam``, per entry; ``lam`` is kept above
    ``floor`` counts so that the logarithm stays finite where the rendering dips below zero."""

    peak: float = 1.0
    floor: float = 1e-3
    saturated: bool = False
    stop_on: str = "squared_error"
    method: str | None = None
    name = "poisson"

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "peak": self.peak, "saturated": self.saturated, "stop_on": self.stop_on,
                **({} if self.method is None else {"method": self.method})}


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
    saturated: bool = False
    stop_on: str = "squared_error"
    method: str | None = None
    name = "poisson_gaussian"

    @property
    def shift(self) -> float:
        return (self.peak * self.read_sigma) ** 2

    def describe(self) -> dict[str, object]:
        return {"name": self.name, "peak": self.peak, "read_sigma": self.read_sigma,
                "saturated": self.saturated, "stop_on": self.stop_on,
                **({} if self.method is None else {"method": self.method})}


DATA_TERMS: dict[str, type[DataTerm]] = {"squared_error": SquaredError, "poisson": Poisson,
                                         "poisson_gaussian": PoissonGaussian,
                                         "squared_error_censored_at_white": SquaredErrorCensoredAtWhite}
"""Every data term by name: adding one is a class above and one line here."""


def data_term(name: str, **options: float) -> DataTerm:
    """The data term registered as ``name``, with its options (e.g. ``peak`` for poisson)."""
    if name not in DATA_TERMS:
        raise ValueError(f"unknown data term {name!r}; choose from {', '.join(DATA_TERMS)}")
    return DATA_TERMS[name](**options)
