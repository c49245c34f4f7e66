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
import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def main() -> None:
    import torch
    from skimage.metrics import peak_signal_noise_ratio

    import linr
    from linr.images import read_image

    p = argparse.ArgumentParser()
    p.add_argument("--images", default="set5/baby,set5/bird,set5/butterfly,set5/head,set5/woman,inpaint/kate")
    p.add_argument("--sigma", default="25", help="one level for every frame, or one per frame (15,25,50)")
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--rows", default="benchmarks/gaussian_burst_probe.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = Path(args.rows)
    done = {(r["image"], str(r["sigma"]), r["frames"], r["method"])
            for r in map(json.loads, rows.read_text().splitlines())} if rows.exists() else set()
    for name in args.images.split(","):
        img, _ = read_image(DATA / f"{name}.png")
        h, w = img.shape[:2]
        s = min(args.size, h, w)
        clean = np.ascontiguousarray(img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s])
        levels = [float(v) for v in args.sigma.split(",")]
        levels = levels * args.frames if len(levels) == 1 else levels
        burst = [(np.round(np.clip(clean + np.random.default_rng(seed).normal(0, level / 255, clean.shape),
                                   0, 1) * 255) / 255).astype(np.float32) for seed, level in enumerate(levels)]
        from linr.noise import estimate_noise_sigma

        weights = np.array([1.0 / max(estimate_noise_sigma(f), 1e-4) ** 2 for f in burst])  # measured levels
        weighted = np.tensordot(weights / weights.sum(), np.stack(burst), axes=1).astype(np.float32)
        methods = {
            "default on the burst (joint)": lambda: linr.restore([linr.noisy(f) for f in burst], device="cpu",
                                                                  progress=False).image,
            "default on the frames' mean": lambda: linr.restore([linr.noisy(np.mean(burst, axis=0))], device="cpu",
                                                                 progress=False).image,
            "default on one frame": lambda: linr.restore([linr.noisy(burst[0])], device="cpu", progress=False).image,
        }
        if len(set(levels)) > 1:  # frames of different levels: the inverse-variance mean (levels measured)
            methods["default on the frames' mean weighted by measured 1/sigma^2"] = lambda: linr.restore(
                [linr.noisy(weighted)], device="cpu", progress=False).image
        for method, run in methods.items():
            sigma = float(args.sigma) if "," not in args.sigma else args.sigma  # rows of one level: a number
            if (name, str(sigma), args.frames, method) in done:
                continue
            started = time.perf_counter()
            out = np.clip(run(), 0.0, 1.0)
            row = {"image": name, "size": s, "sigma": sigma, "frames": args.frames, "method": method,
                   "seconds": round(time.perf_counter() - started, 1),
                   "psnr": float(peak_signal_noise_ratio(clean, out, data_range=1.0))}
            with rows.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
