"""A low-res or blurred photo with transparent pixels (an RGBA PNG whose transparent pixels hold
RGB 0, as a cut-out or a sprite saved from an editor), restored as ``linr restore --lowres`` or
``--blurred`` reads it, against the same photo saved opaque, scored on the opaque pixels only.

    PYTHONPATH=src .venv/bin/python benchmarks/transparent_probe.py --kind lowres --size 128 \
        --settings opaque,transparent=half,transparent=disk --rows benchmarks/transparent_lowres128.jsonl
    PYTHONPATH=src .venv/bin/python benchmarks/transparent_probe.py --kind blurred --size 64 \
        --settings opaque,transparent=half --rows benchmarks/transparent_blurred64.jsonl

``--kind lowres``: the centre ``--size`` crop of a shared image (``FOLDER/NAME``; by default the
thirteen held out from every tuning of the defaults), downscaled x4 by PIL's Lanczos (the paper's
low-res input) and rounded to 8 bits; restored with ``--factor 4``. ``--kind blurred``: the whole
image blurred by Table 4's kernel (25 x 25 Gaussian, sigma 1.6, noise of std sqrt(2)/255, seed 0),
then its centre ``--size`` crop, rounded to 8 bits (a real photo: its borders were blurred with
what lay outside the frame); restored with ``--kernel gaussian:25:1.6``. ``transparent=half|disk``:
the photo's left half (or all but a centred disk of radius 0.3 of the side) transparent with RGB
0; ``opaque``: the same photo written opaque, scored on the same pixels of each mask
(``psnr_half``, ``psnr_disk``). The opaque pixels of a low-res photo cover their factor x factor
blocks of the restored image; those are scored. PSNR: standard convention (RGB, data range 1,
output clipped; scikit-image). One torch thread. One JSON line per (image, kind, size, setting,
code), appended as it finishes; a rerun skips rows already there (``code``: the commit of the
``linr`` imported, '+' for a changed tree, so rows of the code before a change sit beside those
after it).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from options_probe import DATA, HELD_OUT, code_of, opaque_where  # noqa: E402

FACTOR = 4
KERNEL = "gaussian:25:1.6"


def photo_of(kind: str, name: str, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The clean crop (the restoration's size) and the 8-bit photo of ``kind``."""
    from linr.bench.common import centre_crop, load_clean
    from linr.simulate import lanczos_downscale

    if kind == "lowres":
        clean = load_clean(DATA, name, size)
        photo = lanczos_downscale(clean, FACTOR)
    else:
        from deblur_refine import scene

        whole, blurred_whole, _, _ = scene(name, None, DATA)
        clean = np.ascontiguousarray(centre_crop(whole, size)[0])
        photo = np.ascontiguousarray(centre_crop(blurred_whole, size)[0])
    return clean, np.round(np.clip(photo, 0, 1) * 255) / 255


def read_as_the_cli(kind: str, photo: np.ndarray, opaque: np.ndarray | None):
    """``photo`` written as an 8-bit PNG (RGBA with RGB 0 where not ``opaque``) and read back as
    ``linr restore --KIND`` reads it."""
    from PIL import Image

    from linr.scene import load_scene

    pixels = np.round(photo * 255).astype(np.uint8)
    if opaque is not None:
        pixels = np.dstack([np.where(opaque[..., None], pixels, 0), np.where(opaque, 255, 0).astype(np.uint8)])
    options = {"factor": FACTOR} if kind == "lowres" else {"kernel": KERNEL}
    notes: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        path = f"{folder}/photo.png"
        Image.fromarray(pixels).save(path)
        observations, _, _ = load_scene({kind: path}, options, notes=notes)
    return observations, notes


