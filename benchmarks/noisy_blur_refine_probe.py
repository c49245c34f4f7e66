"""A noisy blurred photo's refinement (``grouped-deblur``): its levels fixed from 15 to 2 of 255 (the
default before the sixty-fifth session) or following the noise measured on the blurred photo (at
least 1.25x and a quarter of it: the default since), from the same fit. Grey crops of the shared
images (centre), blurred by Table 4's kernel (25 x 25 Gaussian, sigma 1.6, reflecting), then
Gaussian noise of SIGMA/255 ('25') or photon counts of P photons at white ('p50': counts / P),
seed 0, clipped; the default restore (``linr.restore(linr.blurred(photo, kernel))``), whose
refinement's call is kept and run again with other levels; beside it Richardson-Lucy (scikit-image,
the photo mirrored by half a kernel) at its best of 1-50 iterations, chosen with the clean crop (an
oracle). PSNR standard convention (grey, clipped, data range 1). One torch thread; resumable rows
(one per crop, size and noise). ``--grid`` adds the tune grid's levels (starts 15, 30, 50, 2 and 3
times sigma; ends 2, sigma/4, sigma/2, sigma; keys 'START>END').

    python benchmarks/noisy_blur_refine_probe.py benchmarks/noisy_blur_refine.jsonl --images \\
        set9/house,deblur/leaves --sizes 64 --noises 10,25,p200,p50,p10
    python benchmarks/noisy_blur_refine_probe.py benchmarks/noisy_blur_refine.jsonl --table
"""
from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from linr.bench.common import load_clean

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe_common import grid_run  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KERNEL = "gaussian:25:1.6"
RL_ITERATIONS = (1, 2, 3, 5, 10, 20, 50)


