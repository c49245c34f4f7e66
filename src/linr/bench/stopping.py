"""``linr bench stopping``: how well each automatic stop rule picks the step, against an oracle.

Protocol, per (image, crop size, noise sigma):

1. ONE fixed-length fit (the paper's 500 steps) of the noisy crop, recording every step's data
   term, PSNR against the clean crop (standard convention: output clipped to [0, 1], RGB, data
   range 1) and the windowed output variance for several windows. The stop rules that do not
   change the fit (variance, discrepancy, fixed) are then replayed offline on these series
   through the same tracking code the online rules use (:class:`~linr.stopping.MinTracker`,
   :meth:`~linr.stopping.Discrepancy.update`), so a replayed rule stops where the online rule
   would and returns the same iterate.
2. For the hold-out rule, which changes the fit, a second fit with the pixels held out,
   recording the held-out loss (and the same series, so that combinations with hold-out can be
   replayed on it).

The oracle (ORACLE: uses the clean image) is the step of best PSNR. Trajectories are cached as
JSON files in ``--cache`` so that the command can be re-run, extended or resumed cheaply; several
processes may fill one cache at once (each claims a run by creating a lock folder).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

WINDOWS = (5, 10, 20, 40)
"""Variance windows recorded per step (steps)."""
DEFAULT_IMAGES = ("baboon", "f16", "house", "peppers", "kodim01", "kodim02", "kodim03", "kodim12")


def register(sub: Any) -> None:
    p = sub.add_parser("stopping", help="automatic stop rules vs fixed 500 steps vs the oracle",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="folder with set9/ (default: $LINR_DATA, else ../shared/data)")
    p.add_argument("--images", nargs="+", default=list(DEFAULT_IMAGES), help="set9 image names")
    p.add_argument("--sizes", nargs="+", type=int, default=[64], help="centre-crop sizes (0 = full image)")
    p.add_argument("--sigmas", nargs="+", type=float, default=[25.0], help="noise std, 0-255 scale")
    p.add_argument("--steps", type=int, default=500, help="length of the recorded fits (default 500)")
    p.add_argument("--holdout", type=float, nargs="*", default=[0.05],
                   help="hold-out fractions to record a fit for (none: skip the hold-out rule)")
    p.add_argument("--holdout-steps", type=int, default=None, metavar="N",
                   help="length of the hold-out fits (default --steps; shorter is enough when the "
                   "rule fires well before it, and the report says when it did not)")
    p.add_argument("--cache", default="bench-stopping", help="trajectory cache folder")
    p.add_argument("--record-only", action="store_true", help="fill the cache, print nothing")
    p.add_argument("--no-record", action="store_true", help="evaluate only what is cached")
    p.add_argument("--json", default=None, help="also write the evaluation as JSON here")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--rule", default=None, help="the rule under test (default: linr's automatic rule)")
    p.add_argument("--show", nargs="*", metavar="SPEC", help="further rule specs shown beside it",
                   default=["discrepancy:0.9", "discrepancy:1", "variance:10:10", "variance:10:40"])
    p.add_argument("--tune", type=int, default=0, metavar="N", help="also print the N best grid specs")
    p.add_argument("--overhead", type=int, nargs="*", default=None, metavar="SIZE",
                   help="instead: measure the rules' cost per step on SIZE-pixel crops (CPU time)")
    p.set_defaults(func=cmd_stopping)


def _data_dir(arg: str | None) -> Path:
    from ..errors import InputError
    from . import data_dir

    folder = data_dir(arg)
    if not (folder / "set9").is_dir():
        raise InputError(f"{folder}: no set9/ folder in it (pass --data DIR)")
    return folder


def _crop(image: Any, size: int) -> Any:
    import numpy as np

    h, w = image.shape[:2]
    if size <= 0 or size >= min(h, w):
        return image
    top, left = (h - size) // 2, (w - size) // 2
    return np.ascontiguousarray(image[top : top + size, left : left + size])


def run_key(image: str, size: int, sigma: float, holdout: float | None) -> str:
    ho = "none" if holdout is None else f"{holdout:g}"
    return f"{image}_s{size}_n{sigma:g}_ho{ho}"


def record(
    clean: Any, *, sigma: float, steps: int, holdout: float | None, seed: int = 0
) -> dict[str, Any]:
    """One fit of ``clean`` + noise, recording per-step series (see the module docstring)."""
    import numpy as np
    import torch

    from ..fit import FitConfig, fit
    from ..simulate import add_gaussian_noise
    from ..noise import estimate_noise_sigma
    from ..stopping import HoldOut, window_variance
    from ..tasks import noisy

    y = add_gaussian_noise(clean, sigma, seed=seed)
    ref = torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1)))[None].float()
    rule = HoldOut(fraction=holdout, patience=1 << 30, seed=seed) if holdout else None
    buffer: deque[torch.Tensor] = deque(maxlen=max(WINDOWS))
    series: dict[str, list[float]] = {"psnr": [], "ho_loss": [], **{f"var{w}": [] for w in WINDOWS}}

    def callback(step: int, out: torch.Tensor, loss: float) -> None:
        mse = torch.mean((torch.clamp((out + 1) / 2, 0, 1) - ref) ** 2)
        series["psnr"].append(float(-10 * torch.log10(mse)))
        buffer.append(out)
        for w in WINDOWS:
            var = window_variance(list(buffer)[-w:]) if len(buffer) >= w else float("nan")
            series[f"var{w}"].append(float(var))
        if rule is not None:
            series["ho_loss"].append(float(rule.holdout_loss(out)))

    t0 = time.perf_counter()
    result = fit([noisy(y)], FitConfig(steps=steps, device="cpu", seed=seed, progress=False),
                 stop=rule, callback=callback)
    final = np.clip(result.image, 0, 1)
    final_psnr = float(-10 * np.log10(np.mean((final - clean) ** 2)))
    return {
        "sigma": sigma, "steps": steps, "holdout": holdout, "seed": seed,
        "size": list(clean.shape[:2]),
        "sigma_hat": estimate_noise_sigma(y) * 255.0, "sigma_hat01": estimate_noise_sigma(y),
        "noisy_psnr": float(-10 * np.log10(np.mean((y - clean) ** 2))),
        "final_psnr": final_psnr, "loss": result.history["loss"],
        "fit_s": time.perf_counter() - t0, **series,
    }


def fill_cache(args: argparse.Namespace) -> None:
    """Record every missing run; safe to run in several processes at once."""
    import torch

    from ..images import read_image

    torch.set_num_threads(args.threads)
    data = _data_dir(args.data)
    cache = Path(args.cache)
    cache.mkdir(parents=True, exist_ok=True)
    holdouts: list[float | None] = [None, *args.holdout]
    for size in args.sizes:
        for sigma in args.sigmas:
            for name in args.images:
                for ho in holdouts:
                    key = run_key(name, size, sigma, ho)
                    if (cache / f"{key}.json").exists():
                        continue
                    try:
                        (cache / f"{key}.lock").mkdir()
                    except FileExistsError:
                        continue  # another process is on it
                    clean, _ = read_image(data / "set9" / f"{name}.png")
                    steps = args.steps if ho is None else (args.holdout_steps or args.steps)
                    rec = record(_crop(clean, size), sigma=sigma, steps=steps, holdout=ho)
                    rec.update(image=name, crop=size)
                    tmp = cache / f".{key}.tmp"
                    tmp.write_text(json.dumps(rec))
                    os.replace(tmp, cache / f"{key}.json")
                    (cache / f"{key}.lock").rmdir()
                    print(f"recorded {key} in {rec['fit_s']:.0f} s", flush=True)


# --- offline replay ----------------------------------------------------------------------------
#
# A rule spec is "variance:WINDOW:PATIENCE", "discrepancy:TAU", "holdout:FRACTION:PATIENCE" or
# several joined by "," (first to fire, as FirstToFire): the syntax of ``linr restore --stop``.
# Each replays a recorded series through the same tracking code as the online rule and yields
# (step at which it fired or None, 0-based step of the iterate it returns, None = the last one).

CHECK_EVERY = 5


class _Replay:
    def __init__(self, spec: str, run: dict[str, Any]):
        from ..stopping import Discrepancy, MinTracker

        kind, *params = spec.split(":")
        self.kind = kind
        if kind == "fixed":
            self.steps = int(params[0])
        elif kind == "variance":
            window, patience = int(params[0]), int(params[1])
            self.series = run[f"var{window}"]
            self.tracker = MinTracker(patience=patience, check_every=CHECK_EVERY, start=window - 1)
        elif kind == "holdout":
            self.series = run["ho_loss"]
            self.tracker = MinTracker(patience=int(params[1]), check_every=CHECK_EVERY)
        elif kind == "discrepancy":
            self.series = run["loss"]
            from ..fidelity import SquaredError

            self.disc = Discrepancy(tau=float(params[0]), check_every=CHECK_EVERY)
            sigma = run.get("sigma_hat01", run["sigma_hat"] / 255.0)
            self.disc.threshold = float(params[0]) * run["kept"] * SquaredError().expected(sigma)
        else:
            raise ValueError(f"unknown rule spec {spec!r}")

    def update(self, step: int) -> bool:
        import math

        import torch

        if self.kind == "fixed":
            return step + 1 >= self.steps
        value = self.series[step]
        if self.kind == "discrepancy":
            return self.disc.update(step, torch.tensor(value), None)
        if math.isnan(value):
            return False
        return self.tracker.update(step, torch.tensor(value))

    def best(self) -> int | None:
        if self.kind == "fixed":
            return None
        if self.kind == "discrepancy":
            step = self.disc.best()[1]
            return step - 1 if step else None
        return None if self.tracker.best_step < 0 else self.tracker.best_step


def replay(spec: str, run: dict[str, Any]) -> tuple[str | None, int | None, int | None]:
    """(name of the rule that fired or None, fire step, 0-based returned step or None = last)."""
    parts = [(s, _Replay(s, run)) for s in spec.split(",")]
    for step in range(len(run["loss"])):
        for name, part in parts:
            if part.update(step):
                return name, step, part.best()
    for _, part in parts:
        if part.best() is not None:
            return None, None, part.best()
    return None, None, None


def outcome(spec: str, run: dict[str, Any]) -> dict[str, Any]:
    fired, fire_step, best = replay(spec, run)
    n = len(run["loss"])
    if best is not None:
        psnr, step = run["psnr"][best], best + 1
    else:  # the last iterate: the output after the last step's update
        step = n if fire_step is None else fire_step + 1
        psnr = run["psnr"][step] if step < n else run["final_psnr"]
    return {"psnr": psnr, "step": step, "fired": fired,
            "fire_step": None if fire_step is None else fire_step + 1}


def load_runs(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Cached fixed runs (with their hold-out twins under run['ho'][fraction]) of the request."""
    cache = Path(args.cache)
    runs = []
    for size in args.sizes:
        for sigma in args.sigmas:
            for name in args.images:
                path = cache / f"{run_key(name, size, sigma, None)}.json"
                if not path.exists():
                    continue
                run = json.loads(path.read_text())
                run["kept"] = 1.0
                run["ho"] = {}
                for fraction in args.holdout:
                    ho_path = cache / f"{run_key(name, size, sigma, fraction)}.json"
                    if ho_path.exists():
                        ho = json.loads(ho_path.read_text())
                        ho["kept"] = _kept_fraction(ho["size"], fraction, ho["seed"])
                        run["ho"][fraction] = ho
                runs.append(run)
    return runs


