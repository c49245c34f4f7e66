"""Routes of :func:`linr.restore` through a transform of the photos: photon noise restored as
Gaussian noise, and a Gaussian photo's clipping undone.

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

Photos with Gaussian noise saved to a file are clipped to [0, 1] (:mod:`linr.clipping`): with no
preset named, a noisy photo whose values pile up at black or white is restored as it is and the
result mapped back through the inverse of its expected clipped value (at its measured noise level
raised to the unclipped level that clipping lowered it from, estimated on the result); an aligned
burst of such photos is first averaged, weighted by each frame's measured inverse noise variance
(equally within 1.25x, or by the frames' own weights where given), and restored as one photo
(:func:`clipping_route`). A burst of such photos registered by a translation is moved onto its
first frame's grid first and then restored as an aligned burst (:func:`aligned_burst`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .clipping import ClippedGaussian, clipped_ends_of
from .errors import InputError
from .fidelity import Poisson, PoissonGaussian, SquaredError
from .fit import FitResult
from .operators import Identity
from .photon import AnscombeTransform
from .problem import Observation
from .registration import aligned_to_first, grey_noise, kept_where_agreeing, locally_aligned, shifted_frames

__all__ = ["NoiseRoute", "restore_route", "left_out_said", "dominant_frame_said", "burst_said", "moved_before_mean", "aligns_burst", "aligned_burst", "ALIGNED", "photon_route", "clipping_route", "as_fitted", "stabilised",
           "stabilised_reference", "unstabilised", "SAME_LEVEL", "CLIPPING_CHOICES"]

CLIPPING_CHOICES = ("auto", "ignore")
"""``clipping`` of :func:`linr.restore`: 'auto' undoes a Gaussian photo's clipping where its
values pile up at black or white; 'ignore' restores the photo's values as they are."""

SAME_LEVEL = 1.25
"""Frames whose photon levels (peaks) are within this ratio are restored as of one level."""
BURST_NOT_DEFAULT = ("a burst of frames to register (fitted through the transform, as a burst, it measured "
                     "level with the likelihood on average on aligned bursts, behind it on four of six; "
                     "--photon-method anscombe asks for it)")


@dataclass(frozen=True)
class NoiseRoute:
    """How :func:`linr.restore` restores photon-noise photos (:func:`photon_route`) or clipped
    photos with Gaussian noise (:func:`clipping_route`)."""

    transform: AnscombeTransform | ClippedGaussian | None
    """The transform the photos are restored through; None: each term's likelihood is fitted."""
    why_not: str | None = None
    """Why the transform (the default) was left for the likelihood, or None."""
    averaged: int = 0
    """Frames of a burst averaged after the transform into one photo (0: not averaged): their
    transformed values share the mean the inverse inverts, with ``1 / frames`` the variance."""
    noise: dict[str, object] | None = None
    """The first photo's noise model (its data term's description), for the record."""
    weights: tuple[float, ...] | None = None
    """The averaged frames' weights (summing to 1); None: the frames' own (1 where not given)."""
    left_out: dict[int, tuple[float, float]] | None = None
    """Frames of the burst (index from 0) shifted against its first, with their shifts (rows,
    columns; :func:`linr.registration.shifted_frames`): weighted 0 in its mean, which would blur
    what moved; None: none."""

    @property
    def frames_used(self) -> int:
        """The frames the mean is of (those not :attr:`left_out`)."""
        return self.averaged - len(self.left_out or {})

    @property
    def record_key(self) -> str:
        """The key of ``settings`` that records the route: 'clipping' or 'photon'."""
        return "clipping" if isinstance(self.transform, ClippedGaussian) else "photon"

    def describe(self) -> dict[str, object]:
        burst = {} if not self.averaged else {"frames_averaged": self.frames_used, **(
            {} if not self.left_out else {"frames_left_out": {str(k + 1): [round(v, 2) for v in shift]
                                                              for k, shift in self.left_out.items()}})}
        if isinstance(self.transform, ClippedGaussian):
            return {**self.transform.describe(), **burst}
        if self.transform is not None:
            return {"method": "anscombe", **self.transform.describe(), "noise": self.noise, **burst}
        return {"method": "likelihood", **({} if self.why_not is None else {"why": self.why_not})}


