"""``linr bench photon``: photon-noise (Poisson) denoising with each data term, against the
oracle stop and a classical reference.

Per (image, peak): a centre crop of a shared test image (``NAME`` in colour, ``NAME:grey`` as
its BT.601 luma), photon noise ``Poisson(peak x) / peak`` clipped to [0, 1] (what
``linr degrade --poisson PEAK`` writes; ``--clip-at 2``: clipped at 2 instead, the most linr
takes as a float image; seed fixed per image and peak, the same for every method), then each
method:

- ``gaussian``: ``linr.noisy(y)``, the paper's squared error (the default hold-out stop needs
  no noise level);
- ``poisson``: ``linr.noisy(y, noise="poisson")``, the peak estimated from the image as
  ``linr restore --noise poisson`` does without ``--peak``: the Poisson likelihood, censored at
  white in a clipped image, with the hold-out stop measuring squared error (the defaults);
- ``poisson-plain``: the same without either (the plain likelihood, its hold-out loss the
  likelihood too: what ``poisson`` was before the seventh session);
- ``poisson-censored``: censored at white, the likelihood as the hold-out loss;
- ``poisson-se-stop``: not censored, squared error as the hold-out loss;
- ``poisson-peak``: the same with the true peak given (``--peak``);
- ``poisson-gaussian``: ``noise="poisson-gaussian"``, peak and read noise estimated;
(The ``poisson`` methods fit the likelihood, ``photon_method='likelihood'``: since the fifty-fourth
session ``linr restore --noise poisson`` restores through the Anscombe transform by default,
:mod:`linr.stabilise`, measured by ``benchmarks/photon_anscombe.py``.)

- ``anscombe-nlm``: classical reference: Anscombe transform, scikit-image non-local means
  (``h = 0.8 sigma``, patch 5, distance 6, fast mode: the settings its documentation
  suggests, not tuned here), closed-form unbiased inverse (Makitalo & Foi 2011); true peak;
- ``anscombe-bm3d``: the same with BM3D (the optional ``bm3d`` package; skipped without it).

Every LINR fit uses linr's default settings (no preset named: SIREN 7x256, Adam 1e-4, the
automatic hold-out stop or ``--stop``, budget 500 steps) and records the returned image's PSNR, the oracle
(the best PSNR of any step the fit ran, from its history with the clean image as reference:
the fit stops ``patience`` steps after the hold-out minimum, so a curve still rising at its end
is flagged), the steps, and the wall time. PSNR: scikit-image's ``peak_signal_noise_ratio``,
data range 1, all channels, on the output clipped to [0, 1]; the history's PSNR (the oracle) is
unclipped, so "stop - oracle" compares the returned image's unclipped PSNR with it. Rows go to
``--jobs`` as they finish; a rerun skips rows already there.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from .common import load_clean, noise_seed, psnr, read_rows

__all__ = ["register", "METHODS", "anscombe_denoise", "run_method", "summary_table"]

LINR_METHODS = {
    "gaussian": {"noise": "gaussian"},
    "poisson": {"noise": "poisson"},
    "poisson-plain": {"noise": "poisson", "term": {"saturated": False, "stop_on": "likelihood"}},
    "poisson-censored": {"noise": "poisson", "term": {"stop_on": "likelihood"}},
    "poisson-se-stop": {"noise": "poisson", "term": {"saturated": False}},
    "poisson-peak": {"noise": "poisson", "peak": True},
    "poisson-gaussian": {"noise": "poisson-gaussian"},
}
"""LINR methods: options of :func:`linr.kinds.noisy` (``peak: True``: the true peak)."""
CLASSICAL = ("anscombe-nlm", "anscombe-bm3d")
METHODS = (*LINR_METHODS, *CLASSICAL)
DEFAULT_METHODS = "anscombe-nlm,gaussian,poisson"


def register(sub: Any) -> None:
    p = sub.add_parser("photon", help="Poisson denoising: Poisson vs Gaussian data term, stop vs oracle",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="test-image folder (default: $LINR_DATA or ../shared/data)")
    p.add_argument("--images", default="set9/house,set9/kodim03,set9/f16:grey",
                   help="comma-separated FOLDER/NAME[:grey] (default set9/house,set9/kodim03,set9/f16:grey)")
    p.add_argument("--peaks", default="10,30", help="photons at white, comma-separated (default 10,30)")
    p.add_argument("--methods", default=DEFAULT_METHODS,
                   help=f"comma-separated, from {', '.join(METHODS)} (default {DEFAULT_METHODS})")
    p.add_argument("--crop", type=int, default=128, help="centre crop side in pixels (default 128)")
    p.add_argument("--steps", type=int, default=None, help="step budget (default: the preset's)")
    p.add_argument("--width", type=int, default=None, help="SIREN width (default: the preset's; smoke runs)")
    p.add_argument("--depth", type=int, default=None, help="SIREN depth (default: the preset's; smoke runs)")
    p.add_argument("--seed", type=int, default=0, help="noise seed base (default 0)")
    p.add_argument("--stop", default=None, metavar="RULE",
                   help="stop rule of every LINR fit (default: linr's automatic one; e.g. holdout:0.05:40, "
                   "the automatic rule before it returned an average of iterates)")
    p.add_argument("--clip-at", type=float, default=1.0, metavar="C",
                   help="clip the noisy counts / peak at C (default 1: what linr degrade --poisson "
                   "writes and 8/16-bit files hold; 2: the most linr takes as float input, which "
                   "at 30 photons clips almost nothing)")
    p.add_argument("--jobs", default="bench_out/photon.jsonl", help="rows, appended and resumed")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.set_defaults(func=cmd_photon)








def _inverse_anscombe(z: np.ndarray) -> np.ndarray:
    """Closed-form approximation of the exact unbiased inverse (Makitalo & Foi, 2011)."""
    z = np.maximum(z, 1e-6)
    s = np.sqrt(1.5)
    return np.maximum(0.25 * z**2 + 0.25 * s / z - 11 / 8 / z**2 + 5 / 8 * s / z**3 - 1 / 8, 0.0)


def anscombe_denoise(noisy: np.ndarray, peak: float, method: str = "nlm") -> np.ndarray:
    """Poisson denoising by variance stabilisation: counts ``k = peak y``, ``z = 2 sqrt(k + 3/8)``
    (noise std about 1), a Gaussian denoiser, the unbiased inverse, ``/ peak``. (H, W, C) -> same."""
    z = 2 * np.sqrt(np.maximum(np.asarray(noisy, np.float64) * peak, 0) + 3 / 8)
    scale = float(z.max())
    zn, sigma = z / scale, 1.0 / scale
    if method == "nlm":
        from skimage.restoration import denoise_nl_means

        out = denoise_nl_means(zn, h=0.8 * sigma, sigma=sigma, patch_size=5, patch_distance=6,
                               fast_mode=True, channel_axis=-1)
    elif method == "bm3d":
        import bm3d

        out = np.asarray(bm3d.bm3d(zn, sigma_psd=sigma), np.float64).reshape(zn.shape)
    else:
        raise ValueError(f"unknown classical denoiser {method!r}")
    return (_inverse_anscombe(np.asarray(out).reshape(z.shape) * scale) / peak).astype(np.float32)


def run_method(method: str, clean: np.ndarray, noisy: np.ndarray, peak: float, *,
               steps: int | None = None, model: Any = None, stop: str | None = None) -> dict[str, Any]:
    """One method on one noisy image; the row's measurements."""
    t0 = time.perf_counter()
    if method in CLASSICAL:
        image = anscombe_denoise(noisy, peak, method.split("-", 1)[1])
        return {"psnr": psnr(clean, image), "seconds": time.perf_counter() - t0}
    from ..kinds import noisy as noisy_observation
    from ..tasks import restore

    from dataclasses import replace

    from ..kinds import noise_term

    options = dict(LINR_METHODS[method])
    variant = options.pop("term", None)
    if options.pop("peak", False):
        options["peak"] = peak
    noise = options.pop("noise")
    if noise != "gaussian":  # the data terms themselves, fitted (not the Anscombe route of linr.stabilise)
        options["photon_method"] = "likelihood"
    term, _ = noise_term(noisy, noise, **options)
    if variant:  # a variant of the default photon term
        term = replace(term, **variant)
    obs = noisy_observation(noisy, noise=term)
    # the fit's own image: the data terms are compared (no refinement after the fit)
    result = restore([obs], steps=steps, model=model, device="cpu", reference=clean, progress=False,
                     stop=stop, refine="none", threads=None)
    seconds = time.perf_counter() - t0
    curve = result.history["psnr"]  # unclipped PSNR of every step's output (history, reference given)
    best = int(np.argmax(curve))
    return {
        "psnr": psnr(clean, result.image), "psnr_unclipped": psnr(clean, result.image, clip=False),
        "seconds": seconds, "oracle_psnr": curve[best], "oracle_step": best + 1, "last_psnr": curve[-1],
        "steps_run": result.steps_run, "stop_step": result.stop_step, "stop_reason": result.stop_reason,
        "data_term": obs.fidelity.describe(), "stop": result.settings.get("stop"),
    }


