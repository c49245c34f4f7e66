"""#15 deblurring: the ``grouped-deblur`` refinement (plug-and-play: grouped filtering and the data
step of the blurred photo, at a falling level) after the default fit, against the fit alone, and
the same refinement started from Wiener deconvolution instead of the fit (what the fit adds).

For each image: Table 4's observation (the image, ``--crop N``: a centre crop of N px first,
blurred circularly by the 25 x 25 Gaussian kernel of sigma 1.6 with noise of std sqrt(2)/255,
noise seed 0, :func:`linr.simulate.blur_image`), the default fit of that one blurred photo (the
paper's network and 4000 steps; the blur's boundary circular, as the photo was made), then
``grouped-deblur`` at each ``--schedule PASSES:START:END`` (the refiner's default first) from the
fit's image and from scikit-image's Wiener deconvolution (:func:`linr.baselines.classical.wiener_deblur`):
PSNR in the paper's convention (Y channel of 8-bit-rounded RGB) and the standard one (RGB,
clipped), and wall seconds (one thread). ``--cache DIR`` keeps each fit (.npz) so that a rerun
refines again without refitting. One row per image appended to ROWS (resumable).

    .venv/bin/python benchmarks/deblur_refine.py set9/house set9/kodim01 --crop 128 \\
        --rows benchmarks/deblur_refine_tune.jsonl --cache /tmp/deblur_cache

``--table ROWS`` prints a rows file as a markdown table (BENCHMARKS.md's).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

SCHEDULES: list[tuple[int, float, float]] = []
"""Extra (passes, start, end) schedules of ``grouped-deblur``, from ``--schedule``."""


def scene(spec: str, crop: int | None, data: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The clean image, its blurred photo, the kernel and the name of its fit in a cache folder."""
    from linr.bench.common import centre_crop
    from linr.bench.spec import BLUR
    from linr.images import read_image
    from linr.operators import gaussian_kernel
    from linr.simulate import blur_image

    folder, name = spec.split("/")
    clean = read_image(data / folder / f"{name}.png")[0][..., :3].astype(np.float32)
    clean = np.ascontiguousarray(centre_crop(clean, crop)[0])
    kernel = gaussian_kernel(*BLUR)
    return clean, blur_image(clean, kernel, seed=0), kernel, f"{spec.replace('/', '_')}_{crop or 'full'}_deblur.npz"


def run(spec: str, crop: int | None, data: Path, cache: Path | None) -> dict:
    from linr.baselines.classical import wiener_deblur
    from linr.kinds import blurred
    from linr.bench.common import cached_fit
    from linr.metrics import evaluate
    from linr.refine import GroupedDeblur, refine_image
    from linr.tasks import restore

    clean, photo, kernel, cached = scene(spec, crop, data)
    obs = [blurred(photo, kernel, boundary="circular")]
    saved = cache / cached if cache else None
    fit, fit_s = cached_fit(saved, lambda: restore(obs, refine="none", device="cpu", progress=False).image)  # the fit alone

    def scores(image: np.ndarray) -> dict:
        return {"paper": round(evaluate(clean, image, convention="paper", task="deblur")["psnr"], 4),
                "standard": round(evaluate(clean, image, convention="standard")["psnr"], 4)}

    wiener = wiener_deblur(photo, kernel).image
    row = {"image": spec, "size": list(clean.shape[:2]), "crop": crop, "noise_seed": 0,
           "fit_seconds": round(fit_s, 1), "fit": scores(fit), "wiener": scores(wiener)}
    t0 = time.perf_counter()
    image, done = refine_image("grouped-deblur", fit, obs)
    row["grouped-deblur"] = {**scores(image), "seconds": round(time.perf_counter() - t0, 1), "report": done}
    sigma = done["sigma"] / 255.0
    default = GroupedDeblur()
    for passes, start, end in [(default.passes, default.start, default.end), *SCHEDULES]:
        key = f"{passes}:{start:g}:{end:g}"
        refiner = GroupedDeblur(passes, start, end)
        out = {}
        for name, begin in (("fit", fit), ("wiener", wiener)):
            if name == "fit" and key == _default_key(row):  # the refinement above
                out[name] = {k: row["grouped-deblur"][k] for k in ("paper", "standard", "seconds")}
                continue
            t0 = time.perf_counter()
            refined = refiner(begin, photo, obs[0].operator, sigma)
            out[name] = {**scores(refined), "seconds": round(time.perf_counter() - t0, 1)}
        row.setdefault("schedules", {})[key] = out
    return row


def table(rows: list[dict]) -> str:
    keys = sorted({k for r in rows for k in r.get("schedules", {})},
                  key=lambda k: tuple(float(v) for v in k.split(":")))
    out = ["| image | size | Wiener | fit (the default) | grouped-deblur from the fit | difference to the fit | "
           + " | ".join(f"{k} from the fit / from Wiener" for k in keys) + " | seconds (wall, one thread): fit, refinement |",
           "|---|---|---:|---:|---:|---:|" + "---:|" * len(keys) + "---|"]
    for r in rows:
        cells = []
        for k in keys:
            s = r.get("schedules", {}).get(k, {})
            cells.append(f"{s['fit']['paper']:.2f} / {s['wiener']['paper']:.2f}" if s else "-")
        out.append(f"| {r['image']} | {r['size'][0]}x{r['size'][1]} | {r['wiener']['paper']:.2f} | {r['fit']['paper']:.2f} | "
                   f"{r['grouped-deblur']['paper']:.2f} | {r['grouped-deblur']['paper'] - r['fit']['paper']:+.2f} | "
                   + " | ".join(cells) + f" | {r['fit_seconds']:.0f}, {r['grouped-deblur']['seconds']:.0f} |")
    if rows:
        mean = lambda get: np.mean([get(r) for r in rows])
        out.append(f"| mean ({len(rows)}) | | {mean(lambda r: r['wiener']['paper']):.2f} | {mean(lambda r: r['fit']['paper']):.2f} | "
                   f"{mean(lambda r: r['grouped-deblur']['paper']):.2f} | "
                   f"{mean(lambda r: r['grouped-deblur']['paper'] - r['fit']['paper']):+.2f} |" + " |" * (len(keys) + 1))
    return "\n".join(out)


def _default_key(row: dict) -> str:
    report = row["grouped-deblur"]["report"]
    return f"{report['passes']}:{report['sigmas'][0]:g}:{report['sigmas'][1]:g}"


def main(argv: list[str] | None = None) -> int:
    from linr.bench.common import refine_probe_main

    argv = list(sys.argv[1:] if argv is None else argv)
    while "--schedule" in argv:
        at = argv.index("--schedule")
        passes, start, end = argv[at + 1].split(":")
        SCHEDULES.append((int(passes), float(start), float(end)))
        del argv[at:at + 2]
    return refine_probe_main(argv, __doc__, "FOLDER/NAME of the shared data (set9/house, deblur/parrots)", run, table)


if __name__ == "__main__":
    sys.exit(main())
