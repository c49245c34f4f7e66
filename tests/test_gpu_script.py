"""The prepared GPU run (benchmarks/gpu_run.sh) in its CPU dry run, so that it cannot rot
between the sessions that are lent a GPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from .conftest import DATA, ROOT


def test_gpu_script_dry_run_runs_every_part(tmp_path):
    if not (DATA / "paper_results.json").exists():
        pytest.skip(f"test data {DATA} not found")
    env = {**os.environ, "OUT": str(tmp_path / "out"), "DATA": str(DATA), "BUDGET": "400",
           "PY": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_run.sh"), "--dry-run"], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    log = (out / "log.txt").read_text()
    for part in ("tiles", "tests", "table 1 linr (a)", "table 4 linr (b)", "table 1 dip_recipe kodim03 (a)",
                 "table 2 linr_default bird (c)", "report"):
        assert f"{part}: exit 0" in log, log
    assert "finished" in log
    files = sorted(p.name for p in out.iterdir())
    assert len(files) <= 8 and all(p.is_file() for p in out.iterdir())  # what a lent machine returns
    rows = [json.loads(line) for line in (out / "speed.log").read_text().splitlines() if line.startswith("{")]
    scale = rows[-1]  # tiles_scale's row
    assert scale["device"] == "cpu" and scale["fit_s"] > 0 and scale["refine"] == "grouped"
    jobs = [json.loads(line) for line in (out / "jobs.jsonl").read_text().splitlines()]
    assert {j["first_table"] for j in jobs} == {1, 2, 4} and all(j["status"] == "ok" for j in jobs)
    assert {j["spec"]["kind"] for j in jobs} == {"linr", "dip_recipe", "linr_default"}
    sr = next(j for j in jobs if j["spec"]["kind"] == "linr_default")  # x4: the examples refiner (its learning skipped at 7 px)
    assert sr["spec"]["refine"] == "grouped-views-examples"
    report = (out / "report.md").read_text()
    assert "## Table 1:" in report and "## Table 4:" in report
