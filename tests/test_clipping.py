"""A Gaussian photo's clipping undone (:mod:`linr.clipping`, :func:`linr.stabilise.clipping_route`):
the expected clipped value against sampled noise, its inverse, when the route applies, and
restorations, bursts, kept models, stacked restorations and the command line through it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import linr
from linr.cli import main
from linr.clipping import ClippedGaussian, clipped_ends_of, clipped_gaussian_mean, clipped_variance, unclipped_level
from linr.errors import InputError
from linr.fitted import load_model
from linr.images import write_image
from linr.noise import floored_noise_sigma
from linr.stabilise import clipping_route, restore_route, stabilised
from linr.tasks import restore_many

from .conftest import crop, load

TINY = ["--steps", "12", "--width", "16", "--depth", "2", "--device", "cpu"]
SMALL = linr.ModelConfig(width=16, depth=2)


def noisy_frame(clean: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """``clean`` plus Gaussian noise of ``sigma`` (0-255), clipped and rounded to 8 bits as a file."""
    rng = np.random.default_rng(seed)
    return (np.round(np.clip(clean + rng.normal(0, sigma / 255, clean.shape), 0, 1) * 255) / 255).astype(np.float32)


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    """A crop whose noise is clipped at white (bright skin) and, in a darkened band, at black."""
    image = crop(load("set5/baby.png"), 32).copy()
    image[:8] *= 0.1
    return image


@pytest.mark.parametrize("x", [0.0, 0.03, 0.5, 0.93, 1.0])
@pytest.mark.parametrize("ends", [(True, True), (False, True), (True, False)])
def test_the_expected_clipped_value_is_the_mean_of_clipped_samples(x, ends):
    # float64 sampling, independent of the formula
    sigma = 30 / 255
    samples = x + np.random.default_rng(3).normal(0, sigma, 1_000_000)
    samples = np.clip(samples, 0.0 if ends[0] else -np.inf, 1.0 if ends[1] else np.inf)
    assert clipped_gaussian_mean(np.array(x), sigma, black=ends[0], white=ends[1]) == \
        pytest.approx(samples.mean(), abs=2e-4)


def test_the_inverse_returns_the_pixel_capped_at_clipped_ends_and_passes_unclipped_ones():
    sigmas, weights = (10 / 255, 40 / 255), (0.8, 0.2)
    x = np.linspace(0.0, 1.0, 101)
    mean = sum(w * clipped_gaussian_mean(x, s) for s, w in zip(sigmas, weights))
    both = ClippedGaussian(sigmas, weights)
    assert both.inverse(mean) == pytest.approx(x, abs=1e-5)
    assert both.inverse(np.array([-0.2, 1.3])).tolist() == [0.0, 1.0]  # at most white, at least black
    assert np.array_equal(both.forward(mean), mean)
    white = ClippedGaussian((0.1,), (1.0,), black=False, white=True)
    assert white.inverse(np.array([-0.3, 0.2])) == pytest.approx([-0.3, 0.2], abs=1e-4)  # far from white: as is
    assert white.inverse(np.array([0.96])) > 0.96  # near white: pulled out, the clipping's bias undone
    none = ClippedGaussian((0.1,), (1.0,), black=False, white=False)
    assert not none.active and np.array_equal(none.inverse(mean), mean)
    # the slope is the inverse's derivative, 0 where capped
    r = np.array([0.05, 0.3, 0.9, 0.97])
    h = 1e-5
    assert both.slope(r) == pytest.approx((both.inverse(r + h) - both.inverse(r - h)) / (2 * h), rel=2e-3)
    assert both.slope(np.array([1.2, -0.1])).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="sum to 1"):
        ClippedGaussian((0.1, 0.2), (0.5, 0.6))


@pytest.mark.parametrize("ends", [(True, True), (False, True), (True, False)])
def test_the_clipped_variance_and_the_unclipped_level_against_sampled_noise(ends):
    # float64 sampling, independent of the formulas: pixels near black and white and between
    sigma = 40 / 255
    x = np.repeat(np.array([0.0, 0.05, 0.3, 0.7, 0.96, 1.0]), 200_000)
    noisy = np.clip(x + np.random.default_rng(9).normal(0, sigma, x.size),
                    0.0 if ends[0] else -np.inf, 1.0 if ends[1] else np.inf)
    spread = [np.var(noisy[x == v]) for v in np.unique(x)]
    assert clipped_variance(np.unique(x), sigma, black=ends[0], white=ends[1]) == pytest.approx(spread, rel=0.02)
    measured = float(np.sqrt(np.mean([np.var(noisy[x == v]) for v in np.unique(x)])))
    assert measured < sigma * 0.97  # clipping lowers it
    assert unclipped_level(np.unique(x), measured, black=ends[0], white=ends[1]) == pytest.approx(sigma, rel=0.01)
    assert unclipped_level(np.array([0.5]), 0.05) == pytest.approx(0.05, rel=1e-6)  # nothing near an end


def test_the_unclipped_levels_of_a_restoration_from_its_values_binned_are_those_of_every_value(clean):
    restored = np.clip(clean + np.random.default_rng(2).normal(0, 0.02, clean.shape), -0.05, 1.05)
    measured = ClippedGaussian((20 / 255, 40 / 255), (0.7, 0.3))
    levels = measured.at_unclipped_levels(restored)
    every = [unclipped_level(measured.inverse(restored), s) for s in measured.sigmas]
    assert levels.sigmas == pytest.approx(every, rel=1e-4) and levels.measured == measured.sigmas
    assert all(a > b for a, b in zip(levels.sigmas, measured.sigmas))  # the crop is bright and dark
    assert levels.at_unclipped_levels(restored) is levels  # raised once
    for flat in (np.full((8, 8, 1), 0.97, np.float32), np.float32(0.97) + np.float32(6e-8) * np.eye(8)[..., None]):
        assert measured.at_unclipped_levels(flat).sigmas[0] >= measured.sigmas[0]  # (nearly) constant: no error


def test_clipped_ends_are_read_off_exact_black_and_white():
    assert clipped_ends_of(np.array([0.0, 0.0, 0.5, 1.0, 1.0])) == (True, True)
    assert clipped_ends_of(np.array([0.01, 0.5, 1.0, 1.0])) == (False, True)
    assert clipped_ends_of(np.array([-0.02, 0.5, 0.99])) == (False, False)  # a float photo's noise spilled
    # a float photo scaled to its own range reaches each end once: not clipped
    assert clipped_ends_of(np.array([0.0, 0.31, 0.5, 1.0])) == (False, False)
    # nor where a few entries tie at an end, fewer than the values just inside it
    tied = np.array([1.0, 1.0, 0.999, 0.998, 0.997, 0.5, 0.0, 0.0, 0.001, 0.002, 0.003])
    assert clipped_ends_of(tied) == (False, False)
    # a clipped photo: its noise piles up on the end (float64 sampling, sigma 15 at 3 sigma from white)
    sigma = 15 / 255
    near = np.clip(1 - 3 * sigma + np.random.default_rng(5).normal(0, sigma, 200_000), 0, 1)
    assert clipped_ends_of(np.round(near * 255) / 255) == (False, True)
    assert clipped_ends_of(np.round(near * 65535) / 65535) == (False, True)  # a 16-bit file's


def test_which_photos_take_the_clipping_route(clean):
    one = linr.noisy(noisy_frame(clean, 25, 0))
    route = clipping_route([one])
    assert route.record_key == "clipping" and route.transform.black and route.transform.white and not route.averaged
    assert stabilised([one], route)[0] is one  # restored as it is
    inside = linr.noisy(np.clip(noisy_frame(clean, 25, 0), 0.01, 0.99))
    assert clipping_route([inside]) is None  # not clipped: nothing to undo
    assert clipping_route([one], preset="paper") is None  # the paper's mathematics kept
    assert clipping_route([one, linr.noisy(noisy_frame(clean, 25, 1))], register="translation") is None
    assert clipping_route([one, linr.lowres(clean[::2, ::2], factor=2)]) is None  # joint fits as they were
    assert clipping_route([one], clipping="ignore") is None
    assert restore_route([linr.noisy(noisy_frame(clean, 25, 0), noise="poisson", peak=20.0)]).record_key == "photon"
    with pytest.raises(InputError, match="clipping must be one of auto, ignore"):
        clipping_route([one], clipping="undo")
    # a burst: its frames' mean weighted by measured inverse variance, or by the frames' own weights
    frames = [linr.noisy(noisy_frame(clean, s, k)) for k, s in enumerate((15, 30))]
    burst = clipping_route(frames)
    sigmas = [floored_noise_sigma(f.image) for f in frames]
    assert burst.averaged == 2 and burst.weights[0] / burst.weights[1] == pytest.approx((sigmas[1] / sigmas[0]) ** 2)
    assert burst.weights[0] > 0.7
    mean = stabilised(frames, burst)
    assert len(mean) == 1 and mean[0].image == pytest.approx(
        burst.weights[0] * frames[0].image + burst.weights[1] * frames[1].image, abs=1e-6)
    even = clipping_route([linr.noisy(noisy_frame(clean, 25, k)) for k in range(2)])
    assert even.weights == (0.5, 0.5)  # levels within 1.25x: the estimate's scatter, weighed equally
    given = clipping_route([linr.noisy(f.image, weight=1.0) for f in frames])
    assert given.weights == (0.5, 0.5)
    assert not clipping_route(frames, clipping="ignore").transform.active  # still averaged
    assert clipping_route([frames[0], linr.noisy(clean[:16])]) is None  # frames of other sizes


def test_a_restoration_maps_its_image_back_and_a_kept_model_renders_so(clean, tmp_path):
    photo = noisy_frame(clean, 25, 2)
    kept = linr.restore([linr.noisy(photo)], steps=30, model=SMALL, device="cpu", progress=False, keep_model=True)
    plain = linr.restore([linr.noisy(photo)], steps=30, model=SMALL, device="cpu", progress=False, keep_model=True,
                         clipping="ignore")
    transform = clipping_route([linr.noisy(photo)]).transform.at_unclipped_levels(plain.image)
    assert kept.settings["clipping"]["clipped_at_white"] and "clipping" not in plain.settings
    measured = kept.settings["clipping"]["measured_sigmas"][0]
    assert measured <= kept.settings["clipping"]["sigmas"][0] <= 4 * measured  # clipping lowers the measure
    assert kept.image == pytest.approx(transform.inverse(plain.image), abs=1e-6)
    assert kept.render() == pytest.approx(kept.image, abs=1e-6)
    path = kept.save_model(str(tmp_path / "m.pt"))
    assert torch.load(path, weights_only=True)["version"] == 3
    fitted, _ = load_model(path)
    assert fitted.clipping == kept.model.clipping
    assert np.array_equal(fitted.render(), kept.image)
    assert torch.load(plain.save_model(str(tmp_path / "p.pt")), weights_only=True)["version"] == 1


def test_a_burst_is_restored_as_its_weighted_mean_and_stacked_restorations_take_the_route(clean):
    frames = [noisy_frame(clean, s, k) for k, s in enumerate((15, 25, 50))]
    burst = linr.restore([linr.noisy(f) for f in frames], steps=20, model=SMALL, device="cpu", progress=False)
    route = clipping_route([linr.noisy(f) for f in frames])
    mean = stabilised([linr.noisy(f) for f in frames], route)[0].image
    alone = linr.restore([linr.noisy(mean)], steps=20, model=SMALL, device="cpu", progress=False, clipping="ignore")
    assert burst.settings["clipping"]["frames_averaged"] == 3
    assert burst.image == pytest.approx(route.transform.at_unclipped_levels(alone.image).inverse(alone.image),
                                        abs=1e-5)
    one = noisy_frame(clean, 25, 7)
    many = restore_many([[linr.noisy(one)], [linr.noisy(np.clip(one, 0.02, 0.98))]], steps=10, model=SMALL,
                        device="cpu", refine="none")
    single = linr.restore([linr.noisy(one)], steps=10, model=SMALL, device="cpu", progress=False, refine="none")
    assert many[0].settings["clipping"] == single.settings["clipping"] and "clipping" not in many[1].settings
    assert many[0].image == pytest.approx(single.image, abs=1e-4)


def test_the_command_line_says_it_and_ignore_leaves_it(tmp_path, capsys, clean):
    first, second, out, report = (tmp_path / n for n in ("a.png", "b.png", "o.png", "r.json"))
    write_image(first, noisy_frame(clean, 25, 0))
    write_image(second, noisy_frame(clean, 40, 1))
    assert main(["restore", "--noisy", str(first), "-o", str(out), "--report", str(report), *TINY]) == 0
    said = capsys.readouterr().out
    assert "clipped at black and white: the restored values mapped back" in said
    assert json.loads(report.read_text())["settings"]["clipping"]["clipped_at_black"]
    assert main(["restore", "--noisy", str(first), "--noisy", str(second), "-o", str(out), "--force", *TINY]) == 0
    assert "2 aligned frames averaged and restored as one photo" in capsys.readouterr().out
    assert main(["restore", "--noisy", str(first), "--clipping", "ignore", "-o", str(out), "--force", *TINY]) == 0
    assert "mapped back" not in capsys.readouterr().out


def test_an_unclipped_burst_keeps_no_mapping_and_a_bad_choice_is_refused_with_photon_noise(clean, tmp_path):
    frames = [linr.noisy(noisy_frame(clean, 25, k)) for k in range(2)]
    averaged = linr.restore(frames, steps=10, model=SMALL, device="cpu", progress=False, keep_model=True,
                            clipping="ignore")
    assert averaged.settings["clipping"]["frames_averaged"] == 2 and averaged.model.clipping is None
    assert torch.load(averaged.save_model(str(tmp_path / "m.pt")), weights_only=True)["version"] == 1
    with pytest.raises(InputError, match="clipping must be one of auto, ignore"):
        restore_route([linr.noisy(noisy_frame(clean, 25, 0), noise="poisson", peak=20.0)], clipping="bogus")


def test_a_batch_tiles_a_burst_as_restore_does():
    from linr.batch.work import in_tiles
    from linr.tasks import plan_restore

    big = np.tile(crop(load("set5/baby.png"), 128), (4, 4, 1))[:420, :420]
    frames = [linr.noisy(noisy_frame(big, 25, k)) for k in range(2)]
    fit = {"tile": "auto"}
    assert plan_restore(frames, device="cpu").grid is not None  # the mean: one photo, its pilot in tiles
    assert in_tiles(frames, fit)


def _scene_shifted(shift: tuple[int, int], size: int = 48) -> np.ndarray:
    """A textured crop of ``size`` px whose content is moved by ``shift`` (rows, columns) in the frame."""
    big = crop(load("set9/kodim03.png"), size + 16)
    return np.roll(big, shift, axis=(0, 1))[8:-8, 8:-8].copy()


def test_frames_that_do_not_line_up_with_the_first_are_found_and_aligned_ones_are_not():
    from linr.registration import misaligned_by, shifted_frames

    still = _scene_shifted((0, 0))
    frames = [noisy_frame(still, 25, k) for k in range(3)]
    assert shifted_frames(frames) == {}  # noise alone: no shift, whatever the estimate says
    moved = noisy_frame(_scene_shifted((3, -2)), 25, 5)
    dy, dx = misaligned_by(frames[0], moved)  # moving(p) ~ reference(p + t): content moved by +3, -2
    assert (round(dy), round(dx)) == (-3, 2)
    assert set(shifted_frames([frames[0], frames[1], moved])) == {2}
    assert shifted_frames([frames[0]]) == {}


def test_a_burst_leaves_out_frames_shifted_against_its_first(tmp_path, capsys):
    """Frames that do not line up are weighted 0 in the burst's mean (it would blur what moved): a
    burst of one frame and one shifted is the first frame's restoration, said and recorded; the
    photon route likewise."""
    still, moved = noisy_frame(_scene_shifted((0, 0)), 25, 0), noisy_frame(_scene_shifted((3, -2)), 25, 1)
    kw = dict(steps=12, model=SMALL, device="cpu", progress=False)
    route = clipping_route([linr.noisy(still), linr.noisy(moved)])
    assert route.weights == (1.0, 0.0) and set(route.left_out) == {1} and route.frames_used == 1
    burst = linr.restore([linr.noisy(still), linr.noisy(moved)], **kw)
    alone = linr.restore([linr.noisy(still)], **kw)
    np.testing.assert_allclose(burst.image, alone.image, atol=1e-5)
    recorded = burst.settings["clipping"]
    assert recorded["frames_averaged"] == 1 and list(recorded["frames_left_out"]) == ["2"]
    photon = restore_route([linr.noisy(f, noise="poisson", peak=40.0) for f in (still, moved)])
    assert photon.weights == (1.0, 0.0) and photon.describe()["frames_left_out"].keys() == {"2"}
    first, second, out = (tmp_path / n for n in ("a.png", "b.png", "o.png"))
    write_image(first, still)
    write_image(second, moved)
    assert main(["restore", "--noisy", str(first), "--noisy", str(second), "-o", str(out), *TINY]) == 0
    said = capsys.readouterr().out
    assert "frame 2 (b.png) of the burst shifted against the first (by up to 3." in said and "the first frame alone" in said
    assert "--register translation" in said and "aligned frames averaged" not in said
