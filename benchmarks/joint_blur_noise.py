"""#15 a noisy short exposure and a blurred long exposure of one scene, restored together: does the
joint fit beat each photo restored alone, and which edges should its blur get?

The blurred photo is that of ``deblur_scene_default.py`` (a whole shared image blurred by Table 4's
kernel, 25 x 25 Gaussian sigma 1.6, noise sqrt(2)/255, seed 0; its centre ``--crop`` px cut out, so
its borders were blurred with what lay outside the frame); the noisy photo is the clean centre crop
with Gaussian noise of std ``--sigma`` (0-255 scale, seed 1, clipped), as a short exposure of the
same framing. Variants (``--variants``):

- ``noisy``: the noisy photo alone, ``linr.restore``'s default;
- ``blurred``: the blurred photo alone, the default (free edges, refined by ``grouped-deblur``);
- ``joint``: both, the default (the blur's boundary left open; since the thirty-first session free
  edges and ``grouped-pair``, before mirrored edges and no refinement: rows record which);
- ``joint-reflect``: both, the blur's edges chosen mirrored, not refined (the default until the
  thirty-first session: 4000 steps at the paper's constant rate, the noisy photo's hold-out stop);
- ``joint-free``: both, the blur's edges chosen free (one rendering of the frame grown by the
  reach; 2000 steps on a cosine rate), not refined;
- ``joint-reflect+REFINER``, ``joint-free+REFINER`` (e.g. ``joint-free+grouped-pair``): that
  joint fit's image (read from ``--cache``, where its run kept it) refined by ``REFINER`` (a
  refiner of one photo, ``grouped`` or ``grouped-deblur``, with that photo alone; ``grouped-pair``
  with the pixels the fit held out, as the default restore gives it); its seconds are the fit's
  plus the refinement's.

PSNR in the paper's convention for deblurring (Y of 8-bit-rounded RGB) on the whole crop and its
interior (the kernel's reach, 12 px, left out of each side), and the standard convention (RGB,
clipped) on the whole crop; the fit's image beside the result when a refinement ran; wall seconds.
One row per image, crop and variant appended to ROWS (resumable); ``--ensemble K`` fits K members
(``linr.restore``'s ``ensemble``) and says so in its rows (keep them in a rows file of their own). ``--table ROWS`` prints them.

    nice .venv/bin/python benchmarks/joint_blur_noise.py deblur/parrots deblur/butterfly \\
        deblur/leaves deblur/starfish --crop 96 --threads 1 --rows benchmarks/joint_blur_noise.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

VARIANTS = ("noisy", "blurred", "joint", "joint-reflect", "joint-free")
ROWS = ""  # the rows file (a refined variant reads its fit's seconds there)
UNBLENDED = "grouped-pair-unblended"
"""A refiner name of the variants only: ``grouped-pair`` without held-out pixels (no blend), as
tiles got it before the thirty-second session."""


def photos(spec: str, crop: int, sigma: float, data: Path,
           photons: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The clean crop, its blurred photo (the scene's), its noisy photo and the kernel. With
    ``photons``, the noisy photo is photon noise instead: counts ``Poisson(photons * clean)`` (seed
    1) over ``photons``, clipped at white as an image file is."""
    from deblur_refine import scene
    from linr.bench.common import centre_crop
    from linr.simulate import add_gaussian_noise

    whole, blurred_whole, kernel, _ = scene(spec, None, data)
    if crop > min(whole.shape[:2]) - (kernel.shape[0] - 1):
        raise SystemExit(f"--crop {crop}: at most {min(whole.shape[:2]) - kernel.shape[0] + 1} px of {spec}")
    clean = np.ascontiguousarray(centre_crop(whole, crop)[0])
    blurred = np.ascontiguousarray(centre_crop(blurred_whole, crop)[0])
    if photons:
        counts = np.random.default_rng(1).poisson(photons * np.clip(clean, 0.0, 1.0))
        noisy = np.clip(counts / photons, 0.0, 1.0).astype(np.float32)
    else:
        noisy = add_gaussian_noise(clean, sigma, seed=1).astype(np.float32)
    return clean, blurred, noisy, kernel


