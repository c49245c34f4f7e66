"""Blurred photos with noise, restored by the default's deblurring with its fixed budget (2000 cosine
steps, the default before the sixty-fourth session) or stopped by held-out pixels (the default since,
from 3/255 of noise measured): crops of the shared images (grey, centre), blurred by Table 4's kernel
(25 x 25 Gaussian, sigma 1.6, reflecting), Gaussian noise of SIGMA/255 (seed 0), clipped, 8-bit PNG;
``linr restore --blurred B --kernel gaussian:25:1.6 --reference C`` with ``--stop fixed`` or ``--stop
holdout``; PSNR in the standard convention (grey, clipped, data range 1) beside the blurred photo's.
One torch thread; resumable rows (one per crop, size, sigma and stop).

    python benchmarks/noisy_blur_probe.py benchmarks/noisy_blur.jsonl --images set9/house,set5/baby \\
        --sigmas 3,5,10 --sizes 40 --stops fixed,holdout
    python benchmarks/noisy_blur_probe.py benchmarks/noisy_blur.jsonl --table
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from linr.bench.common import load_clean

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe_common import grid_run  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
KERNEL = "gaussian:25:1.6"


def row(name: str, size: int, sigma: float, stop: str) -> dict:
    from scipy.ndimage import convolve

    from linr.images import write_image
    from linr.kinds import parse_kernel

    clean = load_clean(DATA, f"{name}:grey", size)[..., 0]
    blur = convolve(clean, parse_kernel(KERNEL), mode="reflect")
    photo = np.clip(blur + np.random.default_rng(0).normal(0, sigma / 255, blur.shape), 0, 1)
    with tempfile.TemporaryDirectory() as folder:
        write_image(f"{folder}/b.png", photo[..., None])
        write_image(f"{folder}/c.png", clean[..., None])
        done = subprocess.run([str(Path(sys.executable).with_name("linr")), "restore", "--blurred", f"{folder}/b.png",
                               "--kernel", KERNEL, "--reference", f"{folder}/c.png", "-o", f"{folder}/o.png",
                               "--stop", stop], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{name}: {done.stderr}")
    out = done.stdout
    return {"key": f"{name}|{size}|{sigma:g}|{stop}", "name": name, "size": size, "sigma": sigma, "stop": stop,
            "psnr": float(re.search(r"^PSNR ([\d.]+) dB", out, re.M)[1]),
            "input_psnr": float(re.search(r"\(blurred\) PSNR ([\d.]+) dB", out)[1]),
            "steps": int(re.search(r"wrote .*?, (\d+) steps", out)[1]),
            "fit_s": float(re.search(r"steps, ([\d.]+) s fitting", out)[1])}


def table(rows: dict) -> str:
    cases: dict[tuple, dict] = {}
    for r in rows.values():
        cases.setdefault((r["size"], r["name"], r["sigma"]), {})[r["stop"]] = r
    lines = ["| crop | px | sigma (0-255) | blurred photo | fixed 2000 steps | held-out stop | its steps |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for (size, name, sigma), by in sorted(cases.items()):
        first = next(iter(by.values()))
        fixed, held = by.get("fixed"), by.get("holdout")
        lines.append(f"| {name} | {size} | {sigma:g} | {first['input_psnr']:.2f} | "
                     f"{'-' if fixed is None else format(fixed['psnr'], '.2f')} | "
                     f"{'-' if held is None else format(held['psnr'], '.2f')} | {'-' if held is None else held['steps']} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows", type=Path)
    p.add_argument("--images", default="set9/house,set9/kodim03")
    p.add_argument("--sizes", default="40")
    p.add_argument("--sigmas", default="3,5,10")
    p.add_argument("--stops", default="fixed,holdout")
    p.add_argument("--table", action="store_true")
    args = p.parse_args()
    grid_run(args.rows, table, args.table, [
        (f"{name}|{size}|{sigma:g}|{stop}", lambda name=name, size=size, sigma=sigma, stop=stop: row(name, size, sigma, stop))
        for size in map(int, args.sizes.split(",")) for sigma in map(float, args.sigmas.split(","))
        for name in args.images.split(",") for stop in args.stops.split(",")])

if __name__ == "__main__":
    main()
