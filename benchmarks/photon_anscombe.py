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
import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
IMAGES = "set5/baby,set5/bird,set5/butterfly,set5/head,set5/woman,inpaint/kate"
METHODS = ("anscombe (default)", "likelihood", "gaussian default on the photo")
PHOTON_METHOD = {"anscombe (default)": "anscombe", "likelihood": "likelihood",
                 "default (a burst's frames averaged after the transform)": None}
"""Each method's ``photon_method`` (a method not here: the photo restored as Gaussian noise)."""


def main() -> None:
    import torch
    from skimage.metrics import peak_signal_noise_ratio

    import linr
    from linr.errors import InputError
    from linr.images import read_image
    from linr.simulate import add_photon_noise

    p = argparse.ArgumentParser()
    p.add_argument("--images", default=IMAGES)
    p.add_argument("--conditions", default="10,50,30+5,20x3")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--rows", default="benchmarks/photon_anscombe.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = Path(args.rows)
    done = {(r["image"], r["condition"], r["method"]) for r in map(json.loads, rows.read_text().splitlines())} \
        if rows.exists() else set()
    for name in args.images.split(","):
        img, _ = read_image(DATA / f"{name}.png")
        h, w = img.shape[:2]
        s = min(args.size, h, w)
        clean = np.ascontiguousarray(img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s])
        for condition in args.conditions.split(","):
            level, _, frames = condition.partition("x")
            peak, _, read = level.partition("+")
            read_noise = float(read) if read else 0.0
            burst = [(np.round(np.clip(add_photon_noise(clean, float(peak), read_sigma=read_noise, seed=seed),
                                       0.0, 1.0) * 255.0) / 255.0).astype(np.float32)
                     for seed in range(int(frames or 1))]
            noisy = burst[0]
            model = "poisson-gaussian" if read else "poisson"
            for method in args.methods.split(","):
                if (name, condition, method) in done:
                    continue
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
                out = np.clip(result.image, 0.0, 1.0)
                row = {"image": name, "size": s, "condition": condition, "noise": model, "method": method,
                       "levels": levels,
                       "seconds": round(time.perf_counter() - started, 1),
                       "psnr": float(peak_signal_noise_ratio(clean, out, data_range=1.0)),
                       "noisy_psnr": float(peak_signal_noise_ratio(clean, noisy, data_range=1.0)),
                       "photon": result.settings.get("photon")}
                with rows.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
