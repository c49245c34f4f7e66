"""Photon noise restored as Gaussian noise: the variance-stabilising route of :func:`linr.restore`.

A photo with photon noise (``linr.noisy(y, noise='poisson')`` or ``'poisson-gaussian'``) is, by
default, not fitted with its likelihood: its generalised Anscombe transform
(:class:`linr.photon.AnscombeTransform`), whose noise is about Gaussian of one std everywhere, is
restored with everything the defaults do for Gaussian noise (the pilot fit, its stop, the prior
and the grouped refinement), and the result is mapped back with the unbiased inverse. Measured
better than the likelihood and than restoring the photo as if its noise were Gaussian
(BENCHMARKS.md, "Photon noise through the Anscombe transform").

It applies to noisy photos alone (one, or a burst, registered or not) of one photon level: the
transform of a low-res or blurred photo is not that photo's operator applied to the transformed
image, so a joint fit keeps the likelihood (:func:`photon_route` says why), as does a term whose
``method`` is 'likelihood'. Frames whose estimated photon levels differ by less than
:data:`SAME_LEVEL` are taken as of one level (their mean): estimates from one image scatter by
about 10%. An aligned burst (no registration) is averaged after the transform: its frames'
transformed values share the mean the inverse inverts, and their mean, of noise std
``1 / sqrt(frames)``, is restored as one photo (three-frame bursts at 20 photons: +0.94 dB over the
likelihood, ahead on six of six). Frames to register keep the likelihood unless a term asks for
'anscombe' (then fitted as a burst through the transform, which measured level with the
likelihood on aligned bursts).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from .errors import InputError
from .fidelity import Poisson, PoissonGaussian, SquaredError
from .fit import FitResult
from .operators import Identity
from .photon import AnscombeTransform
from .problem import Observation

__all__ = ["PhotonRoute", "photon_route", "as_fitted", "stabilised", "unstabilised", "SAME_LEVEL"]

SAME_LEVEL = 1.25
"""Frames whose photon levels (peaks) are within this ratio are restored as of one level."""
BURST_NOT_DEFAULT = ("a burst of frames to register (fitted through the transform, as a burst, it measured "
                     "level with the likelihood on average on aligned bursts, behind it on four of six; "
                     "--photon-method anscombe asks for it)")


@dataclass(frozen=True)
class PhotonRoute:
    """How :func:`linr.restore` restores photon-noise photos (:func:`photon_route`)."""

    transform: AnscombeTransform | None
    """The transform the photos are restored through; None: each term's likelihood is fitted."""
    why_not: str | None = None
    """Why the transform (the default) was left for the likelihood, or None."""
    averaged: int = 0
    """Frames of a burst averaged after the transform into one photo (0: not averaged): their
    transformed values share the mean the inverse inverts, with ``1 / frames`` the variance."""
    noise: dict[str, object] | None = None
    """The first photo's noise model (its data term's description), for the record."""

    def describe(self) -> dict[str, object]:
        if self.transform is not None:
            return {"method": "anscombe", **self.transform.describe(), "noise": self.noise,
                    **({"frames_averaged": self.averaged} if self.averaged else {})}
        return {"method": "likelihood", **({} if self.why_not is None else {"why": self.why_not})}


def photon_route(observations: Sequence[Observation], *, register: str | None = None) -> PhotonRoute | None:
    """The route of these observations' photon noise, or None: none has photon noise. A term
    whose ``method`` is 'anscombe' where the transform does not apply is a one-line error. A
    burst of aligned frames (no ``register``) is averaged after the transform; frames to be
    registered keep the likelihood unless the terms ask for 'anscombe' (then fitted as a burst)."""
    terms = [o.fidelity for o in observations if isinstance(o.fidelity, (Poisson, PoissonGaussian))]
    if not terms:
        return None
    methods = {t.method for t in terms}  # each checked by its term
    if "likelihood" in methods:
        if "anscombe" in methods:
            raise InputError("the photos' photon methods differ (anscombe and likelihood); one restoration takes one")
        return PhotonRoute(None)
    why = _why_not(observations, terms)
    if why is not None:
        if "anscombe" in methods:
            raise InputError(f"the Anscombe route (--photon-method anscombe) does not apply: {why}; "
                             "use the likelihood (--photon-method likelihood; photon_method='likelihood' in Python)")
        return PhotonRoute(None, why)
    if len(observations) > 1 and register is not None and "anscombe" not in methods:
        return PhotonRoute(None, BURST_NOT_DEFAULT)
    peak = float(np.mean([t.peak for t in terms]))
    read = peak * float(np.sqrt(np.mean([getattr(t, "read_sigma", 0.0) ** 2 for t in terms])))
    white = any(t.saturated for t in terms)
    aligned = register is None and len({o.image.shape for o in observations}) == 1  # else refused further on
    averaged = len(observations) if len(observations) > 1 and aligned else 0
    return PhotonRoute(AnscombeTransform.fitted_to([o.image for o in observations], peak, read, white=white),
                       noise=terms[0].describe(), averaged=averaged)