def photon_route(observations: Sequence[Observation], *, register: str | None = None) -> NoiseRoute | None:
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
        return NoiseRoute(None)
    why = _why_not(observations, terms)
    if why is not None:
        if "anscombe" in methods:
            raise InputError(f"the Anscombe route (--photon-method anscombe) does not apply: {why}; "
                             "use the likelihood (--photon-method likelihood; photon_method='likelihood' in Python)")
        return NoiseRoute(None, why)
    if len(observations) > 1 and register is not None and "anscombe" not in methods:
        return NoiseRoute(None, BURST_NOT_DEFAULT)
    peak = float(np.mean([t.peak for t in terms]))
    read = peak * float(np.sqrt(np.mean([getattr(t, "read_sigma", 0.0) ** 2 for t in terms])))
    white = any(t.saturated for t in terms)
    aligned = register is None and len({o.image.shape for o in observations}) == 1  # else refused further on
    averaged = len(observations) if len(observations) > 1 and aligned else 0
    shifted = shifted_frames([o.image for o in observations]) if averaged else {}
    weights = None
    if shifted:  # frames that do not line up with the first: left out of the mean (it would blur them)
        own = [0.0 if k in shifted else 1.0 if o.weight is None else float(o.weight) for k, o in enumerate(observations)]
        if sum(own) <= 0:
            raise InputError("every frame of the burst that lines up with its first has weight 0")
        weights = tuple(w / sum(own) for w in own)
    return NoiseRoute(AnscombeTransform.fitted_to([o.image for o in observations], peak, read, white=white),
                      noise=terms[0].describe(), averaged=averaged, weights=weights, left_out=shifted or None)


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


def restore_route(observations: Sequence[Observation], *, register: str | None = None, preset: str | None = None,
                  clipping: str = "auto") -> NoiseRoute | None:
    """The route of these observations: photon noise's (:func:`photon_route`), else a clipped
    Gaussian photo's or burst's (:func:`clipping_route`), else None (fitted as they are)."""
    check_clipping(clipping)
    route = photon_route(observations, register=register)
    if route is not None:
        return route
    return clipping_route(observations, register=register, preset=preset, clipping=clipping)


def check_clipping(clipping: str) -> None:
    """A one-line error for a ``clipping`` that is not one of :data:`CLIPPING_CHOICES`."""
    if clipping not in CLIPPING_CHOICES:
        raise InputError(f"clipping must be one of {', '.join(CLIPPING_CHOICES)}, got {clipping!r}")


def clipping_route(observations: Sequence[Observation], *, register: str | None = None, preset: str | None = None,
                   clipping: str = "auto") -> NoiseRoute | None:
    """The route of noisy photos with Gaussian noise (the squared error) alone, with no preset
    named and no registration: one photo whose values pile up at black or white (clipped there:
    :func:`linr.clipping.clipped_ends_of`) is restored as it is and mapped back through the
    inverse of its expected clipped value (at the level measured on it, with clipping's lowering
    of that measure undone on the result: :meth:`linr.clipping.ClippedGaussian.at_unclipped_levels`;
    ``clipping`` 'ignore': not); an aligned burst (frames of one size) is averaged, weighted by
    each frame's measured inverse noise variance (equally where the levels are within
    :data:`linr.noise.LEVELS_EQUAL_WITHIN` of each other, as the joint fit weighs them:
    :func:`linr.tasks.measured_noise`), or by the frames' own weights where any is given (1 for
    the others), and restored as one photo, mapped back the same way where some frame was
    clipped. None: anything else (the paper's preset among it, and photos too small to measure
    their noise: :data:`linr.noise.MIN_SIDE`)."""
    check_clipping(clipping)
    if preset is not None or register is not None or not observations:
        return None
    if not _gaussian_photos_of_one_size(observations):  # too small to measure their noise: as they are
        return None
    from .noise import LEVELS_EQUAL_WITHIN, floored_noise_sigma

    # frames that do not line up with the first are left out of the mean (it would blur them)
    shifted = shifted_frames([o.image for o in observations])
    used = [o for k, o in enumerate(observations) if k not in shifted]
    ends = [clipped_ends_of(o.image) for o in used] if clipping == "auto" else [(False, False)]
    black, white = any(e[0] for e in ends), any(e[1] for e in ends)
    if len(observations) == 1 and not (black or white):
        return None
    sigmas = tuple(floored_noise_sigma(o.image) for o in observations)
    if any(o.weight is not None for o in observations):
        raw = [1.0 if o.weight is None else float(o.weight) for o in observations]
    elif max(used_sigmas := [s for k, s in enumerate(sigmas) if k not in shifted]) <= \
            LEVELS_EQUAL_WITHIN * min(used_sigmas):
        raw = [1.0] * len(sigmas)  # the estimate's scatter, not the frames'
    else:
        raw = [1.0 / s ** 2 for s in sigmas]
    raw = [0.0 if k in shifted else w for k, w in enumerate(raw)]
    if sum(raw) <= 0:
        raise InputError("every frame of the burst has weight 0")
    weights = tuple(w / sum(raw) for w in raw)
    averaged = len(observations) if len(observations) > 1 else 0
    return NoiseRoute(ClippedGaussian(sigmas, weights, black, white), averaged=averaged,
                      weights=weights if averaged else None, left_out=shifted or None)


