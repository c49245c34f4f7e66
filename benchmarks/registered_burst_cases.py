"""Two registered bursts a new user tried (fifty-eighth session): four 64-px frames of kodim01 of
which the last is a crop of baboon (a frame of another scene), and four frames of a smooth crop
of peppers (one edge; its shifts hard to find). Frames are crops of the shared image at whole-pixel
offsets (0, 0), (2, -3), (-4, 1), (3, 4) (rows, columns), Gaussian noise of sigma 25 (seed k for
frame k), clipped and rounded to 8 bits; ``linr.restore`` of the first frame alone and of the burst
with ``register='translation'``. PSNR: standard convention (RGB, data range 1, output clipped;
scikit-image) against the clean first frame. One JSON line per case, printed and appended to
``--rows`` (with the commit of the ``linr`` imported); one torch thread.

    PYTHONPATH=src .venv/bin/python benchmarks/registered_burst_cases.py --rows benchmarks/registered_burst_cases.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from options_probe import DATA, code_of  # noqa: E402

OFFSETS = ((0, 0), (2, -3), (-4, 1), (3, 4))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", required=True)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    import linr
    from linr.bench.common import append_row, psnr
    from linr.images import read_image

    def crop(name: str, top: int, left: int) -> np.ndarray:
        return np.asarray(read_image(DATA / f"{name}.png")[0][top:top + 64, left:left + 64, :3], np.float64)

    def noisy(clean: np.ndarray, seed: int) -> np.ndarray:
        noise = np.random.default_rng(seed).normal(0, 25 / 255, clean.shape)
        return (np.round(np.clip(clean + noise, 0, 1) * 255) / 255).astype(np.float32)

    cases = {
        "a frame of another scene": ("set9/kodim01", 224, 352,
                                     lambda k, dy, dx: crop("set9/baboon", 200, 200) if k == 3 else None),
        "a smooth crop": ("set9/peppers", 150, 150, lambda k, dy, dx: None),
    }
    code = code_of(linr.__file__)
    for case, (name, top, left, other) in cases.items():
        clean = crop(name, top, left)
        frames = []
        for k, (dy, dx) in enumerate(OFFSETS):
            scene = other(k, dy, dx)
            frames.append(noisy(crop(name, top + dy, left + dx) if scene is None else scene, k))
        one = linr.restore([linr.noisy(frames[0])], device="cpu", progress=False)
        burst = linr.restore([linr.noisy(f) for f in frames], register="translation", device="cpu", progress=False)
        found = burst.settings.get("registration") or []
        row = {"case": case, "code": code, "first_frame": round(psnr(clean, one.image), 3),
               "registered": round(psnr(clean, burst.image), 3),
               "shifts": [[t["shift_y"], t["shift_x"]] for t in found[1:]],
               "first_frame_taken": [t.get("first_frame_taken") for t in found[1:]]}
        append_row(args.rows, row)
        print(row, flush=True)


if __name__ == "__main__":
    main()
