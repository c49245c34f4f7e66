"""On a CUDA GPU (skipped elsewhere, with the reason): the engine there gives the CPU's results,
the reduced precisions track float32, and stacked fits equal separate ones. Run by
benchmarks/gpu_run.sh on a lent GPU."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import linr
from linr.config import FitConfig
from linr.fit import fit, fit_many
from linr.models import ModelConfig
from linr.simulate import add_gaussian_noise, bernoulli_mask, lanczos_downscale

from .conftest import crop, load

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


@pytest.fixture(scope="module")
def clean():
    return crop(load("set5/butterfly.png"), 32, top=100, left=100)


def _cases(clean):
    mask = bernoulli_mask(clean.shape[:2], 0.2, seed=0)
    return {"noisy": [linr.noisy(add_gaussian_noise(clean, 25, seed=0))],
            "lowres": [linr.lowres(lanczos_downscale(clean, 4), 4)],
            "masked": [linr.masked(clean * mask[..., None], mask)]}


@pytest.mark.parametrize("task", ["noisy", "lowres", "masked"])
@pytest.mark.parametrize("model", ["siren", "gauss"])
def test_cuda_engine_matches_the_cpu(clean, task, model):
    obs = _cases(clean)[task]
    kw = dict(steps=20, progress=False, model=ModelConfig(name=model, width=64, depth=4))
    cpu = fit(obs, FitConfig(device="cpu", **kw), reference=clean)
    torch.backends.cuda.matmul.allow_tf32 = False
    gpu = fit(obs, FitConfig(device="cuda", **kw), reference=clean)
    assert gpu.settings["engine_used"]["name"] == "fast" and gpu.settings["device"].startswith("cuda")
    assert np.abs(gpu.image - cpu.image).max() < 1e-3
    assert abs(gpu.history["psnr"][-1] - cpu.history["psnr"][-1]) < 0.02


@pytest.mark.parametrize("precision", ["tf32", "bf16"])
def test_reduced_precision_tracks_float32_on_cuda(clean, precision):
    obs = _cases(clean)["lowres"]
    kw = dict(steps=40, lr=3e-4, device="cuda", progress=False, model=ModelConfig(width=64, depth=4))
    exact = fit(obs, FitConfig(**kw), reference=clean)
    reduced = fit(obs, FitConfig(precision=precision, **kw), reference=clean)
    assert reduced.settings["engine_used"]["precision"] == precision
    assert abs(reduced.history["psnr"][-1] - exact.history["psnr"][-1]) < 0.3


def test_stacked_fits_equal_separate_ones_on_cuda(clean):
    scenes = [[linr.noisy(add_gaussian_noise(clean, 25, seed=s))] for s in range(4)]
    config = FitConfig(steps=15, device="cuda", progress=False, model=ModelConfig(width=64, depth=4))
    stacked = fit_many(scenes, config)
    for obs, together in zip(scenes, stacked):
        alone = fit(obs, config)
        assert np.abs(alone.image - together.image).max() < 1e-3


def test_the_default_chunk_takes_a_stacks_step_at_once_on_cuda():
    big = crop(load("set5/butterfly.png"), 192, top=32, left=32)
    scenes = [[linr.noisy(add_gaussian_noise(big, 25, seed=s))] for s in range(4)]  # 4 x 36864 px > 2**17
    config = FitConfig(steps=5, device="cuda", progress=False, model=ModelConfig(width=64, depth=4))
    grown = fit_many(scenes, config)
    assert grown[0].settings["engine_used"]["chunk_pixels"] >= 4 * 192 * 192  # one chunk per step
    chunked = fit_many(scenes, dataclasses.replace(config, chunk_pixels=2**14))  # several chunks a step
    assert chunked[0].settings["engine_used"]["chunk_pixels"] == 2**14
    for a, b in zip(grown, chunked):
        assert np.abs(a.image - b.image).max() < 1e-3


def test_dip_on_cuda_is_seeded_and_tracks_the_cpu(clean, monkeypatch):
    """DIP draws its input's perturbations on the card (a generator there, seeded): two runs with
    one seed agree far more closely than runs with two seeds (not bit for bit: the upsampling's
    backward adds with atomics on CUDA), and the fit reaches what the CPU's (its own stream) reaches."""
    from linr.baselines.dip import DIPConfig, dip_restore
    obs = _cases(clean)["noisy"]
    cfg = dict(steps=60, channels=16, skip_channels=4, levels=3, reg_noise_std=1.0 / 30.0)
    drawn, randn = [], torch.randn

    def spy(*args, **kwargs):  # where each perturbation is drawn, and by which generator
        drawn.append((str(kwargs.get("device")), kwargs["generator"].device.type, kwargs["generator"].initial_seed()))
        return randn(*args, **kwargs)
    monkeypatch.setattr(torch, "randn", spy)
    first = dip_restore(obs, DIPConfig(device="cuda", **cfg), reference=clean)
    assert drawn == [("cuda", "cuda", 1)] * 60 and first.settings["perturbations_drawn_on"] == "cuda"
    monkeypatch.setattr(torch, "randn", randn)
    second = dip_restore(obs, DIPConfig(device="cuda", **cfg), reference=clean)
    other = dip_restore(obs, DIPConfig(device="cuda", seed=1, **cfg), reference=clean)
    cpu = dip_restore(obs, DIPConfig(device="cpu", **cfg), reference=clean)
    same = np.abs(first.image - second.image).mean()
    assert same < 0.25 * np.abs(first.image - other.image).mean()
    assert abs(first.history["psnr"][-1] - cpu.history["psnr"][-1]) < 1.5
