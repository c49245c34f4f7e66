"""#15's stopping target for today's denoising default: how far the image the default returns
(the pilot's 40-iterate average at its held-out minimum, refined by ``grouped``) is from the best
refined image the same fit could have returned (the oracle, which needs the clean image).

For each image: the bench's noisy crop (``linr bench denoise``: centre crop, Gaussian noise of
sigma on the 0-255 scale, seed 0); the default restore (``linr.restore`` with every default,
``reference`` given only to read PSNR); then the same pilot fit (same settings, seed and held-out
pixels) run for a fixed ``--budget`` of steps, and every ``--every`` steps both its raw iterate and
the mean of its last 40 iterates (the default's average) refined as the default refines; the
oracle is the best of those refined images. Rows (JSONL, resumable by key): the default's PSNR,
the oracle's and where it was, the pilot's stop step, and (since the thirty-third session) the
curve: each checkpoint's step, the PSNR of its refined raw iterate and refined average, and the
mean squared difference of the raw iterate and the average from the noisy photo on the held-out
pixels (what the stop rule sees). PSNR: standard convention (clipped, data
range 1, scikit-image). One torch thread.

    python benchmarks/stop_refined_oracle.py ROWS [--size 128] [--sigma 25] [--colour grey] [--budget 400] [--every 5] NAME ...
    (NAME: a set9 name, or FOLDER/NAME such as set5/baby)
    python benchmarks/stop_refined_oracle.py ROWS --table
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from collections import deque
from pathlib import Path

import numpy as np
import torch

import linr
from linr import tasks
from linr.bench import data_dir
from linr.bench.averaging import clean_crop, observations_for
from linr.bench.common import append_row, commit_id, cpu_name, psnr, read_rows
from linr.fit import fit
from linr.refine import refine_image
from linr.stopping import FixedSteps, holdout_rule

WINDOW = 40


def _row(name: str, args: argparse.Namespace) -> dict:
    folder, _, image = name.rpartition("/")
    clean = clean_crop(data_dir(None), folder or "set9", image, args.colour, args.size)
    obs = observations_for("denoise", clean, sigma=args.sigma, seed=0)
    started = time.process_time()
    default = linr.restore(obs, seed=0, device="cpu", progress=False, reference=clean)
    default_s = time.process_time() - started
    refine = default.settings["refine"]["name"]
    stop = default.settings.get("stop") or {}

    # the same pilot fit, for a fixed budget, its iterates refined as the default refines them
    resolved, config = tasks.resolve(obs, seed=0, device="cpu")
    rule = tasks.resolve_stop(resolved, preset=None, steps=None, stop=None, refine=refine)
    held = holdout_rule(rule)
    if held is not None:
        resolved = held.prepare(resolved)  # the same held-out pixels as the default's fit
    window: deque = deque(maxlen=WINDOW)
    checkpoints: list[tuple[int, np.ndarray, np.ndarray]] = []

    def keep(step: int, output: torch.Tensor, loss: float) -> None:
        image = ((output[0].permute(1, 2, 0) + 1) / 2).float().cpu().numpy()
        window.append(image)
        if (step + 1) % args.every == 0:
            checkpoints.append((step + 1, image, np.mean(window, axis=0)))

    fit(resolved, dataclasses.replace(config, steps=args.budget, retry_lr=None), stop=FixedSteps(args.budget),
        callback=keep)
    best = {"psnr": -1.0}
    curve = []  # per checkpoint: step, the refined raw iterate's PSNR, the refined average's (and their held-out MSE)
    masks = None if held is None else held.held_out_masks()
    mask = None if masks is None else masks[0]
    noisy = np.asarray(obs[0].image, np.float64)
    for step, raw, mean in checkpoints:
        point = [step]
        for kind, image in (("raw", raw), ("average", mean)):
            refined, _ = refine_image(refine, image, obs, None if held is None else held.held_out_masks())
            value = psnr(clean, refined)
            point.append(round(value, 4))
            if value > best["psnr"]:
                best = {"psnr": value, "step": step, "iterate": kind}
        if mask is not None:  # what the stop rule sees: the iterates against the held-out noisy pixels
            point += [round(float(np.mean((np.asarray(image, np.float64)[mask] - noisy[mask]) ** 2)), 8)
                      for image in (raw, mean)]
        curve.append(point)
    return {"key": f"{name}_{args.colour}_s{args.size}_n{args.sigma:g}_b{args.budget}_e{args.every}{tasks.pilot_tag()}",
            "image": name, "colour": args.colour, "size": args.size, "sigma": args.sigma, "budget": args.budget, "every": args.every,
            "default_psnr": psnr(clean, default.image), "default_stop_step": default.stop_step,
            "default_steps_run": default.steps_run, "default_cpu_s": default_s,
            "stop": stop, "refine": refine,
            "oracle_psnr": best["psnr"], "oracle_step": best.get("step"), "oracle_iterate": best.get("iterate"),
            "curve": curve,
            "commit": commit_id(), "processor": cpu_name(), "torch": torch.__version__}


def _table(rows: dict) -> str:
    lines = ["| image | default (stop step) | oracle (step, iterate) | default - oracle |", "|---|---:|---:|---:|"]
    gaps = []
    for row in rows.values():
        gap = row["default_psnr"] - row["oracle_psnr"]
        gaps.append(gap)
        lines.append(f"| {row['image']} {row.get('colour', 'rgb')} {row['size']} px, sigma {row['sigma']:g} | {row['default_psnr']:.2f} "
                     f"({row['default_stop_step']}) | {row['oracle_psnr']:.2f} ({row['oracle_step']}, "
                     f"{row['oracle_iterate']}) | {gap:+.2f} |")
    if gaps:
        lines.append(f"| mean ({len(gaps)}) | | | {np.mean(gaps):+.2f} (worst {min(gaps):+.2f}) |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rows", type=Path)
    p.add_argument("names", nargs="*")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--budget", type=int, default=400)
    p.add_argument("--every", type=int, default=5)
    p.add_argument("--colour", choices=("rgb", "grey"), default="rgb")
    p.add_argument("--table", action="store_true")
    args = p.parse_intermixed_args()
    done = read_rows(args.rows)
    if args.table:
        print(_table(done))
        return
    torch.set_num_threads(1)
    for name in args.names:
        key = f"{name}_{args.colour}_s{args.size}_n{args.sigma:g}_b{args.budget}_e{args.every}{tasks.pilot_tag()}"
        if key in done:
            continue
        row = _row(name, args)
        append_row(args.rows, row)
        print(f"{name}: default {row['default_psnr']:.2f} (stop {row['default_stop_step']}), oracle "
              f"{row['oracle_psnr']:.2f} at {row['oracle_step']} ({row['oracle_iterate']})", flush=True)


if __name__ == "__main__":
    main()
