"""Stop rules in real (short) fits: the benchmark's offline replay equals the online rule, the
automatic rule lands near the oracle, and the CLI reports which rule fired."""

from __future__ import annotations

import json

import numpy as np
import pytest

import linr
from linr.bench.stopping import evaluate, oracle, record
from linr.cli import main
from linr.fit import FitConfig, fit
from linr.images import write_image
from linr.simulate import add_gaussian_noise
from linr.stopping import AUTO_NOISY, parse_stop

from .conftest import crop, load

S, STEPS, SIGMA = 24, 80, 50.0


@pytest.fixture(scope="module")
def clean():
    return crop(load("set9/house.png"), S, top=60, left=110)


@pytest.fixture(scope="module")
def runs(clean):
    fixed = record(clean, sigma=SIGMA, steps=STEPS, holdout=None)
    ho = record(clean, sigma=SIGMA, steps=STEPS, holdout=0.1)
    fixed.update(kept=1.0, ho={0.1: {**ho, "kept": _kept(ho)}})
    return fixed


def _kept(run):
    from linr.bench.stopping import _kept_fraction

    return _kept_fraction(run["size"], run["holdout"], run["seed"])


def _psnr(clean, image):
    return float(-10 * np.log10(np.mean((np.clip(image, 0, 1) - clean) ** 2)))


@pytest.mark.parametrize("spec", ["variance:5:10", "discrepancy:1.2", "holdout:0.1:10",
                                  "variance:5:1000,discrepancy:1.5", "fixed:30"])
def test_offline_replay_matches_online_rule(clean, runs, spec):
    y = add_gaussian_noise(clean, SIGMA, seed=0)
    rule = parse_stop(spec)
    r = fit([linr.noisy(y)], FitConfig(steps=STEPS, device="cpu", progress=False), stop=rule)
    offline = evaluate(spec, runs)
    assert offline["fire_step"] is not None, "pick settings that fire within the test's steps"
    assert r.steps_run == offline["fire_step"] and r.stop_step == offline["step"]
    assert _psnr(clean, r.image) == pytest.approx(offline["psnr"], abs=1e-4)


def test_oracle_and_full_budget(clean, runs):
    peak, step = oracle(runs)
    assert peak == pytest.approx(max(max(runs["psnr"]), runs["final_psnr"])) and 1 <= step <= STEPS
    full = evaluate(f"variance:5:{10 * STEPS}", runs)  # never fires: returns its minimum so far
    assert full["fire_step"] is None and full["psnr"] == runs["psnr"][full["step"] - 1]


def test_automatic_rule_near_the_oracle(clean):
    y = add_gaussian_noise(clean, SIGMA, seed=0)
    r = linr.restore([linr.noisy(y)], stop="auto", steps=200, device="cpu", reference=clean,
                     progress=False, refine="none")  # the paper's network, not the refinement's pilot
    assert r.steps_run < 200 and r.stop_reason.split(":")[0] in AUTO_NOISY
    peak = max(r.history["psnr"])  # unclipped PSNR of every step seen, clean image known
    assert _psnr(clean, r.image) > peak - 1.5
    assert _psnr(clean, r.image) > _psnr(clean, y) + 3


def test_cli_reports_the_rule(tmp_path, capsys, clean):
    write_image(tmp_path / "noisy.png", add_gaussian_noise(clean, SIGMA, seed=0))
    out, rep = tmp_path / "o.png", tmp_path / "r.json"
    assert main(["restore", "--noisy", str(tmp_path / "noisy.png"), "-o", str(out), "--device", "cpu",
                 "--quiet", "--stop", "variance:5:10", "--steps", "200", "--report", str(rep)]) == 0
    text = capsys.readouterr().out
    assert "stopped at step" in text and "variance: no new minimum" in text
    report = json.loads(rep.read_text())  # the rule ended it (at step 80 on an AMX Xeon: a budget of 80 was too tight)
    assert report["settings"]["stop"]["name"] == "variance" and report["steps_run"] < 200
    assert main(["restore", "--noisy", str(tmp_path / "noisy.png"), "-o", str(out), "--force",
                 "--stop", "sometimes"]) == 2
    assert "unknown stop rule" in capsys.readouterr().err


