"""#15, SR x4 beyond the paper: does averaging help a super-resolution fit at full size?

For each set5 image (whole, x4 lanczos2 low-res as in Table 2), K fits with the paper's settings
(SIREN 7x256, Adam 1e-4, 500 steps) from seeds 0..K-1 (seed 0 is Table 2's own fit); every
member's rendered image is kept at a few steps, and the late iterates are averaged (the mean of
the renders every ``--every`` steps over the last ``--window`` steps, the final image
included). The rows compare, per image: one member at 500 steps (the paper preset), the late-iterate average of one member, the
mean of k = 2..K members (raw and late-averaged), with their CPU time, and each of these made to
reproduce the low-res input exactly (``*_projected``: :func:`linr.projection.project_onto_views`,
the nearest image whose downsampling is the input). The members' own fits do not depend on the
snapshots (the renders are the fit's own forward passes).

PSNR: the paper's convention (RGB, unclipped, data range 1) and the standard one (scikit-image,
clipped). Rows are appended to ``--rows`` per image (one image is one line; a rerun skips images
already there).

    .venv/bin/python benchmarks/sr_ensemble.py --images woman head --members 3 --threads 1 \
        --rows benchmarks/sr_ensemble.jsonl
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np


def psnr_pair(clean: np.ndarray, image: np.ndarray) -> tuple[float, float]:
    from skimage.metrics import peak_signal_noise_ratio

    c = clean.astype(np.float64)
    paper = 10 * np.log10(1.0 / np.mean((image.astype(np.float64) - c) ** 2))
    standard = peak_signal_noise_ratio(c, np.clip(image, 0, 1).astype(np.float64), data_range=1.0)
    return round(float(paper), 3), round(float(standard), 3)


def member(observations, seed: int, steps: int, keep: set[int], window: int, every: int):
    """One paper-preset fit: its renders at the steps in ``keep`` and the late average."""
    import torch

    from linr.tasks import restore

    snaps: dict[int, np.ndarray] = {}
    tail: list[np.ndarray] = []

    def on_step(step: int, output, loss: float, tile) -> None:
        # the output seen at step ``step`` (from 0) is the image after ``step`` updates
        late = step > steps - window and (steps - step) % every == 0
        if step in keep or late:
            img = output.detach().float().cpu().numpy()
            if step in keep:
                snaps[step] = img
            if late:
                tail.append(img)

    c0 = time.process_time()
    result = restore(observations, preset="paper", stop="fixed", steps=steps, seed=seed, progress=False,
                     on_step=on_step)
    cpu = time.process_time() - c0
    final = result.image
    shape = final.shape
    snaps = {k: _as_image(v, shape) for k, v in snaps.items()}
    average = np.mean([*(_as_image(t, shape) for t in tail), final], axis=0)  # the last: after ``steps``
    return final, snaps, average, cpu, torch.get_num_threads()


def _as_image(output: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A fit's forward output (values v on [-1, 1]) as an (H, W, C) image (v + 1) / 2 on [0, 1]."""
    return (_as_hwc(output, shape) + 1) / 2


