"""The defaults' pilot at two learning rates (the paper's 1e-4, then 1e-3) on inputs the tune set lacks:
synthetic 192 px images (a checkerboard, a near-flat ramp, a line pattern) and 128-px centre crops of set5
butterfly and woman, at sigma 5 and 25 (noise seed 1), restored by `linr.restore` with every default but
`lr`. Prints, per case, the fit alone and the refined image (PSNR, standard convention), steps and seconds.

    python benchmarks/pilot_lr_probe.py
"""
import time

import numpy as np
import torch

import linr
from linr.bench import data_dir
from linr.bench.averaging import clean_crop
from linr.bench.common import psnr
from linr.simulate import add_gaussian_noise

torch.set_num_threads(1)
yy, xx = np.mgrid[0:192, 0:192]
cases = {
  "checker192": np.repeat(((yy // 16 + xx // 16) % 2)[..., None], 3, 2).astype(np.float32) * 0.8 + 0.1,
  "flat192": np.full((192, 192, 3), 0.5, np.float32) + 0.02 * np.sin(xx / 30.0)[..., None],
  "text_like": np.repeat((((xx // 3) % 7 == 0) | ((yy // 5) % 9 == 0))[..., None], 3, 2).astype(np.float32) * 0.9 + 0.05,
}
data = data_dir(None)
for name in ("butterfly", "woman"):
    cases[f"{name}128"] = clean_crop(data, "set5", name, "rgb", 128)
for name, clean in cases.items():
    for sigma in (5, 25):
        noisy = add_gaussian_noise(clean, sigma, seed=1).astype(np.float32)
        out = []
        for lr in (1e-4, 1e-3):
            t = time.perf_counter()
            r = linr.restore(linr.noisy(noisy), device="cpu", progress=False, seed=0, lr=lr)
            out.append((psnr(clean, r.fitted_image), psnr(clean, r.image), r.steps_run, time.perf_counter() - t))
        (f0, g0, s0, t0), (f1, g1, s1, t1) = out
        print(f"{name:12s} s{sigma:2d}  fit {f0:6.2f} -> {f1:6.2f}  refined {g0:6.2f} -> {g1:6.2f} ({g1-g0:+.2f})  steps {s0}->{s1}  {t0:.0f}->{t1:.0f} s", flush=True)
