"""#15 denoising: another kind of image model (FINER, WIRE) as the default's pilot, everything
else as the default restore does it (its stop, prior, learning rate, refinement); a probe beside
the default itself (variant ``siren``, the pilot unchanged).

``ROWS NAME ... --variant NAME[:KEY=VALUE...]``: NAME a registered model
(``linr.models.MODEL_FAMILIES``); keys ``omega`` (omega_0 of siren / finer, the Gabor omega of
wire), ``scale`` (the Gabor scale of wire), ``width``, ``depth`` (the pilot's 64 and 7 unless
named) and ``lr`` (the pilot's 1e-3 unless named). Crops as ``linr bench default-stop`` makes them
(centre crop, Gaussian noise of ``--sigma`` with seed 0); PSNR standard convention (clipped, data
range 1) of the returned (refined) image and of the fit's; CPU seconds of the whole restore on one
thread. One row per (name, colour, size, sigma, variant), resumable; ``--table`` prints them.

    nice .venv/bin/python benchmarks/denoise_model_probe.py benchmarks/denoise_model_tune.jsonl \\
        baboon house kodim01 peppers --size 96 --variant finer
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe_common import crop_parser, run, with_model_variant  # noqa: E402


def main() -> None:
    p = crop_parser(__doc__.split("\n\n")[0], 96)
    p.add_argument("--variant", default="siren")
    args = p.parse_args()

    def key(name: str) -> str:
        return f"{name}_{args.colour}_s{args.size}_n{args.sigma:g}@{args.variant}"

    def row(name: str) -> dict:
        from linr import tasks
        from linr.bench import data_dir
        from linr.bench.averaging import clean_crop, observations_for
        from linr.metrics import evaluate

        folder, _, image = name.rpartition("/")
        clean = clean_crop(data_dir(None), folder or "set9", image, args.colour, args.size)
        obs = observations_for("denoise", clean, sigma=args.sigma, seed=0)
        plan = tasks.plan_restore(obs, seed=0, device="cpu", progress=False)
        config = with_model_variant(args.variant, plan.config)
        started = time.process_time()
        result = tasks.fit_whole(plan.obs, config, plan.rule)
        fitted = np.asarray(result.image).copy()
        tasks.apply_refine(result, plan.refine, plan.obs, held_out=tasks.held_out_pixels(plan.rule))
        seconds = time.process_time() - started

        def psnr(image: np.ndarray) -> float:
            return round(float(evaluate(clean, image, convention="standard")["psnr"]), 4)

        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).resolve().parent).stdout.strip()
        return {"key": key(name), "image": name, "colour": args.colour, "size": args.size, "sigma": args.sigma,
                "variant": args.variant, "model": dataclasses.asdict(config.model), "lr": config.lr,
                "psnr": psnr(result.image), "psnr_fit": psnr(fitted), "stop_step": int(result.stop_step),
                "steps_run": int(result.steps_run), "stop": result.settings.get("stop", {}).get("name"),
                "refine": plan.refine, "cpu_s": round(seconds, 2), "commit": commit}

    def say(name: str, made: dict) -> str:
        return f"{name} {args.variant}: {made['psnr']:.2f} (fit {made['psnr_fit']:.2f}), step {made['stop_step']}, {made['cpu_s']:.1f} s"

    def table(done: dict) -> str:
        rows = list(done.values())
        variants = sorted({r["variant"] for r in rows})
        crops = sorted({(r["image"], r["colour"], r["size"], r["sigma"]) for r in rows})
        by = {(r["image"], r["colour"], r["size"], r["sigma"], r["variant"]): r for r in rows}
        out = ["| crop | " + " | ".join(f"{v}: refined / fit (s)" for v in variants) + " |",
               "|---|" + "---:|" * len(variants)]
        sums: dict[str, list[float]] = {}
        for crop in crops:
            cells = []
            for v in variants:
                r = by.get((*crop, v))
                cells.append("-" if r is None else f"{r['psnr']:.2f} / {r['psnr_fit']:.2f} ({r['cpu_s']:.0f})")
                if r is not None:
                    sums.setdefault(v, []).append(r["psnr"])
            out.append(f"| {crop[0]} {crop[1]} {crop[2]} px s{crop[3]:g} | " + " | ".join(cells) + " |")
        out.append("| mean refined | " + " | ".join(f"{np.mean(sums[v]):.2f} ({len(sums[v])})" if v in sums else "-"
                                                  for v in variants) + " |")
        return "\n".join(out)

    run(args, lambda name: key(name), row, say, table)


if __name__ == "__main__":
    main()
