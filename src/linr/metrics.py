"""Image quality metrics in two conventions.

``standard`` (the headline numbers): the output clipped to [0, 1] (to a reference's range where
it reaches beyond, measured with that range's span as the data range: :func:`measured_range`); PSNR on RGB (or on the
BT.601 Y channel with an optional border crop, as super-resolution tables use); SSIM as Wang et
al. define it (11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range 1, mean over
channels).

``paper``: how the LINR paper's released code measured, reproduced for comparison with its
tables: PSNR on the UNclipped RGB output, data range 1, no crop; for deblurring, PSNR on the Y
channel of 8-bit-rounded images (a grey image: its values, rounded alike); SSIM as scikit-image's old defaults computed it on float images
(7x7 uniform window, sample covariance, data range 2), which inflates SSIM.

All computations run in float64 with NumPy; images are (H, W) or (H, W, C) on the [0, 1] scale.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import InputError

__all__ = ["psnr", "ssim", "rgb_to_y", "evaluate", "measured_range", "report", "json_ready", "named_opaque",
           "CONVENTIONS", "TASKS"]

CONVENTIONS = ("standard", "paper")


def _unit(array: Any, name: str) -> np.ndarray:
    """An image as float64 on the [0, 1] scale, (H, W, C) (:func:`linr.images.scaled_by_range`, as
    :func:`linr.images.as_float_image` reads it); a one-line error for other types, shapes and
    non-finite values."""
    from .errors import InputError
    from .images import scaled_by_range

    raw = np.asarray(array)
    a = scaled_by_range(raw, np.float64)
    if a is None:
        raise InputError(f"{name}: pixel type {raw.dtype} (use float on [0, 1], uint8 or uint16)")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.size == 0:
        raise InputError(f"{name}: expected a non-empty (H, W[, C]) image, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name}: contains non-finite values (NaN or inf)")
    return a


def _prepare(reference: np.ndarray, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from .errors import InputError

    ref, img = _unit(reference, "reference"), _unit(image, "image")
    if ref.shape != img.shape:
        raise InputError(f"images differ in shape: {ref.shape} vs {img.shape}")
    return ref, img


def _luma(image: np.ndarray) -> np.ndarray:
    """What ``y_channel`` measures: an RGB image's :func:`rgb_to_y`, a grey image as it is (as
    super-resolution tables measure their grey images)."""
    return image if image.shape[2] == 1 else rgb_to_y(image)


def rgb_to_y(image: np.ndarray) -> np.ndarray:
    """BT.601 luma of an RGB image on the [0, 1] scale: ``(16 + 65.481 R + 128.553 G + 24.966 B) / 255``.

    Shape: (H, W, 3) -> (H, W, 1).
    """
    image = np.asarray(image, dtype=np.float64)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"Y channel needs an RGB image, got shape {image.shape}")
    y = (16.0 + image @ np.array([65.481, 128.553, 24.966])) / 255.0
    return y[..., None]


def _crop(image: np.ndarray, crop: int) -> np.ndarray:
    if crop < 0:
        raise ValueError(f"crop must be >= 0, got {crop}")
    if crop == 0:
        return image
    if 2 * crop >= min(image.shape[:2]):
        raise ValueError(f"crop {crop} leaves nothing of a {image.shape[1]}x{image.shape[0]} image")
    return image[crop:-crop, crop:-crop]


def _cropped_where(where: np.ndarray, crop: int) -> np.ndarray:
    """The (H, W) bool map of pixels measured, less ``crop`` border pixels as the images are."""
    return _crop(np.asarray(where, bool)[..., None], crop)[..., 0]


def psnr(
    reference: np.ndarray,
    image: np.ndarray,
    *,
    data_range: float = 1.0,
    y_channel: bool = False,
    crop: int = 0,
    where: np.ndarray | None = None,
) -> float:
    """Peak signal-to-noise ratio in dB (``inf`` for identical images). No clipping is applied.
    ``y_channel``: on the BT.601 luma of an RGB image (a grey image: its one channel).
    ``where``: (H, W) bool, the pixels measured (every channel of each); None: all."""
    if not data_range > 0:
        raise ValueError(f"data_range must be positive, got {data_range}")
    ref, img = _prepare(reference, image)
    if y_channel:
        ref, img = _luma(ref), _luma(img)
    ref, img = _crop(ref, crop), _crop(img, crop)
    if where is not None:
        kept = _cropped_where(where, crop)
        ref, img = ref[kept], img[kept]
    mse = float(np.mean((ref - img) ** 2))
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def _window(kind: str, size: int, sigma: float) -> np.ndarray:
    if kind == "uniform":
        return np.full(size, 1.0 / size)
    if kind == "gaussian":
        t = np.arange(size) - (size - 1) / 2.0
        g = np.exp(-(t**2) / (2.0 * sigma**2))
        return g / g.sum()
    raise ValueError(f"unknown SSIM window {kind!r}")


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable 'valid' filtering of (H, W) with 1-D window ``w`` on both axes."""
    x = sliding_window_view(x, len(w), axis=0) @ w
    return sliding_window_view(x, len(w), axis=1) @ w


