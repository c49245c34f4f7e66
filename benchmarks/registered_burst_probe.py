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
thread. ``--motion subpixel``: shifts drawn anywhere in the same reach, the image moved by a
quintic spline (scipy.ndimage, mirrored borders) before the block means; ``rotation:DEG`` the
same, each frame after the first also turned about the centre by up to DEG degrees each way
(which a translation cannot undo); ``local:PX`` the same shifts, each frame after the first also
moved by a smooth field of up to PX frame pixels (:func:`_local_field`: what no one shift or
turn undoes). One JSON line per (image, size, sigma, frames, method, code, motion), appended as it finishes; a
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


def burst_of(name: str, size: int, frames: int, reach: int, sigma: float, moved: bool = True,
             motion: str = "grid") -> tuple[np.ndarray, list[np.ndarray], list[tuple[float, float]]]:
    """The clean first frame, the noisy 8-bit frames and each frame's shift (rows, columns; frame
    pixels: the frame shows the scene moved by it) of ``name``'s burst. ``motion`` (module
    docstring): ``grid`` (whole image pixels), ``subpixel`` or ``rotation:DEG``."""
    from linr.bench.common import centre_crop
    from linr.images import read_image

    image = np.asarray(read_image(DATA / f"{name}.png")[0][..., :3], np.float64)
    margin = 2 * reach
    need = 2 * size + 2 * margin
    if min(image.shape[:2]) < need:
        raise SystemExit(f"{name}: {image.shape[1]}x{image.shape[0]} is smaller than {need} px")
    area = centre_crop(image, need)[0]
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    if motion == "grid":
        offsets = [(0, 0)] + [tuple(int(v) for v in rng.integers(-margin, margin + 1, 2)) for _ in range(frames - 1)]
    else:
        offsets = [(0.0, 0.0)] + [tuple(float(v) for v in rng.uniform(-margin, margin, 2)) for _ in range(frames - 1)]
    turning = motion.startswith("rotation")
    angles = [0.0] + [float(v) for v in rng.uniform(-1, 1, frames - 1) * float(motion.partition(":")[2] or 0)
                      * turning]
    fields = [None] + [_local_field(rng, area.shape[:2], 2 * float(motion.partition(":")[2] or 1))
                       if motion.startswith("local") else None for _ in range(frames - 1)]
    if not moved or motion == "still":  # the oracle's frames; 'still': a burst that needs no registration
        offsets, angles, fields = [(0, 0)] * frames, [0.0] * frames, [None] * frames
    clean_frames = []
    for (oy, ox), angle, field in zip(offsets, angles, fields):
        if motion in ("grid", "still"):
            window = area[margin + oy:margin + oy + 2 * size, margin + ox:margin + ox + 2 * size]
        elif field is not None:  # the frame shows the scene at p + offset + field(p) (a quintic spline)
            from scipy import ndimage

            yy, xx = np.mgrid[0:area.shape[0], 0:area.shape[1]].astype(np.float64)
            at = (yy + oy + field[0], xx + ox + field[1])
            window = np.stack([ndimage.map_coordinates(area[..., c], at, order=5, mode="reflect")
                               for c in range(3)], axis=-1)[margin:margin + 2 * size, margin:margin + 2 * size]
        else:  # moved by a quintic spline (not the Fourier move linr aligns by), turned about the centre first
            from scipy import ndimage

            turned = ndimage.rotate(area, angle, axes=(1, 0), reshape=False, order=5, mode="reflect") if angle else area
            window = ndimage.shift(turned, (-oy, -ox, 0), order=5, mode="reflect")[margin:margin + 2 * size,
                                                                                  margin:margin + 2 * size]
        clean_frames.append(window.reshape(size, 2, size, 2, 3).mean(axis=(1, 3)))
    noisy = [(np.round(np.clip(c + np.random.default_rng(k).normal(0, sigma / 255, c.shape), 0, 1) * 255) / 255
              ).astype(np.float32) for k, c in enumerate(clean_frames)]
    return clean_frames[0], noisy, [(oy / 2, ox / 2) for oy, ox in offsets]