def _why_not(observations: Sequence[Observation], terms: list) -> str | None:
    if not all(isinstance(o.operator, Identity) for o in observations):
        return "photon-noise photos restored together with other kinds of photo (the transform does not " \
               "commute with their operators)"
    if len(terms) < len(observations):
        return "photon-noise photos restored together with photos of other noise"
    if {type(t) for t in terms} != {type(terms[0])}:
        return "frames with and without read noise"
    peaks = [t.peak for t in terms]
    if max(peaks) > SAME_LEVEL * min(peaks):
        return f"frames of different photon levels ({min(peaks):.3g} to {max(peaks):.3g} photons at white)"
    return None


def as_fitted(observations: Sequence[Observation], *, register: str | None = None) -> list[Observation]:
    """The observations as :func:`linr.restore` fits them: through their Anscombe transform where
    that route is taken (:func:`photon_route`), else as they are: what a caller checking options
    before a restore (the command line) resolves them on."""
    route = photon_route(observations, register=register)
    if route is None or route.transform is None:
        return list(observations)
    return stabilised(observations, route)


ROWS_AT_ONCE = 256
"""Rows transformed at a time: a large photo's float64 temporaries stay a band's."""


def _by_rows(mapping: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> np.ndarray:
    """``mapping(image)`` as float32, a band of rows at a time."""
    out = np.empty(image.shape, dtype=np.float32)
    for start in range(0, image.shape[0], ROWS_AT_ONCE):
        out[start:start + ROWS_AT_ONCE] = mapping(image[start:start + ROWS_AT_ONCE])
    return out


def stabilised(observations: Sequence[Observation], route: PhotonRoute) -> list[Observation]:
    """The observations' transformed images as photos with Gaussian noise (squared error); a
    burst the route averages, as one photo: the mean of its frames' transforms (weighted by the
    frames' weights where given)."""
    transform = route.transform
    assert transform is not None
    frames = [dataclasses.replace(o, image=_by_rows(transform.forward, o.image), fidelity=SquaredError())
              for o in observations]
    if not route.averaged:
        return frames
    weights = [1.0 if f.weight is None else float(f.weight) for f in frames]  # frames' own weights, if given
    if sum(weights) <= 0:
        raise InputError("every frame of the burst has weight 0")
    mean = np.zeros(frames[0].image.shape, dtype=np.float32)
    for frame, w in zip(frames, weights):
        mean += np.float32(w / sum(weights)) * frame.image
    return [dataclasses.replace(frames[0], image=mean, weight=None)]


def unstabilised(result: FitResult, route: PhotonRoute, *, reference_given: bool = False) -> FitResult:
    """``result`` of the transformed photos mapped back to the photos' scale: the image, the fit's
    image before a refinement, an ensemble's spread (through the inverse's slope at the members'
    mean fit) and a kept model (which then renders through the inverse); ``settings['photon']``
    says so. What stays on the transform's scale: ``history`` (the loss, and a reference's PSNR
    against the transformed reference) and ``settings['observations']`` (the transformed photos'
    squared error; ``settings['photon']['noise']`` is the photos' own noise model)."""
    transform = route.transform
    assert transform is not None
    fitted = result.image if result.fitted_image is None else result.fitted_image
    if result.uncertainty is not None:  # the members' spread, about their mean fit (before a refinement)
        result.uncertainty = _by_rows(transform.slope, fitted) * result.uncertainty
    result.image = _by_rows(transform.inverse, result.image)
    if result.fitted_image is not None:
        result.fitted_image = _by_rows(transform.inverse, result.fitted_image)
    if result.model is not None:
        result.model = dataclasses.replace(result.model, photon=transform)
    record = route.describe()
    if reference_given and result.history.get("psnr"):
        record["history"] = "the PSNR per step is of the transformed image against the transformed reference"
    result.settings["photon"] = record
    return result
