"""Time of the defaults' pilot fit with its sines and cosines through NumPy against torch's own
(:data:`linr.models.NUMPY_TRIG_UP_TO_THREADS`), on this machine.

A 7x64 SIREN (the defaults' pilot, :data:`linr.tasks.DEFAULT_PILOT_MODEL`) is fitted for a fixed
number of steps to a noisy 272 x 272 RGB tile (the size of the defaults' tiles), once with each
arrangement, alternating, ``--reps`` times per torch thread count. Process CPU time and wall time
per step; the largest difference between the two fits' images. One row per thread count.

    .venv/bin/python benchmarks/trig_probe.py [--steps 30] [--reps 3] [--rows FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import torch

import linr
from linr import models
from linr.bench.common import commit_id
from linr.tasks import DEFAULT_PILOT_MODEL


def _fit(image: np.ndarray, steps: int) -> tuple[float, float, np.ndarray]:
    cpu, wall = time.process_time(), time.perf_counter()
    result = linr.restore(linr.noisy(image), model=DEFAULT_PILOT_MODEL, steps=steps, stop="fixed", refine="none",
                          device="cpu", progress=False)
    return time.process_time() - cpu, time.perf_counter() - wall, result.image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rows", type=Path, default=Path(__file__).with_name("trig_probe.jsonl"))
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    image = (0.5 + 0.2 * rng.standard_normal((272, 272, 3))).clip(0, 1).astype(np.float32)
    limit = models.NUMPY_TRIG_UP_TO_THREADS
    for threads in args.threads:
        torch.set_num_threads(threads)
        _fit(image, 3)  # warm-up
        times: dict[str, list[tuple[float, float]]] = {"torch": [], "numpy": []}
        images = {}
        load = os.getloadavg()[0]
        for _ in range(args.reps):
            for name, up_to in (("torch", 0), ("numpy", max(limit, threads))):
                models.NUMPY_TRIG_UP_TO_THREADS = up_to
                cpu, wall, images[name] = _fit(image, args.steps)
                times[name].append((cpu / args.steps, wall / args.steps))
        models.NUMPY_TRIG_UP_TO_THREADS = limit
        row = {"threads": threads, "steps": args.steps, "reps": args.reps, "tile": 272, "load_before": load,
               **{f"{n}_cpu_s_per_step": statistics.median(c for c, _ in t) for n, t in times.items()},
               **{f"{n}_wall_s_per_step": statistics.median(w for _, w in t) for n, t in times.items()},
               "max_image_difference": float(np.abs(images["torch"] - images["numpy"]).max()),
               "torch": torch.__version__, "numpy": np.__version__, "load_after": os.getloadavg()[0],
               "commit": commit_id()}
        row["cpu_ratio"] = row["numpy_cpu_s_per_step"] / row["torch_cpu_s_per_step"]
        row["wall_ratio"] = row["numpy_wall_s_per_step"] / row["torch_wall_s_per_step"]
        print(json.dumps(row))
        with args.rows.open("a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
