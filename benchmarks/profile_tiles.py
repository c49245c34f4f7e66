"""Where a step of stacked tiles spends its time: torch's profiler over a tiled restore.

A mirror-tiled copy of set9/kodim01 with Gaussian noise (sigma 25), SIZE x SIZE, restored in tiles
with a fixed number of steps per tile and no refinement (so that only the fit is profiled), the
default model and prior otherwise. Prints the operators that took the most time (on the device
when it is a GPU, else on the CPU) and one JSON line with the wall time of the fit.

    .venv/bin/python benchmarks/profile_tiles.py --size 1024 --steps 5 --stack 16 --device cuda
"""

from __future__ import annotations

import argparse
import json
import time
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiles_scale import noisy_mirrored_photo  # noqa: E402


def main() -> None:
    import torch
    from torch.profiler import ProfilerActivity, profile

    from linr.models import ModelConfig
    from linr.tasks import noisy, restore

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--tile", default="256:32")
    p.add_argument("--stack", type=int, default=16)
    p.add_argument("--width", type=int, default=None, help="SIREN width (default 256)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--rows", type=int, default=25, help="operators to print")
    args = p.parse_args()

    _, y = noisy_mirrored_photo(Path(args.data), args.size)  # the photo of benchmarks/tiles_scale.py
    model = ModelConfig(width=args.width) if args.width else None
    run = dict(tile=args.tile, steps=args.steps, stop="fixed", device=args.device, progress=False,
               model=model, tile_stack=args.stack, refine="none")
    restore([noisy(y[:64, :64])], **{**run, "tile": "off"})  # warm-up: CUDA's start-up, kernels
    cuda = args.device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    t0 = time.perf_counter()
    with profile(activities=activities) as prof:
        result = restore([noisy(y)], **run)
        if cuda:
            torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    key = "self_cuda_time_total" if cuda else "self_cpu_time_total"
    print(prof.key_averages().table(sort_by=key, row_limit=args.rows))
    tiling = result.settings["tiling"]
    pixel_steps = tiling["tiles"] * tiling["size"][0] * tiling["size"][1] * args.steps
    flop = 2.4e6 * ((args.width or 256) / 256) ** 2  # per pixel-step, the hidden layers' share
    print(json.dumps({"size": args.size, "device": args.device, "tiles": tiling["tiles"],
                      "stack": tiling["stack"], "steps": args.steps, "seconds_profiled": round(seconds, 2),
                      "fit_s": round(result.timings.get("fit_s", 0.0), 2),
                      "tflops_fit": round(flop * pixel_steps / max(result.timings.get("fit_s", 1e-9), 1e-9) / 1e12, 2)}))


if __name__ == "__main__":
    main()
