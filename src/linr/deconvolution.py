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
made by FFTs of the mirrored image and its adjoint by automatic differentiation. (Preconditioned
by the circular blur's exact solve, or by the DCT's of the half-sample mirrored blur, it took 1.1
to 2.9x more iterations on a 128-px crop: their errors near the borders are amplified by up to
``1 / w``.)

A photo of a larger scene was blurred with what lay outside its frame, which no boundary rule
knows: with ``edges="free"`` the data step models no boundary. Its unknown is the image extended
by the kernel's reach on every side (``(H + kh - 1, W + kw - 1)``), whose blur without any padding
(a "valid" convolution) is the photo; the estimate, extended by mirroring, is what the extension
is believed near; the solve is the same conjugate gradients, and the photo's own pixels are
returned. A border pixel then only weighs what the photo says of it, rather than a mirrored
neighbourhood that was never there.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from .operators import Blur

__all__ = ["explain_blurred", "combined_solves", "deblurrable", "check_edges", "EDGES", "MAX_ITERATIONS", "TOLERANCE"]

EDGES = ("operator", "free")
"""What a data step assumes beyond the photo's frame: the blur's own boundary rule, or nothing
(module docstring)."""


def check_edges(edges: str) -> str:
    """``edges`` when it is one of :data:`EDGES`, else ValueError naming them."""
    if edges not in EDGES:
        raise ValueError(f"edges {edges!r}: expected one of {', '.join(EDGES)}")
    return edges

MAX_ITERATIONS = 1000
"""Conjugate-gradient iterations at most (a reflecting blur or free edges; measured with the
reflecting blur, free edges took about as many on 96-px crops): on a 128-px crop, about 100 at a
level of 30/255 for a photo with noise of std sqrt(2)/255 and 240-260 at the noise floor of
0.5/255 (a Gaussian and a motion blur); at ``grouped-deblur``'s first level (15/255) 55 and 129
(the Gaussian); fewer at lower levels."""

EXTENSION_WEIGHT = 1.0
"""With free edges, how much the extension beyond the frame is drawn to the mirrored estimate,
relative to the photo's own pixels (the data step's ``w``)."""

TOLERANCE = 1e-14
"""Stop when the squared residual of the normal equations falls below this fraction of that of
their right-hand side (a relative residual of 1e-7)."""


def _tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, C) -> (1, C, H, W) float64."""
    return torch.from_numpy(np.ascontiguousarray(image, np.float64)).permute(2, 0, 1)[None].contiguous()


def solver_for(operator: Any, edges: str) -> str:
    """How :func:`explain_blurred` solves for ``operator`` with ``edges``: ``"fft"`` (one FFT
    division: a circular blur by its own rule) or ``"cg"`` (conjugate gradients: anything else)."""
    return "fft" if edges == "operator" and getattr(operator, "boundary", None) == "circular" else "cg"


def explain_blurred(estimate: np.ndarray, blurred: np.ndarray, operator: "Blur", sigma: float,
                    level: float, edges: str = "operator",
                    extension: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The image (float32 (H, W, C), unclipped) nearest ``estimate`` (H, W, C) that explains the
    ``blurred`` photo (H, W, C) through ``operator`` with noise std ``sigma`` when the estimate is
    believed to within ``level`` (module docstring; both on one scale, positive), and what the
    solve did: ``{"solver": "fft"}`` or ``{"solver": "cg", "iterations": n, "residual": r,
    "converged": c}`` (``r`` the relative residual of the normal equations, the worst channel's;
    ``n`` the most iterations a channel took; ``c`` False when :data:`MAX_ITERATIONS` ended one
    above :data:`TOLERANCE`). ``edges`` (:data:`EDGES`): ``"operator"`` blurs by the operator's
    boundary rule (for a blur with free edges, ``boundary='free'``, that is free edges); ``"free"`` assumes nothing beyond the frame (module docstring; conjugate
    gradients, whatever the operator's rule). ``extension`` (free edges only): an image of the frame
    extended by the kernel's reach (``(H + kh - 1, W + kw - 1, C)``, such as the extended fit's),
    whose pixels beyond the frame the solve starts at and is drawn to instead of the estimate
    mirrored. A :class:`~linr.operators.LeftOut` blur (a photo's transparent pixels) leaves its
    pixels out of the data term: conjugate gradients then, a circular blur's too. The channels are solved one at a time (the equations do not mix them). MemoryError
    when torch cannot allocate what a solve needs."""
    if not (sigma > 0 and level > 0):
        raise ValueError(f"sigma {sigma}, level {level}: both must be positive")
    check_edges(edges)
    from .operators import LeftOut

    kept = None  # the photo's pixels that count (transparent ones do not): (H, W) float64, or None for all
    if isinstance(operator, LeftOut):
        kept, operator = torch.from_numpy(operator.kept.astype(np.float64)), operator.inner
    if getattr(operator, "boundary", None) == "free":  # a blur with free edges: its own rule is free edges
        edges = "free"
    if extension is not None and edges != "free":
        raise ValueError("an extension is what free edges are drawn to; edges is " + repr(edges))
    weight = (sigma / level) ** 2
    try:
        z, y = _tensor(estimate), _tensor(blurred)
        if edges == "free":
            return _explain_free(z, y, operator, weight, None if extension is None else _tensor(extension), kept)
        if solver_for(operator, edges) == "fft" and kept is None:
            h, w = z.shape[-2:]
            otf = operator._otf((h, w), z.device, torch.float64)
            numerator = torch.fft.rfft2(y) * otf.conj() + weight * torch.fft.rfft2(z)
            x = torch.fft.irfft2(numerator / (otf.abs() ** 2 + weight), s=(h, w))
            return x[0].permute(1, 2, 0).numpy().astype(np.float32), {"solver": "fft"}
        blur = _kept(_circular_blur(operator) if solver_for(operator, edges) == "fft" else _fft_blur(operator), kept)
        solved = [_conjugate_gradients(blur, z[:, c:c + 1], y[:, c:c + 1], weight) for c in range(z.shape[1])]
    except RuntimeError as exc:  # torch's allocation failures are RuntimeErrors
        if "memory" in str(exc).lower():
            raise MemoryError(str(exc)) from exc
        raise
    x = torch.cat([part for part, _ in solved], 1)
    return x[0].permute(1, 2, 0).numpy().astype(np.float32), combined_solves([d for _, d in solved])