ALIGNED = "moved onto the first frame's grid before the mean"
"""How a burst's frames were registered where :func:`aligned_burst` moved them (the record's
``method``; a joint fit's transforms have none)."""


def aligns_burst(observations: Sequence[Observation], *, register: str | None, preset: str | None) -> bool:
    """Whether a registered burst is aligned before it is restored (:func:`aligned_burst`): a
    translation asked for, no preset named, two or more noisy photos of one size with Gaussian
    noise (the squared error) alone, large enough to measure their noise. Other registered
    observations (low-res frames, whose shifts carry the detail a mean would blur; an affine
    registration; photon noise; the paper's preset) are fitted jointly with their transforms
    (:mod:`linr.registration`)."""
    return register == "translation" and preset is None and len(observations) > 1 and \
        _gaussian_photos_of_one_size(observations)


def _gaussian_photos_of_one_size(observations: Sequence[Observation]) -> bool:
    """Whether the observations are noisy photos with Gaussian noise (the squared error) alone, of
    one size, large enough to measure their noise (:data:`linr.noise.MIN_SIDE`): those
    :func:`clipping_route` averages or undoes the clipping of, and :func:`aligned_burst` aligns."""
    from .noise import MIN_SIDE

    return bool(observations) and all(isinstance(o.operator, Identity) and type(o.fidelity) is SquaredError
                                      and o.carries_noise for o in observations) \
        and len({o.image.shape for o in observations}) == 1 and min(observations[0].shape) >= MIN_SIDE


def aligned_burst(observations: Sequence[Observation], *, register: str | None, preset: str | None
                  ) -> tuple[list[Observation], list[dict[str, object] | None] | None]:
    """A registered burst of noisy photos (:func:`aligns_burst`) with every frame moved onto the
    first's grid (:func:`linr.registration.aligned_to_first`) and giving way to the first's values
    where it disagrees with them beyond the frames' measured noise
    (:func:`linr.registration.kept_where_agreeing`; the record's ``first_frame_taken``: the share
    of its values that did), after what one shift and turn left is undone tile by tile
    (:func:`linr.registration.locally_aligned`; the record's ``tiles_moved``), to be restored as an aligned burst
    (its frames' weighted mean, :func:`clipping_route`), and the record of the shifts (as
    :func:`linr.registration.registration_report`'s: None for the first frame); else the
    observations as they are and None. On 3-frame bursts moved by up to 3 px (13 held-out 112-px
    crops, sigma 25) the mean restored as one photo gained 1.84 dB over the joint fit with learned
    translations (ahead on all 13) and 2.21 over the first frame alone, in a tenth of the joint
    fit's time (BENCHMARKS.md, "A registered burst")."""
    if not aligns_burst(observations, register=register, preset=preset):
        return list(observations), None
    from .noise import floored_noise_sigma

    turns: list[float] = []
    images, shifts = aligned_to_first([o.image for o in observations], turns)
    sigmas = [floored_noise_sigma(o.image) for o in observations]
    found: list[dict[str, object] | None] = [None]
    first_noise = grey_noise(images[0])  # measured once, for every frame's tiles
    for k, (dy, dx) in enumerate(shifts[1:], start=1):
        images[k], tiles, largest = locally_aligned(images[k], images[0], first_noise)
        images[k], disagreed = kept_where_agreeing(images[k], images[0], sigmas[k], sigmas[0])
        found.append({"name": "translation", "shift_x": round(dx, 4), "shift_y": round(dy, 4), "method": ALIGNED,
                      "first_frame_taken": round(disagreed, 4),
                      **({"turn_degrees": round(turns[k], 4)} if turns[k] else {}),
                      **({"tiles_moved": tiles, "tile_shift_largest": round(largest, 3)} if tiles else {})})
    return [dataclasses.replace(o, image=x) for o, x in zip(observations, images)], found


