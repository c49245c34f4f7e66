"""A blurred photo of point sources fitted on a widened scale (``linr.headroom``, sixty-sixth session).

Scenes (64 px, grey, photon counts, seed as named): ``stars/SEED/PSF[/SKY]``: 6-14 stars (Gaussian,
sigma 0.7 px, fluxes log-uniform 300-5000 counts) on a sky of SKY counts (20), blurred by a Gaussian
PSF of sigma PSF (``aR``: an Airy pattern of first zero R px); ``night/SEED/PSF/IMAGE``: a shared image
darkened to a fifth with a few lamps at up to 0.8 of white (0-255 counts); ``natural/IMAGE/PHOTONS``: a
shared image's grey centre crop blurred by Table 4's kernel (25 x 25 Gaussian, sigma 1.6) at PHOTONS at
white; ``sat/SEED/PSF/C``: a star field's counts clipped at C of their maximum (saturated). Each photo is mapped by its maximum (as ``linr restore`` maps floats beyond [0, 1]), divided by
the variant's factor H (``hH``; ``hH-holdout``: the held-out stop given, as the default decides it on the
photo's own scale), restored by ``linr.restore`` with the headroom off, and multiplied back: ``h1`` is
the default before; ``auto`` the default now (``linr.restore`` as it is: for a noisy photo the same
image as ``h4-holdout``); ``crop/DIR+IMAGE/Y/X/N``: an N-px crop at (Y, X) of a shared image blurred
whole by Table 4's kernel and noise (sqrt(2)/255, 8-bit), mapped by its type's range (PSNR range 1). PSNR on the
clean counts with data range their maximum (astronomers' convention; the output not clipped above).
One torch thread; resumable rows.

    python benchmarks/star_headroom_probe.py benchmarks/star_headroom.jsonl stars/4/2.5,stars/6/a2.5 h1,h4-holdout
    python benchmarks/star_headroom_probe.py benchmarks/star_headroom.jsonl --table
"""
from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from scipy.ndimage import convolve

from linr.bench.common import load_clean, scene_probe_main
from linr.operators import gaussian_kernel

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TUNE = ("stars/1/2", "stars/2/1.5", "stars/3/2", "natural/set5+bird/50", "natural/inpaint+kate/50",
        "natural/set5+head/50")
"""The scenes the factor and the threshold were chosen on; the rest are reported."""


def airy_psf(size: int, first_zero: float) -> np.ndarray:
    from scipy.special import j1

    c = (size - 1) / 2
    y, x = np.mgrid[:size, :size]
    r = np.hypot(x - c, y - c) * 3.8317 / first_zero + 1e-9
    k = (2 * j1(r) / r) ** 2
    return k / k.sum()


def stars(seed: int, psf: str, n: int = 64, sky: float = 20.0, night: str | None = None):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    img = np.zeros((n, n))
    count = rng.integers(6, 15)
    for (py, px), f in zip(rng.uniform(5, n - 5, size=(count, 2)),
                           np.exp(rng.uniform(np.log(300), np.log(5000), count))):
        img += f * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * 0.7 ** 2)) / (2 * np.pi * 0.7 ** 2)
    if night is not None:  # a darkened photo with a few lamps instead of a sky
        img = img / img.max() * 255 * 0.8 + load_clean(DATA, f"{night}:grey", n)[..., 0].astype(np.float64) * 255 * 0.2
        sky = 0.0
    clean = img + sky
    k = airy_psf(15, float(psf[1:])) if psf.startswith("a") else \
        gaussian_kernel(int(2 * round(3.5 * float(psf)) + 1), float(psf))
    return clean, k, rng.poisson(convolve(clean, k, mode="reflect")).astype(np.float64)


def natural(name: str, photons: float, n: int = 64):
    from linr.kinds import parse_kernel

    k = parse_kernel("gaussian:25:1.6")
    k = k / k.sum()
    clean = load_clean(DATA, f"{name}:grey", n)[..., 0].astype(np.float64) * photons
    rng = np.random.default_rng(0)
    return clean, k, rng.poisson(np.clip(convolve(clean, k, mode="reflect"), 0, None)).astype(np.float64)


def crop(name: str, y: int, x: int, n: int):
    """A crop of a shared image, blurred by Table 4's kernel with its noise (sqrt(2)/255), 8-bit."""
    from linr.kinds import parse_kernel
    from PIL import Image

    k = parse_kernel("gaussian:25:1.6")
    k = k / k.sum()
    image = np.asarray(Image.open(DATA / f"{name}.png").convert("L"), np.float64) / 255
    blurred = convolve(image, k, mode="reflect")[y:y + n, x:x + n]  # blurred whole, then cropped
    rng = np.random.default_rng(0)
    photo = np.clip(np.round((blurred + rng.normal(0, np.sqrt(2) / 255, blurred.shape)) * 255) / 255, 0, 1)
    return image[y:y + n, x:x + n], k, photo


