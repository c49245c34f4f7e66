"""What every ``linr bench`` command shares: the test images' crops and noise seeds, the standard
PSNR, resumable JSONL rows and the provenance (commit, processor) written beside each row.

Imports nothing heavier than NumPy at module level, so the bench commands that use it stay quick
to list.
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
import zlib
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["centre_crop", "corruption_seed", "noise_seed", "load_clean", "psnr", "read_rows", "append_row",
           "commit_id", "cpu_name", "restore_options", "MODEL_SETTINGS"]

MODEL_SETTINGS = {"omega_0": float, "width": int, "depth": int}
"""The SIREN settings a variant may set (``--omega0``, the network's width and depth)."""

RESTORE_SETTINGS = ("prior=SPEC, refine=NAME, omega_0=W, width=N, depth=N, steps=N, lr=X, stop=RULE, "
                    "preset=NAME, tile=SPEC, precision=NAME")
"""The settings :func:`restore_options` reads, as its errors list them."""


def centre_crop(image: np.ndarray, side: int | None) -> tuple[np.ndarray, tuple[int, int]]:
    """The centred ``side`` x ``side`` crop of an (H, W[, C]) image (an image no larger, or
    ``side`` None: the image itself) and its top-left corner."""
    h, w = image.shape[:2]
    if side is None or (h <= side and w <= side):
        return image, (0, 0)
    sh, sw = min(side, h), min(side, w)
    top, left = (h - sh) // 2, (w - sw) // 2
    return image[top : top + sh, left : left + sw], (top, left)


def corruption_seed(base: int, kind: str, name: str) -> int:
    """A corruption seed per (kind, image): the same scene gets the same noise in every table."""
    return base * 100_003 + zlib.crc32(f"{kind}:{name}".encode()) % 100_000


def noise_seed(base: int, spec: str, level: float) -> int:
    """The seed of the photon and ensemble benches' noise for image ``spec`` at ``level`` (photons
    or sigma): :func:`corruption_seed` of kind ``photon`` (the name both benches' rows were made
    with)."""
    return corruption_seed(base, "photon", f"{spec}:{level:g}")


def load_clean(data: Path, spec: str, crop: int) -> np.ndarray:
    """The clean crop of ``FOLDER/NAME[:grey]`` (H, W, C) on [0, 1], float64 (grey: BT.601 luma)."""
    from ..errors import InputError
    from ..images import read_image

    name, _, mode = spec.partition(":")
    if mode not in ("", "grey"):
        raise InputError(f"image {spec!r}: expected FOLDER/NAME or FOLDER/NAME:grey")
    path = data / f"{name}.png"
    if not path.is_file():
        raise InputError(f"image {spec!r}: no file {path}")
    image, _ = read_image(path)
    image = np.asarray(image[..., :3], dtype=np.float64)
    if mode == "grey":
        if image.shape[2] == 3:
            image = image @ np.array([0.299, 0.587, 0.114])
        image = image[..., :1] if image.ndim == 3 else image[..., None]
    image, _ = centre_crop(image, crop)
    return np.ascontiguousarray(image)


def psnr(clean: np.ndarray, image: np.ndarray, *, clip: bool = True) -> float:
    """scikit-image's PSNR, data range 1, of ``image`` clipped to [0, 1] (the standard
    convention; ``clip=False``: as rendered)."""
    from skimage.metrics import peak_signal_noise_ratio

    image = np.asarray(image, np.float64)
    return float(peak_signal_noise_ratio(clean, np.clip(image, 0, 1) if clip else image, data_range=1.0))


def restore_seconds(row: dict[str, Any]) -> float | None:
    """A row's restoration time: linr's whole restore (``total_s``: the fit, a stop's work after it
    and the refinement), else its fit's (the others' runs; rows made before ``total_s`` was kept).
    A researcher's trial read 0.9 s for the default beside a 14-s restore when the fit alone was shown."""
    return row["total_s"] if row.get("total_s") is not None else row.get("fit_s")


def read_rows(path: Path) -> dict[str, dict[str, Any]]:
    """The rows of a resumable JSONL file by their ``key`` (a line cut short by a killed run, or
    without a key, is skipped)."""
    rows: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
                rows[row["key"]] = row
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return rows


def append_row(path: "Path | str", row: dict[str, Any]) -> None:
    """Append ``row`` as one JSON line to ``path`` (a resumable rows file: :func:`read_rows`)."""
    with Path(path).open("a") as f:
        f.write(json.dumps(row) + "\n")


def split_spans(rows: dict[str, dict[str, Any]], measures: dict[str, Any]) -> list[str]:
    """A line per split (``tune``, ``report``: each row's ``split``) with rows: their count and, for
    each of ``measures`` (a name and a function of a row, in dB), its least, greatest and mean."""
    lines = []
    for split in ("tune", "report"):
        chosen = [r for r in rows.values() if r["split"] == split]
        if chosen:
            spans = [f"{name} {min(v):+.2f} to {max(v):+.2f} (mean {np.mean(v):+.2f})"
                     for name, measure in measures.items() for v in [[measure(r) for r in chosen]]]
            lines.append(f"\n{split}: {len(chosen)} scenes, " + "; ".join(spans))
    return lines


def keyed_probe(argv: list[str], row: Any, table: Any) -> None:
    """A resumable probe script's command line, ``ROWS.jsonl KEY,KEY,...`` (each key not yet in ROWS
    measured by ``row(key)`` and appended, :func:`emit_row`) or ``ROWS.jsonl --table`` (``table(rows)``
    printed)."""
    if len(argv) != 2:
        raise SystemExit("usage: PROBE ROWS.jsonl KEY,KEY,... | PROBE ROWS.jsonl --table")
    rows_path = Path(argv[0])
    done = read_rows(rows_path)
    if argv[1:] == ["--table"]:
        print(table(done))
        return
    for key in filter(None, argv[1].split(",")):
        if key not in done:
            emit_row(row(key), rows_path)


def emit_row(row: dict[str, Any], path: "Path | str | None" = None) -> dict[str, Any]:
    """``row`` with where it was measured (commit, processor, torch and, when not one, its threads),
    printed (floats to 2 places, without those) and appended to ``path`` when given (:func:`append_row`); the row as stored."""
    import torch

    row = {**row, "commit": commit_id(), "processor": cpu_name(), "torch": torch.__version__,
           **({"threads": torch.get_num_threads()} if torch.get_num_threads() != 1 else {})}
    print({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()
           if k not in ("commit", "processor", "torch", "threads")}, flush=True)
    if path:
        append_row(path, row)
    return row


def scene_probe_main(description: str, row: Any, table: Any, variants: str) -> None:
    """The command line of a probe script over scenes and variants (``benchmarks/*_probe.py``): ``ROWS
    [SCENES [VARIANTS]]`` appends ``row(scene, variant)`` for each pair of the comma-separated lists
    not yet in the JSONL file ROWS (keyed ``scene|variant``; ``variants`` the default list);
    ``ROWS --table`` prints ``table(rows)``."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("rows", type=Path)
    parser.add_argument("scenes", nargs="?", default="")
    parser.add_argument("variants", nargs="?", default=variants)
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    done = read_rows(args.rows)
    if args.table:
        print(table(done))
        return
    for key in filter(None, args.scenes.split(",")):
        for variant in args.variants.split(","):
            if f"{key}|{variant}" not in done:
                emit_row(row(key, variant), args.rows)


def restore_options(variant: str, *, others: str = "") -> dict[str, Any]:
    """:func:`linr.restore` keyword arguments of a variant of the default restore: settings joined
    by commas, such as ``width=64,depth=5`` or ``refine=none`` (:data:`RESTORE_SETTINGS`; ``linr
    bench denoise``'s variants and ``linr bench --variants``' columns). An InputError naming a bad
    one, before any fit; ``others``: what else the caller takes, for that error."""
    from dataclasses import replace

    from ..errors import InputError
    from ..models import ModelConfig
    from ..priors import check_prior_spec

    options: dict[str, Any] = {}
    seen: set[str] = set()
    for part in variant.split(","):
        name, _, value = part.partition("=")
        if name in seen:
            raise InputError(f"bad variant {variant!r}: {name} given twice")
        seen.add(name)
        if name in MODEL_SETTINGS:
            try:
                number = MODEL_SETTINGS[name](value)
            except ValueError:
                raise InputError(f"bad variant {variant!r}: {name}=... needs a number") from None
            if not math.isfinite(number) or number <= 0:
                raise InputError(f"bad variant {variant!r}: {name} must be a positive number")
            options["model"] = replace(options.get("model", ModelConfig()), **{name: number})
        elif name == "steps":
            try:
                options["steps"] = int(value)
            except ValueError:
                raise InputError(f"bad variant {variant!r}: steps=N needs a whole number") from None
            if options["steps"] < 1:
                raise InputError(f"bad variant {variant!r}: steps must be positive")
        elif name == "prior":
            options["prior"] = check_prior_spec(value)
        elif name == "refine":
            from ..refine import check_refine_spec

            options["refine"] = check_refine_spec(value)
        elif name == "stop":
            from ..stopping import parse_stop

            try:
                parse_stop(value)
            except ValueError as exc:
                raise InputError(f"bad variant {variant!r}: {exc}") from None
            options["stop"] = value
        elif name == "lr":
            try:
                options["lr"] = float(value)
            except ValueError:
                raise InputError(f"bad variant {variant!r}: lr=X needs a number") from None
            if not math.isfinite(options["lr"]) or options["lr"] <= 0:
                raise InputError(f"bad variant {variant!r}: lr must be a positive number")
        elif name == "preset":
            from ..tasks import PRESETS

            if value not in PRESETS:
                raise InputError(f"bad variant {variant!r}: unknown preset {value!r}; choose from {', '.join(PRESETS)}")
            options["preset"] = value
        elif name == "precision":
            from ..engine import PRECISIONS

            if value not in PRECISIONS + ("auto",):
                raise InputError(f"bad variant {variant!r}: precision is one of {', '.join(PRECISIONS)}, auto")
            options["precision"] = value
        elif name == "tile":
            from ..tiling import parse_tile

            try:
                options["tile"] = parse_tile(value).describe()
            except InputError as exc:
                raise InputError(f"bad variant {variant!r}: {exc}") from None
        else:
            raise InputError(f"unknown variant {variant!r}: {others + ', or ' if others else ''}settings joined "
                             f"by commas: {RESTORE_SETTINGS}")
    return options


def network_variant(spec: str, *, omega_0: float, lr: float | None = None, steps: int | None = None) -> dict[str, Any]:
    """:func:`linr.restore` options of a probe's network variant ``wW[:lrLR][:sSTEPS][:oOMEGA][:bf16]``:
    a SIREN 7xW at omega_0 OMEGA (else ``omega_0``), learning rate LR (else ``lr``; None: the
    default's), STEPS steps (else ``steps``; None: the default's), bf16 products where named
    (``benchmarks/inpaint_pilot_probe.py``, ``sr_pilot_probe.py``, ``deblur_scene_default.py``)."""
    from ..models import ModelConfig

    width, *rest = spec.split(":")
    if not width.startswith("w") or not width[1:].isdigit():
        raise SystemExit(f"bad network variant {spec!r}: wW[:lrLR][:sSTEPS][:oOMEGA][:bf16]")
    options: dict[str, Any] = {k: v for k, v in (("lr", lr), ("steps", steps)) if v is not None}
    for part in rest:
        if part.startswith("lr"):
            options["lr"] = float(part[2:])
        elif part.startswith("s"):
            options["steps"] = int(part[1:])
        elif part.startswith("o"):
            omega_0 = float(part[1:])
        elif part == "bf16":
            options["precision"] = "bf16"
        else:
            raise SystemExit(f"unknown part {part!r} of the network variant {spec!r}")
    return {**options, "model": ModelConfig(width=int(width[1:]), omega_0=omega_0)}


def table_or_rows(args: Any, table: Any, parser: Any) -> bool:
    """For a probe script with ``--table ROWS [--against ROWS]`` and ``IMAGES --rows ROWS``: print
    ``table(rows, against)`` and return True when ``--table`` is given; else check that images
    and a rows file are (``parser.error`` otherwise) and return False."""
    if args.table:
        rows = [json.loads(line) for line in open(args.table)]
        against = [json.loads(line) for line in open(args.against)] if getattr(args, "against", None) else []
        print(table(rows, against))
        return True
    if not args.rows or not args.images:
        parser.error("give IMAGES and --rows (or --table ROWS)")
    return False


def resume_rows(path: "Path | str", key: Any, jobs: "list[tuple[Any, Any]]") -> None:
    """Run ``make()`` of each ``(job_key, make)`` in ``jobs`` whose key no row of the JSONL file
    ``path`` has (``key(row)``), appending and printing each new row as it comes."""
    done = {key(r) for r in map(json.loads, open(path))} if Path(path).exists() else set()
    for job_key, make in jobs:
        if job_key in done:
            continue
        row = make()
        append_row(path, row)
        print(json.dumps(row), flush=True)


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), else what the platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def processor_of(device: str) -> str:
    """What ran on ``device``: the GPU's name for a CUDA device, else this machine's processor."""
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(torch.device(device))} (torch {torch.__version__})"
    return f"{cpu_name()} (torch {torch.__version__})"


def commit_id() -> str | None:
    """The source checkout's commit (``+dirty`` with uncommitted changes), or None."""
    import subprocess

    root = Path(__file__).resolve().parents[3]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("+dirty" if dirty else "")


def cached_fit(saved: "Path | None", make: Any, made_on: str | None = None) -> tuple[np.ndarray, float]:
    """A probe script's fit: its image and wall seconds, read from ``saved`` (.npz with ``fit`` and
    ``seconds``) when it exists, else ``make()`` (the image), timed and kept there (when given),
    with ``made_on`` (where it was made, :func:`fit_made_on` reads it back) when given."""
    if saved is not None and saved.exists():
        z = np.load(saved)
        return z["fit"], float(z["seconds"])
    started = time.perf_counter()
    fit = make()
    seconds = time.perf_counter() - started
    if saved is not None:
        saved.parent.mkdir(parents=True, exist_ok=True)
        np.savez(saved, fit=fit, seconds=seconds, **({"made_on": made_on} if made_on else {}))
    return fit, seconds


def fit_made_on(saved: "Path | None") -> str | None:
    """Where a fit kept by :func:`cached_fit` was made, when it was recorded."""
    if saved is None or not saved.exists():
        return None
    with np.load(saved) as z:
        return str(z["made_on"]) if "made_on" in z.files else None


def threads_from_environment() -> int:
    """The probes' torch threads: ``OMP_NUM_THREADS`` when it is a positive whole number, else one
    (the rows' seconds are one thread's unless the environment says otherwise)."""
    text = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(text) if text.isdigit() and int(text) > 0 else 1


def refine_probe_main(argv: "list[str] | None", doc: str, images_help: str,
                      run: Any, table: Any, tiles: bool = False, sr: bool = False) -> int:
    """The command line of a probe script that fits each image once and refines the fit several
    ways (``benchmarks/inpaint_fill.py``, ``benchmarks/sr_views.py``): ``IMAGES [--crop N] [--rows
    ROWS] [--cache DIR]`` runs ``run(spec, crop, data, cache)`` for each image not yet in ROWS (one
    thread; the data folder of :func:`linr.bench.data_dir`) and appends its row; ``--table ROWS``
    prints ``table(rows)``. With ``tiles``, ``--tile SIZE[:OVERLAP]`` too: ``run(..., tile=SPEC)``
    (None when not given), and a row counts as done for its image, crop and ``tile``. With ``sr``
    (the super-resolution probes), ``--factor F`` (default 4), ``--device D`` (where the fit runs)
    and ``--fit-only`` too: ``run(..., factor=F, device=D, fit_only=...)``, a row counting as done
    for its factor as well, and no row written for a fit alone."""
    import argparse

    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*", help=images_help)
    p.add_argument("--crop", type=int, default=None, help="a centre crop of this side first")
    p.add_argument("--rows", default=None, help="rows file (JSONL), appended and resumed")
    p.add_argument("--cache", default=None, help="folder keeping each fit, so that a rerun refines again")
    p.add_argument("--table", default=None, metavar="ROWS", help="print a rows file as a markdown table")
    if tiles:
        p.add_argument("--tile", default=None, metavar="SIZE[:OVERLAP]", help="fit in tiles of this size")
    if sr:
        p.add_argument("--factor", type=int, default=4, help="the low-res view's factor")
        p.add_argument("--device", default="cpu", help="where the fit runs (cpu, cuda)")
        p.add_argument("--fit-only", action="store_true", help="fit into --cache and stop (no refinement, no row)")
    args = p.parse_args(argv)
    tile = {"tile": args.tile} if tiles else {}
    extra = {"factor": args.factor, "device": args.device, "fit_only": args.fit_only} if sr else {}
    if sr and args.fit_only and not args.cache:
        p.error("--fit-only keeps the fits in --cache: name the folder")
    if args.table:
        print(table([json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()]))
        return 0
    import torch

    from . import data_dir

    torch.set_num_threads(threads_from_environment())
    data = data_dir(None)
    done = set()
    if args.rows and Path(args.rows).exists():
        done = {(r["image"], r["crop"], r.get("tile"), r.get("factor") if sr else None)
                for r in map(json.loads, Path(args.rows).read_text().splitlines()) if r}
    for spec in args.images:
        if (spec, args.crop, tile.get("tile"), extra.get("factor")) not in done:
            row = run(spec, args.crop, data, Path(args.cache) if args.cache else None, **tile, **extra)
            if row is not None:
                emit_row(row, args.rows)
    return 0
