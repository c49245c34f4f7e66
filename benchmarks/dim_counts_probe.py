"""Dim 16-bit photon counts (a microscopist's: a few tens to hundreds of photons at the scene's
brightest, stored as raw counts of 65535) restored as ``linr restore --noise poisson`` does, mapped
by the type's range (``--range 0:65535``, the rule before the sixty-fourth session) or by the low
bits the counts fill (the default since): one photo and three-frame bursts, by the default route
(the Anscombe transform; the likelihood for a burst whose frames' levels differ) and the photon
likelihood asked for. PSNR of the restored counts / peak against the clean crop
(greyscale, data range 1, clipped: the standard convention). One torch thread; resumable rows.

    python benchmarks/dim_counts_probe.py benchmarks/dim_counts_heldout.jsonl
    python benchmarks/dim_counts_probe.py benchmarks/dim_counts_heldout.jsonl --table
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from linr.bench.common import load_clean, psnr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from probe_common import grid_run  # noqa: E402

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HELD_OUT = ("set9/baboon,set9/f16,set9/house,set9/kodim01,set9/kodim02,set9/kodim03,set9/kodim12,"
            "set9/peppers,deblur/leaves,deblur/parrots,deblur/starfish,inpaint/library,inpaint/vase")
MAPPINGS = {"type": ["--range", "0:65535"], "bits": []}
METHODS = {"default": [], "likelihood": ["--photon-method", "likelihood"]}
"""The default route (the Anscombe transform for one photo and a burst whose frames' levels agree,
else the likelihood) and the likelihood asked for."""


def row(name: str, peak: float, frames: int, method: str, mapping: str, size: int) -> dict:
    import tifffile

    from linr.cli import main

    clean = load_clean(DATA, f"{name}:grey", size)[..., 0]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as folder:
        for k in range(frames):
            tifffile.imwrite(f"{folder}/f{k}.tif", rng.poisson(clean * peak).astype(np.uint16))
        out = f"{folder}/out.tif"
        argv = ["restore", "--noisy", f"{folder}/f*.tif", "--noise", "poisson", *METHODS[method],
                "-o", out, "--device", "cpu", "--quiet", "--report", f"{folder}/r.json", *MAPPINGS[mapping]]
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
            code = main(argv)
        seconds = time.perf_counter() - start
        if code != 0:
            raise SystemExit(f"{name}: {err.getvalue()}")
        restored = tifffile.imread(out).astype(np.float64) / peak
        first = tifffile.imread(f"{folder}/f0.tif").astype(np.float64) / peak
        route = (json.loads(Path(f"{folder}/r.json").read_text())["settings"].get("photon") or {}).get("method")
    return {"key": f"{name}|{peak:g}|{frames}|{method}|{mapping}|{size}", "name": name, "peak": peak,
            "frames": frames, "method": method, "mapping": mapping, "size": size,
            "psnr": psnr(clean, restored), "input_psnr": psnr(clean, first),
            "brightness": float(restored.mean() / clean.mean()), "seconds": seconds, "route": route}


def table(rows: dict) -> str:
    cases = sorted({(r["peak"], r["frames"], r["method"]) for r in rows.values()})
    lines = ["| photons at white | frames | route asked | crops | type's range (before) | own bits (now) | now - before "
             "(worst) | brightness before / now (furthest from 1) | likelihood taken before / now |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|"]
    for peak, frames, method in cases:
        pairs = {}
        for r in rows.values():
            if (r["peak"], r["frames"], r["method"]) == (peak, frames, method):
                pairs.setdefault(r["name"], {})[r["mapping"]] = r
        both = [p for p in pairs.values() if len(p) == 2]
        if not both:
            continue
        before = np.array([p["type"]["psnr"] for p in both])
        now = np.array([p["bits"]["psnr"] for p in both])
        far = lambda key: max((p[key]["brightness"] for p in both), key=lambda b: abs(np.log(b)))  # noqa: E731
        taken = lambda key: sum(p[key].get("route") == "likelihood" for p in both)  # noqa: E731
        lines.append(f"| {peak:g} | {frames} | {method} | {len(both)} | {before.mean():.2f} | {now.mean():.2f} | "
                     f"{(now - before).mean():+.2f} ({(now - before).min():+.2f}) | {far('type'):.2f} / "
                     f"{far('bits'):.2f} | {taken('type')} / {taken('bits')} |")
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rows", type=Path)
    p.add_argument("--images", default=HELD_OUT)
    p.add_argument("--peaks", default="10,40")
    p.add_argument("--frames", default="1,3")
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--table", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    grid_run(args.rows, table, args.table, [
        (f"{name}|{peak:g}|{frames}|{method}|{mapping}|{args.size}",
         lambda name=name, peak=peak, frames=frames, method=method, mapping=mapping:
         row(name, peak, frames, method, mapping, args.size))
        for peak in map(float, args.peaks.split(",")) for frames in map(int, args.frames.split(","))
        for method in METHODS for name in args.images.split(",") for mapping in MAPPINGS])

if __name__ == "__main__":
    main()
