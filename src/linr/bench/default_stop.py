"""``linr bench default-stop``: how far the denoising default's automatic stop returns from the best
image the same fit could have returned (#15's stopping target), and what other stop fractions
would have returned.

Per image: the noisy crop of ``linr bench averaging`` (centre crop of ``--size``, grey or RGB,
Gaussian noise of ``--sigma`` on the 0-255 scale, seed 0); the default restore (``linr.restore``
with every default; ``reference`` given only to read PSNR); then the same pilot fit (same network,
seed, learning rate and held-out pixels) run for a fixed ``--budget`` of steps (at least as many as
the default ran), and every
``--every`` steps both its raw iterate and the mean of its last 40 iterates (the default's
average) refined as the default refines them. The **oracle** is the best of those refined images:
it needs the clean image, so only a benchmark knows it.

Rows (JSONL, resumable by key: a rerun skips finished images) carry the default's PSNR, its stop
(the step of the returned average and the step of the held-out minimum it was chosen from), the
oracle's PSNR and where it was, and the **curve**: per checkpoint the step, the PSNR of its
refined raw iterate and of its refined average, and the mean squared difference of the raw
iterate and of the average from the noisy photo on the held-out pixels (what the stop rule sees).

``--table ROWS ...`` prints, per rows file (a split: the images a setting was tuned on, the
images it was not), the default's gap to the oracle and, for each ``--at`` fraction, the gap of
the rule that returns the average at the checkpoint nearest that fraction of the held-out
minimum's step (:class:`linr.stopping.HoldOut`'s ``at``), replayed from the curves: the rule
reads only what the stop rule sees, so the replay is what the fit would have returned (checked
against the online rule on two crops to 1e-4 dB). PSNR: standard convention (clipped to [0, 1],
data range 1, scikit-image). One torch thread by default.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "record", "replay", "table", "row_key"]

WINDOW = 40
"""The default's iterate average (:data:`linr.stopping.AUTO_NOISY`: ``window40``)."""


def register(sub: Any) -> None:
    p = sub.add_parser("default-stop", help="the denoising default's stop against the best refined image of its fit",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", metavar="IMAGE",
                   help="set9 names or FOLDER/NAME of another folder of the data, such as set5/baby")
    p.add_argument("--rows", type=Path, default=None, help="rows file (JSONL), appended and resumed")
    p.add_argument("--data", default=None, help="test-image folder (default: $LINR_DATA or ../shared/data)")
    p.add_argument("--size", type=int, default=128, help="centre crop side (default 128)")
    p.add_argument("--sigma", type=float, default=25.0, help="noise std, 0-255 scale (default 25)")
    p.add_argument("--colour", choices=("rgb", "grey"), default="rgb")
    p.add_argument("--budget", type=int, default=400, help="steps of the fixed-length fit (default 400)")
    p.add_argument("--every", type=int, default=5, help="steps between checkpoints (default 5)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--oracle-from", type=Path, nargs="+", default=None, metavar="ROWS",
                   help="take each image's oracle and curve from a row of these files (same crop, noise, budget "
                        "and checkpoints, any stop: the fixed fit does not depend on it) and run only the default")
    p.add_argument("--sure-score-step", type=int, default=None, metavar="PX",
                   help="the SURE pick's scoring filter's reference step (default: linr.sure.SCORE_STEP); "
                        "the row keys name one other than the refinement's")
    p.add_argument("--sure-score-patience", type=int, default=None, metavar="N",
                   help="the scored checkpoints in a row without a new least that end the SURE pick's second fit "
                        "(default: linr.sure.SCORE_PATIENCE; at least linr.sure.MAX_CANDIDATES: it runs its "
                        "budget, as before the forty-first session); the row keys name one that can end it")
    p.add_argument("--table", type=Path, nargs="+", default=None, metavar="ROWS",
                   help="instead: print the recorded rows of these files, one split per file")
    p.add_argument("--at", type=float, nargs="*", default=[1.0, 0.9, 0.8, 0.7],
                   help="stop fractions replayed in --table (default 1.0 0.9 0.8 0.7)")
    p.set_defaults(func=cmd_default_stop)


def _stop_tag(size: int, sigma: float, colour: str) -> str:
    """``-atF`` when the default returns its average before the held-out minimum (F: the fraction
    of :data:`linr.stopping.AUTO_NOISY`), ``-sureE`` when it chooses it by SURE on a crop of this
    size (:mod:`linr.sure`, E its probe's scale), so that rows of another default are not taken
    for this one's."""
    from ..stopping import AUTO_NOISY, parse_stop
    from ..sure import row_tag

    at = parse_stop(AUTO_NOISY).at
    sure = row_tag(size * size, sigma, 1 if colour == "grey" else 3)
    return ("" if at == 1.0 else f"-at{at:g}") + (f"-{sure}" if sure else "")


