"""#14: a pilot fitted at half resolution, for a cheaper default denoising restore.

The default restore of one noisy photo fits a SIREN 7x64 pilot to the photo and refines the
photo with it (``grouped``: BM3D's second step with the fit as its pilot); the pilot's fit is
84% of a 512-px restore's time (``benchmarks/profile_default.txt``). Here the pilot comes from
the photo averaged over 2x2 pixels (a quarter of the pixels, half the noise):

- ``default``: ``linr.restore([noisy(y)])``, today's default, for reference;
- ``half-refined``: today's default restore of the half-size photo, upsampled 2x (PIL bicubic,
  pixel centres aligned), as the pilot of the full-size photo's ``grouped`` refinement;
- ``half-model``: the defaults' pilot network fitted to the half-size photo (7x64, learning
  rate 1e-3, TV prior, automatic stop, no refinement), rendered at the full size (pixel edges
  aligned), as that pilot.

PSNR: standard convention (scikit-image, clipped, data range 1) against the clean image; time:
this process's CPU seconds. One thread.

    .venv/bin/python benchmarks/half_pilot_probe.py set9/house:256 set9/kodim01 --sigma 25
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def main() -> None:
    import torch
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    from linr.images import read_image
    from linr.models import ModelConfig
    from linr.refine import refine_image
    from linr.simulate import add_gaussian_noise, pil_resize
    from linr.tasks import noisy, restore
    from linr.bench.common import append_row, commit_id, cpu_name

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="+", help="FOLDER/NAME[:CROP]")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--variants", nargs="+", default=["default", "half-refined", "half-model"])
    p.add_argument("--rows", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)

    def psnr(clean, image):
        return round(float(peak_signal_noise_ratio(clean.astype(np.float64),
                                                   np.clip(image, 0, 1).astype(np.float64), data_range=1.0)), 3)

    for spec in args.images:
        name, _, crop = spec.partition(":")
        clean = read_image(Path(args.data) / f"{name}.png")[0][..., :3]
        if crop:
            c = int(crop)
            h, w = clean.shape[:2]
            clean = clean[(h - c) // 2:(h - c) // 2 + c, (w - c) // 2:(w - c) // 2 + c]
        h, w = (clean.shape[0] // 2) * 2, (clean.shape[1] // 2) * 2
        clean = np.ascontiguousarray(clean[:h, :w])
        y = add_gaussian_noise(clean, args.sigma, seed=0, clip=False).astype(np.float32)
        small = (y[0::2, 0::2] + y[1::2, 0::2] + y[0::2, 1::2] + y[1::2, 1::2]) / 4
        photo = [noisy(y)]
        row = {"image": spec, "sigma": args.sigma, "shape": [h, w], "processor": cpu_name(), "commit": commit_id(),
               "torch": torch.__version__}
        for variant in args.variants:
            c0 = time.process_time()
            if variant == "default":
                result = restore(photo, progress=False)
                out, extra = result.image, {"stop": result.stop_step}
            elif variant == "half-refined":
                half = restore([noisy(small)], progress=False)
                pilot = pil_resize(np.clip(half.image, 0, 1), (h, w), Image.BICUBIC)
                out, _ = refine_image("grouped", pilot, photo)
                extra = {"stop": half.stop_step, "half_psnr_of_pilot": psnr(clean, pilot)}
            elif variant == "half-model":
                half = restore([noisy(small)], progress=False, model=ModelConfig(width=64), lr=1e-3,
                               refine="none", keep_model=True, prior="tv:auto")
                pilot = half.model.render(size=(h, w))  # pixel edges aligned (linr.models.coordinate_axes)
                out, _ = refine_image("grouped", pilot, photo)
                extra = {"stop": half.stop_step, "half_psnr_of_pilot": psnr(clean, pilot)}
            else:
                raise SystemExit(f"unknown variant {variant}")
            cpu = time.process_time() - c0
            row[variant] = {"psnr": psnr(clean, out), "cpu_s": round(cpu, 1), **extra}
            print(spec, variant, row[variant], flush=True)
        print(json.dumps(row), flush=True)
        if args.rows:
            append_row(args.rows, row)


if __name__ == "__main__":
    main()
