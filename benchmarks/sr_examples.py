"""#15 SR x4: ``grouped-views-examples`` (the mean of the fit, its ``grouped-views`` refinement and
the view upscaled by a CNN learnt from the view's own smaller copies, projected onto the view)
against ``grouped-views`` alone (the default since the twenty-second session), on the same fits.

For each image: Table 2's observation as ``benchmarks/sr_views.py`` makes it (cropped to a
multiple of 4, x4 by ``linr.simulate.lanczos_downscale``; ``--crop N`` a centre crop first), the
default fit of one low-res view (the paper's network and 500 steps; ``--cache DIR`` shares
``sr_views.py``'s cached fits), then both refiners (:func:`linr.refine.refine_image`) and the
learnt image alone, projected: PSNR in the paper's convention (RGB, unclipped, data range 1) and
the standard one, wall seconds (one thread). One row per image appended to ROWS (resumable).

    .venv/bin/python benchmarks/sr_examples.py set9/house set9/peppers --crop 256 \\
        --rows benchmarks/sr_examples_tune.jsonl --cache /tmp/sr_cache

``--factor F`` another factor than 4 (the cached fits and the rows say which); ``--device cuda``
fits there (the refinements stay on the CPU); ``--fit-only`` fits into the cache and stops, so that
a GPU can make the fits and this CPU refine them (the fortieth session's x2 and x8 rows):

    benchmarks/gpu_sr_fits.sh                      # on a lent GPU: the fits, as tar files
    .venv/bin/python benchmarks/sr_examples.py set5/bird --factor 8 --cache FITS --rows ROWS

``--table ROWS`` prints a rows file as a markdown table (BENCHMARKS.md's).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from sr_views import fitted_row, refined_row  # noqa: E402


def run(spec: str, crop: int | None, data: Path, cache: Path | None, factor: int = 4, device: str = "cpu",
        fit_only: bool = False) -> dict | None:
    from linr.internal import learn_from_own_copies
    from linr.projection import project_onto_views
    obs, fit, scores, row = fitted_row(spec, crop, data, cache, factor=factor, device=device)
    if fit_only:
        return None
    t0 = time.perf_counter()
    learnt, info = learn_from_own_copies(obs[0].image, obs[0].operator)
    row["learnt alone"] = {**scores(project_onto_views(learnt, obs)[0]), "seconds": round(time.perf_counter() - t0, 1),
                           "report": info}
    return refined_row(row, ("grouped-views", "grouped-views-examples"), fit, obs, scores)


def table(rows: list[dict]) -> str:
    out = ["| image | size | fit | learnt alone (projected) | grouped-views | grouped-views-examples | difference | "
           "seconds (one thread): grouped-views, grouped-views-examples |", "|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        name = f"{r['image']} ({r['crop']}-px crop)" if r.get("crop") else r["image"]
        name += f", x{r['factor']}" if r.get("factor", 4) != 4 else ""
        gv, gve = r["grouped-views"], r["grouped-views-examples"]
        out.append(f"| {name} | {r['size'][0]}x{r['size'][1]} | {r['fit']['paper']:.2f} | {r['learnt alone']['paper']:.2f} | "
                   f"{gv['paper']:.2f} | {gve['paper']:.2f} | {gve['paper'] - gv['paper']:+.2f} | "
                   f"{gv['seconds']:.0f}, {gve['seconds']:.0f} |")
    if rows:
        mean = lambda k: np.mean([r[k]["paper"] for r in rows])  # noqa: E731
        out.append(f"| mean ({len(rows)}) | | {mean('fit'):.2f} | {mean('learnt alone'):.2f} | {mean('grouped-views'):.2f} | "
                   f"{mean('grouped-views-examples'):.2f} | {mean('grouped-views-examples') - mean('grouped-views'):+.2f} | |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from linr.bench.common import refine_probe_main

    return refine_probe_main(argv, __doc__, "FOLDER/NAME of the shared data (set5/woman, set9/house)", run, table,
                             sr=True)


if __name__ == "__main__":
    sys.exit(main())
