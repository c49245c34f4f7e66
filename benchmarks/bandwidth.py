"""SIREN bandwidth (omega_0) against the crop size: does a frequency matched to the image pay?

With coordinates on [-1, 1] across the image, omega_0 = 30 gives a 128-px crop twice the
frequency per pixel that a 256-px image gets (the paper's images are 256-512 px). One fit per
(image, omega_0) of the default denoising restore (automatic stop: hold-out, 40-iterate
average) on the noisy crop of ``linr bench averaging`` (centre crop, sigma-25 Gaussian noise,
seed 0), with the SIREN's omega_0 (first and hidden layers, ``--omega0``) set. PSNR: standard
convention (clipped to [0, 1], data range 1, scikit-image). Rows (JSONL, resumable: a rerun skips
finished keys) carry the returned step, the steps run, seconds and provenance.

    python benchmarks/bandwidth.py --images baboon house kodim01 kodim03 --omegas 15 20 30 45 \
        --rows benchmarks/bandwidth.jsonl
"""
from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import replace
from pathlib import Path

import torch

from linr.bench.averaging import TUNE, _clean, observations_for
from linr.bench.common import commit_id, cpu_name, psnr, read_rows
from linr.models import ModelConfig
from linr.tasks import restore


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", nargs="+", required=True, help="set9 image names")
    p.add_argument("--colours", nargs="+", default=["rgb"], choices=["rgb", "grey"])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--omegas", nargs="+", type=float, default=[15, 20, 30, 45])
    p.add_argument("--rows", default="benchmarks/bandwidth.jsonl")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    data = Path(os.environ.get("LINR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    rows_path = Path(args.rows)
    done = read_rows(rows_path)
    for name in args.images:
        for colour in args.colours:
            clean = _clean(data, "set9", name, colour, args.size)
            for omega in args.omegas:
                key = f"{name}_{colour}_s{args.size}_n{args.sigma:g}_w{omega:g}"
                if key in done:
                    continue
                obs = observations_for("denoise", clean, sigma=args.sigma, seed=0)
                t0 = time.perf_counter()
                result = restore(obs, model=replace(ModelConfig(), omega_0=omega), device="cpu",
                                 progress=False, seed=0)
                seconds = time.perf_counter() - t0
                row = {"key": key, "image": name, "colour": colour, "size": args.size, "sigma": args.sigma,
                       "omega_0": omega, "split": "tune" if name in TUNE else "report",
                       "psnr": psnr(clean, result.image), "returned_step": result.stop_step,
                       "steps_run": result.steps_run, "seconds": seconds,
                       "stop": result.settings.get("stop"), "commit": commit_id(), "processor": cpu_name(),
                       "threads": args.threads, "torch": torch.__version__,
                       "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                with rows_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{key}: {row['psnr']:.2f} dB, returned step {row['returned_step']} of "
                      f"{row['steps_run']}, {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
