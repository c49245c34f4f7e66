"""Bench outputs: averages beside the paper's, the Markdown report, CSV and PSNR-per-step plots.

Averages are recomputed over the images actually run, for our numbers and for the paper's (its
per-image values), so that a missing image (Lena is not shipped) or a profile's image subset does
not skew the comparison. Where the paper printed only an average (Tables 11, 14) that average is
used and marked as such.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any, Iterable, Sequence

from .common import restore_seconds
from .spec import LINR_DEFAULT, Profile, Table

__all__ = ["summarise", "write_csv", "write_report", "plot_curves", "markdown_summary"]

METRICS = ("psnr_paper", "psnr_standard", "ssim_standard", "ssim_paper", "psnr_y_standard",
           "peak_psnr")


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def summarise(rows: Sequence[dict[str, Any]], paper: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per (table, method): our averages and the paper's over the same images."""
    out = []
    keys: list[tuple[str, str]] = []
    for r in rows:
        if (r["table"], r["method"]) not in keys:
            keys.append((r["table"], r["method"]))
    for table, method in keys:
        ok = [r for r in rows if r["table"] == table and r["method"] == method and r["status"] == "ok"]
        entry: dict[str, Any] = {"table": table, "table_number": None, "method": method,
                                 "images": [r["image"] for r in ok]}
        entry.update({m: _mean(r[m] for r in ok) for m in METRICS})
        printed = paper.get(table, {}).get("images", {})
        per_image = [printed.get(r["image"], {}).get(method) for r in ok]
        basis = None
        if ok and all(p is not None and "psnr" in p for p in per_image):
            basis = f"same {len(ok)} images"
            entry["paper_psnr"] = _mean(p["psnr"] for p in per_image)
            entry["paper_ssim"] = _mean(p.get("ssim") for p in per_image)
        elif method in printed.get("average", {}):
            basis = "paper's printed average (its images)"
            entry["paper_psnr"] = printed["average"][method].get("psnr")
            entry["paper_ssim"] = printed["average"][method].get("ssim")
        else:
            entry["paper_psnr"] = entry["paper_ssim"] = None
        entry["paper_basis"] = basis
        mine = [r for r in rows if r["table"] == table and r["method"] == method]
        if not ok and mine and all(str(r.get("note", "")).startswith("not applicable") for r in mine):
            entry["paper_basis"] = "not run: not applicable to these inputs"  # a variant they cannot take
        entry["diff_psnr"] = (entry["psnr_paper"] - entry["paper_psnr"]
                              if entry["psnr_paper"] is not None and entry["paper_psnr"] is not None else None)
        entry["table_number"] = next(r["table_number"] for r in rows if r["table"] == table)
        entry["fit_s"] = _mean(r["fit_s"] for r in ok)
        entry["time_s"] = _mean(restore_seconds(r) for r in ok)
        entry.update(_against_default(rows, table, method, ok))
        out.append(entry)
    return out


def _against_default(rows: Sequence[dict[str, Any]], table: str, method: str,
                     ok: list[dict[str, Any]]) -> dict[str, Any]:
    """For a variant of the defaults' column (``linr bench --variants``): the mean of its PSNR (paper
    convention) less ``LINR (default)``'s and the ratio of their mean seconds (the whole restore:
    the fit, a stop's work after it and the refinement, ``total_s``, which jobs made before it was
    recorded lack; only where every pair was made on one kind of machine, processor, device,
    threads and torch alike: ``made_on``), over the images both have; else nothing."""
    if method == LINR_DEFAULT.label or not ok or ok[0].get("method_kind") != LINR_DEFAULT.kind:
        return {}
    default = {r["image"]: r for r in rows if r["table"] == table and r["method"] == LINR_DEFAULT.label
               and r["status"] == "ok"}
    pairs = [(r, default[r["image"]]) for r in ok if r["image"] in default]
    if not pairs:
        return {"vs_default_psnr": None, "vs_default_time": None, "vs_default_images": 0}
    timed = [(v["total_s"], d["total_s"]) for v, d in pairs if v.get("total_s") and d.get("total_s")
             and v.get("made_on") == d.get("made_on")]
    time = (_mean(v for v, _ in timed), _mean(d for _, d in timed)) if len(timed) == len(pairs) else (None, None)
    return {"vs_default_psnr": _mean(v["psnr_paper"] - d["psnr_paper"] for v, d in pairs),
            "vs_default_time": time[0] / time[1] if time[0] is not None and time[1] else None,
            "vs_default_images": len(pairs)}


