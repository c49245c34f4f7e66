"""Replays the default stop rule on the rows of benchmarks/photon_averaging.py.

For each recorded fit: the rule's end (no new hold-out minimum of the raw iterates for 40 steps),
then the raw iterate at its hold-out minimum (the rule without an average), the 20- and
40-iterate averages at theirs (the default returns the 40-iterate one: the 5% guard of
linr.stopping.HoldOut never fired on these rows), the best raw iterate up to the end (the
oracle), and the gap between the two hold-out minima relative to the raw one.

    python benchmarks/photon_averaging_report.py [ROWS]
"""
from __future__ import annotations

import json
import sys

import numpy as np

from linr.bench.averaging import _track


def replay(row: dict, series: str, patience: int = 40) -> tuple[float, int, float]:
    """(PSNR at the series' hold-out minimum up to the rule's end, that step, its hold-out loss)."""
    fire, _ = _track(row["series"]["raw"]["ho"], patience)
    end = len(row["series"]["raw"]["ho"]) if fire is None else fire + 1
    s = row["series"][series]
    i = int(np.argmin(s["ho"][:end]))
    return s["psnr"][i], i + 1, s["ho"][i]


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "benchmarks/photon_averaging.jsonl"
    rows = [json.loads(line) for line in open(path) if line.strip()]
    print("| image | photons | crop | held-out entries | raw stop | window20 | window40 (default) | oracle (step) "
          "| default - oracle | raw - oracle | hold-out gap |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    diffs = []
    for r in rows:
        raw, raw_step, raw_ho = replay(r, "raw")
        w20, _, _ = replay(r, "window20")
        w40, w40_step, w40_ho = replay(r, "window40")
        fire, _ = _track(r["series"]["raw"]["ho"], 40)
        end = len(r["series"]["raw"]["psnr"]) if fire is None else fire + 1
        curve = r["series"]["raw"]["psnr"][:end]
        best = int(np.argmax(curve))
        diffs.append((w40 - raw, w40 - curve[best], raw - curve[best]))
        print(f"| {r['image']} | {r['peak']:g} | {r['crop']} | {r['held_out_entries']} | {raw:.2f} ({raw_step}) | "
              f"{w20:.2f} | {w40:.2f} ({w40_step}) | {curve[best]:.2f} ({best + 1}) | {w40 - curve[best]:+.2f} | "
              f"{raw - curve[best]:+.2f} | {100 * (w40_ho / raw_ho - 1):+.2f}% |")
    d = np.array(diffs)
    print(f"\n{len(d)} fits: window40 - raw stop {d[:, 0].mean():+.2f} dB on average; window40 within 0.5 dB of "
          f"the oracle on {(d[:, 1] > -0.5).sum()}, the raw stop on {(d[:, 2] > -0.5).sum()}")


if __name__ == "__main__":
    main()