def deblurrable(observation: Any) -> bool:
    """Whether an observation is one :func:`explain_blurred` can explain: a blurred photo (a
    :class:`~linr.operators.Blur`) compared by squared error."""
    from .fidelity import SquaredError
    from .operators import Blur, inner_operator

    return isinstance(inner_operator(observation.operator), Blur) and isinstance(observation.fidelity, SquaredError)


def combined_solves(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Several solves' reports as one (of channels, or of a refinement's passes): ``{"solver":
    "fft"}`` when none used conjugate gradients, else their most iterations, worst residual and
    whether all converged."""
    done = [r for r in reports if r.get("solver", "cg") == "cg"]
    if not done:
        return {"solver": "fft"}
    return {"solver": "cg", "iterations": max(d["iterations"] for d in done),
            "residual": max(d["residual"] for d in done), "converged": all(d["converged"] for d in done)}


def _conjugate_gradients(blur: Callable[[torch.Tensor], torch.Tensor], z: torch.Tensor, y: torch.Tensor,
                         weight: "float | torch.Tensor") -> tuple[torch.Tensor, dict[str, Any]]:
    """``(A^T A + w I)^-1 (A^T y + w z)`` for one channel ((1, 1, H, W) float64), ``A`` = ``blur``
    (linear; its adjoint by automatic differentiation), by conjugate gradients from ``z``."""

    def normal(v: torch.Tensor) -> torch.Tensor:  # (A^T A + w I) v
        with torch.enable_grad():
            probe = v.detach().clone().requires_grad_(True)
            out = blur(probe)
            (grad,) = torch.autograd.grad(out, probe, grad_outputs=out.detach())
        return grad + weight * v

    with torch.enable_grad():
        probe = torch.zeros_like(z, requires_grad=True)
        (aty,) = torch.autograd.grad(blur(probe), probe, grad_outputs=y)
    b = aty + weight * z
    x = z.clone()
    r = b - normal(x)
    p = r.clone()
    rs, start = float((r * r).sum()), float((b * b).sum())
    iterations = 0
    while iterations < MAX_ITERATIONS and rs > TOLERANCE * start:
        ap = normal(p)
        step = rs / float((p * ap).sum())
        x += step * p
        r -= step * ap
        new = float((r * r).sum())
        p = r + (new / rs) * p
        rs = new
        iterations += 1
    relative = (rs / start) ** 0.5 if start > 0 else 0.0
    return x, {"iterations": iterations, "residual": float(f"{relative:.3g}"), "converged": bool(rs <= TOLERANCE * start)}


def _explain_free(z: torch.Tensor, y: torch.Tensor, operator: "Blur", weight: float,
                  extension: torch.Tensor | None = None,
                  kept: torch.Tensor | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """:func:`explain_blurred` with ``edges="free"`` ((1, C, H, W) float64 tensors): per channel,
    conjugate gradients on the image extended by the kernel's reach, started at (and drawn to) the
    estimate extended by ``extension``'s pixels beyond the frame, or by mirroring (numpy's
    symmetric padding, which also covers a kernel larger than the image); the photo's frame of
    the result. ``kept`` ((H, W) float64 of 0 and 1, or None): the photo's pixels that count."""
    kh, kw = operator.kernel.shape
    top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
    h, w = z.shape[-2:]
    if extension is None:
        extended = np.pad(z.numpy(), ((0, 0), (0, 0), (top, kh - 1 - top), (left, kw - 1 - left)), mode="symmetric")
    else:
        if tuple(extension.shape) != (*z.shape[:2], h + kh - 1, w + kw - 1):
            raise ValueError(f"extension of shape {tuple(extension.shape[-2:])}: the frame {h}x{w} extended by "
                             f"the kernel's reach is {h + kh - 1}x{w + kw - 1}")
        extended = extension.numpy().copy()
        extended[..., top:top + h, left:left + w] = z.numpy()  # the frame: the estimate's own
    z = torch.from_numpy(extended)
    blur = _kept(_fft_blur(operator, mirrored=False), kept)
    weights = torch.full(z.shape[-2:], weight * EXTENSION_WEIGHT, dtype=torch.float64)
    weights[top:top + h, left:left + w] = weight  # the photo's own pixels; the extension by EXTENSION_WEIGHT
    solved = [_conjugate_gradients(blur, z[:, c:c + 1], y[:, c:c + 1], weights) for c in range(z.shape[1])]
    x = torch.cat([part for part, _ in solved], 1)[..., top:top + h, left:left + w]
    return x[0].permute(1, 2, 0).numpy().astype(np.float32), combined_solves([d for _, d in solved])


