"""#15 a RED-style prior (a probe): the denoising default's pilot fit regularised toward a classical
denoiser's output of its own image, as DeepRED does for Deep Image Prior.

The prior (defined here, registered for this process only) adds ``weight * mean((x - D(x))^2)`` to
the loss on the fit's [-1, 1] scale, ``D(x)`` held fixed (computed from the detached image, and
recomputed every ``EVERY`` evaluations): its gradient is RED's ``2 weight (x - D(x))``. D is
non-local means (``rednlm``: scikit-image's fast mode, patch 5, distance 6, ``h = 0.8 sigma``) or
BM3D (``redbm3d``), given the noise level ``sigma`` (data range 1; the true one here). Each variant
replaces the default's ``tv:auto`` prior (``prior=...``); everything else is the default restore
(the pilot network, its stop, the ``grouped`` refinement). PSNR in the standard convention; CPU
seconds of one thread.

    .venv/bin/python benchmarks/red_probe.py house baboon kodim01 kodim03 --size 128 \\
        --variants default rednlm:0.3 redbm3d:0.3 --rows benchmarks/red_probe.jsonl

``--table ROWS`` prints the rows (per image, PSNR refined / pilot, CPU seconds).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

EVERY = 5
TUNE = ("house", "baboon", "kodim01", "kodim03")
"""The set9 images the defaults' settings were chosen on (``linr bench denoise``'s tune split)."""
"""Evaluations of the prior between two refreshes of D(x)."""


def _make_priors():
    from linr.priors import ImagePrior

    class _Red(ImagePrior):
        halo_rows = None  # needs the whole image: the fit takes the image step

        def __init__(self, weight: float, sigma: float) -> None:
            self.weight, self.sigma = float(weight), float(sigma)
            self._target = None
            self._calls = 0

        def denoise(self, x01: np.ndarray) -> np.ndarray:
            raise NotImplementedError

        def value(self, image):
            import torch

            if self._target is None or self._target.shape != image.shape or self._calls % EVERY == 0:
                x = image.detach()[0].permute(1, 2, 0).cpu().double().numpy()
                d = self.denoise(np.clip((x + 1) / 2, 0, 1))
                self._target = torch.from_numpy(np.ascontiguousarray(d * 2 - 1)).permute(2, 0, 1)[None].to(image)
            self._calls += 1
            return self.weight * ((image - self._target) ** 2).mean()

        @property
        def spec(self) -> str:
            return f"{self.name}:{self.weight!r}:{self.sigma!r}"

    class RedNLM(_Red):
        name = "rednlm"

        def denoise(self, x01):
            from skimage.restoration import denoise_nl_means

            out = denoise_nl_means(x01, h=0.8 * self.sigma, sigma=self.sigma, fast_mode=True, patch_size=5,
                                   patch_distance=6, channel_axis=-1)
            return out.reshape(x01.shape)

    class RedBM3D(_Red):
        name = "redbm3d"

        def denoise(self, x01):
            import bm3d

            if x01.shape[2] == 3:
                return bm3d.bm3d_rgb(x01, self.sigma)
            return bm3d.bm3d(x01[..., 0], self.sigma)[..., None]

    return {"rednlm": RedNLM, "redbm3d": RedBM3D}


def run(name: str, size: int | None, sigma: float, variant: str, data: Path) -> dict:
    import linr
    from linr.bench.averaging import clean_crop, observations_for
    from linr.bench.common import psnr

    folder, _, stem = name.rpartition("/")
    clean = clean_crop(data, folder or "set9", stem, "rgb", size)
    obs = observations_for("denoise", clean, sigma=sigma, seed=0)
    options = {}
    if variant != "default":
        kind, _, weight = variant.partition(":")
        options["prior"] = f"{kind}:{weight}:{sigma / 255!r}"
    c0 = time.process_time()
    result = linr.restore(obs, device="cpu", progress=False, seed=0, **options)
    return {"image": name, "size": size or "full", "sigma": sigma, "variant": variant,
            "refined": psnr(clean, result.image), "pilot": psnr(clean, result.fitted_image),
            "cpu_seconds": time.process_time() - c0, "returned_step": result.stop_step,
            "steps_run": result.steps_run, "stop": (result.settings.get("stop") or {}).get("name"),
            "prior": result.settings.get("prior_used") or result.settings.get("prior")}


def table(rows: list[dict], variants: list[str]) -> str:
    cells: dict[str, dict[str, dict]] = {}
    for r in rows:
        cells.setdefault(f"{r['image']} ({r['size']} px)", {})[r["variant"]] = r
    lines = ["| image | " + " | ".join(variants) + " |", "|---|" + "---:|" * len(variants)]
    full = [(image, c) for image, c in cells.items() if all(v in c for v in variants)]
    for image, c in full:
        lines.append(f"| {image} | " + " | ".join(
            f"{c[v]['refined']:.2f} / {c[v]['pilot']:.2f} ({c[v]['cpu_seconds']:.0f} s)" for v in variants) + " |")
    split = lambda c: "tune" if c[variants[0]]["image"] in TUNE else "report and held-out"  # noqa: E731
    for size, part in sorted({(c[variants[0]]["size"], split(c)) for _, c in full}, key=str):
        group = [c for _, c in full if c[variants[0]]["size"] == size and split(c) == part]
        means = [sum(c[v]["refined"] for c in group) / len(group) for v in variants]
        lines.append(f"| mean of {len(group)} ({size} px, {part}) | " + " | ".join(
            f"{m:.2f}" + ("" if k == 0 else f" ({m - means[0]:+.2f})") for k, m in enumerate(means)) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("images", nargs="*")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--sigma", type=float, default=25.0)
    p.add_argument("--variants", nargs="+", default=["default", "rednlm:0.3", "redbm3d:0.3"])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--rows", default="benchmarks/red_probe.jsonl")
    p.add_argument("--table", metavar="ROWS")
    args = p.parse_args(argv)
    if args.table:
        rows = [json.loads(line) for line in Path(args.table).read_text().splitlines() if line.strip()]
        print(table(rows, args.variants))
        return 0
    import torch

    from linr.bench.common import emit_row, read_rows
    from linr.priors import PRIORS

    PRIORS.update(_make_priors())
    torch.set_num_threads(1)
    rows = Path(args.rows)
    done = read_rows(rows) if rows.exists() else {}
    for name in args.images:
        for variant in args.variants:
            key = f"{name}_s{args.size}_n{args.sigma:g}_{variant}"
            if key in done:
                continue
            emit_row({**run(name, args.size or None, args.sigma, variant, Path(args.data)), "key": key,
                      "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, rows)  # where: commit, processor
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
