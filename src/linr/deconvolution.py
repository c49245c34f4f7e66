"""The image that explains a blurred photo best near a given one: the data step of plug-and-play
deblurring.

For a photo ``y`` blurred by a linear operator ``A`` (a :class:`~linr.operators.Blur`) with
Gaussian noise of std ``sigma``, and an estimate ``z`` of the sharp image believed to within
Gaussian errors of std ``level``, :func:`explain_blurred` returns

    x = argmin |A x - y|^2 / sigma^2 + |x - z|^2 / level^2
      = (A^T A + w I)^-1 (A^T y + w z),   w = (sigma / level)^2,

the maximum a posteriori image of the two (half-quadratic splitting's data step; Zhang et al.
2017, "Learning deep CNN denoiser prior for image restoration", use it with a learned denoiser).
A circular blur is diagonal in the 2-D Fourier basis, so the solve is exact there (float64 FFTs);
the reflecting blur (the default for real photos: the image mirrored at its borders, then
convolved) by conjugate gradients in float64 on the normal equations, started at ``z``, the blur
made by FFTs of the mirrored image and its adjoint by automatic differentiation, preconditioned by
the circular blur's exact solve (the two differ only near the borders).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .operators import Blur

__all__ = ["explain_blurred", "MAX_ITERATIONS", "TOLERANCE"]

MAX_ITERATIONS = 300
"""Conjugate-gradient iterations at most (a reflecting blur)."""

TOLERANCE = 1e-14
"""Stop when the squared residual of the normal equations falls below this fraction of that of
their right-hand side (a relative residual of 1e-7)."""


def _tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) -> (1, C, H, W) float64."""
    return torch.from_numpy(np.ascontiguousarray(image, np.float64)).permute(2, 0, 1)[None].contiguous()


def explain_blurred(estimate: np.ndarray, blurred: np.ndarray, operator: "Blur", sigma: float,
                    level: float) -> tuple[np.ndarray, dict[str, Any]]:
    """The image (float32 (H, W, C), unclipped) nearest ``estimate`` (H, W, C) that explains the
    ``blurred`` photo (H, W, C) through ``operator`` with noise std ``sigma`` when the estimate is
    believed to within ``level`` (module docstring; both on one scale, positive), and what the
    solve did: ``{"solver": "fft"}`` or ``{"solver": "cg", "iterations": n, "residual": r}``."""
    if not (sigma > 0 and level > 0):
        raise ValueError(f"sigma {sigma}, level {level}: both must be positive")
    weight = (sigma / level) ** 2
    z, y = _tensor(estimate), _tensor(blurred)
    if getattr(operator, "boundary", None) == "circular":
        h, w = z.shape[-2:]
        otf = operator._otf((h, w), z.device, torch.float64)
        numerator = torch.fft.rfft2(y) * otf.conj() + weight * torch.fft.rfft2(z)
        x = torch.fft.irfft2(numerator / (otf.abs() ** 2 + weight), s=(h, w))
        return x[0].permute(1, 2, 0).numpy().astype(np.float32), {"solver": "fft"}

    h, w = z.shape[-2:]
    otf = _circular_otf(operator, (h, w))
    blur = _fft_blur(operator)

    def normal(v: torch.Tensor) -> torch.Tensor:  # (A^T A + w I) v
        with torch.enable_grad():
            probe = v.detach().clone().requires_grad_(True)
            out = blur(probe)
            (grad,) = torch.autograd.grad(out, probe, grad_outputs=out.detach())
        return grad + weight * v

    def precondition(r: torch.Tensor) -> torch.Tensor:  # the circular blur's (A^T A + w I)^-1
        return torch.fft.irfft2(torch.fft.rfft2(r) / (otf.abs() ** 2 + weight), s=(h, w))

    with torch.enable_grad():
        probe = torch.zeros_like(z, requires_grad=True)
        (aty,) = torch.autograd.grad(blur(probe), probe, grad_outputs=y)
    b = aty + weight * z
    x = z.clone()
    r = b - normal(x)
    m = precondition(r)
    p = m.clone()
    rm, start = float((r * m).sum()), float((b * b).sum())
    rs = float((r * r).sum())
    iterations = 0
    while iterations < MAX_ITERATIONS and rs > TOLERANCE * start:
        ap = normal(p)
        step = rm / float((p * ap).sum())
        x += step * p
        r -= step * ap
        m = precondition(r)
        new = float((r * m).sum())
        p = m + (new / rm) * p
        rm, rs = new, float((r * r).sum())
        iterations += 1
    relative = (rs / start) ** 0.5 if start > 0 else 0.0
    return x[0].permute(1, 2, 0).numpy().astype(np.float32), {
        "solver": "cg", "iterations": iterations, "residual": float(f"{relative:.3g}")}


def _circular_otf(operator: "Blur", shape: tuple[int, int]) -> torch.Tensor:
    """The 2-D Fourier transform (rfft2, float64) of ``operator``'s kernel as a circular blur of ``shape``."""
    from .operators import Blur

    return Blur(operator.kernel, boundary="circular", normalize=False)._otf(shape, torch.device("cpu"), torch.float64)


def _fft_blur(operator: "Blur") -> Callable[[torch.Tensor], torch.Tensor]:
    """``operator``'s reflecting blur (:meth:`linr.operators.Blur.forward`: the image mirrored at
    its borders, then convolved) made by FFTs in float64: the mirrored image's circular
    convolution, of which the pixels whose kernel reads no wrapped value are kept; linear, so
    autograd gives its adjoint."""
    kernel = operator.kernel.to(torch.float64)
    kh, kw = kernel.shape
    top, left = kh - 1 - kh // 2, kw - 1 - kw // 2

    def blur(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        b, c = x.shape[:2]
        padded = F.pad(x.reshape(b * c, 1, h, w), (left, kw - 1 - left, top, kh - 1 - top), mode="reflect")
        size = padded.shape[-2:]
        full = torch.fft.irfft2(torch.fft.rfft2(padded) * torch.fft.rfft2(kernel, s=size), s=size)
        return full[..., kh - 1:, kw - 1:].reshape(b, c, h, w)

    return blur