def row_key(name: str, *, colour: str, size: int, sigma: float, budget: int, every: int) -> str:
    from ..tasks import pilot_tag

    return f"{name}_{colour}_s{size}_n{sigma:g}_b{budget}_e{every}{pilot_tag()}{_stop_tag(size, sigma, colour)}"


ORACLE_FIELDS = ("steps_fitted", "lr", "retried", "oracle_psnr", "oracle_step", "oracle_iterate", "curve",
                 "oracle_clipping")
"""What a row's fixed fit gave (the oracle and the curve): the same whatever the default's stop.
``oracle_clipping``: 'undone' where its images were mapped back through the clipped photo's
inverse as the default's (:mod:`linr.stabilise`, since the fifty-fifth session), 'none' where the
photo was not clipped; rows without it (before) are not reused."""


def oracle_row(rows: list[dict[str, Any]], name: str, *, colour: str, size: int, sigma: float, budget: int,
               every: int) -> dict[str, Any] | None:
    """The recorded row of this crop, noise, budget and checkpoints, fitted by today's pilot, whose
    fixed fit another row can reuse (the last such), or None; rows of other benches are passed over."""
    crop = (name, colour, size, sigma, budget, every)
    same = [r for r in rows if all(k in r for k in ("key", "image", "colour", "size", "sigma", "budget", "every",
                                                     *ORACLE_FIELDS[3:]))
            and (r["image"], r["colour"], r["size"], r["sigma"], r["budget"], r["every"]) == crop
            and fitted_by_todays_pilot(r["key"])]
    return same[-1] if same else None


def fitted_by_todays_pilot(key: str) -> bool:
    """Whether a row key names today's pilot (:func:`linr.tasks.pilot_tag`: the same network, rate
    and precision): its tag ends the key or comes right before a stop tag (:func:`_stop_tag`:
    ``-at...``, ``-sure...``), not as the start of another pilot's tag (a float32 pilot's tag
    followed by ``-bf16``, say, on a CPU without bf16 units, or the paper's rate's tag followed by
    ``-lr...``)."""
    from ..tasks import pilot_tag

    _, found, rest = key.partition(pilot_tag())
    return bool(found) and (rest == "" or rest.startswith(("-at", "-sure")))