def scene(key: str):
    parts = key.split("/")
    kind, a, b = parts[:3]
    if kind == "crop":  # crop/DIR+IMAGE/Y/X/N
        return crop(a.replace("+", "/"), int(b), int(parts[3]), int(parts[4]))
    if kind == "night":
        return stars(int(a), b, night=parts[3].replace("+", "/"))
    if kind == "stars":
        return stars(int(a), b, sky=float(parts[3]) if len(parts) > 3 else 20.0)
    if kind == "sat":  # sat/SEED/PSF/CEILING: a star field whose counts are clipped at CEILING of its maximum
        clean, k, counts = stars(int(a), b)
        return clean, k, np.minimum(counts, np.round(float(parts[3]) * counts.max()))
    return natural(a.replace("+", "/"), float(b))


def row(key: str, variant: str) -> dict:
    import linr
    from linr.headroom import peak_contrast
    from skimage.metrics import peak_signal_noise_ratio as psnr

    torch.set_num_threads(1)
    clean, k, counts = scene(key)
    top = 1.0 if key.startswith("crop/") else counts.max()  # an 8-bit photo: mapped by its type's range
    photo = (counts / top).astype(np.float32)
    t = time.time()
    if variant == "auto":  # the default as it is (its headroom where it applies)
        h = 1.0
        r = linr.restore(linr.blurred(photo, k), progress=False)
    else:
        factor, _, stop = variant[1:].partition("-")
        h = float(factor)
        r = linr.restore(linr.blurred(photo / np.float32(h), k), progress=False, stop=stop or None, headroom="off")
    image = np.clip(r.image[..., 0], 0, None) * h * top
    fitted = np.clip(r.fitted_image[..., 0], 0, None) * h * top
    dr = 1.0 if key.startswith("crop/") else clean.max()
    return {"key": f"{key}|{variant}", "scene": key, "variant": variant, "psnr": float(psnr(clean, image, data_range=dr)),
            "fit": float(psnr(clean, fitted, data_range=dr)), "blurred": float(psnr(clean, counts, data_range=dr)),
            "steps": r.steps_run, "seconds": time.time() - t, "max_ratio": float(image.max() / clean.max()),
            "flux": float(image.sum() / clean.sum()), "contrast": float(peak_contrast(photo)),
            **({"headroom": r.settings["headroom"]["factor"]} if "headroom" in r.settings else {})}


def detection(key: str) -> tuple[float, float, float]:
    """The scene's photo's peak contrast, PSF likeness and the headroom the default gives it now."""
    import linr
    from linr.headroom import headroom_for, peak_contrast, psf_likeness

    _, k, counts = scene(key)
    photo = (counts / (1.0 if key.startswith("crop/") else counts.max())).astype(np.float32)
    return (peak_contrast(photo), psf_likeness(photo, k),
            headroom_for([linr.blurred(photo, k)], preset=None, keep_model=False))


def table(rows: dict) -> str:
    by_scene: dict[str, dict] = defaultdict(dict)
    for r in rows.values():
        by_scene[r["scene"]][r["variant"]] = r
    variants = sorted({v for s in by_scene.values() for v in s},
                      key=lambda v: (99.0 if v == "auto" else float(v[1:].split("-")[0]), v))
    lines = ["| scene | set | peak contrast | PSF likeness | headroom now | blurred photo | " + " | ".join(variants)
             + " | now - h1 |", "|---|---|---:|---:|---:|---:|" + "---:|" * len(variants) + "---:|"]
    for key in sorted(by_scene, key=lambda s: (s.split("/")[0], s)):
        got = by_scene[key]
        first = next(iter(got.values()))
        contrast, likeness, now = detection(key)
        same = "auto" if "auto" in got else ("h4-holdout" if "h4-holdout" in got else "h4") if now > 1 else "h1"
        gain = f"{got[same]['psnr'] - got['h1']['psnr']:+.2f}" if same in got and "h1" in got else ""
        lines.append(f"| {key} | {'tune' if key in TUNE else 'report'} | {contrast:.2f} | {likeness:.2f} | {now:g}x | "
                     f"{first['blurred']:.2f} | "
                     + " | ".join(f"{got[v]['psnr']:.2f}" if v in got else "" for v in variants) + f" | {gain} |")
    return "\n".join(lines)


def main() -> None:
    scene_probe_main(__doc__.split("\n")[0], row, table, "h1,h4-holdout")


if __name__ == "__main__":
    main()