def test_cli_says_whether_it_returned_an_iterate_or_an_average(tmp_path, capsys, clean):
    from types import SimpleNamespace

    from linr.cli import _returned

    write_image(tmp_path / "noisy.png", add_gaussian_noise(clean, SIGMA, seed=0))
    out, rep = tmp_path / "o.png", tmp_path / "r.json"
    assert main(["restore", "--noisy", str(tmp_path / "noisy.png"), "-o", str(out), "--device", "cpu",
                 "--quiet", "--steps", "80", "--report", str(rep)]) == 0  # the default stop: hold-out + average
    text = capsys.readouterr().out
    stop = json.loads(rep.read_text())["settings"]["stop"]
    line = next(t for t in text.splitlines() if t.startswith("stopped at step"))
    if stop["returned"] == "average":
        assert f"returned the mean of up to {stop['average'][6:]} iterates ending at step" in line
    else:
        assert "returned the iterate of step" in line
    from linr.fit import FitResult

    def made(**fields):  # FitResult.returned reads these (linr restore's line and the web app's alike)
        return SimpleNamespace(**fields, returned=lambda: FitResult.returned(result))

    result = made(stop_step=77, settings={"stop": {"average": "window40", "returned": "average"}})
    assert _returned(result) == "; returned the mean of up to 40 iterates ending at step 77"
    result.settings["stop"] = {"average": "ema0.9", "returned": "average"}
    assert _returned(result) == "; returned an exponential average (decay 0.9) of the iterates up to step 77"
    result.settings["stop"] = {"average": "window40", "returned": "raw"}
    assert _returned(result) == "; returned the iterate of step 77"
    result.settings = {"stop": {"name": "fixed"}, "ensemble": {"members": 2}}
    assert _returned(result) == ""
    # a fixed budget returns the iterate after its last update: the stop rules' "step k" is the iterate step k
    # started from, so "the iterate of step 30" of a 30-step fit was one update short of what it named
    result = made(stop_step=30, steps_run=30, settings={"stop": {"name": "fixed", "steps": 30}})
    assert _returned(result) == "; returned the last iterate, after all 30 updates"


def test_holdout_with_an_average_online_matches_the_averaging_bench_replay():
    """``holdout:F:P:window10`` in a real fit stops where the averaging bench's replay of its
    recorded series says, and returns the same image: the window average at its held-out minimum."""
    from linr.bench.averaging import observations_for, record, replay_own, replay_raw_timed

    clean = crop(load("set9/house.png"), 32)
    observations = observations_for("denoise", clean, sigma=25.0)
    row = record(clean, observations, steps=40, tail=40, fraction=0.1)
    offline = replay_raw_timed(row, "window10", 10)
    raw = replay_own(row, "raw", 10)
    assert offline["fire"] is not None and offline["psnr"] != raw["psnr"]  # the case under test
    rule = parse_stop("holdout:0.1:10:window10")
    r = fit(observations, FitConfig(steps=40, device="cpu", progress=False), stop=rule)
    assert rule.returned == "average" and r.settings["stop"]["returned"] == "average"
    assert r.steps_run == offline["fire"] == raw["fire"] and r.stop_step == offline["step"]
    # the bench's PSNR convention is scikit-image's on the clipped image, data range 1
    from skimage.metrics import peak_signal_noise_ratio

    got = peak_signal_noise_ratio(clean, np.clip(r.image, 0, 1), data_range=1.0)
    assert got == pytest.approx(offline["psnr"], abs=1e-4)


def test_a_discrepancy_rule_that_could_never_fire_is_refused_before_the_fit(tmp_path, capsys, clean):
    """A new user's --stop discrepancy on a blurred photo (no observation carries noise of its own):
    the rule had no threshold, ran the whole budget and came back 11 dB under the photo."""
    from linr.operators import gaussian_kernel
    from linr.simulate import blur_image

    from .conftest import run_err

    write_image(tmp_path / "b.png", blur_image(clean, gaussian_kernel(5, 1.0), seed=0))
    err = run_err(capsys, ["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:5:1.0",
                           "--stop", "discrepancy", "-o", str(tmp_path / "o.png")])
    assert "the discrepancy rule stops where the fit reaches a noisy photo's noise, and no observation here is one" \
        in err and "--stop holdout" in err
    assert not (tmp_path / "o.png").exists()
