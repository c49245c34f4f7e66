"""The table printed at the end of a batch: counts, time per image, mean metrics."""

from __future__ import annotations

import math
from typing import Any, Sequence

from ..tasks import retry_records
from .run import Outcome

__all__ = ["summary_table"]


def _mean(values: Sequence[float | None]) -> float | None:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return sum(vals) / len(vals) if vals else None


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def summary_table(records: Sequence[dict[str, Any]], outcome: Outcome, *, where: str, engine: str) -> str:
    """Rows per status over this batch's ``records`` (every run so far), then this run's line.

    Metrics are means over the done images that have a reference, in both conventions
    (standard: clipped output, RGB PSNR with data range 1, Gaussian SSIM; paper: see
    :mod:`linr.metrics`).
    """
    with_metrics = any(r.get("metrics") for r in records)
    head = f"{'status':<8} {'images':>6} {'fit s/img':>10} {'total s/img':>12}"
    if with_metrics:
        head += f" {'PSNR std':>9} {'SSIM std':>9} {'PSNR paper':>11} {'SSIM paper':>11}"
    lines = [f"batch summary ({where}, {len(records)} images)", head]
    for status in ("done", "failed"):
        rows = [r for r in records if r["status"] == status]
        if not rows and status == "failed":
            continue
        run = [r.get("run") or {} for r in rows]
        line = (f"{status:<8} {len(rows):>6} {_fmt(_mean([x.get('fit_s') for x in run]), '.2f'):>10} "
                f"{_fmt(_mean([x.get('time_s') for x in run]), '.2f'):>12}")
        if with_metrics:
            m = [r["metrics"] for r in rows if r.get("metrics")]
            std = [x["standard"] for x in m]
            pap = [x["paper"] for x in m]
            line += (f" {_fmt(_mean([x['psnr'] for x in std]), '.2f'):>9}"
                     f" {_fmt(_mean([x['ssim'] for x in std]), '.4f'):>9}"
                     f" {_fmt(_mean([x['psnr'] for x in pap]), '.2f'):>11}"
                     f" {_fmt(_mean([x['ssim'] for x in pap]), '.4f'):>11}")
        lines.append(line)
    done = [r for r in records if r["status"] == "done"]
    measured = sum(1 for r in done if r.get("metrics"))
    if with_metrics and measured < len(done):
        lines.append(f"metrics: means over the {measured} of {len(done)} done images measured against "
                     "a reference")
    retried = [r for r in done if any(retry_records(r.get("settings") or {}))]
    if retried:  # a failed pilot fitted again at the paper's rate (FitConfig.retry_lr)
        lines.append(f"retried: {len(retried)} of {len(done)} done images had a fit (or tile) that failed at the "
                     "pilot's learning rate and was fitted again at the paper's ('retry' in the manifest's settings), "
                     f"e.g. {retried[0]['image']}")
    unmeasured = [r for r in done if r.get("metrics_error")]
    if unmeasured:
        first = unmeasured[0]
        lines.append(f"no metrics for {len(unmeasured)} image(s) whose reference could not be used "
                     f"(restored all the same), e.g. {first['image']}: {first['metrics_error']}")
    n = len(outcome.restored) + len(outcome.failed)
    # interrupted: the wall time holds unfinished images too, so no time per image (the table has it)
    per = "" if not n or outcome.interrupted else f", {outcome.wall_s / n:.2f} s per image" if not outcome.failed else \
        f", {outcome.wall_s / n:.2f} s per image tried (failed ones included; the table's times are per image)"
    state = "interrupted" if outcome.interrupted else "finished"
    lines.append(f"this run ({state}): {len(outcome.restored)} restored, {len(outcome.failed)} failed, "
                 f"{len(outcome.skipped)} already done, in {outcome.wall_s:.1f} s on {engine}{per}")
    failed = [r for r in records if r["status"] == "failed"]
    if failed:
        lines.append("failed images (rerun the same command to retry them):")
        lines += [f"  {r['image']}: {r['error']}" for r in failed[:20]]
        if len(failed) > 20:
            lines.append(f"  ... and {len(failed) - 20} more (see the manifest)")
    return "\n".join(lines)