def _key(spec: str, peak: float, method: str, args: argparse.Namespace) -> str:
    key = {"image": spec, "peak": peak, "method": method, "crop": args.crop, "steps": args.steps,
           "width": args.width, "depth": args.depth, "seed": args.seed}
    if args.clip_at != 1.0:
        key["clip_at"] = args.clip_at
    from ..stopping import AUTO_NOISY

    # rows without a "stop" key were made under holdout:0.05:40, the automatic rule before
    # it returned an average of iterates (the rule fits noisy inputs with: the photon bench's)
    stop = args.stop or AUTO_NOISY
    if stop != "holdout:0.05:40":
        key["stop"] = stop
    return json.dumps(key, sort_keys=True)




def cmd_photon(args: argparse.Namespace) -> int:
    from dataclasses import replace

    import torch

    from ..errors import InputError
    from ..kinds import noise_term
    from ..models import ModelConfig
    from ..simulate import add_photon_noise
    from . import data_dir
    from .common import commit_id, cpu_name

    if args.threads:
        torch.set_num_threads(args.threads)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            raise InputError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    if "anscombe-bm3d" in methods:
        from ..baselines.classical import BaselineUnavailable, check_bm3d

        try:
            check_bm3d()
        except BaselineUnavailable:
            print("anscombe-bm3d: skipped (the optional bm3d package is not installed)", flush=True)
            methods.remove("anscombe-bm3d")
    try:
        peaks = [float(p) for p in args.peaks.split(",") if p.strip()]
    except ValueError:
        raise InputError(f"--peaks {args.peaks!r}: expected numbers such as 10,30") from None
    if not peaks or not all(p > 0 for p in peaks):
        raise InputError(f"--peaks {args.peaks!r}: expected positive numbers such as 10,30")
    if args.crop < 32:
        raise InputError(f"--crop {args.crop}: at least 32 (the photon level is estimated from the image)")
    data = data_dir(args.data)
    specs = [s.strip() for s in args.images.split(",") if s.strip()]
    cleans = {s: load_clean(data, s, args.crop) for s in specs}  # every image checked before any fit
    model = None
    if args.width or args.depth:
        model = replace(ModelConfig(), **{k: v for k, v in (("width", args.width), ("depth", args.depth)) if v})
    if not 1.0 <= args.clip_at <= 2.0:
        raise InputError(f"--clip-at {args.clip_at:g}: between 1 and 2 (linr takes float images up to 2)")
    noisy_images = {(s, p): np.minimum(add_photon_noise(cleans[s], p, seed=noise_seed(args.seed, s, p),
                                                        clip=False), args.clip_at).astype(np.float32)
                    for s in specs for p in peaks}
    for (spec, peak), noisy in noisy_images.items():  # an estimate that cannot be made: now, not mid-run
        for method in methods:
            if method in LINR_METHODS and not LINR_METHODS[method].get("peak"):
                try:
                    noise_term(noisy, LINR_METHODS[method]["noise"])
                except InputError as exc:
                    raise InputError(f"{spec} at peak {peak:g}: {exc}") from None
    jobs = Path(args.jobs)
    jobs.parent.mkdir(parents=True, exist_ok=True)
    done = read_rows(jobs)
    provenance = {"commit": commit_id(), "processor": cpu_name(), "threads": torch.get_num_threads(),
                  "torch": torch.__version__}
    print(f"linr bench photon: {provenance}; PSNR skimage, clipped to [0, 1], data range 1", flush=True)
    rows = []
    for spec in specs:
        clean = cleans[spec]
        for peak in peaks:
            seed = noise_seed(args.seed, spec, peak)
            noisy = noisy_images[spec, peak]
            for method in methods:
                key = _key(spec, peak, method, args)
                if key not in done:
                    row = {"key": key, "image": spec, "peak": peak, "method": method, "noise_seed": seed,
                           "size": list(clean.shape), "noisy_psnr": psnr(clean, noisy),
                           "clip_at": args.clip_at, "clipped": float(np.mean(noisy >= args.clip_at)),
                           **run_method(method, clean, noisy, peak, steps=args.steps, model=model,
                                        stop=args.stop),
                           **provenance, "load": os.getloadavg()[0],
                           "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
                    with jobs.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    done[key] = row
                rows.append(done[key])
                print(_line(done[key]), flush=True)
    print(summary_table(rows))
    return 0


def _line(row: dict[str, Any]) -> str:
    text = f"{row['image']} peak {row['peak']:g} {row['method']}: {row['psnr']:.2f} dB, {row['seconds']:.0f} s"
    if "oracle_psnr" in row:
        text += (f" (oracle {row['oracle_psnr']:.2f} at step {row['oracle_step']}; returned step "
                 f"{row['stop_step']} of {row['steps_run']})")
    return text


def summary_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per (image, peak), one column per method; LINR cells give
    ``PSNR (oracle; returned step / oracle step; s)``; then the differences that the issue asks."""
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    scenes = list(dict.fromkeys((r["image"], r["peak"], r.get("clip_at", 1.0)) for r in rows))
    by = {(r["image"], r["peak"], r.get("clip_at", 1.0), r["method"]): r for r in rows}
    head = ["image", "peak", "clip at", "noisy", *methods]
    extra = []
    if {"poisson", "gaussian"} <= set(methods):
        extra.append(("poisson - gaussian", lambda c: c["poisson"]["psnr"] - c["gaussian"]["psnr"]))
    for m in ("gaussian", "poisson"):
        if m in methods:
            extra.append((f"{m}: stop - oracle", lambda c, m=m: c[m]["psnr_unclipped"] - c[m]["oracle_psnr"]))
    lines = ["| " + " | ".join(head + [e[0] for e in extra]) + " |",
             "|" + "---|" * 3 + "---:|" * (len(head) - 3 + len(extra))]
    for image, peak, clip_at in scenes:
        cells = {m: by.get((image, peak, clip_at, m)) for m in methods}
        noisy = next(r for r in cells.values() if r)["noisy_psnr"]
        out = [image, f"{peak:g}", f"{clip_at:g}", f"{noisy:.2f}"]
        for m in methods:
            r = cells[m]
            if r is None:
                out.append("-")
            elif "oracle_psnr" in r:
                flag = "*" if r["oracle_step"] >= r["steps_run"] - 5 else ""
                out.append(f"{r['psnr']:.2f} ({r['oracle_psnr']:.2f}{flag}; {r['stop_step']} / "
                           f"{r['oracle_step']}; {r['seconds']:.0f} s)")
            else:
                out.append(f"{r['psnr']:.2f}")
        for _, diff in extra:
            try:
                out.append(f"{diff(cells):+.2f}")
            except (TypeError, KeyError):
                out.append("-")
        lines.append("| " + " | ".join(out) + " |")
    return "\n".join(lines)
