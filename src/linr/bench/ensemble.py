"""``linr bench ensemble``: what an ensemble of K fits adds over one fit, on noisy crops.

Per (image, colour, crop, sigma): Gaussian noise of ``sigma`` (0-255 scale, seed fixed per image
and sigma), then ``linr.restore(linr.noisy(y), ensemble=K)`` with linr's defaults otherwise (the
automatic stop, which returns the window40 average of iterates). Member 0 is the default single
fit (seed 0, the default's held-out pixels), so one row gives both: the single fit's PSNR, the
other members', the mean's, and the wall time (K members in one stack). The spread map is judged
against the error it should flag: the Pearson correlation, over pixels, of the members' spread
with the mean's absolute error, and the error in the 10% of pixels of largest spread against the
rest. PSNR: scikit-image's ``peak_signal_noise_ratio`` of the output clipped to [0, 1], data
range 1, all channels. Rows go to ``--rows`` as they finish; a rerun skips rows already there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "run_row", "summary_table"]


def register(sub: Any) -> None:
    p = sub.add_parser("ensemble", help="ensembles of K fits against one fit on noisy crops",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="test-image folder (default: $LINR_DATA or ../shared/data)")
    p.add_argument("--images", default="set5/baby,set5/head,deblur/starfish",
                   help="comma-separated FOLDER/NAME[:grey] (default set5/baby,set5/head,deblur/starfish: "
                   "images no stop rule or average was tuned on)")
    p.add_argument("--crop", type=int, default=128, help="centre crop side (default 128)")
    p.add_argument("--sigma", type=float, default=25.0, help="noise std, 0-255 scale (default 25)")
    p.add_argument("--members", type=int, default=2, help="K, the ensemble's size (default 2)")
    p.add_argument("--steps", type=int, default=None, help="step budget (default: the defaults')")
    p.add_argument("--width", type=int, default=None, help="SIREN width (default: the defaults'; smoke runs)")
    p.add_argument("--depth", type=int, default=None, help="SIREN depth (default: the defaults'; smoke runs)")
    p.add_argument("--rows", default="bench_out/ensemble.jsonl", help="rows, appended and resumed")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.set_defaults(func=cmd_ensemble)


def run_row(clean: np.ndarray, noisy: np.ndarray, *, members: int, steps: int | None = None,
            model: Any = None) -> dict[str, Any]:
    """One ensemble fit; the row's measurements."""
    from .. import noisy as noisy_observation
    from .. import restore
    from .common import psnr

    t0 = time.perf_counter()
    result = restore(noisy_observation(noisy), ensemble=members, steps=steps, model=model, device="cpu",
                     reference=clean, progress=False, threads=None)
    seconds = time.perf_counter() - t0
    error = np.abs(np.clip(result.image, 0, 1) - clean).mean(axis=2).ravel()
    spread = result.uncertainty.mean(axis=2).ravel()
    top = spread >= np.quantile(spread, 0.9)
    return {
        "psnr": psnr(clean, result.image), "member_psnr": result.settings["ensemble"]["member_psnr"],
        "stop_steps": result.settings["ensemble"]["stop_steps"], "seconds": seconds,
        "spread_error_corr": float(np.corrcoef(spread, error)[0, 1]),
        "error_top10_spread": float(error[top].mean()), "error_rest": float(error[~top].mean()),
        "mean_spread": float(spread.mean()),
    }


def cmd_ensemble(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from ..errors import InputError
    from ..models import ModelConfig
    from ..simulate import add_gaussian_noise
    from .. import noisy as noisy_observation
    from ..stopping import SurePick
    from ..tasks import denoise_defaults_tag, plan_restore
    from . import data_dir
    from .common import commit_id, cpu_name, load_clean, noise_seed, read_rows

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.members < 2:
        raise InputError(f"--members {args.members}: an ensemble has at least 2")
    data = data_dir(args.data)
    specs = [s.strip() for s in args.images.split(",") if s.strip()]
    cleans = {s: load_clean(data, s, args.crop) for s in specs}  # every image checked first
    model = None
    if args.width or args.depth:
        model = replace(ModelConfig(), **{k: v for k, v in (("width", args.width), ("depth", args.depth)) if v})
    rows_path = Path(args.rows)
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_rows(rows_path)
    provenance = {"commit": commit_id(), "processor": cpu_name(), "threads": torch.get_num_threads(),
                  "torch": torch.__version__}
    rows = []
    for spec in specs:
        clean = cleans[spec]
        seed = noise_seed(0, spec, args.sigma)
        noisy = add_gaussian_noise(clean, args.sigma, seed=seed).astype(np.float32)
        # members stopped as one fit is, by the SURE pick where it serves (since the fifty-sixth
        # session): such rows name it, and earlier rows of such photos are fitted again
        picks = isinstance(plan_restore([noisy_observation(noisy)], steps=args.steps, model=model,
                                        device="cpu", progress=False, ensemble=args.members).rule, SurePick)
        key = json.dumps({"image": spec, "crop": args.crop, "sigma": args.sigma, "members": args.members,
                          "steps": args.steps, "width": args.width, "depth": args.depth,
                          # the defaults its fits follow: rows made under others are fitted again
                          # (rows before the seventeenth session have no such entry)
                          "defaults": denoise_defaults_tag(pilot=model is None),
                          **({"member_stop": "sure"} if picks else {})}, sort_keys=True)
        if key not in done:
            row = {"key": key, "image": spec, "crop": args.crop, "sigma": args.sigma, "members": args.members,
                   "noise_seed": seed, **run_row(clean, noisy, members=args.members, steps=args.steps, model=model),
                   **provenance, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            with rows_path.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done[key] = row
        rows.append(done[key])
        r = done[key]
        print(f"{spec}: ensemble of {r['members']} {r['psnr']:.2f} dB, members "
              f"{', '.join(f'{p:.2f}' for p in r['member_psnr'])}, {r['seconds']:.0f} s", flush=True)
    print(summary_table(rows))
    return 0


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per row, then the means."""
    lines = ["| image | crop | sigma | K | single (member 0) | other members | ensemble mean | gain over single | "
             "gain over members' mean | s | spread-error corr. | error: top-10% spread / rest |",
             "|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"]
    gains, gains_mean = [], []
    for r in rows:
        single, others = r["member_psnr"][0], r["member_psnr"][1:]
        gain, gain_mean = r["psnr"] - single, r["psnr"] - float(np.mean(r["member_psnr"]))
        gains.append(gain)
        gains_mean.append(gain_mean)
        lines.append(f"| {r['image']} | {r['crop']} | {r['sigma']:g} | {r['members']} | {single:.2f} | "
                     f"{', '.join(f'{p:.2f}' for p in others)} | {r['psnr']:.2f} | {gain:+.2f} | {gain_mean:+.2f} | "
                     f"{r['seconds']:.0f} | {r['spread_error_corr']:.2f} | "
                     f"{r['error_top10_spread']:.4f} / {r['error_rest']:.4f} |")
    if rows:
        lines.append(f"| mean | | | | | | | {np.mean(gains):+.2f} | {np.mean(gains_mean):+.2f} | | | |")
    return "\n".join(lines)
