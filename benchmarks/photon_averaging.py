"""Photon-noise fits recorded step by step: does the default's 40-iterate average help or hurt?

One default denoising fit (censored Poisson term, hold-out 5% seed 0) per job, on the photon
bench's noisy crop (``linr bench photon``: centre crop, Poisson counts at PEAK photons for white,
clipped at white, its noise seed), run until every series' hold-out minimum is 50 steps old (or
400 steps). At every step, for the raw iterate and for the 20- and 40-iterate averages: the PSNR
against the clean crop (clipped, data range 1), the hold-out loss (the measure the stop rule
uses) and the noise floor of that loss under the Poisson model (the mean, over the held-out
entries, of the variance of a clipped observation of the iterate; fit's [-1, 1] scale). Replays
of the stop rule then need no refit: benchmarks/photon_averaging_report.py.

    python benchmarks/photon_averaging.py set5/baby:10 set5/baby:30:192 ... [--rows FILE]

JOB is IMAGE:PEAK[:CROP] (crop 96 unless given). Rows are appended to --rows; a rerun skips
finished keys.
"""
from __future__ import annotations

import argparse
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from linr.averaging import parse_average
from linr.bench.common import append_row, commit_id, cpu_name, load_clean, noise_seed, read_rows
from linr.fit import FitConfig, fit
from linr.kinds import noise_term, noisy as noisy_observation
from linr.simulate import add_photon_noise
from linr.stopping import HoldOut, estimate_noise_sigma
from linr.tasks import resolve

SERIES = ("raw", "window20", "window40")


def clipped_variance(term, pred: torch.Tensor) -> torch.Tensor:
    """Variance (fit's [-1, 1] scale) of a clipped photon observation of the rendering ``pred``:
    with ``N ~ Poisson(mu)``, ``c`` the white level in counts, ``m`` the largest integer below
    ``c`` and ``F(j) = Q(j + 1, mu)``: ``E[min(N, c)] = mu F(m-1) + c (1 - F(m))`` and
    ``E[min(N, c)^2] = mu^2 F(m-2) + mu F(m-1) + c^2 (1 - F(m))``."""
    mu = term._counts(pred, pred)[0].double()
    if not term.saturated:
        return 4 * mu / term.peak ** 2

    def cdf(j: int) -> torch.Tensor:
        return torch.zeros_like(mu) if j < 0 else torch.special.gammaincc(torch.full_like(mu, j + 1.0), mu)

    c = term.peak + term.shift
    m = math.ceil(c) - 1
    first = mu * cdf(m - 1) + c * (1 - cdf(m))
    second = mu * mu * cdf(m - 2) + mu * cdf(m - 1) + c * c * (1 - cdf(m))
    return 4 * (second - first * first).clamp_min(0) / term.peak ** 2


def record(spec: str, peak: float, crop: int, data: Path) -> dict:
    clean = load_clean(data, spec, crop)
    noisy = np.minimum(add_photon_noise(clean, peak, seed=noise_seed(0, spec, peak), clip=False), 1.0)
    noisy = noisy.astype(np.float32)
    term, _ = noise_term(noisy, "poisson")
    obs = resolve([noisy_observation(noisy, noise=term)], device="cpu")[0]
    ref = torch.from_numpy(np.ascontiguousarray(clean.transpose(2, 0, 1)))[None]

    class Recorder(HoldOut):
        keeps_state = False

        def __init__(self) -> None:
            super().__init__(fraction=0.05, patience=1 << 30, seed=0)
            self.averages = {s: parse_average(s) for s in SERIES[1:]}
            self.series = {v: {"psnr": [], "ho": [], "floor": []} for v in SERIES}

        def observe(self, step, output, loss):
            self._book("raw", output)
            for spec_, average in self.averages.items():
                self._book(spec_, average.update(output))
            done = step + 1 >= 400 or all(step - int(np.argmin(s["ho"])) >= 50 for s in self.series.values())
            return "recorded" if done else None

        def _book(self, name, image):
            mse = torch.mean((torch.clamp((image + 1) / 2, 0, 1) - ref) ** 2)
            s = self.series[name]
            s["psnr"].append(round(float(-10 * torch.log10(mse)), 4))
            s["ho"].append(float(f"{float(self.holdout_loss(image)):.6g}"))
            op, index, _, _, _ = self._held[0]
            pred = op(image).flatten(2).index_select(2, index)
            s["floor"].append(float(f"{float(clipped_variance(term, pred).mean()):.6g}"))

    rule = Recorder()
    t0 = time.perf_counter()
    result = fit(obs, FitConfig(steps=400, device="cpu", seed=0, progress=False), stop=rule)
    return {"image": spec, "peak": peak, "crop": crop, "sigma_hat": estimate_noise_sigma(noisy),
            "held_out_entries": int(rule._held[0][1].numel() * noisy.shape[2]),
            "steps_run": result.steps_run, "fit_s": time.perf_counter() - t0, "term": term.describe(),
            "series": rule.series}


def parse_job(job: str) -> tuple[str, float, int]:
    """``IMAGE:PEAK[:CROP]`` -> (image, peak, crop); the image may hold a colon (``set9/f16:grey``)."""
    parts = job.split(":")
    numeric = 0
    while numeric < min(2, len(parts) - 1) and parts[-1 - numeric].replace(".", "", 1).isdigit():
        numeric += 1
    if numeric == 0:
        raise SystemExit(f"{job!r}: expected IMAGE:PEAK[:CROP]")
    if numeric == 1:
        return ":".join(parts[:-1]), float(parts[-1]), 96
    return ":".join(parts[:-2]), float(parts[-2]), int(parts[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs", nargs="+", help="IMAGE:PEAK[:CROP], e.g. set5/baby:10 or set5/baby:10:192")
    p.add_argument("--rows", default="benchmarks/photon_averaging.jsonl")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = Path(os.environ.get("LINR_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    rows = Path(args.rows)
    done = read_rows(rows)
    for job in args.jobs:
        spec, peak, crop = parse_job(job)
        key = f"{spec}_poisson_{peak:g}_{crop}"
        if key in done:
            continue
        row = {"key": key, **record(spec, peak, crop, data), "commit": commit_id(), "processor": cpu_name(),
               "threads": 1, "torch": torch.__version__}
        append_row(rows, row)
        print(key, row["steps_run"], f"{row['fit_s']:.0f} s", flush=True)


if __name__ == "__main__":
    main()
