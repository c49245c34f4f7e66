"""Defects of a blurred photo: pixels sharper than its blur allows (hot pixels, cosmic rays).

Every feature of a blurred photo passed through the blur: a star is at least as wide as the
kernel. A hot pixel, or a cosmic ray's track, is recorded on the detector after the optics, one
or a few pixels wide. For a blur kernel ``k`` and any scene that is nowhere negative, the mean of
a pixel's two neighbours along an axis in the blurred photo is at least ``m`` times the pixel's
value, with ``m`` the least such ratio of the kernel itself (:func:`sharpest_ratio`: the image of a
point at its centre; ``exp(-1 / (2 sigma^2))`` for a Gaussian of sigma px). A pixel whose neighbours fall
far below that (:func:`impossible_pixels`) is no part of the scene: fitted as data it would be
deblurred into a bright point with rings, and where it is the photo's maximum, its value is the
photo's white, the real stars a few per cent of it (an astronomer's trial: a hot pixel and a
cosmic ray took a field to 29.9 dB where its blurred photo was 32.6).

Such pixels are left out of the photo's data term (:class:`~linr.operators.LeftOut`, their values
filled from their neighbours for what reads the photo's values), and where one was the photo's
maximum, the fit's scale is the brightest pixel left (:func:`defect_scale`; a kept model's stays the
photo's, as it renders that). Where more than :data:`DEFECTS_UP_TO` of the pixels are so sharp, the
kernel is likely wider than the photo's blur: nothing is left out, and the caller says so. On 24
64-px probe scenes with a hot pixel, a warm one and/or a cosmic ray, the default came back within
0.05 dB of the photo without them on 21, where it gave -12.8 to 28.8 dB before (BENCHMARKS.md,
sixty-seventh session). Not found: defects of 2 x 2 px or wider, in a corner, under a disk kernel.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from .errors import InputError

if TYPE_CHECKING:  # measured_scale serves the command line, which imports no torch to build its parser
    from .problem import Observation

__all__ = ["DEFECT_SHARPNESS", "DEFECT_SIGMAS", "DEFECT_ROUNDS", "DEFECTS_UP_TO", "DEFECTS_CHOICES", "check_defects",
           "sharpest_ratio", "impossible_pixels", "defect_scale", "Defects", "defects_of", "without_defects",
           "restored_scale", "measured_scale", "SCALE_NOTE"]

DEFECT_SHARPNESS = 0.5
"""The share of the kernel's own ratio (:func:`sharpest_ratio`) under which a pixel's neighbours
must fall for it to be a defect: a true point of the scene stands at that ratio or above, so the
margin is half of it, besides the noise's."""

DEFECT_SIGMAS = 5.0
"""How many standard deviations of the photo's noise (its measured level, at least its values' step)
the shortfall must exceed as well."""

DEFECT_ROUNDS = 2
"""Rounds of the test, each with the defects found so far read as their neighbours' median: a
defect beside one found is tested against what the scene has there."""

DEFECTS_UP_TO = 0.002
"""The largest share of the photo's pixels left out as defects (and at least 16): more, and the
kernel is likely wider than the blur in the photo (its sharp features read as defects)."""

NOISE_FLOOR = 2.0 ** -16
"""The least noise level taken (on the photo's scale, its white 1): a 16-bit quantum. A photo free of
noise in floats (a silhouette blurred by an Airy pattern) showed 5 pixels of its kernel's far tail
above a margin of its values' step."""

DEFECTS_CHOICES = ("auto", "off")

CORE = 0.001
"""The kernel's values from this share of its peak on are those its ratio is taken over at first:
all but its numerical dust (a bright star is seen far into the kernel's tail: with only the values
of 5% of the peak and more, the anti-aliased tail of a motion blur at 30 degrees and the first ring
of an Airy pattern read as defects around stars of 1e5 counts)."""

CORE_UP_TO = 0.05
"""The share of the kernel's peak its ratio is taken from at most, in a second pass: where the
photo's brightest point (read off its brightest pixel's neighbours, the defects found at first left
out) is so dim that its image's values below ``DEFECT_SIGMAS`` noise levels are lost in the noise,
only the kernel's values above that bound it (an Airy pattern's rings allow a sharpness its 64-px star fields never show: a cosmic ray
there went unfound with the first pass alone, its field restored at 16.7 dB instead of 40.1)."""


