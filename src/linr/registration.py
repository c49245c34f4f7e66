"""Shots that do not line up: a learned sub-pixel transform per observation, fitted with the image.

A registered observation ``k`` sees the clean image through its own transform ``T_k`` before its
operator: ``y_k = A_k(f o T_k) + noise``, where ``(f o T_k)(p) = f(T_k(p))`` and ``p`` runs over
the clean grid in pixels. The first observation is the reference (``T_0`` is the identity, which
fixes the image's position); every other one gets a transform from :data:`TRANSFORMS`, started
from a classical estimate (windowed cross-correlation with the reference on the clean grid,
checked by whole pixels and refined by least squares, :func:`located_shift`) and then trained by Adam on the same loss as the image, step by step.

How ``f o T_k`` is formed: the fit renders the model once per step on the clean grid and this
module resamples that image at ``T_k(p)`` (Keys' cubic convolution, :func:`cubic_sample`),
rather than evaluating the network at transformed coordinates once per frame. Both give the
same values for the image content an observation can carry after its operator (a x4 low-res
frame holds frequencies of at most 1/8 cycle per clean pixel, where the cubic kernel's error is
a fraction of a percent: tests/test_registration.py); what the resampling saves is a render per frame per step (eight
frames would cost eight times the work). A frame at the clean size (a burst of noisy shots) is
smoothed slightly by the interpolation where it is shifted by half a pixel; the reference frame
never is.

Observation pixels that read the clean image beyond its border (where ``T_k(p)`` leaves the grid,
widened by the interpolation's and the operator's own reach) are left out of the data term: the
*reach* of a transform (its largest displacement, clean pixels) is bounded when the fit starts,
from the first estimate plus a margin, and a transform that moves past it stops the fit with an
error (the frames do not show the same scene, or the estimate was wrong).

A burst of noisy photos alone registered by a translation is not fitted this way by default: its
frames are moved onto the first's grid before the fit (:func:`aligned_to_first`; the shift from
the correlation checked and refined by least squares, :func:`located_shift`; a turn undone first;
the frame moved by a phase ramp on its Fourier transform), what one shift and turn leave undone
tile by tile (:func:`locally_aligned`), and their mean restored as an aligned burst's
(:func:`linr.stabilise.aligned_burst`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from abc import ABC, abstractmethod
from typing import Any, Sequence

import numpy as np
import torch

from .errors import InputError
from .operators import LeftOut, Operator, Shape
from .problem import Observation

__all__ = ["Transform", "Translation", "Affine", "TRANSFORMS", "Registered", "register", "misaligned_by",
           "shifted_frames", "shifted_shots_said", "aligned_to_first", "refined_shift", "located_shift", "locally_aligned", "grey_noise",
           "kept_where_agreeing", "ALIGN_PAD",
           "estimate_shift", "registration_report", "REGISTER_LR", "RESAMPLE_REACH"]

REGISTER_LR = 0.02
"""Adam's step for a transform, in clean pixels per step (an affine matrix moves the image's
corners by about this much per step)."""
RESAMPLE_REACH = 2
"""Clean pixels the cubic resampling reads after a sampled point's floor (and one before)."""