def ssim(
    reference: np.ndarray,
    image: np.ndarray,
    *,
    data_range: float = 1.0,
    window: str = "gaussian",
    win_size: int = 11,
    sigma: float = 1.5,
    sample_covariance: bool = False,
    y_channel: bool = False,
    crop: int = 0,
    where: np.ndarray | None = None,
) -> float:
    """Structural similarity, mean over channels of the mean SSIM map.

    Statistics are taken over windows lying wholly inside the image, which equals scikit-image's
    filtered-then-cropped map. ``where``: (H, W) bool; the map is averaged over the windows
    centred on those pixels only (None: every window).
    """
    if win_size < 1 or not data_range > 0:
        raise ValueError(f"win_size {win_size}, data_range {data_range}: need win_size >= 1, data_range > 0")
    ref, img = _prepare(reference, image)
    if y_channel:
        ref, img = _luma(ref), _luma(img)
    ref, img = _crop(ref, crop), _crop(img, crop)
    if min(ref.shape[:2]) < win_size:
        raise ValueError(f"SSIM window {win_size} is larger than the image {ref.shape[:2]}")
    w = _window(window, win_size, sigma)
    centres = None
    if where is not None:
        kept = _cropped_where(where, crop)
        half = win_size // 2
        centres = kept[half:kept.shape[0] - (win_size - 1 - half), half:kept.shape[1] - (win_size - 1 - half)]
        if not centres.any():
            raise ValueError("no SSIM window is centred on a measured pixel")
    n = win_size**2
    cov_norm = n / (n - 1) if sample_covariance else 1.0
    c1 = (0.01 * data_range) ** 2
    c2 = (0.03 * data_range) ** 2
    values = []
    for ch in range(ref.shape[2]):
        x, y = ref[..., ch], img[..., ch]
        ux, uy = _filter_valid(x, w), _filter_valid(y, w)
        vx = cov_norm * (_filter_valid(x * x, w) - ux * ux)
        vy = cov_norm * (_filter_valid(y * y, w) - uy * uy)
        vxy = cov_norm * (_filter_valid(x * y, w) - ux * uy)
        s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
        values.append(s.mean() if centres is None else s[centres].mean())
    return float(np.mean(values))


TASKS = ("denoise", "sr", "inpaint", "deblur", "joint", "real")
"""The tasks :func:`evaluate` knows (the kinds' tasks, a joint fit and a real noisy photo): only
deblurring is measured otherwise in the paper's convention (on Y)."""


def _to_8bit(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0.0, 1.0) * 255.0) / 255.0


