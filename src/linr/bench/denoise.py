"""``linr bench denoise``: variants of the default denoising restore on noisy crops.

One fit per (image, colour, size, sigma, variant) of ``linr.restore(linr.noisy(y), **variant)``
(linr's defaults otherwise: the automatic stop, which returns the 40-iterate average) on the noisy
crop of ``linr bench averaging`` (centre crop, or the whole image with ``--size full``; Gaussian
noise of ``--sigma`` on the 0-255 scale, seed 0). A variant is:

- ``default``: whatever the default restore does at the commit a row records (rows made before
  the default had a prior, which record none, also stand for ``prior=none``; keys name the
  default's prior, refinement and pilot, so a rerun after the default changed fits it again;
  the table shows today's default row where there is one, else the latest, marked ``*``);
- ``prior=SPEC``: an image prior (``--prior``), such as ``prior=none``, ``prior=tv:0.05`` or
  ``prior=tv:auto`` (its weight set from the measured noise level; rows record the weight used);
- ``omega_0=W``: the SIREN's omega_0 (``--omega0``; with coordinates on [-1, 1] across the
  image, omega_0 = 30 gives a 128-px crop twice the frequency per pixel a 256-px image gets).
- ``width=N``, ``depth=N``: the SIREN's width (256 by default) and number of layers (7), as the
  network of the fit (the pilot of the refinement);
- ``steps=N``: the step budget of the automatic stop (500 by default; the most steps run);
- ``lr=X``: the fit's learning rate (for a refined fit with no network named, the pilot's network at
  that rate, and a failed pilot is not fitted again);
- ``stop=RULE``: one stop rule (``--stop``; not several joined by commas, which join a variant's
  settings), such as ``stop=holdout:0.05:40:window40`` (the automatic
  stop written out: the held-out stop where the default would pick by SURE, the pilot kept) or
  ``stop=holdout:0.05:40`` (no average: the paper's network, as any rule that is not of the pilot's
  kind; name ``width=64,lr=0.001,steps=2000`` to keep the pilot's);
- ``preset=NAME``: a preset (``--preset``), such as ``preset=paper`` (the paper's network and its
  fixed 500 steps, no prior, no refinement: where linr began);
- ``tile=SPEC``: tiled restoration (``--tile``: ``auto``, ``off`` or ``SIZE[:OVERLAP]``; the
  default, ``auto``, fits images up to 1024 px whole);
- ``precision=NAME``: the hidden layers' matrix products (``--precision``: ``float32``, ``bf16``,
  ``auto``);
- settings joined by commas, such as ``width=64,depth=5``;

a fit variant that names no network and is refined uses the defaults' pilot network
(:data:`linr.tasks.DEFAULT_PILOT_MODEL`, since the twelfth session) and its learning rate
(:data:`linr.tasks.DEFAULT_PILOT_LR`, since the seventeenth): its rows record the variant as
``NAME`` + :func:`linr.tasks.pilot_tag` (``NAME@pilot7x64-lr0.001-retry``; ``NAME@pilot7x64-lr0.001``
(seventeenth session) before a failed pilot was fitted again; ``@pilot7x64`` for the
1e-4 pilot of the twelfth to sixteenth sessions, e.g. ``--table --variants
refine=wiener@pilot7x64``), apart from the earlier rows of the paper's 7x256 under the plain
name (``width=256,refine=wiener`` fits those again);
- ``bm3d``: the classical reference, CBM3D (BM3D on grey) with the true sigma (the optional
  ``bm3d`` package), no fit;
- ``dip``: Deep Image Prior at its own denoising recipe (:class:`linr.baselines.dip.DIPConfig`'s
  defaults: the skip network of 5 levels of 128 channels, 3000 Adam steps at 0.01, the input
  perturbed by 1/30, the outputs' exponential average (0.99) returned; ``--steps`` shortens it
  for smoke runs); its row also records the best step of the returned average (an oracle);
- ``refine=NAME``: the refinement after the fit (``--refine``: ``grouped``, ``wiener`` or ``none``). A refined
  fit's row also records the PSNR of the fit's own image (``psnr_fit``), which is the
  ``refine=none`` fit with the same settings: ``--table`` shows it there when that row is missing.

Images are set9 names or ``FOLDER/NAME`` of another folder of the data (such as set5/bird). Splits:
``tune`` (the four set9 images settings were chosen on: baboon, house, kodim01, kodim03),
``report`` (the other set9 images), ``held-out`` (other folders). PSNR: standard convention
(clipped to [0, 1], data range 1, scikit-image); rows also carry the returned image's PSNR
unclipped and the best unclipped PSNR of the raw iterates along the fit (an oracle that looks at
the clean image; the restore is given it as ``reference``, which changes nothing in the fit), so
the stop's distance to the peak is read in one convention. Rows (JSONL, resumable: a rerun skips
finished keys) carry the returned step, the steps run, seconds (wall and the process's CPU), a
fit's PSNR curve of its raw iterates (unclipped) and provenance; ``--table`` prints them, and
``--table --equal-time`` also gives each later variant the first one's CPU seconds
(:func:`equal_time_table`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

__all__ = ["register", "variant_options", "table", "SPLITS"]

SPLITS = ("tune", "report", "held-out")
"""set9 tune crops (weights chosen there), set9 report crops, images of other folders."""


def register(sub: Any) -> None:
    p = sub.add_parser("denoise", help="variants of the default denoising restore (priors, bandwidth) on noisy crops",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="test-image folder (default: $LINR_DATA or ../shared/data)")
    p.add_argument("--images", nargs="+", default=None,
                   help="set9 image names, or FOLDER/NAME of another folder, such as set5/bird (needed unless --table)")
    p.add_argument("--colours", nargs="+", default=["rgb"], choices=["rgb", "grey"])
    p.add_argument("--size", type=_size, default=128,
                   help="centre crop side, or 'full' for the whole image (default 128)")
    p.add_argument("--sigma", type=float, default=25.0, help="noise std, 0-255 scale (default 25)")
    p.add_argument("--variants", nargs="+", default=["default"],
                   help="default, bm3d, dip, or settings joined by commas: prior=SPEC (none, tv:WEIGHT, tv:auto), "
                   "refine=NAME (grouped, wiener, none), omega_0=W, width=N, depth=N, steps=N, lr=X, stop=RULE, preset=NAME, "
                   "tile=SPEC (auto, off, SIZE[:OVERLAP]), precision=NAME (float32, bf16, auto) "
                   "(default: default)")
    p.add_argument("--steps", type=int, default=None, help="step budget (default: the defaults'; smoke runs)")
    p.add_argument("--width", type=int, default=None, help="SIREN width (default: the defaults'; smoke runs)")
    p.add_argument("--rows", default="bench_out/denoise.jsonl",
                   help="rows, appended and resumed (default bench_out/denoise.jsonl; this project's: "
                   "benchmarks/denoise_variants.jsonl)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--table", action="store_true",
                   help="print a Markdown table of the recorded rows of --variants (all images) instead")
    p.add_argument("--equal-time", action="store_true",
                   help="with --table: also each later variant given the first one's seconds (the PSNR of "
                   "its iterate at that time; variants that refine nothing)")
    p.set_defaults(func=cmd_denoise)


def _size(text: str) -> int | str:
    """``--size``: a crop side in pixels, or ``full`` (the whole image)."""
    if text.strip().lower() == "full":
        return "full"
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of pixels or 'full', got {text!r}") from None
    if size < 16:
        raise argparse.ArgumentTypeError(f"a crop of at least 16 pixels, got {size}")
    return size


def _px(size: int | str) -> str:
    """A row's size as tables print it."""
    return "whole" if size == "full" else f"{size} px"


