"""#15, Table 7's case (a x4 low-res view and a view with 10% of the pixels, neither noisy): does
making the joint fit reproduce its views exactly pay?

For each image (FOLDER/NAME, RGB, ``--size`` centre crop), the default restore of the two views
(``linr.restore``: the paper's settings, 500 steps, no refinement by default), then:
``project`` (the nearest image whose downsampling is the low-res view:
:func:`linr.projection.project_onto_views`), ``paste`` (the observed pixels put back exactly) and
``project+paste`` (both, in that order; the paste moves the downsampled image slightly). PSNR:
standard convention (scikit-image, clipped, data range 1). One thread; CPU seconds.

    .venv/bin/python benchmarks/project_probe.py set5/bird set5/woman --size 128 \
        --rows benchmarks/project_probe.jsonl
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch


def main() -> None:
    import linr
    from linr.bench import data_dir
    from linr.bench.averaging import clean_crop
    from linr.bench.common import emit_row, psnr
    from linr.projection import project_onto_views
    from linr.simulate import bernoulli_mask, lanczos_downscale

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="+")
    p.add_argument("--size", default="128")
    p.add_argument("--keep", type=float, default=0.1)
    p.add_argument("--rows", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    for name in args.names:
        folder, _, stem = name.rpartition("/")
        clean = clean_crop(data_dir(None), folder or "set5", stem, "rgb",
                           None if args.size == "full" else int(args.size))
        mask = bernoulli_mask(clean.shape[:2], args.keep, seed=0)
        views = [linr.lowres(lanczos_downscale(clean, 4), 4), linr.masked(clean * mask[..., None], mask)]
        c0 = time.process_time()
        fitted = linr.restore(views, device="cpu", progress=False, seed=0)
        fit_s = time.process_time() - c0
        projected, done = project_onto_views(fitted.image, views[:1])
        observed = mask.astype(bool)

        def paste(image: np.ndarray) -> np.ndarray:
            out = image.copy()
            out[observed] = clean[observed]  # the masked view's pixels are the clean ones (no noise)
            return out

        row = {"image": name, "size": args.size, "keep": args.keep, "fit": psnr(clean, fitted.image),
               "fit_steps": fitted.steps_run, "fit_refine": (fitted.settings.get("refine") or {}).get("name"),
               "project": psnr(clean, projected), "paste": psnr(clean, paste(fitted.image)),
               "project+paste": psnr(clean, paste(projected)), "residual": done["residual"],
               "converged": done["converged"], "fit_cpu_s": round(fit_s, 1)}
        emit_row(row, args.rows)


if __name__ == "__main__":
    main()
