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


def test_the_sr_probe_keeps_a_fit_alone_named_by_its_factor(tmp_path, data_env, monkeypatch):
    """``benchmarks/sr_examples.py --fit-only --factor F --device D``, what benchmarks/gpu_sr_fits.sh
    runs on a lent GPU: the view at that factor fitted on that device, kept under a name with the
    factor, where it was made recorded, nothing refined (the fit itself stubbed: seconds, not minutes)."""
    from types import SimpleNamespace

    import linr.tasks

    from .conftest import ROOT
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    import sr_examples

    seen = []

    def fit(obs, **kw):
        seen.append((obs[0].operator.factor, kw["device"], kw["refine"], obs[0].image.shape))
        h, w, c = obs[0].image.shape
        return SimpleNamespace(image=np.zeros((h * 8, w * 8, c), np.float32))
    monkeypatch.setattr(linr.tasks, "restore", fit)
    assert sr_examples.run("set5/bird", 40, DATA, tmp_path, factor=8, device="cpu", fit_only=True) is None
    assert seen == [(8, "cpu", "none", (5, 5, 3))]  # a 40-px crop's view at x8, the fit unrefined
    kept = tmp_path / "set5_bird_40_x8.npz"
    assert kept.exists() and fit_made_on(kept) == processor_of("cpu")
    assert sr_examples.run("set5/bird", 40, DATA, tmp_path, factor=8, fit_only=True) is None and len(seen) == 1  # kept
