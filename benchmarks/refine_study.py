"""Refiners of the denoising default on cached pilots: the fit is made once per image, the
refiners are compared on it in seconds.

``pilots``: for each image, the default restore of the bench's noisy photo (``linr bench denoise``:
set9 name or FOLDER/NAME, ``--colour`` rgb (default) or grey (BT.601 luma), ``--size`` whole or a centre crop, Gaussian noise sigma on the 0-255
scale, seed 0; ``linr.restore(linr.noisy(y), seed=0)`` with every default, so the pilot fit is
the default's: a SIREN 7x64, tiles above 384 px) and its fitted image (the pilot, before the
refinement) are saved under CACHE (``NAME_SIZE_nSIGMA.npz``: clean, noisy, pilot, default), and
a row records the PSNRs and the seconds. ``--steps N`` gives the pilot fit a step budget of its own (cached and keyed apart, ``_bN``), to
weigh a shorter fit against the refinement; ``--lr LR`` a learning rate of its own (``_lrLR``; a
pilot at a rate other than the paper's 1e-4, today's default included, is keyed ``_lrLR``). A rerun skips images already cached.

``refine``: for each cached image and each refiner SPEC, the refined image of the cached noisy
photo and pilot (noise level measured on the photo, as the default does) and its PSNR; SPEC is
a refiner name of :data:`linr.refine.REFINERS` with optional settings (``NAME:key=value,...``,
passed to its constructor) and ``A>B`` chains two (B takes A's result as its pilot). A row's key
holds the settings the spec resolves to, so a changed default makes new rows, not skips.

``lr-table``: two pilot learning rates side by side (the pilot fit, the first SPEC on it, the
pilot's seconds and steps), with the difference and the time ratio.

``table``: a Markdown table of the recorded rows of NAMEs at one colour, size and sigma: the fit
alone, each SPEC, and CBM3D (BM3D on grey) with the true sigma from the ``linr bench denoise``
rows given with ``--bm3d-rows``; then the means and the differences to the first SPEC and to
CBM3D (images with every column).

PSNR: standard convention (clipped to [0, 1], data range 1, scikit-image). Rows (JSONL) carry
the commit, the processor and the seconds on one thread.

    python benchmarks/refine_study.py pilots CACHE ROWS [--size N|full] [--sigma S] [--colour grey] NAME ...
    python benchmarks/refine_study.py refine CACHE ROWS [--size N|full] [--sigma S] [--colour grey] --spec SPEC ... -- NAME ...
    python benchmarks/refine_study.py table CACHE ROWS [--size ...] [--sigma ...] [--colour ...] --bm3d-rows ROWS2 --spec SPEC ... -- NAME ...
    python benchmarks/refine_study.py lr-table CACHE ROWS [--size ...] [--lr LR] [--against-lr LR2] --spec SPEC -- NAME ...
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import linr
from linr.bench import data_dir
from linr.bench.averaging import clean_crop, observations_for
from linr.bench.common import append_row, commit_id, cpu_name, psnr, read_rows
from linr.noise import floored_noise_sigma
from linr.refine import REFINERS
from linr.tasks import DEFAULT_PILOT_LR


PAPER_LR = linr.PRESETS["paper"].lr


def _pilot_lr(args: argparse.Namespace) -> float:
    """The learning rate of the pilot fit: ``--lr``, else the defaults' (:data:`linr.tasks.DEFAULT_PILOT_LR`)."""
    return DEFAULT_PILOT_LR if args.lr is None else args.lr


def _budget(args: argparse.Namespace) -> str:
    """The suffix that names a pilot fit's settings where they are not the twelfth to sixteenth
    sessions' defaults (2000 steps, the paper's learning rate): ``_bN`` for a step budget of its
    own (``--steps``), ``_lrLR`` for another learning rate (``--lr``, or today's default), so that
    a changed default makes new pilots and rows, not skips."""
    lr = _pilot_lr(args)
    return ("" if args.steps is None else f"_b{args.steps}") + ("" if lr == PAPER_LR else f"_lr{lr:g}")


def _cache_file(cache: Path, name: str, args: argparse.Namespace) -> Path:
    grey = "_grey" if args.colour == "grey" else ""
    return cache / f"{name.replace('/', '_')}{grey}_{args.size}_n{args.sigma:g}{_budget(args)}.npz"


