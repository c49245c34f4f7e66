"""Data terms: closed-form slopes against autograd (float64), the paper's squared error exactly,
and a non-Gaussian term (Poisson) through the fit, the fast engine's pixel path and hold-out."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import linr
from linr.config import FitConfig
from linr.fidelity import (DATA_TERMS, ClippedMeanSquaredError, Poisson, PoissonGaussian, SquaredError,
                           SquaredErrorCensoredAtWhite, data_term)
from linr.fit import fit
from linr.models import ModelConfig
from linr.stopping import parse_stop


@pytest.mark.parametrize("term", [SquaredError(), Poisson(peak=30.0), Poisson(peak=1.0, floor=0.05),
                                  PoissonGaussian(peak=30.0, read_sigma=0.02),
                                  PoissonGaussian(peak=2.0, read_sigma=0.01, floor=0.05),
                                  Poisson(peak=10.0, saturated=True),
                                  PoissonGaussian(peak=30.0, read_sigma=0.02, saturated=True),
                                  SquaredErrorCensoredAtWhite()])
def test_slope_matches_autograd_float64(term):
    gen = torch.Generator().manual_seed(0)
    pred = (torch.rand(200, dtype=torch.float64, generator=gen) * 2.2 - 1.1).requires_grad_(True)
    target = torch.rand(200, dtype=torch.float64, generator=gen) * 2 - 1
    target[::4] = 1.0  # white: censored where the term is saturated
    (auto,) = torch.autograd.grad(term.elementwise(pred, target).sum(), pred)
    assert torch.allclose(term.slope(pred.detach(), target), auto, rtol=1e-12, atol=1e-12)
    assert torch.allclose(term.value(pred, target), term.elementwise(pred, target).mean())


def test_squared_error_censored_at_white_is_one_sided_there_only():
    """A pixel at white says the rendering is at least white: no loss above it, the squared error
    below; any other pixel the squared error both ways (float64, by hand)."""
    term = SquaredErrorCensoredAtWhite()
    pred = torch.tensor([1.3, 0.8, 0.5, 0.2, -0.4], dtype=torch.float64)
    target = torch.tensor([1.0, 1.0, 0.1, 0.6, -0.4], dtype=torch.float64)
    expected = torch.tensor([0.0, 0.04, 0.16, 0.16, 0.0], dtype=torch.float64)
    assert torch.allclose(term.elementwise(pred, target), expected, atol=1e-12)
    assert torch.allclose(term.slope(pred, target), torch.tensor([0.0, -0.4, 0.8, -0.8, 0.0], dtype=torch.float64))
    assert isinstance(term, SquaredError) and term.expected(0.1) == SquaredError().expected(0.1)
    assert data_term("squared_error_censored_at_white") == term


def test_squared_error_is_the_papers_term_and_its_expected_value():
    pred, target = torch.tensor([0.5, -0.2]), torch.tensor([0.1, 0.3])
    assert torch.equal(SquaredError().value(pred, target), torch.mean((pred - target) ** 2))
    rng = np.random.default_rng(0)
    sigma = 25 / 255
    noise = rng.normal(0, sigma, 200_000) * 2  # [0, 1] noise on the fit's [-1, 1] scale
    assert SquaredError().expected(sigma) == pytest.approx(np.mean(noise**2), rel=0.02)


def test_poisson_is_minimised_at_the_rate():
    k = torch.full((1,), 0.2, dtype=torch.float64)  # target on [-1, 1]: 0.6 of the peak
    grid = torch.linspace(-0.9, 0.9, 1801, dtype=torch.float64)
    values = Poisson(peak=50.0).elementwise(grid, k.expand_as(grid))
    assert grid[int(values.argmin())].item() == pytest.approx(0.2, abs=1e-3)
    assert set(DATA_TERMS) >= {"squared_error", "poisson"}
    assert data_term("poisson", peak=5.0) == Poisson(peak=5.0)
    with pytest.raises(ValueError, match="unknown data term"):
        data_term("huber")


def test_poisson_fits_on_the_engine_and_the_plain_loop_alike():
    rng = np.random.default_rng(0)
    clean = rng.random((12, 12, 3)).astype(np.float32) * 0.8 + 0.1
    peak = 20.0
    counts = rng.poisson(clean * peak) / peak
    obs = [dataclasses.replace(linr.noisy(np.clip(counts, 0, 1)), fidelity=Poisson(peak=peak))]
    kw = dict(steps=8, device="cpu", progress=False, lr=1e-3, model=ModelConfig(width=32, depth=3))
    for stop in (None, parse_stop("holdout:0.2:40")):  # the pixel path with and without hold-out
        fast = fit(obs, FitConfig(**kw), reference=clean, stop=stop)
        plain = fit(obs, FitConfig(engine="plain", **kw), reference=clean,
                    stop=None if stop is None else parse_stop("holdout:0.2:40"))
        assert fast.settings["engine_used"]["pixel_wise"]
        assert np.allclose(fast.history["loss"], plain.history["loss"], rtol=1e-3)
        assert np.abs(fast.image - plain.image).max() < 2e-4


def test_a_white_pixel_of_a_saturated_image_is_censored_at_the_peak():
    """At white, a saturated term's loss is -log P(K >= peak) of K ~ Poisson(lam) (scipy's
    survival function, float64); elsewhere, and without saturation, it is the plain likelihood."""
    from scipy.stats import poisson

    peak = 10.0
    lam = np.array([2.0, 7.5, 10.0, 14.0, 40.0])
    pred = torch.from_numpy(2 * lam / peak - 1)
    white = torch.ones_like(pred)
    censored = Poisson(peak=peak, saturated=True).elementwise(pred, white).numpy()
    assert np.allclose(censored, -np.log(poisson.sf(peak - 1, lam)), rtol=1e-10)
    assert np.all(np.diff(censored) < 0)  # brighter renderings are ever more likely at white
    plain = Poisson(peak=peak).elementwise(pred, white).numpy()
    assert np.allclose(plain, lam - peak * np.log(lam))
    grey = torch.full_like(pred, 0.2)
    assert torch.equal(Poisson(peak=peak, saturated=True).elementwise(pred, grey),
                       Poisson(peak=peak).elementwise(pred, grey))


def test_photon_terms_know_a_clipped_image_and_the_hold_out_measures_squared_error():
    from linr.kinds import noise_term

    rng = np.random.default_rng(1)
    counts = rng.poisson(rng.random((40, 40, 1)) * 30) / 30.0
    clipped, _ = noise_term(np.clip(counts, 0, 1), "poisson", peak=30.0)
    kept, _ = noise_term(counts, "poisson", peak=30.0)  # counts above white kept (float input)
    assert clipped.saturated and not kept.saturated
    assert kept.holdout_term() == SquaredError()
    assert clipped.holdout_term() == ClippedMeanSquaredError(clipped)
    assert isinstance(dataclasses.replace(clipped, stop_on="likelihood").holdout_term(), Poisson)
    rule = parse_stop("holdout:0.2:40")
    rule.prepare([linr.noisy(np.clip(counts, 0, 1).astype(np.float32), noise=clipped)])
    assert rule._held[0][4] == ClippedMeanSquaredError(clipped)


@pytest.mark.parametrize("peak", [10.0, 7.3])
def test_the_expected_clipped_observation_is_the_clipped_poisson_mean(peak):
    """E[min(K / peak, 1)] for K ~ Poisson(peak x), against scipy's Poisson masses summed
    directly; without saturation it is the rendering itself."""
    from scipy.stats import poisson

    x = np.array([0.0, 0.05, 0.5, 0.9, 1.0, 1.3])
    pred = torch.from_numpy(x * 2 - 1)
    got = (Poisson(peak=peak, saturated=True).expected_observation(pred).numpy() + 1) / 2
    k = np.arange(400)
    want = [np.sum(np.minimum(k / peak, 1) * poisson.pmf(k, max(peak * v, 1e-3))) for v in x]
    assert np.allclose(got, want, rtol=1e-10, atol=1e-12)
    assert np.allclose(Poisson(peak=peak).expected_observation(pred).numpy(), pred.numpy(), atol=1e-3)  # the floor
    shifted = PoissonGaussian(peak=peak, read_sigma=0.03, saturated=True).expected_observation(pred)
    assert np.all(np.diff(shifted.numpy()) > 0) and float(shifted.max()) < 1


def test_the_clipped_hold_out_measure_is_smallest_at_the_truth_near_white():
    """Held-out pixels of a bright area clipped at white: plain squared error is smallest at
    the clipped mean, below the truth (what stopped Poisson fits early); the clipped-mean
    measure at the truth."""
    rng = np.random.default_rng(0)
    peak, x = 10.0, 0.9
    y = torch.from_numpy(np.minimum(rng.poisson(peak * x, 200_000) / peak, 1.0) * 2 - 1)
    term = Poisson(peak=peak, saturated=True)
    grid = np.linspace(0.7, 1.1, 81)
    plain = [float(SquaredError().value(torch.full_like(y, v * 2 - 1), y)) for v in grid]
    clipped = [float(term.holdout_term().value(torch.full_like(y, v * 2 - 1), y)) for v in grid]
    assert abs(grid[int(np.argmin(clipped))] - x) <= 0.01
    assert grid[int(np.argmin(plain))] < x - 0.05
