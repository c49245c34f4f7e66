"""Measuring the noise of an image: the Gaussian noise level the defaults read off noisy inputs
(the discrepancy stop, the weights of noisy frames, ``tv:auto``)."""

from __future__ import annotations

import numpy as np

__all__ = ["estimate_noise_sigma", "floored_noise_sigma", "MIN_MEASURED_SIGMA", "MIN_SIDE", "ROWS_AT_ONCE_SAMPLES"]

MIN_MEASURED_SIGMA = 0.5
"""Floor of a measured noise level (0-255 scale) where a weight is set from it (8-bit rounding
alone is 0.29): a frame measured as noise-free must not take all the weight, nor get no prior."""

LEVELS_EQUAL_WITHIN = 1.25
"""Noisy frames whose measured noise levels (std) are all within this ratio are weighed equally:
between 8 frames of one noise level (sigma 10, 25 or 50) the wavelet estimate itself varied by up
to 1.05x on 128 px crops of five set9 images, 1.09x at 64 px, 1.19x at 32 px (1.5x at 16 px), so
smaller differences are the estimate's, not the frames'."""

# Daubechies-2 decomposition high-pass filter (the wavelet scikit-image's estimate_sigma uses).
_DB2_HIGH = np.array([-0.48296291314469025, 0.836516303737469, -0.22414386804185735, -0.12940952255092145])
MIN_SIDE = len(_DB2_HIGH)
"""The smallest side (pixels) on which :func:`estimate_noise_sigma` measures."""


ROWS_AT_ONCE_SAMPLES = 2**20
"""About how many samples of an image :func:`estimate_noise_sigma` converts to float64 at a time
(a band of rows of one channel): its memory stays a few tens of MB over the image and the
coefficients it takes the median of, whatever the image's size."""


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Gaussian noise std of an (H, W[, C]) image on [0, 1] (result on the same scale).

    Donoho & Johnstone's wavelet estimator: median(|d|) / 0.6745 over the finest diagonal
    detail coefficients ``d`` of an orthonormal db2 transform, per channel, then averaged (as
    ``skimage.restoration.estimate_sigma(..., average_sigmas=True)``, without PyWavelets; only
    fully interior coefficients are used, so there is no boundary padding). Unlike scikit-image's,
    coefficients that are exactly zero are kept: on a photo with flat, noise-free areas (a
    letterbox, fully clipped blocks) the two differ, scikit-image's leaving such areas out; every
    level the defaults were tuned with is this one's (a noisy photo's transparent pixels are
    filled before it is measured: :mod:`linr.transparent`).

    Only the kept (every other row and column) coefficients are computed, a band of rows of one
    channel at a time (:data:`ROWS_AT_ONCE_SAMPLES`), each as the same float64 sum over the
    filter's taps in tap order as over the whole image: the same value, in a quarter of an
    image's float64 coefficients per channel instead of several float64 copies of the whole image
    (about 3 GB at 8192 x 8192 RGB).
    """
    image = np.asarray(image)
    if image.ndim == 2:
        image = image[..., None]
    h, w = image.shape[:2]
    if min(h, w) < MIN_SIDE:
        raise ValueError(f"image {h}x{w} is too small to estimate noise")
    taps = len(_DB2_HIGH)
    g = _DB2_HIGH[::-1]  # convolution = correlation with the reversed filter
    rows_out, cols_out = (h - taps) // 2 + 1, (w - taps) // 2 + 1  # the kept (even) positions
    band = max(1, ROWS_AT_ONCE_SAMPLES // (2 * w))  # kept rows a band gives
    sigmas = []
    for c in range(image.shape[2]):
        dd = np.empty((rows_out, cols_out))
        for r0 in range(0, rows_out, band):
            n = min(band, rows_out - r0)
            ch = image[2 * r0 : 2 * (r0 + n - 1) + taps, :, c].astype(np.float64)
            rows = sum(g[k] * ch[k : k + 2 * n - 1 : 2] for k in range(taps))
            dd[r0 : r0 + n] = sum(g[k] * rows[:, k : k + 2 * cols_out - 1 : 2] for k in range(taps))
        sigmas.append(np.median(np.abs(dd, out=dd)) / 0.6745)
    return float(np.mean(sigmas))


def floored_noise_sigma(image: np.ndarray) -> float:
    """:func:`estimate_noise_sigma` of an image on [0, 1], floored at :data:`MIN_MEASURED_SIGMA`
    (0-255 scale): the level weights and refiners are set from, so a photo measured as
    noise-free still gets a finite weight and a little smoothing."""
    return max(estimate_noise_sigma(image), MIN_MEASURED_SIGMA / 255.0)