class Transform(ABC):
    """A map of clean-grid points ``p`` (pixels, row and column) to the points the observation
    sees, with trainable tensors."""

    name = "transform"

    def __init__(self, shift: Sequence[float] = (0.0, 0.0), *, lr: float = REGISTER_LR) -> None:
        self.shift = torch.tensor([float(shift[0]), float(shift[1])], dtype=torch.float32,
                                  requires_grad=True)
        """(rows, columns): ``T(p) = p + shift`` for a translation."""
        self.lr = lr

    @abstractmethod
    def points(self, shape: Shape, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """``T(p)`` for every clean pixel ``p``: (H, W, 2) as (row, column)."""

    def parameter_groups(self, shape: Shape) -> list[dict[str, Any]]:
        """Adam parameter groups (tensors and learning rates) for a clean image of ``shape``."""
        return [{"params": [self.shift], "lr": self.lr}]

    def displacement_range(self, shape: Shape) -> np.ndarray:
        """The smallest and largest ``T(p) - p`` over the clean grid: ``[[rows_min, rows_max],
        [columns_min, columns_max]]`` in pixels."""
        t = self.shift.detach().double().numpy()
        return np.stack([t, t], axis=1)

    def describe(self) -> dict[str, Any]:
        dy, dx = (float(v) for v in self.shift.detach())
        return {"name": self.name, "shift_x": round(dx, 4), "shift_y": round(dy, 4)}


class Translation(Transform):
    """``T(p) = p + t``: a shot moved by a sub-pixel amount."""

    name = "translation"

    def points(self, shape: Shape, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        h, w = shape
        rows = torch.arange(h, device=device, dtype=dtype)[:, None].expand(h, w)
        cols = torch.arange(w, device=device, dtype=dtype)[None, :].expand(h, w)
        t = self.shift.to(device=device, dtype=dtype)
        return torch.stack([rows + t[0], cols + t[1]], dim=-1)


class Affine(Transform):
    """``T(p) = c + M (p - c) + t`` about the image centre ``c``: shift, rotation, scale, shear."""

    name = "affine"

    def __init__(self, shift: Sequence[float] = (0.0, 0.0), *, lr: float = REGISTER_LR) -> None:
        super().__init__(shift, lr=lr)
        self.linear = torch.zeros(2, 2, dtype=torch.float32, requires_grad=True)
        """``M - I`` (rows, columns), so that zero is the identity."""

    def points(self, shape: Shape, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        h, w = shape
        rows = torch.arange(h, device=device, dtype=dtype)[:, None].expand(h, w) - (h - 1) / 2
        cols = torch.arange(w, device=device, dtype=dtype)[None, :].expand(h, w) - (w - 1) / 2
        m = self.linear.to(device=device, dtype=dtype)
        t = self.shift.to(device=device, dtype=dtype)
        return torch.stack([rows + (h - 1) / 2 + m[0, 0] * rows + m[0, 1] * cols + t[0],
                            cols + (w - 1) / 2 + m[1, 0] * rows + m[1, 1] * cols + t[1]], dim=-1)

    def parameter_groups(self, shape: Shape) -> list[dict[str, Any]]:
        half = max(shape) / 2  # a step of lr / half in M moves a corner by about lr pixels
        return [{"params": [self.shift], "lr": self.lr},
                {"params": [self.linear], "lr": self.lr / max(half, 1.0)}]

    def displacement_range(self, shape: Shape) -> np.ndarray:
        # T(p) - p is affine in p, so its extremes over the grid are at the corners
        h, w = shape
        corners = np.array([[-(h - 1) / 2, -(w - 1) / 2], [-(h - 1) / 2, (w - 1) / 2],
                            [(h - 1) / 2, -(w - 1) / 2], [(h - 1) / 2, (w - 1) / 2]])
        moved = corners @ self.linear.detach().double().numpy().T + self.shift.detach().double().numpy()
        return np.stack([moved.min(axis=0), moved.max(axis=0)], axis=1)

    def describe(self) -> dict[str, Any]:
        m = (self.linear.detach() + torch.eye(2)).tolist()
        return {**super().describe(), "matrix": [[round(v, 6) for v in row] for row in m]}


TRANSFORMS: dict[str, type[Transform]] = {
    "translation": Translation,
    "affine": Affine,
}
"""Registration models by name (``--register NAME``); a new one is a :class:`Transform`
subclass and one line here."""


class Registered(Operator):
    """``y = keep * A(f o T)``: an observation's operator ``A`` after its transform ``T``.

    ``allowed`` ([[rows_min, rows_max], [columns_min, columns_max]], clean pixels) bounds the
    transform's displacement ``T(p) - p`` over the grid; ``keep`` is 0 on the observation pixels
    that could read the clean image beyond its border for some displacement in those bounds
    (found by pushing the clean pixels that would be read wrongly through ``A``).
    """

    name = "registered"

    def __init__(self, operator: Operator, transform: Transform, allowed: np.ndarray) -> None:
        self.operator = operator
        self.transform = transform
        self.allowed = np.asarray(allowed, dtype=np.float64)
        self._keep: dict[tuple, torch.Tensor] = {}

    def clean_band(self, shape: Shape) -> tuple[int, int, int, int]:
        """Clean pixels along the top, bottom, left and right borders whose resampled value may
        read beyond the image (cubic resampling reads 1 pixel before and 2 after the sampled point's
        floor, so a point within ``[1, n - 2]`` reads only the image)."""
        (rlo, rhi), (clo, chi) = self.allowed
        bands = [math.ceil(RESAMPLE_REACH - 1 - rlo), math.ceil(rhi + RESAMPLE_REACH - 1),
                 math.ceil(RESAMPLE_REACH - 1 - clo), math.ceil(chi + RESAMPLE_REACH - 1)]
        return tuple(max(0, b) for b in bands)  # type: ignore[return-value]

    def keep_map(self, shape: Shape) -> torch.Tensor:
        """(h, w) 0/1 over the observation for a clean image of ``shape`` (H, W)."""
        h, w = shape
        top, bottom, left, right = self.clean_band(shape)
        if top + bottom >= h or left + right >= w:
            raise ValueError(f"a {w}x{h} image is too small to register shifts of up to "
                             f"{np.abs(self.allowed).max():.1f} pixels")
        wrong = torch.ones(1, 1, h, w, dtype=torch.float64)
        wrong[..., top : h - bottom, left : w - right] = 0
        # random positive values so that no taps cancel
        wrong *= 1 + torch.from_numpy(np.random.default_rng(0).random((h, w)))
        keep = (self.operator(wrong)[0, 0].abs() == 0).to(torch.float64)
        if not keep.any():
            raise ValueError(f"every pixel of this observation could read beyond the clean image's "
                             f"border with shifts of up to {np.abs(self.allowed).max():.1f} pixels")
        return keep

    def _keep_like(self, clean: Shape, like: torch.Tensor) -> torch.Tensor:
        key = (clean, like.device, like.dtype)
        if key not in self._keep:
            self._keep[key] = self.keep_map(clean).to(device=like.device, dtype=like.dtype)
        return self._keep[key]

    def warp(self, x: torch.Tensor) -> torch.Tensor:
        """``f o T`` for clean images (B, C, H, W): cubic resampling at the transformed points."""
        h, w = x.shape[-2:]
        return cubic_sample(x, self.transform.points((h, w), x.device, x.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.operator(self.warp(x))
        return y * self._keep_like(tuple(x.shape[-2:]), y)

    def output_shape(self, shape: Shape) -> Shape:
        return self.operator.output_shape(shape)

    def input_shape(self, shape: Shape) -> Shape:
        return self.operator.input_shape(shape)

    def project(self, y: torch.Tensor) -> torch.Tensor:
        y = self.operator.project(y)
        clean = self.operator.input_shape(tuple(y.shape[-2:]))
        return y * self._keep_like(clean, y)

    def parameter_groups(self, shape: Shape) -> list[dict[str, Any]]:
        return self.transform.parameter_groups(shape)

    def check(self, shape: Shape) -> None:
        moved = self.transform.displacement_range(shape)
        if not np.isfinite(moved).all() or (moved[:, 0] < self.allowed[:, 0] - 1e-6).any() or (
                moved[:, 1] > self.allowed[:, 1] + 1e-6).any():
            raise ValueError(f"registration diverged: its {self.transform.name} moved the image "
                             f"by {_range_text(moved)} pixels, outside the {_range_text(self.allowed)} "
                             "allowed (do the frames show the same scene?)")

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "transform": self.transform.describe(),
                "allowed_shift": self.allowed.round(3).tolist(), "operator": self.operator.describe()}


def _keys(d: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -1/2 at distances ``d`` >= 0 (third-order
    accurate: it reproduces quadratics exactly)."""
    return torch.where(d <= 1, (1.5 * d - 2.5) * d * d + 1,
                       torch.where(d < 2, ((-0.5 * d + 2.5) * d - 4) * d + 2, torch.zeros_like(d)))


def cubic_sample(x: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """Images (B, C, H, W) sampled at ``points`` (h, w, 2: row, column, in pixels) by Keys'
    cubic convolution (a = -1/2) on the 4x4 neighbourhood, indices clamped at the border;
    differentiable in ``x`` and in ``points``. (PyTorch's bicubic ``grid_sample`` uses
    a = -3/4, which is only first-order accurate: about 1% off on content of 1/20 cycle per
    pixel.)"""
    b, c, hh, ww = x.shape
    h, w = points.shape[:2]
    flat = x.reshape(b * c, hh * ww)
    base = torch.floor(points.detach())
    frac = points - base  # keeps the gradient with respect to the points
    base = base.long()
    taps = [(k, _keys((frac - k).abs())) for k in (-1, 0, 1, 2)]
    out = flat.new_zeros(b * c, h * w)
    for i, wy in taps:
        rows = (base[..., 0] + i).clamp_(0, hh - 1)
        for j, wx in taps:
            cols = (base[..., 1] + j).clamp_(0, ww - 1)
            weight = (wy[..., 0] * wx[..., 1]).reshape(1, h * w)
            out = out + flat.index_select(1, (rows * ww + cols).reshape(-1)) * weight
    return out.reshape(b, c, h, w)


def _range_text(r: np.ndarray) -> str:
    return f"rows {r[0, 0]:+.2f}..{r[0, 1]:+.2f}, columns {r[1, 0]:+.2f}..{r[1, 1]:+.2f}"


def estimate_shift(reference: np.ndarray, moving: np.ndarray) -> tuple[float, float]:
    """The shift ``t`` (rows, columns) with ``moving(p) ~ reference(p + t)``, to a tenth of a
    pixel: cross-correlation of the two images (means removed, Hann-windowed so that the borders
    do not correlate) refined by upsampling (:func:`skimage.registration.phase_cross_correlation`
    without phase normalisation, which noise and smooth images defeat). A constant image: (0, 0)."""
    from skimage.filters import window
    from skimage.registration import phase_cross_correlation

    a = _grey(reference)
    b = _grey(moving)
    if float(np.ptp(a)) == 0.0 or float(np.ptp(b)) == 0.0:  # a constant frame: no shift to find
        return 0.0, 0.0
    hann = window("hann", a.shape)
    shift, _, _ = phase_cross_correlation((a - a.mean()) * hann, (b - b.mean()) * hann,
                                          upsample_factor=10, normalization=None)
    return float(shift[0]), float(shift[1])


MISALIGNED_RATIO = 0.8
"""A frame is shifted against another (:func:`misaligned_by`) when moving it by the whole pixels of
the estimated shift leaves less than this share of the squared difference it has unmoved: between
aligned frames the estimate, misled by noise, found up to 2 px on 32- and 64-px crops at sigma 50,
and moving by it never lowered the difference (0 of 117 frames of the 13 held-out crops at sigma
15 / 25 / 50 and 32 / 64 / 128 px); frames shifted by (3, -2) px were found in 106 of 117, by
(1, 0) in 90 (the others flat or very noisy, where a mean blurs less): ``benchmarks/shift_check_probe.py``."""

SHIFT_CHECK_SIDE = 512
"""Frames are compared on their centre of at most this many pixels a side (the cost of the
correlation on a large photo)."""


def misaligned_by(reference: np.ndarray, moving: np.ndarray) -> tuple[float, float] | None:
    """The shift (rows, columns; :func:`estimate_shift`, or the whole-pixel shift near it whose
    overlap differs least where that is another one: :func:`_whole_pixel_shift`) of ``moving``
    against ``reference`` (two photos of one size), or None where they are aligned to within half
    a pixel, or where moving
    by the shift's whole pixels does not make them agree better (:data:`MISALIGNED_RATIO`): noise
    or a flat scene misleading the estimate. Compared on their centres (:data:`SHIFT_CHECK_SIDE`)."""
    a, b = (_centre(_grey(x), SHIFT_CHECK_SIDE) for x in (reference, moving))
    dy, dx = estimate_shift(a, b)
    whole = _whole_pixel_shift(a, b, (dy, dx))  # a smooth photo's broad peak missed a 3.6-px shift
    if whole != (round(dy), round(dx)):
        dy, dx = float(whole[0]), float(whole[1])
    iy, ix = round(dy), round(dx)
    h, w = a.shape
    m = max(abs(iy), abs(ix))
    if m == 0 or 2 * m >= min(h, w) - 4:
        return None
    inner = a[m:h - m, m:w - m]
    unmoved = float(np.mean((inner - b[m:h - m, m:w - m]) ** 2))
    moved = float(np.mean((inner - b[m - iy:h - m - iy, m - ix:w - m - ix]) ** 2))
    return (dy, dx) if moved < MISALIGNED_RATIO * unmoved else None


def shifted_frames(images: Sequence[np.ndarray]) -> dict[int, tuple[float, float]]:
    """The frames (their index: 1 on) of a burst of one size shifted against its first
    (:func:`misaligned_by`), with their shifts; empty for an aligned burst or one frame."""
    if len(images) < 2 or len({np.shape(x) for x in images}) != 1:
        return {}
    found = {k: misaligned_by(images[0], x) for k, x in enumerate(images) if k}
    return {k: shift for k, shift in found.items() if shift is not None}


ALIGN_PAD = 8
"""Pixels each frame is mirrored out by (beyond its shift's whole pixels) before it is moved in
the Fourier domain (:func:`aligned_to_first`), so that the jump between its opposite borders,
which a Fourier shift would spread as ringing, lies outside the frame."""


TURN_TILES = 3
"""Tiles a side over which a frame's turn against the first is estimated (:func:`estimated_turn`)."""
TURN_TILE_SIDE = 256
"""The centre of each tile that its shift is estimated on, at most (px a side)."""
MIN_TURN_TILE = 32
"""Tiles smaller than this (px a side) estimate no turn: frames under 96 px are only shifted."""
TURN_FROM = 0.25
"""Pixels a turn moves a frame's corners (its angle times half the frame's diagonal) from which
:func:`aligned_to_first` undoes it; below, the frame is only shifted."""
TURN_SIGNIFICANCE = 3.0
"""A turn is kept only when it is at least this many of its standard errors (from the scatter
of the tiles' shifts about the fit): noisy tiles of a frame only shifted gave turns of 0.2-0.6
degrees on 112-px tune crops, which cost up to 0.69 dB when undone."""
TURN_OUTLIER = 0.5
"""Pixels by which a tile's shift may miss the fitted turn and shift before it is left out of
the fit (a flat tile, or something that moved there)."""


def estimated_turn(reference: np.ndarray, moving: np.ndarray) -> float:
    """The angle (radians, small) by which frame ``moving`` (H, W[, C]) shows ``reference`` turned
    about its centre (each tile's centre read grey, so a large frame is never copied whole): each of :data:`TURN_TILES` x :data:`TURN_TILES` tiles' shift (its centre,
    :func:`estimate_shift` then :func:`refined_shift`) is a sample of the displacement
    ``t + theta (x, -y)`` (rows, columns, from the frame's centre), fitted by least squares
    (tiles missing it by :data:`TURN_OUTLIER` px left out once); 0.0 for frames too small
    (:data:`MIN_TURN_TILE`), fewer than 4 tiles with content, or a turn within
    :data:`TURN_SIGNIFICANCE` of its standard errors."""
    h, w = reference.shape[:2]
    th, tw = h // TURN_TILES, w // TURN_TILES
    if min(th, tw) < MIN_TURN_TILE:
        return 0.0
    cy, cx = (h - 1) / 2, (w - 1) / 2
    samples = []
    for i in range(TURN_TILES):
        for j in range(TURN_TILES):
            a = _grey(_centre(reference[i * th:(i + 1) * th, j * tw:(j + 1) * tw], TURN_TILE_SIDE))
            b = _grey(_centre(moving[i * th:(i + 1) * th, j * tw:(j + 1) * tw], TURN_TILE_SIDE))
            if float(np.ptp(a)) == 0.0 or float(np.ptp(b)) == 0.0:
                continue
            dy, dx = refined_shift(a, b, estimate_shift(a, b))
            samples.append((i * th + (th - 1) / 2 - cy, j * tw + (tw - 1) / 2 - cx, dy, dx))
    theta, error = 0.0, math.inf
    for _ in range(2):  # a fit, then again without the tiles it misses (where 4 or more are left)
        if len(samples) < 4:
            break
        design = np.array([row for y, x, _, _ in samples for row in ((1.0, 0.0, x), (0.0, 1.0, -y))])
        target = np.array([v for _, _, dy, dx in samples for v in (dy, dx)])
        (ty, tx, theta), *_ = np.linalg.lstsq(design, target, rcond=None)
        residual = design @ np.array([ty, tx, theta]) - target
        spread = float(residual @ residual) / (len(target) - 3)  # the tiles' shift errors' variance
        error = math.sqrt(spread * np.linalg.inv(design.T @ design)[2, 2])  # the turn's std error
        misses = np.hypot(*residual.reshape(-1, 2).T)
        samples = [s for s, m in zip(samples, misses) if m <= TURN_OUTLIER]
    return float(theta) if abs(theta) >= TURN_SIGNIFICANCE * error else 0.0


def _turned(image: np.ndarray, angle: float) -> np.ndarray:
    """``image`` (H, W[, C]) resampled at ``M (q - c) + c``, ``M = [[cos a, sin a], [-sin a, cos a]]``
    (rows, columns; ``c`` its centre), by three shears (``x``, ``y``, ``x``; Unser et al. 1995),
    each a phase ramp on the Fourier transform of each row or column after mirroring the image
    out: white noise stays white and of its level, as with :func:`_moved`. float32."""
    from scipy import fft

    planes = np.asarray(image, np.float32)
    planes = planes if planes.ndim == 3 else planes[..., None]
    h, w = planes.shape[:2]
    shear_x, shear_y = -math.tan(angle / 2), math.sin(angle)
    pad = ALIGN_PAD + int(math.ceil((abs(shear_x) * 2 + abs(shear_y)) * (max(h, w) / 2 + ALIGN_PAD))) + 1
    padded = np.pad(planes, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric").astype(np.float64)
    ph, pw = padded.shape[:2]
    rows, cols = np.arange(ph) - (ph - 1) / 2, np.arange(pw) - (pw - 1) / 2

    def along_x(x: np.ndarray, amount: float) -> np.ndarray:  # out(y, x) = in(y, x + amount y)
        ramp = np.exp(2j * np.pi * np.fft.rfftfreq(pw)[None, :] * (amount * rows)[:, None])
        return fft.irfft(fft.rfft(x, axis=1) * ramp, n=pw, axis=1)

    def along_y(x: np.ndarray, amount: float) -> np.ndarray:  # out(y, x) = in(y + amount x, x)
        ramp = np.exp(2j * np.pi * np.fft.rfftfreq(ph)[:, None] * (amount * cols)[None, :])
        return fft.irfft(fft.rfft(x, axis=0) * ramp, n=ph, axis=0)

    out = np.empty_like(planes)
    for c in range(planes.shape[2]):
        turned = along_x(along_y(along_x(padded[..., c], shear_x), shear_y), shear_x)
        out[..., c] = turned[pad:pad + h, pad:pad + w]
    return out if np.ndim(image) == 3 else out[..., 0]


def aligned_to_first(images: Sequence[np.ndarray], turns: list[float] | None = None
                     ) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """The frames of a burst of one size (H, W[, C]) moved onto the first's grid by their
    translation against it, and those shifts (rows, columns; the first's (0, 0)). A frame turned
    against the first (:func:`estimated_turn`, by enough to move its corners :data:`TURN_FROM`
    px) is turned back first (:func:`_turned`), its shift then found on the turned frame;
    ``turns`` (a list) receives each frame's angle undone (degrees; 0.0 for the first and for
    frames only shifted).

    The shift: :func:`located_shift` on the frames' centres (:data:`SHIFT_CHECK_SIDE`): a
    correlation, checked and refined by least squares. A frame ``y`` with ``y(p) ~ first(p + t)``
    becomes ``y(q - t)``: moved by a phase ramp on its Fourier transform (exact for a band-limited
    frame; mirrored out by :data:`ALIGN_PAD` plus the shift's whole pixels first), which keeps
    white noise white and of the same level, where a cubic or linear interpolation would smooth it
    by a different amount at each fraction of a pixel. Pixels whose source (``q - t``, turned
    back for a turned frame) lies more than half a pixel outside the frame (a border about as
    wide as the shift) take the first frame's values: the mean of the frames there is unbiased,
    only noisier. float32."""
    images = [np.asarray(x, np.float32) for x in images]
    first = images[0]
    h, w = first.shape[:2]
    reference = _centre(_grey(first), SHIFT_CHECK_SIDE)
    out, shifts = [first], [(0.0, 0.0)]
    if turns is not None:
        turns[:] = [0.0]
    for moving in images[1:]:
        theta = estimated_turn(first, moving)
        if abs(theta) * math.hypot(h, w) / 2 < TURN_FROM:
            theta = 0.0
        else:  # y(p) ~ first(R (p - c) + c + t): turned back by R^T about the centre, then shifted
            moving = _turned(moving, -theta)
        if turns is not None:
            turns.append(math.degrees(theta))
        centre = _centre(_grey(moving), SHIFT_CHECK_SIDE)
        dy, dx = located_shift(reference, centre)
        shifts.append((dy, dx))
        moved = _moved(moving, dy, dx)
        qy, qx = np.arange(h)[:, None] - (h - 1) / 2 - dy, np.arange(w)[None, :] - (w - 1) / 2 - dx
        rows = math.cos(theta) * qy - math.sin(theta) * qx + (h - 1) / 2  # where each pixel came from
        cols = math.sin(theta) * qy + math.cos(theta) * qx + (w - 1) / 2
        # beyond half a pixel past the frame (within it the mirrored frame the move read stands in:
        # a shift of a tenth of a pixel gave a row and a column of the first frame's noise alone)
        outside = (rows < -0.5) | (rows > h - 0.5) | (cols < -0.5) | (cols > w - 0.5)
        moved[outside] = first[outside]
        out.append(moved)
    return out, shifts


LOCAL_TILE = 32
"""The side (px) of the tiles, overlapping by half, whose remaining shifts
:func:`locally_aligned` finds and undoes after a frame's whole move onto the first's grid."""
LOCAL_SIGNIFICANCE = 3.0
"""A tile's remaining shift is undone only where it is this many standard errors from none (its
Mahalanobis length under the tile's noise): noise alone would give 1 tile in 90."""
LOCAL_FROM = 0.2
"""Pixels a tile's remaining shift must reach (its larger component) to be undone."""
LOCAL_NOISE_SIDE = 1024
"""The grey frames' noise is measured on their centres of at most this many pixels a side."""


def locally_aligned(moved: np.ndarray, first: np.ndarray, first_noise: float | None = None
                    ) -> tuple[np.ndarray, int, float]:
    """``moved`` (a frame already moved onto ``first``'s grid, both (H, W[, C]) on [0, 1]) with what
    one shift and turn did not undo undone too (parallax, a subject that moved slowly, a lens's
    breathing): each tile of :data:`LOCAL_TILE` px (overlapping by half) whose own remaining shift
    (:func:`refined_shift` from none, grey) is significant under the grey frames' noise, measured
    on their centres (:data:`LOCAL_SIGNIFICANCE`, :data:`LOCAL_FROM`; a camera's channels share
    part of their noise, so the colour levels over the root of the channels would understate it)
    is moved by it (a phase ramp, as :func:`aligned_to_first` moves a frame: its noise stays
    white), and the tiles are blended with squared-sine weights, normalised by their sum. Also
    the number of tiles moved and the largest shift undone (px). A frame smaller than two tiles a
    side is returned as it is. ``first_noise``: the grey first frame's noise as measured here
    (:func:`grey_noise`), where a burst's frames are aligned to one first frame in turn."""
    moved = np.asarray(moved, np.float32)
    h, w = first.shape[:2]
    side, stride = LOCAL_TILE, LOCAL_TILE // 2
    if min(h, w) < 2 * side:
        return moved, 0, 0.0
    noise_moved = grey_noise(moved)
    noise = math.hypot(noise_moved, grey_noise(first) if first_noise is None else first_noise)  # the difference's
    tops, lefts = (sorted(set(range(0, n - side + 1, stride)) | {n - side}) for n in (h, w))
    shifts = {}
    for top in tops:
        for left in lefts:
            tile = np.s_[top:top + side, left:left + side]
            shift = _significant_shift(_grey(first[tile]), _grey(moved[tile]), noise, noise_moved)
            if shift is not None:
                shifts[top, left] = shift
    if not shifts:
        return moved, 0, 0.0
    taper = np.sin(np.pi * (np.arange(side) + 0.5) / side) ** 2
    weight = taper[:, None] * taper[None, :]
    out = np.zeros(moved.shape, np.float64)
    total = np.zeros((h, w), np.float64)
    for top in tops:
        for left in lefts:
            tile = np.s_[top:top + side, left:left + side]
            piece = moved[tile]
            if (top, left) in shifts:  # moved with the frame around it (no mirrored border inside)
                dy, dx = shifts[top, left]
                reach = ALIGN_PAD + int(math.ceil(max(abs(dy), abs(dx))))
                t0, l0 = max(0, top - reach), max(0, left - reach)
                around = _moved(moved[t0:min(h, top + side + reach), l0:min(w, left + side + reach)], dy, dx)
                piece = around[top - t0:top - t0 + side, left - l0:left - l0 + side]
            out[tile] += piece * (weight if piece.ndim == 2 else weight[..., None])
            total[tile] += weight
    out /= total if out.ndim == 2 else total[..., None]
    largest = max(max(abs(dy), abs(dx)) for dy, dx in shifts.values())
    return out.astype(np.float32), len(shifts), largest


def grey_noise(image: np.ndarray) -> float:
    """The noise std (0-1 scale) of ``image``'s grey values, measured on its centre of at most
    :data:`LOCAL_NOISE_SIDE` px (:func:`linr.noise.floored_noise_sigma`), as :func:`locally_aligned`
    measures a frame's."""
    from .noise import floored_noise_sigma

    return floored_noise_sigma(_grey(_centre(image, LOCAL_NOISE_SIDE)))


def _significant_shift(reference: np.ndarray, moving: np.ndarray, noise: float, noise_moving: float
                       ) -> tuple[float, float] | None:
    """The shift of grey tile ``moving`` against ``reference`` (:func:`refined_shift` from none),
    or None where it is not significant: its Mahalanobis length under ``noise`` (the std of the
    tiles' unsmoothed difference per pixel; the smoothed gradients' normal matrix over that
    variance is the shift's inverse covariance, the smoothing's correlation of the noise summing
    to one; the normal matrix less what ``moving``'s own noise of std ``noise_moving`` adds to it)
    below :data:`LOCAL_SIGNIFICANCE`, or no component of :data:`LOCAL_FROM` px."""
    from scipy.ndimage import gaussian_filter

    if float(np.ptp(reference)) == 0.0 or float(np.ptp(moving)) == 0.0 or noise <= 0:
        return None
    # one Gauss-Newton step from none first: a tile that it moves by less than half LOCAL_FROM is
    # left (most of a frame; the whole refinement of every tile of a 1024-px frame took seconds)
    a = gaussian_filter(np.asarray(reference, np.float64), REFINE_SMOOTHING)
    b = gaussian_filter(np.asarray(moving, np.float64), REFINE_SMOOTHING)
    gy, gx = (d[3:-3, 3:-3] for d in np.gradient(b))
    normal = np.array([[np.sum(gy * gy), np.sum(gy * gx)], [np.sum(gy * gx), np.sum(gx * gx)]])
    if np.linalg.cond(normal) > 1e8:
        return None
    residual = (b - a)[3:-3, 3:-3]
    step = np.linalg.solve(normal, np.array([np.sum(gy * residual), np.sum(gx * residual)]))
    if max(abs(step)) < LOCAL_FROM / 2 or _significance(step, normal, gy.size, noise, noise_moving) < \
            LOCAL_SIGNIFICANCE / 2:
        return None
    dy, dx = refined_shift(reference, moving, (0.0, 0.0))
    if max(abs(dy), abs(dx)) < LOCAL_FROM:
        return None
    g = _moved(gaussian_filter(np.asarray(moving, np.float64), REFINE_SMOOTHING).astype(np.float32), dy, dx)
    m = int(math.ceil(max(abs(dy), abs(dx)))) + 3
    gy, gx = (d[m:-m, m:-m].astype(np.float64) for d in np.gradient(g.astype(np.float64)))
    normal = np.array([[np.sum(gy * gy), np.sum(gy * gx)], [np.sum(gy * gx), np.sum(gx * gx)]])
    return (dy, dx) if _significance((dy, dx), normal, gy.size, noise, noise_moving) >= LOCAL_SIGNIFICANCE else None


def _significance(shift: Any, normal: np.ndarray, pixels: int, noise: float, noise_moving: float) -> float:
    """The Mahalanobis length of ``shift`` (:func:`_significant_shift`): ``normal`` (the smoothed
    gradients' normal matrix over ``pixels``) less what the moving tile's own noise (std
    ``noise_moving``) adds to it (a flat tile's noise alone passed), over ``noise``'s variance."""
    normal = normal - np.eye(2) * pixels * _smoothed_gradient_gain() * noise_moving ** 2
    values, vectors = np.linalg.eigh(normal)
    normal = (vectors * np.clip(values, 0.0, None)) @ vectors.T
    t = np.asarray(shift, np.float64)
    return math.sqrt(max(float(t @ normal @ t), 0.0)) / noise


@functools.lru_cache(maxsize=1)
def _smoothed_gradient_gain() -> float:
    """The variance of one component of the gradient (central differences) of white noise of unit
    variance smoothed by :data:`REFINE_SMOOTHING`, per pixel."""
    from scipy.ndimage import gaussian_filter

    impulse = np.zeros((41, 41))
    impulse[20, 20] = 1.0
    return float(np.sum(np.gradient(gaussian_filter(impulse, REFINE_SMOOTHING), axis=0) ** 2))


AGREE_WINDOW = 5
"""The side (px) of the box over which :func:`kept_where_agreeing` compares a moved frame with
the first (the mean difference there, whose noise is the frames' over the window's side)."""
AGREE_WITHIN = 4.0
"""A moved frame's pixel keeps its value where the box mean of its difference from the first is
within this many of that mean's noise stds; from there to twice as far it gives way to the
first frame's value linearly, beyond that it takes the first's."""
AGREE_ENERGY_WITHIN = 4.0
"""The same for the box mean of the squared difference (over the window and the channels), in
stds of that mean above its expected value, the two frames' noise variances summed (a
chi-square's): misaligned texture (a frame turned, which no shift undoes) differs by as much
either way, which the mean difference averages away."""


def kept_where_agreeing(moved: np.ndarray, first: np.ndarray, sigma_moved: float, sigma_first: float
                        ) -> tuple[np.ndarray, float]:
    """``moved`` (a frame moved onto ``first``'s grid, both (H, W[, C]) on [0, 1], noise stds given)
    where it agrees with ``first`` as their noise allows, ``first``'s values where it does not (a
    shift misjudged on an edge, a part of the scene that moved, a frame of another scene): the box
    mean (:data:`AGREE_WINDOW`) of their difference per pixel and channel against
    :data:`AGREE_WITHIN` times its noise std, and that of its square (over the channels) against its
    expected value by :data:`AGREE_ENERGY_WITHIN` of its stds (the stricter of the two). The mean of frames so kept falls back to the first
    frame where they disagree, as it does on the border a shift uncovers. Also the share of
    values that gave way (any part). float32."""
    from scipy.ndimage import uniform_filter

    moved = np.asarray(moved, np.float32)
    first = np.asarray(first, np.float32)
    size = (AGREE_WINDOW, AGREE_WINDOW) + (1,) * (moved.ndim - 2)
    d = (moved - first).astype(np.float64)
    difference = uniform_filter(d, size=size, mode="reflect")
    level = AGREE_WITHIN * math.hypot(sigma_moved, sigma_first) / AGREE_WINDOW
    keep = np.clip(2.0 - np.abs(difference) / level, 0.0, 1.0)
    expected = sigma_moved ** 2 + sigma_first ** 2
    if expected > 0:
        squares = d * d if d.ndim == 2 else (d * d).mean(axis=-1)
        count = AGREE_WINDOW ** 2 * (1 if d.ndim == 2 else d.shape[-1])
        excess = (uniform_filter(squares, size=AGREE_WINDOW, mode="reflect") / expected - 1.0) / math.sqrt(2.0 / count)
        energy = np.clip(2.0 - excess / AGREE_ENERGY_WITHIN, 0.0, 1.0)
        keep = np.minimum(keep, energy if d.ndim == 2 else energy[..., None])
    keep = keep.astype(np.float32)
    return keep * moved + (1.0 - keep) * first, float(np.mean(keep < 1.0))


REFINE_SMOOTHING = 1.0
"""The std (pixels) of the Gaussian both images are smoothed by before :func:`refined_shift`
(it shifts with them, so the shift is the same; their noise's gradients are smaller): on
3-frame bursts of the tune images (set5, kate; 112 px, shifts of up to 3 px in half pixels) the
shift's mean error was 0.016 / 0.028 / 0.060 px at sigma 15 / 25 / 50, against 0.013 / 0.027 /
0.147 unsmoothed and 0.068 / 0.162 / 0.364 for the correlation's estimate alone (on the held-out
crops, more textured: 0.017 / 0.028 / 0.058 against 0.017 / 0.021 / 0.114 for the correlation;
``benchmarks/registered_burst_probe.py --shift-errors``)."""
REFINE_ROUNDS = 8
"""Gauss-Newton steps of :func:`refined_shift` at most (it stops once a step is below
:data:`REFINE_TOLERANCE` px)."""
REFINE_TOLERANCE = 1e-3
"""The step (px) below which :func:`refined_shift` stops."""
REFINE_REACH = 1.0
"""Pixels :func:`refined_shift` may move from its start (the correlation's estimate, good to a
fraction of a pixel) before it gives up and returns the start."""


def refined_shift(reference: np.ndarray, moving: np.ndarray, start: tuple[float, float]) -> tuple[float, float]:
    """The shift ``t`` from ``start`` that minimises the squared difference between ``reference``
    and ``moving`` moved by it (both grey (H, W), smoothed by :data:`REFINE_SMOOTHING`), on the
    pixels it leaves inside the frame: Gauss-Newton steps, the image's gradient (central
    differences) as the Jacobian. A shift that leaves too few pixels, a step that is not finite,
    or one that runs further than :data:`REFINE_REACH` from the start returns ``start``; a flat
    image (or one with content along one direction only) the shift so far."""
    from scipy.ndimage import gaussian_filter

    a = gaussian_filter(np.asarray(reference, np.float64), REFINE_SMOOTHING)
    b = gaussian_filter(np.asarray(moving, np.float64), REFINE_SMOOTHING).astype(np.float32)
    dy, dx = start
    for _ in range(REFINE_ROUNDS):
        m = int(math.ceil(max(abs(dy), abs(dx)))) + 3
        if 2 * m + 4 >= min(a.shape):
            return start
        g = _moved(b, dy, dx).astype(np.float64)
        gy, gx = np.gradient(g)
        inner = np.s_[m:-m, m:-m]
        jacobian = np.stack([-gy[inner].ravel(), -gx[inner].ravel()], axis=1)
        normal = jacobian.T @ jacobian
        if np.linalg.cond(normal) > 1e8:  # a flat image, or content along one direction only
            return (dy, dx)
        step = np.linalg.solve(normal, -jacobian.T @ (g - a)[inner].ravel())
        if not np.isfinite(step).all():
            return start
        dy, dx = dy + float(step[0]), dx + float(step[1])
        if math.hypot(dy - start[0], dx - start[1]) > REFINE_REACH:
            return start  # run off: the correlation's estimate stands
        if max(abs(step)) < REFINE_TOLERANCE:
            break
    return (dy, dx)


START_SEARCH = 3
"""Whole pixels each way around the correlation's estimate (:func:`located_shift`) over which the
mean squared difference of the smoothed frames is searched for a better start."""


def located_shift(reference: np.ndarray, moving: np.ndarray) -> tuple[float, float]:
    """The shift ``t`` (rows, columns) with ``moving(p) ~ reference(p + t)`` of two grey images of
    one size: :func:`estimate_shift`'s correlation, then the whole-pixel shift within
    :data:`START_SEARCH` of it whose overlap has the least mean squared difference (both smoothed
    by :data:`REFINE_SMOOTHING`) where that is another one (the correlation's peak on a smooth
    photo is broad, and noise moved it: a new user's 64-px crops of a baby's face were found 1.9
    and 2.2 px off, and moving from there by least squares stopped at a false minimum), then
    :func:`refined_shift` from the better start."""
    start = estimate_shift(reference, moving)
    best = _whole_pixel_shift(reference, moving, start)
    centre = (int(round(start[0])), int(round(start[1])))
    return refined_shift(reference, moving, start if best == centre else (float(best[0]), float(best[1])))


def _whole_pixel_shift(reference: np.ndarray, moving: np.ndarray, start: tuple[float, float]) -> tuple[int, int]:
    """The whole-pixel shift within :data:`START_SEARCH` of ``start`` (rounded) whose overlap of the
    two grey images (smoothed by :data:`REFINE_SMOOTHING`) has the least mean squared difference;
    the rounded start where none does better."""
    from scipy.ndimage import gaussian_filter

    a = gaussian_filter(np.asarray(reference, np.float64), REFINE_SMOOTHING)
    b = gaussian_filter(np.asarray(moving, np.float64), REFINE_SMOOTHING)
    h, w = a.shape
    centre = (int(round(start[0])), int(round(start[1])))
    best, least = centre, math.inf
    for iy in range(centre[0] - START_SEARCH, centre[0] + START_SEARCH + 1):
        for ix in range(centre[1] - START_SEARCH, centre[1] + START_SEARCH + 1):
            if 2 * max(abs(iy), abs(ix)) >= min(h, w) - 4:
                continue
            rows, cols = h - abs(iy), w - abs(ix)
            d = a[max(0, iy):max(0, iy) + rows, max(0, ix):max(0, ix) + cols] - \
                b[max(0, -iy):max(0, -iy) + rows, max(0, -ix):max(0, -ix) + cols]
            error = float(np.mean(d * d))
            if error < least:
                best, least = (iy, ix), error
    return best


def _moved(image: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """``image`` (H, W[, C]) moved by (dy, dx) pixels, ``out(q) = image(q - t)``, by a phase ramp on
    its Fourier transform after mirroring it out (:data:`ALIGN_PAD`); float32."""
    from scipy import fft

    planes = np.asarray(image, np.float32)
    planes = planes if planes.ndim == 3 else planes[..., None]
    h, w = planes.shape[:2]
    pad = ALIGN_PAD + int(math.ceil(max(abs(dy), abs(dx))))
    padded = np.pad(planes, ((pad, pad), (pad, pad), (0, 0)), mode="symmetric")
    ph, pw = padded.shape[:2]
    ramp = np.exp(-2j * np.pi * (np.fft.fftfreq(ph)[:, None] * dy + np.fft.rfftfreq(pw)[None, :] * dx))
    ramp = ramp.astype(np.complex64)
    moved = np.empty_like(planes)
    for c in range(planes.shape[2]):
        moved[..., c] = fft.irfft2(fft.rfft2(padded[..., c]) * ramp, s=(ph, pw))[pad:pad + h, pad:pad + w]
    return moved if np.ndim(image) == 3 else moved[..., 0]


def _centre(image: np.ndarray, side: int) -> np.ndarray:
    h, w = image.shape[:2]
    top, left = max(0, (h - side) // 2), max(0, (w - side) // 2)
    return image[top:top + side, left:left + side]


def _grey(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image, dtype=np.float64)
    return image.mean(axis=2) if image.ndim == 3 else image


def _on_clean_grid(obs: Observation, shape: Shape) -> np.ndarray | None:
    """An observation brought to the clean grid for the first estimate (bicubic), or None when it
    has unobserved pixels (a mask), which a correlation would read as content (a low-res or
    blurred photo's transparent pixels, left out of its data term, are filled from the opaque
    ones in its image: read as they are)."""
    from skimage.transform import resize

    from .operators import inner_operator

    y = torch.from_numpy(obs.image).permute(2, 0, 1)[None]
    if not torch.equal(inner_operator(obs.operator).project(torch.ones_like(y)), torch.ones_like(y)):
        return None
    image = _grey(obs.image)
    return image if image.shape == shape else resize(image, shape, order=3, mode="reflect")


def shifted_shots_said(observations: Sequence[Observation], names: Sequence[str]) -> list[str]:
    """A line per shot of a joint fit (after the first; of another kind or size than it: a noisy
    burst's frames check themselves, :mod:`linr.stabilise`) that is shifted against the first by half
    a pixel or more (:func:`misaligned_by` on the clean grid), which a fit without registration takes
    as lined up: a new user's x2 view moved by (2, 4) px went unsaid. ``names``: each one's file."""
    from .problem import clean_shape

    if len(observations) < 2:
        return []
    shape = clean_shape(observations)
    reference = _on_clean_grid(observations[0], shape)
    if reference is None:
        return []
    said = []
    for k, obs in enumerate(observations[1:], start=1):
        if obs.kind == observations[0].kind and obs.image.shape == observations[0].image.shape:
            continue
        moving = _on_clean_grid(obs, shape)
        shift = None if moving is None else misaligned_by(reference, moving)
        if shift is not None:
            said.append(f"{names[k]} ({obs.kind}) looks shifted against {names[0]} by x {shift[1]:+.1f}, y {shift[0]:+.1f} "
                        "px (restored-image pixels): a joint fit takes its shots as lined up; --register translation "
                        "fits the shift")
    return said


def register(observations: Sequence[Observation], transform: str = "translation", *,
             shape: Shape, estimate: bool = True, shifts: Sequence[Sequence[float]] | None = None,
             margin: float | None = None, lr: float = REGISTER_LR,
             notes: list[str] | None = None) -> list[Observation]:
    """The observations with every one but the first (the reference) registered: its operator
    wrapped in :class:`Registered` with a ``transform`` from :data:`TRANSFORMS`, started at the
    classical estimate of its shift against the reference (``estimate``: :func:`located_shift`
    on the clean grid, :func:`estimate_shift` where either leaves transparent pixels out of its data
    term, a low-res or blurred photo's, filled by mirroring: a noisy photo's transparent pixels are
    filled too, and read as seen either way; masked observations
    start at zero). ``shape`` is the clean image's (H, W). ``margin`` (clean pixels) is how far
    the fit may move a transform beyond its start (default: 1 pixel plus 1% of the smaller
    side). ``shifts`` gives the starting shifts (rows, columns; clean pixels) of observations
    1, 2, ... instead of estimating them (with ``lr=0`` they stay as given: known shifts).
    ``notes`` receives a line per frame that starts at zero for want of an estimate."""
    if transform not in TRANSFORMS:
        raise InputError(f"unknown registration {transform!r}; choose from {', '.join(TRANSFORMS)}")
    observations = list(observations)
    if len(observations) < 2:
        raise InputError("registration needs at least two observations (the first is the reference)")
    if margin is None:
        margin = 1.0 + 0.01 * min(shape)
    if not (margin > 0 and math.isfinite(margin)):
        raise InputError(f"registration margin must be a positive number of pixels, got {margin}")
    notes = [] if notes is None else notes
    if shifts is not None:
        shifts = [tuple(float(v) for v in t) for t in shifts]
        if len(shifts) != len(observations) - 1 or any(len(t) != 2 for t in shifts):
            raise InputError(f"registration: {len(observations) - 1} starting shifts (rows, columns) "
                             f"needed, one per observation after the first; got {len(shifts)}")
        estimate = False
    if not (lr >= 0 and math.isfinite(lr)):
        raise InputError(f"registration step must be a finite number >= 0, got {lr}")
    reference = _on_clean_grid(observations[0], shape) if estimate else None
    if estimate and reference is None:
        raise InputError("the first observation is the registration reference and must have no "
                         "missing pixels (put a noisy, low-res or blurred frame first)")
    out = [observations[0]]
    for k, obs in enumerate(observations[1:], start=1):
        if isinstance(obs.operator, Registered):
            raise InputError(f"observation {k} ({obs.kind}) is registered already")
        start = (0.0, 0.0) if shifts is None else shifts[k - 1]
        moving = _on_clean_grid(obs, shape) if estimate else None
        if moving is not None:  # the correlation, checked by whole pixels and refined by least squares (its
            # peak alone started a new user's x2 view shifted by (2, 4) at (-0.1, -1.8), and the fit stopped
            # 1 px off on each axis); the peak alone where either photo has pixels filled (transparent ones,
            # mirrored), which least squares would read as seen
            filled = any(isinstance(o.operator, LeftOut) for o in (observations[0], obs))
            start = estimate_shift(reference, moving) if filled else located_shift(reference, moving)
        elif estimate:
            notes.append(f"registration: {obs.kind} frame {k} has missing pixels; its shift starts at 0")
        t = TRANSFORMS[transform](start, lr=lr)
        allowed = t.displacement_range(shape) + np.array([-margin, margin])
        if transform != "translation":  # a matrix may move corners either way
            allowed = np.abs(allowed).max() * np.array([[-1.0, 1.0], [-1.0, 1.0]])
        op = Registered(obs.operator, t, allowed)
        try:
            op.keep_map(shape)
        except ValueError as exc:
            raise InputError(f"{obs.kind} frame {k}: {exc}") from None
        out.append(dataclasses.replace(obs, operator=op))
    return out


def registration_report(operators: Sequence[Operator]) -> list[dict[str, Any] | None]:
    """Per observation, its fitted transform (``describe()``) or None when it is not registered
    (the reference); looks through compositions (a stop rule's held-out pixels)."""
    found = []
    for op in operators:
        found.append(_find(op))
    return found


def _find(op: Operator) -> dict[str, Any] | None:
    if isinstance(op, Registered):
        return op.transform.describe()
    for part in getattr(op, "operators", []):
        got = _find(part)
        if got is not None:
            return got
    return None
