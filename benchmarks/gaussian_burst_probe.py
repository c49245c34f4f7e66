"""A probe for Gaussian bursts: linr's default on a burst of aligned noisy frames (each frame an
observation, fitted jointly) against the default on the frames' mean restored as one photo (what
the photon route does after its transform since the fifty-fourth session).

    PYTHONPATH=src .venv/bin/python benchmarks/gaussian_burst_probe.py [--images set5/baby,...]
        [--sigma 25] [--frames 3] [--size 128] [--rows benchmarks/gaussian_burst_probe.jsonl]

Centre crops of shared images, Gaussian noise of SIGMA (0-255 scale; seeds 0, 1, ...; a list
gives each frame its own level, and adds the mean weighted by each frame's measured inverse
variance, linr's wavelet estimate), clipped
to [0, 1] and rounded to 8 bits as saved photos are. PSNR: standard convention, data range 1,
against the clean crop, output clipped (scikit-image). One JSON line per (image, method),
appended as it finishes; a rerun skips rows already there. One torch thread.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


METHODS = ("default on the burst (joint)", "default on the frames' mean", "default on one frame")
WEIGHTED = "default on the frames' mean weighted by measured 1/sigma^2"
"""Added where the frames' levels differ: the inverse-variance mean, levels measured."""


def measure(clean: np.ndarray, levels: list[float], method: str) -> tuple[float, float]:
    """``method``'s restoration of a burst of ``clean`` with noise of ``levels`` (one a frame):
    its PSNR and wall seconds."""
    import linr
    from linr.bench.common import psnr
    from linr.noise import estimate_noise_sigma

    burst = [(np.round(np.clip(clean + np.random.default_rng(seed).normal(0, level / 255, clean.shape),
                               0, 1) * 255) / 255).astype(np.float32) for seed, level in enumerate(levels)]
    if method == METHODS[0]:
        photos = burst
    elif method == METHODS[1]:
        photos = [np.mean(burst, axis=0)]
    elif method == METHODS[2]:
        photos = burst[:1]
    else:
        weights = np.array([1.0 / max(estimate_noise_sigma(f), 1e-4) ** 2 for f in burst])
        photos = [np.tensordot(weights / weights.sum(), np.stack(burst), axes=1).astype(np.float32)]
    started = time.perf_counter()
    image = linr.restore([linr.noisy(f) for f in photos], device="cpu", progress=False).image
    return psnr(clean, image), round(time.perf_counter() - started, 1)


def main() -> None:
    import torch

    from linr.bench.common import load_clean, resume_rows

    p = argparse.ArgumentParser()
    p.add_argument("--images", default="set5/baby,set5/bird,set5/butterfly,set5/head,set5/woman,inpaint/kate")
    p.add_argument("--sigma", default="25", help="one level for every frame, or one per frame (15,25,50)")
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--rows", default="benchmarks/gaussian_burst_probe.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    levels = [float(v) for v in args.sigma.split(",")]
    levels = levels * args.frames if len(levels) == 1 else levels
    sigma = float(args.sigma) if "," not in args.sigma else args.sigma  # rows of one level: a number
    methods = [*METHODS, *([WEIGHTED] if len(set(levels)) > 1 else [])]
    clean = {name: load_clean(DATA, name, args.size).astype(np.float32) for name in args.images.split(",")}

    def row(name: str, method: str) -> dict:
        value, seconds = measure(clean[name], levels, method)
        return {"image": name, "size": clean[name].shape[0], "sigma": sigma, "frames": args.frames,
                "method": method, "seconds": seconds, "psnr": value}

    resume_rows(args.rows, lambda r: (r["image"], str(r["sigma"]), r["frames"], r["method"]),
                [((name, str(sigma), args.frames, method), lambda n=name, m=method: row(n, m))
                 for name in clean for method in methods])


if __name__ == "__main__":
    main()
