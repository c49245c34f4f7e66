"""Image priors (linr.priors): values against direct float64 sums, specs, and fits with a prior."""
import dataclasses

import numpy as np
import pytest
import torch

import linr
from linr.config import FitConfig
from linr.cost import plan
from linr.errors import InputError
from linr.fit import fit
from linr.models import ModelConfig
from linr.priors import TotalVariation, parse_prior
from linr.stopping import parse_stop

from .conftest import run_err, tiny_noisy_restore


def test_total_variation_is_the_mean_of_the_smoothed_gradient_norms():
    rng = np.random.default_rng(0)
    image = rng.normal(size=(1, 2, 5, 6))
    for weight, eps in ((0.3, 1e-3), (2.0, 0.5)):
        total, count = 0.0, 0
        for c in range(2):
            for i in range(4):
                for j in range(5):
                    dx = image[0, c, i, j + 1] - image[0, c, i, j]
                    dy = image[0, c, i + 1, j] - image[0, c, i, j]
                    total += np.sqrt(dx * dx + dy * dy + eps * eps)
                    count += 1
        value = TotalVariation(weight, eps).value(torch.from_numpy(image))
        assert float(value) == pytest.approx(weight * total / count, rel=1e-12)
    flat = torch.full((1, 3, 4, 4), 0.2, dtype=torch.float64)
    assert float(TotalVariation(1.0).value(flat)) == pytest.approx(1e-3)  # eps where it is flat


@pytest.mark.parametrize("spec, message", [
    ("tv", "expected tv:WEIGHT"), ("tv:x", "expected tv:WEIGHT"), ("tv:-1", "positive number"),
    ("tv:0.1:0", "eps must be a positive number"), ("tv:0.1:inf", "eps must be a positive number"),
    ("none:0.1", "none takes no weight"), ("tv:1:2:3", "expected tv:WEIGHT"), ("blur:1", "unknown prior")])
def test_bad_prior_specs_are_named(spec, message):
    with pytest.raises(ValueError, match=message):
        parse_prior(spec)
    with pytest.raises(InputError, match=message):
        FitConfig(prior=spec)


def test_specs_read_back():
    assert parse_prior("tv:0.05").spec == "tv:0.05"
    assert parse_prior("tv:0.1234567").spec == "tv:0.1234567"  # recorded as given, not rounded
    assert parse_prior("tv:0.05:0.01") == TotalVariation(0.05, 0.01)
    assert parse_prior(parse_prior("tv:0.05:0.01").spec) == TotalVariation(0.05, 0.01)


def test_a_bad_prior_on_the_command_line_is_one_line(capsys, tmp_path):
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "x.png"), "--prior", "tv:nope",
                           "-o", str(tmp_path / "out.png")])
    assert "expected tv:WEIGHT" in err


def test_a_fit_with_a_prior_is_the_same_on_the_engine_and_the_plain_loop():
    """The engine adds a local prior's gradient chunk by chunk on the pixel path, from bands of
    rows around each chunk: the same fit as the plain loop's autograd of the whole image, with
    chunks of less than a row, of rows and a half, and of the whole image."""
    rng = np.random.default_rng(1)
    clean = rng.random((12, 10, 3)).astype(np.float32) * 0.8 + 0.1
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    mask = rng.random((12, 10)) < 0.5
    kw = dict(steps=8, device="cpu", progress=False, lr=1e-3, model=ModelConfig(width=32, depth=3),
              prior="tv:0.2")
    cases = [([linr.noisy(noisy)], None), ([linr.noisy(noisy)], "holdout:0.2:40"),
             ([linr.masked(clean * mask[..., None], mask)], None)]
    for observations, stop in cases:
        plain = fit(observations, FitConfig(engine="plain", **kw), reference=clean,
                    stop=None if stop is None else parse_stop(stop))
        for chunk in (7, 15, 2**17):
            fast = fit(observations, FitConfig(chunk_pixels=chunk, **kw), reference=clean,
                       stop=None if stop is None else parse_stop(stop))
            engine = fast.settings["engine_used"]
            assert engine["pixel_wise"] and engine["rendered_pixels"] == 120  # every pixel, for the prior
            assert np.allclose(fast.history["loss"], plain.history["loss"], rtol=1e-3), (stop, chunk)
            assert np.abs(fast.image - plain.image).max() < 2e-4, (stop, chunk)
    with_prior = fit([linr.noisy(noisy)], FitConfig(**kw))
    without = fit([linr.noisy(noisy)], FitConfig(**{**kw, "prior": None}))
    assert np.abs(without.image - with_prior.image).max() > 1e-3  # the prior changes the fit
    # the recorded loss is the data term (what discrepancy and plateau stops compare with the
    # noise): at the same first output it is the same with and without the prior
    assert with_prior.history["loss"][0] == pytest.approx(without.history["loss"][0], rel=1e-6)
    assert with_prior.history["loss"][-1] != pytest.approx(without.history["loss"][-1], rel=1e-4)


