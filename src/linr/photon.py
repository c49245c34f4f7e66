"""Photon-noise levels from one image: how many photons a white pixel collected (``peak``) and
the camera's read noise, for the Poisson and Poisson-Gaussian data terms (:mod:`linr.fidelity`).

For ``y = Poisson(peak x) / peak + N(0, r^2)`` the noise variance at a pixel of mean ``x`` is
``x / peak + r^2``: a straight line in ``x``. :func:`estimate_photon_noise` measures it the way
Foi et al. (2008) do, simplified: over non-overlapping 2x2 blocks, the block mean estimates
``x`` and the diagonal difference ``(a - b - c + d) / 2`` (blind to any linear gradient, of
variance exactly the noise variance) estimates the noise; blocks are binned by mean, each bin's
variance is taken with outliers (edges) left out and a line is
fitted through the bins (bins where values are clipped at 1, or with read noise at 0, left
out: without read noise a 0 is a true count).

:class:`AnscombeTransform` is the generalised Anscombe transform (Anscombe 1948; Murtagh, Starck
and Bijaoui 1995) that turns such noise into noise of std about 1 everywhere, with Makitalo and
Foi's closed-form approximation of its exact unbiased inverse (2011, 2013), so that a restoration
for Gaussian noise can restore photon-limited images (:mod:`linr.stabilise`). numpy only.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .clipping import table_slope

__all__ = ["PhotonNoise", "estimate_photon_noise", "MIN_BLOCKS", "AnscombeTransform"]

MIN_BLOCKS = 256
"""Fewest usable 2x2 blocks (all channels together) for an estimate: a 32x32 grey image."""
CLIPPED_SHARE = 0.1
"""A brightness bin with more than this share of blocks touching a clipped value is left out."""


@dataclass(frozen=True)
class PhotonNoise:
    peak: float
    """Expected photon count of a white pixel (1 / the slope of variance against mean)."""
    read_sigma: float
    """Std of the signal-independent (read) noise on the [0, 1] scale (0 when not fitted)."""
    blocks: int
    """2x2 blocks the estimate used."""


def _blocks(image: np.ndarray, *, zero_clips: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per 2x2 block: its mean, its diagonal difference, and whether a pixel of it is clipped:
    at 1, or (``zero_clips``) at 0. Without read noise a 0 is a count of no photons, not a
    clipped value (counts cannot fall below it), so it biases nothing."""
    h, w = image.shape[0] // 2 * 2, image.shape[1] // 2 * 2
    means, details, clipped = [], [], []
    for ch in np.moveaxis(image[:h, :w], -1, 0):
        a, b = ch[0::2, 0::2], ch[0::2, 1::2]
        c, d = ch[1::2, 0::2], ch[1::2, 1::2]
        quad = np.stack([a, b, c, d])
        means.append(quad.mean(axis=0).ravel())
        details.append(((a - b - c + d) / 2).ravel())
        clipped.append((((quad <= 0) & zero_clips) | (quad >= 1)).any(axis=0).ravel())
    return np.concatenate(means), np.concatenate(details), np.concatenate(clipped)


def _variance(details: np.ndarray) -> float:
    """Mean square of the differences, leaving out outliers (edges): those beyond 2.5 times the
    90th percentile of their magnitudes (about 4 standard deviations of Gaussian noise; a
    percentile, not the median, so that it stays usable on the few discrete values of low
    photon counts)."""
    size = np.abs(details)
    limit = 2.5 * np.quantile(size, 0.9)
    return float(np.mean(details[size <= limit] ** 2)) if limit > 0 else 0.0


