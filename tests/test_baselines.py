"""Baselines: DIP network shapes and training, classical references beat the corrupted input."""

from __future__ import annotations

import dataclasses

import sys

import numpy as np
import pytest
import torch

import linr
from linr import simulate
from linr.baselines import BaselineUnavailable, classical
from linr.baselines.dip import DIPConfig, SkipNet, dip_restore
from linr.metrics import psnr
from linr.operators import gaussian_kernel

from .conftest import crop, load


def _count(module: torch.nn.Module, kind: type, **attrs: object) -> int:
    return sum(isinstance(m, kind) and all(getattr(m, k) == v for k, v in attrs.items())
               for m in module.modules())


@pytest.mark.parametrize("size", [(32, 32), (37, 45)])
def test_skipnet_shapes_and_range(size: tuple[int, int]) -> None:
    net = SkipNet(input_depth=8, out_channels=3, channels=16, skip_channels=4, levels=3)
    z = torch.rand(1, 8, *size)
    with torch.no_grad():
        out = net(z)
    assert out.shape == (1, 3, *size)
    assert float(out.min()) > 0.0 and float(out.max()) < 1.0  # sigmoid head


def test_skipnet_structure_matches_the_paper() -> None:
    """5 stride-2 levels of 128 channels and 4-channel 1x1 skips, as DIP's paper describes."""
    net = SkipNet()
    assert _count(net, torch.nn.Conv2d, stride=(2, 2)) == 5
    assert _count(net, torch.nn.Conv2d, out_channels=4, kernel_size=(1, 1)) == 5
    assert _count(net, torch.nn.ReflectionPad2d) > 0
    # Parameters from the architecture, counted independently: per level a 1x1 skip conv + BN,
    # two 3x3 down convs + BNs, a BN on the concatenation, a 3x3 and a 1x1 up conv + BNs.
    def level(cin: int) -> int:
        skip = cin * 4 + 4 + 2 * 4
        down = (cin * 9 * 128 + 128) + 2 * 128 + (128 * 9 * 128 + 128) + 2 * 128
        up = 2 * 132 + (132 * 9 * 128 + 128) + 2 * 128 + (128 * 128 + 128) + 2 * 128
        return skip + down + up

    expected = level(32) + 4 * level(128) + (128 * 3 + 3)
    assert sum(p.numel() for p in net.parameters()) == expected


def test_dip_steps_reduce_the_loss_and_are_seeded() -> None:
    rng = np.random.default_rng(0)
    target = np.clip(rng.random((1, 1, 3)) + 0.1 * rng.standard_normal((32, 32, 3)), 0, 1)
    config = DIPConfig(steps=25, channels=16, levels=3, reg_noise_std=0.0, average=None,
                       device="cpu", seed=3)
    result = dip_restore([linr.noisy(target)], config, reference=target)
    loss = result.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert len(result.history["psnr"]) == 25 and result.steps_run == 25
    assert result.image.shape == (32, 32, 3)
    again = dip_restore([linr.noisy(target)], config)
    np.testing.assert_array_equal(again.image, result.image)


def test_dip_perturbs_its_input_from_its_seed_on_the_cpu() -> None:
    """On the CPU one generator draws the code and every perturbation (the results of the sessions
    before the fortieth unchanged): a seed repeats its image, another seed does not."""
    rng = np.random.default_rng(0)
    target = np.clip(rng.random((1, 1, 3)) + 0.1 * rng.standard_normal((32, 32, 3)), 0, 1)
    config = DIPConfig(steps=10, channels=16, levels=3, reg_noise_std=1.0 / 30.0, device="cpu", seed=3)
    first = dip_restore([linr.noisy(target)], config)
    assert first.settings["perturbations_drawn_on"] == "cpu"
    np.testing.assert_array_equal(dip_restore([linr.noisy(target)], config).image, first.image)
    other = dip_restore([linr.noisy(target)], dataclasses.replace(config, seed=4))
    assert np.abs(other.image - first.image).mean() > 1e-3


def test_dip_joint_observations_render_on_the_clean_grid() -> None:
    rng = np.random.default_rng(1)
    clean = rng.random((32, 32, 3)).astype(np.float32)
    mask = rng.random((32, 32)) < 0.5
    obs = [linr.lowres(clean[::4, ::4], 4), linr.masked(clean * mask[..., None], mask)]
    config = DIPConfig(steps=2, channels=8, levels=2, device="cpu", average=0.9)
    result = dip_restore(obs, config)
    assert result.image.shape == (32, 32, 3)
    with pytest.raises(linr.InputError):
        dip_restore([linr.noisy(clean), linr.noisy(clean[:16])], config)


@pytest.fixture(scope="module")
def peppers() -> np.ndarray:
    return crop(load("set9/peppers.png"), 48)


def test_denoisers_beat_the_noisy_input(peppers: np.ndarray) -> None:
    noisy = simulate.add_gaussian_noise(peppers, 25, seed=5)
    base = psnr(peppers, noisy)
    for fn in (classical.tv_denoise, classical.nlm_denoise):
        assert psnr(peppers, fn(noisy, sigma=25).image) > base + 3.0, fn.__name__


def test_bm3d_beats_the_noisy_input_or_says_why_not(peppers: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    noisy = simulate.add_gaussian_noise(peppers, 25, seed=5)
    try:
        out = classical.bm3d_denoise(noisy, sigma=25)
    except BaselineUnavailable as exc:
        assert "bm3d" in str(exc)
    else:
        assert psnr(peppers, out.image) > psnr(peppers, noisy) + 3.0
    monkeypatch.setitem(sys.modules, "bm3d", None)  # import now fails, as when not installed
    with pytest.raises(BaselineUnavailable, match="not installed"):
        classical.bm3d_denoise(noisy, sigma=25)


def test_biharmonic_beats_mean_filling(peppers: np.ndarray) -> None:
    mask = simulate.bernoulli_mask(peppers.shape[:2], 0.1, seed=2)
    observed = peppers * mask[..., None]
    filled = np.where(mask[..., None], peppers, peppers[mask].mean(axis=0))
    out = classical.biharmonic_inpaint(observed, mask).image
    assert psnr(peppers, out) > psnr(peppers, filled) + 2.0
    np.testing.assert_allclose(out[mask], peppers[mask], atol=1e-5)  # observed pixels are kept


def test_deconvolution_beats_the_blurred_input(peppers: np.ndarray) -> None:
    kernel = gaussian_kernel(25, 1.6)
    blurred = simulate.blur_image(peppers, kernel, seed=4)
    base = psnr(peppers, blurred)
    assert psnr(peppers, classical.wiener_deblur(blurred, kernel).image) > base + 1.0
    assert psnr(peppers, classical.richardson_lucy_deblur(blurred, kernel).image) > base + 0.5


def test_upscaling_sizes_and_bicubic_beats_nearest() -> None:
    hr = crop(load("set5/butterfly.png"), 64)
    lr = simulate.lanczos_downscale(hr, 4)
    near = classical.upscale(lr, 4, method="nearest").image
    cubic = classical.upscale(lr, 4, method="bicubic").image
    assert near.shape == cubic.shape == hr.shape
    np.testing.assert_allclose(near[::4, ::4], lr, atol=1 / 255)  # nearest copies pixels
    assert psnr(hr, cubic) > psnr(hr, near)
    with pytest.raises(ValueError):
        classical.upscale(lr, 4, method="lanczos")
