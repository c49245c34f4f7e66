"""Probe (#15 stop target): choose the denoising pilot's checkpoint by Stein's unbiased risk estimate
(SURE) of the *refined* image, the pilot held fixed.

The grouped refinement with a fixed pilot is (nearly) linear in the noisy photo ``y``, so the
refined image's mean squared error against the clean one is estimated, without it, by
``mean((y - R(y))^2) - sigma^2 + 2 sigma^2 div R / N``, the divergence by one Monte-Carlo probe
(Ramani, Blu and Unser 2008): ``b . (R(y + e b) - R(y)) / e`` for a standard normal ``b``, the
same ``b`` for every checkpoint, with the groups matched once on ``y`` (a perturbation does not
re-match). ``sigma`` is the level the refinement measures. What it leaves out: the pilot's own
dependence on ``y`` (the fit saw the photo).

Per crop (as ``linr bench default-stop``: centre crop, Gaussian noise of sigma, seed 0): the default
restore gives its own PSNR and the pilot's halting step; the same pilot fit (same held-out pixels)
runs to ``--steps`` with the 40-iterate average kept every 5 steps; each checkpoint's average is
refined (true PSNR) and scored by SURE. Rows: per checkpoint (PSNR, SURE), the SURE pick within the
steps the default ran and within all, and their PSNRs. One torch thread.

    python benchmarks/stop_sure_probe.py ROWS [--size 64] [--sigma 25] [--colour grey] [--steps 200] NAME ...
    python benchmarks/stop_sure_probe.py ROWS --table
"""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
from probe_common import crop_parser, default_restore, held_out_minimum, pilot_averages, run

from linr import tasks
from linr.bench.common import commit_id, cpu_name, psnr
from linr.noise import floored_noise_sigma
from linr.refine import GroupedWiener as Grouped