def _local_field(rng: np.random.Generator, shape: tuple[int, int], largest: float) -> np.ndarray:
    """A smooth displacement field (2, H, W; image pixels) whose largest length is ``largest``:
    per component two plane waves of random direction and phase, their wavelengths between the
    image's side and twice it (parallax, a lens's breathing, a subject's slow motion)."""
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    field = np.zeros((2, h, w))
    for component in range(2):
        for _ in range(2):
            angle, phase = rng.uniform(0, 2 * np.pi, 2)
            wavelength = rng.uniform(1, 2) * max(h, w)
            field[component] += np.sin(2 * np.pi * (np.cos(angle) * yy + np.sin(angle) * xx) / wavelength + phase)
    return field * largest / np.hypot(*field).max()


def row(name: str, method: str, size: int, frames: int, reach: int, sigma: float, code: str,
        motion: str = "grid") -> dict:
    import linr
    from linr.bench.common import psnr

    clean, burst, shifts = burst_of(name, size, frames, reach, sigma, moved=method != "aligned-oracle", motion=motion)
    photos = burst[:1] if method == "one-frame" else burst
    options = {"register": "translation"} if method == "registered" else {}
    started = time.perf_counter()
    result = linr.restore([linr.noisy(f) for f in photos], device="cpu", progress=False, **options)
    seconds = round(time.perf_counter() - started, 1)
    found = result.settings.get("registration") or []
    return {"image": name, "size": size, "sigma": sigma, "frames": frames, "method": method, "code": code,
            **({"motion": motion} if motion != "grid" else {}),
            "psnr": round(psnr(clean, result.image), 3), "seconds": seconds,
            "shifts": [list(s) for s in shifts] if method != "aligned-oracle" else None,
            "found": found if method == "registered" else None}


def table(rows: list[dict], before: str) -> str:
    """The rows as BENCHMARKS.md's table: per image, the joint fit (``registered`` rows of the
    code ``before``), the aligned mean (``registered`` rows of any other code), the first frame
    alone and the aligned oracle, PSNR and wall seconds, and the means."""
    cells: dict[str, dict[str, tuple[float, float]]] = {}
    for r in rows:
        method = "joint" if r["method"] == "registered" and r["code"] == before else r["method"]
        cells.setdefault(r["image"], {})[method] = (r["psnr"], r["seconds"])
    order = ("joint", "registered", "one-frame", "aligned-oracle")
    out = ["| image | joint fit, learned shifts (before) | aligned, then the mean (now) | first frame alone | "
           "frames unmoved (oracle) | now - before | now - first frame | oracle - now | seconds (before / now) |",
           "|---|" + "---:|" * 8]
    full = [c for c in cells.values() if all(m in c for m in order)]
    for image, c in cells.items():
        if not all(m in c for m in order):
            continue
        p = {m: c[m][0] for m in order}
        out.append(f"| {image} | {p['joint']:.2f} | {p['registered']:.2f} | {p['one-frame']:.2f} | "
                   f"{p['aligned-oracle']:.2f} | {p['registered'] - p['joint']:+.2f} | "
                   f"{p['registered'] - p['one-frame']:+.2f} | {p['aligned-oracle'] - p['registered']:+.2f} | "
                   f"{c['joint'][1]:.0f} / {c['registered'][1]:.0f} |")
    if full:
        mean = {m: float(np.mean([c[m][0] for c in full])) for m in order}
        out.append(f"| mean ({len(full)}) | {mean['joint']:.2f} | {mean['registered']:.2f} | {mean['one-frame']:.2f} | "
                   f"{mean['aligned-oracle']:.2f} | {mean['registered'] - mean['joint']:+.2f} | "
                   f"{mean['registered'] - mean['one-frame']:+.2f} | {mean['aligned-oracle'] - mean['registered']:+.2f} | "
                   f"{np.mean([c['joint'][1] for c in full]):.0f} / {np.mean([c['registered'][1] for c in full]):.0f} |")
    return "\n".join(out)