def variant_options(variant: str) -> dict[str, Any]:
    """restore() keyword arguments of a variant (settings joined by commas, such as
    ``width=64,depth=5``; :func:`linr.bench.common.restore_options`); InputError naming a bad one."""
    from .common import restore_options

    if variant in BASELINES:
        return {}
    return restore_options(variant, others="default, bm3d, dip")


REFERENCES = ("bm3d", "dip")
"""Variants that fit no SIREN: the classical reference and Deep Image Prior."""

BASELINES = ("default", *REFERENCES)
"""Variants that are no settings of a fit: the default restore and the references."""



def _split(name: str) -> str:
    from .averaging import TUNE

    return "tune" if name in TUNE else "report" if "/" not in name else "held-out"


def _bm3d_row(clean: Any, noisy: Any, sigma: float) -> dict[str, Any]:
    """The ``bm3d`` variant's measurements (true sigma; the package checked up front)."""
    from ..baselines.classical import bm3d_denoise
    from .common import psnr

    t0, c0 = time.perf_counter(), time.process_time()
    result = bm3d_denoise(noisy, sigma=sigma)
    return {"psnr": psnr(clean, result.image), "psnr_unclipped": psnr(clean, result.image, clip=False),
            "seconds": time.perf_counter() - t0, "cpu_seconds": time.process_time() - c0,
            "returned_step": None, "steps_run": None}


