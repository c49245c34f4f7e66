"""`linr bench speed`, cost estimates and the large-image plan (tiny sizes; the real numbers are
in BENCHMARKS.md)."""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
import pytest

import linr
from linr.bench.speed import PeakRSS, make_case, reference_fit
from linr.cli import _cost_line, main
from linr.cost import plan
from linr.fit import FitConfig, fit
from linr.simulate import bernoulli_mask

from .conftest import crop, load


def _announce_cost(*args, **kwargs) -> None:
    """What ``linr restore`` says on stderr before it starts (:func:`linr.cli._cost_line`)."""
    line = _cost_line(*args, **kwargs)
    if line is not None:
        print(line, file=sys.stderr)


def test_bench_speed_runs_and_engine_reproduces_the_reference(tmp_path, capsys):
    out = tmp_path / "speed.json"
    rc = main(["bench", "speed", "--size", "16", "--steps", "4", "--repeats", "1",
               "--tasks", "inpaint", "--presets", "paper", "--preset-steps", "4",
               "--stack", "2", "--json", str(out)])
    assert rc == 0
    data = json.loads(out.read_text())
    assert [r["task"] for r in data["results"]] == ["inpaint"]  # the sparse-rendering path
    for res in data["results"]:
        rows = {r["method"]: r for r in res["rows"]}
        ref, eng = rows["reference loop"], rows["engine (paper preset)"]
        # Same mathematics: the engine's result has the reference's PSNR.
        assert abs(eng["final_psnr"] - ref["final_psnr"]) < 0.01
        assert eng["reaches_target"]
        # the ratios are those of the interleaved timings (one repeat each)
        timing = res["interleaved"]
        assert len(timing["reference"]) == len(timing["engine"]) == 1
        assert res["per_step_ratio"] == pytest.approx(timing["reference"][0] / timing["engine"][0])
        stack = res["stack"]
        assert stack["k"] == 2 and len(stack["one_by_one_s"]) == len(stack["stacked_s"]) == 1
        assert stack["ratio"] == pytest.approx(stack["one_by_one_s"][0] / stack["stacked_s"][0])
    printed = capsys.readouterr().out
    assert "| reference loop |" in printed and "2 images stacked" in printed


def test_reference_loop_is_the_plain_fit():
    clean = crop(load("set5/butterfly.png"), 16)
    obs = make_case("sr", clean)
    ref = reference_fit(obs, clean, steps=3)
    plain = fit(obs, FitConfig(steps=3, device="cpu", engine="plain", progress=False), reference=clean)
    assert np.allclose(ref["psnr"], plain.history["psnr"], atol=1e-4)


