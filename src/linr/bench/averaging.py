"""``linr bench averaging``: averages of the iterates of a denoising fit, chosen by the hold-out loss.

Protocol, per (image, colour or grey, crop size, noise sigma):

ONE fit of the noisy crop under the default hold-out rule's data term (a seeded 5% of the
pixels held out, as ``holdout:0.05:40`` holds them out), which records at every step, for the
raw iterate and for every average of :data:`AVERAGES` (:mod:`linr.averaging`, of the rendered
outputs): the PSNR against the clean crop (standard convention: output clipped to [0, 1], data
range 1) and the hold-out loss (the averages never trained on the held-out pixels either). The
fit runs until every series' hold-out minimum is at least ``--tail`` steps old (or the budget),
so every stop rule below can be replayed on the recorded series through the same
:class:`~linr.stopping.MinTracker` the online rule uses:

- ``own``: a variant stopped by its own hold-out series (patience P), returning its iterate at
  that series' minimum.
- ``raw-timed``: the fit ends where today's rule (raw series, patience P) ends it; the variant's
  iterate of lowest hold-out loss up to that step is returned (no extra steps).
  This is what ``HoldOut(average=...)`` (``holdout:0.05:40:AVERAGE``) does online.
- ``pick``: like raw-timed, but the returned image is, among the raw iterate and the given
  variants, the one of lowest hold-out loss (what the option first did; it gained less).

ORACLE (uses the clean image) is a variant's best PSNR over the recorded steps. Rows (one per
fit, with every series) are appended to ``--rows`` as they finish; a rerun skips them.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "AVERAGES", "record", "replay_own", "replay_raw_timed", "replay_pick", "clean_crop"]

AVERAGES = ("ema0.9", "ema0.95", "window5", "window10", "window20", "window40")
"""Averages recorded in every fit (specs of :func:`linr.averaging.parse_average`). The first row
(baboon, 128 px, rgb) also recorded ema0.98 and ema0.99: 1.9 and 8.5 dB under today's rule
(their long memory keeps the first, blank iterates), minima at steps 156 and 236 that kept the
recording going to step 336; they were dropped to fit the time."""
CASES = {"denoise": "set9", "joint": "set5"}
"""Case -> test-image folder (see :func:`observations_for`)."""
IMAGES = ("baboon", "f16", "house", "peppers", "kodim01", "kodim02", "kodim03", "kodim12")
JOINT_IMAGES = ("baby", "bird", "butterfly", "head", "woman")
TUNE = ("baboon", "house", "kodim01", "kodim03")
"""Images on which the average and its settings are chosen; the others only report."""
CHECK_EVERY = 5
LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # BT.601 weights, no offset


def register(sub: Any) -> None:
    p = sub.add_parser("averaging", help="iterate averages of denoising fits, chosen by the hold-out loss",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="folder with set9/ (default: $LINR_DATA, else ../shared/data)")
    p.add_argument("--case", choices=list(CASES), default="denoise",
                   help="denoise (set9, the default) or joint (set5: noisy + x4 low-res, a check only)")
    p.add_argument("--images", nargs="+", default=None,
                   help="image names (default: the case's set: set9 for denoise, set5 for joint)")
    p.add_argument("--folder", default=None,
                   help="the images' folder under --data (default: the case's, set9 or set5); rows "
                   "of denoising images outside set9 are the split 'held-out' (no rule was tuned on them)")
    p.add_argument("--colours", nargs="+", default=["rgb", "grey"], choices=["rgb", "grey"],
                   help="rgb: the image; grey: its BT.601 luma, one channel")
    p.add_argument("--sizes", nargs="+", type=int, default=[128], help="centre-crop sizes")
    p.add_argument("--sigmas", nargs="+", type=float, default=[25.0], help="noise std, 0-255 scale")
    p.add_argument("--steps", type=int, default=300, help="step budget of a recorded fit (default 300)")
    p.add_argument("--tail", type=int, default=50,
                   help="end a fit when every series' hold-out minimum is this many steps old")
    p.add_argument("--rows", default="benchmarks/averaging_denoise.jsonl", help="rows, appended and resumed")
    p.add_argument("--no-record", action="store_true", help="report on the recorded rows only")
    p.add_argument("--patience", type=int, default=40, help="stop-rule patience of the report")
    p.add_argument("--markdown", nargs="*", metavar="AVERAGE", default=None,
                   help="instead: a Markdown table per row of today's rule, the ORACLE and, for "
                   "each AVERAGE, the rule with that average (and the pick of the raw iterate and it)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.set_defaults(func=cmd_averaging)


def row_key(case: str, image: str, colour: str, size: int, sigma: float) -> str:
    prefix = "" if case == "denoise" else f"{case}_"
    return f"{prefix}{image}_{colour}_s{size}_n{sigma:g}"


def _recorder(reference: np.ndarray, *, fraction: float, seed: int, steps: int, tail: int) -> Any:
    """A hold-out rule that records every series and ends the fit once all minima are old."""
    import torch

    from ..averaging import parse_average
    from ..stopping import HoldOut

    ref = torch.from_numpy(np.ascontiguousarray(reference.transpose(2, 0, 1)))[None]

    class Recorder(HoldOut):
        name = "averaging-recorder"

        def __init__(self) -> None:
            super().__init__(fraction=fraction, patience=1 << 30, seed=seed)
            self.averages = [parse_average(s) for s in AVERAGES]
            self.series: dict[str, dict[str, list[float]]] = {
                v: {"psnr": [], "ho": []} for v in ("raw", *AVERAGES)}
            self.average_s = 0.0  # time spent on the averages and their hold-out losses

        keeps_state = False  # records outputs only; no model is returned from it

        def observe(self, step: int, output: torch.Tensor, loss: torch.Tensor) -> str | None:
            self._book("raw", output)
            t0 = time.perf_counter()
            for average in self.averages:
                self._book(average.spec, average.update(output))
            self.average_s += time.perf_counter() - t0
            done = step + 1 >= steps or all(
                step - int(np.argmin(s["ho"])) >= tail for s in self.series.values())
            if (step + 1) % 50 == 0:
                print(f"  step {step + 1}", flush=True)
            return "recorded" if done else None

        def _book(self, name: str, image: torch.Tensor) -> None:
            mse = torch.mean((torch.clamp((image + 1) / 2, 0, 1) - ref) ** 2)
            self.series[name]["psnr"].append(round(float(-10 * torch.log10(mse)), 5))
            self.series[name]["ho"].append(float(self.holdout_loss(image)))

    return Recorder()


def observations_for(case: str, clean: np.ndarray, *, sigma: float, seed: int = 0) -> list[Any]:
    """The observations of a case, weighted as the defaults weigh them: ``denoise`` (``clean`` +
    noise) or ``joint`` (the noisy one and a x4 Lanczos low-res one of the same scene)."""
    from ..simulate import add_gaussian_noise, lanczos_downscale
    from ..tasks import lowres, noisy, resolve

    observations = [noisy(add_gaussian_noise(clean, sigma, seed=seed))]
    if case == "joint":
        observations.append(lowres(lanczos_downscale(clean, 4), 4))
    return resolve(observations, device="cpu")[0]


def record(clean: np.ndarray, observations: list[Any], *, steps: int, tail: int,
           fraction: float = 0.05, seed: int = 0) -> dict[str, Any]:
    """One fit of ``observations`` with every series recorded (see the module docstring)."""
    from skimage.metrics import peak_signal_noise_ratio

    from ..fit import FitConfig, fit

    rule = _recorder(clean, fraction=fraction, seed=seed, steps=steps, tail=tail)
    t0 = time.perf_counter()
    result = fit(observations, FitConfig(steps=steps, device="cpu", seed=seed, progress=False), stop=rule)
    fit_s = time.perf_counter() - t0
    n = result.steps_run
    return {
        "seed": seed, "fraction": fraction, "size": list(clean.shape),
        "steps_run": n, "budget": steps, "tail": tail, "fit_s": fit_s, "per_step_s": fit_s / n,
        "average_s_per_step": rule.average_s / n, "averages": len(AVERAGES),
        "noisy_psnr": float(peak_signal_noise_ratio(clean, observations[0].image, data_range=1.0)),
        "series": rule.series,
    }


# --- offline replay ----------------------------------------------------------------------------


def _track(ho: list[float], patience: int, until: int | None = None) -> tuple[int | None, int]:
    """Replay :class:`~linr.stopping.MinTracker` on a hold-out series: (0-based fire step or None,
    0-based step of the minimum), over steps ``< until`` when given."""
    import torch

    from ..stopping import MinTracker

    tracker = MinTracker(patience=patience, check_every=CHECK_EVERY)
    for step, value in enumerate(ho[:until]):
        if tracker.update(step, torch.tensor(value, dtype=torch.float32)):
            return step, tracker.best_step
    return None, tracker.best_step


def replay_own(row: dict[str, Any], variant: str, patience: int) -> dict[str, Any]:
    """The variant's own hold-out series stops the fit and picks its step."""
    s = row["series"][variant]
    fire, best = _track(s["ho"], patience)
    return {"psnr": s["psnr"][best], "step": best + 1, "fire": None if fire is None else fire + 1}