def run(spec: str, crop: int, sigma: float, variant: str, data: Path, threads: int | None,
        steps: int | None = None, cache: Path | None = None, photons: float | None = None,
        tile: str | None = None, ensemble: int = 1) -> dict:
    import torch

    import linr
    from linr.metrics import evaluate

    if threads:
        torch.set_num_threads(threads)
    clean, blurred, noisy, kernel = photos(spec, crop, sigma, data, photons)
    sigma = None if photons else sigma  # the rows of a photon-noise photo have photons, no sigma
    reach = kernel.shape[0] // 2
    inside = np.s_[reach:-reach, reach:-reach]

    def scores(image: np.ndarray) -> dict:
        return {"whole": round(evaluate(clean, image, convention="paper", task="deblur")["psnr"], 4),
                "interior": round(evaluate(clean[inside], image[inside], convention="paper", task="deblur")["psnr"], 4),
                "rgb": round(evaluate(clean, image, convention="standard")["psnr"], 4)}

    fitted, _, refiner = variant.partition("+")
    boundary = {"joint-reflect": "reflect", "joint-free": "free"}.get(fitted)
    short = linr.noisy(noisy, noise="poisson") if photons else linr.noisy(noisy)  # its peak estimated, as a user's
    observations = [short, linr.blurred(blurred, kernel, boundary=boundary)]
    observations = {"noisy": observations[:1], "blurred": observations[1:]}.get(fitted, observations)
    if refiner:
        return {**refined_row(spec, crop, sigma, variant, observations, scores, cache, photons, tile),
                "photons": photons, "tile": tile}
    options = {"steps": steps} if steps else {}
    if ensemble > 1:
        options["ensemble"] = ensemble
    if tile:
        options["tile"] = tile
    if boundary is not None:
        options["refine"] = "none"  # the fit alone
    t0 = time.perf_counter()
    result = linr.restore(observations, device="cpu", progress=False, **options)
    seconds = time.perf_counter() - t0
    if cache is not None:  # the fit's images, for refinements tried after it
        cache.mkdir(parents=True, exist_ok=True)
        extended = {} if result.extended_image is None else {"extended": result.extended_image}
        kept = variant if ensemble == 1 else f"{variant}-ensemble{ensemble}"
        np.savez_compressed(cache_file(cache, spec, crop, sigma, kept, photons, tile),
                            fit=result.image if result.fitted_image is None else result.fitted_image,
                            image=result.image, **extended)
    s = result.settings
    def blurs(op: dict) -> list[dict]:
        return [op] if op.get("name") == "blur" else [b for o in op.get("operators", []) for b in blurs(o)]

    blur = [b for o in s["observations"] for b in blurs(o["operator"])]
    refined = result.fitted_image is not None and result.fitted_image is not result.image
    return {"image": spec, "crop": crop, "sigma": sigma, "photons": photons, "variant": variant, "noise_seed": 1,
            "blur_noise_seed": 0, "boundary": blur[0].get("boundary") if blur else None, "steps": s["steps"], "schedule": s.get("schedule"),
            "steps_run": result.steps_run, "stop_step": result.stop_step, "stop": s.get("stop"),
            "weights": [o.get("weight") for o in s["observations"]],
            "refine": (s.get("refine") or {}).get("name"), "threads": torch.get_num_threads(), "tile": tile,
            "tiles": len(s.get("tiles") or []) or None, "refine_settings": {k: v for k, v in (s.get("refine") or {}).items()
                                                                            if k != "solved"} or None,
            "seconds": round(seconds, 1), "fit": scores(result.fitted_image) if refined else None,
            "result": scores(result.image), **({"ensemble": ensemble} if ensemble > 1 else {})}


def refined_row(spec: str, crop: int, sigma: float | None, variant: str, observations: list, scores, cache: Path | None,
                photons: float | None = None, tile: str | None = None) -> dict:
    """The row of ``JOINT+REFINER``: the joint fit kept in ``cache`` refined by REFINER."""
    import json

    from linr.refine import REFINERS, refine_image
    from linr.stopping import holdout_rule
    from linr.tasks import plan_restore

    fitted, _, refiner = variant.partition("+")
    saved = None if cache is None else cache_file(cache, spec, crop, sigma, fitted, photons, tile)
    if saved is None or not saved.exists():
        raise SystemExit(f"{variant}: run {fitted} with --cache first ({saved} is missing)")
    z = np.load(saved)
    base = [r for r in map(json.loads, open(ROWS)) if (r["image"], r["crop"], r["sigma"], r.get("photons"), r.get("tile"),
                                                       r["variant"]) == (spec, crop, sigma, photons, tile, fitted)] if ROWS and Path(ROWS).exists() else []
    blend = refiner != UNBLENDED
    refiner = "grouped-pair" if refiner == UNBLENDED else refiner
    takes = REFINERS[refiner].takes  # a refiner of one photo gets that photo (the joint fit its pilot)
    held = None
    if takes == "noisy+blurred" and blend:  # the pixels the joint fit held out (its automatic stop's), to blend by
        plan = plan_restore(observations, refine="none", tile=tile or "auto")
        if plan.grid is not None:  # those no tile trained on, as a tiled restore finds them
            from linr.tasks import resolve_stop
            from linr.tiling import tiled_held_out

            held = tiled_held_out(plan.obs, plan.grid, lambda part: resolve_stop(part))
        else:
            rule = holdout_rule(plan.rule)
            rule.prepare(list(plan.obs))
            held = rule.held_out_masks()
    observations = {"blurred": observations[1:], "noisy": observations[:1]}.get(takes, observations)
    t0 = time.perf_counter()
    image, done = refine_image(refiner, z["fit"], observations, held,
                               extension=z["extended"] if "extended" in z.files else None)
    seconds = time.perf_counter() - t0
    return {"image": spec, "crop": crop, "sigma": sigma, "variant": variant, "noise_seed": 1, "blur_noise_seed": 0,
            "refine": refiner, "refine_settings": {k: v for k, v in done.items() if k != "solved"},
            "refine_seconds": round(seconds, 1),
            "seconds": round(seconds + (base[0]["seconds"] if base else float("nan")), 1),
            "fit": scores(z["fit"]), "result": scores(image)}