def _as_hwc(output: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The output's layout, (N, C) pixels or (1, C, H, W), as (H, W, C)."""
    h, w, c = shape
    if output.shape == (h * w, c):
        return output.reshape(h, w, c)
    if output.shape == (c, h, w):
        return np.transpose(output, (1, 2, 0))
    if output.shape == (1, c, h, w):
        return np.transpose(output[0], (1, 2, 0))
    if output.shape == (h, w, c):
        return output
    raise ValueError(f"unexpected forward output shape {output.shape} for an image {shape}")


def main() -> None:
    import torch

    from linr.bench.common import append_row, commit_id, cpu_name
    from linr.images import read_image
    from linr.projection import project_onto_views
    from linr.simulate import lanczos_downscale
    from linr.tasks import lowres

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", nargs="+", default=["woman", "head"])
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--factor", type=int, default=4)
    p.add_argument("--window", type=int, default=50, help="late-average window (steps)")
    p.add_argument("--every", type=int, default=5, help="late-average spacing (steps)")
    p.add_argument("--crop", type=int, default=None, help="centre crop (smoke runs only)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rows", default=None)
    p.add_argument("--cache", default=None,
                   help="folder for each member's images (npz), so that a killed run resumes member by member")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    done = set()
    if args.rows and Path(args.rows).exists():
        for line in Path(args.rows).read_text().splitlines():
            r = json.loads(line)
            done.add((r["image"], r["members"], r["steps"], r["crop"]))
    keep = {s for s in (300, 400) if s < args.steps}
    for name in args.images:
        if (name, args.members, args.steps, args.crop) in done:
            print(f"{name}: in {args.rows} already", flush=True)
            continue
        clean = read_image(Path(args.data) / "set5" / f"{name}.png")[0][..., :3]
        if args.crop:
            h, w = clean.shape[:2]
            t, left = (h - args.crop) // 2, (w - args.crop) // 2
            clean = clean[t:t + args.crop, left:left + args.crop]
        h, w = (clean.shape[0] // args.factor) * args.factor, (clean.shape[1] // args.factor) * args.factor
        clean = np.ascontiguousarray(clean[:h, :w])
        obs = [lowres(lanczos_downscale(clean, args.factor), args.factor)]
        finals, averages, snaps, cpus = [], [], [], []
        for seed in range(args.members):
            cached = Path(args.cache) / f"{name}_x{args.factor}_s{args.steps}_c{args.crop}_w{args.window}" \
                f"_e{args.every}_seed{seed}.npz" if args.cache else None
            if cached is not None and cached.exists():
                z = np.load(cached)
                final, average, cpu, threads = z["final"], z["average"], float(z["cpu"]), int(z["threads"])
                snap = {int(k[5:]): z[k] for k in z.files if k.startswith("snap_")}
            else:
                final, snap, average, cpu, threads = member(obs, seed, args.steps, keep, args.window, args.every)
                if cached is not None:
                    cached.parent.mkdir(parents=True, exist_ok=True)
                    np.savez(cached, final=final, average=average, cpu=cpu, threads=threads,
                             **{f"snap_{k}": v for k, v in snap.items()})
            finals.append(final)
            averages.append(average)
            snaps.append(snap)
            cpus.append(round(cpu, 1))
            print(f"{name} member {seed}: {psnr_pair(clean, final)} late average {psnr_pair(clean, average)} "
                  f"({cpu:.0f} s CPU)", flush=True)
        row = {"image": name, "factor": args.factor, "crop": args.crop, "shape": [h, w],
               "members": args.members, "steps": args.steps, "window": args.window, "every": args.every,
               "member_psnr": [psnr_pair(clean, f) for f in finals],
               "member_late_average": [psnr_pair(clean, a) for a in averages],
               "member_at": {str(s): [psnr_pair(clean, sn[s]) for sn in snaps] for s in sorted(keep)},
               "mean_of_k": {str(k): psnr_pair(clean, np.mean(finals[:k], axis=0))
                             for k in range(2, args.members + 1)},
               "mean_of_k_late_average": {str(k): psnr_pair(clean, np.mean(averages[:k], axis=0))
                                          for k in range(2, args.members + 1)},
               "mean_of_k_at": {str(s): {str(k): psnr_pair(clean, np.mean([sn[s] for sn in snaps[:k]], axis=0))
                                         for k in range(2, args.members + 1)} for s in sorted(keep)},
               "member_projected": [psnr_pair(clean, project_onto_views(f, obs)[0]) for f in finals],
               "member_late_average_projected": [psnr_pair(clean, project_onto_views(a, obs)[0]) for a in averages],
               "mean_of_k_projected": {str(k): psnr_pair(clean, project_onto_views(np.mean(finals[:k], axis=0), obs)[0])
                                       for k in range(2, args.members + 1)},
               "mean_of_k_late_average_projected": {
                   str(k): psnr_pair(clean, project_onto_views(np.mean(averages[:k], axis=0), obs)[0])
                   for k in range(2, args.members + 1)},
               "cpu_s": cpus, "threads": threads, "processor": cpu_name(), "commit": commit_id(), "torch": torch.__version__,
               "convention": "[paper (RGB, unclipped), standard (skimage, clipped)]"}
        print(json.dumps(row), flush=True)
        if args.rows:
            append_row(args.rows, row)


if __name__ == "__main__":
    main()
