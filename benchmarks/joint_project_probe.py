"""#15 joint fits: a joint fit (noisy photo + x4 low-res view) refined against the noisy photo,
then made consistent with the low-res view again.

The eleventh-to-seventeenth sessions' refinement (``grouped``: BM3D's second step with the fit
as its pilot) filters the noisy photo alone, so on a joint fit it discards what the low-res view
knew (the sixteenth session: -3.7 dB on baby's 128-px crop, +1.2 on butterfly's). Here the
refined image ``r`` is projected onto the images the low-res view allows: the nearest ``x`` (least
squares) with ``D x = y_lowres`` for the fit's own downsampling operator ``D``, i.e.
``x = r + D^T (D D^T)^-1 (y_lowres - D r)``, solved by conjugate gradients in float64
(:func:`linr.projection.project_onto_views`; the 128-px rows of the first run came from this
script's own copy of the same solve, before it moved into the package). This keeps
the low frequencies from the low-res view (noise-free here, as in Table 5) and the high ones from
the refinement. The same projection of the joint fit itself is measured too.

The joint fit is the defaults' with ``refine='none'`` (since ``grouped-project`` became the
default, a plain ``linr.restore`` of these observations returns the refined image).

Observations: ``linr.bench.averaging.observations_for('joint', ...)`` (Gaussian noise ``--sigma``
on the 0-255 scale, seed 0, and a x4 Lanczos low-res view, weighted as the defaults weigh them).
PSNR: standard convention (scikit-image, clipped, data range 1). One thread.

    .venv/bin/python benchmarks/joint_project_probe.py set5/bird set5/butterfly --size 128 \
        --rows benchmarks/joint_project_probe.jsonl

``--saved FIT.png`` (one whole image): no fit here; the joint fit is the image a paper-table run
saved (``linr bench --profile paper --tables 5 --methods "LINR (default)"`` writes it under its
``--out`` folder's ``images/``, 8-bit), and the observations are that run's own: its noisy photo
(the bench's noise, seeded by ``linr.bench.common.corruption_seed(0, 'noisy', NAME)``) and the
x4 Lanczos view.

    .venv/bin/python benchmarks/joint_project_probe.py set5/baby --size full \
        --saved OUT/images/baby_linr_default_854dd071.png --rows benchmarks/joint_project_probe.jsonl
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def saved_case(clean: np.ndarray, stem: str, sigma: float, path: str):
    """A paper-table run's observations of ``clean`` and its saved joint fit (as a result)."""
    from types import SimpleNamespace

    from linr.bench.common import corruption_seed
    from linr.images import read_image
    from linr.kinds import KINDS
    from linr.simulate import lanczos_downscale
    from linr.tasks import lowres, noisy, resolve

    made = KINDS["noisy"].simulation.make(clean, {"sigma": sigma, "factor": 4, "keep": 0.1},
                                          corruption_seed(0, "noisy", stem))
    joint = resolve([noisy(made["image"]), lowres(lanczos_downscale(clean, 4), 4)], device="cpu")[0]
    image = read_image(path)[0][..., :clean.shape[2]]
    if image.shape != clean.shape:
        raise SystemExit(f"{path} is {image.shape}, the image {clean.shape}")
    return joint, SimpleNamespace(image=image, steps_run=None), None


def main() -> None:
    import linr
    from linr.bench import data_dir
    from linr.bench.averaging import clean_crop, observations_for
    from linr.bench.common import emit_row, psnr
    from linr.projection import project_onto_views
    from linr.refine import refine_image

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+")
    p.add_argument("--size", default="128")
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--rows", default=None)
    p.add_argument("--saved", default=None, help="a paper-table run's saved joint fit (module docstring)")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.saved and (len(args.names) != 1 or args.size != "full"):
        raise SystemExit("--saved takes one image, --size full")
    for name in args.names:
        folder, _, stem = name.rpartition("/")
        clean = clean_crop(data_dir(None), folder or "set9", stem, "rgb",
                           None if args.size == "full" else int(args.size))
        if args.saved:
            joint, fitted, joint_s = saved_case(clean, stem, args.sigma, args.saved)
        else:
            joint = observations_for("joint", clean, sigma=args.sigma, seed=0)
            c0 = time.process_time()
            fitted = linr.restore(joint, device="cpu", progress=False, seed=0, refine="none")  # the fit alone
            joint_s = time.process_time() - c0
        c0 = time.process_time()
        refined, _ = refine_image("grouped", fitted.image, joint)
        refine_s = time.process_time() - c0
        c0 = time.process_time()
        projected, done = project_onto_views(refined, joint[1:])
        project_s = time.process_time() - c0
        fit_projected, fit_done = project_onto_views(fitted.image, joint[1:])
        c0 = time.process_time()
        alone = None if args.saved else linr.restore(joint[:1], device="cpu", progress=False, seed=0)
        alone_s = time.process_time() - c0
        row = {"image": name, "size": args.size, "sigma": args.sigma, "saved_fit": args.saved,
               "joint": psnr(clean, fitted.image), "joint_steps": fitted.steps_run,
               "joint+grouped": psnr(clean, refined), "joint+grouped+project": psnr(clean, projected),
               "joint+project": psnr(clean, fit_projected),
               "alone_default": None if alone is None else psnr(clean, alone.image),
               "residual": done["residual"], "residual_fit": fit_done["residual"],
               "cpu_s": {"joint": None if joint_s is None else round(joint_s, 1), "grouped": round(refine_s, 1),
                         "project": round(project_s, 1), "alone": round(alone_s, 1)}}
        emit_row(row, args.rows)


if __name__ == "__main__":
    main()
