"""Headroom for a blurred photo of point sources (stars, beads): the fit's image on a wider scale.

A blurred photo's values map to the fit's [0, 1] by their file's range, and where that range is
the photo's own maximum (floats beyond [0, 1], such as a FITS file's counts) its brightest pixel is
white (dim integers: a little under it, their range the few bits they fill). The deblurred image of a natural scene stays about there, but a star or a
bead is several times brighter than its blurred peak: a synthetic 64-px star field's brightest star
is 1035 counts where the blurred photo's maximum is 193, and the default's fit (a SIREN, whose output
stays near [-1, 1] early in a fit) came back with it at 247. Fitted on a scale :data:`HEADROOM` times
wider (the photo divided by it, the result multiplied back), the same restoration comes back 2.2 to
3.2 dB closer on the three star fields tuned on (BENCHMARKS.md, sixty-sixth session); a natural
photo fitted so lost 0.8 to 3.9 dB, so it applies only to a photo of point sources
(:func:`point_sources`): its brightest pixel far above the spread of its bulk, and shaped as the
blur's image of a point (a flat crop of a photo with one bright edge, lifted, lost 1.9 dB).

Where it applies (:func:`headroom_for`): one blurred photo alone (squared error), no preset named,
no model kept; ``headroom`` 'auto' (that test), 'off', or a factor >= 1 given (any blurred photo
alone). The fit's stop is decided on the photo's own scale (its measured noise) by the caller: the
photo divided by the factor reads as that much less noisy.

A blurred photo that is not of point sources but clipped at white (a lamp, a sky) is fitted on its
own scale with its data term censored at white (:func:`censored_at_white`): a pixel at white says
only that the scene blurred is at least white there.
"""
from __future__ import annotations

import numbers
from typing import Any, Sequence

import numpy as np

from .errors import InputError
from .operators import inner_operator
from .problem import Observation, blurred_alone

__all__ = ["HEADROOM", "POINT_SOURCES_FROM", "PSF_LIKE_FROM", "SATURATED_FROM", "HEADROOM_CHOICES", "check_headroom",
           "peak_contrast", "psf_likeness", "point_sources", "headroom_for", "saturated_plateau", "saturated_pixels",
           "lifted", "lowered", "WHITE", "clipped_at_white", "censored_at_white"]

HEADROOM = 4.0
"""How many times the blurred photo's maximum the fit's scale covers for a photo of point sources:
on three tune star fields (64 px, Gaussian PSFs of sigma 1.5-2, Poisson counts) 2x gained +1.1 to
+2.0 dB, 4x +2.2 to +3.2, 8x and 16x on one of them no more than 4x (in up to 3x the steps)."""

POINT_SOURCES_FROM = 3.5
"""The peak contrast (:func:`peak_contrast`) from which a photo is of point sources: 4.6 to 32 on
nine star fields (sky of 5 to 200 counts), 1.5 to 2.4 on the 19 grey 64-px crops of the shared
images blurred at 50 photons, 2.2 and 3.8 on two night scenes (a darkened photo with a few lamps)."""

PSF_LIKE_FROM = 0.4
"""The :func:`psf_likeness` from which the brightest pixel is the blur's image of a point: 0.47 to
0.93 on the nine star fields (0.45 on a night scene's lamp), 0.03 to 0.09 on three crops of the shared
images whose peak contrast passes (a flat crop's edge or highlight: 143 of their 4029 64- and 128-px
crops blurred as Table 4 does, and fitted 4x wider they lost 0.2 to 1.9 dB; one of the 4029 passes
both, no whole image), 0.10 on a hot pixel."""

SATURATED_FROM = 3
"""Touching pixels at a photo of point sources' maximum from which they are a saturated plateau (two
tied by chance in integer counts are not), left out of
the data term where the headroom is automatic: on a trial's 64-px field whose brightest star was
clipped at 1500 counts (13 pixels; 19538 at its peak) the default came back at 30.57 dB (its blurred
photo 32.58), with them left out 34.19 (BENCHMARKS.md, sixty-sixth session)."""

HEADROOM_CHOICES = ("auto", "off")
"""The named settings of ``headroom`` (besides a factor >= 1)."""


def check_headroom(headroom: Any) -> float | str:
    """``headroom`` checked: 'auto', 'off', or a factor >= 1 (a float); else a one-line error."""
    if isinstance(headroom, str):
        if headroom in HEADROOM_CHOICES:
            return headroom
        try:
            headroom = float(headroom)
        except ValueError:
            raise InputError(f"headroom must be auto, off or a factor >= 1, got {headroom!r}") from None
    if isinstance(headroom, bool) or not isinstance(headroom, numbers.Real) or not np.isfinite(headroom) \
            or headroom < 1:
        raise InputError(f"headroom must be auto, off or a factor >= 1, got {headroom!r}")
    return float(headroom)


