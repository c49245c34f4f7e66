"""Forward operators: differentiable maps from a clean image to one observation's space.

Every operator works on batched images ``(B, C, H, W)`` and shares one small interface:

- ``op(x)``: the degradation ``A x``;
- ``op.output_shape((H, W))`` / ``op.input_shape((h, w))``: map sizes between the clean and the
  observed domain (``input_shape`` tells the fit which grid to render for an observation);
- ``op.adjoint(y)``: ``A^T y`` (all operators here are linear);
- ``op.pixel_weights((H, W))``: what the operator can do for the fit's fast path: a weight map
  ``m`` of shape (1 or C, H, W) when it acts pixel by pixel (``A x = m * x``: identity, masks,
  and compositions of them), None when it mixes pixels (downsampling, blur);
- ``op.describe()``: a JSON-able description for reports;
- ``op.tile(window, shape)``: the same operator restricted to a window of the clean image (tiled
  restoration, :mod:`linr.tiling`): the window's own operator, the observation pixels it
  produces, and which of them it produces exactly as the whole image's operator does
  (``op.halo`` and ``op.alignment`` tell the tile planner how far an operator reaches and which
  window corners it needs).

Operators are deterministic: noise belongs to simulation (:mod:`linr.simulate`), not here. Their
tensors (kernel, mask) follow the input's device and dtype at call time, so there is no stored
device to go stale.
"""

from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "Operator",
    "Identity",
    "Downsample",
    "Mask",
    "Blur",
    "Compose",
    "LeftOut",
    "inner_operator",
    "Window",
    "OperatorTile",
    "DOWNSAMPLE_KERNELS",
    "downsample_taps",
    "gaussian_kernel",
]

Shape = tuple[int, int]


