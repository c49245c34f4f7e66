"""#15 joint fits: the default refinement's blend chosen on held-out pixels, against what it chose
between.

A joint fit (noisy photo + a x4 low-res view without noise) holds 5% of the photo's pixels out of
its data term (the ``holdout`` stop rule). The ``grouped-project`` refinement now blends the fit's
image F, ``grouped``'s G and the projection of G onto the low-res view P (weights >= 0 summing to 1)
by least squares on those pixels (:class:`linr.refine.GroupedProjected`). This prints, per crop and
noise level, the PSNR of F, G, P (the refinement of before: P alone), the chosen blend (today's
default, from one ``linr.restore``), the best of the three and the best blend read off the clean
image (oracles), and the noisy photo alone with its default (what a user would get without the
low-res view).

Observations: ``linr.bench.averaging.observations_for('joint', ...)`` (Gaussian noise ``--sigma``
on the 0-255 scale, seed 0, a x4 Lanczos view). PSNR: standard convention (scikit-image, clipped,
data range 1). One thread.

    .venv/bin/python benchmarks/joint_choice_probe.py set5/bird set5/butterfly --size 128 --sigma 15 \
        --rows benchmarks/joint_choice_probe.jsonl

``--table ROWS`` prints a rows file as a markdown table (BENCHMARKS.md's).

``--view-noise S``: the low-res view carries Gaussian noise of level S (0-255, seed 1), as a real
low-res shot would, and is still given as a view without noise (what a user's ``--lowres`` is).

``--saved FIT.png`` (one whole image, ``--size full``): no fit here; the fit is the one a paper-table
run saved (8-bit; ``benchmarks/joint_project_probe.py`` says which), its held-out pixels drawn again
by the same stop rule and seed (the row's ``residual_trained_vs_held`` checks that the fit trained
on the others: its squared residual to the noisy photo is lower there).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from types import SimpleNamespace
from typing import Any
from pathlib import Path

import numpy as np
import torch


def joint_case(clean: np.ndarray, sigma: float, view_noise: float) -> list:
    """The probe's observations: ``observations_for('joint', ...)``, or with ``view_noise`` > 0 the
    same with Gaussian noise of that level (0-255 scale, seed 1) on the low-res view, which the
    default still takes for a view without noise (a real low-res shot, given as ``--lowres``)."""
    from linr.bench.averaging import observations_for
    from linr.simulate import add_gaussian_noise, lanczos_downscale
    from linr.tasks import lowres, noisy, resolve

    if not view_noise:
        return observations_for("joint", clean, sigma=sigma, seed=0)
    view = add_gaussian_noise(lanczos_downscale(clean, 4), view_noise, seed=1)
    return resolve([noisy(add_gaussian_noise(clean, sigma, seed=0)), lowres(view, 4)], device="cpu")[0]


def table(path: str) -> str:
    """A markdown table of a rows file: per row the fit, ``grouped``, ``grouped`` + projection (the
    default of before), the blend (today's default) and its weights, the oracles and the photo
    alone; per noise level (and view noise) the means."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    cols = ["fit", "grouped", "grouped+project", "chosen", "best_of_three", "oracle_blend", "alone_default"]
    lines = ["| image | size | sigma | view noise | fit | + grouped | + grouped + projection (before) | "
             "**blend (today)** | weights (fit, grouped, projected) | blend - before | best of three | "
             "best blend (oracle) | photo alone |", "|---" * 2 + "|---:" * 11 + "|"]

    def show(v: Any) -> str:
        return "-" if v is None else f"{v:.2f}"

    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["image"].rpartition("/")[0], r["size"], r["sigma"], r.get("view_noise", 0.0)),
                          []).append(r)
    for (_, size, sigma, vn), members in groups.items():
        for r in members:
            w = r.get("weights")
            weights = "-" if not w else ", ".join(f"{v:.2f}" for v in w.values())
            if r.get("gain_z") is not None:  # the blend's gain on the held-out pixels, standard errors
                weights += f" (z {r['gain_z']:.1f})" if w else f" (not used: z {r['gain_z']:.1f})"
            lines.append(f"| {r['image']} | {size} | {sigma:g} | {vn:g} | " + " | ".join(
                [show(r[c]) for c in cols[:3]] + [f"**{show(r['chosen'])}**", weights,
                 f"{r['chosen'] - r['grouped+project']:+.2f}"] + [show(r[c]) for c in cols[4:]]) + " |")
        if len(members) > 1:
            mean = {c: (np.mean([r[c] for r in members]) if all(r[c] is not None for r in members) else None)
                    for c in cols}
            lines.append(f"| **mean of {len(members)}** | {size} | {sigma:g} | {vn:g} | " + " | ".join(
                [show(mean[c]) for c in cols[:3]] + [f"**{show(mean['chosen'])}**", "",
                 f"{mean['chosen'] - mean['grouped+project']:+.2f}"] + [show(mean[c]) for c in cols[4:]]) + " |")
    return "\n".join(lines)