def _kept_fraction(size: list[int], fraction: float, seed: int) -> float:
    import numpy as np

    from ..fit import Observation
    from ..operators import Identity
    from ..stopping import HoldOut

    obs = Observation(np.zeros((*size, 3), np.float32), Identity(), None, "noisy")
    (prepared,) = HoldOut(fraction=fraction, seed=seed).prepare([obs])
    h, w = size
    import torch

    return float(prepared.operator.project(torch.ones(1, 1, h, w)).mean())


def evaluate(spec: str, run: dict[str, Any]) -> dict[str, Any] | None:
    """Outcome of ``spec`` on ``run``; specs with hold-out replay on the hold-out twin."""
    if "holdout:" in spec:
        fraction = float(spec.split("holdout:")[1].split(":")[0])
        if fraction not in run["ho"]:
            return None
        return outcome(spec, run["ho"][fraction])
    return outcome(spec, run)


def oracle(run: dict[str, Any]) -> tuple[float, int]:
    """ORACLE (uses the clean image): best PSNR over the trajectory and its 1-based step."""
    best = max(range(len(run["psnr"])), key=run["psnr"].__getitem__)
    if run["final_psnr"] > run["psnr"][best]:
        return run["final_psnr"], len(run["psnr"])
    return run["psnr"][best], best + 1


