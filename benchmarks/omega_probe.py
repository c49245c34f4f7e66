"""#15 probe: the SIREN's omega_0 (the paper's 30), the default restore otherwise.

``--task inpaint`` (the default): 10% of the pixels kept (``--crop N``: the image's centre crop,
mask seed 7, as ``benchmarks/inpaint_fill.py`` draws it; full size: Table 3's mask), restored by
the default (the ``pick`` stop, ``grouped-fill``). ``--task sr``: Table 2's x4 lanczos2 low-res
view (``benchmarks/sr_views.py``'s scene), restored by the default (500 steps, ``grouped-views``).
For each image and each omega_0: PSNR in the paper's convention of the fit's image and of the
default's result, wall seconds on one thread. One row per image and omega_0 appended to ROWS
(resumable; SR rows carry ``"task": "sr"``). ``--task holes``: the photo's own mask
(``inpaint/NAME_mask.png`` beside ``inpaint/NAME.png``: text or scratches over the photo, white =
observed; no crop), restored by the default as above.

    .venv/bin/python benchmarks/omega_probe.py set9/baboon set9/house --crop 128 --omegas 30,15 \\
        --rows benchmarks/inpaint_omega_tune.jsonl
    .venv/bin/python benchmarks/omega_probe.py set9/house --task sr --crop 128 --omegas 30,15 \\
        --rows benchmarks/sr_omega_tune.jsonl
    .venv/bin/python benchmarks/omega_probe.py --table benchmarks/inpaint_omega_tune.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def observation(task: str, spec: str, crop: int | None, data: Path) -> tuple:
    """The clean image, the observations the default restores, and what the row records of them."""
    import linr

    if task == "holes":
        import numpy as np

        from linr.images import read_image

        folder, name = spec.split("/")
        clean = np.ascontiguousarray(read_image(data / folder / f"{name}.png")[0][..., :3].astype(np.float32))
        mask = read_image(data / folder / f"{name}_mask.png")[0]
        mask = (mask if mask.ndim == 2 else mask[..., 0]) > 0.5
        return clean, linr.masked(clean * mask[..., None], mask), {"task": "holes", "observed": round(float(mask.mean()), 4)}
    if task == "sr":
        from sr_views import scene as sr_scene

        clean, obs, _ = sr_scene(spec, crop, data)
        return clean, obs, {"task": "sr", "factor": 4}
    from inpaint_fill import scene

    clean, mask, seed = scene(spec, crop, data)
    return clean, linr.masked(clean * mask[..., None], mask), {"mask_seed": seed}


def table(rows: list[dict]) -> str:
    """A markdown table of rows: per image, each omega_0's fit / result (paper convention) and
    seconds, and the result's difference to omega_0 30's."""
    omegas = sorted({r["omega_0"] for r in rows}, reverse=True)
    images = list(dict.fromkeys((r["image"], r["crop"]) for r in rows))
    got = {(r["image"], r["crop"], r["omega_0"]): r for r in rows}
    head = " | ".join(f"omega_0 {o:g}: fit / result (stop step, s)" for o in omegas)
    diff = " | ".join(f"{o:g} - 30" for o in omegas if o != 30)
    out = [f"| image | {head} | {diff} |", "|---|" + "---:|" * (2 * len(omegas) - 1)]
    for image, crop in images:
        cells = []
        for o in omegas:
            r = got.get((image, crop, o))
            cells.append(f"{r['fit']:.2f} / {r['restored']:.2f} ({r['stop_step']}, {r['seconds']:.0f})" if r else "")
        base = got.get((image, crop, 30.0))
        diffs = [f"{got[(image, crop, o)]['restored'] - base['restored']:+.2f}" if base and (image, crop, o) in got else ""
                 for o in omegas if o != 30]
        out.append(f"| {image}{f' ({crop} px)' if crop else ''} | " + " | ".join(cells + diffs) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*")
    parser.add_argument("--table", default=None, metavar="ROWS", help="print a rows file as a markdown table")
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--omegas", default="30,15")
    parser.add_argument("--rows", default=None, help="rows file (JSONL), appended and resumed")
    parser.add_argument("--task", choices=("inpaint", "holes", "sr"), default="inpaint")
    args = parser.parse_args(argv)
    if args.table:
        print(table([json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()]))
        return 0
    if not args.rows or not args.images:
        parser.error("give IMAGES and --rows (or --table ROWS)")
    import torch

    import linr
    from linr.bench import data_dir
    from linr.metrics import evaluate
    from linr.models import ModelConfig

    torch.set_num_threads(1)
    rows = Path(args.rows)
    done = {(r["image"], r["crop"], r["omega_0"]) for r in map(json.loads, rows.read_text().splitlines())} \
        if rows.exists() else set()
    for spec in args.images:
        clean, obs, extra = observation(args.task, spec, args.crop, data_dir())
        for omega in map(float, args.omegas.split(",")):
            if (spec, args.crop, omega) in done:
                continue
            t0 = time.perf_counter()
            result = linr.restore(obs, device="cpu", progress=False, tile="off", model=ModelConfig(omega_0=omega))
            psnr = lambda image: round(evaluate(clean, image, convention="paper")["psnr"], 4)
            row = {"image": spec, "crop": args.crop, **extra, "omega_0": omega, "fit": psnr(result.fitted_image),
                   "restored": psnr(result.image), "stop_step": result.stop_step, "seconds": round(time.perf_counter() - t0, 1),
                   "refine": {k: v for k, v in result.settings["refine"].items() if k != "name"}}
            with rows.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{spec} omega_0 {omega:g}: fit {row['fit']:.2f}, restored {row['restored']:.2f} "
                  f"(step {row['stop_step']}, {row['seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
