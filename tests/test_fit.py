"""End-to-end fits on small crops: each task beats the naive answer. Paper network, few steps."""

from __future__ import annotations

import numpy as np
import pytest

import linr
from linr import metrics
from linr.errors import DivergenceError, InputError
from linr.fit import FitConfig, Observation, fit
from linr.operators import Identity, gaussian_kernel
from linr.simulate import add_gaussian_noise, bernoulli_mask, blur_image, lanczos_downscale, pil_resize
from linr.stopping import StopRule

from .conftest import crop, load

S = 48  # crop size: about 0.04 s per step of the paper's SIREN on 2 cores


@pytest.fixture(scope="module")
def clean():
    return crop(load("set5/butterfly.png"), S, top=100, left=100)


def test_denoise_beats_noisy_input(clean):
    y = add_gaussian_noise(clean, 25, seed=0)
    r = linr.restore([linr.noisy(y)], steps=60, stop="fixed", device="cpu", reference=clean,
                     progress=False, refine="none")  # the paper's network (a refined fit is a narrow pilot)
    assert r.image.shape == clean.shape and r.steps_run == 60 and r.stop_reason == "fixed steps"
    assert len(r.history["loss"]) == 60 and len(r.history["psnr"]) == 60
    gain = metrics.psnr(clean, np.clip(r.image, 0, 1)) - metrics.psnr(clean, y)
    assert gain > 2.0, gain
    assert r.settings["steps"] == 60 and r.settings["model"]["width"] == 256


def test_sr_beats_bicubic(clean):
    lr = lanczos_downscale(clean, 4)
    r = linr.restore([linr.lowres(lr, 4)], steps=80, device="cpu", progress=False)
    bicubic = pil_resize(lr, clean.shape[:2], 3)
    nearest = pil_resize(lr, clean.shape[:2], 0)
    ours = metrics.psnr(clean, np.clip(r.image, 0, 1))
    assert ours > metrics.psnr(clean, bicubic) > metrics.psnr(clean, nearest)


def test_inpaint_beats_zero_fill(clean):
    mask = bernoulli_mask(clean.shape[:2], 0.3, seed=0)
    y = clean * mask[..., None]
    r = linr.restore([linr.masked(y, mask)], steps=100, device="cpu", progress=False)
    assert metrics.psnr(clean, np.clip(r.image, 0, 1)) > metrics.psnr(clean, y) + 8


def test_deblur_beats_blurred_input(clean):
    k = gaussian_kernel(9, 1.6)
    y = blur_image(clean, k, seed=0)
    # blur_image blurs circularly, as the paper did: the paper preset's boundary
    r = linr.restore([linr.blurred(y, k)], preset="paper", steps=100, device="cpu", progress=False)
    assert r.settings["observations"][0]["operator"]["boundary"] == "circular"
    assert metrics.psnr(clean, np.clip(r.image, 0, 1)) > metrics.psnr(clean, y) + 3


def test_joint_beats_each_alone(clean):
    noisy = add_gaussian_noise(clean, 25, seed=0)
    lr = lanczos_downscale(clean, 4)
    kw = dict(steps=60, stop="fixed", device="cpu", progress=False)  # the same 60 steps each
    joint = linr.restore([linr.noisy(noisy), linr.lowres(lr, 4)], refine="none", **kw)
    assert [o["weight"] for o in joint.settings["observations"]] == [0.1, 1.0]  # paper preset
    # the same fit of the noisy photo alone (the defaults would add a prior and refine it after
    # the fit)
    alone = linr.restore([linr.noisy(noisy)], prior="none", refine="none", **kw)
    p_joint = metrics.psnr(clean, np.clip(joint.image, 0, 1))
    assert p_joint > metrics.psnr(clean, np.clip(alone.image, 0, 1))
    assert p_joint > metrics.psnr(clean, pil_resize(lr, clean.shape[:2], 3))
    # and refined as the noisy photo alone is by default, the joint fit still beats that default
    joint_refined = linr.restore([linr.noisy(noisy), linr.lowres(lr, 4)], refine="grouped", **kw)
    default_alone = linr.restore([linr.noisy(noisy)], **kw)
    assert metrics.psnr(clean, np.clip(joint_refined.image, 0, 1)) > metrics.psnr(clean, np.clip(default_alone.image, 0, 1))
    # the joint default: that refinement, then the low-res view reproduced exactly: above both
    joint_default = linr.restore([linr.noisy(noisy), linr.lowres(lr, 4)], **kw)
    assert joint_default.settings["refine"]["name"] == "grouped-project"
    p_default = metrics.psnr(clean, np.clip(joint_default.image, 0, 1))
    assert p_default > p_joint and p_default > metrics.psnr(clean, np.clip(joint_refined.image, 0, 1))


