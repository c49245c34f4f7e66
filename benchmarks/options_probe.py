"""A probe of options a user may add to the defaults' denoising: ``--ensemble K`` and small
``--tile SIZE``, each against the plain default on the same noisy photo.

    PYTHONPATH=src .venv/bin/python benchmarks/options_probe.py --size 64 \
        --settings default,ensemble=2 --rows benchmarks/options_probe_rgb64.jsonl
    PYTHONPATH=src .venv/bin/python benchmarks/options_probe.py --size 128 \
        --settings default,tile=32,tile=48,tile=64 --rows benchmarks/options_probe_rgb128.jsonl
    PYTHONPATH=src .venv/bin/python benchmarks/options_probe.py --size 128 \
        --settings opaque,transparent=half,transparent=disk --rows benchmarks/options_probe_alpha128.jsonl

Centre crops of shared images (``FOLDER/NAME[:grey]``; by default the thirteen held out from
every tuning of the defaults' denoising), Gaussian noise of ``--sigma`` (0-255 scale, seed 0),
clipped to [0, 1] and rounded to 8 bits as saved photos are; ``linr.restore`` with the
defaults plus one option (``NAME=VALUE``: ``ensemble=2``, ``tile=32``, ``tile=32:16``) on one
torch thread. ``transparent=half|disk``: the noisy photo written as an RGBA PNG whose left half
(or all but a centred disk of radius 0.3 of the side) is transparent with RGB 0, read back as
``linr restore --noisy`` reads it (``linr.scene.load_scene``), and scored on its opaque pixels
only; ``opaque``: the same photo as an opaque PNG read the same way, scored on the same pixels
of each mask (``psnr_half``, ``psnr_disk``). PSNR: standard convention, data range 1, output
clipped (scikit-image). One JSON
line per (image, setting, code), appended as it finishes (``code``: the commit of the ``linr``
imported, so rows of the code before a change sit beside those after it); a rerun skips rows
already there.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HELD_OUT = ("set9/baboon,set9/f16,set9/house,set9/kodim01,set9/kodim02,set9/kodim03,set9/kodim12,"
            "set9/peppers,deblur/leaves,deblur/parrots,deblur/starfish,inpaint/library,inpaint/vase")


def noisy_photo(clean: np.ndarray, sigma: float) -> np.ndarray:
    """``clean`` plus Gaussian noise of ``sigma`` (seed 0), clipped, 8-bit."""
    noise = np.random.default_rng(0).normal(0, sigma / 255, clean.shape)
    return (np.round(np.clip(clean + noise, 0, 1) * 255) / 255).astype(np.float32)


def options(setting: str) -> dict:
    """``restore`` keyword arguments of a setting: ``default`` or ``NAME=VALUE``."""
    if setting == "default":
        return {}
    name, _, value = setting.partition("=")
    if name == "ensemble":
        return {"ensemble": int(value)}
    if name == "tile":
        return {"tile": value}
    raise SystemExit(f"unknown setting {setting!r}: default, ensemble=K or tile=SIZE[:OVERLAP]")


def code_of(module_file: str) -> str:
    """The commit (short) of the repository holding ``module_file``, '+' if its tree differs."""
    folder = Path(module_file).parent
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=folder, capture_output=True,
                            text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=folder, capture_output=True,
                           text=True).stdout.strip()
    return commit + ("+" if dirty else "")


def opaque_where(shape: tuple[int, int], mask: str) -> np.ndarray:
    """The opaque pixels of ``transparent=MASK``: the right half, or a centred disk."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w]
    if mask == "half":
        return xx >= w // 2
    if mask == "disk":
        return (yy - h / 2) ** 2 + (xx - w / 2) ** 2 <= (0.3 * min(h, w)) ** 2
    raise SystemExit(f"unknown transparent={mask}: half or disk")


def read_as_the_cli(photo: np.ndarray, opaque: np.ndarray | None):
    """``photo`` written as an 8-bit PNG (RGBA with RGB 0 where not ``opaque``) and read back as
    ``linr restore --noisy`` reads it."""
    import tempfile

    from PIL import Image

    from linr.scene import load_scene

    pixels = np.round(photo * 255).astype(np.uint8)
    if opaque is not None:
        pixels = np.dstack([np.where(opaque[..., None], pixels, 0), np.where(opaque, 255, 0).astype(np.uint8)])
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/photo.png"
        Image.fromarray(pixels[..., 0] if pixels.shape[2] == 1 else pixels).save(path)
        observations, _, _ = load_scene({"noisy": path}, {}, notes=[])
    return observations


def transparent_row(name: str, setting: str, size: int, sigma: float, code: str) -> dict:
    import linr
    from linr.bench.common import load_clean, psnr

    clean = load_clean(DATA, name, size)
    photo = noisy_photo(clean, sigma)
    masks = ("half", "disk") if setting == "opaque" else (setting.partition("=")[2],)
    opaque = None if setting == "opaque" else opaque_where(clean.shape[:2], masks[0])
    started = time.perf_counter()
    result = linr.restore(read_as_the_cli(photo, opaque), device="cpu", progress=False)
    seconds = round(time.perf_counter() - started, 1)
    image = result.image if result.image.ndim == 3 else result.image[..., None]
    scores = {f"psnr_{m}": round(psnr(clean[opaque_where(clean.shape[:2], m)],
                                      image[opaque_where(clean.shape[:2], m)]), 3) for m in masks}
    return {"image": name, "size": size, "sigma": sigma, "setting": setting, "code": code, **scores,
            "seconds": seconds, "stop": result.stop_reason}


def row(name: str, setting: str, size: int, sigma: float, code: str) -> dict:
    import linr
    from linr.bench.common import load_clean, psnr

    if setting == "opaque" or setting.startswith("transparent="):
        return transparent_row(name, setting, size, sigma, code)
    clean = load_clean(DATA, name, size)
    photo = noisy_photo(clean, sigma)
    started = time.perf_counter()
    result = linr.restore(linr.noisy(photo[..., 0] if photo.shape[2] == 1 else photo), device="cpu",
                          progress=False, **options(setting))
    seconds = round(time.perf_counter() - started, 1)
    image = result.image if result.image.ndim == 3 else result.image[..., None]
    return {"image": name, "size": size, "sigma": sigma, "setting": setting, "code": code,
            "psnr": round(psnr(clean, image), 3), "seconds": seconds, "stop": result.stop_reason}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=HELD_OUT)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--settings", default="default,ensemble=2")
    parser.add_argument("--rows", required=True)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    import linr
    from linr.bench.common import resume_rows

    code = code_of(linr.__file__)
    jobs = [((name, setting, args.size, args.sigma, code),
             lambda n=name, s=setting: row(n, s, args.size, args.sigma, code))
            for name in args.images.split(",") for setting in args.settings.split(",")]
    resume_rows(args.rows, lambda r: (r["image"], r["setting"], r["size"], r["sigma"], r["code"]), jobs)


if __name__ == "__main__":
    main()
