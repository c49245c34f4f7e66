"""#15 inpainting probe: the SIREN's omega_0 (the paper's 30) for inpainting, the default restore
otherwise (the ``pick`` stop, ``grouped-fill``). For each image (``--crop N``: its centre crop,
mask seed 7, 10% kept, as ``benchmarks/inpaint_fill.py`` draws it; full size: Table 3's mask) and
each omega_0: PSNR in the paper's convention of the fit's image and of the default's result, wall
seconds on one thread. One row per image and omega_0 appended to ROWS (resumable).

    .venv/bin/python benchmarks/inpaint_omega.py set9/baboon set9/house --crop 128 --omegas 30,15 \\
        --rows benchmarks/inpaint_omega_tune.jsonl
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--crop", type=int, default=None)
    parser.add_argument("--omegas", default="30,15")
    parser.add_argument("--rows", required=True)
    args = parser.parse_args(argv)
    import torch
    from inpaint_fill import scene

    import linr
    from linr.bench import data_dir
    from linr.metrics import evaluate
    from linr.models import ModelConfig

    torch.set_num_threads(1)
    rows = Path(args.rows)
    done = {(r["image"], r["crop"], r["omega_0"]) for r in map(json.loads, rows.read_text().splitlines())} \
        if rows.exists() else set()
    for spec in args.images:
        clean, mask, seed = scene(spec, args.crop, data_dir())
        obs = linr.masked(clean * mask[..., None], mask)
        for omega in map(float, args.omegas.split(",")):
            if (spec, args.crop, omega) in done:
                continue
            t0 = time.perf_counter()
            result = linr.restore(obs, device="cpu", progress=False, tile="off", model=ModelConfig(omega_0=omega))
            psnr = lambda image: round(evaluate(clean, image, convention="paper")["psnr"], 4)
            row = {"image": spec, "crop": args.crop, "mask_seed": seed, "omega_0": omega, "fit": psnr(result.fitted_image),
                   "restored": psnr(result.image), "stop_step": result.stop_step, "seconds": round(time.perf_counter() - t0, 1),
                   "refine": {k: v for k, v in result.settings["refine"].items() if k != "name"}}
            with rows.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"{spec} omega_0 {omega:g}: fit {row['fit']:.2f}, restored {row['restored']:.2f} "
                  f"(step {row['stop_step']}, {row['seconds']} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
