"""A probe for photon noise: linr's default restoring the Anscombe transform of the counts (noise
about 1 everywhere, then the closed-form unbiased inverse), against the default on the photo as it
is and the Poisson data term told the photon level.

    PYTHONPATH=src .venv/bin/python benchmarks/photon_vst_probe.py [--images kodim03,f16]
        [--peaks 20,50] [--size 128] [--poisson-images kodim03] [--rows benchmarks/photon_vst_probe.jsonl]

Centre crops of shared set9 images scaled by 0.8 (so that a white pixel's counts rarely reach
twice the peak, the most the Python API takes), Poisson noise at the given peak (photons at
white), not clipped. PSNR: standard convention, data range 1, against the scaled clean crop
(scikit-image). One JSON line per (image, peak, method), appended as it finishes; a rerun skips
rows already there. One torch thread.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "set9"


def anscombe(counts: np.ndarray) -> np.ndarray:
    return 2.0 * np.sqrt(np.maximum(counts, 0.0) + 3.0 / 8.0)


def anscombe_inverse(d: np.ndarray) -> np.ndarray:
    d = np.maximum(d, 0.8)
    s = np.sqrt(1.5)
    return np.maximum(d ** 2 / 4 + s / (4 * d) - 11 / (8 * d ** 2) + 5 * s / (8 * d ** 3) - 1 / 8, 0.0)


def main() -> None:
    import torch
    from skimage.metrics import peak_signal_noise_ratio

    import linr
    from linr.images import read_image
    from linr.simulate import add_photon_noise

    p = argparse.ArgumentParser()
    p.add_argument("--images", default="kodim03,f16")
    p.add_argument("--peaks", default="20,50")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--poisson-images", default="kodim03", help="images that also get the Poisson term (slow)")
    p.add_argument("--rows", default="benchmarks/photon_vst_probe.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = Path(args.rows)
    done = {(r["image"], r["peak"], r["method"]) for r in map(json.loads, rows.read_text().splitlines())} \
        if rows.exists() else set()
    for name in args.images.split(","):
        img, _ = read_image(DATA / f"{name}.png")
        h, w = img.shape[:2]
        s = args.size
        clean = 0.8 * np.ascontiguousarray(img[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s])
        for peak in (float(v) for v in args.peaks.split(",")):
            noisy = add_photon_noise(clean, peak, seed=0, clip=False)
            z = anscombe(noisy.astype(np.float64) * peak)
            top = float(z.max())

            def vst() -> np.ndarray:
                result = linr.restore([linr.noisy((z / top).astype(np.float32))], device="cpu", progress=False)
                return (anscombe_inverse(result.image.astype(np.float64) * top) / peak).astype(np.float32)

            methods = {
                "default on the photo": lambda: linr.restore([linr.noisy(noisy)], device="cpu", progress=False).image,
                "default on the Anscombe transform": vst,
            }
            if name in args.poisson_images.split(","):
                methods["Poisson term, peak given"] = lambda: linr.restore(
                    [linr.noisy(noisy, noise="poisson", peak=peak, photon_method="likelihood")], device="cpu",
                    progress=False).image
            for method, run in methods.items():
                if (name, peak, method) in done:
                    continue
                started = time.perf_counter()
                out = np.clip(run(), 0.0, 1.0)
                row = {"image": name, "size": s, "peak": peak, "method": method,
                       "seconds": round(time.perf_counter() - started, 1),
                       "psnr": float(peak_signal_noise_ratio(clean, out, data_range=1.0)),
                       "noisy_psnr": float(peak_signal_noise_ratio(clean, np.clip(noisy, 0, 1), data_range=1.0))}
                with rows.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
