"""A noisy photo beside a photo with missing pixels: the grouped-fill blend only where it clearly
beats the fit on the held-out pixels (sixty-ninth session).

The default (sixty-eighth session) fills the masked photo's missing pixels with ``grouped-fill``
from the joint fit and keeps the blend of the fit, a biharmonic inpainting and the fill that best
predicts the pixels the fit held out. With 20% of the pixels observed a 64-px crop holds out about
40, and the blend chosen on them lost 0.5-0.6 dB to the fit on two report crops of
``noisy_masked_probe.py``. The candidate: the blend only where its gain in squared error over the
fit on those pixels is above 3 standard errors (``linr.refine.blend_gain_z``; the threshold of
``grouped-project``, not tuned here), else the fit with the observed pixels put back. Scenes as in
``noisy_masked_probe.py`` (``DIR+NAME/KEPT/SIGMA``, the centre 64-px RGB crop, its seed the key's
CRC-32). Per scene, from one ``linr.restore`` with the defaults:

- ``default``: what it returns; ``gain_z`` and ``held_out``: the blend's z and the pixels it was chosen on;
- ``significant``: the same fit and held-out pixels through ``GroupedFill`` with ``significance=3``;
- ``fit_kept``: the fit with the observed pixels put back (what ``significant`` falls back to).

PSNR (standard convention, data range 1) against the crop; one torch thread; resumable rows.

    python benchmarks/noisy_masked_significance_probe.py ROWS.jsonl set9+house/0.2/25,...
    python benchmarks/noisy_masked_significance_probe.py ROWS.jsonl --table
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from linr.bench.common import keyed_probe, split_spans  # noqa: E402
from noisy_masked_probe import TUNE, scene  # noqa: E402

SIGNIFICANCE = 3.0


def row(key: str) -> dict:
    import linr
    from linr.refine import GroupedFill
    from skimage.metrics import peak_signal_noise_ratio as psnr

    torch.set_num_threads(1)
    clean, noisy, observed = scene(key)
    masked = linr.masked(clean * observed[..., None], observed)
    seen: list[tuple] = []
    plain_call = GroupedFill.__call__

    def kept_call(self, photo, observed_, fit, held_out=None):
        seen.append((photo, observed_, fit, held_out))
        return plain_call(self, photo, observed_, fit, held_out)

    t = time.time()
    GroupedFill.__call__ = kept_call
    try:
        r = linr.restore([linr.noisy(noisy), masked], progress=False)
    finally:
        GroupedFill.__call__ = plain_call
    (photo, obs, fit, held), = seen
    guarded = GroupedFill()
    guarded.significance = SIGNIFICANCE
    significant = guarded(photo, obs, fit, held)
    kept = np.where(np.asarray(obs, bool)[..., None] if np.ndim(obs) == 2 else obs, photo, fit)
    choice = r.settings.get("refine", {})
    out = {"key": key, "split": "tune" if key.split("/")[0] in TUNE else "report",
           "seconds": time.time() - t, "gain_z": guarded.choice.get("gain_z"),
           "held_out": guarded.choice.get("chosen_on_held_out_pixels"),
           "used_blend": "weights" in guarded.choice, "default_refine": choice}
    for name, image in {"default": r.image, "significant": significant, "fit_kept": kept}.items():
        out[name] = float(psnr(clean, np.clip(np.asarray(image, np.float64), 0, 1), data_range=1))
    return out


def table(rows: dict) -> str:
    lines = ["| scene | set | held out | z | fit, observed kept | default | significant | significant - default |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for key in sorted(rows, key=lambda k: (rows[k]["split"] != "tune", k)):
        r = rows[key]
        lines.append(f"| {key} | {r['split']} | {r['held_out']} | {r['gain_z']} | {r['fit_kept']:.2f} | "
                     f"{r['default']:.2f} | {r['significant']:.2f} | {r['significant'] - r['default']:+.2f} |")
    lines += split_spans(rows, {"significant - default": lambda r: r["significant"] - r["default"]})
    return "\n".join(lines)


if __name__ == "__main__":
    keyed_probe(sys.argv[1:], row, table)
