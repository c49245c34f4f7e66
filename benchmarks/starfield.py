"""Star fields: what a restoration does to an astronomer's measurements, not only to PSNR.

    PYTHONPATH=src .venv/bin/python benchmarks/starfield.py [--fields 6] [--size 128]
        [--rows benchmarks/starfield.jsonl]

Each field is synthetic, so its truth is known: a sky of 100 photo-electrons per pixel and 60 stars
of a Gaussian PSF (sigma 1.1 px, FWHM 2.6 px) with total fluxes drawn log-uniformly from 300 to
30000 e-, photon (Poisson) noise plus a read noise of 5 e- (gain 1). The noisy field goes through
``linr restore`` as a user gives it (a float32 FITS of counts, `-o` a FITS, one thread), and
through BM3D as the classical reference: on the counts mapped by their maximum with the noise
measured (scikit-image's ``estimate_sigma``), and on the generalised Anscombe transform of the
counts (known gain and read noise, noise 1 after it; the closed-form approximation of the exact
unbiased inverse, Makitalo and Foi 2011). linr's Poisson-Gaussian data term (``--noise
poisson-gaussian``, noise estimated or given) is a method to name with --methods: it fits the
paper's network for up to 500 steps (minutes a field here). ``linr default on the Anscombe
transform`` (a probe, named with --methods) restores the transformed counts with every default
(the noise then about 1 everywhere) and inverts them as BM3D's are. Since the fifty-fourth session
that is what ``--noise poisson-gaussian`` does by default (:mod:`linr.stabilise`): ``linr --noise
poisson-gaussian (Anscombe route; ...)``, noise given or estimated; the likelihood rows name
``--photon-method likelihood``.

Measured per field and method: PSNR against the clean field (counts, data range = the clean
maximum, scikit-image) and aperture photometry: each star's sum in a circle of radius 3 px less
the true sky, against the same sum of the clean field; per third of the stars by flux (faint,
middle, bright), the median of measured / true - 1 (bias) and 1.4826 x its median absolute
deviation (scatter). One JSON line per (field, method) is appended to --rows as it finishes;
a rerun skips rows already there.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

SKY, READ, PSF_SIGMA, STARS, APERTURE = 100.0, 5.0, 1.1, 60, 3.0


def field(seed: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean counts (H, W), star positions (N, 2) row/col, total fluxes (N,))."""
    rng = np.random.default_rng(seed)
    pos = rng.uniform(6, size - 6, (STARS, 2))
    flux = np.exp(rng.uniform(np.log(300.0), np.log(30000.0), STARS))
    y, x = np.mgrid[:size, :size].astype(np.float64)
    clean = np.full((size, size), SKY)
    for (r, c), f in zip(pos, flux):
        clean += f / (2 * np.pi * PSF_SIGMA ** 2) * np.exp(-((y - r) ** 2 + (x - c) ** 2) / (2 * PSF_SIGMA ** 2))
    return clean, pos, flux


def photometry(image: np.ndarray, clean: np.ndarray, pos: np.ndarray, flux: np.ndarray) -> dict:
    y, x = np.mgrid[:image.shape[0], :image.shape[1]]
    ratios = []
    for r, c in pos:
        inside = (y - r) ** 2 + (x - c) ** 2 <= APERTURE ** 2
        true = float((clean[inside] - SKY).sum())
        ratios.append(float((image[inside] - SKY).sum()) / true)
    ratios = np.asarray(ratios)
    order = np.argsort(flux)
    out = {}
    for name, part in zip(("faint", "middle", "bright"), np.array_split(order, 3)):
        r = ratios[part]
        med = float(np.median(r))
        out[name] = {"bias": med - 1.0, "scatter": 1.4826 * float(np.median(np.abs(r - med))),
                     "flux_range": [float(flux[part].min()), float(flux[part].max())]}
    return out


def anscombe(x: np.ndarray) -> np.ndarray:
    return 2.0 * np.sqrt(np.maximum(x + 3.0 / 8.0 + READ ** 2, 0.0))