def record(name: str, *, data: Path, colour: str, size: int, sigma: float, budget: int, every: int,
           oracle: dict[str, Any] | None = None) -> dict[str, Any]:
    """One row (module docstring); with ``oracle`` (a row of :func:`oracle_row`) only the default
    is run and the fixed fit's fields are that row's (``oracle_from`` names its commit)."""
    import torch

    import linr

    from .. import tasks
    from ..fit import fit, output_image
    from ..refine import refine_image
    from ..stopping import FixedSteps, holdout_rule
    from .averaging import clean_crop, observations_for
    from .common import cpu_name, commit_id, psnr

    folder, _, image = name.rpartition("/")
    clean = clean_crop(data, folder or "set9", image, colour, size)
    obs = observations_for("denoise", clean, sigma=sigma, seed=0)
    started = time.process_time()
    default = linr.restore(obs, seed=0, device="cpu", progress=False, reference=clean, threads=None)
    default_s = time.process_time() - started
    refine = default.settings["refine"]["name"]
    stop = default.settings.get("stop") or {}
    own = {"key": row_key(name, colour=colour, size=size, sigma=sigma, budget=budget, every=every),
           "image": name, "colour": colour, "size": size, "sigma": sigma, "budget": budget, "every": every,
           "default_psnr": psnr(clean, default.image), "default_stop_step": default.stop_step,
           # the held-out minimum's step, which fractions are replayed from (a SURE pick's: the step it left)
           "default_minimum_step": stop.get("minimum_step", (stop.get("sure") or {}).get("held_out_step",
                                                                                          default.stop_step)),
           "default_steps_run": default.steps_run, "default_cpu_s": default_s, "stop": stop, "refine": refine,
           "commit": commit_id(), "processor": cpu_name(), "torch": torch.__version__}
    if oracle is not None:
        return {**own, **{field: oracle[field] for field in ORACLE_FIELDS if field in oracle}, "oracle_from": oracle.get("commit")}

    # the same pilot fit, for a fixed budget, its iterates refined as the default refines them
    # the default's resolved photo and settings (float32 products where its stop is the SURE pick)
    plan = tasks.plan_restore(obs, seed=0, device="cpu")
    resolved, config = plan.obs, plan.config
    unclip = plan.route.transform if plan.route is not None and plan.route.record_key == "clipping" else None
    rule = tasks.resolve_stop(resolved, preset=None, steps=None, stop=None, refine=refine)
    held = holdout_rule(rule)
    if held is not None:
        resolved = held.prepare(resolved)  # the same held-out pixels as the default's fit
    window: deque = deque(maxlen=WINDOW)
    checkpoints: list[tuple[int, np.ndarray, np.ndarray]] = []

    def keep(step: int, output: torch.Tensor, loss: float) -> None:
        image = output_image(output)
        window.append(image)
        if (step + 1) % every == 0:
            checkpoints.append((step + 1, image, np.mean(window, axis=0)))

    # at least as many steps as the default ran, so that the oracle and every replay see its whole fit,
    # and at the rate of the fit the default returned (its pilot fitted again at the paper's rate)
    steps = max(budget, default.steps_run)
    retried = (default.settings.get("retry") or {}).get("returned") == "retry"
    lr = config.retry_lr if retried and config.retry_lr is not None else config.lr
    fit(resolved, dataclasses.replace(config, steps=steps, lr=lr, retry_lr=None), stop=FixedSteps(steps), callback=keep)
    masks = None if held is None else held.held_out_masks()
    mask = None if masks is None else masks[0]
    noisy = np.asarray(obs[0].image, np.float64)
    best: dict[str, Any] = {"psnr": -1.0}
    curve = []
    for step, raw, mean in checkpoints:
        point: list[Any] = [step]
        for kind, image in (("raw", raw), ("average", mean)):
            refined, _ = refine_image(refine, image, obs, masks)
            if unclip is not None:  # mapped back as the default maps its image (linr.stabilise.unstabilised)
                refined = unclip.at_unclipped_levels(refined).inverse(refined)
            value = psnr(clean, refined)
            point.append(round(value, 4))
            if value > best["psnr"]:
                best = {"psnr": value, "step": step, "iterate": kind}
        if mask is not None:
            point += [round(float(np.mean((np.asarray(image, np.float64)[mask] - noisy[mask]) ** 2)), 8)
                      for image in (raw, mean)]
        curve.append(point)
    return {**own, "steps_fitted": steps, "lr": lr, "retried": retried,
            "oracle_psnr": best["psnr"], "oracle_step": best.get("step"), "oracle_iterate": best.get("iterate"),
            "curve": curve, "oracle_clipping": "none" if unclip is None else "undone"}


def minimum_step(row: dict[str, Any]) -> int:
    """The 1-based step of the held-out minimum the default's stop was chosen from (rows before it
    was recorded: the returned step, which was that minimum's while the default returned it)."""
    return int(row.get("default_minimum_step") or (row.get("stop") or {}).get("minimum_step")
               or row["default_stop_step"])


def replay(row: dict[str, Any], at: float) -> tuple[float, int] | None:
    """(refined PSNR, step) of the average at the checkpoint nearest ``at`` times the held-out
    minimum's step (the earlier on a tie, none after the minimum), as
    :class:`linr.stopping.HoldOut` with ``at`` returns it (its checkpoints are every 5 steps: rows
    recorded with another ``--every`` replay on theirs); the default's own image when it returned
    the raw iterate or no checkpoint precedes the minimum; None when the recorded curve ends
    before that step (a row whose fixed fit was shorter than the default's)."""
    if (row.get("stop") or {}).get("returned") == "raw":
        # the guard returned the raw iterate, and 'at' moves only an average: the default's own
        return float(row["default_psnr"]), int(row["default_stop_step"])
    minimum = minimum_step(row)
    if not row["curve"] or row["curve"][-1][0] + row.get("every", 5) / 2 < at * minimum:
        return None
    points = [p for p in row["curve"] if p[0] <= minimum]
    if not points:  # no checkpoint up to the minimum: the rule returns the minimum's own average
        return float(row["default_psnr"]), int(row["default_stop_step"])
    point = min(points, key=lambda p: (abs(p[0] - at * minimum), p[0]))
    return float(point[2]), int(point[0])