def replay_raw_timed(row: dict[str, Any], variant: str, patience: int) -> dict[str, Any]:
    """Today's rule (raw series) ends the fit; the variant's best hold-out step up to then."""
    fire, _ = _track(row["series"]["raw"]["ho"], patience)
    until = None if fire is None else fire + 1
    s = row["series"][variant]
    _, best = _track(s["ho"], 1 << 30, until)
    return {"psnr": s["psnr"][best], "step": best + 1, "fire": until}


def replay_pick(row: dict[str, Any], variants: list[str], patience: int) -> dict[str, Any]:
    """Raw-timed, then the (variant, step) of lowest hold-out loss among ``variants``."""
    picks = []
    for v in variants:
        got = replay_raw_timed(row, v, patience)
        picks.append((row["series"][v]["ho"][got["step"] - 1], v, got))
    _, variant, got = min(picks, key=lambda p: p[0])
    return {**got, "variant": variant}


def oracle(row: dict[str, Any], variant: str) -> tuple[float, int]:
    """ORACLE (uses the clean image): best PSNR of a variant over the recorded steps, 1-based step."""
    psnr = row["series"][variant]["psnr"]
    best = int(np.argmax(psnr))
    return psnr[best], best + 1


# --- driver ------------------------------------------------------------------------------------


