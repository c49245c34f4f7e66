"""A probe for super-resolution at real sizes: what the default super-resolution's fit (the
paper's 7x256 SIREN, 500 steps at the paper's rate, then ``grouped-views-examples`` at x2-x4)
costs and adds against a narrow pilot fit (as denoising's and a large inpainting's), and against
no fit at all (the refinement started from the photo upscaled by PIL's bicubic).

    PYTHONPATH=src .venv/bin/python benchmarks/sr_pilot_probe.py \
        [--images set5/baby,...|held-out] [--crop 128] [--factors 4] \
        [--variants default,w64,none,bicubic] [--rows benchmarks/sr_pilot.jsonl]

The low-res photo: the centre crop (``--crop`` px, a multiple of the factor) downscaled by PIL's
Lanczos (the paper's protocol), no noise. Variants: ``default`` (``linr.restore`` with the
defaults), ``wW[:lrLR][:sSTEPS][:oOMEGA][:bf16]`` (the same restore with a SIREN 7xW at omega_0
OMEGA, default 30, at learning rate LR, default 1e-3, for STEPS steps, default 500: the default's
refinement), ``none`` (no fit: the default's refinement of the bicubic upscale, as if it were the
fit's image), ``bicubic`` (PIL's bicubic upscale alone). One torch thread. PSNR: standard convention
(scikit-image, data range 1, output clipped), whole crop. One JSON line per (image, crop, factor,
variant); a rerun skips rows already there.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TUNE = "set5/baby,set5/bird,set5/butterfly,set5/head,set5/woman,inpaint/kate"
HELD_OUT = ("set9/baboon,set9/f16,set9/house,set9/kodim01,set9/kodim02,set9/kodim03,set9/kodim12,"
            "set9/peppers,deblur/leaves,deblur/parrots,deblur/starfish,inpaint/library,inpaint/vase")


def bicubic(low: np.ndarray, factor: int) -> np.ndarray:
    from PIL import Image

    h, w = low.shape[:2]
    planes = [np.asarray(Image.fromarray(low[..., c].astype(np.float32)).resize((w * factor, h * factor),
                                                                                 Image.BICUBIC))
              for c in range(low.shape[2])]
    return np.stack(planes, axis=2).astype(np.float32)


def row(name: str, crop: int, factor: int, variant: str) -> dict:
    import linr
    from linr.bench.common import load_clean, network_variant, psnr
    from linr.refine import refine_image
    from linr.simulate import lanczos_downscale
    from linr.tasks import resolve_refine

    clean = load_clean(DATA, name, crop)
    clean = clean[:clean.shape[0] // factor * factor, :clean.shape[1] // factor * factor]
    low = lanczos_downscale(clean, factor).astype(np.float32)
    obs = linr.lowres(low, factor)
    started = time.perf_counter()
    extra: dict = {}
    if variant == "bicubic":
        image = bicubic(low, factor)
    elif variant == "none":
        image, done = refine_image(resolve_refine(None, [obs], preset=None), bicubic(low, factor), [obs])
        extra = {"refine": done.get("name")}
    else:
        options = {} if variant == "default" else network_variant(variant, omega_0=30.0, lr=1e-3, steps=500)
        result = linr.restore(obs, device="cpu", progress=False, threads=None, **options)
        image = result.image
        extra = {"steps_run": result.steps_run, "fit_s": round(result.timings["fit_s"], 1),
                 "psnr_fit": round(psnr(clean, result.fitted_image if result.fitted_image is not None else image), 3),
                 "refine": result.settings.get("refine", {}).get("name")}
    seconds = round(time.perf_counter() - started, 1)
    return {"image": name, "crop": crop, "factor": factor, "variant": variant,
            "psnr": round(psnr(clean, image), 3), "seconds": seconds, **extra}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=TUNE, help="comma-separated; 'held-out' for the 13 held-out images")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--factors", default="4")
    parser.add_argument("--variants", default="default,w64,none,bicubic")
    parser.add_argument("--rows", default="benchmarks/sr_pilot.jsonl")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from linr.bench.common import resume_rows

    names = (HELD_OUT if args.images == "held-out" else args.images).split(",")
    jobs = [((name, args.crop, int(factor), variant),
             lambda n=name, f=int(factor), v=variant: row(n, args.crop, f, v))
            for factor in args.factors.split(",") for name in names for variant in args.variants.split(",")]
    resume_rows(args.rows, lambda r: (r["image"], r["crop"], r["factor"], r["variant"]), jobs)


if __name__ == "__main__":
    main()
