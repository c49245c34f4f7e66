"""#15 inpainting: the ``grouped-fill`` refinement against ``biharmonic`` (the default of the
fourteenth to twentieth sessions) on the same fits.

For each image: the mask of ``linr bench`` Table 3 (Bernoulli, keep 0.1, the bench's seed for that
image; ``--crop N``: a centre crop of N px first, mask seed 7), the default fit of one photo with
missing pixels (SIREN 7x256, the ``pick`` stop rule :data:`linr.stopping.AUTO_BLENDED`, which holds
5% of the observed pixels out), then each refinement of that one fit on the same held-out pixels
(:func:`linr.refine.refine_image`): PSNR in the paper's convention (RGB, unclipped, data range 1)
and the standard one (clipped), seconds, and what each refinement chose. ``--cache DIR`` keeps
each fit (its image and held-out pixels, .npz) so that a rerun refines again without refitting.
One row per image appended to ROWS (resumable: images already in ROWS are skipped). One thread.

    .venv/bin/python benchmarks/inpaint_fill.py set5/woman set5/head inpaint/kate \\
        --rows benchmarks/inpaint_fill.jsonl --cache /tmp/fill_cache

``--table ROWS`` prints a rows file as a markdown table (BENCHMARKS.md's).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

REFINES = ("biharmonic", "grouped-fill")


def scene(spec: str, crop: int | None, data: Path) -> tuple[np.ndarray, np.ndarray, int]:
    from linr.bench.common import centre_crop, corruption_seed
    from linr.images import read_image
    from linr.simulate import bernoulli_mask

    folder, name = spec.split("/")
    clean = read_image(data / folder / f"{name}.png")[0][..., :3].astype(np.float32)
    clean, _ = centre_crop(clean, crop)
    seed = 7 if crop else corruption_seed(0, "masked", name)  # Table 3's mask at full size
    return np.ascontiguousarray(clean), bernoulli_mask(clean.shape[:2], 0.1, seed=seed) > 0.5, seed


def run(spec: str, crop: int | None, data: Path, cache: Path | None) -> dict:
    from linr.kinds import masked
    from linr.metrics import evaluate
    from linr.models import ModelConfig
    from linr.refine import refine_image
    from linr.tasks import held_out_pixels, resolve_stop, restore

    clean, mask, seed = scene(spec, crop, data)
    obs = [masked(clean * mask[..., None], mask)]
    saved = cache / f"{spec.replace('/', '_')}_{crop or 'full'}.npz" if cache else None
    if saved is not None and saved.exists():
        z = np.load(saved)
        fit, held, fit_s, stop = z["fit"], z["held"], float(z["seconds"]), int(z["stop"])
    else:
        rule = resolve_stop(obs, refine="biharmonic")  # the default's rule for this photo
        t0 = time.perf_counter()
        # the paper's network (omega_0 30): the default's until the twenty-third session, that of these rows
        result = restore(obs, stop=rule, refine="none", device="cpu", progress=False, model=ModelConfig())
        fit_s, fit, stop = time.perf_counter() - t0, result.image, int(result.stop_step)
        held = held_out_pixels(rule)[0]
        if saved is not None:
            saved.parent.mkdir(parents=True, exist_ok=True)
            np.savez(saved, fit=fit, held=held, seconds=fit_s, stop=stop)

    def scores(image: np.ndarray) -> dict:
        return {c: round(evaluate(clean, image, convention=c)["psnr"], 4) for c in ("paper", "standard")}

    row = {"image": spec, "size": list(clean.shape[:2]), "crop": crop, "mask_seed": seed, "stop_step": stop,
           "fit_seconds": round(fit_s, 1), "held_out": int(held.sum()), "fit": scores(fit)}
    for name in REFINES:
        t0 = time.perf_counter()
        image, done = refine_image(name, fit, obs, [held])
        row[name] = {**scores(image), "seconds": round(time.perf_counter() - t0, 1), "report": done}
    return row


def table(rows: list[dict]) -> str:
    out = ["| image | size | fit (step picked) | biharmonic (the default before) | grouped-fill | difference | "
           "weights fit / biharmonic / filled | seconds (wall, one thread): fit, biharmonic, grouped-fill |",
           "|---|---|---:|---:|---:|---:|---|---|"]
    for r in rows:
        w = r["grouped-fill"]["report"].get("weights", {})
        out.append(f"| {r['image']} | {r['size'][0]}x{r['size'][1]} | {r['fit']['paper']:.2f} ({r['stop_step']}) | "
                   f"{r['biharmonic']['paper']:.2f} | {r['grouped-fill']['paper']:.2f} | "
                   f"{r['grouped-fill']['paper'] - r['biharmonic']['paper']:+.2f} | "
                   f"{' / '.join(f'{v:.2f}' for v in w.values()) or '-'} | "
                   f"{r['fit_seconds']:.0f}, {r['biharmonic']['seconds']:.0f}, {r['grouped-fill']['seconds']:.0f} |")
    if rows:
        mean = lambda k: np.mean([r[k]["paper"] for r in rows])
        out.append(f"| mean ({len(rows)}) | | {mean('fit'):.2f} | {mean('biharmonic'):.2f} | "
                   f"{mean('grouped-fill'):.2f} | {mean('grouped-fill') - mean('biharmonic'):+.2f} | | |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    from linr.bench.common import refine_probe_main

    return refine_probe_main(argv, __doc__, "FOLDER/NAME of the shared data (set5/woman, inpaint/kate)", run, table)


if __name__ == "__main__":
    sys.exit(main())
