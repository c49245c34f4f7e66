"""Super-resolution learnt from the photo's own smaller copies (linr.internal) and the refiner
that averages it with the fit and grouped-views (linr.refine.GroupedViewsExamples)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import linr
from linr import internal
from linr.operators import Blur, Downsample, gaussian_kernel
from linr.projection import project_onto_views
from linr.refine import REFINERS, refine_image
from linr.simulate import lanczos_downscale

from .conftest import crop, load, lowres_restore_and_batch


@pytest.fixture(scope="module")
def scene():
    clean = crop(load("set5/butterfly.png"), 64, top=96, left=96)
    return clean, lanczos_downscale(clean, 4)


def test_learnt_upscaling_has_the_restored_size_is_repeatable_and_keeps_the_threads(scene):
    clean, low = scene
    threads = torch.get_num_threads()
    a, info = internal.learn_from_own_copies(low, Downsample(4), steps=20, threads=1)
    b, _ = internal.learn_from_own_copies(low, Downsample(4), steps=20, threads=1)
    assert a.shape == clean.shape and a.dtype == np.float32 and np.isfinite(a).all()
    assert np.array_equal(a, b)  # seeded: the same crops, turns and start
    assert info["steps"] == 20 and info["stages"] == [2, 2] and len(info["fathers"]) == 2 and info["loss"] > 0
    assert info["fathers"][1] > info["fathers"][0]  # the second stage learns from the view and the first's image
    assert torch.get_num_threads() == threads
    other, _ = internal.learn_from_own_copies(low, Downsample(4), steps=20, seed=1)
    assert not np.array_equal(a, other)
    grey, _ = internal.learn_from_own_copies(low[..., 0], Downsample(4), steps=2)
    assert grey.shape == clean.shape[:2] + (1,)


def test_learning_learns_the_photos_own_downsampling(scene):
    _, low = scene
    _, short = internal.learn_from_own_copies(low, Downsample(4), steps=60)
    _, longer = internal.learn_from_own_copies(low, Downsample(4), steps=400)
    assert longer["loss"] < 0.8 * short["loss"]  # the L1 of the last 50 training steps falls


def test_a_factor_is_learnt_in_x2_stages_each_but_the_last_made_to_reproduce_the_view(scene, monkeypatch):
    import linr.projection

    assert [internal.stage_factors(f) for f in (2, 3, 4, 6, 8, 12)] == [[2], [3], [2, 2], [2, 3], [2, 2, 2], [2, 2, 3]]
    _, low = scene
    seen, project = [], linr.projection.project_onto_views

    def recording(image, views):
        out, info = project(image, views)
        seen.append((image.shape, views[0].operator.factor, info["residual"]))
        return out, info

    monkeypatch.setattr(linr.projection, "project_onto_views", recording)
    image, info = internal.learn_from_own_copies(low, Downsample(4), steps=3)
    assert image.shape == (64, 64, 3) and info["stages"] == [2, 2]
    assert [(s, f) for s, f, _ in seen] == [((32, 32, 3), 2)] and seen[0][2] < 1e-6  # the x2 image, onto the view
    x3, info = internal.learn_from_own_copies(lanczos_downscale(crop(load("set5/butterfly.png"), 63), 3), Downsample(3),
                                              steps=2)
    assert x3.shape == (63, 63, 3) and info["stages"] == [3] and len(seen) == 1  # one stage: nothing projected


def test_learning_refuses_what_it_cannot_learn_from(scene):
    _, low = scene
    with pytest.raises(ValueError, match="downsampled view"):
        internal.learn_from_own_copies(low, Blur(gaussian_kernel(3, 1.0)))
    with pytest.raises(ValueError, match="too small"):
        internal.learn_from_own_copies(low[:6, :6], Downsample(4))
    with pytest.raises(ValueError, match="nothing to learn"):
        internal.learn_from_own_copies(low, Downsample(1))


def test_the_refiner_is_the_projected_mean_of_fit_grouped_views_and_the_learnt_image(scene, monkeypatch):
    clean, low = scene
    monkeypatch.setattr(internal, "STEPS", 30)
    views = [linr.lowres(low, 4)]
    fit = np.clip(clean + 0.03 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1).astype(np.float32)
    out, done = refine_image("grouped-views-examples", fit, views)
    assert done["name"] == "grouped-views-examples" and done["learnt"]["steps"] == 30
    gv, _ = refine_image("grouped-views", fit, views)
    learnt, _ = internal.learn_from_own_copies(low, Downsample(4))
    expected, _ = project_onto_views((fit + gv + learnt) / 3, views)
    assert np.abs(out - expected).max() < 1e-5
    seen = Downsample(4).forward(torch.from_numpy(out).permute(2, 0, 1)[None].double())[0].permute(1, 2, 0).numpy()
    assert np.abs(seen - low).max() < 1e-4  # it reproduces the view through the fit's operator
    assert "grouped-views-examples" in REFINERS


def test_the_refiner_falls_back_to_grouped_views_without_one_downsampled_view(scene, monkeypatch):
    clean, low = scene
    refiner = REFINERS["grouped-views-examples"]()
    fit = clean.astype(np.float32)
    views = [linr.lowres(low, 4), linr.lowres(lanczos_downscale(clean, 2), 2)]
    out = refiner(fit, views)
    assert refiner.describe()["learnt"] == {"skipped": "needs one low-res view that can be met"}
    assert np.array_equal(out, REFINERS["grouped-views"]()(fit, views))
    tiny = [linr.lowres(low[:6, :6], 4)]  # too small to learn from (a 24-px result): grouped-views' image
    out = refiner(fit[:24, :24], tiny)
    assert refiner.describe()["learnt"] == {"skipped": "a 6x6 photo is too small to learn from its own copies at x4"}
    assert np.array_equal(out, REFINERS["grouped-views"]()(fit[:24, :24], tiny))


def test_the_forecast_counts_the_learning(scene):
    from linr.forecast import refine_cost

    with_learning = refine_cost("grouped-views-examples", 256, 256, 3, operator=Downsample(4))
    without = refine_cost("grouped-views", 256, 256, 3, operator=Downsample(4))
    assert with_learning.learning_seconds > 1.0  # a thousand training steps take more than a second
    assert without.learning_seconds == 0.0
    # timed on the threads it runs on: not divided by the filter's threads again
    assert with_learning.wall_seconds == pytest.approx(with_learning.seconds / with_learning.workers
                                                       + with_learning.learning_seconds)
    assert "of learning from the photo's own copies on" in with_learning.describe("grouped-views-examples")


def test_the_forecast_counts_the_networks_memory_where_it_is_the_larger():
    from linr.forecast import refine_memory

    square = refine_memory("grouped-views-examples", 2048, 2048, 3)
    assert square == refine_memory("grouped-views", 2048, 2048, 3)  # grouped-views' arrays are the larger
    wide = refine_memory("grouped-views-examples", 64, 8192, 3)
    assert wide > refine_memory("grouped-views", 64, 8192, 3)  # one strip of 64 rows of 64 channels, 4 alive
    assert wide >= internal.LIVE_ACTIVATIONS * 64 * 64 * 8192 * 4 + internal.TRAINING_BYTES


def test_the_network_applied_in_strips_is_the_network_applied_whole(monkeypatch):
    net = internal.ExampleNet(3)
    up = torch.rand(1, 3, 70, 41)
    whole = torch.stack([internal._unturn(net(internal._turn(up, k)), k) for k in range(8)]).median(dim=0).values[0]
    monkeypatch.setattr(internal, "STRIP_ROWS", 16)
    with torch.no_grad():
        assert torch.allclose(internal._apply_turned(net, up), whole.detach(), atol=1e-6)


def test_the_command_says_what_the_refiner_did(scene, tmp_path, monkeypatch, capsys):
    from linr.cli import main
    from linr.images import write_image

    _, low = scene
    monkeypatch.setattr(internal, "STEPS", 5)
    write_image(tmp_path / "low.png", low)
    out = tmp_path / "out.png"
    assert main(["restore", "--lowres", str(tmp_path / "low.png"), "--factor", "4", "--steps", "2", "--device", "cpu",
                 "--refine", "grouped-views-examples", "-o", str(out)]) == 0
    said = capsys.readouterr()
    err = said.out + said.err
    assert out.exists() and "refined: grouped-views-examples (the mean of the fit's image" in err
    assert "2 networks in turn (x2, then x2) trained 5 steps each on its own smaller copies" in err and "error" not in err


def test_the_default_for_one_photo_at_x2_to_x4_is_grouped_views_examples_and_grouped_views_elsewhere(
        scene, tmp_path, monkeypatch, capsys):
    from linr.images import write_image
    from linr.tasks import (DEFAULT_SR_EXAMPLES_REFINE, DEFAULT_SR_REFINE, DEFAULT_SR_X4_REFINE, default_refine,
                            sr_refine_for)

    clean, low = scene
    assert DEFAULT_SR_EXAMPLES_REFINE == DEFAULT_SR_X4_REFINE == "grouped-views-examples"
    assert [sr_refine_for(f) for f in (2, 3, 4)] == [DEFAULT_SR_EXAMPLES_REFINE] * 3
    assert [sr_refine_for(f) for f in (5, 8)] == [DEFAULT_SR_REFINE] * 2 == ["grouped-views"] * 2  # x8 level, x5 not measured
    assert default_refine([linr.lowres(low, 4)], preset=None) == DEFAULT_SR_EXAMPLES_REFINE
    assert default_refine([linr.lowres(lanczos_downscale(clean, 2), 2)], preset=None) == DEFAULT_SR_EXAMPLES_REFINE
    assert default_refine([linr.lowres(lanczos_downscale(clean, 8), 8)], preset=None) == DEFAULT_SR_REFINE
    assert default_refine([linr.lowres(low, 4)], preset="paper") is None
    monkeypatch.setattr(internal, "STEPS", 5)
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "low.png", low)
    tiny = ["--steps", "2", "--width", "16", "--depth", "2", "--device", "cpu"]
    out, record = lowres_restore_and_batch(tmp_path, "low.png", ["--factor", "4", *tiny], capsys)
    assert "refined: grouped-views-examples" in out and "the default for one low-res photo at x4, --refine none" in out
    assert record["batch"]["refine"] == DEFAULT_SR_EXAMPLES_REFINE and record["status"] == "done"
    from linr.cli import main
    assert main(["restore", "--lowres", str(tmp_path / "in" / "low.png"), "--factor", "2", *tiny,
                 "-o", str(tmp_path / "x2.png")]) == 0
    out = capsys.readouterr().out
    assert "a network trained 5 steps" in out and "the default for one low-res photo at x2, --refine none" in out
    # a kept model leaves the image unrefined, and the note says which refinement it leaves out
    assert main(["restore", "--lowres", str(tmp_path / "in" / "low.png"), "--factor", "3", *tiny,
                 "--save-model", str(tmp_path / "m.pt"), "-o", str(tmp_path / "x3.png")]) == 0
    said = "".join(capsys.readouterr())
    assert "the photo upscaled by networks learnt from its own smaller copies" in said
    assert "noisy photo is filtered again" not in said
