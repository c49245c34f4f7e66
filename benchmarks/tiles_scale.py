"""How tiled restoration scales with the image size: time per pixel and peak memory.

Each size is a mirror-tiled copy of a shared photo (set9/kodim01) with Gaussian noise (sigma 25),
restored with the default tiles and a FIXED step count per tile (so that every tile does the same
work and the time per pixel measures the tiling's own overhead; quality is `linr bench tiles`'
business). The row's ``seconds`` is the whole restore, the default refinement after the fit
included (numpy on the host's CPU whatever the device); ``fit_s`` and ``refine_s`` split it. Each size runs in its own process so that its peak memory (ru_maxrss) is its own.

    .venv/bin/python benchmarks/tiles_scale.py 512 2048 [8192] [--steps 10] [--tile 256:32] [--width 32]

With ``--defaults`` each size is restored as a user's ``linr restore noisy.png`` would be (every
setting linr's default: tiles, the pilot, its stop rule and retry, the refinement), so the time
per pixel is the real one and the row also holds the PSNR against the clean mirror-tiled photo
(standard convention: scikit-image, clipped, data range 1). ``--rows FILE`` appends each row.

    .venv/bin/python benchmarks/tiles_scale.py 512 2048 --defaults --rows benchmarks/tiles_scale_defaults.jsonl
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path


def noisy_mirrored_photo(data: Path, size: int):
    """set9/kodim01 mirror-tiled to ``size`` x ``size`` (clean, float) and that with Gaussian noise
    of sigma 25 (seed 0, float32): the photo every size of these runs restores."""
    import numpy as np

    from linr.images import read_image

    photo, _ = read_image(data / "set9" / "kodim01.png")
    mirrored = np.concatenate([photo, photo[::-1]], 0)
    mirrored = np.concatenate([mirrored, mirrored[:, ::-1]], 1)
    reps = (size // mirrored.shape[0] + 1, size // mirrored.shape[1] + 1, 1)
    clean = np.tile(mirrored, reps)[:size, :size]
    return clean, (clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape)).astype(np.float32)


def one(size: int, steps: int, tile: str, data: Path, width: int | None, device: str, stack: int | None,
        defaults: bool = False) -> dict:
    import torch

    from linr.models import ModelConfig
    from linr.tasks import noisy, restore

    big, y = noisy_mirrored_photo(data, size)
    if defaults:
        return _defaults_row(size, big, y, device)
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
            "tile_size": tiling["size"], "seconds": round(seconds, 3),
            # the fit and the refinement after it (numpy on the host's CPU whatever the device; in
            # milliseconds: a dry run's fit takes a few since the fits' Adam imports no compiler)
            "fit_s": round(result.timings.get("fit_s", 0.0), 3),
            "refine": (result.settings.get("refine") or {}).get("name"),
            "refine_s": round(result.timings.get("refine_s", 0.0), 3),
            "us_per_pixel_step": round(seconds / (size * size) / steps * 1e6, 3),
            "fit_us_per_pixel_step": round(result.timings.get("fit_s", 0.0) / (size * size) / steps * 1e6, 3),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "threads": torch.get_num_threads()}


def _defaults_row(size: int, clean, y, device: str) -> dict:
    """One restore with every setting linr's default, timed (wall and this process's CPU)."""
    import numpy as np
    import torch
    from skimage.metrics import peak_signal_noise_ratio

    from linr.bench.common import commit_id, cpu_name
    from linr.tasks import noisy, restore

    t0, c0 = time.perf_counter(), time.process_time()
    result = restore([noisy(y)], device=device, progress=False)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    s = result.settings
    tiles = [t for t in s.get("tiles") or [] if t]
    stops = [t["stop_step"] for t in tiles] or [result.stop_step]
    retried = sum(1 for t in tiles if t.get("retry")) if tiles else int(bool(s.get("retry")))
    psnr = peak_signal_noise_ratio(clean.astype(np.float64), np.clip(result.image, 0, 1).astype(np.float64),
                                   data_range=1.0)
    refine = s.get("refine") or {}
    return {"size": size, "mode": "defaults", "device": device, "threads": torch.get_num_threads(),
            "processor": cpu_name(), "commit": commit_id(), "torch": torch.__version__,
            "tiles": (s.get("tiling") or {}).get("tiles", 1), "tile_size": (s.get("tiling") or {}).get("size"),
            "stop_steps": [int(min(stops)), int(np.median(stops)), int(max(stops))], "retried": retried,
            "refine": refine.get("name"), "refine_s": round(result.timings.get("refine_s", 0.0), 1),
            "seconds": round(seconds, 1), "cpu_s": round(cpu, 1),
            "us_per_pixel": round(seconds / (size * size) * 1e6, 2),
            "cpu_us_per_pixel": round(cpu / (size * size) * 1e6, 2),
            "psnr": round(float(psnr), 2),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def main() -> None:
    from linr.bench.common import append_row

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("sizes", nargs="+", type=int)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--tile", default="256:32")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--width", type=int, default=None, help="SIREN width (default 256)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--stack", type=int, default=None, help="tiles per stack (default: linr's)")
    p.add_argument("--defaults", action="store_true",
                   help="restore with linr's default settings (auto tiles, stop, refinement), not fixed steps")
    p.add_argument("--rows", default=None, help="append each row to this JSONL file")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(one(args.sizes[0], args.steps, args.tile, Path(args.data), args.width, args.device,
                             args.stack, args.defaults)))
        return
    for size in args.sizes:
        out = subprocess.run([sys.executable, __file__, str(size), "--one", "--steps", str(args.steps),
                              "--tile", args.tile, "--data", args.data,
                              "--device", args.device,
                              *(["--width", str(args.width)] if args.width else []),
                              *(["--stack", str(args.stack)] if args.stack else []),
                              *(["--defaults"] if args.defaults else [])],
                             capture_output=True, text=True, check=True)
        row = out.stdout.strip().splitlines()[-1]
        print(row, flush=True)
        if args.rows:
            append_row(args.rows, json.loads(row))


if __name__ == "__main__":
    main()
