"""#15 SR x4: the default's fit on another learning-rate schedule (or step count), then refined by
``grouped-views`` as the default refines it; a probe beside ``sr_views.py``'s rows of the default
(the paper's constant rate, 500 steps), on the same observations (``sr_views.scene``).

``--variant cosine`` (cosine decay over the steps), ``cosine:1000`` (and 1000 steps),
``constant:300`` ...: SCHEDULE[:STEPS]. PSNR in the paper's convention (RGB, unclipped, data range
1) of the fit and of its refinement; wall seconds on one thread. One row per image appended to
ROWS (resumable by image, crop and variant); ``--table ROWS --against ROWS`` prints them beside
``sr_views.py``'s rows.

    nice .venv/bin/python benchmarks/sr_schedule_probe.py set9/baboon set9/house set9/kodim01 \\
        set9/peppers --crop 128 --variant cosine --rows benchmarks/sr_schedule_tune.jsonl
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(spec: str, crop: int | None, variant: str, data: Path) -> dict:
    schedule, _, steps = variant.partition(":")
    config, row = fit_and_refine(spec, crop, data, lambda c: dataclasses.replace(c, schedule=schedule),
                                 steps=int(steps) if steps else None)
    return {"image": spec, "crop": crop, "variant": variant, "steps": config.steps, "schedule": schedule,
            "lr": config.lr, **row}


def fit_and_refine(spec: str, crop: int | None, data: Path, configure, steps: int | None = None):
    """The default's SR fit of ``sr_views.scene``'s observation with its settings changed by
    ``configure(config)`` (``steps``: its step count), refined by ``grouped-views``: the settings
    and the row's measurements (PSNR paper convention of the fit and of the refined image,
    seconds)."""
    from sr_views import scene

    from linr.fit import fit
    from linr.metrics import evaluate
    from linr.refine import refine_image
    from linr.tasks import plan_restore

    clean, obs, _ = scene(spec, crop, data)
    plan = plan_restore(obs, refine="none", device="cpu", progress=False, steps=steps)
    config = configure(plan.config)
    t0 = time.perf_counter()
    result = fit(plan.obs, config, stop=plan.rule)
    fit_s = time.perf_counter() - t0

    def score(image: np.ndarray) -> float:
        return round(evaluate(clean, image, convention="paper")["psnr"], 4)

    t0 = time.perf_counter()
    refined, _ = refine_image("grouped-views", result.image, obs)
    return config, {"fit": score(result.image), "grouped-views": score(refined), "fit_seconds": round(fit_s, 1),
                    "refine_seconds": round(time.perf_counter() - t0, 1)}


def table(rows: list[dict], against: list[dict]) -> str:
    before = {(r["image"], r["crop"]): r for r in against}
    variants = sorted({r["variant"] for r in rows})
    head = "| image | default: fit / refined | " + " | ".join(f"{v}: fit / refined" for v in variants) + " |"
    out = [head, "|---|---|" + "---|" * len(variants)]
    by = {(r["image"], r["crop"], r["variant"]): r for r in rows}
    images = sorted({(r["image"], r["crop"]) for r in rows})
    sums: dict[str, list[float]] = {}
    for image, crop in images:
        b = before.get((image, crop))
        cells = [f"{b['fit']['paper']:.2f} / {b['grouped-views']['paper']:.2f}" if b else "-"]
        if b:
            sums.setdefault("default", []).append(b["grouped-views"]["paper"])
        for v in variants:
            r = by.get((image, crop, v))
            cells.append(f"{r['fit']:.2f} / {r['grouped-views']:.2f}" if r else "-")
            if r:
                sums.setdefault(v, []).append(r["grouped-views"])
        out.append(f"| {image} {crop or 'whole'} | " + " | ".join(cells) + " |")
    out.append("| mean refined | " + " | ".join(f"{np.mean(sums[k]):.2f} ({len(sums[k])})" if k in sums else "-"
                                             for k in ["default", *variants]) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    return cli(argv, __doc__.split("\n\n")[0], run, "cosine", "SCHEDULE[:STEPS]")


def cli(argv: list[str] | None, description: str, run, default: str, spec: str) -> int:
    """The command line of an SR probe beside ``sr_views.py``'s rows: images, ``--crop``,
    ``--variant`` (``spec``, ``default``), ``--rows`` (resumed), ``--table ROWS --against ROWS``;
    ``run(image, crop, variant, data)`` makes one row."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("images", nargs="*", help="FOLDER/NAME of the shared data (set9/house)")
    parser.add_argument("--crop", type=int, help="a centre crop of this side first")
    parser.add_argument("--variant", default=default, help=f"{spec} (default: {default})")
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
