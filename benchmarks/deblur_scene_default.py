"""#15 deblurring a real photo: today's library default, end to end (``linr.restore`` of one
blurred photo with no option: since the twenty-ninth session free edges, 2000 steps on a cosine
rate, then ``grouped-deblur`` drawn to the fit's extension).

The photo is that of ``deblur_refine.py --scene``: a whole shared image blurred by Table 4's kernel
(25 x 25 Gaussian, sigma 1.6) with noise of std sqrt(2)/255 (seed 0), then its centre ``--crop``
px: the borders were blurred with what lay outside the frame. PSNR in the paper's convention (Y
of 8-bit-rounded RGB) of the whole crop and of its interior (the kernel's reach, 12 px, left out
of each side), for the fit's image and the refined one; wall seconds; the settings the default
resolved (boundary, steps, schedule); ``--tile`` and ``--boundary`` pass restore's tile setting
and a chosen boundary rule (rows record both, and the tile grid). One row per image appended to ROWS (resumable: an image and
crop already there is skipped); ``--table ROWS`` prints the rows as a markdown table, beside
``--against ROWS`` (the default before, ``deblur_scene.jsonl``, refined with free edges).

    nice .venv/bin/python benchmarks/deblur_scene_default.py deblur/parrots deblur/butterfly \\
        deblur/leaves deblur/starfish --crop 96 --rows benchmarks/deblur_scene_default_report.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def run(spec: str, crop: int, data: Path, threads: int | None, tile: str = "auto",
        boundary: str | None = None, tile_store: str | None = None, network: str | None = None) -> dict:
    import torch

    import linr
    from deblur_refine import scene
    from linr.bench.common import centre_crop, network_variant
    from linr.metrics import evaluate

    if threads:
        torch.set_num_threads(threads)
    whole, blurred_whole, kernel, _ = scene(spec, None, data)
    if crop > min(whole.shape[:2]) - (kernel.shape[0] - 1):
        raise SystemExit(f"--crop {crop}: at most {min(whole.shape[:2]) - kernel.shape[0] + 1} px of {spec}")
    clean = np.ascontiguousarray(centre_crop(whole, crop)[0])
    photo = np.ascontiguousarray(centre_crop(blurred_whole, crop)[0])
    reach = kernel.shape[0] // 2
    inside = np.s_[reach:-reach, reach:-reach]

    def scores(image: np.ndarray) -> dict:
        return {"whole": round(evaluate(clean, image, convention="paper", task="deblur")["psnr"], 4),
                "interior": round(evaluate(clean[inside], image[inside], convention="paper", task="deblur")["psnr"], 4)}

    t0 = time.perf_counter()
    store = {} if tile_store is None else {"tile_store": tile_store}  # finished tiles kept: a killed run resumes
    result = linr.restore([linr.blurred(photo, kernel, boundary=boundary)], device="cpu", progress=False, tile=tile,
                          threads=None, **store, **({} if network is None else network_variant(network, omega_0=30.0)))
    seconds = time.perf_counter() - t0
    s = result.settings
    return {"image": spec, "size": list(whole.shape[:2]), "crop": crop, "noise_seed": 0, "scene": True,
            "boundary": s["observations"][0]["operator"]["boundary"], "steps": s["steps"],
            "schedule": s["schedule"], "refine": {k: s["refine"].get(k) for k in ("name", "edges", "extension")},
            "tile": tile, "asked_boundary": boundary, **({"network": network, "lr": s["lr"]} if network else {}),
            "tiling": {k: s["tiling"][k] for k in ("tiles", "size", "overlap", "halo")} if "tiling" in s else None,
            "threads": torch.get_num_threads(), "seconds": round(seconds, 1),
            "fit_seconds": round(result.timings["fit_s"], 1), "refine_seconds": round(result.timings.get("refine_s", 0), 1),
            "fit": scores(result.fitted_image), "refined": scores(result.image)}


def table(rows: list[dict], against: list[dict]) -> str:
    before = {(r["image"], r["crop"]): r for r in against}
    lines = ["| image | crop | fit (whole / interior) | default (whole / interior) | before: default then | "
             "difference (whole / interior) | seconds |", "|---|---|---|---|---|---|---|"]
    sums: dict[str, list[float]] = {}
    for r in rows:
        b = before.get((r["image"], r["crop"]))
        old = b["refined"]["fit"]["free"] if b else None
        cells = [r["fit"]["whole"], r["fit"]["interior"], r["refined"]["whole"], r["refined"]["interior"]]
        diff = [r["refined"]["whole"] - old["whole"], r["refined"]["interior"] - old["interior"]] if old else None
        for key, value in zip(("fw", "fi", "rw", "ri"), cells):
            sums.setdefault(key, []).append(value)
        if old:
            sums.setdefault("ow", []).append(old["whole"])
            sums.setdefault("oi", []).append(old["interior"])
        lines.append(f"| {r['image']} | {r['crop']} | {cells[0]:.2f} / {cells[1]:.2f} | {cells[2]:.2f} / {cells[3]:.2f} | "
                     + (f"{old['whole']:.2f} / {old['interior']:.2f} | {diff[0]:+.2f} / {diff[1]:+.2f}" if old else "- | -")
                     + f" | {r['seconds']:.0f} |")
    if rows:
        mean = {k: float(np.mean(v)) for k, v in sums.items()}
        same = len(sums.get("ow", [])) == len(rows)
        lines.append(f"| **mean** | | {mean['fw']:.2f} / {mean['fi']:.2f} | **{mean['rw']:.2f} / {mean['ri']:.2f}** | "
                     + (f"{mean['ow']:.2f} / {mean['oi']:.2f} | **{mean['rw'] - mean['ow']:+.2f} / {mean['ri'] - mean['oi']:+.2f}**"
                        if same else "- | -") + f" | {np.mean([r['seconds'] for r in rows]):.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("images", nargs="*", help="FOLDER/NAME of the shared data (deblur/leaves)")
    parser.add_argument("--crop", type=int, default=96, help="the centre crop's side")
    parser.add_argument("--rows", help="rows file (JSONL), appended and resumed")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--tile", default="auto", help="restore's tile setting (auto, off, SIZE[:OVERLAP])")
    parser.add_argument("--boundary", choices=("free", "reflect", "circular"),
                        help="the blur's boundary rule (default: left open, the library's choice)")
    parser.add_argument("--tile-store", help="a folder that keeps a tiled restore's finished tiles (a rerun resumes)")
    parser.add_argument("--network", help="wW[:lrLR][:sSTEPS][:oOMEGA][:bf16]: a SIREN 7xW instead of the default's "
                        "network (omega_0 30 unless given; the default's rate and steps unless given)")
    parser.add_argument("--table", help="print a rows file as a markdown table")
    parser.add_argument("--against", help="rows of the default before (deblur_scene.jsonl)")
    args = parser.parse_args(argv)
    from linr.bench.common import resume_rows, table_or_rows

    if table_or_rows(args, table, parser):
        return 0
    from linr.bench import data_dir

    data = data_dir(None)
    resume_rows(args.rows, lambda r: (r["image"], r["crop"], r.get("tile", "auto"), r.get("asked_boundary"),
                                      r.get("network")),
                [((spec, args.crop, args.tile, args.boundary, args.network),
                  lambda spec=spec: run(spec, args.crop, data, args.threads, args.tile, args.boundary, args.tile_store,
                                        args.network))
                 for spec in args.images])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
