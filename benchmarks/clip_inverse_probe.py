"""A probe for photos clipped to [0, 1] with Gaussian noise: linr's default restoration as it
is, and the same restoration mapped back through the inverse of the clipped photo's expected value
(:class:`linr.clipping.ClippedGaussian`); for bursts, the frames' mean (plain, and weighted
by each frame's measured inverse variance) restored as one photo, with and without the inverse,
beside the least noisy frame alone (and, in rows made before the route that averages bursts,
the default's joint fit of the frames).

    PYTHONPATH=src .venv/bin/python benchmarks/clip_inverse_probe.py single [--images ...]
        [--sigmas 15,25,50] [--size 128] [--rows benchmarks/clip_inverse_single.jsonl]
    PYTHONPATH=src .venv/bin/python benchmarks/clip_inverse_probe.py single --photon PEAK [...]
    PYTHONPATH=src .venv/bin/python benchmarks/clip_inverse_probe.py burst --levels 15,25,50 [...]
        [--rows benchmarks/clip_inverse_burst.jsonl]

Centre crops of shared images (``FOLDER/NAME[:grey]``), Gaussian noise of the given level (0-255
scale; frame k of a burst seeded k), clipped to [0, 1] and rounded to 8 bits as saved photos are.
The inverse's noise levels are linr's measured ones (``floored_noise_sigma``) unless a row says
"true". PSNR: standard convention, data range 1, against the clean crop, output clipped
(scikit-image). One JSON line per (image, level[s]), appended as it finishes; a rerun skips rows
already there. One torch thread.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HELD_OUT = ("set9/baboon,set9/f16,set9/house,set9/kodim01,set9/kodim02,set9/kodim03,set9/kodim12,"
            "set9/peppers,deblur/leaves,deblur/parrots,deblur/starfish,inpaint/library,inpaint/vase")


def noisy_frames(clean: np.ndarray, levels: list[float]) -> list[np.ndarray]:
    """Frame k: ``clean`` plus Gaussian noise of ``levels[k]`` (seed k), clipped, 8-bit."""
    return [(np.round(np.clip(clean + np.random.default_rng(seed).normal(0, level / 255, clean.shape), 0, 1)
                      * 255) / 255).astype(np.float32) for seed, level in enumerate(levels)]


def restored(photos: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """linr's default restoration of ``photos`` (one photo) as fitted, the clipping not undone
    (``clipping='ignore'``, which the rows before the fifty-fifth session's route got without it),
    and its wall seconds."""
    import linr

    started = time.perf_counter()
    image = linr.restore([linr.noisy(p) for p in photos], device="cpu", progress=False, clipping="ignore").image
    return image, round(time.perf_counter() - started, 1)


def undone(image: np.ndarray, frames: list[np.ndarray], weights: np.ndarray, sigmas: list[float], *,
           unclipped: bool = False) -> np.ndarray:
    """``image`` through the inverse of the expected value of ``frames`` weighted by ``weights``;
    ``unclipped``: at the levels ``sigmas`` with clipping's lowering undone, as linr does since
    its level correction (:meth:`linr.clipping.ClippedGaussian.at_unclipped_levels`)."""
    from linr.clipping import ClippedGaussian, clipped_ends_of

    ends = [clipped_ends_of(f) for f in frames]
    inverse = ClippedGaussian(tuple(sigmas), tuple(float(w) for w in weights / weights.sum()),
                              any(e[0] for e in ends), any(e[1] for e in ends))
    return (inverse.at_unclipped_levels(image) if unclipped else inverse).inverse(image)


def photon_photo(clean: np.ndarray, peak: float) -> np.ndarray:
    """``clean`` with photon noise of ``peak`` photons at white (seed 0), clipped, 8-bit: noise a
    camera gives, restored as Gaussian (the noise model not said) by these rows."""
    from linr.simulate import add_photon_noise

    return (np.round(add_photon_noise(clean, peak, seed=0) * 255) / 255).astype(np.float32)


def single_row(clean: np.ndarray, sigma: float, photon: float | None = None) -> dict:
    """``photon``: photon noise of that many photons at white instead (``sigma`` then unused)."""
    from linr.bench.common import psnr
    from linr.noise import floored_noise_sigma

    photo = noisy_frames(clean, [sigma]) if photon is None else [photon_photo(clean, photon)]
    image, seconds = restored(photo)
    one = np.ones(1)
    from linr.clipping import ClippedGaussian, clipped_ends_of

    measured = floored_noise_sigma(photo[0])
    level = ClippedGaussian((measured,), (1.0,), *clipped_ends_of(photo[0])).at_unclipped_levels(image).sigmas[0]
    return {"seconds": seconds, "measured_sigma": round(floored_noise_sigma(photo[0]) * 255, 2),
            "clipped_black": float(np.mean(photo[0] == 0)), "clipped_white": float(np.mean(photo[0] == 1)),
            "default": psnr(clean, image),
            "undone": psnr(clean, undone(image, photo, one, [measured])),
            "unclipped_level": round(level * 255, 2),
            "undone_at_unclipped_level": psnr(clean, undone(image, photo, one, [level])),
            **({} if photon is not None else
               {"undone_true_sigma": psnr(clean, undone(image, photo, one, [sigma / 255]))})}


def burst_row(clean: np.ndarray, levels: list[float], joint: bool) -> dict:
    from linr.bench.common import psnr
    from linr.noise import floored_noise_sigma

    frames = noisy_frames(clean, levels)
    sigmas = [floored_noise_sigma(f) for f in frames]
    best = int(np.argmin(sigmas))
    inverse_variance = np.array([1.0 / s ** 2 for s in sigmas])
    even = np.ones(len(frames))
    row: dict = {"measured_sigmas": [round(s * 255, 2) for s in sigmas]}
    for name, used, weights in (("best frame", [best], np.ones(1)), ("mean", range(len(frames)), even),
                                ("weighted mean", range(len(frames)), inverse_variance)):
        chosen, their_sigmas = [frames[k] for k in used], [sigmas[k] for k in used]
        photo = np.tensordot(weights / weights.sum(), np.stack(chosen), axes=1).astype(np.float32)
        image, seconds = restored([photo])
        row[name] = {"psnr": psnr(clean, image), "undone": psnr(clean, undone(image, chosen, weights, their_sigmas)),
                     "undone_at_unclipped_levels": psnr(clean, undone(image, chosen, weights, their_sigmas,
                                                                      unclipped=True)),
                     "seconds": seconds}
    if joint:  # the joint fit of the frames (rows made before the fifty-fifth session's route; since,
        # a burst is averaged: this is then the weighted mean again)
        image, seconds = restored(frames)
        row["joint"] = {"psnr": psnr(clean, image), "undone": psnr(clean, undone(image, frames, even, sigmas)),
                        "seconds": seconds}
    return row


def main() -> None:
    import torch

    from linr.bench.common import load_clean, resume_rows

    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("single", "burst", "cbm3d"),
                   help="cbm3d: (C)BM3D at the true level on the photos of 'single' (the reference; no linr)")
    p.add_argument("--images", default=HELD_OUT)
    p.add_argument("--sigmas", default="15,25,50", help="single: one photo at each level")
    p.add_argument("--photon", type=float, default=None, metavar="PEAK",
                   help="single: photon noise of PEAK photons at white instead of --sigmas (restored as Gaussian)")
    p.add_argument("--levels", default="25,25,25", help="burst: the frames' levels")
    p.add_argument("--no-joint", action="store_true", help="burst: leave out the (slow) joint fit")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--rows", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    names = args.images.split(",")
    rows = args.rows or f"benchmarks/clip_inverse_{args.mode}.jsonl"
    if args.mode == "cbm3d":
        from linr.baselines.classical import bm3d_denoise
        from linr.bench.common import psnr

        def cbm3d_row(name: str, sigma: float) -> dict:
            clean = load_clean(DATA, name, args.size)
            photo = noisy_frames(clean, [sigma])[0]
            done = bm3d_denoise(photo, sigma=sigma)
            return {"image": name, "size": args.size, "sigma": sigma, "method": "cbm3d",
                    "psnr": psnr(clean, done.image), "seconds": round(done.fit_s, 1)}

        sigmas = [float(s) for s in args.sigmas.split(",")]
        resume_rows(rows, lambda r: (r["image"], r["sigma"], r.get("method")),
                    [((n, s, "cbm3d"), lambda n=n, s=s: cbm3d_row(n, s)) for s in sigmas for n in names])
    elif args.mode == "single" and args.photon is not None:
        jobs = [((name, f"photon{args.photon:g}"), lambda n=name: {
            "image": n, "size": args.size, "sigma": f"photon{args.photon:g}",
            **single_row(load_clean(DATA, n, args.size), 0.0, args.photon)}) for name in names]
        resume_rows(rows, lambda r: (r["image"], r["sigma"]), jobs)
    elif args.mode == "single":
        sigmas = [float(s) for s in args.sigmas.split(",")]
        jobs = [((name, sigma, None), lambda n=name, s=sigma: {"image": n, "size": args.size, "sigma": s,
                                                               **single_row(load_clean(DATA, n, args.size), s)})
                for sigma in sigmas for name in names]
        resume_rows(rows, lambda r: (r["image"], r["sigma"], r.get("method")), jobs)  # method: cbm3d rows
    else:
        levels = [float(v) for v in args.levels.split(",")]
        jobs = [((name, args.levels), lambda n=name: {"image": n, "size": args.size, "levels": args.levels,
                                                      **burst_row(load_clean(DATA, n, args.size), levels,
                                                                  not args.no_joint)})
                for name in names]
        resume_rows(rows, lambda r: (r["image"], r["levels"]), jobs)


if __name__ == "__main__":
    main()
