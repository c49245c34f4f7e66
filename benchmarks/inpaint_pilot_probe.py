"""A probe for inpainting at real sizes: what the default inpainting's fit (the paper's 7x256
SIREN at omega_0 15, up to 500 steps at the paper's rate, then ``grouped-fill``) costs against a
narrow pilot fit (as denoising's), and what the fit adds at all over ``grouped-fill`` from scikit-
image's biharmonic inpainting alone.

    PYTHONPATH=src .venv/bin/python benchmarks/inpaint_pilot_probe.py \
        [--images set5/baby,...] [--crop 128] [--masks random:0.1,scratches] \
        [--variants default,w64,none] [--tile SIZE:OVERLAP --code COMMIT] [--rows benchmarks/inpaint_pilot.jsonl]

Masks: ``random:KEEP`` (each pixel kept with probability KEEP, as Table 3's 10%; seed 7),
``scratches`` (thin dark lines 2-5 px wide over about 3% of the crop, as on a scanned print;
seed 7), no noise; the missing pixels set to 0. Variants: ``default`` (``linr.restore`` with the
defaults), ``wW[:lrLR][:sSTEPS][:oOMEGA][:bf16]`` (the same restore with a SIREN 7xW at omega_0
OMEGA, default 15, at learning rate LR, default 1e-3, and a budget of STEPS, default 500: the
default's stop rule and refinement), ``none`` (no fit: ``grouped-fill`` of the photo from the
biharmonic inpainting, every observed pixel put back, no held-out pixels; the fit's place taken
by the biharmonic image), ``biharmonic`` (scikit-image's alone). One torch thread. PSNR: standard
convention (scikit-image, data range 1, output clipped), whole crop and inside the holes. One
JSON line per (image, crop, mask, variant); a rerun skips rows already there.
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


def scratch_mask(shape: tuple[int, int], *, seed: int = 7, cover: float = 0.03) -> np.ndarray:
    """A keep-mask (True: observed) with thin lines 2-5 px wide drawn until about ``cover`` of the
    pixels are missing: long near-vertical scratches and short strokes of any direction."""
    from PIL import Image, ImageDraw

    h, w = shape
    rng = np.random.default_rng(seed)
    drawn = Image.new("L", (w, h), 255)
    pen = ImageDraw.Draw(drawn)
    while (np.asarray(drawn) == 0).mean() < cover:
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        if rng.random() < 0.5:  # a long scratch, mostly along the film
            x1, y1 = x0 + rng.uniform(-0.2, 0.2) * w, y0 + rng.choice([-1, 1]) * rng.uniform(0.4, 1.0) * h
        else:
            angle, length = rng.uniform(0, np.pi), rng.uniform(0.05, 0.3) * max(h, w)
            x1, y1 = x0 + length * np.cos(angle), y0 + length * np.sin(angle)
        pen.line([(x0, y0), (x1, y1)], fill=0, width=int(rng.integers(2, 6)))
    return np.asarray(drawn) > 0


def keep_mask(spec: str, shape: tuple[int, int]) -> np.ndarray:
    from linr.simulate import bernoulli_mask

    if spec == "scratches":
        return scratch_mask(shape)
    kind, _, keep = spec.partition(":")
    if kind != "random":
        raise SystemExit(f"unknown mask {spec!r}: random:KEEP or scratches")
    return np.asarray(bernoulli_mask(shape, float(keep), seed=7), bool)


def row(name: str, crop: int, mask: str, variant: str, tile: str | None = None) -> dict:
    import linr
    from skimage.restoration import inpaint_biharmonic

    from linr.bench.common import load_clean, network_variant, psnr
    from linr.refine import GroupedFill

    clean = load_clean(DATA, name, crop)
    keep = keep_mask(mask, clean.shape[:2])
    photo = np.where(keep[..., None], clean, 0).astype(np.float32)
    started = time.perf_counter()
    extra: dict = {}
    if variant == "biharmonic":
        image = inpaint_biharmonic(photo, ~keep, channel_axis=-1)
    elif variant == "none":
        start = inpaint_biharmonic(photo, ~keep, channel_axis=-1)
        image = GroupedFill()(photo, keep, start)
    else:
        options = {} if variant == "default" else network_variant(variant, omega_0=15.0, lr=1e-3, steps=500)
        result = linr.restore(linr.masked(photo, keep), device="cpu", progress=False, tile=tile or "auto", **options)
        image = result.image
        refine = result.settings.get("refine", {})
        extra = {"steps_run": result.steps_run, "stop_step": result.stop_step, "weights": refine.get("weights"),
                 "fit_s": round(result.timings["fit_s"], 1)}
    seconds = round(time.perf_counter() - started, 1)
    inside = ~keep
    return {"image": name, "crop": crop, "mask": mask, "variant": variant, **({"tile": tile} if tile else {}),
            "missing": round(float(inside.mean()), 4),
            "psnr": round(psnr(clean, image), 3), "psnr_holes": round(psnr(clean[inside], image[inside]), 3),
            "seconds": seconds, **{k: v for k, v in extra.items() if v is not None}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=TUNE, help="comma-separated; 'held-out' for the 13 held-out images")
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--masks", default="random:0.1,scratches")
    parser.add_argument("--variants", default="default,w64,none,biharmonic")
    parser.add_argument("--rows", default="benchmarks/inpaint_pilot.jsonl")
    parser.add_argument("--tile", default=None, help="restore's tile setting (SIZE[:OVERLAP]); default: auto")
    parser.add_argument("--code", default=None, help="a label for the code the rows come from (a commit), in their key")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from linr.bench.common import resume_rows

    names = (HELD_OUT if args.images == "held-out" else args.images).split(",")
    labelled = lambda made: {**made, **({"code": args.code} if args.code else {})}
    jobs = [((name, args.crop, mask, variant, args.tile, args.code),
             lambda n=name, m=mask, v=variant: labelled(row(n, args.crop, m, v, args.tile)))
            for mask in args.masks.split(",") for name in names for variant in args.variants.split(",")]
    resume_rows(args.rows, lambda r: (r["image"], r["crop"], r["mask"], r["variant"], r.get("tile"), r.get("code")), jobs)


if __name__ == "__main__":
    main()
