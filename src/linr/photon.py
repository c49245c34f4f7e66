"""Photon-noise levels from one image: how many photons a white pixel collected (``peak``) and
the camera's read noise, for the Poisson and Poisson-Gaussian data terms (:mod:`linr.fidelity`).

For ``y = Poisson(peak x) / peak + N(0, r^2)`` the noise variance at a pixel of mean ``x`` is
``x / peak + r^2``: a straight line in ``x``. :func:`estimate_photon_noise` measures it the way
Foi et al. (2008) do, simplified: over non-overlapping 2x2 blocks, the block mean estimates
``x`` and the diagonal difference ``(a - b - c + d) / 2`` (blind to any linear gradient, of
variance exactly the noise variance) estimates the noise; blocks are binned by mean, each bin's
variance is taken with outliers (edges) left out and a line is
fitted through the bins (bins where values are clipped at 1, or with read noise at 0, left
out: without read noise a 0 is a true count). numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PhotonNoise", "estimate_photon_noise", "MIN_BLOCKS"]

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
    if used < MIN_BLOCKS or len(groups) < 3:
        raise ValueError(f"too few unclipped pixels to estimate the photon level ({used} 2x2 "
                         f"blocks in {len(groups)} brightness bins; {MIN_BLOCKS} blocks in 3 bins "
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
