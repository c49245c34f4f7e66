"""Peak memory of one `linr restore` of a large noisy photo, its fit cut short so that the run is
minutes: the command's own process (``--workers 1``: the tiles are fitted in it; the refinement
runs in it whatever the workers), as the peak resident memory of the child process.

    .venv/bin/python benchmarks/restore_peak_memory.py --size 2048 [--steps 3] [--rows FILE]

The photo is ``tiles_scale.py``'s (set9/kodim01 mirror-tiled, sigma 25, seed 0) as an 8-bit PNG;
every setting is the default but ``--steps N``, the stop rule's budget (each tile fits at most N
steps: the plan, the tiles, the fit's arrays, the tile store and the refinement are those of a
default restore; its time is not).
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


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=2048)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--rows", default=None)
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    import numpy as np

    from linr.bench.common import append_row, commit_id, cpu_name
    from linr.images import write_image
    from tiles_scale import noisy_mirrored_photo

    data = Path(os.environ.get("LINR_DATA", HERE.parent.parent / "shared" / "data"))
    noisy = noisy_mirrored_photo(data, args.size)[1]  # the clean photo is not kept
    row = {"commit": commit_id(), "processor": cpu_name(), "size": args.size, "steps": args.steps,
           "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / "noisy.png", Path(tmp) / "out.png"
        write_image(src, np.clip(noisy, 0, 1))
        del noisy
        report = out.with_suffix(".json")
        cmd = [str(HERE.parent / ".venv" / "bin" / "linr"), "restore", "--noisy", str(src), "-o", str(out),
               "--quiet", "--force", "--device", "cpu", "--workers", "1", "--steps", str(args.steps), "--report", str(report)]
        t = time.perf_counter()
        subprocess.run(cmd, check=True)
        row["wall_s"] = round(time.perf_counter() - t, 1)
        done = json.loads(report.read_text())
        row["fit_s"] = round(done["timings"]["fit_s"], 1)
        row["refine_s"] = round(done["timings"].get("refine_s", 0.0), 1)
    row["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 3)
    row["load_after"] = os.getloadavg()[0]
    print(json.dumps(row))
    if args.rows:
        append_row(args.rows, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