def _load_rows(path: Path) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    return {r["key"]: r for r in map(json.loads, path.read_text().splitlines()) if r}


def clean_crop(data: Path, folder: str, name: str, colour: str, size: int | None) -> np.ndarray:
    """Centre crop of a test image, RGB or grey (BT.601 luma), as the denoising benches use it
    (``size`` None: the whole image)."""
    from ..errors import InputError
    from .speed import load_crop

    path = data / folder / f"{name}.png"
    if not path.exists():
        raise InputError(f"test image {folder}/{name} not found in {data}: name a test image of the data folder "
                         "(a set9 name such as baboon, or FOLDER/NAME such as set5/baby, without .png; --data for "
                         "another folder of that layout)")
    image = load_crop(path, size)
    if colour == "grey":
        image = np.ascontiguousarray((image @ LUMA)[..., None])
    return image


def cmd_averaging(args: argparse.Namespace) -> int:
    path = Path(args.rows)
    if not args.no_record:
        _fill(args, path)
    if args.markdown is not None:
        markdown(_load_rows(path), args.markdown or ["window40"], patience=args.patience)
    else:
        report(_load_rows(path), patience=args.patience)
    return 0


def markdown(rows: dict[str, dict[str, Any]], averages: list[str], *, patience: int) -> None:
    """Per row: noisy PSNR, today's rule (PSNR, returned step, fire step), the raw ORACLE, and
    ``holdout:0.05:P:AVERAGE`` for each average (raw-timed: PSNR, returned step, gain over
    today's), beside ``pick`` of the raw iterate and the average (PSNR, which it chose)."""
    head = ["row", "split", "noisy", "rule (step/fired)", "ORACLE raw (step)",
            *(f"with {a} (step)" for a in averages), *(f"gain {a}" for a in averages),
            *(f"pick raw/{a} (chose)" for a in averages)]
    print("| " + " | ".join(head) + " |")
    print("| " + " | ".join(["---"] * 2 + ["---:"] * (len(head) - 2)) + " |")
    for row in rows.values():
        base = replay_own(row, "raw", patience)
        peak, peak_step = oracle(row, "raw")
        timed = [replay_raw_timed(row, a, patience) for a in averages]
        picks = [replay_pick(row, ["raw", a], patience) for a in averages]
        cells = [row["key"], row["split"], f"{row['noisy_psnr']:.2f}",
                 f"{base['psnr']:.2f} ({base['step']}/{base['fire']})", f"{peak:.2f} ({peak_step})",
                 *(f"{t['psnr']:.2f} ({t['step']})" for t in timed),
                 *(f"{t['psnr'] - base['psnr']:+.2f}" for t in timed),
                 *(f"{p['psnr']:.2f} ({'avg' if p['variant'] != 'raw' else 'raw'})" for p in picks)]
        print("| " + " | ".join(cells) + " |")