def _provenance() -> dict:
    return {"commit": commit_id(), "processor": cpu_name(), "threads": torch.get_num_threads(),
            "torch": torch.__version__, "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def pilots(args: argparse.Namespace) -> None:
    data = data_dir(None)
    done = read_rows(args.rows)
    for name in args.names:
        key = f"{name}_{args.colour}_s{args.size}_n{args.sigma:g}{_budget(args)}_pilot"
        file = _cache_file(args.cache, name, args)
        if key in done and file.exists():
            continue
        folder, _, stem = name.rpartition("/")
        clean = clean_crop(data, folder or "set9", stem, args.colour, None if args.size == "full" else int(args.size))
        obs = observations_for("denoise", clean, sigma=args.sigma, seed=0)
        t0 = time.perf_counter()
        result = linr.restore(obs, device="cpu", progress=False, seed=0, steps=args.steps, lr=args.lr)
        seconds = time.perf_counter() - t0
        noisy = np.asarray(obs[0].image)
        noisy = noisy if noisy.ndim == 3 else noisy[..., None]
        np.savez(file, clean=clean, noisy=noisy, pilot=result.fitted_image, default=result.image)
        row = {"key": key, "image": name, "colour": args.colour, "size": args.size, "sigma": args.sigma,
               "pilot_steps": args.steps, "pilot_lr": _pilot_lr(args), "psnr_fit": psnr(clean, result.fitted_image), "psnr_default": psnr(clean, result.image),
               "refine": result.settings.get("refine"), "tile": result.settings.get("tile"),
               "returned_step": result.stop_step, "steps_run": result.steps_run, "seconds": seconds, **_provenance()}
        append_row(args.rows, row)
        print(f"{key}: fit {row['psnr_fit']:.2f}, default {row['psnr_default']:.2f} dB, {seconds:.0f} s", flush=True)


def _value(text: str):
    """A setting's value: true/false, an int, a float, else the text."""
    if text in ("true", "false"):
        return text == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _refiner(spec: str):
    name, _, settings = spec.partition(":")
    kwargs = {}
    for item in filter(None, settings.split(",")):
        k, _, v = item.partition("=")
        kwargs[k] = _value(v)
    return REFINERS[name](**kwargs)


def refine(args: argparse.Namespace) -> None:
    done = read_rows(args.rows)
    for name in args.names:
        file = _cache_file(args.cache, name, args)
        if not file.exists():
            print(f"{name}: no cached pilot ({file})", flush=True)
            continue
        cached = np.load(file)
        clean, noisy, pilot = cached["clean"], cached["noisy"], cached["pilot"]
        pilot_seconds = done.get(f"{name}_{args.colour}_s{args.size}_n{args.sigma:g}{_budget(args)}_pilot", {}).get("seconds")
        sigma = floored_noise_sigma(noisy)
        for spec in args.spec:
            refiners = [_refiner(stage) for stage in spec.split(">")]
            stages = [refiner.describe() for refiner in refiners]
            key = f"{name}_{args.colour}_s{args.size}_n{args.sigma:g}{_budget(args)}_{json.dumps(stages, sort_keys=True)}"
            if key in done:
                continue
            t0 = time.perf_counter()
            image = pilot
            for refiner in refiners:
                image = refiner(noisy, image, sigma)
            seconds = time.perf_counter() - t0
            row = {"key": key, "image": name, "colour": args.colour, "size": args.size, "sigma": args.sigma,
                   "pilot_steps": args.steps, "pilot_lr": _pilot_lr(args), "pilot_seconds": pilot_seconds, "spec": spec,
                   "psnr": psnr(clean, image), "psnr_fit": psnr(clean, pilot), "stages": stages,
                   "sigma_measured": sigma * 255, "seconds": seconds, **_provenance()}
            append_row(args.rows, row)
            done[key] = row
            print(f"{name} {args.colour} n{args.sigma:g} {spec}: {row['psnr']:.3f} dB (pilot {row['psnr_fit']:.2f}), {seconds:.1f} s", flush=True)


def _found(rows: list[dict], name: str, args: argparse.Namespace, spec: str, lr: float) -> dict | None:
    """The last row of ``name`` refined by the settings ``spec`` resolves to today, on a pilot of
    learning rate ``lr`` (rows are matched by their settings, not their keys: older keys spelled
    the spec)."""
    stages = [_refiner(stage).describe() for stage in spec.split(">")]
    matches = [row for row in rows if (row.get("image"), row.get("colour", "rgb"), row.get("size"), row.get("sigma"),
                                       row.get("pilot_steps"), row.get("pilot_lr") or PAPER_LR, row.get("stages")) ==
               (name, args.colour, args.size, args.sigma, args.steps, lr, stages)]
    return matches[-1] if matches else None


def table(args: argparse.Namespace) -> None:
    rows = list(read_rows(args.rows).values())
    bm3d = read_rows(args.bm3d_rows) if args.bm3d_rows else {}
    bm3d_name = "CBM3D" if args.colour == "rgb" else "BM3D"
    head = ["fit alone", *args.spec, bm3d_name]
    print("| image | " + " | ".join(head) + f" | {args.spec[-1]} - {args.spec[0]} | {args.spec[-1]} - {bm3d_name} |")
    print("|---|" + "---:|" * (len(head) + 2))
    full = []
    for name in args.names:
        cells = [_found(rows, name, args, spec, _pilot_lr(args)) for spec in args.spec]
        ref = bm3d.get(f"{name}_{args.colour}_s{args.size}_n{args.sigma:g}_bm3d")
        values = [None if cells[0] is None else cells[0]["psnr_fit"],
                  *(None if c is None else c["psnr"] for c in cells), None if ref is None else ref["psnr"]]
        text = ["-" if v is None else f"{v:.2f}" for v in values]
        if None not in values:
            full.append(values)
            text += [f"{values[-2] - values[1]:+.2f}", f"{values[-2] - values[-1]:+.2f}"]
        else:
            text += ["-", "-"]
        print(f"| {name} | " + " | ".join(text) + " |")
    if full:
        mean = np.mean(full, axis=0)
        print(f"| **mean ({len(full)})** | " + " | ".join(f"{v:.2f}" for v in mean) +
              f" | **{mean[-2] - mean[1]:+.2f}** | **{mean[-2] - mean[-1]:+.2f}** |")


def lr_table(args: argparse.Namespace) -> None:
    """Two pilot learning rates side by side (``--against-lr`` then ``--lr``): per image the pilot
    fit's PSNR, its seconds and steps (the most steps of any tile), the first SPEC refined on it."""
    rows = read_rows(args.rows)
    listed = list(rows.values())
    spec = args.spec[0]
    rates = [args.against_lr, _pilot_lr(args)]
    print("| image | " + " | ".join(f"{what} lr {lr:g}" for lr in rates
                                     for what in ("fit", spec, "s", "steps")) + " | difference | time ratio |")
    print("|---|" + "---:|" * (4 * len(rates) + 2))
    full = []
    for name in args.names:
        cells = []
        for lr in rates:
            pilot_args = argparse.Namespace(**{**vars(args), "lr": lr})
            prefix = f"{name}_{args.colour}_s{args.size}_n{args.sigma:g}{_budget(pilot_args)}"
            pilot = rows.get(f"{prefix}_pilot")
            refined = _found(listed, name, args, spec, lr)
            cells.append(None if pilot is None or refined is None else
                         (pilot["psnr_fit"], refined["psnr"], pilot["seconds"], pilot["steps_run"]))
        if None in cells:
            print(f"| {name} | " + " | ".join(["-"] * (4 * len(rates) + 2)) + " |")
            continue
        full.append([v for c in cells for v in c])
        (_, base, base_s, _), (_, new, new_s, _) = cells
        print(f"| {name} | " + " | ".join(f"{f:.2f} | {r:.2f} | {t:.0f} | {n}" for f, r, t, n in cells) +
              f" | {new - base:+.2f} | {base_s / new_s:.1f}x |")
    if full:
        m = np.mean(full, axis=0)
        print(f"| **mean ({len(full)})** | " + " | ".join(f"{m[4 * k]:.2f} | {m[4 * k + 1]:.2f} | {m[4 * k + 2]:.0f} | "
                                                       f"{m[4 * k + 3]:.0f}" for k in range(len(rates))) +
              f" | **{m[5] - m[1]:+.2f}** | {sum(r[2] for r in full) / sum(r[6] for r in full):.1f}x (sums) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["pilots", "refine", "table", "lr-table"])
    parser.add_argument("cache", type=Path)
    parser.add_argument("rows", type=Path)
    parser.add_argument("--size", default="full")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--colour", choices=["rgb", "grey"], default="rgb")
    parser.add_argument("--steps", type=int, help="the pilot fit's step budget (default: the defaults')")
    parser.add_argument("--lr", type=float, help="the pilot fit's learning rate (default: the defaults' pilot's)")
    parser.add_argument("--against-lr", type=float, default=PAPER_LR,
                        help="lr-table: the learning rate to compare with (default: the paper's)")
    parser.add_argument("--bm3d-rows", type=Path, help="table: the linr bench denoise rows with bm3d")
    parser.add_argument("--spec", nargs="+", default=["wiener", "grouped"])
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.action == "pilots":
        args.cache.mkdir(parents=True, exist_ok=True)
    {"pilots": pilots, "refine": refine, "table": table, "lr-table": lr_table}[args.action](args)


if __name__ == "__main__":
    main()
