"""A probe for Gaussian bursts: linr's default on a burst of aligned noisy frames (each frame an
observation, fitted jointly) against the default on the frames' mean restored as one photo (what
the photon route does after its transform since the fifty-fourth session).

    PYTHONPATH=src .venv/bin/python benchmarks/gaussian_burst_probe.py [--images set5/baby,...]
        [--sigma 25] [--frames 3] [--size 128] [--rows benchmarks/gaussian_burst_probe.jsonl]

Centre crops of shared images, Gaussian noise of SIGMA (0-255 scale; seeds 0, 1, ...), clipped
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
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--frames", type=int, default=3)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--rows", default="benchmarks/gaussian_burst_probe.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = Path(args.rows)
    done = {(r["image"], r["sigma"], r["frames"], r["method"]) for r in map(json.loads, rows.read_text().splitlines())} \
        if rows.exists() else set()
    for name in args.images.split(","):
        img, _ = read_image(DATA / f"{name}.png")
        h, w = img.shape[:2]
        s = min(args.size, h, w)
        clean = np.ascontiguousarray(img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s])
        burst = [(np.round(np.clip(clean + np.random.default_rng(seed).normal(0, args.sigma / 255, clean.shape),
                                   0, 1) * 255) / 255).astype(np.float32) for seed in range(args.frames)]
        methods = {
            "default on the burst (joint)": lambda: linr.restore([linr.noisy(f) for f in burst], device="cpu",
                                                                  progress=False).image,
            "default on the frames' mean": lambda: linr.restore([linr.noisy(np.mean(burst, axis=0))], device="cpu",
                                                                 progress=False).image,
            "default on one frame": lambda: linr.restore([linr.noisy(burst[0])], device="cpu", progress=False).image,
        }
        for method, run in methods.items():
            if (name, args.sigma, args.frames, method) in done:
                continue
            started = time.perf_counter()
            out = np.clip(run(), 0.0, 1.0)
            row = {"image": name, "size": s, "sigma": args.sigma, "frames": args.frames, "method": method,
                   "seconds": round(time.perf_counter() - started, 1),
                   "psnr": float(peak_signal_noise_ratio(clean, out, data_range=1.0))}
            with rows.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