def _fill(args: argparse.Namespace, path: Path) -> None:
    import platform

    import torch

    from . import data_dir
    from .common import append_row

    torch.set_num_threads(args.threads)
    data = data_dir(args.data)
    from ..errors import InputError

    folder = args.folder or CASES[args.case]
    if args.folder and not args.images:
        raise InputError("--folder needs --images (the names of its images)")
    images = args.images or list(IMAGES if args.case == "denoise" else JOINT_IMAGES)
    path.parent.mkdir(parents=True, exist_ok=True)
    for size in args.sizes:
        for sigma in args.sigmas:
            for colour in args.colours:
                for name in images:
                    key = row_key(args.case, name if folder == CASES[args.case] else f"{folder}-{name}",
                                  colour, size, sigma)
                    if key in _load_rows(path):
                        continue
                    clean = clean_crop(data, folder, name, colour, size)
                    row = record(clean, observations_for(args.case, clean, sigma=sigma),
                                 steps=args.steps, tail=args.tail)
                    split = ("check" if args.case != "denoise" else "held-out" if folder != CASES[args.case]
                             else "tune" if name in TUNE else "report")
                    row.update(key=key, case=args.case, image=name, colour=colour, crop=size,
                               sigma=sigma, split=split, torch=torch.__version__, threads=args.threads,
                               cpu=platform.processor() or platform.machine(),
                               when=time.strftime("%Y-%m-%d %H:%M:%S"))
                    append_row(path, row)
                    print(f"recorded {key}: {row['steps_run']} steps in {row['fit_s']:.0f} s", flush=True)


def report(rows: dict[str, dict[str, Any]], *, patience: int) -> None:
    """Per-row table and per-split means (gains over today's rule, dB)."""
    if not rows:
        print("no recorded rows")
        return
    variants = ["raw", *AVERAGES]
    print(f"Hold-out 5%, patience {patience}. Cells: PSNR (standard: clipped, data range 1) of the "
          "returned image; ORACLE uses the clean image.")
    head = f"{'row':28s} {'split':6s} {'noisy':>6s} {'rule':>11s} {'ORACLE':>11s}"
    print(head + "".join(f" {v:>16s}" for v in AVERAGES) + "   pick(all)")
    print(" " * len(head) + "".join(f" {'own/raw-timed':>16s}" for _ in AVERAGES))
    summary: dict[tuple[str, str], list[float]] = {}
    for row in rows.values():
        base = replay_own(row, "raw", patience)
        peak, peak_step = oracle(row, "raw")
        line = (f"{row['key']:28s} {row['split']:6s} {row['noisy_psnr']:6.2f} "
                f"{base['psnr']:6.2f}@{base['step']:<4d} {peak:6.2f}@{peak_step:<4d}")
        for v in AVERAGES:
            own, timed = replay_own(row, v, patience), replay_raw_timed(row, v, patience)
            line += f" {own['psnr']:7.2f}/{timed['psnr']:<7.2f}  "
            summary.setdefault((row["split"], f"own {v}"), []).append(own["psnr"] - base["psnr"])
            summary.setdefault((row["split"], f"raw-timed {v}"), []).append(timed["psnr"] - base["psnr"])
            summary.setdefault((row["split"], f"oracle {v}"), []).append(oracle(row, v)[0] - peak)
            both = replay_pick(row, ["raw", v], patience)
            summary.setdefault((row["split"], f"pick raw+{v}"), []).append(both["psnr"] - base["psnr"])
            summary.setdefault((row["split"], f"extra steps own {v}"), []).append(
                (own["fire"] or row["steps_run"]) - (base["fire"] or row["steps_run"]))
        summary.setdefault((row["split"], "ORACLE raw - rule"), []).append(peak - base["psnr"])
        # the default (window40, raw-timed) against the best step of the raw iterates or the average
        summary.setdefault((row["split"], "default - its ORACLE"), []).append(
            replay_raw_timed(row, "window40", patience)["psnr"] - max(peak, oracle(row, "window40")[0]))
        summary.setdefault((row["split"], "ORACLE best variant - rule"), []).append(
            max(oracle(row, v)[0] for v in variants) - base["psnr"])
        pick = replay_pick(row, variants, patience)
        summary.setdefault((row["split"], "pick all"), []).append(pick["psnr"] - base["psnr"])
        line += f"  {pick['psnr']:6.2f} ({pick['variant']})"
        print(line)
    print("\nMean over rows (dB gain over today's rule; 'oracle' = variant's peak - raw peak; "
          "'extra steps' = fire step - today's fire step):")
    for (split, name), values in sorted(summary.items()):
        print(f"  {split:6s} {name:28s} n={len(values):2d} mean {np.mean(values):+7.2f} "
              f"min {np.min(values):+7.2f} max {np.max(values):+7.2f}")