def summary(path: str, rows: list[dict]) -> str:
    """One markdown row of a rows file: its level and frames, the means of the aligned mean (rows
    of ``registered`` as the code ran them), the first frame alone and the oracle, the least gain
    over the first frame, the largest gap to the oracle and the mean seconds of the aligned mean."""
    cells: dict[str, dict[str, dict]] = {}
    for r in rows:
        cells.setdefault(r["image"], {})[r["method"]] = r
    full = [c for c in cells.values() if all(m in c for m in METHODS)]
    mean = {m: float(np.mean([c[m]["psnr"] for c in full])) for m in METHODS}
    gain = [c["registered"]["psnr"] - c["one-frame"]["psnr"] for c in full]
    gap = [c["aligned-oracle"]["psnr"] - c["registered"]["psnr"] for c in full]
    first = full[0]["registered"]
    return (f"| {Path(path).name} | {first['sigma']:g} | {first['frames']} | {len(full)} | {mean['registered']:.2f} | "
            f"{mean['one-frame']:.2f} | {mean['aligned-oracle']:.2f} | {np.mean(gain):+.2f} (least {min(gain):+.2f}) | "
            f"{np.mean(gap):+.2f} (largest {max(gap):+.2f}) | "
            f"{np.mean([c['registered']['seconds'] for c in full]):.1f} |")


def motion_table(rows: list[dict], before: str) -> str:
    """Per motion, the means of the aligned mean with the code(s) ``before`` (comma-separated) and with any other code
    (``registered`` rows), of the first frame alone and of the oracle, over the images with all
    four, and the least and largest change per image."""
    cells: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        method = ("before" if r["code"] in before.split(",") else "after") if r["method"] == "registered" else r["method"]
        cells.setdefault((r.get("motion", "grid"), r["image"]), {})[method] = r["psnr"]
    order = ("before", "after", "one-frame", "aligned-oracle")
    out = ["| motion | images | aligned mean, before | after | first frame alone | oracle | after - before "
           "(least / largest) | after - first frame (least) |", "|---|" + "---:|" * 7]
    for motion in dict.fromkeys(m for m, _ in cells):
        full = [c for (m, _), c in cells.items() if m == motion and all(k in c for k in order)]
        if not full:
            continue
        mean = {k: float(np.mean([c[k] for c in full])) for k in order}
        change = [c["after"] - c["before"] for c in full]
        gain = [c["after"] - c["one-frame"] for c in full]
        out.append(f"| {motion} | {len(full)} | {mean['before']:.2f} | {mean['after']:.2f} | {mean['one-frame']:.2f} | "
                   f"{mean['aligned-oracle']:.2f} | {np.mean(change):+.2f} ({min(change):+.2f} / {max(change):+.2f}) | "
                   f"{np.mean(gain):+.2f} ({min(gain):+.2f}) |")
    return "\n".join(out)