def overhead(size: int, *, specs: list[str], steps: int = 40, repeats: int = 3) -> dict[str, float]:
    """Process CPU seconds per step of a ``size``-pixel denoising fit without and with each rule
    (CPU time, so that other jobs on a shared machine disturb it less; best of ``repeats``).
    Rules are built so that they never fire (huge patience / tau near 0)."""
    import numpy as np

    from ..fit import FitConfig, fit
    from ..stopping import parse_stop
    from ..tasks import noisy

    y = np.random.default_rng(0).random((size, size, 3)).astype(np.float32)
    config = FitConfig(steps=steps, device="cpu", progress=False)
    times: dict[str, float] = {}
    for _ in range(repeats):
        for spec in ["none", *specs]:
            rule = None if spec == "none" else parse_stop(spec)
            t0 = time.process_time()
            fit([noisy(y)], config, stop=rule)
            per_step = (time.process_time() - t0) / steps
            times[spec] = min(times.get(spec, float("inf")), per_step)
    return times


def cmd_stopping(args: argparse.Namespace) -> int:
    if args.overhead is not None:
        import torch

        torch.set_num_threads(args.threads)
        specs = ["variance:10:100000", "discrepancy:0.0001", "holdout:0.05:100000",
                 "discrepancy:0.0001,variance:10:100000"]
        for size in args.overhead or [64, 128]:
            t = overhead(size, specs=specs)
            base = t.pop("none")
            print(f"{size}x{size}: {base * 1e3:.1f} ms/step CPU without a rule; " + ", ".join(
                f"{k} {100 * (v - base) / base:+.1f}%" for k, v in t.items()))
        return 0
    if not args.no_record:
        fill_cache(args)
    if args.record_only:
        return 0
    report(args)
    return 0