def write_csv(path: Path, rows: Sequence[dict[str, Any]], fields: Sequence[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(fields))
        w.writeheader()
        for r in rows:
            w.writerow({k: json.dumps(v) if isinstance(v, (dict, list)) else v for k, v in r.items()})


def _f(value: float | None, digits: int = 2, signed: bool = False) -> str:
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "inf"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def markdown_summary(summary: Sequence[dict[str, Any]]) -> list[str]:
    """The per-table averages as a Markdown table (PSNR in dB); with variants of the defaults among
    them (``linr bench --variants``), two more columns: each one's PSNR (paper convention) less
    ``LINR (default)``'s and its time over the default's (:func:`_against_default`), on the images
    both have."""
    variants = any("vs_default_psnr" in e for e in summary)
    lines = [
        "| table | method | images | PSNR ours (paper conv.) | PSNR paper | diff | PSNR ours (standard) "
        "| SSIM ours (standard) | SSIM ours (paper conv.) | SSIM paper | peak PSNR (oracle) "
        "| paper basis |" + (" vs LINR (default) | time vs LINR (default) (whole restore, one machine) |" if variants else ""),
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
        + (" ---: | ---: |" if variants else ""),
    ]
    for e in summary:
        line = (
            f"| {e['table_number']} | {e['method']} | {len(e['images'])} | {_f(e['psnr_paper'])} | "
            f"{_f(e['paper_psnr'])} | {_f(e['diff_psnr'], signed=True)} | {_f(e['psnr_standard'])} | "
            f"{_f(e['ssim_standard'], 3)} | {_f(e['ssim_paper'], 3)} | {_f(e['paper_ssim'], 3)} | "
            f"{_f(e['peak_psnr'])} | {e['paper_basis'] or ('not in the paper' if e['images'] else 'not run')} |"
        )
        if variants:
            vs, ratio = e.get("vs_default_psnr"), e.get("vs_default_time")
            line += f" {_f(vs, signed=True)} | {'-' if ratio is None else f'{ratio:.2f}x'} |"
        lines.append(line)
    return lines


def _table_section(table: Table, rows: list[dict[str, Any]], summary: list[dict[str, Any]],
                   plot: str | None, profile: Profile) -> list[str]:
    lines = [f"## Table {table.number}: {table.title}", ""]
    if not rows:
        return lines + ["Not run (see skipped items above).", ""]
    sizes = sorted({f"{r['image']} {r['image_size'][0]}x{r['image_size'][1]} ({r['crop']})" for r in rows})
    lines += [f"Corruption: {table.corruption.describe()}. Images: {'; '.join(sizes)}.", ""]
    if table.multiple > 1:
        lines += [f"The clean image is centre-cropped to a multiple of {table.multiple} before "
                  "downscaling (linr.simulate.crop_to_multiple), so that the x-factor grids align.", ""]
    lines += [
        "| image | method | steps | stop | PSNR paper conv. | paper | diff | PSNR standard | "
        "PSNR Y (SR, crop) | SSIM standard | SSIM paper conv. | paper SSIM | peak PSNR (step) | "
        "time s | note |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for r in rows:
        peak = "-" if r["peak_step"] is None else f"{_f(r['peak_psnr'])} ({r['peak_step']})"
        note = r["note"] or ("" if r["first_table"] == table.number else f"shared with table {r['first_table']}")
        lines.append(
            f"| {r['image']} | {r['method']} | {r['steps'] or '-'} | {r['stop_step'] or '-'} | "
            f"{_f(r['psnr_paper'])} | {_f(r['paper_psnr'])} | {_f(r['diff_psnr'], signed=True)} | "
            f"{_f(r['psnr_standard'])} | {_f(r['psnr_y_standard'])} | {_f(r['ssim_standard'], 3)} | "
            f"{_f(r['ssim_paper'], 3)} | {_f(r['paper_ssim'], 3)} | "
            f"{peak} | "
            f"{_f(restore_seconds(r), 1)} | {note} |"
        )
    lines += ["", "Averages over the images run:", ""]
    lines += markdown_summary([e for e in summary if e["table"] == table.key])
    if not table.ssim_printed:
        lines += ["", "The paper printed PSNR only for this table."]
    if table.metric_task == "deblur":
        lines += ["", "Paper-convention PSNR here is on the Y channel of 8-bit-rounded images, as "
                  "the paper's released deblurring code measures it."]
    if plot:
        lines += ["", f"![PSNR per step, table {table.number}]({plot})"]
    lines.append("")
    return lines


def write_report(path: Path, *, profile: Profile, tables: Sequence[Table],
                 rows: Sequence[dict[str, Any]], summary: Sequence[dict[str, Any]],
                 machine: dict[str, Any], command: str, skipped: Sequence[str],
                 plots: dict[str, str | None], plot_note: str | None,
                 jobs: dict[str, dict[str, Any]] | None = None, earlier: str | None = None) -> None:
    """The human-readable report: settings, deviations, per-table averages, per-image rows; with
    the ``jobs`` the rows came from, what each of linr's default columns ran (:func:`as_run_lines`);
    ``earlier``: what it leaves out of an earlier run into its folder (a line, or None)."""
    lines = [f"# linr bench: the paper's tables, {profile.name} profile", ""]
    lines += [f"Command: `{command}`", "", *([f"Note: {earlier}.", ""] if earlier else []),
              f"Machine: {machine['processor']}, {machine['cpus']} CPUs, torch {machine['torch']} "
              f"with {machine['threads']} thread(s), device {machine['device']}; linr "
              f"{machine['linr']}; this report {machine['started']} to {machine['finished']}; "
              f"its fits started between {machine['first_fit']} and {machine['last_fit']} and "
              f"took {machine['time_s_total'] / 60:.1f} min in all ({machine['fit_s_total'] / 60:.1f} min of it "
              "fitting).", "",
              f"Profile `{profile.name}`: {profile.description}", "",
              f"- crop: {'full images' if profile.crop is None else f'{profile.crop}x{profile.crop} centre crops'}",
              f"- LINR steps per task: {json.dumps(profile.steps)}",
              f"- DIP steps per task (the 'DIP' column): {json.dumps(profile.dip_steps or profile.steps)}; "
              "it uses DIP's recipe settings (lr 0.01, input perturbation 1/30 and output averaging "
              "0.99 when an observation is noisy, perturbation 0.03 otherwise) truncated to these steps",
              "- DIP recipe ('DIP (recipe)' column): " + "; ".join(
                  f"{k}: {r.steps} steps, perturbation {r.reg_noise_std:.3g}, averaging {r.average}"
                  for k, r in profile.dip_recipe.items()),
              f"- DIP width: {profile.dip_channels} channels; fit seed {profile.fits_seed}; corruption "
              "seeds per image and kind are in every row",
              ""]
    if profile.deviations:
        lines += ["Deviations from the paper's protocol:", ""] + [f"- {d}" for d in profile.deviations] + [""]
    lines += [
        "Metrics: 'paper conv.' reproduces the paper's released code (PSNR on the unclipped RGB "
        "output, data range 1, no crop; Y channel of 8-bit images for deblurring; SSIM with "
        "scikit-image's old float defaults, data range 2, which inflates it). 'standard' clips "
        "the output to [0, 1], PSNR on RGB, SSIM of Wang et al. (11x11 Gaussian window, data "
        "range 1). 'PSNR Y (SR, crop)' is the usual SR metric: Y channel, border of `factor` "
        "pixels cut. 'peak PSNR' is the best PSNR (RGB, unclipped) an iterative method reached "
        "at any step and the step (step k: the output step k started from, after k - 1 updates; a "
        "fixed budget of N steps returns step N + 1, its last iterate, which the peak includes): an oracle that needs the clean image, shown to tell a "
        "budget that stops too early or too late from a method that cannot do better. "
        "'diff' = ours (paper conv.) - paper. The classical denoisers (TV, NLM, BM3D) are given the "
        "noise level the photo was made with (on real noise, Table 14, the level measured from the photo); "
        "linr's default measures it from the photo itself, and the paper's LINR needs none. Super-resolution tables centre-crop the "
        "HR image to a multiple of the factor first.", "",
        "'time s' is the wall time of each restoration, no I/O or metrics: for linr its fit, a stop's work "
        "after it and the refinement (results.csv: fit_s the fit alone, total_s all of it), for the "
        "others their run. images/inputs holds each input as fitted: a float32 TIFF of its values (unclipped, "
        "unrounded; `linr restore --range 0:1` maps it as the bench did) and an 8-bit PNG to look at, each "
        "named by its own width x height; images/ the outputs as 8-bit PNGs to look at (the metrics are of "
        "the unrounded outputs). Rows marked "
        "'shared with table N' reuse that table's identical fit.", "",
    ]
    if skipped:
        lines += ["Skipped:", ""] + [f"- {s}" for s in skipped] + [""]
    if plot_note:
        lines += [plot_note, ""]
    lines += as_run_lines(rows, jobs or {})
    lines += ["## Per-table averages", ""] + markdown_summary(summary) + [""]
    for table in tables:
        lines += _table_section(table, [r for r in rows if r["table"] == table.key],
                                [e for e in summary if e["table"] == table.key],
                                plots.get(table.key), profile)
    path.write_text("\n".join(lines))


def as_run_lines(rows: Sequence[dict[str, Any]], jobs: dict[str, dict[str, Any]]) -> list[str]:
    """What each column of linr's defaults (``LINR (default)``, its ``--variants``, ``fast``) ran, by
    table: the networks, learning rates and stop rules of its fits. One setting of a variant can
    change others (``refine=none`` leaves the denoising pilot: the paper's 7x256 at its rate and
    stop), which a researcher's trial read as an ablation of that setting alone."""
    seen: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in rows:
        job = jobs.get(row.get("job") or "")
        if job and job.get("status") == "ok" and row["method"].startswith("LINR (") and job.get("settings"):
            seen.setdefault((row["table_number"], row["method"]), []).append(job["settings"])
    if not seen:
        return []

    def said(values: list[Any]) -> str:
        kept = list(dict.fromkeys(str(v) for v in values))
        return kept[0] if len(kept) == 1 else " / ".join(kept)

    lines = ["What linr's default columns ran (their fits' networks, learning rates and stop rules; a "
             "variant's one setting can change the others):", ""]
    for (number, method), settings in sorted(seen.items()):
        models = [f"{m.get('name')} {m.get('depth')}x{m.get('width')}" for m in (s.get("model") or {} for s in settings)]
        lines.append(f"- table {number}, {method}: {said(models)}, lr {said([s.get('lr') for s in settings])}, "
                     f"stop {said([s.get('stop') or 'not recorded (a job made before it was)' for s in settings])}")
    return lines + [""]


def plot_curves(path: Path, title: str,
                curves: dict[str, dict[str, list[float] | tuple[list[int], list[float]]]]) -> str | None:
    """PSNR (RGB, unclipped output) per step, one panel per image, one line per method.

    A curve is a list (one value per step) or ``(steps, values)`` with 1-based steps.

    Returns None when matplotlib is not installed (the caller notes it in the report).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    if not curves:
        return None
    n = len(curves)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 2.8 * rows), squeeze=False)
    for ax, (image, lines) in zip(axes.flat, curves.items()):
        for label, curve in lines.items():
            xs, ys = curve if isinstance(curve, tuple) else (range(1, len(curve) + 1), curve)
            ax.plot(xs, ys, label=label, linewidth=1)
        ax.set_title(image, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel("PSNR (dB)", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return str(path)