def as_fitted(observations: Sequence[Observation], *, register: str | None = None, preset: str | None = None,
              clipping: str = "auto") -> list[Observation]:
    """The observations as :func:`linr.restore` fits them: a registered burst aligned
    (:func:`aligned_burst`), then through their route's transform where one is taken
    (:func:`restore_route`), else as they are: what a caller checking options before a restore
    (the command line) resolves them on."""
    observations, found = aligned_burst(observations, register=register, preset=preset)
    register = None if found is not None else register
    return stabilised(observations, restore_route(observations, register=register, preset=preset,
                                                  clipping=clipping))


ROWS_AT_ONCE = 256
"""Rows transformed at a time: a large photo's float64 temporaries stay a band's."""


def _by_rows(mapping: Callable[[np.ndarray], np.ndarray], image: np.ndarray) -> np.ndarray:
    """``mapping(image)`` as float32, a band of rows at a time."""
    out = np.empty(image.shape, dtype=np.float32)
    for start in range(0, image.shape[0], ROWS_AT_ONCE):
        out[start:start + ROWS_AT_ONCE] = mapping(image[start:start + ROWS_AT_ONCE])
    return out


def stabilised(observations: Sequence[Observation], route: NoiseRoute | None) -> list[Observation]:
    """The observations' transformed images as photos with Gaussian noise (squared error); a
    burst the route averages, as one photo: the mean of its frames' transforms, weighted by the
    route's weights (else by the frames' weights where given). No route, or one without a
    transform (photon noise's likelihood): the observations as they are."""
    transform = None if route is None else route.transform
    if transform is None or (isinstance(transform, ClippedGaussian) and not route.averaged):
        return list(observations)  # fitted as they are (a clipped photo: restored as it is)
    if not route.averaged:
        return [dataclasses.replace(o, image=_by_rows(transform.forward, o.image), fidelity=SquaredError())
                for o in observations]
    weights = list(route.weights) if route.weights is not None else \
        [1.0 if o.weight is None else float(o.weight) for o in observations]  # frames' own weights, if given
    if sum(weights) <= 0:
        raise InputError("every frame of the burst has weight 0")
    mean = np.zeros(observations[0].image.shape, dtype=np.float32)
    for frame, w in zip(observations, weights):  # one frame's transform at a time
        mean += np.float32(w / sum(weights)) * _by_rows(transform.forward, frame.image)
    return [dataclasses.replace(observations[0], image=mean, weight=None, fidelity=SquaredError())]


def stabilised_reference(reference: np.ndarray | None, route: NoiseRoute | None) -> np.ndarray | None:
    """A clean reference on the scale the photos are fitted on (through the route's transform),
    as per-step PSNRs compare the fit with it; None, no route or no transform: as it is."""
    if reference is None or route is None or route.transform is None:
        return reference
    return route.transform.forward(reference).astype(np.float32)


def unstabilised(result: FitResult, route: NoiseRoute | None, *, reference_given: bool = False) -> FitResult:
    """``result`` of the transformed photos mapped back to the photos' scale: the image, the fit's
    image before a refinement, an ensemble's spread (through the inverse's slope at the members'
    mean fit) and a kept model (which then renders through the inverse); ``settings['photon']``
    (``settings['clipping']`` for a clipped Gaussian photo's) says so. A clipped photo's levels
    are raised to the unclipped ones first (:meth:`linr.clipping.ClippedGaussian.at_unclipped_levels`).
    What stays on the transform's scale: ``history`` (the loss, and a reference's PSNR
    against the transformed reference) and ``settings['observations']`` (the transformed photos'
    squared error; ``settings['photon']['noise']`` is the photos' own noise model). No route:
    ``result`` as it is; a route without a transform (photon noise's likelihood), or an averaged
    burst without clipping: only recorded."""
    if route is None:
        return result
    transform = route.transform
    if transform is None or (isinstance(transform, ClippedGaussian) and not transform.active):
        result.settings[route.record_key] = route.describe()  # nothing to map back
        return result
    if isinstance(transform, ClippedGaussian):  # the levels measured on the clipped photos, their lowering undone
        transform = transform.at_unclipped_levels(result.image)
        route = dataclasses.replace(route, transform=transform)
    fitted = result.image if result.fitted_image is None else result.fitted_image
    if result.uncertainty is not None:  # the members' spread, about their mean fit (before a refinement)
        result.uncertainty = _by_rows(transform.slope, fitted) * result.uncertainty
    result.image = _by_rows(transform.inverse, result.image)
    if result.fitted_image is not None:
        result.fitted_image = _by_rows(transform.inverse, result.fitted_image)
    if result.model is not None:
        result.model = dataclasses.replace(result.model, **{route.record_key: transform})
    record = route.describe()
    if reference_given and result.history.get("psnr") and route.record_key == "photon":
        record["history"] = "the PSNR per step is of the transformed image against the transformed reference"
    result.settings[route.record_key] = record
    return result


