"""The time of the default restore of one small noisy photo (the SURE pick's path): a 128-px centre
crop of a shared image, sigma-25 noise (seed 1), colour or grey, one torch thread; one JSON line.

    PYTHONPATH=src OMP_NUM_THREADS=1 python benchmarks/sure_cost_probe.py set5/bird [grey] [--score-step PX] [--score-patience N] [--size PX]

``--score-step``: the SURE pick's scoring filter's reference step (``linr.sure.SCORE_STEP``);
``--score-patience N``: ``linr.sure.SCORE_PATIENCE`` (a large N: the second fit runs its budget,
as before the forty-first session); ``--size``: the crop's side (default 128). ``held_out_path_s`` is the restore's time less the
pick's (``sure_s``): what the held-out stop alone (the first fit and one refinement) took.
"""
import argparse
import json
import os
import time
import numpy as np
from linr.images import read_image
from linr.tasks import noisy, restore
import torch

torch.set_num_threads(1)
DATA = os.environ.get("LINR_DATA", "../shared/data")
import linr.sure

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("name")
parser.add_argument("grey", nargs="?", choices=["grey"])
parser.add_argument("--score-step", type=int, default=linr.sure.SCORE_STEP)
parser.add_argument("--score-patience", type=int, default=linr.sure.SCORE_PATIENCE)
parser.add_argument("--size", type=int, default=128)
args = parser.parse_args()
linr.sure.SCORE_STEP, linr.sure.SCORE_PATIENCE = args.score_step, args.score_patience
name, grey, size = args.name, args.grey is not None, args.size
clean, _ = read_image(f"{DATA}/{name}.png")
h, w = clean.shape[:2]
c = clean[(h-size)//2:(h-size)//2+size, (w-size)//2:(w-size)//2+size]
if grey: c = c.mean(axis=2, keepdims=True)
y = np.clip(c + np.random.default_rng(1).normal(0, 25/255, c.shape), 0, 1).astype(np.float32)
t=time.time()
r = restore([noisy(y)], device="cpu", progress=False)
from skimage.metrics import peak_signal_noise_ratio as psnr
su = r.settings["stop"].get("sure", {})
s = time.time() - t
print(json.dumps({"image": name, "grey": grey, "size": size, "s": round(s, 1), "held_out_path_s": round(s - r.timings.get("sure_s", 0), 1), "fit_s": round(r.timings["fit_s"], 1), "sure_fit_s": round(r.timings.get("sure_fit_s", 0), 1), "sure_s": round(r.timings.get("sure_s", 0), 1), "step": su.get("step"), "held": su.get("held_out_step"), "candidates": su.get("candidates"), "score_step": linr.sure.SCORE_STEP, "score_patience": linr.sure.SCORE_PATIENCE, "second_fit_steps": su.get("second_fit_steps"), "second_fit_budget": su.get("second_fit_budget"), "psnr": round(float(psnr(c.astype(np.float64), np.clip(r.image,0,1).astype(np.float64), data_range=1)), 3)}))
