"""Variants of the default denoising restore on 128-px crops: SIREN bandwidth and image priors.

One fit per (image, variant) of the default denoising restore (automatic stop: hold-out, 40-iterate
average) on the noisy crop of ``linr bench averaging`` (centre crop, sigma-25 Gaussian noise,
seed 0). A variant is ``default`` (whatever the default restore does
at the commit recorded: rows from before the default had a prior count as ``prior=none`` too),
``omega_0=W`` (the SIREN's omega_0, first and hidden layers,
``--omega0``: with coordinates on [-1, 1] across the image, omega_0 = 30 gives a 128-px crop twice
the frequency per pixel a 256-px image gets) or ``prior=SPEC`` (an image prior, ``--prior``, such
as ``prior=tv:0.05``, or ``prior=tv:auto``: its weight set from the measured noise level; rows
record the spec used). PSNR: standard convention (clipped to [0, 1], data range 1,
scikit-image). Rows (JSONL, resumable: a rerun skips finished keys) carry the returned step, the
steps run, seconds and provenance.

    python benchmarks/denoise_variants.py --images baboon house kodim01 kodim03 \
        --variants omega_0=15 omega_0=20 omega_0=30 omega_0=45 --rows benchmarks/denoise_variants.jsonl
    python benchmarks/denoise_variants.py --table --variants default prior=tv:0.05   # the rows so far
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


def options(variant: str) -> dict:
    """restore() keyword arguments of a variant."""
    if variant == "default":
        return {}
    name, _, value = variant.partition("=")
    if name == "omega_0":
        return {"model": replace(ModelConfig(), omega_0=float(value))}
    if name == "prior":
        return {"prior": value}
    raise SystemExit(f"unknown variant {variant!r}: default, omega_0=W or prior=SPEC")


SPLITS = ("tune", "report", "held-out")
"""set9 tune crops (weights chosen there), set9 report crops, images of other folders."""


def table(rows: dict, variants: list[str]) -> str:
    """PSNR (returned step / steps run, seconds) per image and variant, then the mean of each split
    and its difference to the first variant, over the images that have every variant."""
    by_image: dict[tuple[str, str, str, int, float], dict[str, dict]] = {}
    for row in rows.values():
        key = (row["split"], row["image"], row["colour"], row["size"], row["sigma"])
        by_image.setdefault(key, {})[row["variant"]] = row
    for cells in by_image.values():  # the default model's omega_0 is 30: the same fit
        if "default" not in cells and "omega_0=30" in cells:
            cells["default"] = cells["omega_0=30"]
        # rows of the default made before it had a prior (none recorded) are fits without one
        old = cells.get("default")
        if "prior=none" not in cells and old is not None and not old.get("prior"):
            cells["prior=none"] = old
    lines = ["| split | image | " + " | ".join(variants) + " |", "|---|---|" + "---:|" * len(variants)]
    means: dict[str, list[list[float]]] = {}
    for (split, image, colour, size, sigma), cells in sorted(
            by_image.items(), key=lambda kv: (kv[0][4], kv[0][3], SPLITS.index(kv[0][0]), kv[0][1])):
        if not all(v in cells for v in variants):
            continue
        shown = [f"{cells[v]['psnr']:.2f} ({cells[v]['returned_step']} / {cells[v]['steps_run']}, "
                 f"{cells[v]['seconds']:.0f} s)" for v in variants]
        lines.append(f"| {split} | {image} {colour} {size} px, sigma {sigma:g} | " + " | ".join(shown) + " |")
        means.setdefault(f"{split}, {size} px, sigma {sigma:g}", []).append([cells[v]["psnr"] for v in variants])
    for split, values in means.items():
        m = [sum(col) / len(col) for col in zip(*values)]
        lines.append(f"| {split}: mean ({len(values)}) | | " + " | ".join(
            f"{x:.2f}" + ("" if i == 0 else f" ({x - m[0]:+.2f})") for i, x in enumerate(m)) + " |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", nargs="+", default=None, help="set9 image names, or FOLDER/NAME of another folder of the data, such as "
                   "set5/bird (needed unless --table)")
    p.add_argument("--colours", nargs="+", default=["rgb"], choices=["rgb", "grey"])
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--variants", nargs="+", default=["default"])
    p.add_argument("--rows", default="benchmarks/denoise_variants.jsonl")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--table", action="store_true",
                   help="print a Markdown table of the recorded rows of --variants (all images) instead")
    args = p.parse_args()
    if args.table:
        print(table(read_rows(Path(args.rows)), args.variants))
        return
    if not args.images:
        p.error("--images: give one or more set9 image names")
    for variant in args.variants:
        options(variant)  # a bad variant: now, not after hours of fits
    torch.set_num_threads(args.threads)
    data = Path(os.environ.get("LINR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    rows_path = Path(args.rows)
    done = read_rows(rows_path)
    for name in args.images:
        for colour in args.colours:
            folder, _, stem = name.rpartition("/")  # set9 unless named, such as set5/bird
            clean = _clean(data, folder or "set9", stem, colour, args.size)
            for variant in args.variants:
                key = f"{name}_{colour}_s{args.size}_n{args.sigma:g}_{variant}"
                if key in done:
                    continue
                obs = observations_for("denoise", clean, sigma=args.sigma, seed=0)
                t0 = time.perf_counter()
                result = restore(obs, device="cpu", progress=False, seed=0, **options(variant))
                seconds = time.perf_counter() - t0
                row = {"key": key, "image": name, "colour": colour, "size": args.size, "sigma": args.sigma,
                       "variant": variant,
                       "split": "tune" if name in TUNE else "report" if "/" not in name else "held-out",
                       "psnr": psnr(clean, result.image), "returned_step": result.stop_step,
                       "steps_run": result.steps_run, "seconds": seconds,
                       "stop": result.settings.get("stop"), "prior": result.settings.get("prior"),
                       "prior_used": result.settings.get("prior_used"),
                       "commit": commit_id(), "processor": cpu_name(),
                       "threads": args.threads, "torch": torch.__version__,
                       "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                with rows_path.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"{key}: {row['psnr']:.2f} dB, returned step {row['returned_step']} of "
                      f"{row['steps_run']}, {seconds:.0f} s", flush=True)


if __name__ == "__main__":
    main()
