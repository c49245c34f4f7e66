"""#15 joint fits: how many held-out pixels the joint refinement's blend needs, and how sure of its
gain it must be (``GroupedProjected.MIN_PIXELS`` and ``SIGNIFICANCE``).

For each fit cached by ``benchmarks/joint_choice_probe.py --cache`` (set5 128-px crops; the fit's
image, its held-out pixels, the noisy photo, the clean crop), the blend is chosen again on a random
``n`` of the fit's held-out pixels (three draws; and once on all of them) exactly as
:class:`linr.refine.GroupedProjected` chooses it (blind filter and projection, values inside the
clip margin, :func:`linr.refine.simplex_weights`), and its PSNR gain over the projected image is
recorded for each threshold ``z`` on its held-out gain (in standard errors): used above the
threshold, else the projected image. PSNR: standard convention (clipped, data range 1).

    .venv/bin/python benchmarks/joint_choice_guard.py /work/cache/joint_choice --sigma 15 25 \
        --rows benchmarks/joint_choice_guard.jsonl
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

THRESHOLDS = (0.0, 1.0, 2.0, 3.0)
COUNTS = (100, 200, 400)
SET5 = ("baby", "bird", "butterfly", "head", "woman")


def main() -> None:
    from linr.bench.common import emit_row, psnr
    from linr.noise import floored_noise_sigma
    from linr.refine import GroupedProjected, GroupedWiener, Projected, simplex_weights

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from joint_choice_probe import joint_case

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("cache")
    p.add_argument("--sigma", type=float, nargs="+", default=[15.0, 25.0])
    p.add_argument("--rows", default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    margin = GroupedProjected.CLIP_MARGIN
    summary: dict[tuple, list[float]] = {}
    for stem in SET5:
        for sigma in args.sigma:
            path = Path(args.cache) / f"{stem}_128_s{sigma:g}.npz"
            if not path.exists():
                continue
            z = np.load(path)
            fit, held, noisy, clean = z["fit"], z["held"], z["noisy"], z["clean"]
            joint = joint_case(clean, sigma, 0)
            s = floored_noise_sigma(noisy)
            grouped = GroupedWiener()(noisy, fit, s)
            projected = Projected()(grouped, joint[1:])
            before = psnr(clean, projected)
            idx = np.flatnonzero(held)
            for n in (*COUNTS, len(idx)):
                for draw in range(3 if n < len(idx) else 1):
                    sub = np.zeros_like(held)
                    sub.flat[np.random.default_rng(draw).choice(idx, n, replace=False)] = True
                    blind = noisy.copy()
                    blind[sub] = fit[sub]
                    g_blind = GroupedWiener()(blind, fit, s)
                    p_blind = Projected()(g_blind, joint[1:])
                    values = sub[..., None] & (fit > margin * s) & (fit < 1 - margin * s)
                    y = noisy[values].astype(np.float64)
                    c = np.stack([fit[values], g_blind[values], p_blind[values]], 1).astype(np.float64)
                    w = simplex_weights(y, list(c.T))
                    gain = (y - c[:, 2]) ** 2 - (y - c @ w) ** 2
                    spread = gain.std() / np.sqrt(gain.size)
                    z_score = float(gain.mean() / spread) if spread > 0 else 0.0
                    blend = psnr(clean, w[0] * fit + w[1] * grouped + w[2] * projected) - before
                    gains = {f"{t:g}": (blend if z_score > t else 0.0) for t in THRESHOLDS}
                    count = "all" if n == len(idx) else n
                    for t, g in gains.items():
                        summary.setdefault((count, t), []).append(g)
                    emit_row({"image": f"set5/{stem}", "sigma": sigma, "pixels": count, "draw": draw,
                              "weights": [round(float(v), 4) for v in w], "z": round(z_score, 2),
                              "gain_over_projected_by_threshold": gains}, args.rows)
    print("| held-out pixels | z threshold | mean gain over the projected image | worst | draws |")
    print("|---|---:|---:|---:|---:|")
    for (count, t), gains in sorted(summary.items(), key=lambda kv: (str(kv[0][0]).zfill(4), float(kv[0][1]))):
        print(f"| {count} | {t} | {np.mean(gains):+.3f} | {min(gains):+.2f} | {len(gains)} |")


if __name__ == "__main__":
    main()
