"""#15 probe: can a blurred photo tell whether it was blurred circularly (the paper's simulated
blur, ``--boundary circular``) or as a camera blurs a scene? A wrong ``--boundary circular`` made
the ``grouped-deblur`` refinement lose up to 3 dB (twenty-sixth session), so a check before the
fit would be worth having if it were reliable. No fit: statistics of the blurred photo (grey, the
kernel known), on every shared image of at least 64 px, blurred three ways with
:func:`linr.simulate.blur_image` (seed 0): circularly; with reflected borders; and a "scene" (the
whole image blurred with reflected borders, then its centre three quarters, as a camera's frame).
Noise std ``--noise`` (0-255 scale; with noise the photo is rounded to 8 bits).

- ``spectral``: the photo's power in the kernel's stopband (``|K| < 0.01``) on the frequency axes
  (where a seam's edges put it) over its power there off the axes;
- ``spatial``: the stopband part of the photo, its mean square in the 2-px border band over the
  centre half's;
- ``borders``: mean absolute difference between opposite border rows and columns over that
  between neighbouring ones (the twenty-sixth session's lead).

A check would need one threshold between the circular photos' values and the others' at every
kernel and noise level. Prints min / median / max per statistic, kernel, noise and blur.

    .venv/bin/python benchmarks/circular_check_probe.py --noise 0,2,10
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

KERNELS = {"gaussian:25:1.6": (25, 1.6), "gaussian:9:3": (9, 3.0), "gaussian:7:1": (7, 1.0), "motion:9": None}


def stopband(photo: np.ndarray, kernel: np.ndarray, cut: float = 0.01) -> np.ndarray | None:
    """The (H, W) frequencies where the kernel's circular transfer is below ``cut`` (None: fewer
    than 2% of them, too few to measure)."""
    h, w = photo.shape
    pad = np.zeros((h, w))
    kh, kw = kernel.shape
    pad[:kh, :kw] = kernel / kernel.sum()
    stop = np.abs(np.fft.fft2(np.roll(pad, (-(kh // 2), -(kw // 2)), (0, 1)))) < cut
    return stop if stop.mean() >= 0.02 else None


def spectral(photo: np.ndarray, stop: np.ndarray) -> float:
    h, w = photo.shape
    power = np.abs(np.fft.fft2(photo - photo.mean())) ** 2
    fy, fx = np.abs(np.fft.fftfreq(h))[:, None], np.abs(np.fft.fftfreq(w))[None, :]
    axis = stop & ((fy <= 1.5 / h) | (fx <= 1.5 / w))
    off = stop & (fy > 0.05) & (fx > 0.05)
    return float(power[axis].mean() / power[off].mean()) if axis.any() and off.any() else float("nan")


def spatial(photo: np.ndarray, stop: np.ndarray, band: int = 2) -> float:
    h, w = photo.shape
    part = np.real(np.fft.ifft2(np.fft.fft2(photo) * stop)) ** 2
    edge = np.zeros((h, w), bool)
    edge[:band], edge[-band:], edge[:, :band], edge[:, -band:] = True, True, True, True
    return float(part[edge].mean() / part[h // 4:-(h // 4), w // 4:-(w // 4)].mean())


def borders(photo: np.ndarray) -> float:
    opposite = np.r_[np.abs(photo[0] - photo[-1]), np.abs(photo[:, 0] - photo[:, -1])].mean()
    neighbours = np.r_[np.abs(np.diff(photo, axis=0)).ravel(), np.abs(np.diff(photo, axis=1)).ravel()].mean()
    return float(opposite / neighbours)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--noise", default="0,2,10", help="noise std list, 0-255 scale")
    args = parser.parse_args(argv)
    from linr.bench import data_dir
    from linr.images import read_image
    from linr.operators import gaussian_kernel
    from linr.simulate import blur_image

    files = [f for f in sorted(Path(data_dir()).glob("*/*.png")) if "mask" not in f.name]
    images = [read_image(f)[0][..., :3].astype(np.float32) for f in files]
    images = [x for x in images if min(x.shape[:2]) >= 64]
    print(f"{len(images)} images; min/median/max of each statistic")
    for noise in map(float, args.noise.split(",")):
        for name, spec in KERNELS.items():
            kernel = np.eye(9) / 9 if spec is None else gaussian_kernel(*spec)
            found: dict[str, dict[str, list[float]]] = {}
            for x in images:
                for blur in ("circular", "reflect", "scene"):
                    b = blur_image(x, kernel, boundary="circular" if blur == "circular" else "reflect",
                                   seed=0, noise_sigma=noise)
                    if blur == "scene":
                        h, w = b.shape[:2]
                        b = b[h // 8:h - h // 8, w // 8:w - w // 8]
                    if noise:
                        b = np.round(b * 255) / 255
                    photo = b[..., :3].mean(axis=2)
                    stop = stopband(photo, kernel)
                    values = {"borders": borders(photo)}
                    if stop is not None:
                        values.update(spectral=spectral(photo, stop), spatial=spatial(photo, stop))
                    for stat, v in values.items():
                        found.setdefault(stat, {}).setdefault(blur, []).append(v)
            for stat, by_blur in found.items():
                cells = ", ".join(f"{blur} {min(v):.2f}/{np.median(v):.2f}/{max(v):.2f}" if np.isfinite(v).all()
                                  else f"{blur} n/a (no stopband on the axes)" for blur, v in by_blur.items())
                print(f"noise {noise:g}, {name}, {stat}: {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
