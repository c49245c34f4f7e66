"""A probe of options a user may add to the defaults' denoising: ``--ensemble K`` and small
``--tile SIZE``, each against the plain default on the same noisy photo.

    PYTHONPATH=src .venv/bin/python benchmarks/options_probe.py --size 64 \
        --settings default,ensemble=2 --rows benchmarks/options_probe_rgb64.jsonl
    PYTHONPATH=src .venv/bin/python benchmarks/options_probe.py --size 128 \
        --settings default,tile=32,tile=48,tile=64 --rows benchmarks/options_probe_rgb128.jsonl

Centre crops of shared images (``FOLDER/NAME[:grey]``; by default the thirteen held out from
every tuning of the defaults' denoising), Gaussian noise of ``--sigma`` (0-255 scale, seed 0),
clipped to [0, 1] and rounded to 8 bits as saved photos are; ``linr.restore`` with the
defaults plus one option (``NAME=VALUE``: ``ensemble=2``, ``tile=32``, ``tile=32:16``) on one
torch thread. PSNR: standard convention, data range 1, output clipped (scikit-image). One JSON
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


def row(name: str, setting: str, size: int, sigma: float, code: str) -> dict:
    import linr
    from linr.bench.common import load_clean, psnr

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
