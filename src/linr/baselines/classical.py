"""Classical references: scikit-image restorations, PIL upscaling and (optionally) BM3D.

Images are (H, W, C) float arrays on [0, 1]; ``sigma`` is on the 0-255 scale. Parameters are
fixed rules stated here (not tuned per image), so the numbers are what a user gets by default.
Each function returns a :class:`~linr.baselines.BaselineResult` whose ``fit_s`` times the
restoration alone.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np

from . import BaselineResult, BaselineUnavailable

__all__ = [
    "TV_WEIGHT_PER_SIGMA",
    "NLM_H_PER_SIGMA",
    "WIENER_BALANCE",
    "RL_STEPS",
    "tv_denoise",
    "nlm_denoise",
    "bm3d_denoise",
    "check_bm3d",
    "biharmonic_inpaint",
    "wiener_deblur",
    "richardson_lucy_deblur",
    "upscale",
]

TV_WEIGHT_PER_SIGMA = 0.8
"""Chambolle TV weight = 0.8 * sigma/255 (about 0.08 at sigma 25)."""
NLM_H_PER_SIGMA = 0.8
"""Non-local means filter strength h = 0.8 * sigma/255 with the known sigma (scikit-image's
recommendation for ``fast_mode=True``), 5x5 patches, 13x13 search window."""
WIENER_BALANCE = 1e-3
"""Regularisation of scikit-image's Wiener filter (Laplacian prior). Chosen from
{1e-3, 3e-3, 1e-2, 3e-2} on 64-px crops of kodim01 and kodim12 (not in the deblurring set) with
the paper's blur (25x25, sigma 1.6, noise sqrt(2)/255): the smallest was best on both."""
RL_STEPS = 100
"""Richardson-Lucy iterations (of 10, 30, 100, the best on the same two crops)."""


def _timed(fn: Callable[[], np.ndarray], settings: dict[str, Any]) -> BaselineResult:
    t0 = time.perf_counter()
    out = fn()
    fit_s = time.perf_counter() - t0
    return BaselineResult(image=np.asarray(out, dtype=np.float32), fit_s=fit_s, settings=settings)


def _hwc(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3:
        raise ValueError(f"expected an (H, W[, C]) image, got shape {image.shape}")
    return image


def tv_denoise(noisy: np.ndarray, *, sigma: float) -> BaselineResult:
    """Total-variation denoising (Chambolle), weight proportional to the noise level."""
    from skimage.restoration import denoise_tv_chambolle

    weight = TV_WEIGHT_PER_SIGMA * sigma / 255.0
    image = _hwc(noisy)
    return _timed(lambda: denoise_tv_chambolle(image, weight=weight, channel_axis=-1),
                  {"method": "tv_chambolle", "weight": weight})


def nlm_denoise(noisy: np.ndarray, *, sigma: float) -> BaselineResult:
    """Non-local means with the known noise level."""
    from skimage.restoration import denoise_nl_means

    s = sigma / 255.0
    image = _hwc(noisy)
    return _timed(
        lambda: denoise_nl_means(image, patch_size=5, patch_distance=6, h=NLM_H_PER_SIGMA * s,
                                 sigma=s, fast_mode=True, channel_axis=-1),
        {"method": "nl_means", "h": NLM_H_PER_SIGMA * s, "patch_size": 5, "patch_distance": 6},
    )


def check_bm3d() -> None:
    """:class:`BaselineUnavailable` when the optional ``bm3d`` package is not installed (an
    optional extra because of its non-commercial licence); cheap: it is not imported."""
    import importlib.util

    if importlib.util.find_spec("bm3d") is None:
        raise BaselineUnavailable("the optional 'bm3d' package is not installed "
                                  "(pip install 'linr[bm3d]'; non-commercial licence)")


def bm3d_denoise(noisy: np.ndarray, *, sigma: float) -> BaselineResult:
    """CBM3D (``bm3d.bm3d_rgb``) or BM3D per grey image, from the optional ``bm3d`` package
    (:func:`check_bm3d`'s error without it)."""
    check_bm3d()
    import bm3d  # noqa: PLC0415 - optional, heavy, non-commercial licence

    image = _hwc(noisy)
    s = sigma / 255.0
    if image.shape[2] == 3:
        return _timed(lambda: bm3d.bm3d_rgb(image, s), {"method": "cbm3d", "sigma_psd": s})
    return _timed(lambda: bm3d.bm3d(image[..., 0], s)[..., None], {"method": "bm3d", "sigma_psd": s})


def biharmonic_inpaint(image: np.ndarray, mask: np.ndarray) -> BaselineResult:
    """Biharmonic inpainting; ``mask`` (H, W) is True where the pixel was observed."""
    from skimage.restoration import inpaint_biharmonic

    pixels = _hwc(image)
    missing = ~np.asarray(mask, dtype=bool)
    if missing.shape != pixels.shape[:2]:
        raise ValueError(f"mask {missing.shape} does not match image {pixels.shape[:2]}")
    return _timed(lambda: inpaint_biharmonic(pixels, missing, channel_axis=-1),
                  {"method": "biharmonic"})


def _per_channel(image: np.ndarray, fn: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    return np.stack([fn(image[..., c]) for c in range(image.shape[2])], axis=-1)


def wiener_deblur(blurred: np.ndarray, kernel: np.ndarray, *, balance: float = WIENER_BALANCE) -> BaselineResult:
    """Wiener-Hunt deconvolution (scikit-image); FFT-based, so it assumes a circular blur."""
    from skimage.restoration import wiener

    image = _hwc(blurred)
    psf = np.asarray(kernel, dtype=np.float64)
    psf = psf / psf.sum()
    return _timed(lambda: _per_channel(image, lambda ch: wiener(ch, psf, balance, clip=True)),
                  {"method": "wiener", "balance": balance})


def richardson_lucy_deblur(blurred: np.ndarray, kernel: np.ndarray, *, steps: int = RL_STEPS) -> BaselineResult:
    """Richardson-Lucy deconvolution (scikit-image) of a circularly blurred image.

    scikit-image convolves with zero padding, which on a circular blur makes the borders ring
    badly (worse than the blurred input on small crops); the image is therefore padded by wrapping
    half a kernel on each side first and cropped back afterwards.
    """
    from skimage.restoration import richardson_lucy

    image = _hwc(blurred)
    psf = np.asarray(kernel, dtype=np.float64)
    psf = psf / psf.sum()
    ph, pw = psf.shape[0] // 2, psf.shape[1] // 2
    h, w = image.shape[:2]

    def one(ch: np.ndarray) -> np.ndarray:
        padded = np.pad(ch, ((ph, ph), (pw, pw)), mode="wrap")
        return richardson_lucy(padded, psf, num_iter=steps)[ph : ph + h, pw : pw + w]

    return _timed(lambda: _per_channel(image, one),
                  {"method": "richardson_lucy", "steps": steps, "padding": "wrap"})


def upscale(lowres: np.ndarray, factor: int, *, method: str = "bicubic") -> BaselineResult:
    """PIL nearest or bicubic upscaling by ``factor`` (8-bit path for 8-bit-valued images)."""
    from PIL import Image

    from ..simulate import pil_resize

    resample = {"bicubic": Image.BICUBIC, "nearest": Image.NEAREST}
    if method not in resample:
        raise ValueError(f"unknown upscaling {method!r}; choose from {sorted(resample)}")
    image = _hwc(lowres)
    size = (image.shape[0] * factor, image.shape[1] * factor)
    return _timed(lambda: pil_resize(image, size, resample[method]),
                  {"method": method, "factor": factor})