def estimate_photon_noise(image: np.ndarray, *, read_noise: bool = True, peak: float | None = None,
                          read_sigma: float | None = None, bins: int = 16) -> PhotonNoise:
    """The photon level (and, with ``read_noise``, the read noise) of an (H, W[, C]) image on [0, 1].

    A known ``peak`` or ``read_sigma`` (on [0, 1]) is kept and only the other is fitted. The
    estimate is rough (within about 10% for the peak on 128 px crops of photos at 10 to 100
    photons; the read noise, a small share of the variance at low peaks, much less surely).
    Raises ValueError (with a message for the user) when the image has too few usable blocks
    or shows no noise that grows with brightness.
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    means, details, clipped = _blocks(image, zero_clips=read_noise)
    order = np.argsort(means)
    groups = np.array_split(order, max(1, min(bins, means.size // 64)))
    # bins where many values hit 0 or 1 are biased by the clipping: left out
    groups = [g for g in groups if clipped[g].mean() <= CLIPPED_SHARE]
    used = sum(len(g) for g in groups)
    # one bin more than the line's fitted parameters (a line through the origin has one): in a
    # photo clipped at 10 photons the bright bins are left out, and 3 were too many to ask
    needed = max(2, 1 + (peak is None) + (read_noise and read_sigma is None))
    if used < MIN_BLOCKS or len(groups) < needed:
        raise ValueError(f"too few unclipped pixels to estimate the photon level ({used} 2x2 "
                         f"blocks in {len(groups)} brightness bins; {MIN_BLOCKS} blocks in {needed} bins "
                         "needed)")
    m = np.array([means[g].mean() for g in groups])
    v = np.array([_variance(details[g]) for g in groups])
    n = np.array([len(g) for g in groups], dtype=np.float64)

    def slope_with(offset: float) -> float:
        return float(np.sum(n * m * (v - offset)) / np.sum(n * m * m))

    if peak is not None:
        slope = 1.0 / peak
        offset = max(0.0, float(np.sum(n * (v - slope * m)) / np.sum(n))) if read_noise else 0.0
    elif read_sigma is not None or not read_noise:
        offset = (read_sigma or 0.0) ** 2 if read_noise else 0.0
        slope = slope_with(offset)
    else:
        design = np.stack([m, np.ones_like(m)], axis=1) * np.sqrt(n)[:, None]
        (slope, offset), *_ = np.linalg.lstsq(design, v * np.sqrt(n), rcond=None)
        if offset < 0:  # no measurable read noise: the line through the origin
            slope, offset = slope_with(0.0), 0.0
    if read_sigma is not None:
        offset = read_sigma**2
    if not slope > 0:
        raise ValueError("the noise does not grow with brightness (no photon noise found)")
    return PhotonNoise(peak=float(1.0 / slope), read_sigma=float(np.sqrt(offset)), blocks=int(used))


_ROOT_3_2 = math.sqrt(1.5)
LOWEST_TRANSFORMED = 0.8
"""Transformed values below this are inverted as this (where the closed-form inverse turns;
the inverse of a transformed value this low is about 0 counts)."""


BRIGHTEST = 1.0
"""In a photo clipped at white, the brightest rate the inverse returns, in peaks: how far beyond
white a clipped pixel was its file does not say, and the restored image is written in its range."""
CLIP_GRID = 4097
"""Rates on the grid a clipped photo's inverse is tabulated on (even in the rate's square root:
as fine as a hundredth of a photon in the dark at any peak)."""


@functools.lru_cache(maxsize=8)
def _clipped_table(peak: float, read: float, white: bool, black: bool) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`AnscombeTransform._clipped_table`, computed once per transform."""
    from scipy.special import gammaincc, gammaln

    shift = read ** 2
    lo = shift if black else 0.0
    hi = peak + shift if white else math.inf
    rates = np.linspace(0.0, math.sqrt(BRIGHTEST * peak), CLIP_GRID) ** 2
    rates[-1] = BRIGHTEST * peak  # not a rounding above it
    means = np.empty_like(rates)
    chunk = 64
    for start in range(0, CLIP_GRID, chunk):
        mu = np.maximum(rates[start:start + chunk] + shift, 1e-12)[:, None]
        reach = 12.0 * math.sqrt(float(mu.max())) + 12.0
        first = max(0, math.floor(float(mu.min()) - reach))
        last = math.ceil(float(mu.max()) + reach)
        if math.isfinite(hi):
            last = min(last, math.ceil(hi) - 1)
        k = np.arange(first, last + 1, dtype=np.float64)[None, :]
        total = np.zeros(mu.shape[0])
        if k.size:
            pmf = np.exp(k * np.log(mu) - mu - gammaln(k + 1))
            total = (pmf * 2.0 * np.sqrt(np.clip(k, lo, hi) + 0.375)).sum(axis=1)
        if math.isfinite(hi):  # P(N >= hi) = 1 - F(ceil(hi) - 1), all at hi
            total += (1.0 - gammaincc(math.ceil(hi), mu[:, 0])) * 2.0 * math.sqrt(hi + 0.375)
        means[start:start + chunk] = total
    means, rates = np.maximum.accumulate(means), rates
    means.flags.writeable = False
    rates.flags.writeable = False
    return means, rates


