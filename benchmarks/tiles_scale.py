"""How tiled restoration scales with the image size: time per pixel and peak memory.

Each size is a mirror-tiled copy of a shared photo (set9/kodim01) with Gaussian noise (sigma 25),
restored with the default tiles and a FIXED step count per tile (so that every tile does the same
work and the time per pixel measures the tiling's own overhead; quality is `linr bench tiles`'
business). Each size runs in its own process so that its peak memory (ru_maxrss) is its own.

    .venv/bin/python benchmarks/tiles_scale.py 512 2048 [8192] [--steps 10] [--tile 256:32] [--width 32]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def one(size: int, steps: int, tile: str, data: Path, width: int | None, device: str, stack: int | None) -> dict:
    import numpy as np
    import torch

    from linr.images import read_image
    from linr.models import ModelConfig
    from linr.tasks import noisy, restore

    photo, _ = read_image(data / "set9" / "kodim01.png")
    reps = (size // photo.shape[0] + 2, size // photo.shape[1] + 2, 1)
    mirrored = np.concatenate([photo, photo[::-1]], 0)
    mirrored = np.concatenate([mirrored, mirrored[:, ::-1]], 1)
    big = np.tile(mirrored, (reps[0] // 2 + 1, reps[1] // 2 + 1, 1))[:size, :size]
    rng = np.random.default_rng(0)
    y = (big + rng.normal(0, 25 / 255, big.shape)).astype(np.float32)
    del big
    t0 = time.perf_counter()
    model = ModelConfig(width=width) if width else None
    result = restore([noisy(y)], tile=tile, steps=steps, stop="fixed", device=device, progress=False,
                     model=model, tile_stack=stack)
    seconds = time.perf_counter() - t0
    tiling = result.settings["tiling"]
    gpu_peak = None
    if device.startswith("cuda"):
        gpu_peak = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        device = f"{device} ({torch.cuda.get_device_name()})"
    return {"size": size, "device": device, "stack": tiling["stack"], "gpu_peak_gib": gpu_peak,
            "steps_per_tile": steps, "tile": tile, "width": width or 256, "tiles": tiling["tiles"],
            "tile_size": tiling["size"], "seconds": round(seconds, 1),
            "us_per_pixel_step": round(seconds / (size * size) / steps * 1e6, 3),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("sizes", nargs="+", type=int)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--tile", default="256:32")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--width", type=int, default=None, help="SIREN width (default 256)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--stack", type=int, default=None, help="tiles per stack (default: linr's)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.sizes[0], args.steps, args.tile, Path(args.data), args.width, args.device,
                             args.stack)))
        return
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, str(size), "--one", "--steps", str(args.steps),
                              "--tile", args.tile, "--data", args.data,
                              "--device", args.device,
                              *(["--width", str(args.width)] if args.width else []),
                              *(["--stack", str(args.stack)] if args.stack else [])],
                             capture_output=True, text=True, check=True)
        print(out.stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
