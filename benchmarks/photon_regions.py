"""Where the Poisson data term gains or loses against the squared error: PSNR over the 30%
darkest and the 30% brightest pixels of the clean crop (standard convention: output clipped to
[0, 1], data range 1) for one photon-noise image (clipped at 1, seed 7), default settings.

    PYTHONPATH=src python benchmarks/photon_regions.py set9/kodim12 64 10 [>> rows.jsonl]

One JSON line per data term: PSNR over all / dark / bright pixels, the share of output pixels
below 0, the best PSNR of the fit's steps (oracle) and its step, the returned step.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

import linr
from linr.bench.common import load_clean
from linr.simulate import add_photon_noise

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
spec, size, peak = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
c = load_clean(DATA, spec, size)
y = add_photon_noise(c, peak, seed=7)
dark, bright = c < np.quantile(c, 0.3), c > np.quantile(c, 0.7)


def psnr(mask: np.ndarray, image: np.ndarray) -> float:
    return round(float(10 * np.log10(1 / np.mean((np.clip(image, 0, 1)[mask] - c[mask]) ** 2))), 2)


for noise in ("gaussian", "poisson"):
    o = linr.noisy(y, noise=noise, peak=None if noise == "gaussian" else peak)
    r = linr.restore([o], device="cpu", reference=c, progress=False)
    h = r.history["psnr"]
    print(json.dumps({"image": spec, "size": size, "peak": peak, "noise": noise,
                      "psnr_all": psnr(np.ones_like(c, bool), r.image), "psnr_dark30": psnr(dark, r.image),
                      "psnr_bright30": psnr(bright, r.image), "below0": round(float(np.mean(r.image < 0)), 4),
                      "oracle": round(max(h), 2), "oracle_step": int(np.argmax(h)) + 1, "stop": r.stop_step}),
          flush=True)