def test_stacked_fits_each_keep_their_own_prior():
    from linr.fit import fit_many

    rng = np.random.default_rng(6)
    clean = rng.random((10, 9, 3)).astype(np.float32) * 0.8 + 0.1
    frames = [np.clip(clean + rng.normal(0, s, clean.shape), 0, 1).astype(np.float32) for s in (0.05, 0.2)]
    config = FitConfig(steps=6, device="cpu", progress=False, lr=1e-3, model=ModelConfig(width=16, depth=2),
                       prior="tv:auto", chunk_pixels=20)
    stacked = fit_many([[linr.noisy(f)] for f in frames], config)
    alone = [fit([linr.noisy(f)], config) for f in frames]
    used = [r.settings["prior_used"] for r in stacked]
    assert used == [r.settings["prior_used"] for r in alone] and used[0] != used[1]
    for a, b in zip(stacked, alone):
        assert stacked[0].settings["engine_used"]["stacked"] == 2
        assert np.abs(a.image - b.image).max() < 2e-5


def test_the_prior_smooths_what_the_fit_returns():
    """Fitted far past its peak, a noisy image's fit holds more of the noise without the prior."""
    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:24, 0:24] / 24
    clean = np.stack([0.5 + 0.3 * np.sin(3 * x), 0.4 + 0.2 * y, 0.5 + 0.1 * x * y], -1).astype(np.float32)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    kw = dict(steps=60, device="cpu", progress=False, lr=1e-3, model=ModelConfig(width=48, depth=3))
    tv = TotalVariation(1.0)
    variation = {}
    for prior in (None, "tv:0.5"):
        image = fit([linr.noisy(noisy)], FitConfig(prior=prior, **kw)).image
        variation[prior] = float(tv.value(torch.from_numpy(image).permute(2, 0, 1)[None]))
    assert variation["tv:0.5"] < 0.8 * variation[None]


def test_a_prior_renders_every_pixel_in_the_cost_estimate():
    mask = np.zeros((32, 32), bool)
    mask[::3] = True
    obs = [linr.masked(np.zeros((32, 32, 3), np.float32), mask)]
    config = FitConfig(steps=10)
    sparse = plan(obs, config).flops_per_step
    assert plan(obs, dataclasses.replace(config, prior="tv:0.1")).flops_per_step > 2.5 * sparse  # 1/3 seen


def test_an_auto_weight_follows_the_measured_noise_and_is_recorded_as_a_number():
    from linr.problem import build_prior

    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:64, 0:64] / 64
    clean = np.stack([0.5 + 0.2 * np.sin(4 * x), 0.3 + 0.4 * y, 0.5 + 0.2 * x * y], -1)
    weights = {}
    for sigma in (10, 25, 50):
        noisy = clean + rng.normal(0, sigma / 255, clean.shape)  # unclipped: the estimate's own error only
        obs, config = linr.tasks.resolve([linr.noisy(noisy)], prior="tv:auto")
        assert config.prior == "tv:auto"  # set per fit, from that fit's observations
        prior = build_prior(config.prior, obs)
        assert isinstance(prior, TotalVariation) and prior.eps == 1e-3
        assert prior.weight == pytest.approx(TotalVariation.NOISE_TO_WEIGHT * sigma / 255, rel=0.1)
        weights[sigma] = prior.weight
    assert weights[10] < weights[25] < weights[50]
    assert build_prior("tv:auto:0.01", [linr.noisy(clean + rng.normal(0, 0.1, clean.shape))]).eps == 0.01
    # frames: sqrt(sum (w_i sigma_i)^2), the noise of their weighted mean times their total weight
    a, b = clean + rng.normal(0, 0.05, clean.shape), clean + rng.normal(0, 0.15, clean.shape)
    prior = build_prior("tv:auto", [linr.noisy(a, weight=3.0), linr.noisy(b, weight=1.0)])
    assert prior.weight == pytest.approx(np.hypot(3 * 0.05, 0.15), rel=0.1)
    # a burst as the defaults weigh it (0.1 per frame): 0.1 sqrt(N) sigma, not sigma
    frames = [linr.noisy(clean + rng.normal(0, 0.1, clean.shape)) for _ in range(4)]
    obs, config = linr.tasks.resolve(frames, prior="tv:auto")
    assert build_prior(config.prior, obs).weight == pytest.approx(0.1 * 2 * 0.1, rel=0.1)
    # the fit records the number it used, which repeats the fit exactly
    small = dict(steps=3, device="cpu", progress=False, model=ModelConfig(width=16, depth=2))
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    auto = linr.restore(linr.noisy(noisy), prior="tv:auto", **small)
    used = auto.settings["prior_used"]
    assert auto.settings["prior"] == "tv:auto" and parse_prior(used).weight == pytest.approx(0.1, rel=0.1)
    assert np.array_equal(linr.restore(linr.noisy(noisy), prior=used, **small).image, auto.image)


