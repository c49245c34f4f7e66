"""How often :func:`linr.registration.misaligned_by` calls aligned noisy frames shifted, and misses
shifted ones: the check that leaves frames out of a burst's mean.

    PYTHONPATH=src .venv/bin/python benchmarks/shift_check_probe.py [--rows benchmarks/shift_check.jsonl]

For each of the 13 crops held out from the denoising defaults' tuning, at 32, 64 and 128 px and
Gaussian noise of sigma 15, 25 and 50 (clipped, 8-bit): a frame (seed 0), a second frame of the
same crop (seed 1: aligned) and a frame of the crop's content moved by (3, -2) and by (1, 0) px
(cut from a larger crop, so no wrapped pixels; seeds 2 and 3). One JSON line per (image, size,
sigma): what the check said of each; a rerun skips rows already there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HELD_OUT = ("set9/baboon,set9/f16,set9/house,set9/kodim01,set9/kodim02,set9/kodim03,set9/kodim12,"
            "set9/peppers,deblur/leaves,deblur/parrots,deblur/starfish,inpaint/library,inpaint/vase")


def frame(content: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma / 255, content.shape)
    return (np.round(np.clip(content + noise, 0, 1) * 255) / 255).astype(np.float32)


def row(name: str, size: int, sigma: float) -> dict:
    from linr.bench.common import load_clean
    from linr.registration import misaligned_by

    big = load_clean(DATA, name, size + 16)
    moved = {shift: np.roll(big, shift, axis=(0, 1))[8:-8, 8:-8] for shift in ((0, 0), (3, -2), (1, 0))}
    first = frame(moved[(0, 0)], sigma, 0)
    said = {}
    for label, shift, seed in (("aligned", (0, 0), 1), ("moved_3_-2", (3, -2), 2), ("moved_1_0", (1, 0), 3)):
        found = misaligned_by(first, frame(moved[shift], sigma, seed))
        said[label] = None if found is None else [round(v, 2) for v in found]
    return {"image": name, "size": size, "sigma": sigma, **said}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="benchmarks/shift_check.jsonl")
    parser.add_argument("--images", default=HELD_OUT, help="FOLDER/NAME,... (default: the thirteen held out)")
    args = parser.parse_args()
    from linr.bench.common import resume_rows

    jobs = [((name, size, sigma), lambda n=name, z=size, s=sigma: row(n, z, s))
            for name in args.images.split(",") for size in (32, 64, 128) for sigma in (15.0, 25.0, 50.0)]
    resume_rows(args.rows, lambda r: (r["image"], r["size"], r["sigma"]), jobs)


if __name__ == "__main__":
    main()
