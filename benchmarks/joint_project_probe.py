"""#15 joint fits: a joint fit (noisy photo + x4 low-res view) refined against the noisy photo,
then made consistent with the low-res view again.

The eleventh-to-seventeenth sessions' refinement (``grouped``: BM3D's second step with the fit
as its pilot) filters the noisy photo alone, so on a joint fit it discards what the low-res view
knew (the sixteenth session: -3.7 dB on baby's 128-px crop, +1.2 on butterfly's). Here the
refined image ``r`` is projected onto the images the low-res view allows: the nearest ``x`` (least
squares) with ``D x = y_lowres`` for the fit's own downsampling operator ``D``, i.e.
``x = r + D^T (D D^T)^-1 (y_lowres - D r)``, solved by conjugate gradients in float64. This keeps
the low frequencies from the low-res view (noise-free here, as in Table 5) and the high ones from
the refinement. The same projection of the joint fit itself is measured too.

Observations: ``linr.bench.averaging.observations_for('joint', ...)`` (Gaussian noise ``--sigma``
on the 0-255 scale, seed 0, and a x4 Lanczos low-res view, weighted as the defaults weigh them).
PSNR: standard convention (scikit-image, clipped, data range 1). One thread.

    .venv/bin/python benchmarks/joint_project_probe.py set5/bird set5/butterfly --size 128 \
        --rows benchmarks/joint_project_probe.jsonl
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def project_onto_view(image: np.ndarray, view, iters: int = 50, tol: float = 1e-10) -> tuple[np.ndarray, float]:
    """The least-squares-nearest image to ``image`` (H, W, C) whose ``view.operator`` matches
    ``view.image`` exactly, and the relative residual ``|D x - y| / |y|`` reached (float64 CG on
    ``D D^T z = y - D image``, ``x = image + D^T z``)."""
    op = view.operator
    x0 = torch.from_numpy(np.asarray(image, np.float64)).permute(2, 0, 1)[None]
    y = torch.from_numpy(np.asarray(view.image, np.float64))
    y = (y[..., None] if y.ndim == 2 else y).permute(2, 0, 1)[None]

    def forward(t: torch.Tensor) -> torch.Tensor:
        return op.forward(t)

    def adjoint(v: torch.Tensor) -> torch.Tensor:
        return torch.autograd.functional.vjp(forward, torch.zeros_like(x0), v)[1]

    def normal(v: torch.Tensor) -> torch.Tensor:
        return forward(adjoint(v))

    b = y - forward(x0)
    z = torch.zeros_like(b)
    r = b.clone()
    p = r.clone()
    rs = float((r * r).sum())
    for _ in range(iters):
        ap = normal(p)
        alpha = rs / float((p * ap).sum())
        z += alpha * p
        r -= alpha * ap
        new = float((r * r).sum())
        if new < tol * float((b * b).sum() + 1e-30):
            break
        p = r + (new / rs) * p
        rs = new
    x = x0 + adjoint(z)
    residual = float(torch.linalg.vector_norm(forward(x) - y) / torch.linalg.vector_norm(y))
    return x[0].permute(1, 2, 0).numpy().astype(np.float32), residual


def main() -> None:
    import linr
    from linr.bench import data_dir
    from linr.bench.averaging import clean_crop, observations_for
    from linr.bench.common import append_row, commit_id, cpu_name, psnr
    from linr.refine import refine_image

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+")
    p.add_argument("--size", default="128")
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--rows", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    for name in args.names:
        folder, _, stem = name.rpartition("/")
        clean = clean_crop(data_dir(None), folder or "set9", stem, "rgb",
                           None if args.size == "full" else int(args.size))
        joint = observations_for("joint", clean, sigma=args.sigma, seed=0)
        c0 = time.process_time()
        fitted = linr.restore(joint, device="cpu", progress=False, seed=0)
        joint_s = time.process_time() - c0
        c0 = time.process_time()
        refined, _ = refine_image("grouped", fitted.image, joint)
        refine_s = time.process_time() - c0
        c0 = time.process_time()
        projected, residual = project_onto_view(refined, joint[1])
        project_s = time.process_time() - c0
        fit_projected, fit_residual = project_onto_view(fitted.image, joint[1])
        c0 = time.process_time()
        alone = linr.restore(joint[:1], device="cpu", progress=False, seed=0)
        alone_s = time.process_time() - c0
        row = {"image": name, "size": args.size, "sigma": args.sigma,
               "joint": psnr(clean, fitted.image), "joint_steps": fitted.steps_run,
               "joint+grouped": psnr(clean, refined), "joint+grouped+project": psnr(clean, projected),
               "joint+project": psnr(clean, fit_projected), "alone_default": psnr(clean, alone.image),
               "residual": residual, "residual_fit": fit_residual,
               "cpu_s": {"joint": round(joint_s, 1), "grouped": round(refine_s, 1),
                         "project": round(project_s, 1), "alone": round(alone_s, 1)},
               "commit": commit_id(), "processor": cpu_name(), "torch": torch.__version__}
        print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()
               if k not in ("commit", "processor", "torch")}, flush=True)
        if args.rows:
            append_row(args.rows, row)


if __name__ == "__main__":
    main()