def test_the_default_prior_is_for_plain_gaussian_denoising_only():
    from linr.tasks import DEFAULT_DENOISE_PRIOR

    img = np.random.default_rng(4).random((24, 24, 3))
    assert linr.tasks.resolve([linr.noisy(img)])[1].prior == DEFAULT_DENOISE_PRIOR == "tv:auto"
    for obs, kw in [([linr.noisy(img)], {"preset": "paper"}),  # the paper's fit
                    ([linr.noisy(img)], {"preset": "fast"}),
                    ([linr.noisy(img)], {"prior": "none"}),
                    ([linr.noisy(img), linr.noisy(img)], {}),  # a burst: not measured
                    ([linr.noisy(img), linr.lowres(img[::4, ::4], 4)], {}),  # joint
                    ([linr.noisy(img, noise="poisson", peak=30)], {}),  # photon noise
                    ([linr.lowres(img[::4, ::4], 4)], {}),
                    ([linr.masked(img, np.ones((24, 24), bool))], {})]:
        assert linr.tasks.resolve(obs, **kw)[1].prior is None, (obs, kw)


def test_the_default_prior_leaves_out_colour_photos_above_its_size_only():
    from linr.tasks import DENOISE_PRIOR_UP_TO, default_prior_rule

    rng = np.random.default_rng(5)
    up_to = DENOISE_PRIOR_UP_TO
    for shape, prior in [((up_to, up_to, 3), "tv:auto"), ((up_to + 1, 16, 3), None), ((16, up_to + 1, 3), None),
                         ((300, 300, 3), None), ((300, 300), "tv:auto"), ((300, 300, 1), "tv:auto"),
                         ((300, 300, 2), "tv:auto"), ((up_to, 16), "tv:auto")]:
        obs = [linr.noisy(rng.random(shape).astype(np.float32))]
        assert linr.tasks.resolve(obs)[1].prior == prior, shape
        assert linr.tasks.resolve(obs, prior="tv:auto")[1].prior == "tv:auto"  # asked for: at any size
    assert default_prior_rule() == f"tv:auto-except-rgb-above{up_to}"
    result = linr.restore(linr.noisy(rng.random((up_to + 1, 8, 3)).astype(np.float32)), steps=2, device="cpu",
                          progress=False, model=ModelConfig(width=8, depth=2), refine="none")
    assert result.settings.get("prior") is None and result.settings.get("prior_used") is None


def test_the_command_line_help_names_the_default_priors_size():
    import argparse

    from linr.cli import build_parser
    from linr.tasks import DENOISE_PRIOR_UP_TO

    parser = build_parser()
    restore = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices["restore"]
    help_text = next(a.help for a in restore._actions if "--prior" in a.option_strings)
    assert f"none for a colour photo whose longer side exceeds {DENOISE_PRIOR_UP_TO} px" in help_text


def test_none_and_numbers_resolve_as_given():
    obs = [linr.noisy(np.full((16, 16), 0.5))]
    assert linr.tasks.resolve(obs, prior="none")[1].prior is None
    assert FitConfig(prior="none").prior is None
    assert linr.tasks.resolve(obs, prior="tv:0.05")[1].prior == "tv:0.05"
    assert linr.tasks.resolve(obs, preset="paper")[1].prior is None  # the paper's fit: no prior