def _peak(curve: list[float]) -> dict[str, Any]:
    """The best value of a per-step PSNR curve and its 1-based step (both None for no curve): a
    row's oracle."""
    peak = max(range(len(curve)), key=curve.__getitem__) if curve else None
    return {"peak_psnr_unclipped": None if peak is None else curve[peak],
            "peak_step": None if peak is None else peak + 1}


def _dip_row(clean: Any, obs: list[Any], *, steps: int | None) -> dict[str, Any]:
    """The ``dip`` variant's measurements: DIP at its recipe (``steps``: a smoke run's budget),
    the returned average's PSNR and its best step along the fit (an oracle)."""
    from ..baselines.dip import DIPConfig, dip_restore
    from .common import psnr

    config = DIPConfig(device="cpu") if steps is None else DIPConfig(device="cpu", steps=steps)
    t0, c0 = time.perf_counter(), time.process_time()
    result = dip_restore(obs, config, reference=clean)
    seconds = time.perf_counter() - t0
    return {"psnr": psnr(clean, result.image), "psnr_unclipped": psnr(clean, result.image, clip=False),
            "returned_step": config.steps, "steps_run": result.steps_run, "seconds": seconds,
            "cpu_seconds": time.process_time() - c0,
            **_peak(result.history.get("psnr") or []),  # the returned average's, unclipped
            "dip": {k: v for k, v in dataclasses.asdict(config).items() if k != "device"}}


def _fit_row(clean: Any, obs: list[Any], *, steps: int | None, options: dict[str, Any]) -> dict[str, Any]:
    """A fit variant's measurements: the returned image's PSNR (clipped and not), the fit's own
    before a refinement, the best raw iterate (the oracle) and the stop."""
    from ..tasks import restore, retry_records
    from .common import psnr

    t0, c0 = time.perf_counter(), time.process_time()
    options = {**options, **({"steps": steps} if steps is not None else {})}  # a smoke run's budget wins
    result = restore(obs, device="cpu", progress=False, seed=0, reference=clean, threads=None, **options)
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
    return {"psnr": psnr(clean, result.image), "returned_step": result.stop_step,
            "psnr_unclipped": psnr(clean, result.image, clip=False),
            **({"psnr_fit": psnr(clean, result.fitted_image), "refine": result.settings["refine"]}
               if result.fitted_image is not None else {}),
            **_peak(result.history.get("psnr") or []),  # raw iterates, unclipped: the oracle's
            "steps_run": result.steps_run, "seconds": seconds, "cpu_seconds": cpu_seconds,
            "stop": result.settings.get("stop"),
            "prior": result.settings.get("prior"), "prior_used": result.settings.get("prior_used"),
            "retried": sum(r is not None for r in retry_records(result.settings)),
            "psnr_curve": [round(v, 2) for v in result.history.get("psnr") or []]}  # raw iterates, unclipped