def test_same_seed_same_result_and_grey_images(clean):
    grey = clean.mean(axis=2)
    cfg = FitConfig(steps=5, device="cpu", progress=False)
    a = fit([Observation(grey, Identity())], cfg)
    b = fit([Observation(grey, Identity())], cfg)
    assert a.image.shape == (S, S, 1) and np.array_equal(a.image, b.image)
    c = fit([Observation(grey, Identity())], FitConfig(steps=5, seed=1, device="cpu", progress=False))
    assert not np.array_equal(a.image, c.image)


def test_paper_preset_steps():
    from linr.tasks import resolve

    obs, cfg = resolve([linr.noisy(np.zeros((8, 8, 3)))], refine="none")  # not a pilot
    assert cfg.steps == 500 and cfg.lr == 1e-4 and obs[0].weight == 1.0
    _, cfg = resolve([linr.blurred(np.zeros((32, 32, 3)), "gaussian:25:1.6")], preset="paper")
    assert cfg.steps == 4000
    _, cfg = resolve([linr.blurred(np.zeros((32, 32, 3)), "gaussian:25:1.6")])  # the defaults: free edges
    assert cfg.steps == 2000 and cfg.schedule == "cosine"


def test_divergence_is_reported(clean):
    with pytest.raises(DivergenceError, match="diverged"):
        fit([Observation(clean, Identity())], FitConfig(steps=30, lr=1e30, device="cpu", check_every=10))


def test_input_errors(clean):
    with pytest.raises(InputError, match="disagree"):
        fit([linr.noisy(clean), linr.lowres(clean[:16, :16], 4)], FitConfig(steps=1))
    with pytest.raises(InputError, match="noisy -> 48x48, noisy -> 16x16"):  # same kind, two sizes
        fit([linr.noisy(clean), linr.noisy(clean[:16, :16])], FitConfig(steps=1))
    with pytest.raises(InputError, match="lowres -> 192x192"):
        linr.restore([linr.lowres(clean, 4), linr.noisy(clean[:10, :10])], steps=1)
    with pytest.raises(InputError, match="non-finite"):
        linr.noisy(np.full((4, 4, 3), np.nan))
    with pytest.raises(InputError, match=r"mask is 3x2 but the image is 48x48 \(width x height\)"):
        linr.masked(clean, np.ones((2, 3)))
    with pytest.raises(InputError, match=r"mask is of shape \(2, 3, 2, 1\) but the image is 48x48"):
        linr.masked(clean, np.ones((2, 3, 2, 1)))
    with pytest.raises(InputError, match="reference"):
        fit([linr.noisy(clean)], FitConfig(steps=1), reference=clean[:8])
    with pytest.raises(InputError, match="preset"):
        linr.restore([linr.noisy(clean)], preset="nope")


class _StopAt(StopRule):
    name = "stop-at"

    def __init__(self, at):
        self.at = at
        self.kept = None

    def reset(self):
        self.kept = None

    def observe(self, step, output, loss):
        if step == 2:
            self.kept = output.clone()
        return "enough" if step + 1 == self.at else None

    def best(self):
        return self.kept, 3


def test_stop_rule_ends_fit_and_returns_best(clean):
    r = fit([linr.noisy(clean)], FitConfig(steps=50, device="cpu", progress=False), stop=_StopAt(6))
    assert r.steps_run == 6 and r.stop_reason == "enough" and r.stop_step == 3
