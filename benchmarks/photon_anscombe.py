"""Photon noise on images the Anscombe route was not chosen on: linr's default for
``--noise poisson`` / ``poisson-gaussian`` (the Anscombe transform, :mod:`linr.stabilise`) against
the photon likelihood (``photon_method='likelihood'``, the default before) and against restoring
the photo as if its noise were Gaussian (no ``--noise``).

    PYTHONPATH=src .venv/bin/python benchmarks/photon_anscombe.py [--images set5/baby,...]
        [--conditions 10,50,30+5,20x3] [--size 128] [--rows benchmarks/photon_anscombe.jsonl]

The route was chosen on set9 crops (``benchmarks/photon_vst_probe.py``); this reports on set5 and
the inpainting set's images. Centre crops, photon noise at PEAK photons at white (a condition
``PEAK+READ`` adds Gaussian read noise of READ on the 0-255 scale and restores with
``poisson-gaussian``; ``...xFRAMES``: a burst of FRAMES frames, noise seeds 0, 1, ...; the
noisy PSNR is the first frame's), clipped to [0, 1] and rounded to 8 bits as a saved photo is; the photon
level (and read noise) estimated from the image as a user's run does (given, as the error then
asks, where the image is too clipped to estimate it from: the row's ``levels`` says which). PSNR: standard convention,
data range 1, against the clean crop, output clipped to [0, 1] (scikit-image). One JSON line per
(image, condition, method), appended as it finishes; a rerun skips rows already there. One torch
thread.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IMAGES = "set5/baby,set5/bird,set5/butterfly,set5/head,set5/woman,inpaint/kate"
METHODS = ("anscombe (default)", "likelihood", "gaussian default on the photo")
PHOTON_METHOD = {"anscombe (default)": "anscombe", "likelihood": "likelihood",
                 "default (a burst's frames averaged after the transform)": None}
"""Each method's ``photon_method`` (a method not here: the photo restored as Gaussian noise)."""


def measure(clean: np.ndarray, name: str, condition: str, method: str) -> dict:
    """One row: ``method`` restoring ``name``'s crop under ``condition``."""
    import linr
    from linr.bench.common import psnr
    from linr.errors import InputError
    from linr.simulate import add_photon_noise

    level, _, frames = condition.partition("x")
    peak, _, read = level.partition("+")
    read_noise = float(read) if read else 0.0
    burst = [(np.round(np.clip(add_photon_noise(clean, float(peak), read_sigma=read_noise, seed=seed),
                               0.0, 1.0) * 255.0) / 255.0).astype(np.float32)
             for seed in range(int(frames or 1))]
    model = "poisson-gaussian" if read else "poisson"
    levels = "estimated"
    if method not in PHOTON_METHOD:
        obs = [linr.noisy(frame) for frame in burst]
    else:
        try:
            obs = [linr.noisy(frame, noise=model, photon_method=PHOTON_METHOD[method]) for frame in burst]
        except InputError:  # too clipped to estimate: given, as the error asks
            levels = "given (the estimate failed)"
            obs = [linr.noisy(frame, noise=model, photon_method=PHOTON_METHOD[method], peak=float(peak),
                              read_noise=read_noise if read else None) for frame in burst]
    started = time.perf_counter()
    result = linr.restore(obs, device="cpu", progress=False)
    return {"image": name, "size": clean.shape[0], "condition": condition, "noise": model, "method": method,
            "levels": levels, "seconds": round(time.perf_counter() - started, 1),
            "psnr": psnr(clean, result.image), "noisy_psnr": psnr(clean, burst[0]),
            "photon": result.settings.get("photon")}


def main() -> None:
    import torch

    from linr.bench.common import load_clean, resume_rows

    p = argparse.ArgumentParser()
    p.add_argument("--images", default=IMAGES)
    p.add_argument("--conditions", default="10,50,30+5,20x3")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--rows", default="benchmarks/photon_anscombe.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    clean = {name: load_clean(DATA, name, args.size).astype(np.float32) for name in args.images.split(",")}
    resume_rows(args.rows, lambda r: (r["image"], r["condition"], r["method"]),
                [((name, condition, method), lambda n=name, c=condition, m=method: measure(clean[n], n, c, m))
                 for name in clean for condition in args.conditions.split(",") for method in args.methods.split(",")])


if __name__ == "__main__":
    main()
