"""Photon noise through the Anscombe transform (:mod:`linr.photon`, :mod:`linr.stabilise`): the
transform's unbiased inverse against sampled counts, when the route applies, and restorations
through it (the image on the photo's scale, a kept model, the report, the command line)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import linr
from linr.cli import main
from linr.errors import InputError
from linr.fidelity import PHOTON_METHODS, Poisson
from linr.fitted import load_model
from linr.images import read_image, write_image
from linr.kinds import PHOTON_METHOD_CHOICES
from linr.photon import AnscombeTransform
from linr.simulate import add_photon_noise
from linr.stabilise import photon_route, stabilised

from .conftest import crop, load, run_err

TINY = ["--steps", "12", "--width", "16", "--depth", "2", "--device", "cpu"]


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return crop(load("set9/house.png"), 32)


@pytest.mark.parametrize("read", [0.0, 3.0])
@pytest.mark.parametrize("rate", [2.0, 5.0, 30.0])
def test_the_inverse_returns_the_rate_from_the_mean_of_transformed_counts(rate, read):
    # float64 sampling, independent of the code's formula: the mean transformed value of
    # Poisson(rate) + N(0, read^2) counts, inverted, is the rate (the algebraic inverse is
    # biased by about a quarter of a photon; a negative control below)
    rng = np.random.default_rng(7)
    counts = rng.poisson(rate, 400_000) + rng.normal(0.0, read, 400_000)
    peak = 40.0
    t = AnscombeTransform(peak, read, 1.0)
    mean = t.forward(counts / peak).mean()
    assert t.inverse(mean) * peak == pytest.approx(rate, rel=0.03, abs=0.05)
    algebraic = (mean / 2) ** 2 - 0.375 - read ** 2
    assert abs(algebraic - rate) > 0.15
    if rate >= 5:  # noise of std about 1 after the transform, once the counts are not too few
        assert np.std(t.forward(counts / peak)) == pytest.approx(1.0, abs=0.05)


@pytest.mark.parametrize("rate", [3.0, 7.0, 9.5])
def test_a_photo_clipped_at_white_is_inverted_by_its_clipped_counts_mean(rate):
    # sampled counts clipped at the peak, as an 8-bit file of counts / peak holds them
    rng = np.random.default_rng(11)
    peak = 10.0
    clipped = np.minimum(rng.poisson(rate, 400_000), peak) / peak
    t = AnscombeTransform(peak, 0.0, 1.0, white=True)
    mean = t.forward(clipped).mean()
    assert t.inverse(mean) * peak == pytest.approx(rate, rel=0.02)
    if rate > 9:  # the unclipped inverse reads the clipped mean as a darker rate
        assert AnscombeTransform(peak, 0.0, 1.0).inverse(mean) * peak < 0.93 * rate


@pytest.mark.parametrize("rate", [1.0, 6.0, 25.0])
def test_read_noise_clipped_at_black_and_white(rate):
    # Poisson plus Gaussian read noise, negatives written as 0 and counts above the peak as the
    # peak: the shifted-Poisson model's inverse returns the rate within a few percent
    rng = np.random.default_rng(12)
    peak, read = 30.0, 3.0
    values = np.clip(rng.poisson(rate, 400_000) + rng.normal(0.0, read, 400_000), 0.0, peak) / peak
    t = AnscombeTransform.fitted_to([values], peak, read, white=True)
    assert t.white and t.black == (rate < 10)  # no value reached 0 at 25 photons
    assert t.inverse(t.forward(values).mean()) * peak == pytest.approx(rate, rel=0.05, abs=0.15)


@pytest.mark.parametrize("rate", [0.5, 2.0, 10.0, 30000.0])
def test_the_clipped_table_is_exact_in_the_dark_at_a_large_peak(rate):
    # a 16-bit photo's peak: the transformed mean of Poisson(rate) clipped at 60000, summed
    # independently with scipy's pmf, inverts to the rate (a grid even in the rate missed the
    # dark by several photons)
    from scipy.stats import poisson

    peak = 60000.0
    k = np.arange(0, int(rate + 20 * np.sqrt(rate) + 40))
    pmf = poisson.pmf(k, rate)
    mean = (pmf * 2 * np.sqrt(np.minimum(k, peak) + 0.375)).sum() + (1 - pmf.sum()) * 2 * np.sqrt(peak + 0.375)
    t = AnscombeTransform(peak, 0.0, 1.0, white=True)
    assert t.inverse(np.array([mean]))[0] * peak == pytest.approx(rate, rel=0.005, abs=0.005)


def test_a_clipped_photo_inverts_to_at_most_white():
    t = AnscombeTransform.fitted_to([np.array([0.0, 0.5, 1.0])], 20.0, white=True)
    bright = np.array([0.97, 1.0, 1.2])
    assert np.all(t.inverse(bright) <= 1.0) and t.inverse(np.array([1.2]))[0] == 1.0
    assert t.slope(np.array([1.2]))[0] == 0.0


def test_the_slope_is_the_inverse_s_derivative_and_top_scales_to_one():
    t = AnscombeTransform.fitted_to([np.array([[0.0, 0.3], [0.9, 1.2]])], 25.0, 2.0)
    assert t.forward(np.array([1.2])) == pytest.approx(1.0)
    u = np.linspace(0.15, 1.1, 40)
    h = 1e-6
    numeric = (t.inverse(u + h) - t.inverse(u - h)) / (2 * h)
    assert np.allclose(t.slope(u), numeric, rtol=1e-5, atol=1e-8)
    assert t.slope(np.array([0.0]))[0] == 0.0  # flat where the inverse is clamped at 0 counts
    clipped = AnscombeTransform(t.peak, t.read, t.top, white=True)
    inside = np.linspace(0.3, 0.9, 25)
    numeric = (clipped.inverse(inside + h) - clipped.inverse(inside - h)) / (2 * h)
    assert np.allclose(clipped.slope(inside), numeric, rtol=1e-3)  # piecewise linear: a step straddles a knot


def test_choices_on_the_command_line_are_the_data_terms():
    assert PHOTON_METHOD_CHOICES == PHOTON_METHODS


def test_which_route_applies(clean):
    noisy = add_photon_noise(clean, 20.0, seed=1)
    one = linr.noisy(noisy, noise="poisson", peak=20.0)
    route = photon_route([one])
    assert route.transform is not None and route.transform.peak == 20.0
    assert photon_route([linr.noisy(noisy)]) is None  # Gaussian: no photon noise
    assert photon_route([linr.noisy(noisy, noise="poisson", peak=20.0, photon_method="likelihood")]).transform is None
    # an aligned burst: the mean of its frames' levels, its frames averaged after the transform
    second = add_photon_noise(clean, 20.0, seed=2)
    frames = [one, linr.noisy(second, noise="poisson", peak=22.0)]
    burst = photon_route(frames)
    assert burst.transform.peak == pytest.approx(21.0) and burst.averaged == 2
    (averaged,) = stabilised(frames, burst)
    t = burst.transform
    assert np.allclose(averaged.image, (t.forward(noisy) + t.forward(second)) / 2, atol=1e-6)
    assert averaged.fidelity.name == "squared_error" and averaged.kind == "noisy"
    # frames of other sizes are not averaged (restore refuses them in one line)
    small = linr.noisy(add_photon_noise(clean[:16], 20.0, seed=3), noise="poisson", peak=20.0)
    assert photon_route([one, small]).averaged == 0
    with pytest.raises(InputError):
        linr.restore([one, small], steps=2, device="cpu", progress=False)
    # frames to register keep the likelihood, unless asked (then fitted as a burst, not averaged)
    moved = photon_route(frames, register="translation")
    assert moved.transform is None and "a burst of frames to register" in moved.why_not
    asked = photon_route([linr.noisy(noisy, noise="poisson", peak=20.0, photon_method="anscombe"),
                          linr.noisy(second, noise="poisson", peak=22.0, photon_method="anscombe")],
                         register="translation")
    assert asked.transform.peak == pytest.approx(21.0) and asked.averaged == 0
    assert len(stabilised(frames, asked)) == 2
    apart = photon_route([one, linr.noisy(noisy, noise="poisson", peak=40.0)])
    assert apart.transform is None and "different photon levels" in apart.why_not
    low = linr.lowres(noisy[::2, ::2], 2)
    joint = photon_route([one, low])
    assert joint.transform is None and "other kinds of photo" in joint.why_not
    with pytest.raises(InputError, match="does not apply: photon-noise photos restored together"):
        photon_route([linr.noisy(noisy, noise="poisson", peak=20.0, photon_method="anscombe"), low])
    with pytest.raises(InputError, match="photon methods differ"):
        photon_route([one.__class__(noisy, one.operator, None, "noisy",
                                    fidelity=Poisson(peak=20.0, method="likelihood"), carries_noise=True),
                      linr.noisy(noisy, noise="poisson", peak=20.0, photon_method="anscombe")])
    with pytest.raises(InputError, match="needs noise 'poisson'"):
        linr.noisy(noisy, photon_method="anscombe")
    with pytest.raises(InputError, match="unknown photon method"):
        linr.noisy(noisy, noise="poisson", photon_method="vst")
    with pytest.raises(ValueError, match="method must be None or one of anscombe, likelihood"):
        Poisson(peak=20.0, method="vst")  # a term built by hand is checked as its stop_on is


def test_a_restoration_through_the_transform_is_on_the_photo_s_scale_and_keeps_its_model(clean, tmp_path):
    noisy = add_photon_noise(clean, 15.0, seed=3)
    config = linr.ModelConfig(width=16, depth=2)
    result = linr.restore([linr.noisy(noisy, noise="poisson", peak=15.0)], steps=300, model=config, device="cpu",
                          progress=False, keep_model=True, reference=clean)
    record = result.settings["photon"]
    assert record["method"] == "anscombe" and record["peak"] == 15.0
    assert record["noise"]["name"] == "poisson" and "transformed" in record["history"]
    # the image, not its transform (whose values are 2 sqrt(15 x) / top): means agree within 10%
    assert result.image.mean() == pytest.approx(noisy.mean(), rel=0.1)
    assert result.render() == pytest.approx(result.image, abs=1e-6)
    path = result.save_model(str(tmp_path / "m.pt"))
    fitted, _ = load_model(path)
    assert fitted.photon == result.model.photon
    assert np.array_equal(fitted.render(), result.image)
    assert fitted.render(scale=2).shape[:2] == (64, 64)
    plain = linr.restore([linr.noisy(noisy)], steps=5, model=config, device="cpu", progress=False,
                         keep_model=True, clipping="ignore")
    import torch

    assert torch.load(plain.save_model(str(tmp_path / "p.pt")), weights_only=True)["version"] == 1
    assert "photon" not in plain.settings


def test_results_map_back_through_the_inverse_and_its_slope():
    from linr.fit import FitResult
    from linr.stabilise import NoiseRoute, unstabilised

    t = AnscombeTransform(12.0, 1.0, 8.0)
    u = np.linspace(0.1, 1.0, 24, dtype=np.float32).reshape(4, 2, 3)
    spread = np.full_like(u, 0.02)
    fit = (u * 0.95).astype(np.float32)  # the members' mean fit; ``u`` its refinement
    result = FitResult(u.copy(), {}, 1, 1, "", {}, {}, uncertainty=spread.copy(), fitted_image=fit.copy())
    unstabilised(result, NoiseRoute(t))
    assert np.allclose(result.image, t.inverse(u), rtol=1e-6)
    assert np.allclose(result.fitted_image, t.inverse(fit), rtol=1e-6)
    assert np.allclose(result.uncertainty, t.slope(fit) * 0.02, rtol=1e-5)  # the spread is about the fit
    assert not np.allclose(result.uncertainty, t.slope(u) * 0.02, rtol=1e-3)
    assert result.uncertainty[-1, -1, -1] > result.uncertainty[1, 0, 0] > 0  # brighter: larger spread
    assert result.settings["photon"]["method"] == "anscombe"


def test_an_ensemble_through_the_transform(clean):
    noisy = add_photon_noise(clean, 15.0, seed=4)
    config = linr.ModelConfig(width=16, depth=2)
    result = linr.restore([linr.noisy(noisy, noise="poisson", peak=15.0)], steps=10, model=config, device="cpu",
                          progress=False, ensemble=2, refine="none")
    assert result.settings["photon"]["method"] == "anscombe"
    assert result.uncertainty.shape == result.image.shape and np.all(np.isfinite(result.uncertainty))
    assert result.uncertainty.max() > 0


def test_the_command_line_says_the_route_and_reports_it(tmp_path, capsys, clean):
    noisy, out, report = tmp_path / "n.png", tmp_path / "o.png", tmp_path / "r.json"
    write_image(noisy, add_photon_noise(clean, 20.0, seed=5))
    assert main(["restore", "--noisy", str(noisy), "--noise", "poisson", "--peak", "20", "-o", str(out),
                 "--report", str(report), *TINY]) == 0
    said = capsys.readouterr().out
    assert "photon noise: restored through its Anscombe transform (20 photons at white" in said
    data = json.loads(report.read_text())
    assert data["settings"]["photon"]["method"] == "anscombe"
    assert read_image(out)[0].shape == clean.shape
    # the options a Gaussian photo takes, checked on the transformed photo as the restore fits it
    assert main(["restore", "--noisy", str(noisy), "--noise", "poisson", "--peak", "20", "--prior", "tv:auto",
                 "--refine", "wiener", "-o", str(tmp_path / "p.png"), *TINY]) == 0, capsys.readouterr().err
    assert "refined: wiener" in capsys.readouterr().out
    assert main(["restore", "--noisy", str(noisy), "--noise", "poisson", "--peak", "20", "--save-model",
                 str(tmp_path / "m.pt"), "-o", str(tmp_path / "q.png"), *TINY]) == 0
    assert "--save-model" in capsys.readouterr().err  # the note that the model is not refined
    err = run_err(capsys, ["restore", "--noisy", str(noisy), "--photon-method", "anscombe", "-o",
                           str(tmp_path / "x.png"), *TINY])
    assert "needs noise 'poisson' or 'poisson-gaussian'" in err
    (tmp_path / "low.png").write_bytes(noisy.read_bytes())  # one file is one kind of observation
    err = run_err(capsys, ["restore", "--noisy", str(noisy), "--noise", "poisson", "--peak", "20",
                           "--photon-method", "anscombe", "--lowres", str(tmp_path / "low.png"), "--factor", "1",
                           "-o", str(tmp_path / "x.png"), *TINY])
    assert "does not apply" in err
