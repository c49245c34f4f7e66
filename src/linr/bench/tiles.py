"""``linr bench tiles``: whole-image fits against tiled ones on full-size test images.

For each case (denoising sigma 25 on set9, SR x4 on set5, inpainting 10% on kate, joint noisy +
x4 low-res on set5), each image and each variant, restore with linr's defaults (automatic stop)
and record the PSNR (paper convention: RGB, unclipped, data range 1; and standard: clipped), the
wall time, the steps per tile, and a seam check: the PSNR over the pixels where tiles overlap
(where blending happens) against the PSNR over the rest, for the tiled result and for the whole
fit on the same pixels.

A variant is ``off`` (one fit of the whole image), ``SIZE[:OVERLAP]`` (tiles), optionally with
``@WIDTH`` (the SIREN's width per tile, e.g. ``128:32@128``) and ``/DEPTH``. Corruptions use the
seeds of ``linr bench`` (profile seed 0), so a whole-image row here is the same fit as the
'LINR (default)' column of the paper profile's tables. Rows are appended to ``--jobs`` as they
finish and a rerun skips them (resumable). With ``--tile-store DIR`` a tiled row's finished tiles
are kept in a folder under DIR until its row is written, so that a killed run (a session's end)
resumes that row without refitting them; the row's seconds then add the resumed tiles' fit
seconds to the last run's wall time and say how many tiles were resumed.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["register", "CASES", "parse_variant", "seam_regions"]

CASES = {
    "denoise": ("set9", ("noisy",)),
    "sr": ("set5", ("lowres",)),
    "inpaint": ("inpaint", ("masked",)),
    "joint": ("set5", ("noisy", "lowres")),
}
"""Image folder and observation kinds of each case."""

PARAMS = {"sigma": 25.0, "factor": 4, "keep": 0.1, "blur": (25, 1.6)}


def register(sub: Any) -> None:
    p = sub.add_parser("tiles", help="whole-image vs tiled restoration on full-size images",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="test-image folder (default: $LINR_DATA or ../shared/data)")
    p.add_argument("--cases", default="denoise", help=f"comma-separated, from {', '.join(CASES)}")
    p.add_argument("--images", default=None,
                   help="comma-separated image names, run in this order (default: all of the case's set, in name order)")
    p.add_argument("--variants", default="off,256:32",
                   help="comma-separated: off, SIZE[:OVERLAP][@WIDTH][/DEPTH] (default off,256:32)")
    p.add_argument("--crop", type=int, default=None, help="centre crop of this side first (smoke runs)")
    p.add_argument("--steps", type=int, default=None, help="step budget (default: the preset's)")
    p.add_argument("--jobs", default="bench_out/tiles.jsonl", help="rows, appended and resumed")
    p.add_argument("--tile-store", default=None, metavar="DIR",
                   help="keep each tiled row's finished tiles under DIR until its row is written, so that a "
                        "killed run resumes them (default: none kept)")
    p.add_argument("--workers", type=int, default=1,
                   help="fit a tiled row's tiles in this many local worker processes, --threads each (default 1: "
                        "in this process; the same image to the bit)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None)
    p.set_defaults(func=cmd_tiles)


def parse_variant(text: str) -> dict[str, Any]:
    """``off`` / ``SIZE[:OVERLAP][@WIDTH][/DEPTH]`` as tile, width and depth."""
    from ..errors import InputError
    from ..tiling import parse_tile

    rest, _, depth = text.partition("/")
    tile, _, width = rest.partition("@")
    try:
        return {"tile": parse_tile(tile).describe(), "width": int(width) if width else None,
                "depth": int(depth) if depth else None}
    except ValueError:
        raise InputError(f"variant {text!r}: expected off or SIZE[:OVERLAP][@WIDTH][/DEPTH]") from None


def seam_regions(grid: Any) -> np.ndarray:
    """(H, W) bool: pixels inside the overlap of two or more tiles (where blending happens)."""
    count = np.zeros(grid.shape, np.int32)
    for window in grid.windows:
        rows, cols = window.slices
        count[rows, cols] += 1
    return count > 1


def _psnr(clean: np.ndarray, image: np.ndarray, where: np.ndarray) -> float | None:
    if not where.any():
        return None
    err = float(np.mean((np.clip(image, 0, 1)[where] - clean[where]) ** 2))
    return float(10 * np.log10(1 / err)) if err > 0 else None


def _scene(case: str, path: Path, crop: int | None) -> tuple[np.ndarray, list[Any], dict[str, int]]:
    from ..images import read_image
    from ..kinds import KINDS
    from ..simulate import crop_to_multiple
    from .common import centre_crop, corruption_seed

    clean, _ = read_image(path)
    clean = clean[..., :3]
    clean, _ = centre_crop(clean, crop)
    kinds = CASES[case][1]
    if "lowres" in kinds:
        clean = crop_to_multiple(clean, PARAMS["factor"])
    arrays: dict[str, Any] = {}
    seeds = {}
    for kind in kinds:
        sim = KINDS[kind].simulation
        seed = None
        if sim.seeded:
            seed = seeds[kind] = corruption_seed(0, kind, path.stem)
        made = sim.make(clean, PARAMS, seed)
        arrays[kind] = made.pop("image")
        arrays.update(made)
    observations = [KINDS[k].simulation.observe(arrays, arrays[k], PARAMS) for k in kinds]
    return np.ascontiguousarray(clean), observations, seeds


def run_one(case: str, path: Path, variant: dict[str, Any], *, crop: int | None, steps: int | None,
            device: str, tile_store: Path | None = None, workers: int = 1) -> dict[str, Any]:
    """One restoration and its measurements (see the module's docstring). ``tile_store``: the
    folder keeping a tiled restoration's finished tiles (resumed from it; the caller removes it
    once the row is written; the bench's own: one of other settings is emptied). ``workers``:
    local processes fitting a tiled row's tiles, each with this process's torch threads (the
    same image, to the bit, as one); a variant that fits the image whole runs here."""
    from dataclasses import replace

    from ..metrics import evaluate
    from ..models import ModelConfig
    from ..tasks import pilot_fit, resolve, restore, tile_grid

    clean, observations, seeds = _scene(case, path, crop)
    model = None
    if variant["width"] or variant["depth"]:
        model = replace(ModelConfig(), **{k: variant[k] for k in ("width", "depth") if variant[k]})
    obs, _ = resolve(observations, device=device)
    pilot = pilot_fit(observations, preset=None, model=model)
    tiled = None if variant["tile"] == "off" else tile_grid(obs, tile=variant["tile"], pilot=pilot)
    store = None if tile_store is None or tiled is None else str(tile_store)
    executor = threads = None
    if workers > 1 and tiled is not None:  # one fit of the whole image has no tiles to spread
        import torch

        from ..batch.local import PoolBackend
        from ..tiling import fit_tile_group

        executor, threads = PoolBackend(workers, task=fit_tile_group), torch.get_num_threads()
    t0 = time.perf_counter()
    try:  # the bench owns the store: one of another fingerprint (settings since changed) is emptied
        result = restore(observations, steps=steps, device=device, model=model, tile=variant["tile"],
                         progress=False, tile_store=store, tile_store_owned=store is not None,
                         tile_executor=executor, tile_threads=threads, threads=None)
    except BaseException:
        if executor is not None:
            executor.close(abort=True)
        raise
    if executor is not None:
        executor.close(abort=False)
    seconds = time.perf_counter() - t0
    tiles = result.settings.get("tiles", [])
    resumed = [t for t in tiles if t.get("resumed")]
    row: dict[str, Any] = {
        "size": list(clean.shape[:2]), "seeds": seeds,
        "seconds": seconds + sum(t["fit_s"] for t in resumed),
        "psnr_paper": evaluate(clean, result.image, convention="paper")["psnr"],
        "psnr_standard": evaluate(clean, result.image, convention="standard")["psnr"],
        "steps_run": result.steps_run, "stop_step": result.stop_step, "stop_reason": result.stop_reason,
        "tiling": result.settings.get("tiling"),
        "tile_steps": [t["steps_run"] for t in tiles],
    }
    if tiles:  # each tile's fit on its own thread(s), wherever and whenever it ran
        row["tile_fit_s"] = sum(t["fit_s"] for t in tiles)
    if executor is not None:
        row["workers"] = workers
    if resumed:  # fitted by an earlier, killed run: their fit seconds (one after the other) are in
        # `seconds`, their set-up is not; with workers, the last run's tiles overlapped
        row.update(resumed_tiles=len(resumed), resumed_fit_s=sum(t["fit_s"] for t in resumed),
                   last_run_s=seconds)
    grid = tiled if tiled is not None else tile_grid(obs, tile="256:32", pilot=pilot)
    if grid is not None:
        seam = seam_regions(grid)
        row.update(seam_grid=grid.describe(), psnr_overlap=_psnr(clean, result.image, seam),
                   psnr_rest=_psnr(clean, result.image, ~seam))
    return row


def _key(case: str, path: Path, variant: dict[str, Any], crop: int | None, steps: int | None) -> str:
    """A row's key; a denoising row's also names what the default does to one noisy photo now (its
    prior, refinement and, with no network named, the pilot network), so that a rerun after the
    default changed fits again rather than taking an earlier default's row for today's (rows
    made before the twelfth session's pilot have no such entry)."""
    key: dict[str, Any] = {"case": case, "image": f"{path.parent.name}/{path.name}", "variant": variant,
                           "crop": crop, "steps": steps}
    if case == "denoise":
        from ..tasks import denoise_defaults_tag

        pilot = not (variant["width"] or variant["depth"])
        key["defaults"] = denoise_defaults_tag(pilot=pilot)
        if pilot and variant["tile"] == "auto":  # since the fourteenth session 'auto' tiles the pilot's larger images
            from ..tasks import DENOISE_WHOLE_UP_TO

            key["auto_whole_up_to"] = DENOISE_WHOLE_UP_TO
            from ..tasks import DENOISE_TILE_SIZE, TILE_SIZE

            if DENOISE_TILE_SIZE != TILE_SIZE:  # the pilot's own tiles since the forty-sixth session
                key["pilot_tile"] = DENOISE_TILE_SIZE
    if case == "inpaint":  # what the default refines an inpainting with (since the fourteenth session)
        from ..refine import GroupedFill
        from ..tasks import DEFAULT_INPAINT_REFINE

        key["inpaint_refine"] = DEFAULT_INPAINT_REFINE
        key["fill_any_size"] = GroupedFill.BIHARMONIC_UP_TO  # tiles refined too (twenty-second session)
        key["biharmonic_missing_up_to"] = GroupedFill.BIHARMONIC_MISSING_UP_TO  # sixty-first session
        if not (variant["width"] or variant["depth"]):  # the defaults' network (omega_0 15 since the twenty-third session)
            from ..tasks import DEFAULT_INPAINT_MODEL

            key["inpaint_omega_0"] = DEFAULT_INPAINT_MODEL.omega_0
    if case == "sr":  # the default refines a whole super-resolution (twenty-second session)
        from ..tasks import sr_refine_for

        # [grouped-views, "any size"] from the twenty-third session to the thirty-eighth (up to 768 px whole before)
        key["sr_refine"] = [sr_refine_for(PARAMS["factor"])]
    if case == "joint":  # what the default refines a noisy photo and its low-res view with (nineteenth session)
        from ..tasks import DEFAULT_JOINT_REFINE

        key["joint_refine"] = DEFAULT_JOINT_REFINE
    return json.dumps(key, sort_keys=True)


def cmd_tiles(args: argparse.Namespace) -> int:
    import torch

    from ..errors import InputError
    from ..fit import resolve_device
    from . import data_dir
    from .common import commit_id, cpu_name

    if args.threads:
        torch.set_num_threads(args.threads)
    data = data_dir(args.data)
    device = str(resolve_device(args.device))
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for case in cases:
        if case not in CASES:
            raise InputError(f"unknown case {case!r}; choose from {', '.join(CASES)}")
    variants = [parse_variant(v.strip()) for v in args.variants.split(",") if v.strip()]
    wanted = None if args.images is None else [n.strip() for n in args.images.split(",") if n.strip()]
    if wanted == []:
        raise InputError("--images: give one or more image names (or leave it out for all of each case's set)")
    if wanted is not None:  # an unknown name: now, before any folder or fit
        _check_names(data, wanted, cases)
    jobs = Path(args.jobs)
    jobs.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if jobs.exists():
        for line in jobs.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            done[row["key"]] = row
    provenance = {"commit": commit_id(), "processor": cpu_name(), "device": device,
                  "threads": torch.get_num_threads(), "torch": torch.__version__}
    print(f"linr bench tiles: {provenance}; PSNR paper convention (RGB, unclipped) / standard (clipped)")
    for case in cases:
        folder, _ = CASES[case]
        for path in _case_images(data / folder, wanted):
            for variant in variants:
                key = _key(case, path, variant, args.crop, args.steps)
                if key in done:
                    row = done[key]
                else:
                    store = None if args.tile_store is None else Path(args.tile_store) / _store_name(key)
                    try:
                        row = run_one(case, path, variant, crop=args.crop, steps=args.steps, device=device,
                                      tile_store=store, workers=args.workers)
                    except InputError as exc:  # e.g. tiles too small for an operator's reach
                        print(f"{case} {path.stem} {args.variants}: skipped: {exc}", flush=True)
                        continue
                    row = {"key": key, "case": case, "image": path.stem, "variant": variant, **provenance,
                           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "load": os.getloadavg()[0], **row}
                    with jobs.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    done[key] = row
                    if store is not None:
                        from ..tiling import remove_tile_store

                        remove_tile_store(store)
                print(_line(row), flush=True)
    return 0


def _store_name(key: str) -> str:
    """A row's tile folder under ``--tile-store``: its key's digest (the tile store's own
    fingerprint also refuses tiles of other inputs or settings)."""
    import hashlib

    return "row_" + hashlib.sha256(key.encode()).hexdigest()[:16]


def _case_images(folder: Path, wanted: list[str] | None) -> list[Path]:
    """A case's test images: all of ``folder``'s in name order, or those of ``wanted`` that it
    holds, in the order given."""
    paths = {p.stem: p for p in sorted(folder.glob("*.png")) if not p.stem.endswith("_mask")}
    return list(paths.values()) if wanted is None else [paths[n] for n in wanted if n in paths]


def _check_names(data: Path, wanted: list[str], cases: list[str]) -> None:
    """A one-line InputError when a name of ``wanted`` is in no chosen case's folder."""
    from ..errors import InputError

    folders = sorted({CASES[c][0] for c in cases})
    known = {p.stem for f in folders for p in _case_images(data / f, None)}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise InputError(f"no test image {', '.join(map(repr, unknown))} in the chosen cases' folders "
                         f"({', '.join(folders)} under {data})")


def _line(row: dict[str, Any]) -> str:
    v = row["variant"]
    label = v["tile"] + (f"@{v['width']}" if v["width"] else "") + (f"/{v['depth']}" if v["depth"] else "")
    steps = row["tile_steps"]
    steps_text = (f"steps per tile {min(steps)}-{max(steps)} (median {int(np.median(steps))})" if steps
                  else f"{row['steps_run']} steps")
    seam = ""
    if row.get("psnr_overlap") is not None:
        seam = f"; overlap {row['psnr_overlap']:.2f} / rest {row['psnr_rest']:.2f} dB (standard)"
    return (f"{row['case']} {row['image']} {row['size'][1]}x{row['size'][0]} {label}: "
            f"{row['psnr_paper']:.2f} dB (paper) {row['psnr_standard']:.2f} (standard), "
            f"{row['seconds']:.0f} s, {steps_text}{seam}")


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per row."""
    lines = ["| case | image | size | variant | PSNR paper | PSNR standard | s | steps per tile (median) | overlap / rest dB |",
             "|---|---|---|---|---:|---:|---:|---|---|"]
    for r in rows:
        v = r["variant"]
        label = v["tile"] + (f"@{v['width']}" if v["width"] else "") + (f"/{v['depth']}" if v["depth"] else "")
        steps = r["tile_steps"]
        st = f"{int(np.median(steps))} ({min(steps)}-{max(steps)})" if steps else f"{r['steps_run']} (whole)"
        seam = f"{r['psnr_overlap']:.2f} / {r['psnr_rest']:.2f}" if r.get("psnr_overlap") is not None else "-"
        lines.append(f"| {r['case']} | {r['image']} | {r['size'][1]}x{r['size'][0]} | {label} | "
                     f"{r['psnr_paper']:.2f} | {r['psnr_standard']:.2f} | {r['seconds']:.0f} | {st} | {seam} |")
    return "\n".join(lines)
