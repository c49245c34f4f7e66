"""A blurred photo clipped at white, fitted with its pixels at white censored (sixty-eighth session).

A natural photo's bright areas (a lamp, a sky, a white shirt) are clipped at white in its file; a
blurred photo's pixels at white then say only that the blurred scene reached white or beyond.
Fitted as values, the deblurred edges of a bright area overshoot and ring. Scenes
``IMAGE/SHARE/SIGMA``: the grey 64-px crop of a shared image (``DIR+NAME``) with the most contrast
(the largest spread of its 10th to 90th percentiles, on a 16-px grid), blurred by a Gaussian of
SIGMA (13 x 13, reflecting edges), brightened so that SHARE of the blurred values exceed white,
with Gaussian noise of 5/255, clipped to [0, 1] and rounded to 8 bits (one seed). PSNR against the
crop brightened alike and clipped at white (what a sharp photo would have recorded), data range 1.

Variants: ``default`` the default as it is (the data term censored at white); ``ignore`` with
``clipping="ignore"`` (the pixels at white fitted as values: the default before); ``left-out``
the pixels at white left out of the data term (fit and refinement), for comparison. One torch
thread; resumable rows.

    python benchmarks/clipped_blur_probe.py benchmarks/clipped_blur.jsonl set9+house/0.08/2 ignore,default
    python benchmarks/clipped_blur_probe.py benchmarks/clipped_blur.jsonl --table
"""
from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from linr.bench.common import scene_probe_main  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TUNE = ("set5+bird", "set5+baby", "inpaint+kate")
"""The images the rule was looked at on; the rest are reported."""


def scene(key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(reference (64, 64) float64, kernel, photo (64, 64) float32) of ``IMAGE/SHARE/SIGMA``."""
    from PIL import Image
    from scipy.ndimage import convolve

    from linr.operators import gaussian_kernel

    name, share, sigma = key.split("/")
    img = np.asarray(Image.open(DATA / (name.replace("+", "/") + ".png")).convert("RGB"), np.float64).mean(axis=2) / 255
    n, best, at = 64, -1.0, (0, 0)
    for y in range(0, img.shape[0] - n + 1, 16):
        for x in range(0, img.shape[1] - n + 1, 16):
            spread = float(np.quantile(img[y:y + n, x:x + n], 0.9) - np.quantile(img[y:y + n, x:x + n], 0.1))
            if spread > best:
                best, at = spread, (y, x)
    crop = img[at[0]:at[0] + n, at[1]:at[1] + n]
    k = gaussian_kernel(13, float(sigma))
    blurred = convolve(crop, k, mode="reflect")
    gain = 1.0 / np.quantile(blurred, 1 - float(share))
    noise = np.random.default_rng(0).normal(0, 5 / 255, blurred.shape)
    photo = np.round(np.clip(gain * blurred + noise, 0, 1) * 255) / 255
    return np.clip(gain * crop, 0, 1), k, photo.astype(np.float32)


def row(key: str, variant: str) -> dict:
    import linr
    from linr.kinds import left_out_also
    from skimage.metrics import peak_signal_noise_ratio as psnr

    torch.set_num_threads(1)
    reference, k, photo = scene(key)
    obs = linr.blurred(photo, k)
    at_white = photo >= 1.0
    if variant == "left-out" and at_white.any():
        obs = left_out_also(obs, at_white)
    t = time.time()
    r = linr.restore(obs, progress=False, clipping="ignore" if variant in ("ignore", "left-out") else "auto")
    return {"key": f"{key}|{variant}", "scene": key, "variant": variant,
            "psnr": float(psnr(reference, np.clip(r.image[..., 0], 0, 1), data_range=1)),
            "fit": float(psnr(reference, np.clip(r.fitted_image[..., 0], 0, 1), data_range=1)),
            "blurred": float(psnr(reference, photo, data_range=1)), "at_white": int(at_white.sum()),
            "censored": r.settings.get("clipped_at_white", {}).get("pixels", 0),
            "steps": r.steps_run, "seconds": time.time() - t}


def table(rows: dict) -> str:
    by_scene: dict[str, dict] = defaultdict(dict)
    for r in rows.values():
        by_scene[r["scene"]][r["variant"]] = r
    lines = ["| scene | set | pixels at white | blurred photo | ignore (before) | default (censored) | default - ignore |"
             " left out |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for key in sorted(by_scene, key=lambda s: (s.split("/")[0] not in TUNE, s.split("/")[1:], s)):
        v = by_scene[key]
        if "ignore" not in v or "default" not in v:
            continue
        left = f"{v['left-out']['psnr']:.2f}" if "left-out" in v else ""
        lines.append(f"| {key} | {'tune' if key.split('/')[0] in TUNE else 'report'} | {v['ignore']['at_white']} | "
                     f"{v['ignore']['blurred']:.2f} | {v['ignore']['psnr']:.2f} | {v['default']['psnr']:.2f} | "
                     f"{v['default']['psnr'] - v['ignore']['psnr']:+.2f} | {left} |")
    return "\n".join(lines)


if __name__ == "__main__":
    scene_probe_main(__doc__.splitlines()[0], row, table, "ignore,default")
