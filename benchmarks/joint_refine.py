"""A first look: does the refinement of the denoising default pay on a joint fit of a noisy photo
and a x4 low-res one (Table 5's case), which the defaults do not refine?

For each image (set9 name or FOLDER/NAME, RGB, ``--size`` centre crop or ``full``), the bench's
observations (``linr.bench.averaging.observations_for('joint', ...)``: Gaussian noise ``--sigma``
on the 0-255 scale, seed 0, and a x4 Lanczos low-res view, weighted as the defaults weigh them)
are restored jointly with the defaults; the fit's image is then refined by ``wiener`` and by
``grouped`` against the noisy photo (``linr.refine.refine_image``, as ``--refine`` would). Beside
it, the default restore of the noisy photo alone. PSNR: standard convention (clipped, data range
1, scikit-image). Rows (JSONL, resumable by key) carry the commit, the processor and the seconds.

    python benchmarks/joint_refine.py ROWS [--size N|full] [--sigma S] NAME ...
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import linr
from linr.bench import data_dir
from linr.bench.averaging import clean_crop, observations_for
from linr.bench.common import append_row, commit_id, cpu_name, psnr, read_rows
from linr.refine import refine_image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("rows", type=Path)
    parser.add_argument("--size", default="128")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    done = read_rows(args.rows)
    for name in args.names:
        key = f"{name}_s{args.size}_n{args.sigma:g}"
        if key in done:
            continue
        folder, _, stem = name.rpartition("/")
        clean = clean_crop(data_dir(None), folder or "set9", stem, "rgb", None if args.size == "full" else int(args.size))
        joint = observations_for("joint", clean, sigma=args.sigma, seed=0)
        t0 = time.perf_counter()
        fitted = linr.restore(joint, device="cpu", progress=False, seed=0)
        joint_s = time.perf_counter() - t0
        row = {"key": key, "image": name, "size": args.size, "sigma": args.sigma,
               "joint_refine_default": fitted.settings.get("refine"), "joint": psnr(clean, fitted.image),
               "joint_steps": fitted.steps_run, "joint_s": joint_s}
        for spec in ("wiener", "grouped"):
            t0 = time.perf_counter()
            refined, _ = refine_image(spec, fitted.image, joint)
            row[f"joint+{spec}"], row[f"{spec}_s"] = psnr(clean, refined), time.perf_counter() - t0
        t0 = time.perf_counter()
        alone = linr.restore(joint[:1], device="cpu", progress=False, seed=0)
        row.update(alone_default=psnr(clean, alone.image), alone_s=time.perf_counter() - t0,
                   alone_refine=(alone.settings.get("refine") or {}).get("name"))
        row.update(commit=commit_id(), processor=cpu_name(), threads=1, torch=torch.__version__,
                   finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        append_row(args.rows, row)
        print(f"{key}: joint {row['joint']:.2f}, +wiener {row['joint+wiener']:.2f}, +grouped "
              f"{row['joint+grouped']:.2f}; noisy alone (default) {row['alone_default']:.2f} dB", flush=True)


if __name__ == "__main__":
    main()