def check_defects(defects: Any) -> str:
    """``defects`` checked: 'auto' or 'off'; else a one-line error."""
    if defects not in DEFECTS_CHOICES:
        raise InputError(f"defects must be auto or off, got {defects!r}")
    return defects


def sharpest_ratio(kernel: np.ndarray, core: float = CORE) -> tuple[float, float]:
    """The least ratios, over the kernel's values of at least ``core`` of its peak, of
    the mean of a value's two neighbours along each axis (above and below; left and right) to the
    value: how much dimmer than a pixel its neighbours on either side can be in any blurred photo
    of a scene that is nowhere negative (a blur along one axis only: 0 across it, where the scene's
    own edges stay sharp)."""
    k = np.asarray(kernel, np.float64)
    k = k / k.max()
    p = np.pad(k, 1)
    core = k >= core
    vertical = (p[:-2, 1:-1] + p[2:, 1:-1]) / 2.0
    horizontal = (p[1:-1, :-2] + p[1:-1, 2:]) / 2.0
    return float(np.min(vertical[core] / k[core])), float(np.min(horizontal[core] / k[core]))


def _step(values: np.ndarray) -> float:
    """The smallest step between ``values`` (a sample of a photo's): their quantum for integer counts
    or 8-bit levels (a noise level measured as zero on sparse counts is at least that)."""
    steps = np.diff(np.unique(values.ravel()))
    return float(steps.min()) if steps.size else 0.0


