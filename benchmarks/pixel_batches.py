"""Random pixel batches per step against the full batch: a denoising fit's PSNR curve.

One fit of a centre crop of a set9 image with sigma-25 noise (seed 0), the paper's SIREN and
Adam (lr 1e-4 unless given), no stop rule, PSNR (unclipped, data range 1) every 5 steps against
the clean crop; ``BATCH`` is ``full`` or the fraction of the pixels drawn afresh each step
(:attr:`linr.fit.FitConfig.batch_pixels`). One row per run appended to ROWS (JSONL).

    python benchmarks/pixel_batches.py IMAGE SIZE BATCH STEPS ROWS [LR]
"""
import json, sys, time, os
import numpy as np, torch
import linr
from linr.fit import FitConfig, fit as run_fit
from linr.simulate import add_gaussian_noise

name, size, batch, steps, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
lr = float(sys.argv[6]) if len(sys.argv) > 6 else 1e-4
torch.set_num_threads(1)
data = os.environ.get("LINR_DATA", os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data"))
p = os.path.join(data, "set9", f"{name}.png")
img = linr.read_image(p)[0]
h, w = img.shape[:2]
t, l = (h - size) // 2, (w - size) // 2
img = img[t:t+size, l:l+size]
noisy = add_gaussian_noise(img, 25, seed=0)
b = None if batch == "full" else int(float(batch) * size * size)
cfg = FitConfig(steps=steps, lr=lr, batch_pixels=b, eval_every=5, progress=False)
t0 = time.perf_counter()
res = run_fit([linr.noisy(noisy)], cfg, reference=img)
dt = time.perf_counter() - t0
hist = res.history
ps = hist.get("psnr"); st = hist.get("psnr_step") or list(range(len(ps)))
pairs = [(s, p) for s, p in zip(st, ps) if p is not None and p == p]
best = max(pairs, key=lambda x: x[1])
row = dict(image=name, size=size, batch=batch, lr=lr, steps=steps, seconds=dt, best_psnr=best[1], best_step=best[0],
           curve=[(s, round(p, 3)) for s, p in pairs], timings=res.timings if hasattr(res, "timings") else None)
open(out, "a").write(json.dumps(row, default=str) + "\n")
print(name, batch, lr, "best", round(best[1], 2), "at", best[0], "time", round(dt, 1))
