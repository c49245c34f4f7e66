"""#15 SR x4: another kind of image model (FINER, WIRE) in the default's fit, then refined by
``grouped-views`` as the default refines it; a probe beside ``sr_views.py``'s rows of the default
(the paper's SIREN 7x256, Adam 1e-4 constant, 500 steps), on the same observations
(``sr_views.scene``).

``--variant NAME[:KEY=VALUE...]``: NAME a registered model (``linr.models.MODEL_FAMILIES``);
keys ``omega`` (omega_0 of siren / finer, the Gabor omega of wire), ``scale`` (the Gabor scale of
wire), ``width``, ``depth``, ``lr``, ``steps``, ``schedule`` (constant / cosine); unnamed ones keep
the default's. PSNR in the paper's convention (RGB, unclipped, data range 1) of the fit and of its
refinement; wall seconds on one thread. One row per image appended to ROWS (resumable by image,
crop and variant); ``--table ROWS --against ROWS`` prints them beside ``sr_views.py``'s rows.

    nice .venv/bin/python benchmarks/sr_model_probe.py set9/baboon set9/house --crop 128 \\
        --variant finer --rows benchmarks/sr_model_tune.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sr_schedule_probe import table  # noqa: E402  (the same table: fit / refined beside the default)


def configs(variant: str, config, model):
    """The fit's settings and model for ``variant`` (module docstring), from the default's."""
    name, *pairs = variant.split(":")
    values = dict(pair.split("=", 1) for pair in pairs)
    model_changes: dict = {"name": name}
    fit_changes: dict = {}
    for key, value in values.items():
        if key == "omega":
            model_changes["gabor_omega" if name == "wire" else "omega_0"] = float(value)
        elif key == "scale":
            model_changes["gabor_scale"] = float(value)
        elif key in ("width", "depth"):
            model_changes[key] = int(value)
        elif key in ("lr", "steps", "schedule"):
            fit_changes[key] = {"lr": float, "steps": int, "schedule": str}[key](value)
        else:
            raise SystemExit(f"unknown variant key {key!r} in {variant!r}")
    model = dataclasses.replace(model, **model_changes)
    return dataclasses.replace(config, model=model, **fit_changes)


def run(spec: str, crop: int | None, variant: str, data: Path) -> dict:
    from sr_views import scene

    from linr.fit import fit
    from linr.metrics import evaluate
    from linr.refine import refine_image
    from linr.tasks import plan_restore

    clean, obs, _ = scene(spec, crop, data)
    plan = plan_restore(obs, refine="none", device="cpu", progress=False)
    config = configs(variant, plan.config, plan.config.model)
    t0 = time.perf_counter()
    result = fit(plan.obs, config, stop=plan.rule)
    fit_s = time.perf_counter() - t0

    def score(image: np.ndarray) -> float:
        return round(evaluate(clean, image, convention="paper")["psnr"], 4)

    t0 = time.perf_counter()
    refined, _ = refine_image("grouped-views", result.image, obs)
    return {"image": spec, "crop": crop, "variant": variant, "model": dataclasses.asdict(config.model),
            "steps": config.steps, "schedule": config.schedule, "lr": config.lr,
            "fit": score(result.image), "grouped-views": score(refined),
            "fit_seconds": round(fit_s, 1), "refine_seconds": round(time.perf_counter() - t0, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help="FOLDER/NAME of the shared data (set9/house)")
    parser.add_argument("--crop", type=int, help="a centre crop of this side first")
    parser.add_argument("--variant", default="finer", help="NAME[:KEY=VALUE...] (default: finer)")
    parser.add_argument("--rows", help="rows file (JSONL), appended and resumed")
    parser.add_argument("--table", help="print a rows file as a markdown table")
    parser.add_argument("--against", help="sr_views.py rows of the default")
    args = parser.parse_args(argv)
    from linr.bench.common import resume_rows, table_or_rows

    if table_or_rows(args, table, parser):
        return 0
    import torch

    from linr.bench import data_dir

    torch.set_num_threads(1)
    resume_rows(args.rows, lambda r: (r["image"], r["crop"], r["variant"]),
                [((spec, args.crop, args.variant), lambda spec=spec: run(spec, args.crop, args.variant, data_dir(None)))
                 for spec in args.images])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