def main() -> None:
    import linr
    from linr.bench import data_dir
    from linr.bench.averaging import clean_crop
    from linr.bench.common import emit_row, psnr
    from linr.refine import GroupedWiener, Projected, simplex_weights
    from linr.noise import floored_noise_sigma
    from linr.refine import refine_image
    from linr.tasks import resolve_stop

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from joint_project_probe import saved_case

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("names", nargs="*")
    p.add_argument("--table", default=None, metavar="ROWS", help="print a rows file as a markdown table, fit nothing")
    p.add_argument("--size", default="128")
    p.add_argument("--sigma", type=float, nargs="+", default=[25.0])
    p.add_argument("--rows", default=None)
    p.add_argument("--view-noise", type=float, default=0.0, help="Gaussian noise on the low-res view (0-255)")
    p.add_argument("--saved", default=None, help="a paper-table run's saved joint fit (as in joint_project_probe.py)")
    p.add_argument("--no-alone", action="store_true", help="skip the noisy photo alone")
    p.add_argument("--cache", default=None, help="a folder for each fit's image and held-out pixels (npz); a fit "
                   "found there is refined again with today's code instead of fitted again")
    args = p.parse_args()
    if args.table:
        print(table(args.table))
        return
    torch.set_num_threads(1)
    done = set()
    if args.rows and Path(args.rows).exists():
        done = {(r["image"], r["size"], r["sigma"], r.get("view_noise", 0.0))
                for r in map(json.loads, Path(args.rows).read_text().splitlines())}
    for sigma in args.sigma:
        for name in args.names:
            if (name, args.size, sigma, args.view_noise) in done:
                continue
            folder, _, stem = name.rpartition("/")
            clean = clean_crop(data_dir(None), folder or "set9", stem, "rgb",
                               None if args.size == "full" else int(args.size))
            tag = f"_v{args.view_noise:g}" if args.view_noise else ""
            cached = Path(args.cache) / f"{stem}_{args.size}_s{sigma:g}{tag}.npz" if args.cache else None
            default_s, source = None, "fit"
            if args.saved:  # a paper-table run's fit, refined here with today's refinement
                joint, fitted, _ = saved_case(clean, stem, sigma, args.saved)
                rule = resolve_stop(joint)
                rule.prepare(list(joint))  # the same pixels the run's fit held out (the rule's seed, 0)
                fit, masks, source = fitted.image, rule.held_out_masks(), "saved"
            elif cached is not None and cached.exists():  # this script's own fit of an earlier run
                joint = joint_case(clean, sigma, args.view_noise)
                stored = np.load(cached)
                fit, masks, source = stored["fit"], [stored["held"], None], "cache"
            else:
                joint = joint_case(clean, sigma, args.view_noise)
                rule = resolve_stop(joint)
                c0 = time.process_time()
                result = linr.restore(joint, device="cpu", progress=False, seed=0, stop=rule)  # today's default
                default_s = time.process_time() - c0
                masks = rule.held_out_masks()
            if source != "fit":
                refined, how = refine_image("grouped-project", fit, joint, masks)
                result = SimpleNamespace(fitted_image=fit, image=refined, settings={"refine": how},
                                         steps_run=None, timings={})
            held = masks[0]
            fit = result.fitted_image
            residual = (np.asarray(joint[0].image) - fit) ** 2  # a check: lower where the fit trained
            trained_vs_held = [float(residual[~held].mean()), float(residual[held].mean())]
            if cached is not None and source == "fit":  # the fit and its held-out pixels, for a rerun
                cached.parent.mkdir(parents=True, exist_ok=True)
                np.savez_compressed(cached, fit=fit, held=held, noisy=np.asarray(joint[0].image), clean=clean)
            noisy = np.asarray(joint[0].image, np.float32)
            grouped = GroupedWiener()(noisy, fit, floored_noise_sigma(noisy))
            projected = Projected()(grouped, joint[1:])
            three = {"fit": fit, "grouped": grouped, "grouped+project": projected}
            best = simplex_weights(clean, list(three.values()))
            c0 = time.process_time()
            alone = None if args.saved or args.no_alone else linr.restore(joint[:1], device="cpu", progress=False, seed=0)
            alone_s = time.process_time() - c0
            row = {"image": name, "size": args.size, "sigma": sigma, "view_noise": args.view_noise,
                   **{k: psnr(clean, v) for k, v in three.items()},
                   "chosen": psnr(clean, result.image), "weights": result.settings["refine"].get("weights"),
                   "held_out": result.settings["refine"].get("chosen_on_held_out_pixels"),
                   "gain_z": result.settings["refine"].get("gain_z"),
                   "weights_not_used": result.settings["refine"].get("blend_weights_not_used"),
                   "held_out_reconstructed": int(held.sum()),
                   "best_of_three": max(psnr(clean, v) for v in three.values()),
                   "oracle_blend": psnr(clean, sum(w * v for w, v in zip(best, three.values()))),
                   "oracle_weights": [round(float(w), 4) for w in best],
                   "alone_default": None if alone is None else psnr(clean, alone.image), "steps": result.steps_run,
                   "fit_from": source, "saved_fit": args.saved, "residual_trained_vs_held": trained_vs_held,
                   "cpu_s": {"default": None if default_s is None else round(default_s, 1),
                             "alone": None if alone is None else round(alone_s, 1)},
                   "refine_s": round(result.timings.get("refine_s", 0.0), 1)}
            emit_row(row, args.rows)


if __name__ == "__main__":
    main()