def evaluate(
    reference: np.ndarray,
    image: np.ndarray,
    *,
    convention: str = "standard",
    y_channel: bool = False,
    crop: int = 0,
    task: str | None = None,
    where: np.ndarray | None = None,
) -> dict[str, Any]:
    """PSNR and SSIM of ``image`` against ``reference`` in one convention (see module docstring).

    ``task`` (one of :data:`TASKS`, or None): 'deblur' selects the paper's PSNR of 8-bit-rounded
    images on the Y channel (a grey image: its one channel) in the paper convention; the others
    read every channel. ``y_channel``
    and ``crop`` apply to the standard convention only (the paper used neither, except as noted).
    ``where`` ((H, W) bool): only those pixels are measured (an image's opaque ones, say), recorded as
    ``measured_pixels`` ("N of M"; the command line adds which they are); None: all.
    """
    if convention not in CONVENTIONS:
        raise ValueError(f"unknown metric convention {convention!r}; choose from {CONVENTIONS}")
    if task is not None and task not in TASKS:
        raise InputError(f"unknown task {task!r}; choose from {', '.join(TASKS)} (or None)")
    ref, img = _prepare(reference, image)
    if convention == "standard":
        low, high = measured_range(ref, where)
        img = np.clip(img, low, high)
        span = high - low
        return {
            "convention": "standard",
            "psnr": (p := psnr(ref, img, data_range=span, y_channel=y_channel, crop=crop, where=where)),
            **_identical(p),
            **_ssim_if_it_fits(ref, img, side=11, border=crop, data_range=span, y_channel=y_channel, crop=crop,
                               where=where),
            **measured_count(where),
            **({} if (low, high) == (0.0, 1.0) else
               {"data_range": span,
                "range_note": f"the reference reaches beyond [0, 1]: the image clipped to its range "
                              f"{low:.6g}..{high:.6g}, PSNR and SSIM with data range {span:.6g}"}),
            "y_channel": y_channel,
            **({"y_channel_note": "a grey image: measured on its values"} if y_channel and ref.shape[2] == 1 else {}),
            "crop": crop,
        }
    if task == "deblur" and ref.shape[2] in (1, 3):
        p = psnr(_to_8bit(ref), _to_8bit(img), y_channel=True, where=where)
        psnr_note = "Y channel, 8-bit rounded" if ref.shape[2] == 3 else "grey, 8-bit rounded"
    else:
        p = psnr(ref, img, where=where)
        channels = ref.shape[2] if ref.ndim == 3 else 1
        psnr_note = "RGB, unclipped" if channels == 3 else \
            "grey, unclipped" if channels == 1 else f"all {channels} channels, unclipped"
    s = _ssim_if_it_fits(ref, img, side=7, border=0, data_range=2.0, window="uniform", win_size=7,
                         sample_covariance=True, where=where)
    return {"convention": "paper", "psnr": p, **_identical(p), **s, "psnr_on": psnr_note, **measured_count(where)}


def measured_range(reference: Any, where: np.ndarray | None = None) -> tuple[float, float]:
    """The range the standard convention clips an image to and measures on: [0, 1], widened to a
    reference (on the [0, 1] scale) that reaches beyond it. A reference in a photo's own units reaches
    beyond where the restoration is brighter than the photo (a blurred star field's peaks, several
    times the blurred photo's maximum): clipped at 1 and measured with data range 1, a deblurred field
    at 32.1 dB on its clean counts' range read 14.76. ``where``: the (H, W) pixels measured (None: all)."""
    ref = np.asarray(reference)
    ref = ref if where is None else ref[np.asarray(where, bool)]
    return min(0.0, float(np.min(ref))), max(1.0, float(np.max(ref)))


def _identical(p: float) -> dict[str, Any]:
    """A note beside an infinite PSNR (which JSON writes as null)."""
    return {"psnr_note": "infinite: the images are identical where measured"} if math.isinf(p) else {}


def measured_count(where: np.ndarray | None) -> dict[str, Any]:
    """``{'measured_pixels': 'N of M'}`` for the pixels ``where`` holds (:func:`named_opaque` names them
    an image's opaque ones); {} for every pixel."""
    return {} if where is None else {"measured_pixels": f"{int(np.count_nonzero(where))} of {np.size(where)}"}