def blurred_photo(name: str, size: int, noise: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The clean crop, the kernel and the noisy blurred photo (float32, clipped)."""
    from scipy.ndimage import convolve

    from linr.kinds import parse_kernel

    kernel = parse_kernel(KERNEL)
    kernel = kernel / kernel.sum()
    clean = load_clean(DATA, f"{name}:grey", size)[..., 0].astype(np.float64)
    blur = convolve(clean, kernel, mode="reflect")
    rng = np.random.default_rng(0)
    if noise.startswith("p"):
        photons = float(noise[1:])
        photo = rng.poisson(np.clip(blur, 0, None) * photons) / photons
    else:
        photo = blur + rng.normal(0, float(noise) / 255, blur.shape)
    return clean, kernel, np.clip(photo, 0, 1).astype(np.float32)


def row(name: str, size: int, noise: str, grid: bool) -> dict:
    import linr
    import linr.refine as refine
    from linr.noise import estimate_noise_sigma
    from skimage.restoration import richardson_lucy

    torch.set_num_threads(1)
    clean, kernel, photo = blurred_photo(name, size, noise)
    kept: dict = {}
    call = refine.GroupedDeblur.__call__

    def keep(self, *args, **kwargs):  # the default's refinement, as called: run again below
        kept.setdefault("call", (args, kwargs))
        return call(self, *args, **kwargs)

    refine.GroupedDeblur.__call__ = keep
    try:
        result = linr.restore(linr.blurred(photo, kernel), reference=clean[..., None], progress=False)
    finally:
        refine.GroupedDeblur.__call__ = call
    args, kwargs = kept["call"]
    sigma = args[3] * 255

    def psnr(image: np.ndarray) -> float:
        return linr.metrics.psnr(clean[..., None], np.clip(image, 0, 1))

    def refined(start: float, end: float, follow: bool) -> float:
        refiner = refine.GroupedDeblur(10, start, min(end, start))
        refiner.follow_noise = follow
        return psnr(call(refiner, *args, **kwargs))

    out = {"key": f"{name}|{size}|{noise}", "name": name, "size": size, "noise": noise, "sigma_refine": sigma,
           "est": estimate_noise_sigma(photo) * 255, "blurred": psnr(photo[..., None]), "fit": psnr(result.fitted_image),
           "steps": result.steps_run, "restore": result.metrics["standard"]["psnr"],
           "default": refined(15.0, 2.0, False), "rule": refined(15.0, 2.0, True),
           "15>s/4": refined(15.0, max(2.0, sigma / 4), False), "30>s/4": refined(30.0, max(2.0, sigma / 4), False)}
    if grid:
        for start_key in ("15", "30", "50", "2s", "3s"):
            start = {"2s": max(15.0, 2 * sigma), "3s": max(15.0, 3 * sigma)}.get(start_key) or float(start_key)
            for end_key, end in (("2", 2.0), ("s/4", max(2.0, sigma / 4)), ("s/2", max(2.0, sigma / 2)),
                                 ("s", max(2.0, sigma))):
                if end <= start:
                    out[f"{start_key}>{end_key}"] = refined(start, end, False)
    half = kernel.shape[0] // 2
    padded = np.pad(photo.astype(np.float64), half, mode="reflect")
    rl = {n: psnr(richardson_lucy(padded, kernel, num_iter=n, clip=False)[half:-half, half:-half][..., None])
          for n in RL_ITERATIONS}
    out["rl_best"], out["rl_iter"] = max(rl.values()), max(rl, key=rl.get)
    return out


NOISE_ORDER = ("3", "5", "10", "25", "p200", "p50", "p10")


def table(rows: dict) -> str:
    cases: dict[tuple, list] = defaultdict(list)
    for r in rows.values():
        cases[(r["size"], r["noise"])].append(r)
    if not all("rule" in r for r in rows.values()):
        return grid_table(cases)
    lines = ["| px | noise | crops | sigma measured | blurred photo | Richardson-Lucy (oracle) | 15 to 2 (before) | "
             "following the noise (now) | gain (worst) | ahead |", "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for (size, noise), group in sorted(cases.items(), key=lambda c: (c[0][0], NOISE_ORDER.index(c[0][1])
                                                                      if c[0][1] in NOISE_ORDER else 99)):
        def mean(key: str) -> float:
            return sum(r[key] for r in group) / len(group)

        gains = [r["rule"] - r["default"] for r in group]
        label = f"photons {noise[1:]}" if noise.startswith("p") else f"Gaussian {noise}/255"
        lines.append(f"| {size} | {label} | {len(group)} | {mean('sigma_refine'):.1f} | {mean('blurred'):.2f} | "
                     f"{mean('rl_best'):.2f} | {mean('default'):.2f} | {mean('rule'):.2f} | "
                     f"{sum(gains) / len(gains):+.2f} ({min(gains):+.2f}) | {sum(g > 0.005 for g in gains)} of "
                     f"{len(gains)} |")
    return "\n".join(lines)


def grid_table(cases: dict[tuple, list]) -> str:
    """The tune grid's rows (the sixty-fifth session's, before the levels followed the noise: no
    'rule'): each grid schedule's mean difference from 15 to 2, and its worst."""
    keys = [k for k in next(iter(cases.values()))[0] if ">" in k]
    lines = ["| px | noise | crops | sigma | 15 to 2 | " + " | ".join(keys) + " |",
             "|---:|---|---:|---:|---:|" + "---:|" * len(keys)]
    for (size, noise), group in sorted(cases.items(), key=lambda c: (c[0][0], NOISE_ORDER.index(c[0][1]))):
        cells = []
        for key in keys:
            diffs = [r[key] - r["default"] for r in group if key in r]
            cells.append(f"{sum(diffs) / len(diffs):+.2f} ({min(diffs):+.2f})" if len(diffs) == len(group) else "-")
        lines.append(f"| {size} | {noise} | {len(group)} | {sum(r['sigma_refine'] for r in group) / len(group):.1f} | "
                     f"{sum(r['default'] for r in group) / len(group):.2f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows", type=Path)
    p.add_argument("--images", default="set9/house")
    p.add_argument("--sizes", default="64")
    p.add_argument("--noises", default="25,p50")
    p.add_argument("--grid", action="store_true", help="the tune grid's levels too")
    p.add_argument("--table", action="store_true")
    args = p.parse_args()
    cases = [(f"{name}|{size}|{noise}", lambda n=name, s=int(size), z=noise: row(n, s, z, args.grid))
             for noise in args.noises.split(",") for name in args.images.split(",") for size in args.sizes.split(",")]
    grid_run(args.rows, table, args.table, cases)


if __name__ == "__main__":
    main()
