"""Undoing the bias that clipping leaves in a restored photo with Gaussian noise.

A photo saved to a file is clipped to [0, 1]: its noise cannot take a pixel below black or above
white, so near either end the noisy values' mean is pulled inwards (a pixel of 0.95 under noise of
std 25/255 averages about 0.93 in the file). A restoration estimates that mean, not the pixel: the
expected clipped value ``F(x) = E[clip(x + n, 0, 1)]``, ``n ~ N(0, sigma^2)``, which rises with
``x``. :class:`ClippedGaussian` maps a restored image back through ``F``'s inverse (Foi's
treatment of clipped noisy images: restore the clipped photo, then invert its expectation), at the
ends where the photo was clipped, and caps the result at them. For the weighted mean of frames
of different noise levels, ``F`` is the same weighted mean of their ``F``. It has the interface
of :class:`linr.photon.AnscombeTransform` (``forward``: the photo as it is), through which
:mod:`linr.stabilise` restores photos.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ClippedGaussian", "clipped_gaussian_mean", "clipped_ends_of", "clipped_variance", "unclipped_level",
           "table_slope"]

GRID = 4097
"""Points on [0, 1] at which the inverse is tabulated (interpolated linearly between)."""


def _positive_part_mean(d: np.ndarray) -> np.ndarray:
    """``E[(Z - d)+]`` for a standard normal ``Z``: ``phi(d) - d (1 - Phi(d))``."""
    from scipy.special import ndtr

    return np.exp(-0.5 * d * d) / math.sqrt(2.0 * math.pi) - d * ndtr(-d)


def clipped_gaussian_mean(x: np.ndarray, sigma: float, *, black: bool = True, white: bool = True) -> np.ndarray:
    """``E[clip(x + n)]`` for ``n ~ N(0, sigma^2)`` (float64), clipped at black (0) and / or
    white (1) as asked."""
    x = np.asarray(x, dtype=np.float64)
    if sigma <= 0:
        return np.clip(x, 0.0 if black else -np.inf, 1.0 if white else np.inf)
    mean = x.copy()
    if white:
        mean -= sigma * _positive_part_mean((1.0 - x) / sigma)
    if black:
        mean += sigma * _positive_part_mean(x / sigma)
    return mean


def clipped_variance(value: np.ndarray, sigma: float, *, black: bool = True, white: bool = True) -> np.ndarray:
    """The variance of ``clip(value + n)``, ``n`` normal with std ``sigma`` (> 0), clipped at
    black (0) and / or white (1) as asked, per entry of ``value`` (the clean value; float64)."""
    from scipy.special import ndtr

    x = np.asarray(value, np.float64)
    x = np.clip(x, 0.0 if black else -np.inf, 1.0 if white else np.inf)
    root = math.sqrt(2 * math.pi)
    if black:
        a = -x / sigma
        pa, below = np.exp(-0.5 * a * a) / root, ndtr(a)
        apa = a * pa
    else:
        pa, apa, below = 0.0, 0.0, 0.0
    if white:
        b = (1.0 - x) / sigma
        pb = np.exp(-0.5 * b * b) / root
        bpb, above = b * pb, 1.0 - ndtr(b)
    else:
        pb, bpb, above = 0.0, 0.0, 0.0
    inside = 1.0 - below - above
    mean = x * inside + sigma * (pa - pb) + above
    square = x * x * inside + 2 * x * sigma * (pa - pb) + sigma * sigma * (inside + apa - bpb) + above
    return np.maximum(square - mean * mean, 0.0)


def unclipped_level(value: np.ndarray, measured: float, *, black: bool = True, white: bool = True,
                    counts: np.ndarray | None = None) -> float:
    """The std of unclipped noise whose clipped variance (:func:`clipped_variance`, at the ends
    asked), averaged over ``value`` (the clean image's estimate; ``counts``: how many entries
    each value stands for), is ``measured`` squared: the level measured on a photo clipped
    there, which clipping lowers, undone (by bisection; ``measured`` where no value lies near a
    clipped end, at most 4 x ``measured``)."""
    target = measured * measured

    def variance(sigma: float) -> float:
        return float(np.average(clipped_variance(value, sigma, black=black, white=white), weights=counts))

    low, high = measured, 4.0 * measured
    if variance(high) < target:
        return high
    for _ in range(40):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if variance(middle) < target else (low, middle)
    return high


LEVEL_BINS = 4096
"""The restored image's values are counted in this many bins of its range, whose centres set the
unclipped level (a mean over the image: one pass over it, then each bisection step over the bins
instead of every entry, which took about 3 s at 512 x 512 RGB)."""


@functools.lru_cache(maxsize=16)
def _table(sigmas: tuple[float, ...], weights: tuple[float, ...], black: bool,
           white: bool) -> tuple[np.ndarray, np.ndarray]:
    """The weighted mean of the clipped means on a grid of [0, 1], and the grid."""
    grid = np.linspace(0.0, 1.0, GRID)
    means = sum(w * clipped_gaussian_mean(grid, s, black=black, white=white) for s, w in zip(sigmas, weights))
    means = np.maximum.accumulate(means)  # it rises; rounding must not make it fall
    means.flags.writeable = False
    grid.flags.writeable = False
    return means, grid


SPIKE_WIDTH = 1.0 / 255.0
"""How far inside an end the values a clipped end must outnumber lie (one 8-bit level)."""
ROWS_AT_ONCE = 256
"""Rows counted at a time (a large photo's comparisons stay a band's)."""


def table_slope(means: np.ndarray, grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """d grid / d means of the segment of a rising table (``means`` at the points ``grid``,
    inverted by interpolating backwards) each of ``values`` falls in: the slope of that inverse;
    0 outside the table (where interpolating caps it)."""
    steps = np.diff(means)
    ratio = np.divide(np.diff(grid), steps, out=np.zeros_like(steps), where=steps > 0)
    at = np.clip(np.searchsorted(means, values, side="right") - 1, 0, len(ratio) - 1)
    return np.where((values > means[0]) & (values < means[-1]), ratio[at], 0.0)


def clipped_ends_of(image: np.ndarray) -> tuple[bool, bool]:
    """Whether a noisy photo on [0, 1] was clipped at black and at white: more than one entry
    is exactly 0 (1), and at least as many as lie within :data:`SPIKE_WIDTH` inside that end.
    Clipped noise piles up on the end, a spike above the values next to it (at sigma 15, a pixel
    3 sigma from white is clipped 4-5 times as often as it lands in the 8-bit level below); an
    image scaled to its own range (a float file's) reaches each end once or a few times, fewer
    than the values beside it."""
    image = np.asarray(image)
    if not image.size:
        return False, False
    counts = np.zeros(4, dtype=np.int64)  # at 0, just above 0, at 1, just below 1
    for start in range(0, image.shape[0], ROWS_AT_ONCE):
        band = image[start:start + ROWS_AT_ONCE]
        counts += [np.count_nonzero(band == 0.0), np.count_nonzero((band > 0.0) & (band <= SPIKE_WIDTH)),
                   np.count_nonzero(band == 1.0), np.count_nonzero((band < 1.0) & (band >= 1.0 - SPIKE_WIDTH))]
    black = counts[0] > 1 and counts[0] >= counts[1] and float(np.min(image)) >= 0.0
    white = counts[2] > 1 and counts[2] >= counts[3] and float(np.max(image)) <= 1.0
    return bool(black), bool(white)


def _histogram(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The counts of ``image``'s values in :data:`LEVEL_BINS` bins of its range, and the bins'
    edges, a band of rows at a time."""
    image = np.asarray(image)
    low, high = float(np.min(image)), float(np.max(image))
    high = max(high, low + LEVEL_BINS * 1e-6)  # a (nearly) constant image: bins of a millionth
    counts = np.zeros(LEVEL_BINS, dtype=np.int64)
    for start in range(0, image.shape[0], ROWS_AT_ONCE):  # float64: bins finer than float32's steps
        band = np.asarray(image[start:start + ROWS_AT_ONCE], dtype=np.float64)
        counts += np.histogram(band, bins=LEVEL_BINS, range=(low, high))[0]
    return counts, np.linspace(low, high, LEVEL_BINS + 1)


@dataclass(frozen=True)
class ClippedGaussian:
    """The clipping of a photo (or of the weighted mean of frames) with Gaussian noise of
    ``sigmas`` (0-1 scale), weighted by ``weights`` (summing to 1), at black and / or white: its
    restoration is mapped back through the inverse of the expected clipped value."""

    sigmas: tuple[float, ...]
    weights: tuple[float, ...]
    black: bool = True
    white: bool = True
    measured: tuple[float, ...] | None = None
    """The levels measured on the photos, where ``sigmas`` are those levels with the clipping's
    lowering undone (:meth:`at_unclipped_levels`), for the record; None: ``sigmas`` are measured."""

    def __post_init__(self) -> None:
        if len(self.sigmas) != len(self.weights) or not self.sigmas or \
                (self.measured is not None and len(self.measured) != len(self.sigmas)):
            raise ValueError("one weight per noise level, at least one")
        if not math.isclose(sum(self.weights), 1.0, rel_tol=1e-6):
            raise ValueError(f"weights must sum to 1, got {sum(self.weights)}")

    @property
    def active(self) -> bool:
        """Whether it changes anything: some end was clipped."""
        return self.black or self.white

    def at_unclipped_levels(self, restored: np.ndarray) -> "ClippedGaussian":
        """This clipping with each measured level raised to the unclipped noise's that clipping
        at this photo's ends lowered to it (:func:`unclipped_level`), the clean image estimated as
        ``restored`` mapped back at the measured levels (its values counted in :data:`LEVEL_BINS`
        bins)."""
        if not self.active or self.measured is not None:
            return self
        counts, edges = _histogram(restored)
        clean = self.inverse(0.5 * (edges[1:] + edges[:-1]))[counts > 0]
        counts = counts[counts > 0]
        levels = tuple(unclipped_level(clean, s, black=self.black, white=self.white, counts=counts)
                       for s in self.sigmas)
        return dataclasses.replace(self, sigmas=levels, measured=self.sigmas)

    def forward(self, image: np.ndarray) -> np.ndarray:
        """The photo as it is restored: itself (float64)."""
        return np.asarray(image, dtype=np.float64)

    def inverse(self, restored: np.ndarray) -> np.ndarray:
        """The image (float64) whose expected clipped value is ``restored``: at a clipped end
        capped at it; beyond an unclipped end as it is."""
        restored = np.asarray(restored, dtype=np.float64)
        if not self.active:
            return restored.copy()
        means, grid = _table(self.sigmas, self.weights, self.black, self.white)
        out = np.interp(restored, means, grid)  # capped at 0 and 1 beyond the table
        if not self.black:  # below the table: the clipped white end is far off; as it is
            out = np.where(restored < means[0], restored + (grid[0] - means[0]), out)
        if not self.white:
            out = np.where(restored > means[-1], restored + (grid[-1] - means[-1]), out)
        return out

    def slope(self, restored: np.ndarray) -> np.ndarray:
        """d inverse / d restored at ``restored``: how a spread of restored values maps to one of
        image values (0 where the inverse is capped)."""
        restored = np.asarray(restored, dtype=np.float64)
        if not self.active:
            return np.ones_like(restored)
        means, grid = _table(self.sigmas, self.weights, self.black, self.white)
        beyond = ((restored <= means[0]) & (not self.black)) | ((restored >= means[-1]) & (not self.white))
        return np.where(beyond, 1.0, table_slope(means, grid, restored))

    def describe(self) -> dict[str, object]:
        return {"clipped_at_black": self.black, "clipped_at_white": self.white,
                "sigmas": [round(s * 255, 3) for s in self.sigmas],
                **({} if self.measured is None else {"measured_sigmas": [round(s * 255, 3) for s in self.measured]}),
                "weights": [round(w, 4) for w in self.weights]}