# --- report ------------------------------------------------------------------------------------

TUNE_GRID = (
    [f"variance:{w}:{p}" for w in WINDOWS for p in (10, 20, 40, 80, 160)]
    + [f"discrepancy:{t:g}" for t in (0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.3)]
    + [f"holdout:{{ho}}:{p}" for p in (10, 20, 40, 80, 160)]
)


def _summary(spec: str, runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    gaps, vs_fixed = [], []
    for run in runs:
        got = evaluate(spec, run)
        if got is None:
            return None
        gaps.append(oracle(run)[0] - got["psnr"])
        vs_fixed.append(got["psnr"] - run["final_psnr"])
    return {"spec": spec, "mean_gap": sum(gaps) / len(gaps), "max_gap": max(gaps),
            "worst_vs_fixed": min(vs_fixed), "n": len(gaps)}


def tune(runs: list[dict[str, Any]], holdouts: list[float], extra: list[str]) -> list[dict[str, Any]]:
    """Every grid spec (and ``extra`` combinations) summarised over ``runs``, best mean gap first."""
    specs = [s for s in TUNE_GRID if "{ho}" not in s]
    specs += [s.format(ho=f"{h:g}") for s in TUNE_GRID if "{ho}" in s for h in holdouts]
    specs = list(dict.fromkeys(specs + extra))
    rows = [r for r in (_summary(s, runs) for s in specs) if r is not None]
    return sorted(rows, key=lambda r: (r["max_gap"] > 1.0, r["mean_gap"]))


def _fmt(got: dict[str, Any] | None) -> str:
    return "        -" if got is None else f"{got['psnr']:6.2f}@{got['step']:<3d}"


def _group_line(label: str, rows: list[dict[str, Any]], spec: str) -> str:
    got = [r for r in rows if r["rules"].get(spec) is not None]
    if not got:
        return f"  {label:14s} {spec}: no runs"
    gaps = [r["oracle"] - r["rules"][spec]["psnr"] for r in got]
    full = [r for r in got if r["steps"] == 500]
    vs = min((r["rules"][spec]["psnr"] - r["fixed"] for r in full), default=float("nan"))
    return (f"  {label:14s} {spec:32s} n={len(got)}  mean gap {sum(gaps) / len(gaps):5.2f}  "
            f"max gap {max(gaps):5.2f}  worst vs fixed-500 {vs:+6.2f}")


def report(args: argparse.Namespace) -> None:
    from ..stopping import AUTO_NOISY

    runs = load_runs(args)
    if not runs:
        print("no cached runs for this request: run without --no-record first")
        return
    default = args.rule or AUTO_NOISY
    shown = list(dict.fromkeys([default, *args.show]))
    print(f"Stop rules on set9 crops (standard PSNR: clipped, RGB, data range 1). Rule under test: {default}")
    print("ORACLE = best step chosen with the clean image (benchmarks only). Cells: PSNR@returned step;")
    print("'fixed' is the last iterate of the recorded fit (500 steps unless marked *N).")
    head = f"{'image':9s} {'size':>7s} {'sig':>3s} {'noisy':>6s} {'fixed':>8s} {'ORACLE':>10s} "
    print(head + " ".join(f"{s[:10]:>10s}" for s in shown) + "   gap vs-fixed fired@step")
    rows = []
    for run in runs:
        peak, peak_step = oracle(run)
        outs = [evaluate(s, run) for s in shown]
        d = outs[0]
        gap = None if d is None else peak - d["psnr"]
        steps = len(run["loss"])
        rows.append({"image": run["image"], "size": run["size"], "sigma": run["sigma"], "steps": steps,
                     "fixed": run["final_psnr"], "oracle": peak, "oracle_step": peak_step,
                     "noisy": run["noisy_psnr"], "sigma_hat": run["sigma_hat"],
                     "rules": dict(zip(shown, outs)), "gap": gap})
        size = f"{run['size'][0]}x{run['size'][1]}"
        mark = "" if steps == 500 else f"*{steps}"
        line = (f"{run['image']:9s} {size:>7s} {run['sigma']:3g} {run['noisy_psnr']:6.2f} "
                f"{run['final_psnr']:6.2f}{mark:<2s} {peak:6.2f}@{peak_step:<3d} "
                + " ".join(_fmt(o) for o in outs))
        if d is not None:
            vs = f"{d['psnr'] - run['final_psnr']:+6.2f}" if steps == 500 else "     -"
            line += f" {gap:5.2f} {vs}  {d['fired'] or 'none'}@{d['fire_step'] or steps}"
        print(line)
    print("\nSummary (gap = ORACLE - rule, dB):")
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(f"{r['size'][0]}px s{r['sigma']:g}", []).append(r)
    for spec in shown:
        for label, members in groups.items():
            print(_group_line(label, members, spec))
        print(_group_line("all", rows, spec))
    if args.tune:
        print("\nTuning grid on these runs (sorted: max gap <= 1 dB first, then mean gap):")
        for r in tune(runs, args.holdout, args.show)[: args.tune]:
            print(f"  {r['spec']:40s} mean gap {r['mean_gap']:.2f}  max gap {r['max_gap']:.2f}  "
                  f"worst vs fixed {r['worst_vs_fixed']:+.2f}  (n={r['n']})")
    if args.json:
        Path(args.json).write_text(json.dumps({"rule": default, "rows": rows}, indent=1))
