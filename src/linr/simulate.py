"""Simulated corruptions, made the way the paper's experiments make them (seeded).

Images are (H, W, C) float arrays on [0, 1]; ``sigma`` is on the 0-255 scale.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from .operators import Blur

__all__ = [
    "add_gaussian_noise",
    "add_photon_noise",
    "bernoulli_mask",
    "crop_to_multiple",
    "lanczos_downscale",
    "pil_resize",
    "blur_image",
    "DEBLUR_NOISE_SIGMA",
]

DEBLUR_NOISE_SIGMA = math.sqrt(2.0)
"""Noise added after blurring in the paper's deblurring experiments (0-255 scale)."""


def _as_hwc(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    return image[..., None] if image.ndim == 2 else image


def add_gaussian_noise(image: np.ndarray, sigma: float, *, seed: int = 0, clip: bool = True) -> np.ndarray:
    """``image + N(0, (sigma/255)^2)``, clipped to [0, 1] as the paper does."""
    if not sigma >= 0:
        raise ValueError(f"noise sigma must be >= 0, got {sigma}")
    image = _as_hwc(image)
    rng = np.random.default_rng(seed)
    noisy = image + rng.normal(0.0, sigma / 255.0, size=image.shape)
    return (np.clip(noisy, 0.0, 1.0) if clip else noisy).astype(np.float32)


def add_photon_noise(image: np.ndarray, peak: float, *, read_sigma: float = 0.0, seed: int = 0,
                     clip: bool = True) -> np.ndarray:
    """Photon noise: ``Poisson(peak * image) / peak`` (``peak``: the expected count of a white
    pixel), plus Gaussian read noise of std ``read_sigma`` (0-255 scale), clipped to [0, 1]."""
    if not (peak > 0 and math.isfinite(peak)):
        raise ValueError(f"photon peak must be a finite number > 0, got {peak}")
    if not read_sigma >= 0:
        raise ValueError(f"read noise sigma must be >= 0, got {read_sigma}")
    image = np.clip(_as_hwc(image), 0.0, None)
    rng = np.random.default_rng(seed)
    noisy = rng.poisson(image * peak) / peak
    if read_sigma > 0:
        noisy = noisy + rng.normal(0.0, read_sigma / 255.0, size=image.shape)
    return (np.clip(noisy, 0.0, 1.0) if clip else noisy).astype(np.float32)


def bernoulli_mask(shape: tuple[int, int], keep: float, *, seed: int = 0) -> np.ndarray:
    """One Bernoulli(keep) draw per pixel, shared by all channels. Returns (H, W) bool, True = kept."""
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep fraction must be in (0, 1], got {keep}")
    rng = np.random.default_rng(seed)
    return rng.random(tuple(shape)) < keep


def crop_to_multiple(image: np.ndarray, factor: int) -> np.ndarray:
    """Centre-crop so both sides are divisible by ``factor`` (needed before x``factor`` SR)."""
    h, w = image.shape[:2]
    nh, nw = h - h % factor, w - w % factor
    if nh == 0 or nw == 0:
        raise ValueError(f"image {h}x{w} is smaller than the factor {factor}")
    top, left = (h - nh) // 2, (w - nw) // 2
    return image[top : top + nh, left : left + nw]


def _is_8bit(image: np.ndarray) -> bool:
    scaled = image * 255.0
    return bool(np.abs(scaled - np.round(scaled)).max(initial=0.0) < 1e-4)


def pil_resize(image: np.ndarray, size: tuple[int, int], resample: int) -> np.ndarray:
    """Resize with PIL to ``size`` = (H, W). 8-bit-valued images go through PIL's 8-bit path,
    as the paper's code does with loaded PNGs; others are resized per channel in float."""
    image = _as_hwc(image)
    h, w = size
    if _is_8bit(image):
        u8 = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
        pil = Image.fromarray(u8[..., 0] if u8.shape[2] == 1 else u8)
        out = np.asarray(pil.resize((w, h), resample), dtype=np.float32) / 255.0
        return out[..., None] if out.ndim == 2 else out
    chans = [
        np.asarray(Image.fromarray(image[..., c].astype(np.float32)).resize((w, h), resample))
        for c in range(image.shape[2])
    ]
    return np.clip(np.stack(chans, axis=-1), 0.0, 1.0).astype(np.float32)


def lanczos_downscale(image: np.ndarray, factor: int) -> np.ndarray:
    """The paper's low-resolution input: PIL ``resize((W // s, H // s), LANCZOS)``."""
    h, w = image.shape[:2]
    if factor < 1 or h // factor < 1 or w // factor < 1:
        raise ValueError(f"cannot downscale a {h}x{w} image by {factor}")
    return pil_resize(image, (h // factor, w // factor), Image.LANCZOS)


def blur_image(
    image: np.ndarray,
    kernel: np.ndarray,
    *,
    noise_sigma: float = DEBLUR_NOISE_SIGMA,
    seed: int = 0,
    boundary: str = "circular",
) -> np.ndarray:
    """Blur with ``kernel`` (circularly by default, as the paper), add N(0, (noise_sigma/255)^2)
    and clip to [0, 1]."""
    x = torch.from_numpy(_as_hwc(image).transpose(2, 0, 1).copy())[None]
    blurred = Blur(kernel, boundary=boundary)(x)[0].numpy().transpose(1, 2, 0)
    return add_gaussian_noise(blurred, noise_sigma, seed=seed)
