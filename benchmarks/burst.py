"""Burst denoising: N noisy frames of one scene fitted jointly against one frame alone, the
per-pixel mean of the frames, and one frame's fit of that mean (benchmarks/burst.md).

    PYTHONPATH=src .venv/bin/python benchmarks/burst.py [--preset fast] [--images house,peppers]
        [--size 128] [--frames 8] [--sigma 50] [--out burst.jsonl]

Centre crops of shared set9 images; frame k has Gaussian noise of seed k. Every fit uses the
preset's settings with the default automatic stop (hold-out). One JSON line per (image, method)
is appended to --out as it finishes (rerun skips rows already there).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import linr
from linr.images import read_image
from linr.metrics import report
from linr.simulate import add_gaussian_noise

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "set9"

p = argparse.ArgumentParser()
p.add_argument("--preset", default=None, help="None: the default settings")
p.add_argument("--images", default="house,peppers,kodim03")
p.add_argument("--size", type=int, default=128)
p.add_argument("--frames", type=int, default=8)
p.add_argument("--sigma", type=float, default=50.0)
p.add_argument("--out", default="burst.jsonl")
args = p.parse_args()
out = Path(args.out)
done = {(r["image"], r["preset"], r["method"]) for r in map(json.loads, out.read_text().splitlines())} \
    if out.exists() else set()
preset = args.preset or "default"

for name in args.images.split(","):
    img, _ = read_image(DATA / f"{name}.png")
    h, w = img.shape[:2]
    s = args.size
    clean = np.ascontiguousarray(img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s])
    frames = [add_gaussian_noise(clean, args.sigma, seed=k) for k in range(args.frames)]
    mean = np.mean(frames, axis=0)
    methods = {
        "one frame": lambda: linr.restore([linr.noisy(frames[0])], preset=args.preset, device="cpu",
                                          progress=False),
        f"burst of {args.frames}": lambda: linr.restore([linr.noisy(f) for f in frames],
                                                         preset=args.preset, device="cpu", progress=False),
        "mean of frames": None,
        "fit of the mean": lambda: linr.restore([linr.noisy(mean)], preset=args.preset, device="cpu",
                                                progress=False),
    }
    for method, run in methods.items():
        if (name, preset, method) in done:
            continue
        t = time.perf_counter()
        if run is None:
            image, steps, stop = mean, 0, None
        else:
            result = run()
            image, steps, stop = result.image, result.steps_run, result.stop_step
        std = report(clean, image)["standard"]
        row = {"image": name, "size": s, "preset": preset, "method": method, "frames": args.frames,
               "sigma": args.sigma, "psnr": round(std["psnr"], 2), "ssim": round(std["ssim"], 4),
               "steps_run": steps, "returned_step": stop, "seconds": round(time.perf_counter() - t, 1)}
        print(json.dumps(row), flush=True)
        with out.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
