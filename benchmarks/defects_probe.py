"""Hot pixels and cosmic rays in a blurred photo (``linr.defects``, sixty-seventh session).

A blurred photo's every feature is blurred: a pixel far sharper than the blur allows (a hot pixel,
a cosmic ray's track, recorded after the optics) is no part of the scene. Scenes are
``benchmarks/star_headroom_probe.py``'s (``stars/SEED/PSF[/SKY]``, ``natural/IMAGE/PHOTONS``, ...)
and ``hubble/Y/X`` (a 64-px crop of scikit-image's Hubble deep field, a real telescope image,
blurred by a Gaussian PSF of sigma 1.5 with Poisson counts up to 2000)
with defects added to the blurred counts, as ``SCENE@DEFECTS``: ``hot`` one pixel at 40x the photo's
maximum (a hot pixel at a 16-bit camera's ceiling), ``warm`` one at 3x, ``ray`` a cosmic ray's track
of 4 pixels at 3x, ``hot+ray`` both; placed by the scene's seed away from the borders. Each photo is
mapped by its maximum (as ``linr restore`` maps floats beyond [0, 1]); PSNR on the clean counts with
data range their maximum (8-bit crops: range 1), over every pixel (the defects' too: the scene has
none there).

Variants: ``auto`` the default as it is; ``off`` with ``defects="off"`` (the default before);
``before`` the default as the session's starting code ran it (rows kept: ``off`` should match them);
``clean`` the same photo without the defects (what the default makes of it: the bar); ``oracle`` the
defects' true pixels left out and the photo mapped by its maximum elsewhere, by hand (what detection
could give at best); ``oracle-unscaled`` left out, the photo mapped by its maximum with the defects. One torch thread; resumable rows.

    python benchmarks/defects_probe.py benchmarks/defects.jsonl stars/1/2@hot,stars/2/1.5@ray off,auto,clean
    python benchmarks/defects_probe.py benchmarks/defects.jsonl --table
"""
from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from star_headroom_probe import scene as base_scene  # noqa: E402

from linr.bench.common import scene_probe_main  # noqa: E402

TUNE = ("stars/1/2@hot+ray", "stars/2/1.5@hot", "stars/3/2@ray", "natural/set5+bird/50@hot")
"""The scenes the detection's thresholds were chosen on; the rest are reported."""


def hubble(y: int, x: int, n: int = 64, peak: float = 2000.0):
    """An N-px crop at (Y, X) of scikit-image's Hubble deep field (a real telescope image, grey: the
    channels' mean) as counts up to PEAK, blurred by a Gaussian PSF of sigma 1.5 px, Poisson counts."""
    from scipy.ndimage import convolve
    from skimage.data import hubble_deep_field

    from linr.operators import gaussian_kernel

    clean = hubble_deep_field().mean(axis=2)[y:y + n, x:x + n] / 255.0 * peak + 5.0
    k = gaussian_kernel(11, 1.5)
    return clean, k, np.random.default_rng(y * 1000 + x).poisson(convolve(clean, k, mode="reflect")).astype(np.float64)


def base_or_hubble(name: str):
    if name.startswith("hubble/"):
        _, y, x = name.split("/")
        return hubble(int(y), int(x))
    return base_scene(name)


def with_defects(key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(clean, kernel, counts with defects, defect mask) of ``SCENE@DEFECTS``."""
    name, _, kinds = key.partition("@")
    clean, k, counts = base_or_hubble(name)
    counts = counts.copy()
    mask = np.zeros(counts.shape, bool)
    rng = np.random.default_rng(sum(map(ord, name)))
    top = float(counts.max())
    n = counts.shape[0]
    for kind in filter(None, kinds.split("+")):
        y, x = rng.integers(8, n - 8, 2)
        if kind in ("hot", "warm"):
            counts[y, x] = (40.0 if kind == "hot" else 3.0) * top
            mask[y, x] = True
        elif kind == "ray":
            dy, dx = (1, 1) if rng.random() < 0.5 else (0, 1)
            for i in range(4):
                counts[y + i * dy, x + i * dx] += 3.0 * top * rng.uniform(0.6, 1.0)
                mask[y + i * dy, x + i * dx] = True
        else:
            raise SystemExit(f"unknown defect {kind!r}")
    return clean, k, counts, mask


def row(key: str, variant: str) -> dict:
    import linr
    from skimage.metrics import peak_signal_noise_ratio as psnr

    torch.set_num_threads(1)
    clean, k, counts, mask = with_defects(key)
    if variant == "clean":
        counts = base_or_hubble(key.partition("@")[0])[2]
    eight_bit = key.startswith("crop/")
    top = 1.0 if eight_bit else float(counts.max())
    photo = (counts / top).astype(np.float32)
    t = time.time()
    scale = 1.0
    if variant in ("oracle", "oracle-unscaled"):
        from linr.kinds import left_out_where_transparent

        scale = float(photo[~mask].max()) if not eight_bit and variant == "oracle" else 1.0
        obs = left_out_where_transparent(linr.blurred(np.minimum(photo / scale, 1.0), k), (~mask).astype(np.float32))
        r = linr.restore(obs, progress=False)
    else:
        r = linr.restore(linr.blurred(photo, k), progress=False, **({"defects": "off"} if variant == "off" else {}))
    image = np.clip(r.image[..., 0], 0, None) * scale * top
    dr = 1.0 if eight_bit else clean.max()
    found = r.settings.get("defects", {})
    return {"key": f"{key}|{variant}", "scene": key, "variant": variant,
            "psnr": float(psnr(clean, image, data_range=dr)),
            "psnr_away": float(psnr(clean[~_near(mask)], image[~_near(mask)], data_range=dr)),
            "blurred": float(psnr(clean, counts, data_range=dr)),
            "steps": r.steps_run, "seconds": time.time() - t, "defects_true": int(mask.sum()),
            "defects_found": int(found.get("left_out", 0)),
            **({"headroom": r.settings["headroom"]["factor"]} if "headroom" in r.settings else {})}


def _near(mask: np.ndarray, reach: int = 6) -> np.ndarray:
    from scipy.ndimage import binary_dilation

    return binary_dilation(mask, iterations=reach) if mask.any() else mask


def table(rows: dict) -> str:
    by_scene: dict[str, dict] = defaultdict(dict)
    for r in rows.values():
        by_scene[r["scene"]][r["variant"]] = r
    variants = [v for v in ("before", "off", "auto", "oracle-unscaled", "oracle", "clean") if any(v in s for s in by_scene.values())]
    lines = ["| scene | set | defects (found) | blurred photo | " + " | ".join(variants) + " | auto - off |",
             "|---|---|---:|---:|" + "---:|" * len(variants) + "---:|"]
    for key in sorted(by_scene):
        got = by_scene[key]
        first = next((r for v, r in got.items() if v != "clean"), next(iter(got.values())))  # its photo spoilt
        found = got["auto"]["defects_found"] if "auto" in got else ""
        gain = f"{got['auto']['psnr'] - got['off']['psnr']:+.2f}" if "auto" in got and "off" in got else ""
        lines.append(f"| {key} | {'tune' if key in TUNE else 'report'} | {first['defects_true']} ({found}) | "
                     f"{first['blurred']:.2f} | " + " | ".join(f"{got[v]['psnr']:.2f}" if v in got else ""
                                                             for v in variants) + f" | {gain} |")
    return "\n".join(lines)


def main() -> None:
    scene_probe_main(__doc__.split("\n")[0], row, table, "off,auto")


if __name__ == "__main__":
    main()