def test_an_auto_weight_without_a_noisy_observation_is_one_line(capsys, tmp_path):
    low = np.full((8, 8, 3), 0.5)
    with pytest.raises(InputError, match="sets its weight from the Gaussian noise measured on a noisy input"):
        linr.restore([linr.lowres(low, 4)], prior="tv:auto", steps=2)
    with pytest.raises(InputError, match="unknown prior"):
        linr.restore([linr.noisy(low)], prior="auto", steps=2)
    from PIL import Image
    path = tmp_path / "low.png"
    Image.fromarray((low * 255).astype(np.uint8)).save(path)
    err = run_err(capsys, ["restore", "--lowres", str(path), "--factor", "4", "--prior", "tv:auto",
                           "-o", str(tmp_path / "out.png")])
    assert "sets its weight from the Gaussian noise" in err
    assert not (tmp_path / "out.png").exists()
    err = run_err(capsys, ["restore", "--noisy", str(path), "--prior", "tv:auto:0", "-o", str(tmp_path / "o.png")])
    assert "eps must be a positive number" in err


def test_the_command_line_says_which_prior_a_noisy_restore_used(capsys, tmp_path):
    from linr.cli import main

    base = tiny_noisy_restore(tmp_path)
    assert main([*base, "-o", str(tmp_path / "a.png"), "--report", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    assert "image prior: tv:auto, weight 0.1" in out and "--prior none fits without it" in out
    import json

    settings = json.loads((tmp_path / "a.json").read_text())["settings"]
    assert settings["prior"] == "tv:auto" and settings["prior_used"].startswith("tv:0.1")
    assert main([*base, "-o", str(tmp_path / "b.png"), "--prior", "none"]) == 0
    assert "image prior" not in capsys.readouterr().out


def test_a_local_prior_costs_one_pass_above_a_chunk():
    """Total variation keeps the pixel path: an image larger than a chunk costs what the fit
    without the prior costs when it renders every pixel, not the image step's second pass."""
    obs = [linr.noisy(np.zeros((400, 400, 3), np.float32))]
    config = FitConfig(steps=10)
    assert 400 * 400 > config.chunk_pixels
    without = plan(obs, config, whole_output_every_step=True).flops_per_step
    assert plan(obs, dataclasses.replace(config, prior="tv:0.1"), whole_output_every_step=True).flops_per_step == without
    lowres = [linr.lowres(np.zeros((100, 100, 3), np.float32), 4)]  # the image step: two passes
    assert plan(lowres, config).flops_per_step > without


def test_images_too_small_to_measure_get_no_default_prior_and_one_line_for_auto(capsys, tmp_path):
    small = dict(steps=2, device="cpu", progress=False, model=ModelConfig(width=16, depth=2))
    rng = np.random.default_rng(7)
    for shape in ((3, 3, 3), (1, 30, 3)):
        image = rng.random(shape).astype(np.float32)
        result = linr.restore(linr.noisy(image), **small)  # the default: no prior it cannot weigh
        assert result.settings["prior"] is None and result.image.shape == shape
        with pytest.raises(InputError, match="too small to measure its noise"):
            linr.restore(linr.noisy(image), prior="tv:auto", **small)
        # a given weight works on one row or one column (no term: the prior adds nothing)
        assert linr.restore(linr.noisy(image), prior="tv:0.1", **small).image.shape == shape
    from PIL import Image

    Image.fromarray((rng.random((3, 3, 3)) * 255).astype(np.uint8)).save(tmp_path / "tiny.png")
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "tiny.png"), "--prior", "tv:auto",
                           "-o", str(tmp_path / "o.png")])
    assert "too small to measure its noise" in err


def test_a_tiled_restore_weighs_every_tile_by_the_noise_of_the_whole_image():
    from linr.problem import prior_noise_level

    rng = np.random.default_rng(8)
    y, x = np.mgrid[0:40, 0:56] / 56
    clean = np.stack([0.5 + 0.3 * np.sin(9 * x * y), 0.4 + 0.2 * y, 0.5 + 0.1 * x], -1)
    clean[:, :20] += 0.2 * (rng.random((40, 20, 3)) > 0.5)  # texture on one side only
    noisy = np.clip(clean + rng.normal(0, 0.08, clean.shape), 0, 1).astype(np.float32)
    result = linr.restore(linr.noisy(noisy), tile="24:8", steps=2, device="cpu", progress=False,
                          model=ModelConfig(width=16, depth=2))
    expected = TotalVariation.NOISE_TO_WEIGHT * prior_noise_level([linr.noisy(noisy)])
    assert result.settings["prior"] == "tv:auto"
    assert parse_prior(result.settings["prior_used"]).weight == pytest.approx(expected, rel=1e-12)
    assert {t["prior_used"] for t in result.settings["tiles"]} == {result.settings["prior_used"]}
