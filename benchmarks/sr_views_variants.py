"""#15 SR x4: variants of the ``grouped-views`` refinement on cached fits.

Reads the fits ``benchmarks/sr_views.py --cache DIR`` kept (the same observation: the image, or its
``--crop N`` centre crop, cropped to a multiple of 4 and downscaled x4 by
``linr.simulate.lanczos_downscale``) and refines each by :class:`linr.refine.GroupedViews` with
the settings of each variant: ``default`` (today's), or ``key=value`` pairs joined by ``+``:
``passes``, ``start``, ``end`` (the noise levels, 0-255), ``step``, ``tau``, ``group`` (of the
grouped filter), ``dihedral`` (N: the refinement run on the first N of the eight rotations and
mirrors of the fit's image and its low-res view, each turned back, and the N averaged: a
self-ensemble). PSNR in the paper's convention (RGB, unclipped, data range 1) and the standard
one, wall seconds on one thread. One row per image and variant appended to ROWS (resumable).

    .venv/bin/python benchmarks/sr_views_variants.py set9/baboon set9/house --crop 128 \\
        --variants default,passes=40,start=50 --cache /tmp/sr_cache --rows benchmarks/sr_views_variants.jsonl

``--table ROWS`` prints a rows file as a markdown table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

KEYS = {"passes": int, "start": float, "end": float, "step": int, "tau": float, "group": int, "dihedral": int}

TURNS = [(k, False) for k in range(4)] + [(k, True) for k in range(4)]
"""The eight rotations (quarter turns) and mirrors, in the order ``dihedral=N`` takes them."""


def turn(x: np.ndarray, k: int, mirror: bool) -> np.ndarray:
    return np.ascontiguousarray(np.rot90(x[:, ::-1] if mirror else x, k))


def unturn(x: np.ndarray, k: int, mirror: bool) -> np.ndarray:
    x = np.rot90(x, -k)
    return np.ascontiguousarray(x[:, ::-1] if mirror else x)


def self_ensemble(refine, fit: np.ndarray, obs: list, n: int) -> np.ndarray:
    """The mean of ``refine`` over the first ``n`` of :data:`TURNS` of the fit and its views (each
    result turned back); the views' operator is checked to commute with each turn."""
    import dataclasses

    import torch

    out = []
    for k, mirror in TURNS[:n]:
        views = [dataclasses.replace(o, image=turn(o.image, k, mirror)) for o in obs]
        x = torch.from_numpy(turn(fit, k, mirror)).permute(2, 0, 1)[None]
        back = obs[0].operator.forward(x)[0].permute(1, 2, 0).numpy()
        direct = turn(obs[0].operator.forward(torch.from_numpy(fit).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy(), k, mirror)
        assert np.abs(back - direct).max() < 1e-5, "the views' operator does not commute with the turn"
        out.append(unturn(refine(turn(fit, k, mirror), views), k, mirror))
    return np.mean(out, axis=0)


def parse(variant: str) -> dict:
    if variant == "default":
        return {}
    pairs = [p.split("=") for p in variant.split("+")]
    if any(len(p) != 2 or p[0] not in KEYS for p in pairs):
        raise SystemExit(f"variant {variant!r}: default, or key=value pairs joined by + (keys {', '.join(KEYS)})")
    return {k: KEYS[k](v) for k, v in pairs}


def refiner(settings: dict):
    from linr.refine import GroupedViews, GroupedWiener

    views = GroupedViews(**{k: settings[k] for k in ("passes", "start", "end") if k in settings})
    views.filter = GroupedWiener(step=settings.get("step", GroupedViews.STEP), prefilter=False,
                                 tau=settings.get("tau", 1.0), group=settings.get("group", 16))
    return views


def run(spec: str, crop: int | None, variant: str, data: Path, cache: Path) -> dict:
    from sr_views import scene

    from linr.metrics import evaluate

    clean, obs, cached = scene(spec, crop, data)
    saved = cache / cached
    if not saved.exists():
        raise SystemExit(f"{saved}: no cached fit (run benchmarks/sr_views.py with --cache first)")
    fit = np.load(saved)["fit"]
    t0 = time.perf_counter()
    settings = parse(variant)
    image = self_ensemble(refiner(settings), fit, obs, settings.get("dihedral", 1))
    seconds = time.perf_counter() - t0
    scores = lambda x: {c: round(evaluate(clean, x, convention=c)["psnr"], 4) for c in ("paper", "standard")}
    return {"image": spec, "crop": crop, "variant": variant, "fit": scores(fit), "refined": scores(image),
            "seconds": round(seconds, 1)}


def table(rows: list[dict]) -> str:
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    images = list(dict.fromkeys((r["image"], r["crop"]) for r in rows))
    got = {(r["image"], r["crop"], r["variant"]): r for r in rows}
    out = ["| image | fit | " + " | ".join(variants) + " |", "|---|---:|" + "---:|" * len(variants)]
    for image, crop in images:
        fit = next(r["fit"]["paper"] for r in rows if (r["image"], r["crop"]) == (image, crop))
        cells = [f"{got[(image, crop, v)]['refined']['paper']:.2f}" if (image, crop, v) in got else "-" for v in variants]
        out.append(f"| {image}{'' if crop is None else f' {crop} px'} | {fit:.2f} | " + " | ".join(cells) + " |")
    means = []
    for v in variants:
        values = [got[(i, c, v)]["refined"]["paper"] for i, c in images if (i, c, v) in got]
        means.append(f"{np.mean(values):.2f} ({len(values)})" if values else "-")
    out.append("| mean | | " + " | ".join(means) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*")
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--variants", default="default")
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--rows")
    parser.add_argument("--table")
    args = parser.parse_args(argv)
    if args.table:
        print(table([json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()]))
        return 0
    import torch

    from linr.bench import data_dir

    torch.set_num_threads(1)
    variants = args.variants.split(",")
    for v in variants:
        parse(v)
    rows = Path(args.rows)
    done = {(r["image"], r["crop"], r["variant"]) for r in map(json.loads, rows.read_text().splitlines())} \
        if rows.exists() else set()
    for spec in args.images:
        for v in variants:
            if (spec, args.crop, v) in done:
                continue
            row = run(spec, args.crop, v, data_dir(), args.cache)
            with rows.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{spec} {v}: {row['fit']['paper']:.2f} -> {row['refined']['paper']:.2f} ({row['seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