@dataclass(frozen=True)
class Window:
    """A rectangle of an image grid: rows ``top:top + height``, columns ``left:left + width``."""

    top: int
    left: int
    height: int
    width: int

    @property
    def slices(self) -> tuple[slice, slice]:
        return slice(self.top, self.top + self.height), slice(self.left, self.left + self.width)

    @property
    def shape(self) -> Shape:
        return self.height, self.width

    def divided(self, factor: int) -> "Window":
        """The same rectangle on a grid ``factor`` times coarser (corners must be multiples)."""
        if any(v % factor for v in (self.top, self.left, self.height, self.width)):
            raise ValueError(f"window {self} is not aligned to the factor {factor}")
        return Window(self.top // factor, self.left // factor, self.height // factor, self.width // factor)

    def covers(self, shape: Shape) -> bool:
        return (self.top, self.left, self.height, self.width) == (0, 0, shape[0], shape[1])


@dataclass
class OperatorTile:
    """An operator restricted to a window of the clean image (see :meth:`Operator.tile`)."""

    operator: "Operator"
    """Acts on the window's own clean grid."""
    window: Window
    """The observation pixels it produces, in the observation's coordinates."""
    valid: np.ndarray | None
    """(h, w) bool over those pixels: True where the window's operator gives exactly what the whole
    image's operator gives (the pixel's support lies in the window, or beyond the image's own
    border, where the boundary rule is the same); None: all of them."""


def _valid_along(start: int, size: int, length: int, outputs: int, stride: int, before: int,
                 after: int, edges_exact: bool) -> np.ndarray:
    """Per output of a window ``[start, start + size)`` of an axis of ``length`` clean pixels: does
    its support ``[o * stride - before, o * stride + after]`` (window coordinates) lie in the
    window, counting a side that is the image's own border as inside when ``edges_exact``?"""
    o = np.arange(outputs) * stride
    low_ok = o - before >= 0
    high_ok = o + after <= size - 1
    if edges_exact and start == 0:
        low_ok[:] = True
    if edges_exact and start + size == length:
        high_ok[:] = True
    return low_ok & high_ok


class Operator(ABC):
    """A linear degradation ``A`` acting on (B, C, H, W) tensors."""

    name: str = "operator"

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply ``A``. Shape: (B, C, H, W) -> (B, C, h, w)."""

    @abstractmethod
    def output_shape(self, shape: Shape) -> Shape:
        """Observed size (h, w) for a clean image of size (H, W); ValueError if impossible."""

    @abstractmethod
    def input_shape(self, shape: Shape) -> Shape:
        """Clean size (H, W) that produces an observation of size (h, w); ValueError if none."""

    def adjoint(self, y: torch.Tensor, input_shape: Shape | None = None) -> torch.Tensor:
        """``A^T y`` through autograd (exact for linear operators). Shape: (B, C, h, w) -> (B, C, H, W),
        the frame grown by :attr:`margins` unless ``input_shape`` says otherwise."""
        if input_shape is None:
            top, bottom, left, right = self.margins
            frame = self.input_shape(tuple(y.shape[-2:]))
            input_shape = (frame[0] + top + bottom, frame[1] + left + right)
        x = torch.zeros(*y.shape[:-2], *input_shape, dtype=y.dtype, device=y.device, requires_grad=True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(self.forward(x), x, grad_outputs=y)
        return grad

    def project(self, y: torch.Tensor) -> torch.Tensor:
        """Zero the entries of an observation that ``A`` cannot produce (unobserved pixels)."""
        return y

    def pixel_weights(self, shape: Shape) -> torch.Tensor | None:
        """``m`` (1 or C, H, W) float32 with ``A x = m * x`` for clean images of ``shape``, or None
        when ``A`` mixes pixels (the default: an operator says so only if it can)."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def parameter_groups(self, shape: Shape) -> list[dict[str, Any]]:
        """Adam parameter groups of what the fit trains in this operator besides the image (a
        registration's transform, :mod:`linr.registration`) for a clean image of ``shape``;
        none for a fixed operator (the default)."""
        return []

    def check(self, shape: Shape) -> None:
        """Raise ValueError when the operator's trained parameters have left their allowed range
        (a registration that diverged); a fixed operator has none."""

    halo: int = 0
    """How far (clean pixels) the operator reaches from an observation pixel's own place: the
    band along a window's inner edges that its tile cannot fit as well as the whole image does."""
    alignment: int = 1
    """Window corners and sizes must be multiples of this (a downsampling factor)."""
    scale: int = 1
    """Clean pixels per observation pixel along each axis."""

    margins: tuple[int, int, int, int] = (0, 0, 0, 0)
    """Pixels beyond the restored image's frame that :meth:`forward` reads (top, bottom, left,
    right): its input is the frame (of :meth:`input_shape`) grown by these, and the fit renders
    them too (a blur with free edges, which assumes nothing beyond the frame; none for the rest)."""

    def tile(self, window: Window, shape: Shape) -> OperatorTile:
        """This operator on ``window`` of a clean image of ``shape`` (see :class:`OperatorTile`).
        Raises ValueError for operators that cannot be tiled (the default)."""
        raise ValueError(f"a {self.name} observation cannot be restored in tiles (restore it whole)")


class Identity(Operator):
    """``A = I``: denoising."""

    name = "identity"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def output_shape(self, shape: Shape) -> Shape:
        return tuple(shape)

    def input_shape(self, shape: Shape) -> Shape:
        return tuple(shape)

    def adjoint(self, y: torch.Tensor, input_shape: Shape | None = None) -> torch.Tensor:
        return y

    def pixel_weights(self, shape: Shape) -> torch.Tensor:
        return torch.ones(1, *shape)

    def tile(self, window: Window, shape: Shape) -> OperatorTile:
        return OperatorTile(Identity(), window, None)


# --- downsampling ------------------------------------------------------------------------------


def _lanczos2(t: np.ndarray) -> np.ndarray:
    return np.sinc(t) * np.sinc(t / 2.0) * (np.abs(t) < 2.0)


def _cubic(t: np.ndarray, a: float = -0.5) -> np.ndarray:
    t = np.abs(t)
    inner = (a + 2) * t**3 - (a + 3) * t**2 + 1
    outer = a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return np.where(t <= 1, inner, np.where(t < 2, outer, 0.0))


# name -> (kernel function or None for box, support in low-res pixels)
DOWNSAMPLE_KERNELS: dict[str, tuple[Callable[[np.ndarray], np.ndarray] | None, int]] = {
    "lanczos2": (_lanczos2, 2),
    "bicubic": (_cubic, 2),
    "box": (None, 0),
}


def downsample_taps(factor: int, kernel: str = "lanczos2") -> np.ndarray:
    """1-D anti-aliasing taps (float64, sum 1) of Deep Image Prior's downsampler.

    ``lanczos2`` and ``bicubic`` are sampled at ``(i - (n - 1) / 2) / factor``, centred on the
    middle of each block of ``factor`` high-resolution pixels (where PIL centres its output
    pixels): for an even factor that is between pixels (phase 0.5, ``n = 4 * factor`` taps, DIP's
    downsampler), for an odd factor on a pixel (``n = 4 * factor - 1`` taps; the two taps DIP's
    even formula would add lie on the kernel's zeros at +-2). ``box`` averages ``factor`` pixels.
    The number of taps always has the parity of ``factor``, so the padding ``(n - factor) / 2``
    is whole and symmetric.
    """
    if kernel not in DOWNSAMPLE_KERNELS:
        raise ValueError(f"unknown downsampling kernel {kernel!r}; choose from {sorted(DOWNSAMPLE_KERNELS)}")
    if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or int(factor) != factor or factor < 1:
        raise ValueError(f"downsampling factor must be a positive integer, got {factor!r}")
    fn, support = DOWNSAMPLE_KERNELS[kernel]
    if fn is None:
        return np.full(factor, 1.0 / factor)
    n = 2 * support * factor - (factor % 2)
    t = (np.arange(n) - (n - 1) / 2.0) / factor
    taps = fn(t)
    return taps / taps.sum()


class Downsample(Operator):
    """Anti-aliased downsampling by an integer ``factor`` (super-resolution).

    Separable taps from :func:`downsample_taps`, replication padding ``(n - factor) / 2``,
    stride ``factor``: DIP's ``lanczos2`` downsampler by default (16 taps, padding 6 at x4).
    Clean images must have sides divisible by ``factor``.
    """

    name = "downsample"

    def __init__(self, factor: int, kernel: str = "lanczos2"):
        if isinstance(factor, bool) or not isinstance(factor, numbers.Real) or int(factor) != factor or factor < 1:
            raise ValueError(f"downsampling factor must be a positive integer, got {factor!r}")
        self.factor = int(factor)
        self.kernel = kernel
        self.taps = torch.from_numpy(downsample_taps(self.factor, kernel))
        self.pad = (len(self.taps) - self.factor) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        self.output_shape((h, w))
        taps = self.taps.to(device=x.device, dtype=x.dtype)
        n = len(taps)
        y = x.reshape(b * c, 1, h, w)
        if self.pad:
            y = F.pad(y, (self.pad,) * 4, mode="replicate")
        y = F.conv2d(y, taps.view(1, 1, n, 1), stride=(self.factor, 1))
        y = F.conv2d(y, taps.view(1, 1, 1, n), stride=(1, self.factor))
        return y.reshape(b, c, h // self.factor, w // self.factor)

    def output_shape(self, shape: Shape) -> Shape:
        h, w = shape
        if h % self.factor or w % self.factor:
            raise ValueError(
                f"image size {w}x{h} is not divisible by the downsampling factor {self.factor}"
            )
        return h // self.factor, w // self.factor

    def input_shape(self, shape: Shape) -> Shape:
        return shape[0] * self.factor, shape[1] * self.factor

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "factor": self.factor, "kernel": self.kernel}

    @property
    def halo(self) -> int:  # type: ignore[override]
        return self.pad + self.factor

    @property
    def alignment(self) -> int:  # type: ignore[override]
        return self.factor

    @property
    def scale(self) -> int:  # type: ignore[override]
        return self.factor

    def tile(self, window: Window, shape: Shape) -> OperatorTile:
        self.output_shape(shape)
        out = window.divided(self.factor)
        if window.covers(shape):
            return OperatorTile(self, out, None)
        n = len(self.taps)
        rows = _valid_along(window.top, window.height, shape[0], out.height, self.factor,
                            self.pad, n - 1 - self.pad, True)
        cols = _valid_along(window.left, window.width, shape[1], out.width, self.factor,
                            self.pad, n - 1 - self.pad, True)
        return OperatorTile(Downsample(self.factor, self.kernel), out, rows[:, None] & cols[None, :])


# --- masking -----------------------------------------------------------------------------------


class Mask(Operator):
    """Keep-mask ``M`` (1 = observed): inpainting. ``A x = M * x``.

    The mask has shape (H, W) (shared by all channels) or (C, H, W).
    """

    name = "mask"

    def __init__(self, mask: torch.Tensor | np.ndarray):
        mask = torch.as_tensor(np.asarray(mask) if not torch.is_tensor(mask) else mask)
        if mask.ndim not in (2, 3):
            raise ValueError(f"mask must be (H, W) or (C, H, W), got shape {tuple(mask.shape)}")
        self.mask = (mask > 0.5).to(torch.float32)

    @property
    def shape(self) -> Shape:
        return tuple(self.mask.shape[-2:])

    @property
    def kept_fraction(self) -> float:
        return float(self.mask.mean())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != self.shape:
            raise ValueError(f"image size {tuple(x.shape[-2:])} does not match mask size {self.shape}")
        return x * self.mask.to(device=x.device, dtype=x.dtype)

    def output_shape(self, shape: Shape) -> Shape:
        if tuple(shape) != self.shape:
            raise ValueError(f"image size {shape[1]}x{shape[0]} does not match mask size "
                             f"{self.shape[1]}x{self.shape[0]} (width x height)")
        return tuple(shape)

    input_shape = output_shape

    def adjoint(self, y: torch.Tensor, input_shape: Shape | None = None) -> torch.Tensor:
        return self.forward(y)

    project = adjoint

    def pixel_weights(self, shape: Shape) -> torch.Tensor:
        self.output_shape(shape)
        return self.mask if self.mask.ndim == 3 else self.mask[None]

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kept_fraction": round(self.kept_fraction, 6)}

    def tile(self, window: Window, shape: Shape) -> OperatorTile:
        self.output_shape(shape)
        rows, cols = window.slices
        return OperatorTile(Mask(self.mask[..., rows, cols]), window, None)


# --- blurring ----------------------------------------------------------------------------------


def gaussian_kernel(width: int, sigma: float) -> np.ndarray:
    """A ``width`` x ``width`` Gaussian (float64, sum 1), centred between or on pixels like
    MATLAB's ``fspecial('gaussian')``."""
    if int(width) != width or width < 1:
        raise ValueError(f"Gaussian kernel width must be a positive integer, got {width}")
    if not (sigma > 0 and math.isfinite(sigma)):
        raise ValueError(f"Gaussian kernel sigma must be positive, got {sigma}")
    t = np.arange(int(width)) - (width - 1) / 2.0
    g = np.exp(-(t**2) / (2.0 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


class Blur(Operator):
    """Convolution with a 2-D ``kernel`` (true convolution, kernel centre at ``(kh // 2, kw // 2)``).

    ``boundary='circular'`` convolves periodically through the FFT (the paper's deblurring, right
    for images that were blurred circularly, as the paper's were); ``'reflect'`` mirrors the image
    at its borders; ``'free'`` assumes nothing beyond the frame: the photo of a larger scene was
    blurred with what lay outside it, so the blur's input is the frame grown by the kernel's reach
    (:attr:`margins`: ``kh - 1`` rows and ``kw - 1`` columns in all) and every photo pixel is the
    kernel's sum over it without padding (a "valid" convolution); the fit renders that larger grid
    and returns the frame. ``None``: reflect, marked as not chosen (``boundary_chosen`` False) so
    that a preset or the defaults may pick another (the paper preset picks circular, the defaults
    free for a photo restored alone, :func:`linr.tasks.open_blur_boundary`). The kernel is
    normalised to sum 1 unless ``normalize=False``.
    """

    name = "blur"
    BOUNDARIES = ("circular", "reflect", "free")
    DEFAULT_BOUNDARY = "reflect"

    def __init__(
        self, kernel: np.ndarray | torch.Tensor, *, boundary: str | None = None, normalize: bool = True
    ):
        self.boundary_chosen = boundary is not None
        boundary = self.DEFAULT_BOUNDARY if boundary is None else boundary
        k = np.asarray(kernel.detach().cpu() if torch.is_tensor(kernel) else kernel, dtype=np.float64)
        if k.ndim != 2 or k.size == 0:
            raise ValueError(f"blur kernel must be a non-empty 2-D array, got shape {k.shape}")
        if not np.isfinite(k).all():
            raise ValueError("blur kernel contains non-finite values")
        if boundary not in self.BOUNDARIES:
            raise ValueError(f"unknown blur boundary {boundary!r}; choose from {self.BOUNDARIES}")
        if normalize:
            total = k.sum()
            if not total > 1e-12:
                raise ValueError(f"blur kernel must have a positive sum to be normalised, got {total:g}")
            k = k / total
        self.kernel = torch.from_numpy(k)
        self.boundary = boundary
        self._otf_cache: dict[tuple, torch.Tensor] = {}

    def with_boundary(self, boundary: str, *, chosen: bool = True) -> "Blur":
        """The same (normalised) kernel with another boundary rule, marked as chosen (``chosen``
        False: still open, so that a later choice may replace it)."""
        blur = Blur(self.kernel, boundary=boundary, normalize=False)
        blur.boundary_chosen = chosen
        return blur

    @property
    def margins(self) -> tuple[int, int, int, int]:  # type: ignore[override]
        """With free edges, the kernel's reach beyond the frame (``kh - 1 - kh // 2`` rows before,
        ``kh // 2`` after, as the reflecting blur reads them); else none."""
        if self.boundary != "free":
            return (0, 0, 0, 0)
        kh, kw = self.kernel.shape
        return (kh - 1 - kh // 2, kh // 2, kw - 1 - kw // 2, kw // 2)

    def _check(self, shape: Shape) -> None:
        kh, kw = self.kernel.shape
        h, w = shape
        if self.boundary == "circular" and (kh > h or kw > w):
            raise ValueError(f"blur kernel {kw}x{kh} is larger than the image {w}x{h}")
        if self.boundary in ("reflect", "free") and (kh // 2 >= h or kw // 2 >= w):
            edges = "" if not getattr(self, "boundary_chosen", True) else \
                " with reflected borders" if self.boundary == "reflect" else " with free edges"  # left open: either
            raise ValueError(f"blur kernel {kw}x{kh} is larger than the image {w}x{h} allows{edges} "
                             f"(at most {2 * w - 1}x{2 * h - 1})")

    def _otf(self, shape: Shape, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        key = (tuple(shape), str(device), dtype)
        if key not in self._otf_cache:
            kh, kw = self.kernel.shape
            psf = torch.zeros(shape, dtype=torch.float64)
            psf[:kh, :kw] = self.kernel
            psf = torch.roll(psf, shifts=(-(kh // 2), -(kw // 2)), dims=(0, 1))
            self._otf_cache[key] = torch.fft.rfft2(psf.to(dtype)).to(device)
        return self._otf_cache[key]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The blurred image: (B, C, H, W) -> (B, C, H, W); with free edges the input is the frame
        grown by :attr:`margins`, (B, C, H + kh - 1, W + kw - 1) -> (B, C, H, W)."""
        h, w = x.shape[-2:]
        if self.boundary == "free":
            return self._valid(x)
        self._check((h, w))
        if self.boundary == "circular":
            otf = self._otf((h, w), x.device, x.dtype)
            return torch.fft.irfft2(torch.fft.rfft2(x) * otf, s=(h, w))
        kh, kw = self.kernel.shape
        b, c = x.shape[:2]
        weight = torch.flip(self.kernel, dims=(0, 1)).to(device=x.device, dtype=x.dtype)
        # y[P] = sum_i k[i] x[P - i + kh // 2] (the centre of the kernel at (kh // 2, kw // 2), as
        # in the circular blur): a correlation with the flipped kernel reading kh - 1 - kh // 2
        # pixels before P and kh // 2 after
        top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
        y = F.pad(x.reshape(b * c, 1, h, w), (left, kw - 1 - left, top, kh - 1 - top), mode="reflect")
        return F.conv2d(y, weight[None, None]).reshape(b, c, h, w)

    def _valid(self, x: torch.Tensor) -> torch.Tensor:
        """The free-edged blur: every output pixel the kernel's sum over input pixels only."""
        kh, kw = self.kernel.shape
        b, c, h, w = x.shape
        if h < kh or w < kw:
            raise ValueError(f"a free-edged blur's input is the frame grown by the kernel's reach; "
                             f"{w}x{h} is smaller than the kernel {kw}x{kh}")
        weight = torch.flip(self.kernel, dims=(0, 1)).to(device=x.device, dtype=x.dtype)
        return F.conv2d(x.reshape(b * c, 1, h, w), weight[None, None]).reshape(b, c, h - kh + 1, w - kw + 1)

    def adjoint(self, y: torch.Tensor, input_shape: Shape | None = None) -> torch.Tensor:
        if self.boundary == "circular":
            h, w = y.shape[-2:]
            otf = self._otf((h, w), y.device, y.dtype)
            return torch.fft.irfft2(torch.fft.rfft2(y) * otf.conj(), s=(h, w))
        return super().adjoint(y, input_shape)  # with free edges: onto the frame grown by the margins

    def output_shape(self, shape: Shape) -> Shape:
        self._check(shape)
        return tuple(shape)

    input_shape = output_shape

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "kernel_shape": list(self.kernel.shape), "boundary": self.boundary}

    @property
    def halo(self) -> int:  # type: ignore[override]
        return max(self.kernel.shape) - 1

    def tile(self, window: Window, shape: Shape) -> OperatorTile:
        """With free edges, the window's own free blur: its fit renders the window grown by the
        kernel's reach, so every photo pixel of the window is explained exactly. Otherwise a
        window's blur mirrors at the window's borders; the blurred pixels that read across
        an inner border are not valid. At the image's own borders a reflecting blur is exact; a
        circular one wraps to the opposite border, outside the window, so those pixels are not
        valid either (unless the window is the whole image)."""
        self.output_shape(shape)
        if self.boundary == "free":  # the window's photo pixels, each explained by the window grown by the margins
            return OperatorTile(Blur(self.kernel, boundary="free", normalize=False), window, None)
        if window.covers(shape):
            return OperatorTile(self, window, None)
        kh, kw = self.kernel.shape
        exact = self.boundary == "reflect"
        rows = _valid_along(window.top, window.height, shape[0], window.height, 1,
                            kh - 1 - kh // 2, kh // 2, exact)
        cols = _valid_along(window.left, window.width, shape[1], window.width, 1,
                            kw - 1 - kw // 2, kw // 2, exact)
        part = Blur(self.kernel, boundary="reflect", normalize=False)
        return OperatorTile(part, window, rows[:, None] & cols[None, :])


# --- composition -------------------------------------------------------------------------------


class Cropped(Operator):
    """``operator`` in a fit that renders further beyond the frame than it reads: the rendering
    (the frame grown by ``margins``, top, bottom, left, right) cropped to the frame grown by the
    operator's own margins, then the operator. A joint fit of a blur with free edges and other
    observations gives each of them one (:func:`linr.problem.frame_operators`), so that all read
    the one rendering. Describes itself as ``operator`` does (what the observation is)."""

    def __init__(self, operator: Operator, margins: tuple[int, int, int, int]):
        own = operator.margins
        if len(margins) != 4 or any(m < o for m, o in zip(margins, own)):
            raise ValueError(f"margins {tuple(margins)} must reach at least the operator's own {own}")
        self.operator = operator
        self._margins = tuple(int(m) for m in margins)
        self.name = operator.name

    @property
    def margins(self) -> tuple[int, int, int, int]:  # type: ignore[override]
        return self._margins  # type: ignore[return-value]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (t, b, l, r), (ot, ob, ol, orr) = self._margins, self.operator.margins
        h, w = x.shape[-2:]
        return self.operator(x[..., t - ot:h - (b - ob), l - ol:w - (r - orr)])

    def output_shape(self, shape: Shape) -> Shape:
        return self.operator.output_shape(shape)

    def input_shape(self, shape: Shape) -> Shape:
        return self.operator.input_shape(shape)

    def project(self, y: torch.Tensor) -> torch.Tensor:
        return self.operator.project(y)

    def describe(self) -> dict[str, Any]:
        return self.operator.describe()

    def parameter_groups(self, shape: Shape) -> list[dict[str, Any]]:
        return self.operator.parameter_groups(shape)

    def check(self, shape: Shape) -> None:
        self.operator.check(shape)

    @property
    def halo(self) -> int:  # type: ignore[override]
        return self.operator.halo

    @property
    def alignment(self) -> int:  # type: ignore[override]
        return self.operator.alignment

    @property
    def scale(self) -> int:  # type: ignore[override]
        return self.operator.scale

    def tile(self, window: Window, shape: Shape) -> OperatorTile:
        return self.operator.tile(window, shape)  # the tile's fit frames its own operators again


class Compose(Operator):
    """Apply ``operators`` in order, e.g. ``Compose([Blur(k), Downsample(4)])``: blur then downsample."""

    name = "compose"

    def __init__(self, operators: Sequence[Operator]):
        if not operators:
            raise ValueError("Compose needs at least one operator")
        if any(any(op.margins) for op in operators[1:]):
            raise ValueError("only the first operator of a composition may read beyond the frame "
                             "(a blur with free edges)")
        self.operators = list(operators)

    @property
    def margins(self) -> tuple[int, int, int, int]:  # type: ignore[override]
        """The first operator's: the one that reads the image."""
        return self.operators[0].margins

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for op in self.operators:
            x = op(x)
        return x

    def output_shape(self, shape: Shape) -> Shape:
        for op in self.operators:
            shape = op.output_shape(shape)
        return shape

    def input_shape(self, shape: Shape) -> Shape:
        for op in reversed(self.operators):
            shape = op.input_shape(shape)
        return shape

    def project(self, y: torch.Tensor) -> torch.Tensor:
        return self.operators[-1].project(y)

    def pixel_weights(self, shape: Shape) -> torch.Tensor | None:
        """The product of the parts' maps when every part is pixel-wise (shapes are kept)."""
        total = None
        for op in self.operators:
            m = op.pixel_weights(shape)
            if m is None:
                return None
            total = m if total is None else total * m
        return total

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "operators": [op.describe() for op in self.operators]}

    def parameter_groups(self, shape: Shape) -> list[dict[str, Any]]:
        groups = []
        for op in self.operators:
            groups += op.parameter_groups(shape)
            shape = op.output_shape(shape)
        return groups

    def check(self, shape: Shape) -> None:
        for op in self.operators:
            op.check(shape)
            shape = op.output_shape(shape)

    @property
    def halo(self) -> int:  # type: ignore[override]
        total, scale = 0, 1
        for op in self.operators:
            total += op.halo * scale
            scale *= op.scale
        return total

    @property
    def alignment(self) -> int:  # type: ignore[override]
        align, scale = 1, 1
        for op in self.operators:
            align = math.lcm(align, op.alignment * scale)
            scale *= op.scale
        return align

    @property
    def scale(self) -> int:  # type: ignore[override]
        return math.prod(op.scale for op in self.operators)

    def tile(self, window: Window, shape: Shape) -> OperatorTile:
        """Each part tiled on the window the part before it produced. An observation pixel is
        valid when its part says so and it reads no invalid pixel of the part before (found by
        pushing those pixels, with random positive values so that no taps cancel, through it)."""
        parts, valid = [], None
        for op in self.operators:
            part = op.tile(window, shape)
            if valid is not None and not valid.all():
                probe = torch.from_numpy((~valid) * (1.0 + np.random.default_rng(0).random(valid.shape)))
                reached = part.operator(probe[None, None])[0, 0].abs().numpy() > 0
                valid = ~reached if part.valid is None else part.valid & ~reached
            else:
                valid = part.valid
            parts.append(part.operator)
            shape = op.output_shape(shape)
            window = part.window
        return OperatorTile(Compose(parts), window, valid)


class LeftOut(Compose):
    """``operator`` whose output pixels outside ``kept`` ((h, w) bool on its output grid) are not
    observed: ``Compose([operator, Mask(kept)])``, so a data term leaves them out (a low-res or
    blurred photo's transparent pixels, :func:`linr.scene.load_scene`). What reads the operator's
    kind (a refinement's projection or data step) reads :attr:`inner` (:func:`inner_operator`)
    and takes :attr:`kept` in."""

    name = "left-out"

    def __init__(self, operator: Operator, kept: np.ndarray | torch.Tensor):
        if isinstance(operator, (Mask, LeftOut)):
            raise ValueError(f"a {operator.name} operator's pixels are left out by its own mask")
        super().__init__([operator, Mask(np.asarray(kept, np.float32) if not torch.is_tensor(kept) else kept.float())])

    @property
    def inner(self) -> Operator:
        """The operator whose output is observed where :attr:`kept`."""
        return self.operators[0]

    @property
    def kept(self) -> np.ndarray:
        """(h, w) bool: the observed pixels of the output."""
        return self.operators[1].mask.cpu().numpy() > 0.5

    def with_inner(self, operator: Operator) -> "LeftOut":
        """The same pixels left out of ``operator``'s output (a blur whose boundary was resolved)."""
        return LeftOut(operator, self.kept)

    def describe(self) -> dict[str, Any]:
        return {**self.inner.describe(), "observed_fraction": round(float(self.kept.mean()), 6)}


def inner_operator(operator: Operator) -> Operator:
    """What ``operator`` does to the image: a :class:`LeftOut`'s inner operator, else itself."""
    return operator.inner if isinstance(operator, LeftOut) else operator