def _key_variant(variant: str, options: dict[str, Any]) -> str:
    """A variant as row keys name it: ``default`` with what the default does now (its prior,
    refinement and, for a refined fit with no network named, the pilot network), so that a row
    of an earlier default is not taken for today's on a rerun (rows made before the default had
    any of them keep the shorter key)."""
    if variant in REFERENCES:
        return variant
    from ..tasks import denoise_defaults_tag

    named = f"default-{denoise_defaults_tag(pilot=False)}" if variant == "default" else variant
    return named + _pilot_suffix(options)


def _pilot_suffix(options: dict[str, Any]) -> str:
    """``@pilotDxW`` when a variant's fit is the defaults' pilot (:data:`linr.tasks.DEFAULT_PILOT_MODEL`:
    refined, no network or preset named, the automatic stop or a spec of its kind:
    :func:`linr.tasks.pilot_stop`), else ''; with ``lr`` named, without the pilot's learning rate
    (the variant names its own, and no failed fit is fitted again)."""
    from ..tasks import pilot_stop, pilot_tag

    if "model" in options or "preset" in options or options.get("refine") == "none" or \
            not pilot_stop(options.get("stop")):
        return ""
    return pilot_tag(own_lr="lr" in options, own_precision="precision" in options)


def _plan_suffix(variant: str, options: dict[str, Any], obs: list[Any], steps: int | None) -> str:
    """What a variant's restore of ``obs`` does that its name does not say, as
    :func:`linr.tasks.plan_restore` resolves it (so a row's key follows the default's rules by
    construction): ``@tiles-aboveN`` when ``tile='auto'`` fits it in tiles (N: the size above which
    it does, :data:`linr.tasks.DENOISE_WHOLE_UP_TO` for the defaults' pilot since the fourteenth
    session; ``@tiles128-aboveN`` for the pilot's tiles of :data:`linr.tasks.DENOISE_TILE_SIZE` px
    since the forty-sixth), then ``@sureE...`` (:func:`linr.sure.pick_tag`) when it stops by the SURE pick (the
    default's rule, or ``stop=sure`` asked for); '' for either that it does not: rows made before,
    of the same key, are whole-image fits and the held-out stop's. Last, ``-float32`` where the
    pilot keeps float32 products though its tag (:func:`linr.tasks.pilot_tag`) says bf16 (the
    SURE pick's fits: :func:`linr.tasks.sure_in_float32`). Then ``@clipping-undone`` where the
    restoration is mapped back through the clipped photo's inverse (:mod:`linr.stabilise`)."""
    from ..stopping import SurePick
    from ..sure import pick_tag
    from ..tasks import DENOISE_TILE_SIZE, TILE_SIZE, auto_whole_up_to, pilot_precision, plan_restore

    if variant in REFERENCES:
        return ""
    options = {**options, **({"steps": steps} if steps is not None else {})}  # as _fit_row restores
    plan = plan_restore(obs, device="cpu", progress=False, seed=0, **options)
    tiled = options.get("tile", "auto") == "auto" and plan.grid is not None
    above = auto_whole_up_to(options.get("preset"), pilot=plan.pilot)
    # the pilot's precision where the plan keeps another than the key's pilot tag says (the SURE
    # pick's fits multiply in float32: linr.tasks.sure_in_float32)
    other = "precision" not in options and plan.pilot and plan.config.precision != pilot_precision("cpu")
    # the pilot's tiles of 128 px since the forty-sixth session (rows before: 256 px, unsaid)
    size = str(DENOISE_TILE_SIZE) if plan.pilot and options.get("preset") is None and DENOISE_TILE_SIZE != TILE_SIZE else ""
    # the photo's clipping undone after the restoration (linr.stabilise, since the fifty-fifth session)
    undone = plan.route is not None and plan.route.record_key == "clipping" and plan.route.transform.active
    return (f"@tiles{size}-above{above}" if tiled else "") + (f"@{pick_tag()}" if isinstance(plan.rule, SurePick) else "") + \
        (f"-{plan.config.precision}" if other else "") + ("@clipping-undone" if undone else "")


