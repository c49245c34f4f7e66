"""Probe (#15 stop target): choose the denoising pilot's returned average among a few fractions of its
held-out minimum's step by the held-out loss of the *refined* image, made blind to the held-out
pixels (their noisy values replaced by the candidate's own before refining, so that the refined
value there never saw their noise).

Per crop (as ``linr bench default-stop``: centre crop, Gaussian noise of sigma, seed 0): the default
restore gives the held-out minimum's step ``s`` of the pilot's 40-iterate average; the same pilot fit
(same held-out pixels) runs to ``s``; for each fraction F the average at the 5-step checkpoint
nearest F s is refined as the default refines (true PSNR) and refined blind (held-out loss against
the noisy photo). Rows: per fraction (PSNR, blind held-out loss), the pick and its PSNR. Gaps to
the oracle use the oracle of ``--oracle ROWS`` (a ``linr bench default-stop`` rows file of the
same crops) when given. One torch thread.

    [FILL=neighbours] python benchmarks/stop_refined_pick_probe.py ROWS [--size 128] [--sigma 25] [--colour grey] [--oracle ROWS] NAME ...
    python benchmarks/stop_refined_pick_probe.py ROWS --table [--oracle ROWS]
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import numpy as np
import torch
from probe_common import crop_parser, default_restore, held_out_minimum, pilot_averages, run

from linr import tasks
from linr.bench.common import commit_id, cpu_name, psnr, read_rows
from linr.refine import refine_image
from linr.stopping import _neighbour_mean

FRACTIONS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)
FILL = os.environ.get("FILL", "candidate")
"""What replaces the held-out pixels of the noisy photo before the blind refinement: ``candidate``
(the candidate average's values) or ``neighbours`` (the mean of their kept 4-neighbours in the
noisy photo); environment variable FILL."""


def _key(name: str, args: argparse.Namespace) -> str:
    return f"{name}_{args.colour}_s{args.size}_n{args.sigma:g}{tasks.pilot_tag()}"


def _row(name: str, args: argparse.Namespace) -> dict:
    clean, obs, default = default_restore(name, args)
    minimum = held_out_minimum(default)
    refine = default.settings["refine"]["name"]
    averages, held = pilot_averages(obs, refine, minimum)
    masks = held.held_out_masks()
    mask = masks[0]
    noisy = np.asarray(obs[0].image, np.float32)
    noisy3 = noisy if noisy.ndim == 3 else noisy[..., None]
    points = {}
    for fraction in FRACTIONS:
        step = min(averages, key=lambda s: (abs(s - fraction * minimum), s)) if averages else None
        if step is None or step in [p["step"] for p in points.values()]:
            continue
        mean = averages[step]
        refined, _ = refine_image(refine, mean, obs, masks)
        blind_photo = noisy3.copy()
        if FILL == "neighbours":  # the held-out pixels' kept 4-neighbours' mean in the noisy photo
            y = torch.from_numpy(noisy3).permute(2, 0, 1)[None].double()
            filled = _neighbour_mean(y, torch.from_numpy(~mask))[0].permute(1, 2, 0).numpy()
            blind_photo[mask] = filled[mask]
        else:
            blind_photo[mask] = mean[mask]
        blind_obs = [dataclasses.replace(obs[0], image=blind_photo if noisy.ndim == 3 else blind_photo[..., 0])]
        blind, _ = refine_image(refine, mean, blind_obs, masks)
        loss = float(np.mean((np.asarray(blind, np.float64)[mask] - noisy3[mask]) ** 2))
        points[f"{fraction:g}"] = {"step": step, "psnr": psnr(clean, refined), "blind_loss": loss,
                                   "blind_psnr": psnr(clean, blind)}
    pick = min(points, key=lambda f: points[f]["blind_loss"])
    return {"key": _key(name, args), "image": name, "colour": args.colour, "size": args.size, "sigma": args.sigma,
            "minimum_step": minimum, "default_psnr": psnr(clean, default.image), "points": points, "pick": pick,
            "pick_psnr": points[pick]["psnr"], "commit": commit_id(), "processor": cpu_name()}


def _table(rows: dict, oracle: dict) -> str:
    lines = ["| image | " + " | ".join(f"F {f:g}" for f in FRACTIONS) + " | pick (F) | oracle |",
             "|---|" + "---:|" * (len(FRACTIONS) + 2)]
    gaps: dict[str, list[float]] = {}
    for row in rows.values():
        ref = next((o["oracle_psnr"] for o in oracle.values() if o["image"] == row["image"]
                    and o["colour"] == row["colour"] and o["size"] == row["size"] and o["sigma"] == row["sigma"]), None)
        best = ref if ref is not None else max(p["psnr"] for p in row["points"].values())
        cells = []
        for f in FRACTIONS:
            p = row["points"].get(f"{f:g}")
            cells.append("-" if p is None else f"{p['psnr'] - best:+.2f}")
            if p is not None:
                gaps.setdefault(f"{f:g}", []).append(p["psnr"] - best)
        gaps.setdefault("pick", []).append(row["pick_psnr"] - best)
        lines.append(f"| {row['image']} {row['colour']} {row['size']} sigma {row['sigma']:g} (s={row['minimum_step']}) | "
                     + " | ".join(cells) + f" | {row['pick_psnr'] - best:+.2f} ({row['pick']}) | {best:.2f} |")
    lines.append("| mean / worst | " + " | ".join(
        f"{np.mean(gaps[f'{f:g}']):+.2f} / {min(gaps[f'{f:g}']):+.2f}" if f"{f:g}" in gaps else "-" for f in FRACTIONS)
        + f" | {np.mean(gaps['pick']):+.2f} / {min(gaps['pick']):+.2f} | |")
    return "\n".join(lines)


def main() -> None:
    p = crop_parser(__doc__.splitlines()[0], 128)
    p.add_argument("--oracle", type=Path, default=None)
    args = p.parse_intermixed_args()
    run(args, lambda name: _key(name, args), lambda name: _row(name, args),
        lambda name, row: f"{name} {row['pick']} " + str({f: round(q['psnr'], 2) for f, q in row['points'].items()}),
        lambda done: _table(done, read_rows(args.oracle) if args.oracle else {}))


if __name__ == "__main__":
    main()
