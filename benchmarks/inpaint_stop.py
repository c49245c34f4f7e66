"""Inpainting (10% of the pixels kept) at full size with a stop rule: linr's defaults (the paper's
SIREN 7x256, Adam 1e-4, a 500-step budget) and ``stop=STOP`` (such as ``pick:0.05:25``, or
``fixed`` for the paper's 500 steps; ``STOP+REFINE`` also refines, e.g.
``pick:0.05:25+biharmonic``: the row's PSNR is then the refined image's, ``psnr_fit_paper`` the
fit's; ``STOP[+REFINE]*K`` fits an ensemble of K members from seeds 0..K-1, ``psnr_fit_paper``
then their mean's), on the mask of ``linr bench`` Table 3 (Bernoulli, keep 0.1,
the bench's seed for the image). Records PSNR in the paper's convention (RGB, unclipped, data
range 1) and the standard one (clipped), the returned step, seconds on one thread, and, beside
it, biharmonic inpainting and the best blend ``w * fit + (1 - w) * biharmonic`` over w = 0, 0.1,
..., 1 (an oracle: w read off the clean image). One row per (image, stop) appended to ROWS
(JSONL); a rerun skips recorded rows.

    python benchmarks/inpaint_stop.py ROWS STOP[+REFINE][*K] NAME [NAME ...]
"""
import json, os, sys, time
from pathlib import Path

import numpy as np
import torch

import linr
from linr.baselines.classical import biharmonic_inpaint
from linr.bench.common import commit_id, corruption_seed, cpu_name
from linr.images import read_image
from linr.metrics import evaluate
from linr.models import ModelConfig
from linr.simulate import bernoulli_mask


rows, spec, names = Path(sys.argv[1]), sys.argv[2], sys.argv[3:]
fitted, _, members = spec.partition("*")
stop, _, refine = fitted.partition("+")
torch.set_num_threads(1)
data = Path(os.environ.get("LINR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
done = {json.loads(line)["key"] for line in rows.read_text().splitlines()} if rows.exists() else set()
for name in names:
    key = f"{name}_{spec}"
    if key in done:
        continue
    clean = read_image(data / ("inpaint" if name == "kate" else "set5") / f"{name}.png")[0][..., :3].astype(np.float32)
    seed = corruption_seed(0, "masked", name)  # the bench's Table 3 mask
    mask = bernoulli_mask(clean.shape[:2], 0.1, seed=seed)
    y = clean * mask[..., None]
    t0 = time.perf_counter()
    t_cpu = time.process_time()
    result = linr.restore(linr.masked(y, mask), stop=stop, refine=refine or "none", device="cpu", seed=0, progress=False,
                          ensemble=int(members or 1),
                          model=ModelConfig())  # the paper's omega_0 30 (the default's until the twenty-third session)
    cpu_seconds = time.process_time() - t_cpu
    fit = result.image if result.fitted_image is None else result.fitted_image
    seconds = time.perf_counter() - t0
    bh = biharmonic_inpaint(y, mask).image.astype(np.float32)
    blends = {round(0.1 * i, 1): evaluate(clean, 0.1 * i * fit + (1 - 0.1 * i) * bh, convention="paper")["psnr"]
              for i in range(11)}
    best_w = max(blends, key=blends.get)
    row = {"key": key, "image": name, "stop": stop, "size": list(clean.shape[:2]), "mask_seed": seed,
           "psnr_paper": evaluate(clean, result.image, convention="paper")["psnr"],
           "psnr_standard": evaluate(clean, result.image, convention="standard")["psnr"],
           "psnr_fit_paper": evaluate(clean, fit, convention="paper")["psnr"], "refine": result.settings.get("refine"),
           "returned_step": result.stop_step, "steps_run": result.steps_run, "seconds": seconds,
           "cpu_seconds": cpu_seconds, "ensemble": result.settings.get("ensemble"),
           "biharmonic_paper": blends[0.0], "best_blend_w": best_w, "best_blend_paper": blends[best_w],
           "blends_paper": {str(w): v for w, v in blends.items()},
           "settings_stop": result.settings.get("stop"), "commit": commit_id(), "processor": cpu_name(),
           "threads": 1, "torch": torch.__version__, "load": os.getloadavg()[0],
           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if os.environ.get("KEEP_IMAGES"):  # a folder for the fit's and biharmonic's images (npz)
        np.savez_compressed(Path(os.environ["KEEP_IMAGES"]) / f"{key.replace(':', '_')}.npz", fit=fit, biharmonic=bh)
    with rows.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{key}: {row['psnr_paper']:.2f} dB (step {row['returned_step']} of {row['steps_run']}, "
          f"{seconds:.0f} s); biharmonic {blends[0.0]:.2f}, best blend w={best_w} {blends[best_w]:.2f}", flush=True)