def test_peak_rss_sees_an_allocation():
    import time

    with PeakRSS() as mem:
        block = np.ones(50 * 2**20 // 8)  # 50 MiB, touched
        time.sleep(0.1)  # long enough for the 10 ms sampler
        del block
    assert mem.peak > 40 * 2**20


def test_plan_counts_trained_pixels_and_two_passes():
    mask = bernoulli_mask((64, 64), 0.1, seed=0)
    masked = [linr.masked(np.zeros((64, 64, 3)), mask)]
    cfg = FitConfig(steps=10, chunk_pixels=1000)
    est = plan(masked, cfg)
    full = plan([linr.noisy(np.zeros((64, 64, 3)))], cfg)
    assert est.flops_per_step == pytest.approx(full.flops_per_step * mask.sum() / 4096)
    sr = plan([linr.lowres(np.zeros((16, 16, 3)), 4)], cfg)  # 4096 px > chunk: two passes
    assert sr.flops_per_step == pytest.approx(full.flops_per_step * 4 / 3)
    batch = plan([linr.noisy(np.zeros((64, 64, 3)))], FitConfig(steps=10, batch_pixels=512))
    assert batch.flops_per_step == pytest.approx(full.flops_per_step / 8)


@pytest.fixture
def one_thread():
    """torch on one thread (the estimates' thread counts and memory depend on it), restored after."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_cli_announces_long_fits(capsys, one_thread):
    from linr.tasks import DEFAULT_DENOISE_REFINE

    obs = [linr.noisy(np.zeros((1024, 1024, 3), dtype=np.float32))]
    unasked = dict(refine=None, save_model=None, render_scale=None, render_size=None)  # linr restore's defaults
    args = argparse.Namespace(preset="paper", steps=None, lr=None, seed=0, device="cpu", precision=None, prior=None,
                              stop=None, **unasked)
    _announce_cost(obs, args, None)
    err = capsys.readouterr().err
    assert "500 steps restoring 1024x1024" in err and "GiB" in err
    _announce_cost([linr.noisy(np.zeros((8, 8, 3)))], args, None)
    assert capsys.readouterr().err == ""
    auto = argparse.Namespace(preset=None, steps=None, lr=None, seed=0, device="cpu", precision=None, prior=None,
                              stop=None, **unasked)  # the default: noisy inputs stop automatically
    _announce_cost(obs, argparse.Namespace(**{**vars(auto), "tile": "off"}), None)
    err = capsys.readouterr().err
    assert "up to 2000 steps (automatic stop) restoring 1024x1024:" in err  # the pilot's budget
    assert f"to refine the fit's image ({DEFAULT_DENOISE_REFINE} on one CPU thread" in err  # and the refinement after it
    assert "usually stops far sooner" in err  # the pilot's budget is an upper bound far from its stop
    assert "fitted once more at the paper's learning rate" in err  # a failed pilot's retry (FitConfig.retry_lr)
    _announce_cost(obs, argparse.Namespace(**{**vars(auto), "lr": 1e-3}), None)
    assert "fitted once more" not in capsys.readouterr().err  # a rate named: no retry
    _announce_cost(obs, argparse.Namespace(**{**vars(auto), "tile": "256"}), None)
    err = capsys.readouterr().err  # the estimate covers tiles
    assert "up to 2000 steps (automatic stop) restoring 1024x1024 in 16 tiles of 280x280" in err
    unrefined = argparse.Namespace(**{**vars(auto), "refine": "none"})  # the paper's network
    _announce_cost(obs, unrefined, None)
    err = capsys.readouterr().err
    assert "up to 500 steps (automatic stop) restoring 1024x1024:" in err and "to refine" not in err
    assert "usually stops" not in err
    _announce_cost(obs, args, None, members=2)  # an ensemble's networks are members, not frames
    err = capsys.readouterr().err
    assert "(each of 2 ensemble members)" in err and "frames" not in err
    _announce_cost(obs, args, None, frames=3, members=2)
    assert "(each of 3 frames x 2 ensemble members)" in capsys.readouterr().err
    # on another device the fit's time is not estimated, and the refinement (on the CPU) still is
    import torch

    from linr import problem

    real = problem.resolve_device
    try:
        problem.resolve_device = lambda name: torch.device("meta")
        big = [linr.noisy(np.zeros((2048, 2048, 3), dtype=np.float32))]  # minutes of refinement on any core
        _announce_cost(big, auto, None)
        err = capsys.readouterr().err
        assert err.startswith("after the fit: about ") and f"to refine the fit's image ({DEFAULT_DENOISE_REFINE} on " \
            "one CPU thread" in err and "the fit's own time is not estimated on this device" in err and "steps" not in err
        _announce_cost(big, unrefined, None)
        assert capsys.readouterr().err == ""
    finally:
        problem.resolve_device = real



def test_the_forecast_names_the_refinements_memory_and_warns_when_it_will_not_fit(monkeypatch, capsys, one_thread):
    from linr import forecast
    from linr.operators import Blur, gaussian_kernel

    cost = forecast.refine_cost("grouped", 1024, 1024, 3)
    assert cost.memory_bytes == forecast.REFINE_BLOCK_BYTES + 12 * 1024 * 1024 * 3  # one thread's block
    assert cost.memory_bytes == forecast.refine_memory("grouped", 1024, 1024, 3)  # the same, without timing
    assert forecast.refine_memory("wiener", 1024, 1024, 3) is None  # no grouped filter: not estimated
    assert " GiB to refine the fit's image (grouped on one CPU thread" in cost.describe("grouped")
    circular, reflecting = (Blur(gaussian_kernel(5, 1.0), boundary=b) for b in ("circular", "reflect"))
    per = {b: forecast.refine_cost("grouped-deblur", 256, 256, 1, operator=op).memory_bytes
           for b, op in (("circular", circular), ("reflect", reflecting))}
    assert per["reflect"] > per["circular"]  # free edges solve for the extended image
    assert forecast.refine_cost("grouped-fill", 64, 64, 3).memory_bytes is None  # its biharmonic solves: not estimated
    obs = [linr.noisy(np.zeros((1024, 1024, 3), dtype=np.float32))]
    unasked = dict(refine=None, save_model=None, render_scale=None, render_size=None)
    auto = argparse.Namespace(preset=None, steps=None, lr=None, seed=0, device="cpu", precision=None, prior=None,
                              stop=None, **unasked)
    monkeypatch.setattr(forecast, "available_memory", lambda: 2**20)  # a machine with 1 MiB free
    _announce_cost(obs, auto, None)
    err = capsys.readouterr().err
    assert "warning: the refinement after the fit needs about 0." in err and "--refine none" in err
    _announce_cost(obs, argparse.Namespace(**{**vars(auto), "refine": "none"}), None)
    assert "warning" not in capsys.readouterr().err  # no refinement: nothing to warn of
    monkeypatch.setattr(forecast, "available_memory", lambda: 2**40)
    _announce_cost(obs, auto, None)
    assert "warning" not in capsys.readouterr().err
    # a short restore times nothing (the fit is not announced), even a blurred one (its data
    # step's sample solve took seconds); a refinement too large for the memory is still warned of
    monkeypatch.setattr(forecast, "refine_cost", lambda *a, **k: pytest.fail("timed a short restore's refinement"))
    small = [linr.blurred(np.zeros((16, 16, 3), np.float32), gaussian_kernel(9, 1.6))]
    assert linr.restore_cost(small, device="cpu", steps=10) is None
    monkeypatch.setattr(forecast, "available_memory", lambda: 2**20)
    assert linr.restore_cost(small, device="cpu", steps=10).startswith("warning: the refinement after the fit needs")
    # a short fit before a long refinement (SR x3 of a 100-px photo: seconds of fit, a minute of
    # refinement) is announced, the refinement's time in the line
    monkeypatch.setattr(forecast, "available_memory", lambda: 2**40)
    monkeypatch.setattr(forecast, "refine_cost", lambda *a, **k: forecast.RefineCost(75.0, 1, None))
    line = linr.restore_cost([linr.lowres(np.zeros((100, 100, 3), np.float32), 3)], device="cpu", steps=5,
                             model=linr.ModelConfig(width=32, depth=2))
    assert line is not None and "5 steps restoring 300x300" in line and "then about 75 s to refine" in line
    # below REFINE_TIMED_FROM_PIXELS a short fit's refinement is not timed (a sample deblurring
    # solve took longer than the restore itself)
    monkeypatch.setattr(forecast, "refine_cost", lambda *a, **k: pytest.fail("timed a small image's refinement"))
    for small in (linr.lowres(np.zeros((16, 16, 3), np.float32), 8),  # x8: grouped-views
                  linr.blurred(np.zeros((128, 128, 3), np.float32), gaussian_kernel(9, 1.6))):
        assert linr.restore_cost([small], device="cpu", steps=2, model=linr.ModelConfig(width=8, depth=1)) is None
    # ... except one that learns networks (x3: grouped-views-examples), minutes at any size: a new
    # user's 64-px x4 restore refined for 205 s unannounced
    monkeypatch.setattr(forecast, "refine_cost", lambda *a, **k: forecast.RefineCost(150.0, 1, None))
    for factor in (3, 4):
        line = linr.restore_cost([linr.lowres(np.zeros((16, 16, 3), np.float32), factor)], device="cpu", steps=2,
                                 model=linr.ModelConfig(width=8, depth=1))
        assert line is not None and "then about 2 min to refine the fit's image (grouped-views-examples" in line, line
    # a new user's x3 restore of a 32-px photo with --steps 20 refined for minutes unannounced: the
    # learning's 28 s (timed on torch's threads) were divided by the filter's two threads again
    monkeypatch.setattr(forecast, "refine_cost", lambda *a, **k: forecast.RefineCost(6.0, 2, None, 28.0))
    line = linr.restore_cost([linr.lowres(np.zeros((32, 32, 3), np.float32), 3)], device="cpu", steps=2,
                             model=linr.ModelConfig(width=8, depth=1))
    assert line is not None and "then about 34 s to refine the fit's image (grouped-views-examples: about 6 s of " \
        "filtering on one CPU thread; up to 2x less on the 2 cores it uses, and about 28 s of learning" in line, line


def test_the_forecast_says_where_the_pilot_usually_stops_only_where_measured(one_thread):
    from linr.errors import InputError

    obs = [linr.noisy(np.zeros((1024, 1024, 3), dtype=np.float32))]
    default = linr.restore_cost(obs, device="cpu")  # the pilot's own tiles of 128 px
    assert "usually stops far sooner (after 70-130 steps per tile on the benchmark photos: about " in default
    assert "fitted once more at the paper's learning rate" in default
    other_tiles = linr.restore_cost(obs, device="cpu", tile="256")  # tiles of 256: the range of images and such tiles
    assert "usually stops far sooner (after 105-415 steps per image or tile on the benchmark photos: about " in other_tiles
    other_rate = linr.restore_cost(obs, device="cpu", lr=1e-4)  # the stops were measured at the pilot's rate
    assert "; the fit usually stops far sooner (throughput" in other_rate and "70-130" not in other_rate
    members = linr.restore_cost(obs, device="cpu", ensemble=2, tile="off")  # an ensemble of pilots
    assert "(each of 2 ensemble members)" in members and "105-415 steps" in members
    with pytest.raises(InputError, match="ensemble"):  # restore's own checks, before anything is measured
        linr.restore_cost(obs, device="cpu", ensemble=2, tile="256")


def test_the_python_api_says_what_a_long_restore_will_cost_before_it_starts(capsys):
    from linr.errors import LinrError

    obs = [linr.noisy(np.zeros((1024, 1024, 3), dtype=np.float32))]

    def halt(*_):
        raise LinrError("halted at the first step")

    cases = ((True, False, True), (False, False, False), (None, False, False), (None, True, True))
    for announce, progress, said in cases:  # (announce, progress, said): None follows progress
        with pytest.raises(LinrError, match="halted"):
            linr.restore(obs, device="cpu", progress=progress, announce=announce, on_step=halt)
        err = capsys.readouterr().err
        assert ("up to 2000 steps (automatic stop) restoring 1024x1024 in 81 tiles of 143x143" in err) is said
        assert ("to refine the fit's image (grouped on one CPU thread" in err) is said
    line = linr.restore_cost(obs, device="cpu")  # the same line, without restoring
    assert line.startswith("up to 2000 steps (automatic stop) restoring 1024x1024 in 81 tiles")
    assert linr.restore_cost([linr.noisy(np.zeros((16, 16, 3)))], device="cpu") is None  # seconds: nothing said

def test_fast_preset_picks_the_model_by_kind():
    from linr.stopping import StopRule
    from linr.tasks import resolve, resolve_stop

    z = np.zeros((8, 8, 3))
    obs, cfg = resolve([linr.noisy(z)], preset="fast")
    assert (cfg.steps, cfg.lr, cfg.model.width) == (500, 1e-4, 128)  # a budget: it stops itself
    assert isinstance(resolve_stop(obs, preset="fast"), StopRule)
    _, cfg = resolve([linr.masked(z, np.ones((8, 8)))], preset="fast")
    assert (cfg.steps, cfg.model.width) == (500, 256)
    _, cfg = resolve([linr.lowres(z, 4)], preset="fast")
    assert (cfg.steps, cfg.model.width) == (300, 256)
    _, cfg = resolve([linr.masked(z, np.ones((8, 8))), linr.noisy(z)], preset="fast")
    assert cfg.model.width == 128  # joint: the preset's default model
    _, cfg = resolve([linr.masked(z, np.ones((8, 8)))], preset="paper")
    assert cfg.model.width == 256 and cfg.steps == 500


def test_bench_runs_presets_with_their_stop_rule():
    from linr.bench.speed import _engine_run

    clean = crop(load("set9/house.png"), 16)
    obs = make_case("denoise", clean)
    run = _engine_run(obs, clean, preset="fast", steps=None, eval_every=1)
    assert run["stop"]["name"] == "holdout"  # the preset's automatic stop, as `linr restore` runs it
    assert run["returned_step"] <= run["steps"] <= 500
    assert run["per_step_s"] * run["steps"] == pytest.approx(run["train_s"])
    # the hold-out rule needs the whole output every step: on the pixel path the step renders
    # it anyway, so the rule costs no extra render (it did before operators said pixel_weights)
    assert run["settings"]["engine_used"]["rendered_pixels"] == 16 * 16 and run["eval_s"] == 0
    fixed = _engine_run(obs, clean, preset="paper", steps=3, eval_every=1)
    assert fixed["stop"]["name"] == "fixed" and fixed["steps"] == 3


def test_bench_presets_judges_each_image(tmp_path, capsys):
    out = tmp_path / "presets.json"
    assert main(["bench", "presets", "--size", "16", "--images", "2", "--tasks", "inpaint",
                 "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    task = data["tasks"]["inpaint"]
    assert [r["image"] for r in task["rows"]] == ["set9/baboon.png", "set9/f16.png"]
    for row in task["rows"]:
        paper, fast = row["runs"]["paper"], row["runs"]["fast"]
        assert paper["steps"] == 500 and paper["train_s"] > 0
        # inpainting under `fast` is the paper's settings on the engine: the same result
        assert fast["final_psnr"] == pytest.approx(paper["final_psnr"], abs=1e-6)
    assert task["summary"]["fast"]["reached"] == 2
    assert "reaches the paper preset's PSNR on 2/2 images" in capsys.readouterr().out
    assert main(["bench", "presets", "--presets", "paper", "--size", "16"]) == 2


def test_bench_speed_stop_cost_times_both_stops(tmp_path, capsys):
    out = tmp_path / "stop.json"
    assert main(["bench", "speed", "--stop-cost", "24", "--steps", "2", "--repeats", "1",
                 "--json", str(out)]) == 0
    (res,) = json.loads(out.read_text())["results"]
    assert res["size"] == [24, 24] and len(res["per_step_s"]["automatic"]) == 1
    auto, fixed = res["engine_used"]["automatic"], res["engine_used"]["fixed"]
    assert auto["stop"] == "holdout" and fixed["stop"] == "fixed"
    assert (auto["width"], auto["lr"]) == (fixed["width"], fixed["lr"]) == (256, 1e-4)  # the same fit, not the pilot
    assert auto["pixel_wise"] and auto["rendered_pixels"] == 24 * 24 > auto["trained_pixels"]
    assert "| 24x24 |" in capsys.readouterr().out


def test_the_refinement_estimate_is_timed_on_one_thread_and_names_the_cores_it_uses():
    import torch

    from linr.forecast import refine_cost
    from linr.refine import GroupedWiener

    assert GroupedWiener().blocks(7, 100) == 0 and GroupedWiener().blocks(64, 64) == 3  # 21 rows of references
    assert GroupedWiener(step=4).blocks(768, 512) == 24 * 1
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        cost = refine_cost("grouped", 768, 512, 3)
        assert cost.seconds > 0 and cost.workers == 2
        assert refine_cost("grouped", 8, 8, 3).workers == 1  # one block: one worker
        assert "(grouped on one CPU thread; up to 2x less on the 2 cores it uses)" in cost.describe("grouped")
        torch.set_num_threads(1)
        assert refine_cost("grouped", 768, 512, 3).describe("grouped").endswith("(grouped on one CPU thread)")
        assert refine_cost("biharmonic", 64, 64, 3) is None
    finally:
        torch.set_num_threads(previous)


def test_a_tiled_plan_counts_the_whole_images_arrays():
    from linr.tasks import resolve, tile_grid
    from linr.tiling import plan_tiles, tile_observations

    obs = [linr.noisy(np.zeros((600, 600, 3), np.float32))]
    grid = tile_grid(resolve(obs)[0], tile="256")
    cfg = FitConfig(steps=10)
    one = plan(tile_observations(obs, grid.windows[0], grid.shape), cfg)
    whole = 600 * 600 * 3 * 4 + 600 * 600 * (3 * 4 + 4)  # the photo; the blend (divided in place) and its weights
    assert plan_tiles(obs, cfg, grid).memory_bytes == one.memory_bytes + whole
    assert plan_tiles(obs, cfg, grid, stack=3).memory_bytes == 3 * one.memory_bytes + whole