class _FixedGroups(Grouped):
    """:class:`Grouped` whose groups, once matched, are reused (keyed by the block's references)."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: dict = {}

    def _match(self, around, shape, ys, xs, size):  # type: ignore[override]
        key = (int(ys[0]), int(xs[0]), len(ys), len(xs))
        if key not in self.groups:
            self.groups[key] = super()._match(around, shape, ys, xs, size)
        return self.groups[key]


def _key(name: str, args: argparse.Namespace) -> str:
    pipeline = "".join(f"_p{e:g}" for e in args.pipeline) + (f"x{args.probes}" if args.probes > 1 else "") \
        + (f"_f{args.fixed_probes}" if args.fixed_probes else "")
    return f"{name}_{args.colour}_s{args.size}_n{args.sigma:g}_t{args.steps}{pipeline}{tasks.pilot_tag()}"


def _rate(retried: bool) -> float | None:
    """The learning rate of the fit the default returned: the paper's when its pilot was fitted
    again (:attr:`linr.config.FitConfig.retry_lr`), else None (the pilot's own)."""
    if not retried:
        return None
    config = tasks.resolve([tasks.noisy(np.zeros((8, 8), np.float32))], seed=0, device="cpu")[1]
    return config.retry_lr


def _row(name: str, args: argparse.Namespace) -> dict:
    clean, obs, default = default_restore(name, args)
    minimum = held_out_minimum(default)
    ran = int(default.steps_run)
    refine = default.settings["refine"]["name"]
    assert refine == "grouped", refine
    steps = max(args.steps, ran)
    retried = (default.settings.get("retry") or {}).get("returned") == "retry"
    rate = _rate(retried)
    averages, held = pilot_averages(obs, refine, steps, lr=rate)
    noisy = np.asarray(obs[0].image, np.float64)
    y = noisy if noisy.ndim == 3 else noisy[..., None]
    sigma = floored_noise_sigma(y.astype(np.float32))
    rng = np.random.default_rng(1)
    probe = rng.standard_normal(y.shape)
    mask = np.broadcast_to(held.held_out_masks()[0][..., None], y.shape)  # the pixels the pilot never saw
    signs = np.where(mask, rng.choice([-1.0, 1.0], size=y.shape), 0.0)
    eps = 0.01 * sigma
    moved_fits = {}
    for k in range(args.probes):  # the whole pipeline's divergence: the pilot fitted again to y + e b
        b = probe if k == 0 else np.random.default_rng(1 + k).standard_normal(y.shape)
        for scale in args.pipeline:
            e = scale * sigma
            photo = (y + e * b).astype(np.float32)
            moved_obs = [dataclasses.replace(obs[0], image=photo if noisy.ndim == 3 else photo[..., 0])]
            moved_fits[f"{scale:g}" if k == 0 else f"{scale:g}/{k}"] = (e, b, pilot_averages(moved_obs, refine, steps,
                                                                                              lr=rate)[0])
    fresh = [np.random.default_rng(100 + k).standard_normal(y.shape) for k in range(args.fixed_probes)]
    points = {}
    for step, mean in sorted(averages.items()):
        refiner = _FixedGroups()
        refined = np.asarray(refiner(y, mean, sigma), np.float64)
        moved = np.asarray(refiner(y + eps * probe, mean, sigma), np.float64)
        div = float(np.sum(probe * (moved - refined)) / eps)
        residual = float(np.mean((y - refined) ** 2))
        sure = residual - sigma ** 2 + 2 * sigma ** 2 * div / y.size
        # on the held-out pixels the pilot does not depend on the photo's value there: the fixed-pilot
        # derivative is the whole one, and SURE there is unbiased (its variance that of a few pixels)
        held_moved = np.asarray(refiner(y + eps * signs, mean, sigma), np.float64)
        held_div = float(np.sum(signs * (held_moved - refined)) / eps / mask.sum())
        held_residual = float(np.mean((y - refined)[mask] ** 2))
        pipeline = {}
        fixed_many = []
        for b in fresh[:args.fixed_probes]:  # the fixed pilot's divergence, from probes that cost no fit
            fixed_many.append(float(np.sum(b * (np.asarray(refiner(y + eps * b, mean, sigma), np.float64) - refined))
                                    / eps) / y.size)
        for label, (e, b, moved_averages) in moved_fits.items():
            whole = np.asarray(refiner(y + e * b, moved_averages[step], sigma), np.float64)
            d = float(np.sum(b * (whole - refined)) / e) / y.size
            same = float(np.sum(b * (np.asarray(refiner(y + e * b, mean, sigma), np.float64) - refined)) / e) / y.size \
                if args.fixed_probes else None
            pipeline[label] = {"div": d, "sure": residual - sigma ** 2 + 2 * sigma ** 2 * d,
                              "pilot_moved": float(np.sum(b * (moved_averages[step] - mean)) / e) / y.size,
                              "fixed_same_probe": same}
        points[step] = {"psnr": psnr(clean, refined[..., 0] if noisy.ndim == 2 else refined), "sure": sure,
                        "pipeline": pipeline, "fixed_many": fixed_many,
                        "div": div / y.size, "residual": residual, "held_residual": held_residual,
                        "held_div": held_div, "held_sure": held_residual - sigma ** 2 + 2 * sigma ** 2 * held_div}
    within = [s for s in points if s <= ran] or list(points)
    pick_ran = min(within, key=lambda s: points[s]["sure"])
    pick_all = min(points, key=lambda s: points[s]["sure"])
    held_ran = min(within, key=lambda s: points[s]["held_sure"])
    held_all = min(points, key=lambda s: points[s]["held_sure"])
    best = max(points, key=lambda s: points[s]["psnr"])
    return {"key": _key(name, args), "image": name, "colour": args.colour, "size": args.size, "sigma": args.sigma,
            "minimum_step": minimum, "steps_run": ran, "retried": retried, "sigma_measured": sigma * 255,
            "default_psnr": psnr(clean, default.image), "points": {str(s): p for s, p in points.items()},
            "pick_ran": pick_ran, "pick_ran_psnr": points[pick_ran]["psnr"], "pick_all": pick_all,
            "pick_all_psnr": points[pick_all]["psnr"], "held_ran": held_ran, "held_ran_psnr": points[held_ran]["psnr"],
            "held_all": held_all, "held_all_psnr": points[held_all]["psnr"], "best_step": best, "best_psnr": points[best]["psnr"],
            "commit": commit_id(), "processor": cpu_name()}


def _table(rows: dict) -> str:
    lines = ["| image | default (min, ran) | SURE pick within ran (step) | SURE pick any (step) | best checkpoint (step) |",
             "|---|---:|---:|---:|---:|"]
    gaps: dict[str, list[float]] = {"default": [], "ran": [], "all": []}
    for row in rows.values():
        best = row["best_psnr"]
        gaps["default"].append(row["default_psnr"] - best)
        gaps["ran"].append(row["pick_ran_psnr"] - best)
        gaps["all"].append(row["pick_all_psnr"] - best)
        lines.append(f"| {row['image']} {row['colour']} {row['size']} sigma {row['sigma']:g} | "
                     f"{row['default_psnr'] - best:+.2f} ({row['minimum_step']}, {row['steps_run']}) | "
                     f"{row['pick_ran_psnr'] - best:+.2f} ({row['pick_ran']}) | "
                     f"{row['pick_all_psnr'] - best:+.2f} ({row['pick_all']}) | {best:.2f} ({row['best_step']}) |")
    lines.append("| mean / worst | " + " | ".join(f"{np.mean(g):+.2f} / {min(g):+.2f}" for g in gaps.values()) + " | |")
    return "\n".join(lines)


def main() -> None:
    p = crop_parser(__doc__.splitlines()[0], 64)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--pipeline", type=float, nargs="*", default=[],
                   help="also the whole pipeline's SURE: the pilot fitted again to the photo plus E sigma times the probe, per E")
    p.add_argument("--fixed-probes", type=int, default=0,
                   help="also the fixed pilot's divergence from this many fresh probes (a control variate)")
    p.add_argument("--probes", type=int, default=1, help="probe vectors per scale (default 1)")
    args = p.parse_intermixed_args()
    run(args, lambda name: _key(name, args), lambda name: _row(name, args),
        lambda name, row: f"{name} default {row['default_psnr']:.2f} pick {row['pick_ran']} {row['pick_ran_psnr']:.2f} "
                          f"best {row['best_step']} {row['best_psnr']:.2f}", _table)


if __name__ == "__main__":
    main()
