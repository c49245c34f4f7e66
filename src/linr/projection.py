"""Making a restored image agree exactly with the views of the scene that carry no noise.

A low-resolution view without noise (``lowres``: a downsampling operator ``D`` and its image
``y``) fixes what the scene looks like at its resolution exactly; a fit only approaches it, and a
refinement of another view (such as :class:`linr.refine.GroupedWiener`, which filters the noisy
photo of a joint fit) ignores it. :func:`project_onto_views` returns the image nearest (least
squares) to a given one among those every such view reproduces exactly:

    x = image + A^T (A A^T)^-1 (y - A image),   A = [D_1; D_2; ...],  y = [y_1; y_2; ...],

solved by conjugate gradients on ``A A^T z = y - A image`` in float64, ``A^T`` by automatic
differentiation of the operators (they are linear). It changes nothing the views cannot see
(the null space of ``A``: the detail above their resolution) and keeps the low frequencies the
views fix. Which observations count (:func:`projectable`): a squared-error data term, no noise
(``carries_noise`` False), a positive weight, a :class:`~linr.operators.Downsample` operator (its
pixels left out where the photo was transparent, :class:`~linr.operators.LeftOut`: only the
others are reproduced) and the restored image's channel count. Views that cannot all be met at
once (two low-res shots of one size with different noise: ``A A^T`` is then singular and the
system has no solution) make conjugate gradients diverge; the solve then stops, returns the image
unchanged and says it did not converge (relative residual above :data:`CONVERGED`), so a refiner
can keep what it had. The defaults project onto one view only (:func:`linr.tasks.noisy_with_lowres`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import torch

if TYPE_CHECKING:
    from .problem import Observation

__all__ = ["projectable", "projectable_views", "project_onto_views", "view_residual", "MAX_ITERATIONS", "CONVERGED"]

MAX_ITERATIONS = 200
"""Conjugate-gradient iterations at most (a x4 view of a 512 px image converges in about 30)."""

TOLERANCE = 1e-24
"""Stop when the squared residual of ``A A^T z = b`` falls below this fraction of ``|b|^2``."""

CONVERGED = 1e-6
"""The largest relative residual ``|A x - y| / |y|`` of a projection that counts as done."""

DIVERGED = 1e6
"""Give up when the squared residual of ``A A^T z = b`` grows past this multiple of ``|b|^2``."""


def projectable(observation: "Observation", channels: int | None = None) -> bool:
    """Whether ``observation`` is a view the image can be made to reproduce exactly: a
    noise-free low-res view (module docstring) with ``channels`` channels (None: any)."""
    from .fidelity import SquaredError
    from .operators import Downsample, inner_operator

    return (isinstance(inner_operator(observation.operator), Downsample) and isinstance(observation.fidelity, SquaredError)
            and not observation.carries_noise and (observation.weight is None or observation.weight > 0)
            and (channels is None or observation.channels == channels))


def projectable_views(observations: Sequence["Observation"], channels: int | None = None) -> list["Observation"]:
    """The observations :func:`projectable` accepts, in order."""
    return [o for o in observations if projectable(o, channels)]


def _relative_residual(made: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> float:
    """``|A x - y| / |y|`` over all the views (``made``: their ``A x``; ``|A x - y|`` when y is 0)."""
    misfit = sum(float(((f - t) ** 2).sum()) for f, t in zip(made, targets))
    scale = sum(float((t ** 2).sum()) for t in targets)
    return (misfit / scale) ** 0.5 if scale > 0 else misfit ** 0.5


def view_residual(image: np.ndarray, views: Sequence["Observation"]) -> float:
    """How far ``image`` (H, W, C) is from reproducing the ``views``: the relative residual
    ``|A x - y| / |y|`` of :func:`project_onto_views` (float64; 0 when it reproduces them exactly)."""
    x = torch.from_numpy(np.asarray(image, np.float64)).permute(2, 0, 1)[None]
    return _relative_residual([v.operator.forward(x) for v in views], _targets(views))


def _targets(views: Sequence["Observation"]) -> list[torch.Tensor]:
    """The views' images as (1, C, h, w) float64, zero where their operator observes nothing
    (:meth:`linr.operators.Operator.project`: a photo's transparent pixels)."""
    return [v.operator.project(torch.from_numpy(np.asarray(v.image, np.float64)).permute(2, 0, 1)[None])
            for v in views]


def project_onto_views(image: np.ndarray, views: Sequence["Observation"]) -> tuple[np.ndarray, dict[str, Any]]:
    """The image nearest to ``image`` (H, W, C) that every one of ``views`` reproduces exactly
    (module docstring), float32 (H, W, C) unclipped, and what was done: the views' count, the
    iterations, the relative residual ``|A x - y| / |y|`` reached (float64) and ``converged``
    (False: the views cannot all be met, and ``image`` comes back unchanged)."""
    if not views:
        raise ValueError("no views to project onto")
    x0 = torch.from_numpy(np.asarray(image, np.float64)).permute(2, 0, 1)[None].contiguous()
    targets = _targets(views)
    ops = [v.operator for v in views]

    def forward(x: torch.Tensor) -> list[torch.Tensor]:
        return [op.forward(x) for op in ops]

    def adjoint(z: list[torch.Tensor]) -> torch.Tensor:
        with torch.enable_grad():
            probe = torch.zeros_like(x0, requires_grad=True)
            out = forward(probe)
            (grad,) = torch.autograd.grad(out, probe, grad_outputs=z)
        return grad

    def dot(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
        return float(sum((p * q).sum() for p, q in zip(a, b)))

    b = [t - f for t, f in zip(targets, forward(x0))]
    z = [torch.zeros_like(t) for t in b]
    r = [t.clone() for t in b]
    p = [t.clone() for t in r]
    rs, start = dot(r, r), dot(b, b)
    iterations = 0
    while iterations < MAX_ITERATIONS and TOLERANCE * start < rs < DIVERGED * start:
        ap = forward(adjoint(p))
        alpha = rs / dot(p, ap)
        z = [zi + alpha * pi for zi, pi in zip(z, p)]
        r = [ri - alpha * api for ri, api in zip(r, ap)]
        new = dot(r, r)
        p = [ri + (new / rs) * pi for ri, pi in zip(r, p)]
        rs = new
        iterations += 1
    x = x0 + adjoint(z) if iterations else x0
    residual = _relative_residual(forward(x), targets)
    converged = bool(np.isfinite(residual) and residual <= CONVERGED)
    if not converged:
        x, residual = x0, _relative_residual(forward(x0), targets)
    return x[0].permute(1, 2, 0).numpy().astype(np.float32), {
        "views": len(views), "iterations": iterations, "residual": float(f"{residual:.3g}"),
        "converged": converged}