def table(files: list[Path], ats: list[float]) -> str:
    """Per file, per image: the default (its returned step), the oracle, and each fraction's gap to
    the oracle; then the mean and worst gap of each column."""
    from .common import read_rows

    head = "| split / image | default (step) | oracle (step, iterate) | default - oracle | " + \
        " | ".join(f"at {a:g}" for a in ats) + " |"
    lines = [head, "|---|---:|---:|---:|" + "---:|" * len(ats)]
    for path in files:
        rows = list(read_rows(path).values())
        if not rows:
            continue
        gaps: list[list[float]] = [[] for _ in range(len(ats) + 1)]
        for row in rows:
            gap = row["default_psnr"] - row["oracle_psnr"]
            gaps[0].append(gap)
            cells = []
            for i, at in enumerate(ats, start=1):
                replayed = replay(row, at)
                if replayed is None:
                    cells.append("n/a (curve too short)")
                    continue
                value, step = replayed
                gaps[i].append(value - row["oracle_psnr"])
                cells.append(f"{value - row['oracle_psnr']:+.2f} ({step})")
            lines.append(f"| {path.stem}: {row['image']} {row['colour']} {row['size']} px, sigma {row['sigma']:g} | "
                         f"{row['default_psnr']:.2f} ({row['default_stop_step']}) | {row['oracle_psnr']:.2f} "
                         f"({row['oracle_step']}, {row['oracle_iterate']}) | {gap:+.2f} | " + " | ".join(cells) + " |")
        lines.append(f"| **{path.stem}: mean / worst ({len(rows)})** | | | " +
                     " | ".join(f"**{np.mean(g):+.2f} / {min(g):+.2f}**" + ("" if len(g) == len(rows) else f" ({len(g)})")
                                if g else "n/a" for g in gaps) + " |")
    return "\n".join(lines)


def cmd_default_stop(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from . import data_dir
    from .common import append_row, read_rows

    if any(not 0.0 < at <= 1.0 for at in args.at):
        raise InputError(f"--at {' '.join(f'{a:g}' for a in args.at)}: each fraction must be in (0, 1], as the stop rule's")
    if args.table:
        if args.images:
            raise InputError("give IMAGE names to record rows, or --table ROWS to print them, not both")
        missing = [str(p) for p in args.table if not p.is_file()]
        if missing:
            raise InputError(f"--table: no rows file {', '.join(missing)}")
        print(table(args.table, args.at))
        return 0
    if not args.images or args.rows is None:
        raise InputError("give IMAGE names and --rows FILE (or --table ROWS)")
    if args.budget < 1 or args.every < 1 or args.size < 8:
        raise InputError("--budget and --every must be at least 1 step, --size at least 8 px")
    from .. import sure

    if args.sure_score_step is not None:
        if not 1 <= args.sure_score_step <= 8:
            raise InputError(f"--sure-score-step {args.sure_score_step}: 1 to 8 px (the filter's patch)")
        sure.SCORE_STEP = args.sure_score_step
    if args.sure_score_patience is not None:
        if args.sure_score_patience < 1:
            raise InputError(f"--sure-score-patience {args.sure_score_patience}: at least 1")
        sure.SCORE_PATIENCE = args.sure_score_patience
    import torch

    missing = [str(p) for p in args.oracle_from or [] if not p.is_file()]
    if missing:
        raise InputError(f"--oracle-from: no rows file {', '.join(missing)}")
    recorded = [row for path in args.oracle_from or [] for row in read_rows(path).values()]
    data = data_dir(args.data)
    torch.set_num_threads(args.threads)
    done = read_rows(args.rows)
    for name in args.images:
        key = row_key(name, colour=args.colour, size=args.size, sigma=args.sigma, budget=args.budget, every=args.every)
        if key in done:
            continue
        crop = dict(colour=args.colour, size=args.size, sigma=args.sigma, budget=args.budget, every=args.every)
        oracle = oracle_row(recorded, name, **crop) if recorded else None
        if args.oracle_from and oracle is None:
            print(f"{name}: no row of this crop in --oracle-from; fitting its oracle", flush=True)
        row = record(name, data=data, oracle=oracle, **crop)
        append_row(args.rows, row)
        raised = f"; fitted {row['steps_fitted']} steps, as many as the default ran" \
            if row.get("steps_fitted", 0) > args.budget else ""
        print(f"{name}: default {row['default_psnr']:.2f} (step {row['default_stop_step']}), oracle "
              f"{row['oracle_psnr']:.2f} at {row['oracle_step']} ({row['oracle_iterate']}){raised}", flush=True)
    return 0
