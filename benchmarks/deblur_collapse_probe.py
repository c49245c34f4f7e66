"""#15 deblurring a real photo: why the extended fit at a constant learning rate collapsed.

From the cached snapshots of ``deblur_refine.py --scene --extended`` fits (``--cache DIR``; the
images at steps 250, 500, 1000, 2000, 3000 and the last), for each image: the RMS residual of the
photo (0-255 scale) through the blur without padding (``scipy.signal.convolve2d``, 'valid', float64),
the frame's PSNR (paper convention) and its high-frequency content (mean absolute difference of
horizontal neighbours); beside the photo's noise level as :func:`linr.noise.estimate_noise_sigma`
measures it. No fit is run.

    .venv/bin/python benchmarks/deblur_collapse_probe.py --cache DIR set9/house deblur/leaves

``--fit`` names the cached run (default ``extended``: constant rate, 4000 steps), ``--crop`` its
crop (default 96).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("images", nargs="+", metavar="FOLDER/NAME")
    p.add_argument("--cache", type=Path, required=True)
    p.add_argument("--fit", default="extended")
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--data", type=Path, default=None)
    args = p.parse_args(argv)
    from scipy.signal import convolve2d

    import deblur_refine
    from linr.bench import data_dir
    from linr.bench.common import centre_crop
    from linr.metrics import evaluate
    from linr.noise import estimate_noise_sigma

    data = data_dir(args.data)
    print("| image | noise (measured) | step: residual RMS / frame PSNR / high-frequency content |")
    print("|---|---:|---|")
    for spec in args.images:
        saved = args.cache / f"{spec.replace('/', '_')}_{args.crop}_scene_{args.fit}.npz"
        if not saved.exists():
            raise SystemExit(f"{saved}: no cached fit (benchmarks/deblur_refine.py --scene --extended ... --cache)")
        whole, blurred_whole, kernel, _ = deblur_refine.scene(spec, None, data)
        clean = centre_crop(whole, args.crop)[0]
        photo = centre_crop(blurred_whole, args.crop)[0].astype(np.float64)
        z = np.load(saved)
        keys = sorted((k for k in z.files if k.startswith("step") and k[4:].isdigit()), key=lambda k: int(k[4:]))
        kh, kw = kernel.shape
        top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
        cells = []
        for key in [*keys, "fit"]:
            x = z[key].astype(np.float64)
            blurred = np.stack([convolve2d(x[..., c], kernel, mode="valid") for c in range(x.shape[2])], -1)
            residual = float(np.sqrt(np.mean((blurred - photo) ** 2)) * 255)
            frame = x[top:top + args.crop, left:left + args.crop]
            psnr = evaluate(clean, frame.astype(np.float32), convention="paper", task="deblur")["psnr"]
            detail = float(np.abs(np.diff(frame, axis=1)).mean())
            step = key[4:] if key != "fit" else str(int(z["steps"]))
            cells.append(f"{step}: {residual:.2f} / {psnr:.2f} / {detail:.3f}")
        print(f"| {spec} {args.crop} px | {estimate_noise_sigma(photo.astype(np.float32)) * 255:.2f} | "
              + "; ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
