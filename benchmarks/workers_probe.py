"""Wall time of a default restore of a tiled photo on this machine's cores: one process with
torch's threads against tiles fitted in local worker processes (``linr restore --workers N``).

#14 aims at a 512 x 512 RGB noisy photo in under 60 s on a 2-core CPU: a wall-clock aim. A tiled
restore fits its tiles one after another in one process whose torch threads share the cores; a
7x64 pilot's matrix products are small, so a second thread may add less than a second process
fitting another tile. This measures both, end to end, as a user runs them (the CLI, every default;
one process is ``--workers 1``), then the command with ``--workers`` left out (since the forty-fifth
session it picks workers by itself for a long tiled restore), plus the pilot's time per step in the three arrangements (one thread; two threads; two one-thread
processes side by side). Run it on an idle machine: other load changes the answer.

    .venv/bin/python benchmarks/workers_probe.py [--size 512] [--workers 2] [--rows FILE] [--only-default]

Each restore's row also holds its CPU seconds (its workers' included), its fitting and refining
seconds and the quartiles of its tiles' steps (run, and returned) from its report, and the peak
resident memory of the largest process so far (with ``--only-default``: of that restore's command
or one of its workers).

The photo is ``tiles_scale.py``'s (set9/kodim01 mirror-tiled, sigma 25, seed 0), given as an 8-bit
PNG and restored to one; PSNR in the standard convention (scikit-image, clipped, data range 1)
against the clean float photo.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
STEP_PROBE = """
import sys, time, numpy as np, torch, linr
from linr.tasks import DEFAULT_PILOT_MODEL, pilot_precision
torch.set_num_threads(int(sys.argv[1]))
rng = np.random.default_rng(0)
img = (0.5 + 0.2 * rng.standard_normal((272, 272, 3))).astype(np.float32)
precision = pilot_precision("cpu")  # the pilot's products on this CPU (bf16 where it has bf16 units)
linr.restore(linr.noisy(img), model=DEFAULT_PILOT_MODEL, steps=3, stop="fixed", refine="none", device="cpu",
             progress=False, precision=precision)  # warm-up
t = time.perf_counter()
linr.restore(linr.noisy(img), model=DEFAULT_PILOT_MODEL, steps=int(sys.argv[2]), stop="fixed", refine="none",
             device="cpu", progress=False, precision=precision)
print((time.perf_counter() - t) / int(sys.argv[2]))
"""


def step_times(steps: int) -> dict[str, float]:
    """Seconds per step of the pilot on a 272-px tile (the default's tile at 512 px): one thread,
    two threads, and two one-thread processes at once (each's time, averaged)."""
    def run(threads: int) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-c", STEP_PROBE, str(threads), str(steps)],
                                stdout=subprocess.PIPE, text=True)

    one = float(run(1).communicate()[0])
    two = float(run(2).communicate()[0])
    pair = [run(1), run(1)]
    side = [float(p.communicate()[0]) for p in pair]
    return {"one_thread_s": one, "two_threads_s": two, "two_processes_each_s": sum(side) / 2,
            "threads_speedup": one / two, "processes_speedup": 2 * one / (sum(side) / 2)}


def restore_wall(noisy_png: Path, out: Path, workers: int | None) -> tuple[float, dict]:
    """Wall seconds of one ``linr restore`` and what it took: its CPU seconds (its workers'
    included), fitting and refining seconds and the tiles' steps from its report."""
    report = out.with_suffix(".json")
    cmd = [str(HERE.parent / ".venv" / "bin" / "linr"), "restore", "--noisy", str(noisy_png), "-o", str(out),
           "--quiet", "--force", "--device", "cpu", "--report", str(report)] + \
        (["--workers", str(workers)] if workers is not None else [])
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    subprocess.run(cmd, check=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = json.loads(report.read_text())
    steps = sorted(tile["steps_run"] for tile in done["settings"].get("tiles") or [] if tile)
    returned = sorted(tile["stop_step"] for tile in done["settings"].get("tiles") or [] if tile)
    quartiles = lambda v: [v[0], v[len(v) // 4], v[len(v) // 2], v[3 * len(v) // 4], v[-1]] if v else None
    return wall, {"cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
                  "fit_s": round(done["timings"]["fit_s"], 1), "refine_s": round(done["timings"].get("refine_s", 0.0), 1),
                  "tiles": len(steps), "tile_steps_run": quartiles(steps), "tile_stop_steps": quartiles(returned),
                  # the largest process's peak (the command's or a worker's) among the restores so far
                  "peak_rss_gib": round(after.ru_maxrss / 2**20, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--steps", type=int, default=20, help="steps of the per-step probe")
    p.add_argument("--rows", default=None)
    p.add_argument("--only-default", action="store_true",
                   help="only the restore as a user runs it (no step probe, no other arrangement)")
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    import numpy as np

    from skimage.metrics import peak_signal_noise_ratio

    from linr.images import read_image, write_image
    from tiles_scale import noisy_mirrored_photo

    data = Path(os.environ.get("LINR_DATA", HERE.parent.parent / "shared" / "data"))
    clean, noisy = noisy_mirrored_photo(data, args.size)
    from linr.tasks import pilot_precision

    from linr.bench.common import append_row, commit_id

    row: dict = {"commit": commit_id(),  # the code the restores run: read before they start
                 "size": args.size, "cores": os.cpu_count(), "load_before": os.getloadavg()[0],
                 "pilot_precision": pilot_precision("cpu")}  # the step probe's since the forty-sixth session
    if not args.only_default:
        row.update(step_times(args.steps))
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "noisy.png"
        write_image(src, np.clip(noisy, 0, 1))  # 8-bit, as a user's photo
        # one process (--workers 1: since the forty-fifth session the default spreads a long tiled
        # restore over the cores by itself), N workers, and the default as a user runs it
        arrangements = [("one_process", 1), (f"workers{args.workers}", args.workers), ("default", None)]
        for label, workers in arrangements[2:] if args.only_default else arrangements:
            out = Path(tmp) / f"{label}.png"
            row[f"{label}_wall_s"], took = restore_wall(src, out, workers)
            row.update({f"{label}_{key}": value for key, value in took.items()})
            row[f"{label}_psnr"] = peak_signal_noise_ratio(clean, np.clip(read_image(out)[0], 0, 1), data_range=1.0)
    row["load_after"] = os.getloadavg()[0]
    print(json.dumps(row))
    if args.rows:
        append_row(args.rows, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
