"""``linr bench presets``: does a fast preset reach the paper preset's PSNR on every test image?

``linr bench speed`` times one image per task against the plain reference loop. A fast preset
counts only if it reaches the paper preset's quality on the test images, not on one, so this
command runs, for every image of a task's set (centre crops of ``--size``; denoising sigma 25 and
10% inpainting with seed-0 noise and masks, SR x4 by lanczos2, as in ``linr bench speed``):

1. the **paper preset** on the fast engine (the same mathematics as the paper's code; fixed
   500 steps, as the paper stops), and
2. each named **preset** (e.g. ``fast``), stopped as that preset stops (its automatic stop rule
   on noisy inputs, whose renders count in its time),

and prints per image the final PSNR of both (RGB, data range 1, unclipped: the paper's
convention), the margin, and the time ratio paper/preset. The paper preset runs on the fast
engine, which is itself faster per step than the reference loop (``linr bench speed``), so these
ratios understate the speedup over the paper's own code.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..cli_common import positive_int
from .speed import (_engine_run, add_image_options, add_run_options, default_data, describe_machine,
                    load_crop, make_case)

__all__ = ["register", "SETS", "run_image", "summarise"]

SETS = {
    "denoise": "set9",
    "sr": "set5",
    "inpaint": "set9",
}
"""Image folder (under the data folder) of each task."""


def register(sub: Any) -> None:
    p = sub.add_parser("presets", help="fast presets vs the paper preset on every test image",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_image_options(p)
    p.add_argument("--presets", default="fast", help="comma-separated presets to judge (default fast)")
    p.add_argument("--images", type=positive_int, default=None,
                   help="only the first N images of each set (quick checks)")
    add_run_options(p)
    p.set_defaults(func=cmd_presets)


def run_image(task: str, clean: np.ndarray, presets: list[str], *, device: str = "cpu") -> dict[str, Any]:
    """The paper preset and each preset on one image: final PSNR, steps and seconds of each."""
    observations = make_case(task, clean)
    out = {}
    for name in ("paper", *presets):
        run = _engine_run(observations, clean, preset=name, steps=None, eval_every=10**9, device=device)
        out[name] = {k: run[k] for k in ("steps", "returned_step", "train_s", "final_psnr", "stop")}
    return out


def summarise(rows: list[dict[str, Any]], preset: str) -> dict[str, Any]:
    """Per-task summary of one preset: images reaching the paper's PSNR, margins, time ratios."""
    margins = [r["runs"][preset]["final_psnr"] - r["runs"]["paper"]["final_psnr"] for r in rows]
    ratios = [r["runs"]["paper"]["train_s"] / r["runs"][preset]["train_s"] for r in rows]
    return {
        "images": len(rows),
        "reached": sum(m >= -0.005 for m in margins),  # PSNR printed to 2 decimals
        "min_margin_db": min(margins),
        "mean_margin_db": float(np.mean(margins)),
        "min_ratio": min(ratios),
        "median_ratio": float(np.median(ratios)),
    }


def cmd_presets(args: argparse.Namespace) -> int:
    import os

    import torch

    from ..errors import InputError
    from ..fit import resolve_device
    from ..tasks import PRESETS

    if args.threads:
        torch.set_num_threads(args.threads)
    device = str(resolve_device(args.device))
    data = default_data(args.data)
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    for task in tasks:
        if task not in SETS:
            raise InputError(f"unknown task {task!r}; choose from {', '.join(SETS)}")
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    for name in presets:
        if name not in PRESETS or name == "paper":
            raise InputError(f"unknown preset {name!r}; choose from "
                             f"{', '.join(p for p in PRESETS if p != 'paper')}")
    machine = describe_machine(device)
    print(f"linr bench presets: {machine}; {args.size}x{args.size} centre crops; "
          "PSNR RGB, data range 1, unclipped")
    results: dict[str, Any] = {"machine": machine, "device": device, "size": args.size, "presets": presets, "tasks": {}}
    for task in tasks:
        folder = data / SETS[task]
        paths = sorted(folder.glob("*.png"))
        if not paths:
            raise InputError(f"no PNG images in {folder} (use --data)")
        rows = []
        results["tasks"][task] = {"rows": rows}
        for path in paths[: args.images]:
            clean = load_crop(path, args.size)
            t0 = time.perf_counter()
            runs = run_image(task, clean, presets, device=device)
            rows.append({"image": f"{SETS[task]}/{path.name}", "runs": runs})
            print(f"  [{task}] {path.name}: " + ", ".join(
                f"{name} {r['final_psnr']:.2f} dB in {r['train_s']:.1f} s ({r['steps']} steps)"
                for name, r in runs.items()) + f"  [{time.perf_counter() - t0:.0f} s wall]", flush=True)
            if args.json:
                Path(args.json).write_text(json.dumps(results, indent=1))
        results["tasks"][task]["summary"] = {p: summarise(rows, p) for p in presets}
        print(format_table(task, rows, presets), flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


def format_table(task: str, rows: list[dict[str, Any]], presets: list[str]) -> str:
    """One task's rows and summary as Markdown."""
    head = "| image | paper dB | paper s |"
    rule = "|---|---|---|"
    for p in presets:
        head += f" {p} dB | {p} steps | {p} s | margin | paper s / {p} s |"
        rule += "---|---|---|---|---|"
    lines = [f"{task}:", head, rule]
    for r in rows:
        paper = r["runs"]["paper"]
        line = f"| {r['image']} | {paper['final_psnr']:.2f} | {paper['train_s']:.1f} |"
        for p in presets:
            run = r["runs"][p]
            steps = str(run["steps"])
            if run["stop"].get("name") not in (None, "fixed"):
                steps += f" (returned {run['returned_step']})"
            line += (f" {run['final_psnr']:.2f} | {steps} | {run['train_s']:.1f} | "
                     f"{run['final_psnr'] - paper['final_psnr']:+.2f} | "
                     f"{paper['train_s'] / run['train_s']:.1f}x |")
        lines.append(line)
    for p in presets:
        s = summarise(rows, p)
        lines.append(f"{p}: reaches the paper preset's PSNR on {s['reached']}/{s['images']} images; "
                     f"margin min {s['min_margin_db']:+.2f} dB, mean {s['mean_margin_db']:+.2f} dB; "
                     f"time ratio min {s['min_ratio']:.1f}x, median {s['median_ratio']:.1f}x")
    return "\n".join(lines)
