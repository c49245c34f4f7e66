"""A probe for inpainting large holes: photos with one large contiguous hole (a centred square) or
a real mask's holes, linr's default restoration against scikit-image's biharmonic inpainting.

    PYTHONPATH=src .venv/bin/python benchmarks/large_hole_probe.py \
        [--cases 64:24,96:16,128:own] [--rows benchmarks/large_hole.jsonl]

Centre crops (SIZE px) of the 13 images held out from the denoising defaults' tuning (none of
them tuned the inpainting default either: that was tuned on set5 + kate), a centred square hole
of HOLE px (the pixels there set to 0 and marked missing), or ``SIZE:own``: the centre crop of the
image's own mask (``inpaint/NAME_mask.png``: library's and vase's have large holes; other images
are skipped; their holes cover objects, which the clean image still shows, so PSNR there measures
little), or ``SIZE:mask=inpaint/vase``: the centre crop of that image's mask over every image (a
real object's outline over a scene whose clean pixels under it are known), no noise. ``linr.restore`` with the
defaults (one torch thread) and ``skimage.restoration.inpaint_biharmonic``. PSNR: standard
convention, data range 1, output clipped (scikit-image), over the whole crop and inside the
hole. One JSON line per (image, size, hole), with the default's blend weights; a rerun skips rows
already there.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HELD_OUT = ("set9/baboon,set9/f16,set9/house,set9/kodim01,set9/kodim02,set9/kodim03,set9/kodim12,"
            "set9/peppers,deblur/leaves,deblur/parrots,deblur/starfish,inpaint/library,inpaint/vase")


def row(name: str, size: int, hole: int) -> dict:
    import linr
    from skimage.restoration import inpaint_biharmonic

    from linr.bench.common import load_clean, psnr

    clean = load_clean(DATA, name, size)
    if isinstance(hole, str):  # a mask's centre crop: the image's own, or another's (``mask=inpaint/vase``)
        from linr.bench.common import centre_crop
        from linr.images import read_image

        mask, _ = read_image(DATA / f"{name if hole == 'own' else hole.partition('=')[2]}_mask.png")
        keep = centre_crop(np.asarray(mask, np.float64).reshape(*mask.shape[:2], -1)[..., :1], size)[0][..., 0] > 0.5
    else:
        keep = np.ones((size, size), bool)
        start = (size - hole) // 2
        keep[start:start + hole, start:start + hole] = False
    photo = np.where(keep[..., None], clean, 0).astype(np.float32)
    started = time.perf_counter()
    result = linr.restore(linr.masked(photo if photo.shape[2] > 1 else photo[..., 0], keep), device="cpu",
                          progress=False)
    seconds = round(time.perf_counter() - started, 1)
    image = result.image if result.image.ndim == 3 else result.image[..., None]
    filled = inpaint_biharmonic(photo, ~keep, channel_axis=-1)
    inside = ~keep
    return {"image": name, "size": size, "hole": hole,
            "default": round(psnr(clean, image), 3), "biharmonic": round(psnr(clean, filled), 3),
            "default_in_hole": round(psnr(clean[inside], image[inside]), 3),
            "biharmonic_in_hole": round(psnr(clean[inside], filled[inside]), 3),
            "seconds": seconds, "refine": result.settings.get("refine", {}).get("weights"),
            **({"blocks_held_out": result.settings["stop"]["blocks_held_out"]}
               if "blocks_held_out" in result.settings.get("stop", {}) else {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=HELD_OUT)
    parser.add_argument("--cases", default="64:24,96:16,128:32")
    parser.add_argument("--rows", default="benchmarks/large_hole.jsonl")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    from linr.bench.common import resume_rows

    cases = [(int(size), hole if hole == "own" or hole.startswith("mask=") else int(hole))
             for size, hole in (c.split(":", 1) for c in args.cases.split(","))]
    names = args.images.split(",")
    jobs = [((name, size, hole), lambda n=name, z=size, h=hole: row(n, z, h))
            for size, hole in cases for name in names
            if hole != "own" or (DATA / f"{name}_mask.png").is_file()]
    resume_rows(args.rows, lambda r: (r["image"], r["size"], r["hole"]), jobs)


if __name__ == "__main__":
    main()