def peak_contrast(image: np.ndarray) -> float:
    """How far the brightest pixel of ``image`` (H, W[, C]; the channels' mean) stands above its
    bulk: (max - q10) / (q90 - q10), with q10 and q90 its 10th and 90th percentiles (inf where
    they are equal and the maximum is above them; 0 for a flat image)."""
    values = np.asarray(image, np.float64)
    if values.ndim == 3:
        values = values.mean(axis=2)
    low, high = np.quantile(values, (0.1, 0.9))
    top = float(values.max())
    if high <= low:
        return float("inf") if top > high else 0.0
    return (top - low) / (high - low)


def psf_likeness(image: np.ndarray, kernel: np.ndarray) -> float:
    """How well the neighbourhood of the brightest pixel of ``image`` (H, W[, C]; the channels'
    mean) is the blur's image of one point: R^2 of ``b + A * kernel`` (flipped: a true convolution's
    response), fitted by least squares over the kernel's window centred there (edges repeated)."""
    values = np.asarray(image, np.float64)
    if values.ndim == 3:
        values = values.mean(axis=2)
    response = np.asarray(kernel, np.float64)[::-1, ::-1]
    kh, kw = response.shape
    padded = np.pad(values, ((kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2)), mode="edge")
    y, x = np.unravel_index(int(np.argmax(values)), values.shape)
    window = padded[y:y + kh, x:x + kw].ravel()
    design = np.stack([np.ones(window.size), response.ravel()], axis=1)
    coef, *_ = np.linalg.lstsq(design, window, rcond=None)
    spread = float(((window - window.mean()) ** 2).sum())
    return 0.0 if spread <= 0 else 1.0 - float(((window - design @ coef) ** 2).sum()) / spread


def point_sources(image: np.ndarray, kernel: np.ndarray) -> bool:
    """Whether ``image`` blurred by ``kernel`` is a photo of point sources: its peak contrast at
    least :data:`POINT_SOURCES_FROM` and its brightest pixel the blur's image of a point
    (:func:`psf_likeness` at least :data:`PSF_LIKE_FROM`)."""
    return peak_contrast(image) >= POINT_SOURCES_FROM and psf_likeness(image, kernel) >= PSF_LIKE_FROM


def headroom_for(observations: Sequence[Observation], *, preset: str | None, keep_model: bool,
                 headroom: Any = "auto") -> float:
    """The factor the fit's scale is widened by (1.0: not widened): for one blurred photo alone
    fitted by squared error, with no preset named and no model kept, ``headroom`` given as a
    factor, or :data:`HEADROOM` where it is 'auto' and the photo is of point sources
    (:func:`point_sources`); 1.0 for anything else, or 'off'. A factor given where it cannot apply
    (a preset, a kept model, other observations) is a one-line error."""
    headroom = check_headroom(headroom)
    if headroom == "off" or headroom == 1.0:
        return 1.0
    alone = blurred_alone(observations)
    if headroom != "auto":
        why = "a preset keeps the photo's scale" if preset is not None else \
            "a kept model renders on the photo's scale" if keep_model else \
            None if alone else "it widens the scale of one blurred photo restored alone"
        if why is not None:
            raise InputError(f"headroom {headroom:g} cannot apply here: {why}")
        return headroom
    if preset is not None or keep_model or not alone:
        return 1.0
    kernel = inner_operator(observations[0].operator).kernel.detach().cpu().numpy()
    return HEADROOM if point_sources(observations[0].image, kernel) else 1.0


