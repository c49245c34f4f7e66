"""Which way each fit runs (the fast engine's pixel path or its whole-image path), decided by what
the operators say they can do, and the same answer from the loop and the cost estimate."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import linr
from linr.config import FitConfig
from linr.cost import plan, render_all_pixels
from linr.engine import estimate
from linr.tasks import resolve, resolve_stop
from linr.fit import fit
from linr.models import ModelConfig
from linr.operators import Blur, Compose, Downsample, Identity, Mask, gaussian_kernel
from linr.simulate import add_gaussian_noise, bernoulli_mask, lanczos_downscale
from linr.stopping import HoldOut, parse_stop

from .conftest import crop, load


def test_operators_say_whether_they_are_pixel_wise():
    shape = (6, 5)
    mask = torch.from_numpy(bernoulli_mask(shape, 0.5, seed=0).astype(np.float32))
    assert torch.equal(Identity().pixel_weights(shape), torch.ones(1, *shape))
    assert torch.equal(Mask(mask).pixel_weights(shape), mask[None])
    other = (torch.rand(shape, generator=torch.Generator().manual_seed(2)) > 0.3).float()
    both = Compose([Identity(), Mask(mask), Mask(other)]).pixel_weights(shape)
    assert torch.equal(both, (mask * other)[None])
    x = torch.rand(1, 3, *shape, dtype=torch.float64)
    assert torch.equal(Compose([Mask(mask), Mask(other)])(x), both.double() * x)  # A x = m x
    for mixing in (Downsample(2), Blur(gaussian_kernel(3, 1.0)), Compose([Identity(), Downsample(2)])):
        assert mixing.pixel_weights((6, 6)) is None
    with pytest.raises(ValueError):
        Mask(mask).pixel_weights((5, 6))


def test_render_all_pixels_rule():
    assert render_all_pixels(100, 100, whole_output_every_step=False)
    assert not render_all_pixels(95, 100, whole_output_every_step=False)  # no one needs the rest
    assert render_all_pixels(95, 100, whole_output_every_step=True)  # hold-out: one render
    assert not render_all_pixels(10, 100, whole_output_every_step=True)  # inpainting + a rule


@pytest.fixture(scope="module")
def clean():
    return crop(load("set5/butterfly.png"), 24, top=110, left=110)


def _cases(clean):
    noisy = add_gaussian_noise(clean, 25, seed=0)
    mask = bernoulli_mask(clean.shape[:2], 0.1, seed=0)
    return {
        "noisy": [linr.noisy(noisy)],
        "masked": [linr.masked(clean * mask[..., None], mask)],
        "noisy+masked": [linr.noisy(noisy), linr.masked(clean * mask[..., None], mask)],
        "lowres": [linr.lowres(lanczos_downscale(clean, 4), 4)],
        "noisy+lowres": [linr.noisy(noisy), linr.lowres(lanczos_downscale(clean, 4), 4)],
    }


# (pixel path?, rendered pixels as a fraction of the image) of each default fit; "noisy" has the
# default's total-variation prior (local terms: the pixel path, every pixel), "noisy, no prior"
# the paper's fit with automatic stopping
EXPECTED = {"noisy": (True, 1.0), "noisy, no prior": (True, 1.0), "masked": (True, "seen"),
            "noisy+masked": (True, 1.0), "lowres": (False, 1.0), "noisy+lowres": (False, 1.0)}


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_default_fits_take_the_path_their_operators_allow(clean, case):
    obs = _cases(clean)[case.removesuffix(", no prior")]
    result = linr.restore(obs, steps=3, device="cpu", progress=False,
                          model=ModelConfig(width=32, depth=3), prior="none" if "no prior" in case else None)
    engine = result.settings["engine_used"]
    automatic = any(o.kind == "noisy" for o in obs)
    # hold-out on noisy input; the pick (held-out pixels too) before the blend of a lone masked photo
    # one small noisy photo: the hold-out rule whose checkpoints SURE chooses from (linr.sure)
    held = "sure" if case.startswith("noisy") and "+" not in case else "holdout"
    assert result.settings["stop"]["name"] == ("pick" if case == "masked" else held if automatic else "fixed")
    pixel_wise, rendered = EXPECTED[case]
    assert engine["name"] == "fast" and engine["pixel_wise"] is pixel_wise
    n = clean.shape[0] * clean.shape[1]
    if rendered == "seen":
        assert engine["rendered_pixels"] == engine["trained_pixels"] < n
    else:
        assert engine["rendered_pixels"] == n
    if automatic and pixel_wise:  # the held-out pixels are rendered but not trained
        assert engine["trained_pixels"] < n


@pytest.mark.parametrize("case", ["noisy", "masked", "noisy+masked", "lowres"])
@pytest.mark.parametrize("rule", ["auto", "holdout"])
def test_the_estimate_describes_the_fit_that_runs(clean, case, rule):
    obs, config = resolve(_cases(clean)[case], device="cpu", steps=2)
    config = dataclasses.replace(config, progress=False, model=ModelConfig(width=32, depth=3))
    stop = resolve_stop(obs, stop=rule)
    est = plan(obs, config, whole_output_every_step=stop is not None)
    engine = fit(obs, config, stop=stop).settings["engine_used"]
    n = clean.shape[0] * clean.shape[1]
    rendered = engine["rendered_pixels"]
    if rendered < n and stop is not None:
        # the estimate counts the hold-out rule's 5% as trained: it errs high by that much
        assert rendered < est.chunk_pixels <= rendered / 0.95 + 1
        rendered = est.chunk_pixels
    assert est.chunk_pixels == rendered  # chunks of at most 2**17 pixels: one chunk here
    expected = estimate(clean.shape[0], clean.shape[1], steps=2, net_width=32, depth=3,
                        chunk_pixels=config.chunk_pixels, trained_pixels=rendered,
                        two_pass=rendered < n and stop is not None)
    assert est.flops_per_step == expected.flops_per_step


def test_hold_out_on_the_pixel_path_follows_the_whole_image_path(clean):
    """The same hold-out fit through the pixel path (closed-form gradient, one render) and the
    plain autograd loop: the same losses, PSNR and stop."""
    obs = _cases(clean)["noisy"]
    kw = dict(steps=12, device="cpu", progress=False, lr=1e-3, model=ModelConfig(width=32, depth=3))
    fast = fit(obs, FitConfig(**kw), reference=clean, stop=parse_stop("holdout:0.2:5"))
    plain = fit(obs, FitConfig(engine="plain", **kw), reference=clean, stop=parse_stop("holdout:0.2:5"))
    assert fast.settings["engine_used"]["pixel_wise"] and plain.settings["engine_used"]["name"] == "plain"
    assert np.allclose(fast.history["loss"], plain.history["loss"], rtol=1e-3)
    assert np.allclose(fast.history["psnr"], plain.history["psnr"], atol=2e-3)
    assert fast.stop_step == plain.stop_step and np.abs(fast.image - plain.image).max() < 2e-4
    assert isinstance(parse_stop("holdout"), HoldOut)
