"""A noisy photo beside a photo with missing pixels of one scene, restored jointly (sixty-eighth session).

A scan with scratches (its observed pixels exact) and a noisy shot of the same framing: the joint
fit weighs the noisy photo 0.1 and follows it at the masked photo's observed pixels too. Scenes
``IMAGE/KEPT/SIGMA``: the centre 64-px RGB crop of a shared image (``DIR+NAME``), a noisy copy at
SIGMA/255 (8-bit) and a copy with KEPT of its pixels observed at random (seed: the key's CRC-32).
PSNR and SSIM (standard convention, data range 1) against the crop, from one joint fit per scene:

- ``fit``: the joint fit's image (``refine="none"``: the default before);
- ``proj``: that image with the masked photo's observed pixels put back (``keep-observed``, the
  default for part of the sixty-eighth session);
- ``gfill``: the masked photo's missing pixels filled by ``grouped-fill`` with the joint fit as its
  pilot, no pixels held out (a candidate);
- ``default``: the default now (``linr.restore`` as it is: ``grouped-fill`` from the joint fit, its
  blend chosen on the fit's held-out pixels; rows made before it was the default: the same path
  through a patched ``refine_input``);
- ``masked_alone`` / ``noisy_alone``: the default restoration of each photo alone.

One torch thread; resumable rows.

    python benchmarks/noisy_masked_probe.py benchmarks/noisy_masked.jsonl set9+house/0.5/25
    python benchmarks/noisy_masked_probe.py benchmarks/noisy_masked.jsonl --table
"""
from __future__ import annotations

import sys
import time
import zlib
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from linr.bench.common import keyed_probe  # noqa: E402

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
TUNE = ("set5+baby", "set5+bird", "set5+butterfly", "set5+head", "set5+woman", "inpaint+kate")
VARIANTS = ("fit", "proj", "gfill", "default", "masked_alone", "noisy_alone")


def scene(key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(clean (64, 64, 3), noisy, observed (64, 64) bool) of ``IMAGE/KEPT/SIGMA``."""
    from PIL import Image

    name, kept, sigma = key.split("/")
    img = np.asarray(Image.open(DATA / (name.replace("+", "/") + ".png")).convert("RGB"), np.float32) / 255
    n = 64
    y, x = (img.shape[0] - n) // 2, (img.shape[1] - n) // 2
    clean = img[y:y + n, x:x + n]
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    noisy = np.round(np.clip(clean + rng.normal(0, float(sigma) / 255, clean.shape), 0, 1) * 255) / 255
    return clean, noisy.astype(np.float32), rng.random(clean.shape[:2]) < float(kept)


def row(key: str) -> dict:
    import linr
    from linr.refine import refine_image
    from skimage.metrics import peak_signal_noise_ratio as psnr
    from skimage.metrics import structural_similarity as ssim

    torch.set_num_threads(1)
    clean, noisy, observed = scene(key)
    masked = linr.masked(clean * observed[..., None], observed)
    t = time.time()
    r = linr.restore([linr.noisy(noisy), masked], refine="none", progress=False)
    fit = np.asarray(r.image, np.float64)
    proj = fit.copy()
    proj[observed] = clean[observed]
    gfill, _ = refine_image("grouped-fill", r.image.astype(np.float32), [masked])
    out = {"key": key, "seconds": time.time() - t, "steps": r.steps_run}
    images = {"fit": fit, "proj": proj, "gfill": gfill,
              "default": linr.restore([linr.noisy(noisy), masked], progress=False).image,
              "masked_alone": linr.restore(masked, progress=False).image,
              "noisy_alone": linr.restore(linr.noisy(noisy), progress=False).image}
    for name, image in images.items():
        image = np.clip(image, 0, 1)
        out[name] = float(psnr(clean, image, data_range=1))
        out[name + "_ssim"] = float(ssim(clean, image, channel_axis=2, data_range=1))
    return out


def table(rows: dict) -> str:
    lines = ["| scene | set | " + " | ".join(VARIANTS) + " | default - fit |", "|---|---|" + "---:|" * (len(VARIANTS) + 1)]
    for key in sorted(rows, key=lambda k: (k.split("/")[0] not in TUNE, k)):
        r = rows[key]
        lines.append(f"| {key} | {'tune' if key.split('/')[0] in TUNE else 'report'} | "
                     + " | ".join(f"{r[v]:.2f}" for v in VARIANTS) + f" | {r['default'] - r['fit']:+.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    keyed_probe(sys.argv[1:], row, table)