def _neighbours(channel: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """The mean and the larger of each pixel's two neighbours above and below, then left and right,
    of one channel (H, W), a border's outer one its own value."""
    p = np.pad(channel, 1, mode="edge")
    pairs = ((p[:-2, 1:-1], p[2:, 1:-1]), (p[1:-1, :-2], p[1:-1, 2:]))
    return [((a + b) / 2, np.maximum(a, b)) for a, b in pairs]


def impossible_pixels(image: np.ndarray, kernel: np.ndarray, *, kept: np.ndarray | None = None) -> np.ndarray | None:
    """The pixels (H, W bool) of a photo blurred by ``kernel`` (``image`` (H, W[, C]) on its scale)
    that no scene blurred by it gives: in any channel, a peak along an axis (brighter than both its
    neighbours there) whose two neighbours' mean is below ``t`` times its value (``t``:
    :data:`DEFECT_SHARPNESS` of that axis's :func:`sharpest_ratio`; values on a scale whose 0 is
    black, as a photo's range maps them) by more than :data:`DEFECT_SIGMAS` standard deviations of
    that difference: the photo's noise as measured (at least its values' step), taken as that of
    its median value and growing as the square root of brightness above it (photon noise). Over
    :data:`DEFECT_ROUNDS` rounds, those found in one read as the median of their neighbours left in
    the next (:func:`_with_found_as_neighbours`). Only ``kept`` pixels (H, W bool: a photo's opaque
    ones; None: all) are tested, and along an axis only where both neighbours are kept; a pixel on
    the photo's border only along it. Not found: a defect of 2 x 2 pixels or wider (its neighbours
    as bright as a point's image), one in a corner. None where there is none."""
    from .noise import MIN_SIDE, estimate_noise_sigma
    from .transparent import mirrored_fill

    values = np.asarray(image, np.float32)  # one channel at a time in float32: bounded memory at any size
    values = values[..., None] if values.ndim == 2 else values
    h, w = values.shape[:2]
    if min(h, w) < MIN_SIDE:
        return None
    kept = np.ones((h, w), bool) if kept is None else np.asarray(kept, bool)
    if not kept.any():
        return None
    sample = values[kept]
    if sample.shape[0] > 200_000:
        sample = sample[np.random.default_rng(0).choice(sample.shape[0], 200_000, replace=False)]
    sigma = max(estimate_noise_sigma(values if kept.all() else mirrored_fill(values, ~kept)), _step(sample),
                NOISE_FLOOR)
    # photon noise grows with brightness: the level measured (mostly where the photo is typical) is
    # taken as that of its median and grows as the square root of a brighter pixel's value
    typical = max(float(np.median(sample)), sigma)

    def noise(at: np.ndarray) -> np.ndarray:
        return np.float32(sigma) * np.sqrt(np.maximum(at / np.float32(typical), np.float32(1.0)))

    readable = [mean >= 1.0 for mean, _ in _neighbours(kept.astype(np.float32))]  # both neighbours kept

    def tested(core: float, found: np.ndarray, work: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``found`` with the defects the kernel's values from ``core`` on bound, and the values as
        the next test reads them (``work``: ``values`` with those in ``found`` filled)."""
        ratios = [DEFECT_SHARPNESS * r for r in sharpest_ratio(kernel, core)]
        for _ in range(DEFECT_ROUNDS):
            new = np.zeros((h, w), bool)
            for c in range(values.shape[2]):
                channel = work[..., c]
                for t, (pair, larger), both in zip(ratios, _neighbours(channel), readable):
                    if t > 0:  # a peak along the axis, its neighbours too dim for any point's image
                        margin = DEFECT_SIGMAS * np.sqrt((np.float32(t) * noise(channel)) ** 2 + noise(pair) ** 2 / 2)
                        new |= (np.float32(t) * channel - pair > margin) & (channel > larger) & both
            new &= kept & ~found
            if not new.any():
                break
            found = found | new
            work = _with_found_as_neighbours(values, found, kept)
        return found, work

    found, work = tested(CORE, np.zeros((h, w), bool), values)
    rest = kept & ~found
    if rest.any():  # the kernel's values the photo's brightest point shows above the noise
        # how bright that point is, read off its neighbours too (a defect's own value says nothing: it is
        # often the photo's maximum), from 0: a point's image is bounded above black, not above the sky
        widest = max(max(sharpest_ratio(kernel, CORE_UP_TO)), 1e-6)
        brightest = max(float(np.max(np.minimum(  # a pixel beside a defect is no brighter than itself
            work[..., c], np.maximum(*(mean for mean, _ in _neighbours(work[..., c]))) / np.float32(widest))[rest]))
            for c in range(values.shape[2]))
        core = min(CORE_UP_TO, DEFECT_SIGMAS * sigma / brightest) if brightest > 0 else CORE
        if core > CORE:
            found, _ = tested(core, found, work)
    return found if found.any() else None


def _with_found_as_neighbours(values: np.ndarray, found: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """``values`` (H, W, C) with each ``found`` pixel the median of its kept 8-neighbours that are not
    found (of the 5 x 5 around it where none is; else as it is): what its neighbours are tested
    against in the next round (a cosmic ray beside a star reads as the star's slope, not as the
    sky mirrored from its far side)."""
    out = values.copy()
    good = kept & ~found
    h, w = found.shape
    for y, x in zip(*np.nonzero(found)):
        for reach in (1, 2):
            rows, cols = slice(max(0, y - reach), y + reach + 1), slice(max(0, x - reach), x + reach + 1)
            near = good[rows, cols]
            if near.any():
                out[y, x] = np.median(values[rows, cols][near], axis=0)
                break
    return out


def defect_scale(image: np.ndarray, defects: np.ndarray, kept: np.ndarray | None = None) -> float:
    """The factor the photo ``image`` (on its scale) is divided by for its fit where ``defects``
    (H, W bool) are left out: where a defect holds the photo's maximum (over its ``kept`` pixels,
    H, W bool: its opaque ones; None: all), a hot pixel its white, the brightest value left over
    that maximum, so that the scene's brightest pixel is the fit's white again; 1.0 where the
    maximum is the scene's."""
    values = np.asarray(image, np.float64)
    values = values[..., None] if values.ndim == 2 else values
    kept = np.ones(defects.shape, bool) if kept is None else np.asarray(kept, bool)
    rest, top = values[kept & ~defects], values[kept]
    if rest.size == 0:
        return 1.0
    low, high = float(rest.max()), float(top.max())
    return low / high if 0 < low < high else 1.0


@dataclass(frozen=True)
class Defects:
    """What :func:`defects_of` found in a blurred photo."""

    pixels: np.ndarray | None = None
    """The pixels (H, W bool) left out of its data term; None: none."""
    too_many: int = 0
    """Where more pixels than :data:`DEFECTS_UP_TO` allows are sharper than the kernel, their count
    (none left out: the kernel may be wider than the photo's blur); 0 else."""
    maximum: float = 1.0
    """Where a defect holds the photo's maximum, the brightest pixel left's share of it
    (:func:`defect_scale`): the scene's range within the photo's; 1.0 else."""

    @property
    def count(self) -> int:
        return 0 if self.pixels is None else int(self.pixels.sum())


def defects_of(observations: Sequence[Observation], *, preset: str | None, defects: Any = "auto") -> Defects:
    """The defects (:func:`impossible_pixels`) of one blurred photo alone fitted by squared error
    (:func:`linr.problem.blurred_alone`), with ``defects`` 'auto' and no preset named (the paper's
    fits every pixel); none else, or where more than :data:`DEFECTS_UP_TO` of its pixels (and
    more than 16) would be (:attr:`Defects.too_many` then counts them)."""
    from .operators import LeftOut, inner_operator
    from .problem import blurred_alone

    if check_defects(defects) == "off" or preset is not None or not blurred_alone(observations):
        return Defects()
    photo = observations[0]
    kept = photo.operator.kept if isinstance(photo.operator, LeftOut) else None
    kernel = inner_operator(photo.operator).kernel.detach().cpu().numpy()
    found = impossible_pixels(photo.image, kernel, kept=kept)
    if found is None:
        return Defects()
    count, pixels = int(found.sum()), int(found.size if kept is None else np.count_nonzero(kept))
    if count > max(16, DEFECTS_UP_TO * pixels):
        return Defects(too_many=count)
    return Defects(pixels=found, maximum=defect_scale(photo.image, found, kept))


def without_defects(observations: Sequence[Observation], defects: Defects, *,
                    rescale: bool = True) -> tuple[list[Observation], float]:
    """The one blurred photo with its ``defects`` left out of its data term (beside its transparent
    pixels, if any: :func:`linr.kinds.left_out_also`, their values filled from the pixels kept) and, with ``rescale``, divided by :attr:`Defects.maximum` (a hot pixel its white); with
    that factor (1.0: not divided). Unchanged where there is none."""
    import dataclasses

    from .kinds import left_out_also

    if defects.pixels is None:
        return list(observations), 1.0
    scale = defects.maximum if rescale else 1.0
    photo = left_out_also(observations[0], defects.pixels)
    if scale != 1.0:
        photo = dataclasses.replace(photo, image=(photo.image / np.float32(scale)).astype(np.float32))
    return [photo], scale


def restored_scale(result: Any, defects: Defects, scale: float) -> Any:
    """``result`` (of :func:`without_defects`' observations) back on the photo's scale (multiplied
    by ``scale``, :meth:`linr.fit.FitResult.scaled`), with ``settings['defects']`` saying what
    was left out, or that too many pixels were too sharp to be defects. Unchanged where neither."""
    if scale != 1.0:
        result.scaled(scale)
    if defects.count:
        result.settings["defects"] = {
            "left_out": defects.count,
            "why": "sharper than the blur allows: a hot pixel or a cosmic ray's track, no part of the scene",
            **({"maximum": float(defects.maximum), "rescaled": scale != 1.0} if defects.maximum != 1.0 else {})}
    elif defects.too_many:
        result.settings["defects"] = {
            "left_out": 0, "sharper_than_kernel": defects.too_many,
            "why": f"more than {DEFECTS_UP_TO:.1%} of the pixels are sharper than the kernel allows: it may be wider "
                   "than the photo's blur; none left out"}
    return result


SCALE_NOTE = ("on the photo's range without its defects (a hot pixel or a cosmic ray was its maximum): the "
              "image and the reference divided by {scale:.4g}")
"""What a result's metrics say where :func:`measured_scale` is not 1."""


def measured_scale(settings: dict[str, Any], range_rule: str | None = "data") -> float:
    """What a result's image, its reference and its inputs are divided by before they are measured
    (``settings``: the result's): 1.0, but where a defect was the photo's maximum and that maximum
    was the photo's white (``range_rule`` 'data': a float file mapped by its own maximum, as
    :func:`linr.tasks.restore` takes a photo it is given), the brightest pixel left's share of it
    (:attr:`Defects.maximum`), so that PSNR is on the scene's range, not the hot pixel's (a field
    measured at 30 dB on its counts printed 60); a range of the type's, or given, is kept."""
    return float(settings.get("defects", {}).get("maximum", 1.0)) if range_rule == "data" else 1.0