def _label(variant: str, options: dict[str, Any]) -> str:
    """The variant a row records: as asked, with the pilot named for variants other than
    ``default`` (``refine=wiener`` rows of the paper's network were made before the pilot)."""
    return variant if variant in BASELINES else variant + _pilot_suffix(options)


def table(rows: dict[str, dict[str, Any]], variants: list[str], *, equal_time: bool = False) -> str:
    """PSNR (returned step / steps run, seconds: of CPU where the row has them) per image and variant, then the mean of each split
    and its difference to the first variant, over the images that have every variant; with
    ``equal_time``, a second table (:func:`equal_time_table`)."""
    by_image, today = _by_image(rows)
    lines = ["| split | image | " + " | ".join(variants) + " |", "|---|---|" + "---:|" * len(variants)]
    means: dict[str, list[list[float]]] = {}
    earlier = False
    for (split, image, colour, size, sigma, smoke), cells in _complete(by_image, variants):
        shown = [f"{cells[v]['psnr']:.2f}" + ("*" if cells[v].get("earlier") else "") + " (" +
                 (f"{cells[v]['returned_step']} / {cells[v]['steps_run']}, " if cells[v].get("steps_run") else "") +
                 (f"{cells[v]['cpu_seconds']:.0f} s CPU)" if "cpu_seconds" in cells[v] else
                  f"{cells[v]['seconds']:.0f} s)") for v in variants]
        earlier |= any(cells[v].get("earlier") for v in variants)
        row_label, mean_label = _labels(split, image, colour, size, sigma, smoke)
        lines.append(f"| {row_label} | " + " | ".join(shown) + " |")
        means.setdefault(mean_label, []).append([cells[v]["psnr"] for v in variants])
    _mean_lines(lines, means)
    if earlier:
        lines.append(f"\n\\* made by an earlier default (no row of today's, `{today[1:]}`, for that image)")
    if equal_time:
        lines += ["", equal_time_table(by_image, variants)]
    return "\n".join(lines)


def equal_time_table(by_image: dict[tuple[Any, ...], dict[str, dict[str, Any]]], variants: list[str]) -> str:
    """Each later variant given the first one's seconds: the PSNR of its raw iterate at the last step
    it had run by then (its seconds per step being its whole time over its steps run), beside its
    own returned PSNR, for variants whose rows carry the curve and refine nothing (a refinement's
    time is no fit's step); a variant that had ended by then shows what it returned ("done"). The
    first variant's seconds and PSNR first. PSNR unclipped throughout (the curve's convention);
    seconds are the process's CPU time where both rows have it (one thread: not stretched by other
    jobs on the machine), else wall time. Variants left out are named under the table."""
    complete = _complete(by_image, variants)
    timed = [v for v in variants[1:] if complete and all(
        cells[v].get("psnr_curve") and cells[v].get("psnr_fit") is None for _, cells in complete)]
    left = [v for v in variants[1:] if v not in timed]
    lines = ["| split | image | " + " | ".join([f"{variants[0]} (seconds, PSNR)"] + [
        f"{v} at those seconds (step, PSNR) | {v} returned (seconds)" for v in timed]) + " |",
             "|---|---|---:|" + "---:|---:|" * len(timed)]
    means: dict[str, list[list[float]]] = {}
    for (split, image, colour, size, sigma, smoke), cells in complete:
        first = cells[variants[0]]
        values, shown = [first["psnr_unclipped"]], [f"{_seconds(first, first):.0f} s, {first['psnr_unclipped']:.2f}"]
        for v in timed:
            row = cells[v]
            step = max(1, math.floor(_seconds(first, row) * row["steps_run"] / _seconds(row, first)))
            if step >= row["steps_run"] or step > len(row["psnr_curve"]):  # it had ended: what it returned
                at, said = row["psnr_unclipped"], f"done, {row['psnr_unclipped']:.2f}"
            else:
                at = row["psnr_curve"][step - 1]
                said = f"{step}, {at:.2f}"
            values += [at, row["psnr_unclipped"]]
            shown += [said, f"{row['psnr_unclipped']:.2f} ({_seconds(row, first):.0f} s)"]
        row_label, mean_label = _labels(split, image, colour, size, sigma, smoke)
        lines.append(f"| {row_label} | " + " | ".join(shown) + " |")
        means.setdefault(mean_label, []).append(values)
    _mean_lines(lines, means)
    if left:
        lines.append(f"\nNot given the first one's seconds (a refinement after the fit, or rows without the "
                     f"PSNR curve): {', '.join(left)}")
    return "\n".join(lines)


