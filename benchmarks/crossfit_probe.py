"""#15 cross-fitting (a probe): is a pilot that never saw a pixel's noise a better pilot for the
denoising default's grouped filter?

For each noisy crop (``linr bench denoise``'s: centre crop, Gaussian noise of sigma 25 on the
0-255 scale, seed 0): the default restore (its pilot fit and its ``grouped`` refinement), then K
pilot fits of the same settings (the defaults' network, learning rate, budget and measured TV
weight; the held-out stop with its average), fit ``k`` trained only on the pixels of part ``k`` of
a random partition of the pixels into K parts (a masked observation that carries the noise). The
cross-fitted image takes each pixel from the fits that never saw it (the mean of the K - 1 others),
so its error at a pixel is independent of that pixel's noise (Noise2Self's J-invariance; the
INR form of Self2Self's dropout ensembles). Reported, PSNR in the standard convention (clipped,
data range 1): the default's pilot and refined image; the cross-fitted image and the plain mean
of the K fits; each refined by ``grouped`` as the pilot; CPU seconds of each part (one thread).

    .venv/bin/python benchmarks/crossfit_probe.py house baboon kodim01 kodim03 --size 128 \\
        --rows benchmarks/crossfit_probe.jsonl

Rows (JSONL, resumable by key) carry the commit and the processor; ``--table ROWS`` prints them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np


def run(name: str, size: int | None, parts: int, sigma: float, data: Path) -> dict:
    import linr
    from linr.bench.averaging import clean_crop, observations_for
    from linr.bench.common import psnr
    from linr.refine import refine_image
    from linr.tasks import DEFAULT_PILOT_LR, DEFAULT_PILOT_MODEL, DEFAULT_PILOT_STEPS

    folder, _, stem = name.rpartition("/")
    clean = clean_crop(data, folder or "set9", stem, "rgb", size)
    obs = observations_for("denoise", clean, sigma=sigma, seed=0)
    row: dict = {"image": name, "size": size or "full", "sigma": sigma, "parts": parts}

    c0 = time.process_time()
    default = linr.restore(obs, device="cpu", progress=False, seed=0)
    row["default"] = {"pilot": psnr(clean, default.fitted_image), "refined": psnr(clean, default.image),
                      "cpu_seconds": time.process_time() - c0, "prior": default.settings.get("prior_used"),
                      "stop": default.settings.get("stop"), "returned_step": default.stop_step}
    prior = default.settings.get("prior_used") or "none"

    noisy = obs[0].image
    h, w = noisy.shape[:2]
    part = np.random.default_rng(1).integers(0, parts, size=(h, w))
    fits, seconds, steps = [], [], []
    for k in range(parts):
        seen = part == k
        masked = dataclasses.replace(linr.masked(noisy, seen.astype(np.float32)), carries_noise=True)
        c0 = time.process_time()
        result = linr.restore([masked], device="cpu", progress=False, seed=k, model=DEFAULT_PILOT_MODEL,
                              lr=DEFAULT_PILOT_LR, steps=DEFAULT_PILOT_STEPS, prior=prior, refine="none")
        seconds.append(time.process_time() - c0)
        steps.append(result.stop_step)
        fits.append(result.image.reshape(noisy.shape[:2] + (-1,)))
    stack = np.stack(fits)  # (K, H, W, C)
    total = stack.sum(axis=0)
    cross = np.empty_like(fits[0])
    for k in range(parts):  # pixels of part k from the K - 1 fits that never saw them
        seen = part == k
        cross[seen] = (total[seen] - stack[k][seen]) / (parts - 1)
    mean = total / parts
    row["fits"] = {"cpu_seconds": seconds, "returned_steps": steps,
                   "own_pixels": [psnr(clean[part == k], fits[k][part == k]) for k in range(parts)],
                   "unseen_pixels": [psnr(clean[part != k], fits[k][part != k]) for k in range(parts)]}
    row["cross"] = {"pilot": psnr(clean, cross)}
    row["mean"] = {"pilot": psnr(clean, mean)}
    for label, pilot in (("cross", cross), ("mean", mean), ("cross+default", (cross + default.fitted_image) / 2)):
        c0 = time.process_time()
        refined, _ = refine_image("grouped", pilot.astype(np.float32), obs)
        row.setdefault(label, {})["refined"] = psnr(clean, refined)
        row[label]["refine_cpu_seconds"] = time.process_time() - c0
    row["cross+default"]["pilot"] = psnr(clean, (cross + default.fitted_image) / 2)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| image | default: pilot, refined (CPU s) | cross-fit K: pilot, refined (CPU s of the K fits) | "
             "mean of the K: pilot, refined | (cross-fit + default pilot) / 2: pilot, refined | cross-fit refined - default |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        d, c, m, b = r["default"], r["cross"], r["mean"], r["cross+default"]
        lines.append(f"| {r['image']} ({r['size']} px, K={r['parts']}) | {d['pilot']:.2f}, {d['refined']:.2f} "
                     f"({d['cpu_seconds']:.0f}) | {c['pilot']:.2f}, {c['refined']:.2f} ({sum(r['fits']['cpu_seconds']):.0f}) | "
                     f"{m['pilot']:.2f}, {m['refined']:.2f} | {b['pilot']:.2f}, {b['refined']:.2f} | "
                     f"{c['refined'] - d['refined']:+.2f} |")
    for group in sorted({(r["size"], r["parts"]) for r in rows}, key=str):  # a mean per crop size and K
        some = [r for r in rows if (r["size"], r["parts"]) == group]
        mean = lambda key, sub: sum(r[key][sub] for r in some) / len(some)  # noqa: E731
        lines.append(f"| mean of {len(some)} ({group[0]} px, K={group[1]}) | {mean('default', 'pilot'):.2f}, "
                     f"{mean('default', 'refined'):.2f} | {mean('cross', 'pilot'):.2f}, {mean('cross', 'refined'):.2f} | "
                     f"{mean('mean', 'pilot'):.2f}, {mean('mean', 'refined'):.2f} | {mean('cross+default', 'pilot'):.2f}, "
                     f"{mean('cross+default', 'refined'):.2f} | "
                     f"{sum(r['cross']['refined'] - r['default']['refined'] for r in some) / len(some):+.2f} |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", help="set9 names or FOLDER/NAME of the shared data")
    p.add_argument("--size", type=int, default=128, help="centre crop side (0: the whole image)")
    p.add_argument("--parts", type=int, default=2, help="K, the number of fits and parts of the pixels")
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--rows", default="benchmarks/crossfit_probe.jsonl")
    p.add_argument("--table", metavar="ROWS", help="print a rows file as a markdown table")
    args = p.parse_args(argv)
    if args.table:
        print(table([json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()]))
        return 0
    import torch

    from linr.bench.common import emit_row, read_rows

    torch.set_num_threads(1)
    rows = Path(args.rows)
    done = read_rows(rows) if rows.exists() else {}
    for name in args.images:
        key = f"{name}_s{args.size}_n{args.sigma:g}_K{args.parts}"
        if key in done:
            continue
        emit_row({**run(name, args.size or None, args.parts, args.sigma, Path(args.data)), "key": key,
                  "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, rows)  # where: commit, processor
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
