"""The refinement probes' shared command line (linr.bench.common.refine_probe_main) and their kept
fits: resumed rows by image, crop and factor; fits alone write no row; where a fit was made."""

from __future__ import annotations

import json

import numpy as np
import pytest

from linr.bench.common import cached_fit, fit_made_on, processor_of, refine_probe_main

from .conftest import DATA


def _probe(calls):
    def run(spec, crop, data, cache, factor=4, device="cpu", fit_only=False):
        calls.append((spec, crop, factor, device, fit_only))
        return None if fit_only else {"image": spec, "crop": crop, "factor": factor}
    return run


@pytest.fixture
def data_env(monkeypatch):
    if not DATA.is_dir():
        pytest.skip(f"test data {DATA} not found")
    monkeypatch.setenv("LINR_DATA", str(DATA))


def test_sr_probe_resumes_by_factor_and_writes_no_row_for_a_fit_alone(tmp_path, data_env):
    rows, calls = tmp_path / "rows.jsonl", []
    run = _probe(calls)
    refine_probe_main(["set5/bird", "--factor", "2", "--rows", str(rows)], "doc", "images", run, str, sr=True)
    refine_probe_main(["set5/bird", "--factor", "2", "--rows", str(rows)], "doc", "images", run, str, sr=True)
    refine_probe_main(["set5/bird", "--factor", "8", "--rows", str(rows)], "doc", "images", run, str, sr=True)
    assert [c[2] for c in calls] == [2, 8]  # the second x2 run found its row
    assert [json.loads(line)["factor"] for line in rows.read_text().splitlines()] == [2, 8]
    refine_probe_main(["set5/head", "--fit-only", "--cache", str(tmp_path), "--device", "cuda", "--rows", str(rows)],
                      "doc", "images", run, str, sr=True)
    assert calls[-1] == ("set5/head", None, 4, "cuda", True) and len(rows.read_text().splitlines()) == 2
    with pytest.raises(SystemExit):  # a fit alone needs a folder to be kept in
        refine_probe_main(["set5/head", "--fit-only"], "doc", "images", run, str, sr=True)


def test_probes_without_factors_keep_their_command_line(tmp_path, data_env):
    calls = []

    def run(spec, crop, data, cache):
        calls.append(spec)
        return {"image": spec, "crop": crop}
    refine_probe_main(["set5/bird", "--rows", str(tmp_path / "r.jsonl")], "doc", "images", run, str)
    refine_probe_main(["set5/bird", "--rows", str(tmp_path / "r.jsonl")], "doc", "images", run, str)
    assert calls == ["set5/bird"]
    with pytest.raises(SystemExit):
        refine_probe_main(["set5/bird", "--factor", "2"], "doc", "images", run, str)


def test_a_kept_fit_says_where_it_was_made(tmp_path):
    saved = tmp_path / "fit.npz"
    made = []
    image, _ = cached_fit(saved, lambda: made.append(1) or np.ones((4, 4, 3), np.float32), made_on=processor_of("cpu"))
    again, _ = cached_fit(saved, lambda: made.append(1) or np.zeros((4, 4, 3), np.float32))
    assert made == [1] and np.array_equal(image, again)  # read back, not refitted
    assert fit_made_on(saved) == processor_of("cpu") and "torch" in fit_made_on(saved)
    cached_fit(tmp_path / "old.npz", lambda: np.ones((2, 2, 3), np.float32))  # as the earlier sessions kept them
    assert fit_made_on(tmp_path / "old.npz") is None and fit_made_on(tmp_path / "missing.npz") is None