def _labels(split: str, image: str, colour: str, size: Any, sigma: float, smoke: str) -> tuple[str, str]:
    """A table row's first two cells (split, then image and setting) and the label of its split's mean."""
    return (f"{split} | {image} {colour} {_px(size)}, sigma {sigma:g}{smoke}",
            f"{split}, {colour} {_px(size)}, sigma {sigma:g}{smoke}")


def _seconds(row: dict[str, Any], other: dict[str, Any]) -> float:
    """A row's CPU seconds where it and ``other`` both have them, else its wall seconds."""
    return row["cpu_seconds"] if "cpu_seconds" in row and "cpu_seconds" in other else row["seconds"]


def _mean_lines(lines: list[str], means: dict[str, list[list[float]]]) -> None:
    """Append each split's mean of every column and its difference to the first."""
    for split, values in means.items():
        m = [sum(col) / len(col) for col in zip(*values)]
        lines.append(f"| {split}: mean ({len(values)}) | | " + " | ".join(
            f"{x:.2f}" + ("" if i == 0 else f" ({x - m[0]:+.2f})") for i, x in enumerate(m)) + " |")


def _complete(by_image: dict[tuple[Any, ...], dict[str, dict[str, Any]]], variants: list[str]) -> list[tuple[tuple[Any, ...], dict[str, dict[str, Any]]]]:
    """The images that have every variant, in the tables' order (smoke runs last, then sigma,
    size, colour, split and name)."""
    return [(key, cells) for key, cells in sorted(
        by_image.items(), key=lambda kv: (kv[0][5], kv[0][4], str(kv[0][3]).zfill(5), kv[0][2],
                                          SPLITS.index(kv[0][0]), kv[0][1]))
        if all(v in cells for v in variants)]


def _by_image(rows: dict[str, dict[str, Any]]) -> tuple[dict[tuple[Any, ...], dict[str, dict[str, Any]]], str]:
    """Rows by (split, image, colour, size, sigma, smoke settings) and variant, today's default row
    kept over earlier ones and cells filled from older rows that stand for them; and the key
    suffix of today's default."""
    by_image: dict[tuple[str, str, str, int, float, str], dict[str, dict[str, Any]]] = {}
    today = "_" + _key_variant("default", {})  # rows of the default as it is now (their key says so)
    for row in rows.values():
        smoke = "".join(f", {k} {row[k]}" for k in ("steps", "width") if row.get(k))  # apart from full runs
        key = (row["split"], row["image"], row["colour"], row["size"], row["sigma"], smoke)
        cells = by_image.setdefault(key, {})
        if row["variant"] == "default" and not smoke:  # smoke rows (--steps, --width) name no pilot
            row = {**row, "earlier": not _key_is(row["key"], today)}
            kept = cells.get("default")
            if kept is not None and row["earlier"] and not kept.get("earlier"):
                continue  # today's default row stands, whatever order the file has
        cells[row["variant"]] = row
    for cells in by_image.values():
        if "default" not in cells and "omega_0=30" in cells:  # the default model's omega_0 is 30
            cells["default"] = cells["omega_0=30"]
        old = cells.get("default")  # made before the default had a prior: a fit without one
        if "prior=none" not in cells and old is not None and not old.get("prior"):
            cells["prior=none"] = old
        refined = cells.get("refine=grouped") or cells.get("refine=wiener") or cells.get("default")
        if "refine=none" not in cells and refined is not None and refined.get("psnr_fit") is not None:
            cells["refine=none"] = {**refined, "psnr": refined["psnr_fit"]}  # the same fit, unrefined
    return by_image, today