def _ssim_if_it_fits(ref: np.ndarray, img: np.ndarray, *, side: int, border: int, **options: Any) -> dict[str, Any]:
    """``{"ssim": value}`` (:func:`ssim` with ``options``), or, for an image (after ``border`` px
    cropped from each side) smaller than SSIM's window (``side`` px) on a side, ``{"ssim": None, "ssim_note": why}``: SSIM is not defined there (its
    windows lie wholly inside the image), and PSNR still is."""
    h, w = ref.shape[0] - 2 * border, ref.shape[1] - 2 * border
    if min(h, w) < side:
        return {"ssim": None, "ssim_note": f"not measured: its {side}-px window does not fit in {w}x{h} px"}
    try:
        return {"ssim": ssim(ref, img, **options)}
    except ValueError as exc:  # no window centred on a measured pixel
        return {"ssim": None, "ssim_note": f"not measured: {exc}"}


def report(reference: np.ndarray, image: np.ndarray, task: str | None = None, *,
           where: np.ndarray | None = None) -> dict[str, Any]:
    """Both conventions at once, as restore and batch reports record them: ``{"standard": ...,
    "paper": ...}`` (``task='deblur'``: the paper's Y-channel PSNR in the paper convention;
    ``where``: the pixels measured, :func:`evaluate`)."""
    return {
        "standard": evaluate(reference, image, convention="standard", where=where),
        "paper": evaluate(reference, image, convention="paper", task=task, where=where),
    }


def named_opaque(measured: dict[str, Any]) -> dict[str, Any]:
    """``measured`` (one convention's metrics, or :func:`report`'s both) with its ``measured_pixels``
    named as an image's opaque ones, for callers that measured those (``linr restore``, ``linr
    metrics``, ``linr batch``): a caller's own pixels are only counted. Changed in place, returned."""
    for one in measured.values() if "standard" in measured else (measured,):
        if "measured_pixels" in one:
            one["measured_pixels"] += " (the opaque ones)"
    return measured


def json_ready(value: Any) -> Any:
    """``value`` with every non-finite float (an identical image's infinite PSNR) as None, so
    that the JSON written is valid JSON."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    return value


def as_written(path: Any, image: Any, reference: Any, *, bit_depth: int, value_range: Any = None,
               where: np.ndarray | None = None, scale: float = 1.0) -> dict[str, Any] | None:
    """The PSNR of ``image`` as the output file ``path`` holds it, written with ``bit_depth`` and
    ``value_range`` (:func:`linr.images.written_values`: rounded to its bit depth, a JPEG read back
    with its compression), in the standard convention (its SSIM, seconds for a large image, is not
    measured again), with its ``bit_depth`` and ``format``; for a float32 output in the input's
    units that keeps values above its range, those values as kept (unclipped above); None where the
    file holds the values as they are, none above the range (float32). On the standard convention's
    range (:func:`measured_range`: a reference's where it reaches beyond [0, 1]), both divided by
    ``scale`` first (:func:`linr.defects.measured_scale`, as the restored image's)."""
    from pathlib import Path

    from .images import WRITE_FORMATS, clips_above, written_bit_depth, written_values

    reference = np.asarray(reference, np.float32) / np.float32(scale)
    low, high = measured_range(reference, where)  # the standard convention's: [0, 1] or a reference's wider one
    values = written_values(path, image, bit_depth=bit_depth, value_range=value_range)
    if values is None:
        # a float output in the input's units keeps values above its range (a deconvolution's peaks brighter
        # than the blurred photo's): measured as kept, where the standard convention's clipping at 1 left an
        # astronomer's 26.99 dB as 25.98
        kept = value_range is not None and written_bit_depth(path, bit_depth) == 32 and \
            not clips_above(value_range, 32) and float(np.max(image)) > 1.0
        if not kept:
            return None
        values = np.maximum(np.asarray(image, np.float32), 0.0)  # as the writer floors it
    values = values / np.float32(scale)
    if (low, high) != (0.0, 1.0) or scale != 1.0:  # as the standard convention clips the restored image
        values = np.clip(values, low, high)
    decibels = psnr(reference, values, data_range=high - low, where=where)
    return named_opaque({"psnr": decibels, "convention": "standard",
                         "bit_depth": written_bit_depth(path, bit_depth),
                         "format": WRITE_FORMATS[Path(path).suffix.lower()], **measured_count(where)})
