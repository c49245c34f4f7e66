"""``linr bench register``: multi-frame super-resolution from low-res frames that do not line up.

For each image (centre crop of ``--size`` of the set5 images by default) the clean crop is
shifted by random sub-pixel amounts (frame 0 unshifted, the others uniform in
``[-max_shift, max_shift]`` clean pixels per axis; a quintic spline shift with mirrored borders,
an interpolator independent of linr's bicubic one), each shifted image is downsampled by the
factor with the SR operator (DIP's lanczos2 by default, or ``--downsampler box``: a sensor's
pixel area), and optional Gaussian noise is added. Then the variants restore the clean crop:

- ``bicubic``: frame 0 upscaled (PIL bicubic);
- ``single``: linr on frame 0 alone;
- ``naive``: linr on all frames as if they were aligned;
- ``register``: all frames with ``register='translation'`` (estimated, then fitted);
- ``true``: all frames with the true shifts given and kept fixed (the registration's ceiling).

Rows (PSNR on [0, 1], data range 1, clipped, every channel, skimage; the registration's mean
absolute shift error in clean pixels; steps; wall time) are appended to ``--jobs`` as they
finish, and a rerun skips those done (resumable). The table goes to stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "VARIANTS", "simulate_frames"]

VARIANTS = ("bicubic", "single", "naive", "register", "true")


def register(sub: Any) -> None:
    p = sub.add_parser("register", help="multi-frame SR from misaligned low-res frames",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="test-image folder (default: $LINR_DATA or ../shared/data)")
    p.add_argument("--set", default="set5", help="image folder inside --data (default set5)")
    p.add_argument("--images", default=None, help="comma-separated image names (default: all)")
    p.add_argument("--size", type=int, default=128, help="centre crop side, clean pixels (default 128)")
    p.add_argument("--factor", type=int, default=4)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--max-shift", type=float, default=None,
                   help="largest shift per axis, clean pixels (default factor / 2: sub-pixel in the frames)")
    p.add_argument("--downsampler", default="lanczos2", choices=["lanczos2", "bicubic", "box"])
    p.add_argument("--noise", type=float, default=0.0, help="Gaussian noise std, 0-255 scale (default 0)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, from {', '.join(VARIANTS)}")
    p.add_argument("--steps", type=int, default=None, help="steps (default: the default preset's)")
    p.add_argument("--width", type=int, default=None, help="SIREN width (default: the preset's)")
    p.add_argument("--depth", type=int, default=None, help="SIREN depth (default: the preset's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the shifts and the noise")
    p.add_argument("--jobs", default="bench_out/register.jsonl", help="rows, appended and resumed")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_register)


def _shift(image: np.ndarray, t: tuple[float, float]) -> np.ndarray:
    from scipy import ndimage

    return np.stack([ndimage.shift(image[..., c], (-t[0], -t[1]), order=5, mode="mirror")
                     for c in range(image.shape[2])], axis=-1)


def simulate_frames(clean: np.ndarray, *, factor: int, frames: int, max_shift: float,
                    downsampler: str, noise: float, seed: int
                    ) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
    """Low-res frames of ``clean`` (H, W, C) on [0, 1]: frame k is ``clean`` moved so that
    ``frame_k(p) ~ clean(p + t_k)`` (t_0 = 0), downsampled, plus noise of std ``noise``/255.
    Returns the frames (float32) and the shifts (rows, columns) in clean pixels."""
    import torch

    from ..operators import Downsample

    rng = np.random.default_rng(seed)
    shifts = [(0.0, 0.0)] + [tuple(float(v) for v in rng.uniform(-max_shift, max_shift, 2))
                             for _ in range(frames - 1)]
    down = Downsample(factor, downsampler)
    out = []
    for t in shifts:
        moved = torch.from_numpy(np.ascontiguousarray(_shift(clean, t).transpose(2, 0, 1)))[None]
        low = down(moved)[0].numpy().transpose(1, 2, 0)
        if noise:
            low = low + rng.normal(0.0, noise / 255.0, low.shape)
        out.append(low.astype(np.float32))
    return out, shifts


def _row_key(row: dict[str, Any]) -> tuple:
    return tuple(row[k] for k in ("image", "variant", "size", "factor", "frames", "max_shift",
                                  "downsampler", "noise", "steps", "width", "depth", "seed"))


def cmd_register(args: argparse.Namespace) -> int:
    import torch
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    from . import data_dir
    from ..errors import InputError
    from ..images import read_image
    from ..kinds import lowres
    from ..problem import clean_shape
    from ..registration import register as register_frames
    from ..tasks import restore

    if args.threads:
        torch.set_num_threads(args.threads)
    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise InputError(f"unknown variant(s) {', '.join(unknown)}; choose from {', '.join(VARIANTS)}")
    if args.size % args.factor:
        raise InputError(f"--size {args.size} is not a multiple of --factor {args.factor}")
    folder = data_dir(args.data) / args.set
    names = args.images.split(",") if args.images else sorted(p.stem for p in folder.glob("*.png"))
    if not names:
        raise InputError(f"{folder}: no .png images")
    max_shift = args.factor / 2 if args.max_shift is None else args.max_shift
    jobs = Path(args.jobs)
    jobs.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if jobs.exists():
        for line in jobs.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[_row_key(row)] = row
    rows = []
    for index, name in enumerate(names):
        path = folder / f"{name}.png"
        if not path.exists():
            raise InputError(f"{path}: no such image")
        image = read_image(path)[0].astype(np.float64)
        h, w = image.shape[:2]
        if min(h, w) < args.size:
            raise InputError(f"{path} is {w}x{h}, smaller than --size {args.size}")
        top, left = (h - args.size) // 2, (w - args.size) // 2
        clean = image[top : top + args.size, left : left + args.size]
        frames, shifts = simulate_frames(clean, factor=args.factor, frames=args.frames,
                                         max_shift=max_shift, downsampler=args.downsampler,
                                         noise=args.noise, seed=args.seed + index)
        for variant in variants:
            row = {"image": name, "variant": variant, "size": args.size, "factor": args.factor,
                   "frames": args.frames, "max_shift": max_shift, "downsampler": args.downsampler,
                   "noise": args.noise, "steps": args.steps, "width": args.width, "depth": args.depth,
                   "seed": args.seed}
            if _row_key(row) in done:
                rows.append(done[_row_key(row)])
                continue
            t0 = time.perf_counter()
            extra: dict[str, Any] = {}
            if variant == "bicubic":
                up = [np.asarray(Image.fromarray(frames[0][..., c]).resize((args.size, args.size),
                                                                        Image.BICUBIC))
                      for c in range(clean.shape[2])]
                restored = np.stack(up, axis=-1)
            else:
                used = frames[:1] if variant == "single" else frames
                obs = [lowres(f, args.factor, kernel=args.downsampler) for f in used]
                model = None
                if args.width or args.depth:
                    from ..models import ModelConfig

                    model = ModelConfig(width=args.width or 256, depth=args.depth or 7)
                if variant == "true":
                    obs = register_frames(obs, shape=clean_shape(obs), shifts=shifts[1:], lr=0.0)
                result = restore(obs, steps=args.steps, model=model, device=args.device, progress=False,
                                 register="translation" if variant == "register" else None,
                                 reference=clean.astype(np.float32), threads=None)
                restored = result.image
                extra = {"steps_run": result.steps_run, "stop_step": result.stop_step}
                if variant == "register":
                    found = result.settings["registration"][1:]
                    err = [abs(f["shift_y"] - t[0]) + abs(f["shift_x"] - t[1])
                           for f, t in zip(found, shifts[1:])]
                    extra["shift_error"] = float(np.mean(err) / 2)
                    extra["shift_error_max"] = float(np.max(err))
            row.update(extra)
            row["psnr"] = float(peak_signal_noise_ratio(clean, np.clip(restored, 0, 1).astype(np.float64),
                                                        data_range=1.0))
            row["seconds"] = round(time.perf_counter() - t0, 1)
            with jobs.open("a") as f:
                f.write(json.dumps(row) + "\n")
            done[_row_key(row)] = row
            rows.append(row)
            print(f"{name} {variant}: {row['psnr']:.2f} dB ({row['seconds']:.0f} s)", flush=True)
    _print_table(rows, variants)
    return 0


def _print_table(rows: list[dict[str, Any]], variants: list[str]) -> None:
    names = list(dict.fromkeys(r["image"] for r in rows))
    by = {(r["image"], r["variant"]): r for r in rows}
    print("| image | " + " | ".join(variants) + " | register - single | register - true | shift error (px) |")
    print("|---" * (len(variants) + 4) + "|")
    sums: dict[str, list[float]] = {v: [] for v in variants}
    for name in names:
        cells = []
        for v in variants:
            r = by.get((name, v))
            cells.append("" if r is None else f"{r['psnr']:.2f}")
            if r is not None:
                sums[v].append(r["psnr"])
        reg, single, true = (by.get((name, v)) for v in ("register", "single", "true"))
        gain = f"{reg['psnr'] - single['psnr']:+.2f}" if reg and single else ""
        gap = f"{reg['psnr'] - true['psnr']:+.2f}" if reg and true else ""
        err = f"{reg['shift_error']:.3f}" if reg and "shift_error" in reg else ""
        print(f"| {name} | " + " | ".join(cells) + f" | {gain} | {gap} | {err} |")
    means = [f"{np.mean(sums[v]):.2f}" if sums[v] else "" for v in variants]
    print("| **mean** | " + " | ".join(means) + " | | | |")