def _kept(blur: Callable[[torch.Tensor], torch.Tensor], kept: torch.Tensor | None
          ) -> Callable[[torch.Tensor], torch.Tensor]:
    """``blur`` with its output zero outside ``kept`` ((H, W) of 0 and 1; None: ``blur`` itself): a
    data term of the photo's pixels that count alone (the zeros' adjoint zeroes ``y`` there too)."""
    return blur if kept is None else (lambda x: blur(x) * kept)


def _circular_blur(operator: "Blur") -> Callable[[torch.Tensor], torch.Tensor]:
    """``operator``'s circular blur in float64 (its exact FFT product; linear, so autograd gives its
    adjoint): for conjugate gradients where some of the photo's pixels do not count."""

    def blur(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        return torch.fft.irfft2(torch.fft.rfft2(x) * operator._otf((h, w), x.device, torch.float64), s=(h, w))

    return blur


def _fft_blur(operator: "Blur", mirrored: bool = True) -> Callable[[torch.Tensor], torch.Tensor]:
    """``operator``'s reflecting blur (:meth:`linr.operators.Blur.forward`: the image mirrored at
    its borders, then convolved) made by FFTs in float64: the mirrored image's circular
    convolution, of which the pixels whose kernel reads no wrapped value are kept; linear, so
    autograd gives its adjoint. Not ``mirrored``: the same without the mirroring, an image of
    ``(H, W)`` blurred to the ``(H - kh + 1, W - kw + 1)`` pixels its kernel covers fully (the
    free-edged data step's blur)."""
    from scipy.fft import next_fast_len

    kernel = operator.kernel.to(torch.float64)
    kh, kw = kernel.shape
    top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
    transforms: dict[tuple[int, ...], torch.Tensor] = {}

    def blur(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        b, c = x.shape[:2]
        padded = x.reshape(b * c, 1, h, w)
        if mirrored:
            padded = F.pad(padded, (left, kw - 1 - left, top, kh - 1 - top), mode="reflect")
        ph, pw = padded.shape[-2:]
        # transforms of a fast length (zeros after the image: the kept pixels still read no
        # wrapped value); an extended side such as 1048 = 8 x 131 took 4-5x longer than 1050
        size = (next_fast_len(ph, real=True), next_fast_len(pw, real=True))
        if size not in transforms:
            transforms[size] = torch.fft.rfft2(kernel, s=size)
        full = torch.fft.irfft2(torch.fft.rfft2(padded, s=size) * transforms[size], s=size)
        return full[..., kh - 1:ph, kw - 1:pw].reshape(b, c, ph - kh + 1, pw - kw + 1)

    return blur
