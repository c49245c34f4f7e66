"""Would a correlation after alignment catch ``--register`` frames of different scenes? (No.)

For each shared set5 and set9 image, two frames of one scene (the crop at (40, 40) and the one
at (43, 45)) and a frame of another scene (the same crop of the image three places on), each
degraded alike (Gaussian noise, and for ``lr`` > 1 a PIL Lanczos downscale then a bicubic
upscale back, as registration's first estimate sees a low-res frame); the shift by
:func:`linr.registration.estimate_shift`, then the normalised correlation of the two frames
aligned by it (both smoothed by a Gaussian of 1.5 px, a margin of the shift plus 2 px left out).
Prints, per setting, the lowest correlation of a same-scene pair and the highest of a
different-scene pair: a check with one threshold needs the first above the second.

    .venv/bin/python benchmarks/register_scene_check_probe.py
"""

from __future__ import annotations

import glob
import sys

import numpy as np

SETTINGS = ((64, 25, 1), (64, 50, 1), (128, 50, 1), (64, 10, 4), (128, 25, 4))
"""(crop side, noise sigma on 0-255, low-res factor)."""


def correlation(reference: np.ndarray, moving: np.ndarray, shift: tuple[float, float], smooth: float = 1.5) -> float:
    from scipy import ndimage

    moved = ndimage.shift(moving, shift, order=1, mode="nearest")
    m = int(np.ceil(np.abs(shift).max())) + 2
    a = ndimage.gaussian_filter(reference, smooth)[m:-m, m:-m]
    b = ndimage.gaussian_filter(moved, smooth)[m:-m, m:-m]
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-20))


def main() -> int:
    from PIL import Image
    from skimage.transform import resize

    from linr.bench import data_dir
    from linr.images import read_image
    from linr.registration import _grey, estimate_shift

    data = data_dir(None)
    files = sorted(glob.glob(str(data / "set5" / "*.png")) + glob.glob(str(data / "set9" / "*.png")))
    images = [_grey(read_image(f)[0]) for f in files]
    rng = np.random.default_rng(0)
    print(f"{len(images)} images; | crop | noise | low-res factor | same scene: lowest | different scenes: highest |")
    for size, sigma, factor in SETTINGS:
        same, other = [], []
        for i, image in enumerate(images):
            a, b = image[40:40 + size, 40:40 + size], image[43:43 + size, 45:45 + size]
            c = images[(i + 3) % len(images)][40:40 + size, 40:40 + size]

            def degrade(z: np.ndarray) -> np.ndarray:
                z = z + rng.normal(0, sigma / 255, z.shape)
                if factor > 1:
                    z = np.asarray(Image.fromarray(z.astype(np.float32)).resize((size // factor,) * 2, Image.LANCZOS))
                    z = resize(z, (size, size), order=3)
                return z

            ra, rb, rc = degrade(a), degrade(b), degrade(c)
            same.append(correlation(ra, rb, estimate_shift(ra, rb)))
            other.append(correlation(ra, rc, estimate_shift(ra, rc)))
        print(f"| {size} | {sigma} | {factor} | {min(same):.2f} | {max(other):.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