def moved_before_mean(found: Sequence[Any] | None) -> bool:
    """Whether a restoration's registration record (``settings['registration']``) is of frames
    moved onto the first's grid before their mean (:func:`linr.stabilise.aligned_burst`), not of
    transforms the fit learnt."""
    return any(t is not None and t.get("method") for t in found or [])


def _frame(number: int | str, names: Sequence[str] | None) -> str:
    """Frame ``number`` (from 1), with its file's name where ``names`` (one per frame, in order, as
    read: a multi-image file's frames are FILE[k]) are distinct; the number alone otherwise."""
    if names is None or len(set(names)) < len(names) or not 0 < int(number) <= len(names):
        return str(number)
    return f"{number} ({names[int(number) - 1]})"


def left_out_said(route: dict[str, Any], *, aligned: bool = False, names: Sequence[str] | None = None) -> str | None:
    """What a burst's route left out of its mean (frames shifted against the first), or None.
    ``aligned``: the frames were moved onto the first's grid before (``--register translation``).
    ``names``: the frames' file names, said beside their numbers (:func:`_frame`)."""
    left = route.get("frames_left_out")
    if not left:
        return None
    largest = max(max(abs(v) for v in shift) for shift in left.values())
    used = route.get("frames_averaged", 1)
    frames = ", ".join(_frame(k, names) for k in left)
    what = "still shifted against the first after they were moved onto its grid" if aligned else \
        "shifted against the first"
    return (f"frame{'s' if len(left) > 1 else ''} {frames} of the burst {what} (by up to "
            f"{largest:.1f} px) and left out: a mean would blur what moved, so the restoration is of "
            + ("the first frame alone" if used == 1 else f"the {used} frames aligned with it")
            + (" (do the frames show one scene?)" if aligned else
               " (--register translation moves every frame onto the first's grid and restores their mean)"))


DOMINANT_WEIGHT = 0.9
"""The share of a burst's mean one frame takes from which its line asks whether it belongs."""


def dominant_frame_said(route: dict[str, Any], *, names: Sequence[str] | None = None) -> str | None:
    """A clause on the one frame of an averaged burst that takes :data:`DOMINANT_WEIGHT` of the
    weight or more (its noise measured several times below the others': a new user's burst glob
    took in a blurred photo of the scene, 0.98 of the weight and 5.7 dB lost), or None.
    ``names``: the frames' file names (:func:`_frame`)."""
    weights = list(route["weights"])
    sigmas = list(route.get("measured_sigmas", route["sigmas"]))
    k = int(np.argmax(weights))
    others = [s for j, (s, w) in enumerate(zip(sigmas, weights)) if j != k and w > 0]
    if weights[k] < DOMINANT_WEIGHT or not others or not sigmas[k] > 0:
        return None
    return (f"frame {_frame(k + 1, names)} takes {weights[k]:.0%} of the mean's weight, its noise measured {float(np.median(others)) / sigmas[k]:.1f}x "
            "lower than the others': is it a frame of this burst (not a processed or blurred copy, or another "
            "exposure)? The restoration is mostly of it")


def burst_said(settings: dict[str, Any], *, names: Sequence[str] | None = None) -> str | None:
    """What a user must hear of a restoration's burst (its ``settings``: a Gaussian burst's
    ``clipping`` record, a photon burst's ``photon`` one): the frames left out of its mean
    (:func:`left_out_said`) and a frame that takes nearly all of its weight
    (:func:`dominant_frame_said`), or None: neither. ``names``: the frames' file names."""
    said = []
    for name in ("clipping", "photon"):
        if route := settings.get(name):
            moved = name == "clipping" and moved_before_mean(settings.get("registration"))
            said.append(left_out_said(route, aligned=moved, names=names))
            if name == "clipping" and route.get("frames_averaged", 0) > 1:  # Gaussian frames weighed by their levels
                said.append(dominant_frame_said(route, names=names))
    return "; ".join(s for s in said if s) or None
