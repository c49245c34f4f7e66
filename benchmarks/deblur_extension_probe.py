"""#15 deblurring a real photo: what the free-edged ``grouped-deblur`` makes of an extended fit.

An extended fit (``deblur_refine.py --scene --extended``) renders the photo's frame plus the
blur kernel's reach on every side. Its frame is the restored image; its pixels beyond the frame
are its estimate of the scene there. For each image, from that fit's cached image (the
``--cache DIR`` of ``deblur_refine.py``, the run named by ``--fit``), PSNR (paper convention: Y of
the 8-bit-rounded RGB) of the whole crop and of its interior (the kernel's reach, 12 px, left out
on every side) of:

- ``fit``: the extended fit's frame alone;
- ``mirrored``: ``grouped-deblur`` with free edges, whose data steps draw the pixels beyond the
  frame to the estimate mirrored (the library's default);
- ``band N``: ``mirrored`` inside and the fit in the N-px border band (a hard switch);
- ``extension``: ``grouped-deblur`` with free edges, whose data steps draw the pixels beyond the
  frame to the fit's own (:func:`linr.deconvolution.explain_blurred`'s ``extension``).

No fit is run: an image whose cached fit is missing is an error naming the command that makes it.

    .venv/bin/python benchmarks/deblur_extension_probe.py --cache DIR \\
        set9/house set9/kodim03 deblur/parrots deblur/butterfly deblur/leaves deblur/starfish

``--fit`` names the cached run (default ``extended_lr-cosine_steps2000``: ``--scene --extended
--lr-schedule cosine --steps 2000``); ``--crop`` its crop (default 96); ``--tune N``: the first N
images are tune images (the band was chosen on them), the rest report images (default 2).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

BANDS = (6, 12)


def probe(spec: str, crop: int, cache: Path, fit_name: str, data: Path) -> dict[str, tuple[float, float]]:
    import deblur_refine

    from linr.bench.common import centre_crop
    from linr.kinds import blurred
    from linr.metrics import evaluate
    from linr.noise import floored_noise_sigma
    from linr.refine import GroupedDeblur

    saved = cache / f"{spec.replace('/', '_')}_{crop}_scene_{fit_name}.npz"
    if not saved.exists():
        raise SystemExit(f"{saved}: no cached fit; make it with benchmarks/deblur_refine.py --scene "
                         f"--extended ... {spec} --crop {crop} --cache {cache}")
    whole, blurred_whole, kernel, _ = deblur_refine.scene(spec, None, data)
    clean = np.ascontiguousarray(centre_crop(whole, crop)[0])
    photo = np.ascontiguousarray(centre_crop(blurred_whole, crop)[0])
    extended = np.load(saved)["fit"]
    kh, kw = kernel.shape
    top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
    fit = extended[top:top + crop, left:left + crop]
    operator = blurred(photo, kernel).operator
    sigma = floored_noise_sigma(photo)
    reach = kh // 2
    inside = np.s_[reach:-reach, reach:-reach]

    def scores(image: np.ndarray) -> tuple[float, float]:
        return (evaluate(clean, image, convention="paper", task="deblur")["psnr"],
                evaluate(clean[inside], image[inside], convention="paper", task="deblur")["psnr"])

    mirrored = GroupedDeblur(edges="free")(fit, photo, operator, sigma)
    out = {"fit": scores(fit), "mirrored": scores(mirrored)}
    for band in BANDS:
        switched = mirrored.copy()
        edge = np.ones(fit.shape[:2], bool)
        edge[band:-band, band:-band] = False
        switched[edge] = fit[edge]
        out[f"band {band}"] = scores(switched)
    out["extension"] = scores(GroupedDeblur(edges="free")(fit, photo, operator, sigma, extension=extended))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", metavar="FOLDER/NAME")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--fit", default="extended_lr-cosine_steps2000")
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--tune", type=int, default=2)
    p.add_argument("--data", type=Path, default=None)
    args = p.parse_args(argv)
    from linr.bench import data_dir

    data = data_dir(args.data)
    rows = [(spec, probe(spec, args.crop, args.cache, args.fit, data)) for spec in args.images]
    names = list(rows[0][1])
    print("| split | image | " + " | ".join(names) + " |")
    print("|---|---|" + "---:|" * len(names))
    for split, chosen in (("tune", rows[:args.tune]), ("report", rows[args.tune:])):
        for spec, r in chosen:
            print(f"| {split} | {spec} {args.crop} px | " + " | ".join(f"{r[n][0]:.2f} / {r[n][1]:.2f}" for n in names) + " |")
        if chosen:
            means = [tuple(float(np.mean([r[n][i] for _, r in chosen])) for i in (0, 1)) for n in names]
            print(f"| {split} | mean ({len(chosen)}) | " + " | ".join(f"{a:.2f} / {b:.2f}" for a, b in means) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