def saturated_plateau(image: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray | None:
    """The pixels (H, W bool) of ``image`` (H, W[, C]) at its maximum (in any channel; over the
    ``kept`` pixels only, H, W bool, such as a photo's opaque ones) where at least
    :data:`SATURATED_FROM` of them touch one another (8-connected): a star clipped at the detector's
    ceiling, not two pixels of integer counts tied by chance; None else."""
    from scipy.ndimage import label

    values = np.asarray(image, np.float64)
    values = values.max(axis=2) if values.ndim == 3 else values.copy()
    if kept is not None:
        values[~kept] = -np.inf
    plateau = values >= values.max()
    groups, count = label(plateau, structure=np.ones((3, 3)))
    sizes = np.bincount(groups.ravel())[1:]
    if count == 0 or sizes.max() < SATURATED_FROM:
        return None
    return np.isin(groups, 1 + np.flatnonzero(sizes >= SATURATED_FROM))


def saturated_pixels(observation: Observation) -> np.ndarray | None:
    """:func:`saturated_plateau` of ``observation``'s image over the pixels its data term reads (a
    :class:`~linr.operators.LeftOut`'s kept ones: its transparent pixels hold values mirrored from
    its opaque ones)."""
    from .operators import LeftOut

    operator = observation.operator
    return saturated_plateau(observation.image, operator.kept if isinstance(operator, LeftOut) else None)


WHITE = 1.0 - 1e-6
"""Values from which a pixel of a photo (on the fit's [0, 1] scale) is at white."""


def clipped_at_white(observation: Observation) -> int:
    """How many pixels of a blurred photo are at white (1: its file's white, or a float file's
    maximum) where it was clipped: at least :data:`SATURATED_FROM` of them touching
    (:func:`saturated_pixels`, over the pixels its data term reads); 0 where none is so."""
    plateau = saturated_pixels(observation)
    if plateau is None:
        return 0
    values = np.asarray(observation.image)
    values = values.max(axis=2) if values.ndim == 3 else values
    if float(values[plateau].min()) < WHITE:  # a plateau at the photo's maximum below white: no clipping
        return 0
    from .operators import LeftOut

    kept = observation.operator.kept if isinstance(observation.operator, LeftOut) else True
    return int(np.count_nonzero((values >= WHITE) & kept))


def censored_at_white(observations: Sequence[Observation], *, preset: str | None, clipping: str) -> list[Observation]:
    """One blurred photo alone (squared error), no preset named, its clipping not ignored (``clipping``
    'auto'), clipped at white (:func:`clipped_at_white`): its data term censored there
    (:class:`linr.fidelity.SquaredErrorCensoredAtWhite`: a pixel at white says only that the blurred
    scene is at least white; fitted as a value, the deblurred edges of a bright area overshot and
    rang). The observations as they are otherwise. 64-px crops of natural photos blurred by a
    Gaussian of sigma 1-2 at 5/255 and clipped on 2-20% of their pixels: BENCHMARKS.md, sixty-eighth
    session."""
    import dataclasses

    from .fidelity import SquaredError, SquaredErrorCensoredAtWhite

    if preset is not None or clipping != "auto" or not blurred_alone(observations) or \
            type(observations[0].fidelity) is not SquaredError or not clipped_at_white(observations[0]):
        return list(observations)
    return [dataclasses.replace(observations[0], fidelity=SquaredErrorCensoredAtWhite())]


def lifted(observations: Sequence[Observation], factor: float, *,
           saturated: np.ndarray | None = None) -> list[Observation]:
    """The observations with their images divided by ``factor`` (the fit's scale widened), the
    one blurred photo's ``saturated`` pixels (H, W bool; :func:`saturated_plateau`) left out of its
    data term (:func:`linr.kinds.left_out_also`: the blur does not explain a clipped value)."""
    import dataclasses

    from .kinds import left_out_also

    if factor == 1.0:
        return list(observations)
    if saturated is not None:
        observations = [left_out_also(observations[0], saturated)]
    return [dataclasses.replace(o, image=(o.image / np.float32(factor)).astype(np.float32)) for o in observations]


def lowered(result: Any, factor: float, *, asked: Any = "auto", saturated: int = 0) -> Any:
    """``result`` (a :class:`linr.fit.FitResult` of :func:`lifted` observations) back on the
    photo's scale: its image, the fit's image (and the frame grown beyond it) and an ensemble's
    spread multiplied by ``factor``; a model kept by the way (no ``keep_model`` asked: the widened
    scale is never used with it) is dropped, as it renders the widened scale;
    ``settings['headroom']`` records it (the per-step PSNRs, and an ensemble's members', stay on the
    fit's scale, against the reference divided alike)."""
    if factor == 1.0:
        return result
    result.scaled(factor)
    why = "given" if asked != "auto" else (f"a photo of point sources: its brightest pixel stands "
                                           f">= {POINT_SOURCES_FROM:g}x the spread of its bulk above it and is "
                                           "shaped as the blur of a point")
    result.settings["headroom"] = {"factor": float(factor), "why": why,
                                   **({"saturated_left_out": saturated} if saturated else {}),
                                   **({"history": "the PSNR per step (and an ensemble's members') is of the fit on "
                                                  "the widened scale against the reference divided alike"}
                                      if result.history.get("psnr") else {})}
    return result