@dataclass(frozen=True)
class AnscombeTransform:
    """The generalised Anscombe transform of an image on [0, 1] that is ``counts / peak`` plus
    Gaussian read noise of ``read`` counts: ``D = 2 sqrt(peak x + 3/8 + read^2)``, whose noise
    has std about 1 wherever the counts are not too few (a few photons), divided by ``top`` so
    that the images restored in its place lie on [0, 1] (noise std ``1 / top``).

    :meth:`inverse` is the closed-form approximation of the exact unbiased inverse (Makitalo and
    Foi: the mean of the transformed noisy value, inverted, not the algebraic inverse, which
    biases dark pixels by about a quarter of a photon), minus ``read^2``; counts below 0 are 0.
    A photo clipped at ``white`` (an 8- or 16-bit file whose counts reached the peak; or, with
    read noise, at ``black``: its negative values written as 0) has another mean: there the
    inverse is the exact one of the clipped counts, the rate whose transformed clipped counts
    have that mean, tabulated over rates up to :data:`BRIGHTEST` peaks (with read noise, of the
    shifted-Poisson model of :class:`linr.fidelity.PoissonGaussian`: ``N ~ Poisson(rate + s)``,
    ``s = read^2``, clipped to ``[s, peak + s]``).
    """

    peak: float
    """Expected photons of a white pixel."""
    read: float = 0.0
    """Std of the Gaussian read noise, in photons (counts)."""
    top: float = 1.0
    """The transformed value restored as 1."""
    white: bool = False
    """The photo was clipped at white (the peak): the inverse undoes the clipping's bias."""
    black: bool = False
    """The photo's negative values (read noise in the dark) were clipped to 0."""

    @classmethod
    def fitted_to(cls, images: "list[np.ndarray]", peak: float, read: float = 0.0, *,
                  white: bool = False) -> "AnscombeTransform":
        """The transform whose ``top`` is the largest transformed value of ``images``; with read
        noise, clipped at black where some value is exactly 0 (unclipped read noise all but never
        gives one)."""
        plain = cls(float(peak), float(read), 1.0)
        top = max(float(plain.forward(np.max(image))) for image in images)  # the transform rises
        black = read > 0 and any(float(np.min(image)) == 0.0 for image in images)
        return cls(float(peak), float(read), top, bool(white), bool(black))

    def forward(self, image: np.ndarray) -> np.ndarray:
        """The transformed image divided by ``top`` (float64)."""
        counts = np.asarray(image, dtype=np.float64) * self.peak
        return 2.0 * np.sqrt(np.maximum(counts + 0.375 + self.read ** 2, 0.0)) / self.top

    def inverse(self, restored: np.ndarray) -> np.ndarray:
        """The image on [0, 1] (counts / peak, float64) whose transformed noisy values have the
        mean ``restored`` (on the forward's scale)."""
        if self.white or self.black:
            means, rates = self._clipped_table()
            return np.interp(np.asarray(restored, dtype=np.float64) * self.top, means, rates) / self.peak
        d = np.maximum(np.asarray(restored, dtype=np.float64) * self.top, LOWEST_TRANSFORMED)
        return np.maximum(self._closed_form_counts(d), 0.0) / self.peak

    def _closed_form_counts(self, d: np.ndarray) -> np.ndarray:
        """Makitalo and Foi's closed-form unbiased inverse of transformed values ``d`` (at least
        :data:`LOWEST_TRANSFORMED`), less the read noise's variance: counts, below 0 where dark."""
        return (d * d / 4 + _ROOT_3_2 / (4 * d) - 11 / (8 * d ** 2) + 5 * _ROOT_3_2 / (8 * d ** 3)
                - 0.125 - self.read ** 2)

    def _clipped_table(self) -> tuple[np.ndarray, np.ndarray]:
        """The mean transformed value of clipped counts at each rate of a grid up to
        ``BRIGHTEST * peak`` (rising with the rate, so that interpolating backwards inverts it),
        and the grid: ``E[2 sqrt(clip(N, lo, hi) + 3/8)]`` for ``N ~ Poisson(rate + s)``,
        ``s = read^2``, ``hi = peak + s`` at white (else no upper clip) and ``lo = s`` at black
        (else 0). Summed over the counts within 12 std of each rate; the rest of the mass
        beyond ``hi`` is taken at ``hi`` (before ``lo``, the clip makes every count ``lo``)."""
        return _clipped_table(self.peak, self.read, self.white, self.black)

    def slope(self, restored: np.ndarray) -> np.ndarray:
        """d inverse / d restored at ``restored`` (0 where the inverse is flat): how a spread of
        restored values maps to one of image values."""
        raw = np.asarray(restored, dtype=np.float64) * self.top
        if self.white or self.black:  # d rate / d mean of the table's segment it falls in
            means, rates = self._clipped_table()
            return table_slope(means, rates, raw) * self.top / self.peak
        d = np.maximum(raw, LOWEST_TRANSFORMED)
        slope = (d / 2 - _ROOT_3_2 / (4 * d ** 2) + 11 / (4 * d ** 3) - 15 * _ROOT_3_2 / (8 * d ** 4))
        live = (raw > LOWEST_TRANSFORMED) & (self._closed_form_counts(d) > 0)
        return np.where(live, slope, 0.0) * self.top / self.peak

    def describe(self) -> dict[str, float | bool]:
        return {"peak": self.peak, "read_noise_photons": self.read, "top": self.top, "clipped_at_white": self.white,
                "clipped_at_black": self.black}
