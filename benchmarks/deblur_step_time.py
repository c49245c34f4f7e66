"""Seconds per step of the deblurring default's fit (free edges, grown by the kernel's reach) on a
tile-sized blurred photo, 268 x 256 px as a 1536 x 1024 deblurring's tiles, the paper's 7x256
against a 7x128, alternated twice, one torch thread; one JSON line per timing appended to ROWS.

    PYTHONPATH=src nice .venv/bin/python benchmarks/deblur_step_time.py benchmarks/deblur_step_time.jsonl
"""
import datetime
import json
import sys
import time

import numpy as np
import torch

import linr
from linr.models import ModelConfig
from linr.operators import gaussian_kernel

STEPS = 12


def main(rows_path: str) -> None:
    torch.set_num_threads(1)
    photo = np.random.default_rng(0).random((256, 268, 3)).astype(np.float32)
    obs = [linr.blurred(photo, gaussian_kernel(25, 1.6))]
    with open(rows_path, "a") as rows:
        for rep in range(2):
            for name, options in (("w256", {}), ("w128", {"model": ModelConfig(width=128)})):
                t0 = time.perf_counter()
                result = linr.restore(obs, steps=STEPS, stop=f"fixed:{STEPS}", refine="none", device="cpu",
                                      progress=False, threads=None, **options)
                row = {"network": name, "rep": rep, "s_per_step": round(result.timings["fit_s"] / STEPS, 3),
                       "wall_s": round(time.perf_counter() - t0, 1), "tile": [256, 268], "threads": 1,
                       "steps_timed": STEPS, "date": datetime.date.today().isoformat()}
                rows.write(json.dumps(row) + "\n")
                print(row, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
