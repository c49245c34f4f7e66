"""An aligned burst of noisy frames averaged and restored as one photo (linr's default for a
Gaussian burst): the stop as the defaults choose it against the SURE pick asked for
(``stop='sure'``), beside the first frame alone. A new user's three 64-px frames at sigma 25
(their mean's noise measured 12.9 of 255, under ``linr.sure.MIN_SIGMA``) came back at 35.58 dB with
the default's held-out stop and 37.34 with the pick; a grey 3-page TIFF 32.89 against 37.14.

    PYTHONPATH=src .venv/bin/python benchmarks/burst_sure_probe.py --levels 25,25,25 --size 64 \
        [--grey] [--images ...] [--methods default,sure,first-frame] --rows benchmarks/burst_sure.jsonl

Centre crops of shared images (``FOLDER/NAME``; by default the thirteen held out from every tuning),
frame k with Gaussian noise of ``levels[k]`` (0-255 scale, seed k), clipped and rounded to 8 bits
(:func:`clip_inverse_probe.noisy_frames`). PSNR: standard convention (data range 1, output clipped,
scikit-image) against the clean crop. One JSON line per (image, size, grey, levels, method, code),
appended as it finishes; a rerun skips rows already there (``code``: the commit of the ``linr``
imported, '+' for a changed tree). One torch thread.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from clip_inverse_probe import noisy_frames  # noqa: E402
from options_probe import DATA, HELD_OUT, code_of  # noqa: E402

METHODS = ("default", "sure", "first-frame")


def row(name: str, size: int, grey: bool, levels: list[float], method: str, code: str) -> dict:
    import linr
    from linr.bench.common import centre_crop
    from linr.images import read_image
    from linr.metrics import evaluate

    image = np.asarray(read_image(DATA / f"{name}.png")[0][..., :3], np.float32)
    clean = centre_crop(image, size)[0]
    if grey:
        clean = clean.mean(axis=2, keepdims=True)
    frames = noisy_frames(clean, levels)
    if method == "first-frame":
        frames = frames[:1]
    started = time.perf_counter()
    result = linr.restore([linr.noisy(f) for f in frames], device="cpu", progress=False, seed=0,
                          stop="sure" if method == "sure" else None)
    seconds = time.perf_counter() - started
    psnr = evaluate(clean, np.clip(result.image, 0, 1), convention="standard")["psnr"]
    refine = result.settings.get("refine") or {}
    return {"image": name, "size": size, "grey": grey, "levels": levels, "method": method, "code": code,
            "psnr": round(float(psnr), 3), "seconds": round(seconds, 1),
            "stop": (result.settings.get("stop") or {}).get("name"), "refine_sigma": refine.get("sigma"),
            "steps_run": result.steps_run}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", default=HELD_OUT)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--grey", action="store_true")
    p.add_argument("--levels", default="25,25,25")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--rows", required=True)
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    import linr
    from linr.bench.common import resume_rows

    code = code_of(linr.__file__)
    levels = [float(v) for v in args.levels.split(",")]
    jobs = [((name, args.size, args.grey, tuple(levels), method, code),
             lambda n=name, m=method: row(n, args.size, args.grey, levels, m, code))
            for name in args.images.split(",") for method in args.methods.split(",")]
    resume_rows(args.rows, lambda r: (r["image"], r["size"], r["grey"], tuple(r["levels"]), r["method"], r["code"]),
                jobs)


if __name__ == "__main__":
    main()
