"""Measuring the noise of an image: the Gaussian noise level the defaults read off noisy inputs
(the discrepancy stop, the weights of noisy frames, ``tv:auto``)."""

from __future__ import annotations

import numpy as np

__all__ = ["estimate_noise_sigma", "floored_noise_sigma", "MIN_MEASURED_SIGMA", "MIN_SIDE"]

MIN_MEASURED_SIGMA = 0.5
"""Floor of a measured noise level (0-255 scale) where a weight is set from it (8-bit rounding
alone is 0.29): a frame measured as noise-free must not take all the weight, nor get no prior."""

# Daubechies-2 decomposition high-pass filter (the wavelet scikit-image's estimate_sigma uses).
_DB2_HIGH = np.array([-0.48296291314469025, 0.836516303737469, -0.22414386804185735, -0.12940952255092145])
MIN_SIDE = len(_DB2_HIGH)
"""The smallest side (pixels) on which :func:`estimate_noise_sigma` measures."""


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Gaussian noise std of an (H, W[, C]) image on [0, 1] (result on the same scale).

    Donoho & Johnstone's wavelet estimator: median(|d|) / 0.6745 over the finest diagonal
    detail coefficients ``d`` of an orthonormal db2 transform, per channel, then averaged (as
    ``skimage.restoration.estimate_sigma(..., average_sigmas=True)``, without PyWavelets; only
    fully interior coefficients are used, so there is no boundary padding).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image {image.shape[0]}x{image.shape[1]} is too small to estimate noise")
    g = _DB2_HIGH[::-1]  # convolution = correlation with the reversed filter
    sigmas = []
    for ch in np.moveaxis(image, -1, 0):
        rows = sum(g[k] * ch[k : ch.shape[0] - len(g) + 1 + k] for k in range(len(g)))[::2]
        dd = sum(g[k] * rows[:, k : rows.shape[1] - len(g) + 1 + k] for k in range(len(g)))[:, ::2]
        sigmas.append(np.median(np.abs(dd)) / 0.6745)
    return float(np.mean(sigmas))


def floored_noise_sigma(image: np.ndarray) -> float:
    """:func:`estimate_noise_sigma` of an image on [0, 1], floored at :data:`MIN_MEASURED_SIGMA`
    (0-255 scale): the level weights and refiners are set from, so a photo measured as
    noise-free still gets a finite weight and a little smoothing."""
    return max(estimate_noise_sigma(image), MIN_MEASURED_SIGMA / 255.0)
