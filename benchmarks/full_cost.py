"""Estimated CPU cost of the paper profile at full size (benchmarks/paper_full.sh), per table:
the LINR paper column and the default/fast columns where they are separate fits, from
linr.cost.plan's FLOP count and a measured throughput (no fitting). Prints a Markdown table.

    .venv/bin/python benchmarks/full_cost.py [GFLOP_PER_S] [--paper-only]
    (GFLOP_PER_S default: measured now, 1 thread; --paper-only: the LINR paper column alone)
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from linr import tasks
from linr.bench.runner import BenchRun
from linr.bench.spec import PROFILES, TABLES
from linr.cost import plan
from linr.engine import measure_throughput

torch.set_num_threads(1)
args = [a for a in sys.argv[1:] if not a.startswith("--")]
kinds = ("linr",) if "--paper-only" in sys.argv else ("linr", "linr_default", "linr_fast")
rate = float(args[0]) * 1e9 if args else measure_throughput()
data = Path(__file__).resolve().parents[1].parent / "shared" / "data"
run = BenchRun(PROFILES["paper"], data=data, out=Path("/tmp/linr_full_cost"), device="cpu",
               plots=False, log=lambda s: None, resume=False)
seen: set = set()
print(f"throughput {rate / 1e9:.1f} GFLOP/s (1 thread)")
print("| table | fits | steps | CPU hours (1 thread) |")
print("|---:|---:|---:|---:|")
total = 0.0
for table in sorted(TABLES, key=lambda t: [3, 2, 5, 8, 7, 10, 13, 12, 1, 6, 9, 4, 11, 14].index(t.number)):
    hours, fits, steps = 0.0, 0, 0
    for scene in run.scenes(table):
        for method in table.methods:
            if method.kind not in kinds:
                continue
            corruption = method.corruption or table.corruption
            arrays, seeds = run.corrupt(scene, corruption)
            key = str(run.job_key(scene, corruption, method, seeds, arrays))
            if key in seen:
                continue  # shared with an earlier column or table
            seen.add(key)
            config, stop, grid, _refine = run._linr_settings(method, arrays, corruption)
            # tiles (the defaults above 384 px): counted as one whole-image fit of the tile's
            # network and budget, an upper bound (each tile stops on its own, and early)
            obs, _ = tasks.resolve(run.observations(arrays, corruption), device="cpu",
                                   model=config.model, steps=config.steps)
            est = plan(obs, config, whole_output_every_step=stop is not None, flops_per_second=rate)
            h, w = scene.clean.shape[:2]
            evals = h * w * est.flops_per_step / max(est.chunk_pixels, 1) / 3 / 10  # PSNR every 10
            seconds = est.seconds + (config.steps * evals / rate if est.chunk_pixels < h * w else 0)
            hours += seconds / 3600  # an automatic stop may end earlier: an upper bound there
            fits += 1
            steps += config.steps
    total += hours
    print(f"| {table.number} | {fits} | {steps} | {hours:.1f} |")
print(f"| all | | | {total:.1f} |")
