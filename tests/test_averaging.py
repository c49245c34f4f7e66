"""Iterate averages against an independent NumPy computation (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from linr.averaging import ExponentialAverage, WindowAverage, parse_average


def _iterates(count: int = 23) -> np.ndarray:
    return np.random.default_rng(5).normal(size=(count, 1, 3, 4, 5))


def _ema_numpy(xs: np.ndarray, decay: float) -> np.ndarray:
    """a_t as an explicit weighted sum: decay^t x_0 + sum_{s>=1} (1 - decay) decay^(t-s) x_s."""
    out = []
    for t in range(len(xs)):
        weights = np.array([decay ** t] + [(1 - decay) * decay ** (t - s) for s in range(1, t + 1)])
        out.append(np.tensordot(weights, xs[: t + 1], axes=1))
    return np.array(out)


@pytest.mark.parametrize("decay", [0.5, 0.9, 0.99])
def test_exponential_average_matches_weighted_sum(decay):
    xs = _iterates()
    average = ExponentialAverage(decay)
    got = [average.update(torch.from_numpy(x).float()).clone().double().numpy() for x in xs]
    np.testing.assert_allclose(np.array(got), _ema_numpy(xs, decay), rtol=0, atol=1e-5)


@pytest.mark.parametrize("window", [2, 5, 7])
def test_window_average_is_the_mean_of_the_last_iterates(window):
    xs = _iterates(40)
    average = WindowAverage(window)
    for t, x in enumerate(xs):
        got = average.update(torch.from_numpy(x).float()).double().numpy()
        np.testing.assert_allclose(got, xs[max(0, t - window + 1) : t + 1].mean(axis=0), atol=1e-5)


def test_averages_do_not_alias_their_input_and_reset():
    x = torch.ones(1, 1, 2, 2)
    for average in (ExponentialAverage(0.5), WindowAverage(3)):
        average.update(x)
        x.mul_(0)  # a loop may reuse its output buffer
        assert float(average.update(torch.full((1, 1, 2, 2), 3.0)).mean()) == pytest.approx(2.0)
        average.reset()
        assert float(average.update(torch.full((1, 1, 2, 2), 5.0)).mean()) == pytest.approx(5.0)
        x = torch.ones(1, 1, 2, 2)


def test_parse_average():
    assert isinstance(parse_average("ema0.95"), ExponentialAverage)
    assert parse_average("ema0.95").spec == "ema0.95"
    assert parse_average("window10").window == 10 and parse_average("window10").spec == "window10"
    for bad in ("ema1", "ema0", "emax", "window1", "window2.5", "median5", ""):
        with pytest.raises(ValueError):
            parse_average(bad)


def test_a_fit_too_short_for_the_window_returns_its_raw_iterate():
    """40 steps on a 32-px crop: the window still holds the first, blurry iterates and its
    held-out loss is far above the raw iterate's, so the guard returns the raw one (the average
    would be 5 dB worse here, below the noisy input); with a longer fit the average comes back."""
    from skimage import data

    import linr
    from linr.metrics import psnr
    from linr.simulate import add_gaussian_noise

    clean = data.astronaut()[100:132, 180:212].astype(np.float32) / 255
    noisy = np.clip(add_gaussian_noise(clean, 25, seed=0), 0, 1).astype(np.float32)
    kw = dict(preset="fast", device="cpu", progress=False)
    short = linr.restore(linr.noisy(noisy), steps=40, **kw)
    assert short.settings["stop"]["average"] == "window40" and short.settings["stop"]["returned"] == "raw"
    assert psnr(clean, np.clip(short.image, 0, 1)) > psnr(clean, noisy) + 2
    forced = linr.restore(linr.noisy(noisy), steps=40, stop="holdout:0.05:40", **kw)
    assert np.array_equal(short.image, forced.image)
    longer = linr.restore(linr.noisy(noisy), steps=300, **kw)
    assert longer.settings["stop"]["returned"] == "average"