def _key_is(key: str, variant: str) -> bool:
    """Whether a row key names ``variant`` (``_NAME``) exactly: followed by nothing, an automatic
    tiling suffix or a smoke run's settings, not by more of an older or newer name."""
    at = key.find(variant)
    return at >= 0 and key[at + len(variant):][:1] in ("", "@", "_")


def cmd_denoise(args: argparse.Namespace) -> int:
    import torch

    from ..errors import InputError
    from ..models import ModelConfig
    from . import data_dir
    from .averaging import clean_crop, observations_for
    from .common import append_row, commit_id, cpu_name, read_rows

    rows_path = Path(args.rows)
    if args.equal_time and not args.table:
        raise InputError("--equal-time is a choice of --table: give both")
    if args.table:
        print(table(read_rows(rows_path), args.variants, equal_time=args.equal_time))
        return 0
    if not args.images:
        raise InputError("--images: give one or more set9 image names (or FOLDER/NAME)")
    options = {v: variant_options(v) for v in args.variants}  # a bad variant: now, not after hours of fits
    if "bm3d" in options:
        from ..baselines.classical import BaselineUnavailable, check_bm3d

        try:
            check_bm3d()
        except BaselineUnavailable as exc:
            raise InputError(f"variant bm3d: {exc}") from None
    if args.width:
        for kw in options.values():
            kw["model"] = replace(kw.get("model", ModelConfig()), width=args.width)
    data = data_dir(args.data)
    cleans = {}
    for name in args.images:  # every image checked before the first fit
        folder, _, stem = name.rpartition("/")
        for colour in args.colours:
            cleans[name, colour] = clean_crop(data, folder or "set9", stem, colour,
                                              None if args.size == "full" else args.size)
    torch.set_num_threads(args.threads)
    rows_path.parent.mkdir(parents=True, exist_ok=True)
    done = read_rows(rows_path)
    smoke = {k: v for k, v in (("steps", args.steps), ("width", args.width)) if v}
    for (name, colour), clean in cleans.items():
        for variant, kw in options.items():
            # a baseline fits no SIREN: a smoke --width is none of its settings
            own_smoke = {k: v for k, v in smoke.items() if not (k == "width" and variant in REFERENCES)}
            obs = observations_for("denoise", clean, sigma=args.sigma, seed=0)
            key = f"{name}_{colour}_s{args.size}_n{args.sigma:g}_{_key_variant(variant, kw)}" + \
                _plan_suffix(variant, kw, obs, args.steps) + \
                "".join(f"_{k}{v}" for k, v in own_smoke.items())
            if key in done:
                continue
            measured = _bm3d_row(clean, obs[0].image, args.sigma) if variant == "bm3d" else \
                _dip_row(clean, obs, steps=args.steps) if variant == "dip" else \
                _fit_row(clean, obs, steps=args.steps, options=kw)
            row = {"key": key, "image": name, "colour": colour, "size": args.size, "sigma": args.sigma,
                   "variant": _label(variant, kw), **own_smoke, "split": _split(name), **measured,
                   "commit": commit_id(), "processor": cpu_name(), "threads": args.threads,
                   "torch": torch.__version__, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
            append_row(rows_path, row)
            done[key] = row
            steps = f", returned step {row['returned_step']} of {row['steps_run']}" if row["steps_run"] else ""
            print(f"{key}: {row['psnr']:.2f} dB{steps}, {row['seconds']:.0f} s", flush=True)
    return 0