def anscombe_inverse(d: np.ndarray) -> np.ndarray:
    d = np.maximum(d, 0.8)
    s = np.sqrt(1.5)
    return d ** 2 / 4 + s / (4 * d) - 11 / (8 * d ** 2) + 5 * s / (8 * d ** 3) - 1 / 8 - READ ** 2


def run_linr(noisy: np.ndarray, extra: list[str]) -> np.ndarray:
    from linr.cli import main
    from linr.fits import write_fits
    from linr.images import read_stored

    with tempfile.TemporaryDirectory() as tmp:
        src, out = os.path.join(tmp, "field.fits"), os.path.join(tmp, "restored.fits")
        write_fits(src, noisy.astype(np.float32)[..., None])
        code = main(["restore", "--noisy", src, "-o", out, "--quiet", "--device", "cpu", *extra])
        if code != 0:
            raise RuntimeError(f"linr restore exit {code}")
        return read_stored(out)[0].values[..., 0].astype(np.float64)


def run_bm3d(noisy: np.ndarray, transform: bool) -> np.ndarray:
    import bm3d
    from skimage.restoration import estimate_sigma

    if transform:
        return anscombe_inverse(bm3d.bm3d(anscombe(noisy), sigma_psd=1.0))
    top = float(noisy.max())
    unit = noisy / top
    return bm3d.bm3d(unit, sigma_psd=float(estimate_sigma(unit))) * top


def known_noise(noisy: np.ndarray) -> list[str]:
    """linr's Poisson-Gaussian term told the noise: a photon at the data's maximum (gain 1) and
    the read noise, both on its 0-255 scale of that maximum."""
    top = float(noisy.max())
    return ["--noise", "poisson-gaussian", "--peak", f"{top:.6g}", "--read-noise", f"{READ / top * 255:.6g}"]


METHODS = {
    "noisy (no restoration)": lambda noisy: noisy,
    "linr default": lambda noisy: run_linr(noisy, []),
    "linr poisson-gaussian (noise estimated)": lambda noisy: run_linr(
        noisy, ["--noise", "poisson-gaussian", "--photon-method", "likelihood"]),
    "linr poisson-gaussian (noise given)": lambda noisy: run_linr(noisy, [*known_noise(noisy), "--photon-method",
                                                                          "likelihood"]),
    "linr --noise poisson-gaussian (Anscombe route; noise given)": lambda noisy: run_linr(noisy, known_noise(noisy)),
    "linr --noise poisson-gaussian (Anscombe route; noise estimated)": lambda noisy: run_linr(
        noisy, ["--noise", "poisson-gaussian"]),
    "linr default on the Anscombe transform": lambda noisy: anscombe_inverse(run_linr(anscombe(noisy), [])),
    "BM3D with the noise measured": lambda noisy: run_bm3d(noisy, False),
    "BM3D on the Anscombe transform": lambda noisy: run_bm3d(noisy, True),
}
"""Methods by name (no commas: --methods is a comma-separated list)."""


def main() -> None:
    import torch
    from skimage.metrics import peak_signal_noise_ratio

    p = argparse.ArgumentParser()
    p.add_argument("--fields", type=int, default=6)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--methods", default="noisy (no restoration),linr default,BM3D with the noise measured,"
                   "BM3D on the Anscombe transform", help="comma-separated names of METHODS")
    p.add_argument("--rows", default="benchmarks/starfield.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    rows = Path(args.rows)
    done = {(r["field"], r["size"], r["method"]) for r in map(json.loads, rows.read_text().splitlines())} \
        if rows.exists() else set()
    for seed in range(args.fields):
        clean, pos, flux = field(seed, args.size)
        rng = np.random.default_rng(1000 + seed)
        noisy = rng.poisson(clean).astype(np.float64) + rng.normal(0.0, READ, clean.shape)
        for method in args.methods.split(","):
            if (seed, args.size, method) in done:
                continue
            started = time.perf_counter()
            image = METHODS[method](noisy)
            seconds = time.perf_counter() - started
            row = {"field": seed, "size": args.size, "method": method, "seconds": round(seconds, 2),
                   "psnr": float(peak_signal_noise_ratio(clean, image, data_range=float(clean.max()))),
                   "photometry": photometry(image, clean, pos, flux), "threads": 1}
            with rows.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