def row(kind: str, name: str, setting: str, size: int, code: str) -> dict:
    import linr
    from linr.bench.common import psnr

    clean, photo = photo_of(kind, name, size)
    masks = ("half", "disk") if setting == "opaque" else (setting.partition("=")[2],)
    scale = FACTOR if kind == "lowres" else 1
    opaque = None if setting == "opaque" else opaque_where(photo.shape[:2], masks[0])
    observations, notes = read_as_the_cli(kind, photo, opaque)
    started = time.perf_counter()
    result = linr.restore(observations, device="cpu", progress=False)
    seconds = round(time.perf_counter() - started, 1)
    image = result.image if result.image.ndim == 3 else result.image[..., None]
    scores = {}
    for m in masks:
        where = np.kron(opaque_where(photo.shape[:2], m), np.ones((scale, scale), bool))
        scores[f"psnr_{m}"] = round(psnr(clean[where], image[where]), 3)
    return {"image": name, "kind": kind, "size": size, "setting": setting, "code": code, **scores,
            "seconds": seconds, "notes": [n for n in notes if "transparent" in n]}


def table(rows: list[dict], before: str, mask: str, after: str | None = None) -> str:
    """The rows as BENCHMARKS.md's table for one mask: per image the photo opaque, transparent with
    the codes ``before`` (comma-separated) and with ``after``'s (None: any other), the
    differences, and the means."""
    cells: dict[str, dict[str, float]] = {}
    seconds: dict[str, list[float]] = {"before": [], "after": []}
    for r in rows:
        if f"psnr_{mask}" not in r:
            continue
        which = "opaque" if r["setting"] == "opaque" else "before" if r["code"] in before.split(",") else \
            "after" if after is None or r["code"] in after.split(",") else None
        if which is None:
            continue
        cells.setdefault(r["image"], {})[which] = r[f"psnr_{mask}"]
        if which != "opaque":
            seconds[which].append(r["seconds"])
    full = {k: v for k, v in cells.items() if len(v) == 3}
    out = [f"| image | the photo opaque | transparent ({mask}), before | after | after - before | after - opaque |",
           "|---|" + "---:|" * 5]
    for image, c in full.items():
        out.append(f"| {image} | {c['opaque']:.2f} | {c['before']:.2f} | {c['after']:.2f} | "
                   f"{c['after'] - c['before']:+.2f} | {c['after'] - c['opaque']:+.2f} |")
    if full:
        m = {k: float(np.mean([c[k] for c in full.values()])) for k in ("opaque", "before", "after")}
        worst = min(c["after"] - c["opaque"] for c in full.values())
        out.append(f"| mean ({len(full)}) | {m['opaque']:.2f} | {m['before']:.2f} | {m['after']:.2f} | "
                   f"{m['after'] - m['before']:+.2f} | {m['after'] - m['opaque']:+.2f} (worst {worst:+.2f}) |")
        out.append(f"\nseconds (wall, a run): before {np.mean(seconds['before']):.0f}, after {np.mean(seconds['after']):.0f}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", choices=("lowres", "blurred"), required=True)
    parser.add_argument("--images", default=HELD_OUT)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--settings", default="opaque,transparent=half")
    parser.add_argument("--rows", required=True)
    parser.add_argument("--table", metavar="BEFORE", help="print the rows as a markdown table for the mask "
                        "of --settings' transparent=MASK, the transparent rows of the codes BEFORE (comma-separated) "
                        "being the before")
    parser.add_argument("--after", metavar="CODES", help="with --table: the transparent rows of these codes "
                        "(comma-separated) are the after (default: any code but BEFORE's)")
    args = parser.parse_args()
    if args.table:
        import json

        mask = next(s.partition("=")[2] for s in args.settings.split(",") if s.startswith("transparent="))
        print(table([json.loads(line) for line in Path(args.rows).read_text().splitlines() if line], args.table, mask,
                    args.after))
        return
    import torch

    torch.set_num_threads(1)
    import linr
    from linr.bench.common import resume_rows

    code = code_of(linr.__file__)
    jobs = [((name, args.kind, args.size, setting, code),
             lambda n=name, s=setting: row(args.kind, n, s, args.size, code))
            for name in args.images.split(",") for setting in args.settings.split(",")]
    resume_rows(args.rows, lambda r: (r["image"], r["kind"], r["size"], r["setting"], r["code"]), jobs)


if __name__ == "__main__":
    main()
