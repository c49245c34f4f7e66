"""#14 / #15 inpainting at any size: ``grouped-fill`` started from the fit's image alone (no
biharmonic inpainting, whose solve grows faster than the pixels, and no held-out pixels to choose
by, as for a tiled fit) against the fit and the default's ``grouped-fill`` on the same fits.

Reads the fits that ``benchmarks/inpaint_fill.py --cache DIR`` kept (the same masks: Table 3's at
full size, seed 7 on ``--crop N`` crops) and the rows it wrote (``--default-rows``, for the fit's
and the default's PSNR); fills each fit's missing pixels by :meth:`linr.refine.GroupedFill.fill`
from the fit's image (20 passes, 30 -> 2 of 255, every observed pixel put back after each).
PSNR in the paper's convention (RGB, unclipped, data range 1) and the standard one; wall seconds
on one thread. One row per image appended to ROWS (resumable).

    .venv/bin/python benchmarks/inpaint_fill_fit_start.py set9/baboon set9/house --crop 128 \\
        --default-rows benchmarks/inpaint_fill_tune.jsonl --cache /tmp/fill_cache \\
        --rows benchmarks/inpaint_fill_fit_start.jsonl

``--table ROWS`` prints a rows file as a markdown table (BENCHMARKS.md's).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(spec: str, crop: int | None, data: Path, cache: Path, default: dict) -> dict:
    from inpaint_fill import scene

    from linr.metrics import evaluate
    from linr.refine import GroupedFill

    clean, mask, seed = scene(spec, crop, data)
    saved = cache / f"{spec.replace('/', '_')}_{crop or 'full'}.npz"
    if not saved.exists():
        raise SystemExit(f"{saved}: no cached fit (run benchmarks/inpaint_fill.py with --cache first)")
    fit = np.load(saved)["fit"].astype(np.float64)
    photo = (clean * mask[..., None]).astype(np.float64)
    refiner = GroupedFill()
    t0 = time.perf_counter()
    filled = refiner.fill(photo, mask, fit, refiner.passes, refiner.start)
    seconds = time.perf_counter() - t0
    scores = {c: round(evaluate(clean, filled.astype(np.float32), convention=c)["psnr"], 4)
              for c in ("paper", "standard")}
    fit_scores = {c: round(evaluate(clean, fit.astype(np.float32), convention=c)["psnr"], 4)
                  for c in ("paper", "standard")}
    assert abs(fit_scores["paper"] - default["fit"]["paper"]) < 1e-3, "cached fit differs from the rows' fit"
    return {"image": spec, "size": list(clean.shape[:2]), "crop": crop, "mask_seed": seed, "fit": fit_scores,
            "default": {k: default["grouped-fill"][k] for k in ("paper", "standard", "seconds")},
            "fit_start_fill": {**scores, "seconds": round(seconds, 1)}}


def table(rows: list[dict]) -> str:
    out = ["| image | size | fit | default (`grouped-fill`: biharmonic blend, held-out choice) | fill from the fit alone | "
           "fill - fit | fill - default | seconds: default's refinement, fill |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        f, d, g = r["fit"]["paper"], r["default"]["paper"], r["fit_start_fill"]["paper"]
        out.append(f"| {r['image']} | {r['size'][0]}x{r['size'][1]} | {f:.2f} | {d:.2f} | {g:.2f} | {g - f:+.2f} | "
                   f"{g - d:+.2f} | {r['default']['seconds']:.0f}, {r['fit_start_fill']['seconds']:.0f} |")
    if rows:
        mean = lambda get: float(np.mean([get(r) for r in rows]))
        f, d, g = (mean(lambda r, k=k: r[k]["paper"]) for k in ("fit", "default", "fit_start_fill"))
        out.append(f"| mean ({len(rows)}) | | {f:.2f} | {d:.2f} | {g:.2f} | {g - f:+.2f} | {g - d:+.2f} | |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help="FOLDER/NAME of the shared data (set9/house, inpaint/kate)")
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--rows")
    parser.add_argument("--default-rows")
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--table")
    args = parser.parse_args(argv)
    if args.table:
        print(table([json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()]))
        return 0
    import torch

    from linr.bench import data_dir

    torch.set_num_threads(1)
    defaults = {r["image"]: r for r in map(json.loads, Path(args.default_rows).read_text().splitlines())
                if r.get("crop") == args.crop}
    rows = Path(args.rows)
    done = {json.loads(line)["image"] for line in rows.read_text().splitlines()} if rows.exists() else set()
    for spec in args.images:
        if spec in done:
            continue
        row = run(spec, args.crop, data_dir(), args.cache, defaults[spec])
        with rows.open("a") as fh:
            fh.write(json.dumps(row) + "\n")
        print(table([row]).splitlines()[-1], flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
