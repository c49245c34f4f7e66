"""A burst of noisy frames that do not line up (a handheld burst, a drifting stage or mount):
linr's default with ``register='translation'`` against the first frame alone and against a burst
whose frames do line up (the same noise, no motion: what alignment could reach at best).

    PYTHONPATH=src .venv/bin/python benchmarks/registered_burst_probe.py \
        --methods registered,one-frame,aligned-oracle --rows benchmarks/registered_burst.jsonl

Frames as a camera takes them: the centre of a shared image (``FOLDER/NAME``; by default the
thirteen held out from every tuning of the defaults), each frame the mean of 2 x 2 blocks of the
image moved by whole pixels of the image (so by half pixels of the frame: up to
``--reach`` frame pixels each way, drawn with the CRC-32 of the image's name as the seed; the first frame unmoved, and it
is the reference the clean frame is), ``--size`` px a side; Gaussian noise of ``--sigma`` (seed k
for frame k), clipped and rounded to 8 bits. Methods: ``registered`` (``linr.restore`` of the
frames with ``register='translation'``), ``one-frame`` (the first frame alone), ``aligned-oracle``
(the frames all unmoved, the same noise: restored as an aligned burst). PSNR: standard convention
(RGB, data range 1, output clipped; scikit-image) against the clean first frame. One torch
thread. One JSON line per (image, size, sigma, frames, method, code), appended as it finishes; a
rerun skips rows already there (``code``: the commit of the ``linr`` imported, '+' for a changed
tree).
"""

from __future__ import annotations

import argparse
import sys
import time
import zlib
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from options_probe import DATA, HELD_OUT, code_of  # noqa: E402

METHODS = ("registered", "one-frame", "aligned-oracle")


def burst_of(name: str, size: int, frames: int, reach: int, sigma: float, moved: bool = True
             ) -> tuple[np.ndarray, list[np.ndarray], list[tuple[float, float]]]:
    """The clean first frame, the noisy 8-bit frames and each frame's shift (rows, columns; frame
    pixels: the frame shows the scene moved by it) of ``name``'s burst."""
    from linr.bench.common import centre_crop
    from linr.images import read_image

    image = np.asarray(read_image(DATA / f"{name}.png")[0][..., :3], np.float64)
    margin = 2 * reach
    need = 2 * size + 2 * margin
    if min(image.shape[:2]) < need:
        raise SystemExit(f"{name}: {image.shape[1]}x{image.shape[0]} is smaller than {need} px")
    area = centre_crop(image, need)[0]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    offsets = [(0, 0)] + [tuple(int(v) for v in rng.integers(-margin, margin + 1, 2)) for _ in range(frames - 1)]
    if not moved:
        offsets = [(0, 0)] * frames
    clean_frames = []
    for oy, ox in offsets:
        window = area[margin + oy:margin + oy + 2 * size, margin + ox:margin + ox + 2 * size]
        clean_frames.append(window.reshape(size, 2, size, 2, 3).mean(axis=(1, 3)))
    noisy = [(np.round(np.clip(c + np.random.default_rng(k).normal(0, sigma / 255, c.shape), 0, 1) * 255) / 255
              ).astype(np.float32) for k, c in enumerate(clean_frames)]
    return clean_frames[0], noisy, [(oy / 2, ox / 2) for oy, ox in offsets]


def row(name: str, method: str, size: int, frames: int, reach: int, sigma: float, code: str) -> dict:
    import linr
    from linr.bench.common import psnr

    clean, burst, shifts = burst_of(name, size, frames, reach, sigma, moved=method != "aligned-oracle")
    photos = burst[:1] if method == "one-frame" else burst
    options = {"register": "translation"} if method == "registered" else {}
    started = time.perf_counter()
    result = linr.restore([linr.noisy(f) for f in photos], device="cpu", progress=False, **options)
    seconds = round(time.perf_counter() - started, 1)
    found = result.settings.get("registration") or []
    return {"image": name, "size": size, "sigma": sigma, "frames": frames, "method": method, "code": code,
            "psnr": round(psnr(clean, result.image), 3), "seconds": seconds,
            "shifts": [list(s) for s in shifts] if method != "aligned-oracle" else None,
            "found": found if method == "registered" else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=HELD_OUT)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--reach", type=int, default=3, help="largest shift each way, frame pixels")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--rows", required=True)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    import linr
    from linr.bench.common import resume_rows

    code = code_of(linr.__file__)
    jobs = [((name, args.size, args.sigma, args.frames, method, code),
             lambda n=name, m=method: row(n, m, args.size, args.frames, args.reach, args.sigma, code))
            for name in args.images.split(",") for method in args.methods.split(",")]
    resume_rows(args.rows, lambda r: (r["image"], r["size"], r["sigma"], r["frames"], r["method"], r["code"]), jobs)


if __name__ == "__main__":
    main()
