"""Inpainting (10% of the pixels kept) at full size: the paper preset's LINR iterates, biharmonic
inpainting, and blends of the two.

One image (set5 NAME, or kate of the inpainting folder) with the mask of ``linr bench`` Table 3
(Bernoulli, keep 0.1, the bench's seed for that image), a SIREN 7x256 fitted as the paper does
(Adam 1e-4, 500 steps, observed pixels only), its whole image kept every 25 steps through the
fit's callback (which makes every step render every pixel: the seconds are not the paper
preset's), biharmonic inpainting of the same observation (scikit-image), and PSNR (standard
convention: clipped, RGB, data range 1) of: the final fit, biharmonic, every kept iterate, the
mean of the last five kept iterates, and ``w * fit + (1 - w) * biharmonic`` for w = 0, 0.1, ..., 1
(and the same blend with the best kept iterate). An oracle study: w and the iterate are read off
the clean image here; a method would have to choose them without it (held-out pixels). One row
per image appended to ROWS (JSONL).

    python benchmarks/inpaint_blend.py NAME ROWS
"""
import json, os, sys, time
from pathlib import Path

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio

from linr.baselines.classical import biharmonic_inpaint
from linr.bench.common import commit_id, corruption_seed, cpu_name
from linr.fit import FitConfig, fit
from linr.images import read_image
from linr.simulate import bernoulli_mask
from linr.tasks import masked


name, rows = sys.argv[1], Path(sys.argv[2])
torch.set_num_threads(1)
data = Path(os.environ.get("LINR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
clean = read_image(data / ("inpaint" if name == "kate" else "set5") / f"{name}.png")[0][..., :3].astype(np.float32)
seed = corruption_seed(0, "masked", name)  # the bench's Table 3 mask
mask = bernoulli_mask(clean.shape[:2], 0.1, seed=seed)
y = clean * mask[..., None]
kept = {}


def keep(step, output, loss):
    if (step + 1) % 25 == 0:
        kept[step + 1] = ((output[0].permute(1, 2, 0).cpu().numpy() + 1) / 2).astype(np.float32)


def psnr(image):
    return float(peak_signal_noise_ratio(clean, np.clip(image, 0, 1), data_range=1))


t0 = time.perf_counter()
result = fit([masked(y, mask)], FitConfig(steps=500, device="cpu", seed=0, progress=False), callback=keep)
fit_s = time.perf_counter() - t0
t0 = time.perf_counter()
bh = biharmonic_inpaint(y, mask).image.astype(np.float32)
bh_s = time.perf_counter() - t0
weights = [round(0.1 * i, 1) for i in range(11)]
iterates = {s: psnr(v) for s, v in kept.items()}
best = max(iterates, key=iterates.get)
row = {"image": name, "size": list(clean.shape[:2]), "mask_seed": seed, "final": psnr(result.image),
       "biharmonic": psnr(bh), "iterates": iterates, "mean_last5": psnr(np.mean([kept[s] for s in sorted(kept)[-5:]], 0)),
       "blend": {str(w): psnr(w * result.image + (1 - w) * bh) for w in weights},
       "best_iterate": best, "blend_best_iterate": {str(w): psnr(w * kept[best] + (1 - w) * bh) for w in weights},
       "fit_s": fit_s, "biharmonic_s": bh_s, "commit": commit_id(), "processor": cpu_name(), "threads": 1,
       "torch": torch.__version__, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
with rows.open("a") as f:
    f.write(json.dumps(row) + "\n")
print(json.dumps({k: row[k] for k in ("image", "final", "biharmonic", "best_iterate", "mean_last5")}))