def shift_errors(images: list[str], size: int, frames: int, reach: int, sigma: float, motion: str = "grid") -> str:
    """How far the shifts found are from the true ones (px, the distance), over the frames after
    the first of every image's burst: the correlation's estimate alone
    (:func:`linr.registration.estimate_shift`) and the shift :func:`linr.registration.aligned_to_first`
    moves by (refined by least squares): one markdown row, mean and largest."""
    from linr.registration import aligned_to_first, estimate_shift

    found: dict[str, list[float]] = {"correlation": [], "refined": []}
    for name in images:
        _, burst, truth = burst_of(name, size, frames, reach, sigma, motion=motion)
        _, moved = aligned_to_first(burst)
        for k in range(1, frames):
            first = estimate_shift(burst[0], burst[k])
            found["correlation"].append(float(np.hypot(first[0] - truth[k][0], first[1] - truth[k][1])))
            found["refined"].append(float(np.hypot(moved[k][0] - truth[k][0], moved[k][1] - truth[k][1])))
    return (f"| {sigma:g} | {len(found['refined'])} | " + " | ".join(
        f"{np.mean(v):.3f} / {max(v):.3f}" for v in found.values()) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=HELD_OUT)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--frames", type=int, default=3)
    parser.add_argument("--reach", type=int, default=3, help="largest shift each way, frame pixels")
    parser.add_argument("--sigma", type=float, default=25.0)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--rows", default=None)
    parser.add_argument("--motion", default="grid", help="grid (whole image pixels: half frame pixels), still (not "
                        "moved: what registration costs a burst that needs none), subpixel "
                        "(any shift, by a quintic spline), rotation:DEG (subpixel, turned by up to DEG degrees "
                        "each way first) or local:PX (subpixel, moved by a smooth field of up to PX px too)")
    parser.add_argument("--shift-errors", metavar="SIGMAS", help="print how far the shifts found are from the "
                        "true ones at these noise levels (e.g. 15,25,50); no restoration")
    parser.add_argument("--summary", action="store_true", help="print one markdown row of means per rows "
                        "file (--rows A,B,...; with --table BEFORE, that code's 'registered' rows left out)")
    parser.add_argument("--table", metavar="BEFORE", help="print the rows as a markdown table, the "
                        "'registered' rows of code BEFORE being the joint fit's")
    parser.add_argument("--motion-table", metavar="BEFORE", help="print one markdown row per motion: the "
                        "'registered' rows of code BEFORE against those of any other code (rows of --size, "
                        "--sigma and --frames; --rows may name several files: the first one's rows, the others' first frame, oracle and "
                        "BEFORE rows read)")
    args = parser.parse_args()
    if args.shift_errors:
        print("| sigma | frames | correlation alone: mean / largest (px) | refined (adopted) |\n|---|---:|---:|---:|")
        for sigma in args.shift_errors.split(","):
            print(shift_errors(args.images.split(","), args.size, args.frames, args.reach, float(sigma), args.motion))
        return
    if args.motion_table:
        import json

        rows = [r for k, path in enumerate(args.rows.split(","))  # the first file's rows, the others' but the
                for r in (json.loads(line) for line in Path(path).read_text().splitlines() if line)  # 'registered'
                if k == 0 or r["method"] != "registered" or r["code"] in args.motion_table.split(",")]  # other code
        print(motion_table([r for r in rows if (r["size"], r["sigma"], r["frames"]) == (args.size, args.sigma, args.frames)],
                           args.motion_table))
        return
    if args.table or args.summary:
        import json

        if args.summary:
            print("| rows | sigma | frames | images | aligned, then the mean | first frame alone | frames unmoved "
                  "(oracle) | mean - first frame | oracle - mean | seconds (mean) |\n|---|" + "---:|" * 9)
        for path in args.rows.split(","):
            rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line]
            if args.summary:  # the joint fit's rows (of the code --table names) left out; a row per motion
                for motion in dict.fromkeys(r.get("motion", "grid") for r in rows):
                    print(summary(path if motion == "grid" else f"{path} ({motion})",
                                  [r for r in rows if not (r["method"] == "registered" and r["code"] == args.table)
                                   and r.get("motion", "grid") == motion]))
            else:
                print(table(rows, args.table))
        return
    if args.rows is None:
        parser.error("--rows is required")
    import torch

    torch.set_num_threads(1)
    import linr
    from linr.bench.common import resume_rows

    code = code_of(linr.__file__)
    jobs = [((name, args.size, args.sigma, args.frames, method, code, args.motion),
             lambda n=name, m=method: row(n, m, args.size, args.frames, args.reach, args.sigma, code, args.motion))
            for name in args.images.split(",") for method in args.methods.split(",")]
    resume_rows(args.rows, lambda r: (r["image"], r["size"], r["sigma"], r["frames"], r["method"], r["code"],
                                      r.get("motion", "grid")), jobs)


if __name__ == "__main__":
    main()
