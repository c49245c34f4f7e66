"""Peak memory of one `linr restore` of a large noisy photo, its fit cut short so that the run is
minutes: the command's own process (``--workers 1``: the tiles are fitted in it; the refinement
runs in it whatever the workers), as the peak resident memory of the child process (with
``--steps 0`` the default's tile workers: the largest of the processes).

    .venv/bin/python benchmarks/restore_peak_memory.py --size 2048 [--steps 3] [--rows FILE]
    .venv/bin/python benchmarks/restore_peak_memory.py --size 8192 --steps 0 --folder bench_out/full8192 --rows FILE

``--steps 0``: the default's own budget (the whole restoration, hours at 8192 px on two cores).
``--workers N --threads T``: ``linr restore``'s workers and torch threads (``OMP_NUM_THREADS``;
tiles fitted with the same threads are the same
bits whatever the workers, so a kept folder may be resumed with other workers).
``--folder DIR``: the photo, the output, its tile store and ``attempts.jsonl`` live in DIR, kept
between runs, so that a run killed at a session's end resumes its finished tiles (``linr
restore``'s own tile store); the row then names the attempts and adds each tile's fit seconds
(``tile_fit_s``; the last attempt's wall time is ``wall_s``). With ``--folder`` the row also has
the PSNR (standard convention) against the clean photo.

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
    p.add_argument("--folder", default=None, help="keep the photo, output and tiles here (resumable)")
    p.add_argument("--workers", type=int, default=None,
                   help="linr restore's --workers (default: 1 with a cut budget, else the default's)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of linr restore (OMP_NUM_THREADS; default: its own choice)")
    args = p.parse_args()
    sys.path.insert(0, str(HERE))
    import numpy as np

    from linr.bench.common import append_row, commit_id, cpu_name
    from linr.images import write_image
    from tiles_scale import noisy_mirrored_photo

    data = Path(os.environ.get("LINR_DATA", HERE.parent.parent / "shared" / "data"))
    row = {"commit": commit_id(), "processor": cpu_name(), "size": args.size, "steps": args.steps or "default",
           "load_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.folder) if args.folder else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        src, out = folder / "noisy.png", folder / "out.png"
        size_file = folder / "size.txt"  # a kept folder is for one size
        if size_file.exists() and size_file.read_text().strip() != str(args.size):
            raise SystemExit(f"{folder} holds the {size_file.read_text().strip()}-px restoration, not {args.size}")
        if not src.exists():
            noisy = noisy_mirrored_photo(data, args.size)[1]  # the clean photo is not kept
            write_image(src, np.clip(noisy, 0, 1))  # atomic: a killed write leaves none
            size_file.write_text(f"{args.size}\n")
            del noisy
        report = folder / "out.json"
        tiles = Path(str(out) + ".tiles")
        if args.folder:
            if out.exists():
                raise SystemExit(f"{out} is there already: this restoration finished (remove {folder} to rerun)")
            attempt = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "commit": row["commit"],
                       "finished_tiles_before": len(list(tiles.glob("tile_*.json"))),
                       "workers": args.workers, "threads": args.threads}
            append_row(folder / "attempts.jsonl", attempt)
        cmd = [str(HERE.parent / ".venv" / "bin" / "linr"), "restore", "--noisy", str(src), "-o", str(out),
               "--quiet", "--device", "cpu", "--report", str(report)]
        workers = args.workers or (1 if args.steps else None)  # the default's workers for a whole restoration
        cmd += ["--workers", str(workers)] if workers else []
        env = dict(os.environ, **({"OMP_NUM_THREADS": str(args.threads)} if args.threads else {}))
        row.update(workers=workers or "default", threads=args.threads or "default")
        cmd += [] if args.folder else ["--force"]  # a kept folder's tiles are resumed, never discarded
        cmd += ["--steps", str(args.steps)] if args.steps else []
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env=env)
        row["wall_s"] = round(time.perf_counter() - t, 1)
        done = json.loads(report.read_text())
        row["fit_s"] = round(done["timings"]["fit_s"], 1)
        row["refine_s"] = round(done["timings"].get("refine_s", 0.0), 1)
        if args.folder:
            from linr.images import read_image
            from linr.metrics import evaluate

            made = done["settings"].get("tiles", [])
            row["attempts"] = [json.loads(line) for line in (folder / "attempts.jsonl").read_text().splitlines()]
            row["tiles"], row["tiles_resumed"] = len(made), sum(bool(t.get("resumed")) for t in made)
            row["tile_fit_s"] = round(sum(t["fit_s"] for t in made), 1)
            clean = noisy_mirrored_photo(data, args.size)[0]
            row["psnr_standard"] = round(evaluate(clean, read_image(out)[0][..., :3], convention="standard")["psnr"], 4)
    row["peak_rss_gib"] = round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20, 3)
    row["load_after"] = os.getloadavg()[0]
    print(json.dumps(row))
    if args.rows:
        append_row(args.rows, row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
