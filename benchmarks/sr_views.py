"""#15 SR x4: the ``grouped-views`` refinement (plug-and-play: grouped filtering and the projection
onto the low-res view, 20 passes) against the fit alone and the projection alone, on the same fits.

For each image: Table 2's observation (the image cropped to a multiple of 4, its x4 view made by
``linr.simulate.lanczos_downscale``, as ``linr bench`` makes it; ``--crop N``: a centre crop of N
px first), the default fit of one low-res view (the paper's network and 500 steps, no
refinement by default), then ``project`` and ``grouped-views`` applied to that one fit
(:func:`linr.refine.refine_image`): PSNR in the paper's convention (RGB, unclipped, data range 1)
and the standard one, and wall seconds (one thread). ``--cache DIR`` keeps each fit (.npz) so
that a rerun refines again without refitting. One row per image appended to ROWS (resumable).

    .venv/bin/python benchmarks/sr_views.py set5/woman set5/head --rows benchmarks/sr_views.jsonl \\
        --cache /tmp/sr_cache

``--tile SIZE[:OVERLAP]`` fits in tiles (the rows and the cached fit record it): the refinements
are then applied to a tiled fit's image (the defaults refine tiled SR since the twenty-third
session, on this evidence; before, they returned it unrefined).

``--table ROWS`` prints a rows file as a markdown table (BENCHMARKS.md's).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

REFINES = ("project", "grouped-views")


def scene(spec: str, crop: int | None, data: Path, factor: int = 4) -> tuple[np.ndarray, list, str]:
    """The clean image (cropped to a multiple of ``factor``), its low-res observation at that
    factor and the name of its fit in a cache folder."""
    from linr.bench.common import centre_crop
    from linr.images import read_image
    from linr.kinds import KINDS
    from linr.simulate import crop_to_multiple

    folder, name = spec.split("/")
    clean = read_image(data / folder / f"{name}.png")[0][..., :3].astype(np.float32)
    clean = np.ascontiguousarray(crop_to_multiple(centre_crop(clean, crop)[0], factor))
    params = {"factor": factor}
    low = KINDS["lowres"].simulation.make(clean, params, None)["image"]
    return clean, [KINDS["lowres"].simulation.observe({}, low, params)], f"{spec.replace('/', '_')}_{crop or 'full'}_x{factor}.npz"


def fitted_row(spec: str, crop: int | None, data: Path, cache: Path | None, tile: str | None = None,
               factor: int = 4, device: str = "cpu") -> tuple[list, np.ndarray, Callable[[np.ndarray], dict], dict]:
    """The observation, the default fit of it on ``device`` (from the cache folder when kept
    there: then wherever it was made), a function giving an image's PSNR in both conventions, and
    the row's first fields (shared with ``benchmarks/sr_examples.py``)."""
    from linr.bench.common import cached_fit, fit_made_on, processor_of
    from linr.metrics import evaluate
    from linr.tasks import restore

    clean, obs, cached = scene(spec, crop, data, factor)
    if tile:
        cached = cached.replace(".npz", f"_tile{tile.replace(':', '-')}.npz")
    saved = cache / cached if cache else None
    # the fit alone (the default refines since the twenty-second session)
    fit, fit_s = cached_fit(saved, lambda: restore(obs, refine="none", device=device, progress=False,
                                                   **({"tile": tile} if tile else {})).image,
                            made_on=processor_of(device))

    def scores(image: np.ndarray) -> dict:
        return {c: round(evaluate(clean, image, convention=c)["psnr"], 4) for c in ("paper", "standard")}

    row = {"image": spec, "size": list(clean.shape[:2]), "crop": crop, "factor": factor, **({"tile": tile} if tile else {}),
           "fit_seconds": round(fit_s, 1), "fit": scores(fit),
           **({"fit_made_on": made} if (made := fit_made_on(saved)) else {})}
    return obs, fit, scores, row


def run(spec: str, crop: int | None, data: Path, cache: Path | None, tile: str | None = None) -> dict:
    obs, fit, scores, row = fitted_row(spec, crop, data, cache, tile)
    return refined_row(row, REFINES, fit, obs, scores)


def refined_row(row: dict, refines: tuple[str, ...], fit: np.ndarray, obs: list,
                scores: Callable[[np.ndarray], dict]) -> dict:
    """``row`` with each refiner's scores, seconds and report (:func:`linr.refine.refine_image` of ``fit``)."""
    from linr.refine import refine_image

    for refine in refines:
        t0 = time.perf_counter()
        image, done = refine_image(refine, fit, obs)
        row[refine] = {**scores(image), "seconds": round(time.perf_counter() - t0, 1), "report": done}
    return row


def table(rows: list[dict]) -> str:
    out = ["| image | size | fit (the default until the twenty-first session) | project | grouped-views (the default since the twenty-second) | difference to the fit | "
           "seconds (wall, one thread): fit, grouped-views |", "|---|---|---:|---:|---:|---:|---|"]
    for r in rows:
        name = f"{r['image']} (tiles {r['tile']})" if r.get("tile") else r["image"]
        out.append(f"| {name} | {r['size'][0]}x{r['size'][1]} | {r['fit']['paper']:.2f} | "
                   f"{r['project']['paper']:.2f} | {r['grouped-views']['paper']:.2f} | "
                   f"{r['grouped-views']['paper'] - r['fit']['paper']:+.2f} | "
                   f"{r['fit_seconds']:.0f}, {r['grouped-views']['seconds']:.0f} |")
    if rows:
        mean = lambda k: np.mean([r[k]["paper"] for r in rows])
        out.append(f"| mean ({len(rows)}) | | {mean('fit'):.2f} | {mean('project'):.2f} | {mean('grouped-views'):.2f} | "
                   f"{mean('grouped-views') - mean('fit'):+.2f} | |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from linr.bench.common import refine_probe_main

    return refine_probe_main(argv, __doc__, "FOLDER/NAME of the shared data (set5/woman, set9/house)", run, table, tiles=True)


if __name__ == "__main__":
    sys.exit(main())
