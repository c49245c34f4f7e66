"""The finished full-size fits of benchmarks/paper_tables_full.jsonl as a Markdown table, each
beside the paper's number for the same image (paper convention: RGB, unclipped; Y for Table 4).

    .venv/bin/python benchmarks/full_progress.py [JOBS.jsonl]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from linr.bench import data_dir
from linr.bench.spec import TABLES

jobs_path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("paper_tables_full.jsonl")
jobs = [json.loads(line) for line in jobs_path.read_text().splitlines() if line.strip()]
paper = json.loads((data_dir() / "paper_results.json").read_text())["tables"]
by_number = {t.number: t for t in TABLES}
print("| table | image | method | PSNR ours | paper | diff | oracle peak (step) | fit s | commit |")
print("|---:|---|---|---:|---:|---:|---:|---:|---|")
for job in sorted(jobs, key=lambda j: (j["first_table"], j["started"])):
    table = by_number[job["first_table"]]
    image = Path(job["spec"]["source"]).stem
    kind = job["spec"]["kind"]
    # LINR jobs are keyed on their resolved settings: a `fast` column that resolves to the paper's
    # network with fewer steps is a "linr" job of that step count
    label = {"linr": f"LINR ({job['spec'].get('steps')} steps)", "linr_fast": "LINR (fast)",
             "linr_default": "LINR (default)"}.get(kind, kind)
    printed = paper.get(table.key, {}).get("images", {}).get(image, {})
    column = {"linr": "LINR", "bicubic": "Bicubic", "nearest": "Nearest"}.get(kind, "")
    ref = printed.get(column, {}).get("psnr")
    ours = job.get("psnr_paper")
    curve, steps = job.get("curve") or [], job.get("curve_steps") or []
    peak = ""
    if curve:
        i = max(range(len(curve)), key=curve.__getitem__)
        peak = f"{curve[i]:.2f} ({(steps[i] if steps else i) + 1})"
    diff = f"{ours - ref:+.2f}" if ours is not None and ref is not None else "-"
    print(f"| {table.number} | {image} | {label} | {ours:.2f} | {ref if ref is not None else '-'} | {diff} | "
          f"{peak or '-'} | {job.get('fit_s', 0):.0f} | {job.get('commit')} |")