def cache_file(cache: Path, spec: str, crop: int, sigma: float | None, variant: str, photons: float | None = None,
               tile: str | None = None) -> Path:
    noise = f"{sigma:g}" if not photons else f"p{photons:g}"
    tiles = f"_tile{tile}" if tile else ""
    return cache / f"{spec.replace('/', '_')}_{crop}_{noise}{tiles}_{variant}.npz"


def _noise(row: dict) -> str:
    """A row's short exposure: 'sigma S' or 'P photons'."""
    return f"{row['photons']:g} photons" if row.get("photons") else f"sigma {row['sigma']:g}"


def table(rows: list[dict], against: list[dict] | None = None) -> str:
    """One line per image: each variant's result (whole / interior, Y) and, for the mean, RGB."""
    variants = list(dict.fromkeys(r["variant"] for r in rows))
    images = list(dict.fromkeys((r["image"], r["crop"], _noise(r)) for r in rows))
    cell = {(r["image"], r["crop"], _noise(r), r["variant"]): r for r in rows}
    out = ["| image | crop | noise | " + " | ".join(f"{v}: whole / interior (RGB) [s]" for v in variants) + " |",
           "|---|---|---|" + "---|" * len(variants)]
    for key in images:
        cells = []
        for v in variants:
            r = cell.get((*key, v))
            cells.append("-" if r is None else f"{r['result']['whole']:.2f} / {r['result']['interior']:.2f} "
                         f"({r['result']['rgb']:.2f}) [{r['seconds']:.0f}]")
        out.append(f"| {key[0]} | {key[1]} | {key[2]} | " + " | ".join(cells) + " |")
    complete = [k for k in images if all((*k, v) in cell for v in variants)]
    if complete:
        means = []
        for v in variants:
            rs = [cell[(*k, v)]["result"] for k in complete]
            means.append(f"**{np.mean([r['whole'] for r in rs]):.2f}** / {np.mean([r['interior'] for r in rs]):.2f} "
                         f"({np.mean([r['rgb'] for r in rs]):.2f}) "
                         f"[{np.mean([cell[(*k, v)]['seconds'] for k in complete]):.0f}]")
        out.append(f"| mean ({len(complete)}) | | | " + " | ".join(means) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help="FOLDER/NAME of the shared data (deblur/leaves)")
    parser.add_argument("--crop", type=int, default=96, help="the centre crop's side")
    parser.add_argument("--sigma", type=float, default=25.0, help="the noisy photo's noise std (0-255 scale)")
    parser.add_argument("--photons", type=float, help="the noisy photo's photon noise instead: photons of a white "
                        "pixel (its peak estimated by linr, as a user's would be)")
    parser.add_argument("--tile", help="restore in tiles (linr.restore's tile=, e.g. 112): the fits and the "
                        "refinements' held-out pixels (those no tile trained on)")
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    parser.add_argument("--rows", help="rows file (JSONL), appended and resumed")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--steps", type=int, help="a step budget instead of the default's (a smoke test only)")
    parser.add_argument("--ensemble", type=int, default=1, help="fit that many members (linr.restore's ensemble=); "
                        "not with a refined variant (JOINT+REFINER)")
    parser.add_argument("--cache", type=Path, help="a folder to keep each fit's images in (.npz)")
    parser.add_argument("--table", help="print a rows file as a markdown table")
    args = parser.parse_args(argv)
    from linr.bench.common import resume_rows, table_or_rows

    if table_or_rows(args, table, parser):
        return 0
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    from linr.refine import REFINERS

    unknown = sorted(v for v in variants if "+" in v and (v.partition("+")[0] not in ("joint-reflect", "joint-free")
                                                        or v.partition("+")[2] not in (*REFINERS, UNBLENDED))
                     or "+" not in v and v not in VARIANTS)
    if unknown:
        parser.error(f"--variants: unknown {', '.join(unknown)} (known: {', '.join(VARIANTS)}, joint-reflect|joint-free+REFINER)")
    if args.ensemble > 1 and any("+" in v for v in variants):
        parser.error("--ensemble: the refined variants (JOINT+REFINER) refine one cached fit, not an ensemble")
    global ROWS
    ROWS = args.rows
    from linr.bench import data_dir

    data = data_dir(None)
    sigma = None if args.photons else args.sigma
    resume_rows(args.rows, lambda r: (r["image"], r["crop"], r["sigma"], r.get("photons"), r.get("tile"), r["variant"],
                                      r.get("ensemble", 1)),
                [((spec, args.crop, sigma, args.photons, args.tile, v, args.ensemble),
                  lambda spec=spec, v=v: run(spec, args.crop, args.sigma, v, data, args.threads, args.steps, args.cache,
                                             args.photons, args.tile, args.ensemble))
                 for spec in args.images for v in variants])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
