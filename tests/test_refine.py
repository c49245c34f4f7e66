"""Refinement after the fit (linr.refine): the Wiener filter against a direct per-patch float64
reference, its limits, the default and its one-line errors through restore, the CLI and batch."""
import json
import re

import numpy as np
import pytest
from scipy.fft import dctn, idctn

import linr
from linr.errors import InputError
from linr.models import ModelConfig
from linr.refine import GroupedWiener, PilotWiener, refine_image, refine_input
from linr.tasks import DEFAULT_DENOISE_REFINE

from .conftest import lowres_restore_and_batch, run_err, tiny_noisy_restore

SMALL = dict(steps=3, device="cpu", progress=False, model=ModelConfig(width=16, depth=2))

OPPONENT = np.array([[1, 1, 1], [np.sqrt(1.5), 0, -np.sqrt(1.5)], [np.sqrt(0.5), -np.sqrt(2), np.sqrt(0.5)]]) / np.sqrt(3)


def direct_wiener(noisy, pilot, sigma, patch, stride, tau):
    """One patch at a time with scipy's DCT: the filter as the module docstring states it."""
    h, w, c = noisy.shape
    if c == 3:
        noisy, pilot = noisy @ OPPONENT.T, pilot @ OPPONENT.T
    ys = sorted(set(range(0, h - patch + 1, stride)) | {h - patch})
    xs = sorted(set(range(0, w - patch + 1, stride)) | {w - patch})
    num, den = np.zeros_like(noisy), np.zeros_like(noisy)
    for ch in range(c):
        for y in ys:
            for x in xs:
                coef = dctn(noisy[y:y + patch, x:x + patch, ch], norm="ortho")
                power = dctn(pilot[y:y + patch, x:x + patch, ch], norm="ortho") ** 2
                gain = power / (power + tau * sigma ** 2)
                gain[0, 0] = 1.0  # the patch mean is kept
                weight = 1 / np.sum(gain ** 2)
                num[y:y + patch, x:x + patch, ch] += weight * idctn(gain * coef, norm="ortho")
                den[y:y + patch, x:x + patch, ch] += weight
    out = num / den
    return out @ OPPONENT if c == 3 else out


def psnr(a, b):
    return 10 * np.log10(1 / np.mean((a - b) ** 2))


@pytest.mark.parametrize("shape, patch, tau, rows", [
    ((21, 26, 3), 8, 0.7, None), ((21, 26, 3), 8, 1.0, 2), ((17, 12, 1), 4, 1.0, 1), ((9, 30, 2), 8, 1.5, 3),
    ((8, 8, 3), 8, 0.7, None)])
def test_the_filter_is_the_per_patch_wiener_of_the_docstring(shape, patch, tau, rows):
    rng = np.random.default_rng(0)
    clean = rng.random(shape)
    noisy = clean + rng.normal(0, 0.1, shape)
    pilot = clean + rng.normal(0, 0.03, shape)
    got = PilotWiener(patch=patch, tau=tau, rows_per_pass=rows)(noisy, pilot, 0.1)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, direct_wiener(noisy, pilot, 0.1, patch, 1, tau), atol=2e-6)


def test_the_filter_gives_the_same_bits_whatever_the_passes_and_memory_layout():
    rng = np.random.default_rng(7)
    noisy, pilot = rng.random((37, 29, 3)), rng.random((37, 29, 3))
    first = PilotWiener()(noisy, pilot, 0.1)
    shifted = np.empty(noisy.size + 1)[1:].reshape(noisy.shape)  # another alignment
    shifted[...] = noisy
    for rows in (1, 5, None):
        assert np.array_equal(PilotWiener(rows_per_pass=rows)(shifted, pilot, 0.1), first)
    assert np.array_equal(PilotWiener()(noisy.astype(np.float32).astype(np.float64), pilot, 0.1),
                          PilotWiener()(noisy.astype(np.float32), pilot, 0.1))


def smooth_scene(side, seed):
    """A smooth colour scene of ``side`` px and it with noise of std 0.1, and the generator."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    clean = np.stack([0.5 + 0.3 * np.sin(6 * xx + 3 * yy), 0.4 + 0.2 * xx, 0.6 - 0.3 * yy * xx], -1)
    return clean, clean + rng.normal(0, 0.1, clean.shape), rng


def test_without_noise_the_photo_comes_back_and_a_good_pilot_removes_noise():
    clean, noisy, rng = smooth_scene(40, 1)
    np.testing.assert_allclose(PilotWiener()(noisy, clean, 0.0), noisy, atol=1e-6)
    refined = PilotWiener()(noisy, clean, 0.1)
    assert psnr(refined, clean) > psnr(noisy, clean) + 8
    dim = np.full((64, 64, 3), 2.6 / 255)  # a dim flat area at sigma 25 keeps its level
    refined = PilotWiener()(dim + rng.normal(0, 25 / 255, dim.shape), dim, 25 / 255)
    assert abs(refined.mean() * 255 - 2.6) < 0.3, refined.mean() * 255
    tiny = rng.random((5, 7, 3))  # smaller than a patch: the pilot as it is
    np.testing.assert_allclose(PilotWiener()(tiny + 0.1, tiny, 0.1), tiny, atol=1e-6)
    with pytest.raises(ValueError, match="must both be"):
        PilotWiener()(noisy, clean[:, :, :2], 0.1)
    with pytest.raises(ValueError, match="rows_per_pass 0: at least 1"):
        PilotWiener(rows_per_pass=0)


def haar(n):
    """The orthonormal Haar matrix of size n, by its recursive definition."""
    if n == 1:
        return np.ones((1, 1))
    coarse = haar(n // 2)
    return np.vstack([np.kron(coarse, [1.0, 1.0]), np.kron(np.eye(n // 2), [1.0, -1.0])]) / np.sqrt(2)


def direct_grouped(noisy, pilot, sigma, patch=8, group=16, step=3, window=39, tau=1.0, match="noisy",
                   prefilter=True):
    """One reference at a time with scipy's DCT and a sorted list of candidates: the ``grouped``
    filter as its docstring states it."""
    if prefilter:
        pilot = direct_wiener(noisy, pilot, sigma, 8, 1, 0.7)
    h, w, c = noisy.shape
    if c == 3:
        noisy, pilot = noisy @ OPPONENT.T, pilot @ OPPONENT.T
    guide = (noisy if match == "noisy" else pilot)
    guide = guide[..., 0] if c in (1, 3) else guide.mean(axis=2)  # luminance, or the channels' mean
    ys = sorted(set(range(0, h - patch + 1, step)) | {h - patch})
    xs = sorted(set(range(0, w - patch + 1, step)) | {w - patch})
    reach = window // 2
    size = 1
    while size * 2 <= min(group, (min(reach, h - patch) + 1) * (min(reach, w - patch) + 1)):
        size *= 2
    num, den = np.zeros_like(noisy), np.zeros((h, w))
    for y in ys:
        for x in xs:
            candidates = sorted(
                (-1.0 if dy == dx == 0 else np.sum((guide[y:y + patch, x:x + patch] -
                                                    guide[y + dy:y + dy + patch, x + dx:x + dx + patch]) ** 2),
                 (dy + reach) * window + dx + reach, y + dy, x + dx)
                for dy in range(-reach, reach + 1) for dx in range(-reach, reach + 1)
                if 0 <= y + dy <= h - patch and 0 <= x + dx <= w - patch)
            members = [(a, b) for _, _, a, b in candidates[:size]]
            transform = haar(size)
            energy, back = 0.0, []
            for ch in range(c):
                q = np.tensordot(transform, np.stack([dctn(pilot[a:a + patch, b:b + patch, ch], norm="ortho")
                                                      for a, b in members]), 1)
                z = np.tensordot(transform, np.stack([dctn(noisy[a:a + patch, b:b + patch, ch], norm="ortho")
                                                      for a, b in members]), 1)
                gain = q * q / (q * q + tau * sigma ** 2)
                gain[0, 0, 0] = 1.0  # the group's mean is kept
                energy += np.sum(gain ** 2)
                back.append([idctn(v, norm="ortho") for v in np.tensordot(transform.T, gain * z, 1)])
            for m, (a, b) in enumerate(members):
                den[a:a + patch, b:b + patch] += 1 / energy
                for ch in range(c):
                    num[a:a + patch, b:b + patch, ch] += back[ch][m] / energy
    out = num / den[..., None]
    return out @ OPPONENT if c == 3 else out


@pytest.mark.parametrize("shape, settings", [
    ((30, 27, 3), dict(window=11)), ((26, 21, 1), dict(window=9, group=8, step=2, tau=0.7, prefilter=False)),
    ((20, 19, 2), dict(window=7, group=4, patch=4, match="pilot", prefilter=False)),
    ((9, 12, 3), dict(window=39, prefilter=False)), ((8, 8, 1), dict()), ((8, 40, 3), dict(step=8, prefilter=False))])
def test_the_grouped_filter_is_the_block_matching_wiener_of_the_docstring(shape, settings):
    rng = np.random.default_rng(4)
    clean = rng.random(shape)
    noisy = clean + rng.normal(0, 0.1, shape)
    pilot = clean + rng.normal(0, 0.03, shape)
    got = GroupedWiener(**settings)(noisy, pilot, 0.1)
    assert got.dtype == np.float32 and got.shape == shape
    np.testing.assert_allclose(got, direct_grouped(noisy, pilot, 0.1, **settings), atol=2e-6)


@pytest.mark.parametrize("block", [None, (1, 2)])
def test_a_tall_image_is_filtered_a_row_of_blocks_at_a_time_as_the_docstring(monkeypatch, block):
    """Many rows of blocks (and, with blocks of one reference row, rows settled after each): the
    rows written out as the blocks pass them are the block-matching filter's."""
    if block is not None:
        monkeypatch.setattr(GroupedWiener, "BLOCK", block)
    rng = np.random.default_rng(11)
    clean = rng.random((71, 16, 3))
    noisy, pilot = clean + rng.normal(0, 0.1, clean.shape), clean + rng.normal(0, 0.03, clean.shape)
    got = GroupedWiener(window=13, group=8)(noisy, pilot, 0.1)
    np.testing.assert_allclose(got, direct_grouped(noisy, pilot, 0.1, window=13, group=8), atol=2e-6)


def test_the_filters_memory_does_not_grow_with_the_image_beyond_two_float32_copies(monkeypatch):
    """The grouped filter (and the pilot's Wiener filter before it) keep no float64 plane of the
    whole image: four times the rows take at most 20 more bytes per value at the peak (the prefiltered
    pilot and the output are float32, 8; with whole-image float64 planes it was 39). The Wiener
    filter's passes are made a few rows (they are up to PASS_VALUES values, 32 MB a plane) and the
    window small, so that both images are many passes and rows of blocks."""
    import tracemalloc

    monkeypatch.setattr(PilotWiener, "PASS_VALUES", 1 << 12)

    def peak(rows):
        rng = np.random.default_rng(rows)
        noisy = rng.random((rows, 24, 3)).astype(np.float32)
        pilot = (noisy * 0.9).astype(np.float32)
        tracemalloc.start()
        try:
            GroupedWiener(threads=1, window=9, group=8)(noisy, pilot, 0.1)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    # 64 and 256 rows, the least of two runs each: what does not grow with the rows (tracemalloc counts
    # every thread's allocations, a test worker's messaging thread's too) was up to 10 KB over 64 more
    # rows' 92 KB under pytest-xdist; over 192 more rows it is a third of that per value
    small, large = min(peak(64) for _ in range(2)), min(peak(256) for _ in range(2))
    assert large - small < 20 * (256 - 64) * 24 * 3, (small, large)


def test_the_grouped_filter_gives_the_same_bits_in_any_memory_layout_and_blocks_of_references(monkeypatch):
    rng = np.random.default_rng(8)
    clean = rng.random((40, 33, 3))
    noisy, pilot = clean + rng.normal(0, 0.1, clean.shape), clean + rng.normal(0, 0.03, clean.shape)
    first = GroupedWiener(window=9)(noisy, pilot, 0.1)
    shifted = np.empty(noisy.size + 1)[1:].reshape(noisy.shape)  # another alignment
    shifted[...] = noisy
    assert np.array_equal(GroupedWiener(window=9)(shifted, pilot, 0.1), first)
    assert np.array_equal(GroupedWiener(window=9)(noisy.astype(np.float32).astype(np.float64), pilot, 0.1),
                          GroupedWiener(window=9)(noisy.astype(np.float32), pilot, 0.1))
    monkeypatch.setattr(GroupedWiener, "PIECE", 7)  # a block's references filtered 7 at a time: the same bits
    assert np.array_equal(GroupedWiener(window=9)(noisy, pilot, 0.1), first)
    monkeypatch.setattr(GroupedWiener, "BLOCK", (2, 3))  # smaller blocks: the same filter, summed in another order
    np.testing.assert_allclose(GroupedWiener(window=9)(noisy, pilot, 0.1), first, atol=1e-6)


def test_a_match_picks_the_nearest_candidates_as_a_stable_sort_would_ties_included():
    from linr.refine import _smallest_in_order

    rng = np.random.default_rng(5)
    for trial in range(60):
        rows, cols = rng.integers(1, 40), rng.integers(2, 120)
        values = (rng.integers(0, 4, (rows, cols)).astype(float) if trial % 2  # many ties
                  else rng.standard_normal((rows, cols)))
        values[rng.random(values.shape) < 0.2] = np.inf  # candidates ruled out
        values[rng.random(rows) < 0.2] = 0.0  # rows that tie throughout (a flat patch's candidates)
        for size in {1, int(rng.integers(1, cols + 1)), int(cols)}:
            assert np.array_equal(_smallest_in_order(values, size),
                                  np.argsort(values, axis=1, kind="stable")[:, :size])
    values = np.array([[np.nan, 2.0, 1.0], [3.0, np.nan, np.nan]])  # NaN: as the full sort
    assert np.array_equal(_smallest_in_order(values, 2), np.argsort(values, axis=1, kind="stable")[:, :2])


def test_the_grouped_filter_keeps_a_clean_photo_and_dim_levels_and_removes_noise():
    clean, noisy, rng = smooth_scene(48, 5)
    np.testing.assert_allclose(GroupedWiener()(noisy, clean, 0.0), noisy, atol=1e-6)
    assert psnr(GroupedWiener()(noisy, clean, 0.1), clean) > psnr(noisy, clean) + 8
    wiener = PilotWiener()(noisy, noisy * 0.5 + clean * 0.5, 0.1)  # a poor pilot: grouping helps
    assert psnr(GroupedWiener()(noisy, noisy * 0.5 + clean * 0.5, 0.1), clean) > psnr(wiener, clean)
    np.testing.assert_array_equal(GroupedWiener()(noisy, clean, 0.1),  # the prefilter is the wiener refiner
                                  GroupedWiener(prefilter=False)(noisy, PilotWiener()(noisy, clean, 0.1), 0.1))
    dim = np.full((96, 96, 3), 2.6 / 255)  # a dim flat area at sigma 25 keeps its level (the photo's)
    photo = dim + rng.normal(0, 25 / 255, dim.shape)
    refined = GroupedWiener()(photo, dim, 25 / 255)
    assert abs(refined.mean() - photo.mean()) * 255 < 0.3, (refined.mean() * 255, photo.mean() * 255)
    tiny = rng.random((5, 7, 3))
    np.testing.assert_allclose(GroupedWiener()(tiny + 0.1, tiny, 0.1), tiny, atol=1e-6)
    with pytest.raises(ValueError, match="must both be"):
        GroupedWiener()(noisy, clean[:, :, :2], 0.1)
    for bad in (dict(group=12), dict(match="clean"), dict(step=9), dict(step=0), dict(patch=0), dict(window=-1)):
        with pytest.raises(ValueError):
            GroupedWiener(**bad)
    assert GroupedWiener().describe() == {"name": "grouped", "patch": 8, "group": 16, "step": 3, "window": 39,
                                          "tau": 1.0, "match": "noisy", "prefilter": True}  # the docstrings' values
    refined, done = refine_image("grouped", noisy.astype(np.float32), [linr.noisy(noisy)])
    assert done["name"] == "grouped" and done["match"] == "noisy" and done["sigma"] > 0

def test_the_photo_to_filter_is_the_one_noisy_photo_of_the_restored_size():
    img = np.random.default_rng(2).random((24, 24, 3))
    photo = linr.noisy(img)
    assert refine_input([photo, linr.lowres(img[::4, ::4], 4)], (24, 24)) is photo
    for obs in ([linr.lowres(img[::4, ::4], 4)], [linr.noisy(img), linr.noisy(img)],
                [linr.masked(img, np.ones((24, 24), bool))], [linr.noisy(img, noise="poisson", peak=30)]):
        with pytest.raises(InputError, match="refinement needs exactly one noisy photo"):
            refine_input(obs, (24, 24))
    with pytest.raises(InputError, match=r"filters 8 x 8 patches, and this image is 24x7 \(width x height"):  # 7 rows
        refine_input([linr.noisy(img[:7])], (7, 24))
    refined, done = refine_image("wiener", img.astype(np.float32), [linr.noisy(img)])
    assert done["name"] == "wiener" and done["sigma"] > 0 and refined.shape == img.shape


def test_a_noisy_photo_is_refined_by_default_and_the_fit_is_kept():
    rng = np.random.default_rng(3)
    noisy = np.clip(0.5 + 0.1 * rng.normal(size=(24, 24, 3)), 0, 1)
    result = linr.restore(linr.noisy(noisy), **SMALL)
    assert result.settings["refine"]["name"] == DEFAULT_DENOISE_REFINE == "grouped" and result.fitted_image is not None
    assert 0 <= result.timings["refine_s"] <= result.timings["total_s"]
    assert result.settings["refine"]["sigma"] == pytest.approx(25.5, rel=0.15)
    assert not np.array_equal(result.image, result.fitted_image)
    with pytest.raises(InputError, match="refined after the fit"):
        result.render(scale=2)  # no model renders the refined image
    fixed = linr.restore(linr.noisy(noisy), stop="fixed", **SMALL)  # a fixed stop keeps no model either
    assert "refine" in fixed.settings and fixed.model is None
    plain = linr.restore(linr.noisy(noisy), refine="none", **SMALL)
    assert "refine" not in plain.settings and plain.fitted_image is None
    np.testing.assert_array_equal(plain.image, result.fitted_image)  # the same fit, not refined
    for kw in ({"preset": "paper"}, {"keep_model": True}):  # the paper's fit; a model that renders the image
        assert "refine" not in linr.restore(linr.noisy(noisy), **{**SMALL, **kw}).settings
    joint = linr.restore([linr.noisy(noisy), linr.lowres(noisy[::4, ::4], 4)], refine="wiener", **SMALL)
    assert joint.settings["refine"]["name"] == "wiener"  # asked for: the noisy photo of a joint fit


def dense(op, shape):
    """The matrix of a linear operator on one (H, W) channel, column by column (float64)."""
    import torch

    h, w = shape
    cols = []
    for i in range(h * w):
        e = np.zeros(h * w)
        e[i] = 1
        cols.append(op.forward(torch.from_numpy(e.reshape(1, 1, h, w))).reshape(-1).numpy())
    return np.stack(cols, axis=1)


def test_the_projection_is_the_nearest_image_the_views_reproduce():
    from linr.operators import Downsample
    from linr.projection import project_onto_views

    rng = np.random.default_rng(0)
    clean = rng.random((16, 24, 3))
    views = [linr.lowres(np.stack([(dense(Downsample(f), (16, 24)) @ clean[..., c].ravel()).reshape(16 // f, 24 // f)
                                   for c in range(3)], -1).astype(np.float32), f) for f in (2, 4)]
    image = rng.random((16, 24, 3))
    projected, info = project_onto_views(image, views)
    # a direct solve: x = image + A^T (A A^T)^+ (y - A image), A the two views stacked, per channel
    a = np.concatenate([dense(Downsample(2), (16, 24)), dense(Downsample(4), (16, 24))])
    for c in range(3):
        y = np.concatenate([np.asarray(v.image, np.float64)[..., c].ravel() for v in views])
        x = image[..., c].ravel()
        expected = x + a.T @ np.linalg.lstsq(a @ a.T, y - a @ x, rcond=None)[0]
        np.testing.assert_allclose(projected[..., c].ravel(), expected, atol=2e-6)
    assert info["views"] == 2 and info["residual"] < 1e-6 and info["iterations"] >= 1
    again, _ = project_onto_views(projected, views)  # a projection: once is enough
    np.testing.assert_allclose(again, projected, atol=2e-6)


def test_a_joint_noisy_and_lowres_fit_is_refined_then_reproduces_the_lowres_view(capsys, tmp_path):
    import torch

    from linr.images import write_image
    from linr.simulate import add_gaussian_noise, lanczos_downscale

    from .conftest import crop, load

    clean = crop(load("set5/head.png"), 32, top=100, left=100)
    noisy, lr = add_gaussian_noise(clean, 25, seed=0), lanczos_downscale(clean, 2)
    joint = [linr.noisy(noisy), linr.lowres(lr, 2)]
    r = linr.restore(joint, **{**SMALL, "stop": "fixed"})  # no pixels held out: the projection's image
    assert r.settings["refine"]["name"] == "grouped-project" and r.fitted_image is not None
    assert "weights" not in r.settings["refine"]
    down = joint[1].operator.forward(torch.from_numpy(r.image.astype(np.float64)).permute(2, 0, 1)[None])
    np.testing.assert_allclose(down[0].permute(1, 2, 0).numpy(), lr, atol=1e-5)
    assert "refine" not in linr.restore(joint, refine="none", **SMALL).settings
    assert "refine" not in linr.restore(joint, **{**SMALL, "preset": "paper"}).settings
    with pytest.raises(InputError, match="no observation is one"):
        linr.restore([linr.noisy(noisy)], refine="grouped-project", **SMALL)
    for views_alone in ("grouped-views", "grouped-views-examples"):  # they would leave the noisy photo out
        with pytest.raises(InputError, match=f"refinement '{views_alone}' filters toward the low-res views alone"):
            linr.restore(joint, refine=views_alone, steps=10 ** 6)
    assert linr.restore(joint, refine="project", **SMALL).settings["refine"]["name"] == "project"
    # photon noise beside the view: grouped-project cannot take it, so grouped-views is not refused
    photon = [linr.noisy(np.clip(clean, 0, 1), noise="poisson", peak=30.0), linr.lowres(lr, 2)]
    assert linr.restore(photon, refine="grouped-views", **SMALL).settings["refine"]["name"] == "grouped-views"
    # a low-res view that carries noise is not made exact: no default refinement then
    noisy_lr = linr.lowres(lr, 2)
    noisy_lr.carries_noise = True
    assert "refine" not in linr.restore([linr.noisy(noisy), noisy_lr], **SMALL).settings
    write_image(tmp_path / "n.png", noisy)
    write_image(tmp_path / "lr.png", lr)
    from linr.cli import main

    assert main(["restore", "--noisy", str(tmp_path / "n.png"), "--lowres", str(tmp_path / "lr.png"), "--factor",
                 "2", "-o", str(tmp_path / "o.png"), "--steps", "3", "--quiet", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "refined: grouped-project" in out and "reproduce the low-res view exactly" in out
    assert "the default for a noisy photo with low-res views" in out
    assert re.search(r"not blended with the fit's image: \d+ held-out pixels, fewer than the 100 a choice needs", out)
    # a photo with enough held-out pixels: a blend is weighed; used when it is clearly better (here:
    # a low-res view darker than the photo, which the projection would copy), and the command says so
    big = crop(load("set5/head.png"), 96, top=90, left=90)
    write_image(tmp_path / "n.png", add_gaussian_noise(big, 25, seed=0), force=True)
    said = []
    for scale in (1.0, 0.8):
        write_image(tmp_path / "lr.png", lanczos_downscale(big, 2) * scale, force=True)
        assert main(["restore", "--noisy", str(tmp_path / "n.png"), "--lowres", str(tmp_path / "lr.png"), "--factor",
                     "2", "-o", str(tmp_path / "o.png"), "--steps", "3", "--quiet", "--device", "cpu", "--force"]) == 0
        said.append(capsys.readouterr().out)
    assert re.search(r"not blended with the fit's image: on \d+ held-out pixels the best blend beat the projected "
                     r"image by -?[\d.]+ standard errors \(more than 3 needed\)", said[0])
    assert "then blended by weights chosen on" in said[1] and "held-out pixels: the fit's image" in said[1]
    assert "the result misses the low-res view by a relative residual of" in said[1]


def test_the_joint_blend_is_chosen_on_the_photos_held_out_pixels_whatever_the_order(monkeypatch):
    from linr.refine import GroupedProjected
    from linr.stopping import HoldOut
    from linr.tasks import held_out_pixels

    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:48, 0:48] / 48.0
    clean = np.stack([np.sin(4 * xx) * 0.3 + 0.5, np.cos(3 * yy) * 0.3 + 0.5, 0.2 + 0.5 * xx * yy], -1)
    noisy = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32)
    small = clean.reshape(24, 2, 24, 2, 3).mean((1, 3)).astype(np.float32)
    seen = []
    real = GroupedProjected.__call__

    def spy(self, noisy_pixels, pilot, sigma, views, held_out=None):
        seen.append(None if held_out is None else held_out.shape)
        return real(self, noisy_pixels, pilot, sigma, views, held_out)

    monkeypatch.setattr(GroupedProjected, "__call__", spy)
    for order in ((linr.noisy(noisy), linr.lowres(small, 2)), (linr.lowres(small, 2), linr.noisy(noisy))):
        rule = HoldOut(fraction=0.3)
        result = linr.restore(list(order), stop=rule, **{**SMALL, "steps": 4})
        masks = held_out_pixels(rule)
        assert [m.shape for m in masks] == [o.image.shape[:2] for o in order]
        done = result.settings["refine"]
        weighed = done.get("chosen_on_held_out_pixels") or done.get("not_blended_held_out_pixels")
        assert seen.pop() == (48, 48) and weighed > GroupedProjected.MIN_PIXELS
    assert held_out_pixels(None) is None
    fixed = linr.restore([linr.noisy(noisy), linr.lowres(small, 2)], **{**SMALL, "stop": "fixed"})
    assert seen.pop() is None and "weights" not in fixed.settings["refine"]


def test_simplex_weights_are_the_constrained_least_squares_blend():
    from scipy.optimize import minimize

    from linr.refine import simplex_weights

    rng = np.random.default_rng(4)
    for trial in range(6):
        target = rng.normal(size=200)
        candidates = [target + rng.normal(scale=s, size=200) + b for s, b in
                      zip(rng.uniform(0.1, 2, 3), rng.normal(scale=0.5 * (trial % 3), size=3))]
        w = simplex_weights(target, candidates)
        assert w.min() >= 0 and w.sum() == pytest.approx(1.0)

        def loss(v):
            return float(np.sum((target - np.stack(candidates, 1) @ v) ** 2))

        ref = minimize(loss, np.full(3, 1 / 3), method="SLSQP", bounds=[(0, 1)] * 3,
                       constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1}], options={"ftol": 1e-14})
        assert loss(w) <= ref.fun + 1e-8 and np.allclose(w, ref.x, atol=1e-4)
    # one candidate is the target: all its weight; two equal ones: the earlier
    assert np.array_equal(simplex_weights(target, [target + 1, target, target - 1]), [0, 1, 0])
    assert np.array_equal(simplex_weights(target, [target, target]), [1, 0])


def test_the_joint_refinement_blends_by_the_held_out_pixels_it_never_saw():
    from scipy.ndimage import gaussian_filter

    from linr.metrics import psnr
    from linr.noise import floored_noise_sigma
    from linr.projection import project_onto_views, view_residual
    from linr.refine import GroupedProjected, simplex_weights
    from linr.simulate import add_gaussian_noise, lanczos_downscale

    from .conftest import crop, load

    clean = crop(load("set5/butterfly.png"), 64, top=100, left=100)
    noisy = add_gaussian_noise(clean, 25, seed=0)
    pilot = gaussian_filter(clean, (0.7, 0.7, 0)).astype(np.float32)  # a fit: smoother than the scene
    held = np.random.default_rng(1).random(clean.shape[:2]) < 0.2
    sigma = floored_noise_sigma(noisy)
    # a view brighter than the photo (not what the fit's downsampling makes of it): the projection
    # copies the offset, and the blend is weighed toward the filtered image
    for offset in (0.0, 0.08):
        view = linr.lowres((lanczos_downscale(clean, 2) + offset).astype(np.float32), 2)
        refiner = GroupedProjected()
        out = refiner(noisy, pilot, sigma, [view], held)
        done = refiner.describe()
        # the same choice made here: the filter and projection of a photo whose held-out pixels hold
        # the pilot's values, the weights by least squares on the photo's held-out values, those
        # whose pilot is 2 sigmas or more inside [0, 1] (a clipped photo is biased near black and white)
        values = held[..., None] & (pilot >= 2 * sigma + 1e-6) & (pilot <= 1 - 2 * sigma - 1e-6)
        used = "weights" in done  # else the blend did not beat the projected image clearly enough
        weights = done["weights" if used else "blend_weights_not_used"]
        pixels = done["chosen_on_held_out_pixels" if used else "not_blended_held_out_pixels"]
        assert pixels == int(values.any(-1).sum()) > GroupedProjected.MIN_PIXELS
        blind = noisy.copy()
        blind[held] = pilot[held]
        g_blind = GroupedWiener()(blind, pilot, sigma)
        p_blind, _ = project_onto_views(g_blind, [view])
        target = noisy[values].astype(np.float64)
        w = simplex_weights(target, [pilot[values], g_blind[values], p_blind[values]])
        assert list(weights.values()) == pytest.approx(list(w), abs=1e-4)
        blind_blend = w[0] * pilot[values] + w[1] * g_blind[values] + w[2] * p_blind[values]
        gain = (target - p_blind[values]) ** 2 - (target - blind_blend) ** 2
        assert done["gain_z"] == pytest.approx(gain.mean() / (gain.std() / np.sqrt(gain.size)), abs=0.02)
        assert used == (done["gain_z"] > GroupedProjected.SIGNIFICANCE)
        # what the photo holds at the held-out values near the clip does not weigh
        near_clip = held[..., None] & ~values
        moved = noisy.copy()
        moved[near_clip] = 0.5
        assert near_clip.sum() > 10
        again = GroupedProjected()
        again(moved, pilot, sigma, [view], held)
        choice = ("weights", "blend_weights_not_used", "gain_z", "chosen_on_held_out_pixels",
                  "not_blended_held_out_pixels")  # (the images blended are the moved photo's own)
        assert {k: again.describe().get(k) for k in choice} == {k: done.get(k) for k in choice}
        grouped = GroupedWiener()(noisy, pilot, sigma)
        projected, _ = project_onto_views(grouped, [view])
        expected = w[0] * pilot + w[1] * grouped + w[2] * projected if used else projected
        np.testing.assert_allclose(out, expected, atol=1e-5)
        if used:
            assert done["blend_residual"] == pytest.approx(view_residual(out, [view]), rel=1e-2, abs=1e-9)
        if offset:  # the projection copies the offset: the blend, clearly, with most weight elsewhere
            assert used and done["weights"]["grouped-project"] < 0.5
            assert psnr(clean, np.clip(out, 0, 1)) > psnr(clean, np.clip(projected, 0, 1)) + 3
    # fewer held-out pixels than a choice needs (pixels, not values: 399 RGB pixels are 1197
    # values): the projection's image, no weights
    few = np.zeros(clean.shape[:2], bool)
    inside = ((pilot >= 2 * sigma + 1e-6) & (pilot <= 1 - 2 * sigma - 1e-6)).all(-1)
    few.flat[np.flatnonzero(inside)[:GroupedProjected.MIN_PIXELS - 1]] = True
    refiner = GroupedProjected()
    grouped = GroupedWiener()(noisy, pilot, sigma)
    np.testing.assert_allclose(refiner(noisy, pilot, sigma, [view], few), project_onto_views(grouped, [view])[0],
                               atol=1e-6)
    assert "weights" not in refiner.describe()
    assert refiner.describe()["not_blended_held_out_pixels"] == GroupedProjected.MIN_PIXELS - 1


def test_views_that_cannot_all_be_met_leave_the_image_as_it_was():
    from linr.projection import project_onto_views
    from linr.refine import GroupedProjected

    rng = np.random.default_rng(1)
    image = rng.random((16, 16, 3))
    a, b = rng.random((8, 8, 3)), rng.random((8, 8, 3))  # two x2 views of one size that disagree
    views = [linr.lowres(a.astype(np.float32), 2), linr.lowres(b.astype(np.float32), 2)]
    out, info = project_onto_views(image, views)
    assert info["converged"] is False and np.isfinite(out).all()
    np.testing.assert_allclose(out, image, atol=1e-6)  # unchanged, not blown up
    noisy = (image + 0.1 * rng.normal(size=image.shape)).astype(np.float32)
    pilot = image.astype(np.float32)
    refiner = GroupedProjected()
    np.testing.assert_array_equal(refiner(noisy, pilot, 0.1, views), pilot)  # the fit's image is kept
    assert refiner.describe()["projected"]["converged"] is False
    out, info = project_onto_views(image, views[:1])  # one of them alone can be met
    assert info["converged"] and info["residual"] < 1e-6


def test_the_joint_default_is_for_one_view_not_registered_and_batches_record_it(tmp_path, capsys):
    import argparse

    from PIL import Image

    from linr.batch import _refine_of
    from linr.cli import _cost_line, main
    from linr.tasks import DEFAULT_JOINT_REFINE, resolve_refine

    rng = np.random.default_rng(2)
    photo, small = rng.random((32, 32, 3)).astype(np.float32), rng.random((16, 16, 3)).astype(np.float32)
    one = [linr.noisy(photo), linr.lowres(small, 2)]
    assert resolve_refine(None, one, preset=None) == DEFAULT_JOINT_REFINE
    assert resolve_refine(None, [*one, linr.lowres(small, 2)], preset=None) is None  # two views: not measured
    assert resolve_refine(None, one, preset=None, register="translation") is None  # the fit shifts the view
    with pytest.raises(InputError, match="registration"):
        resolve_refine("grouped-project", one, preset=None, register="translation")
    # the estimate printed before a long joint fit times the refinement instead of failing on it
    big = [linr.noisy(np.zeros((1024, 1024, 3), np.float32)), linr.lowres(np.zeros((256, 256, 3), np.float32), 4)]
    unasked = dict(refine=None, save_model=None, render_scale=None, render_size=None, register=None)
    args = argparse.Namespace(preset=None, steps=None, lr=None, seed=0, device="cpu", precision=None, prior=None,
                              stop=None, **unasked)
    assert "to refine the fit's image (grouped-project on one CPU thread" in _cost_line(big, args, None)
    # batches: the manifest names the default, and the views refiners are checked before any image
    batch = dict(preset=None, register=None, refine=None, noisy="n", lowres="l", masked=None, blurred=None,
                 noise="gaussian")
    assert _refine_of(argparse.Namespace(**batch)) == DEFAULT_JOINT_REFINE
    (tmp_path / "in").mkdir()
    Image.fromarray((small * 255).astype(np.uint8)).save(tmp_path / "in" / "a.png")
    common = ["batch", str(tmp_path / "in"), "--steps", "2", "--device", "cpu", "--threads", "1", "--quiet"]
    assert main([*common, "--task", "lowres", "--factor", "2", "-o", str(tmp_path / "o1"), "--refine", "project"]) == 0
    assert "no low-res" not in capsys.readouterr().err
    assert "has none (--lowres)" in run_err(capsys, [*common, "--task", "noisy", "-o", str(tmp_path / "o2"),
                                                     "--refine", "grouped-project"])


def test_super_resolution_can_be_made_to_reproduce_its_input(capsys, tmp_path):
    import torch

    from linr.cli import main
    from linr.images import write_image
    from linr.simulate import lanczos_downscale

    from .conftest import crop, load

    clean = crop(load("set5/bird.png"), 48, top=100, left=100)
    view = linr.lowres(lanczos_downscale(clean, 8), 8)  # x8: grouped-views the default (x2 to x4: with examples)
    fit = linr.restore([view], refine="none", **SMALL)
    assert "refine" not in fit.settings
    assert linr.restore([view], **SMALL).settings["refine"]["name"] == "grouped-views"  # the default since then
    r = linr.restore([view], refine="project", **SMALL)
    assert r.settings["refine"]["name"] == "project" and r.settings["refine"]["projected"]["residual"] < 1e-6
    down = view.operator.forward(torch.from_numpy(r.image.astype(np.float64)).permute(2, 0, 1)[None])
    np.testing.assert_allclose(down[0].permute(1, 2, 0).numpy(), view.image, atol=1e-5)
    np.testing.assert_array_equal(r.fitted_image, fit.image)  # the same fit, then the projection
    write_image(tmp_path / "lr.png", view.image)
    assert main(["restore", "--lowres", str(tmp_path / "lr.png"), "--factor", "2", "-o", str(tmp_path / "o.png"),
                 "--steps", "3", "--quiet", "--device", "cpu", "--refine", "project"]) == 0
    out = capsys.readouterr().out
    assert "refined: project (the fit's image made to reproduce the low-res view exactly" in out
    assert "no observation is one" in run_err(capsys, ["restore", "--noisy", str(tmp_path / "lr.png"), "-o",
                                                       str(tmp_path / "p.png"), "--refine", "project"])


def test_refinement_errors_are_one_line_and_come_before_the_fit(capsys, tmp_path):
    img = np.full((24, 24, 3), 0.5)
    with pytest.raises(InputError, match="unknown refinement 'bm3d'"):
        linr.restore(linr.noisy(img), refine="bm3d", steps=10 ** 6)
    with pytest.raises(InputError, match="no model renders it"):
        linr.restore(linr.noisy(img), refine="wiener", keep_model=True, steps=10 ** 6)
    with pytest.raises(InputError, match="refinement needs exactly one noisy photo"):
        linr.restore(linr.lowres(img[::4, ::4], 4), refine="wiener", steps=10 ** 6)
    with pytest.raises(InputError, match="filters 8 x 8 patches"):
        linr.restore(linr.noisy(img[:1]), refine="wiener", steps=10 ** 6)
    small = linr.restore(linr.noisy(img[:6, :6]), **SMALL)  # too small to refine: the default does not, and says so
    assert small.fitted_image is None and "8 x 8 patches" in small.settings["refine"]["skipped"]
    from PIL import Image

    Image.fromarray((img * 255).astype(np.uint8)).save(tmp_path / "n.png")
    out = tmp_path / "o.png"
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "n.png"), "--refine", "wiener",
                           "--save-model", str(tmp_path / "m.pt"), "-o", str(out)])
    assert "no model renders it" in err and not out.exists()
    err = run_err(capsys, ["restore", "--lowres", str(tmp_path / "n.png"), "--refine", "wiener", "-o", str(out)])
    assert "refinement needs exactly one noisy photo" in err and not out.exists()


def test_the_command_line_says_it_refined_and_the_report_records_it(capsys, tmp_path):
    from linr.cli import main

    base = tiny_noisy_restore(tmp_path)
    assert main([*base, "-o", str(tmp_path / "a.png"), "--report", str(tmp_path / "a.json")]) == 0
    out = capsys.readouterr().out
    assert f"refined: {DEFAULT_DENOISE_REFINE}" in out and "--refine none returns the fit's image" in out
    assert "fit's image (siren 2x16) as the pilot" in out  # the network asked for
    assert json.loads((tmp_path / "a.json").read_text())["settings"]["refine"]["name"] == DEFAULT_DENOISE_REFINE
    assert main([*base, "-o", str(tmp_path / "b.png"), "--refine", "none"]) == 0
    assert "refined" not in capsys.readouterr().out
    from PIL import Image

    a, b = (np.asarray(Image.open(tmp_path / f)) for f in ("a.png", "b.png"))
    assert not np.array_equal(a, b)
    assert main([*base, "-o", str(tmp_path / "c.png"), "--save-model", str(tmp_path / "m.pt")]) == 0
    captured = capsys.readouterr()
    assert "is not refined after the fit" in captured.err and "refined:" not in captured.out


def test_a_batch_made_before_the_refinement_says_how_to_resume_it(tmp_path, capsys):
    from PIL import Image

    from linr.cli import main

    rng = np.random.default_rng(6)
    (tmp_path / "in").mkdir()
    Image.fromarray((np.clip(0.5 + 0.1 * rng.normal(size=(16, 16, 3)), 0, 1) * 255).astype(np.uint8)).save(
        tmp_path / "in" / "a.png")
    fit = ["--task", "noisy", "--steps", "2", "--width", "16", "--depth", "2", "--device", "cpu", "--threads", "1",
           "--quiet"]
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "in"), "-o", str(out), "--refine", "none", *fit]) == 0
    capsys.readouterr()
    err = run_err(capsys, ["batch", str(tmp_path / "in"), "-o", str(out), *fit])  # now with the default
    assert "made with other settings (refine)" in err and "--refine none to resume as made" in err
    assert main(["batch", str(tmp_path / "in"), "-o", str(out), "--refine", "none", *fit]) == 0
    assert "1 already done" in capsys.readouterr().out
    made = tmp_path / "made_with_wiener"  # the default before the sixteenth session
    assert main(["batch", str(tmp_path / "in"), "-o", str(made), "--refine", "wiener", *fit]) == 0
    capsys.readouterr()
    err = run_err(capsys, ["batch", str(tmp_path / "in"), "-o", str(made), *fit])
    assert "made with other settings (refine)" in err and "--refine wiener to resume as made" in err
    err = run_err(capsys, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "o2"), "--task", "lowres",
                           "--refine", "wiener", "--steps", "2"])
    assert "filters noisy photos with Gaussian noise" in err


def test_a_refined_default_denoising_fit_is_a_narrow_pilot():
    from linr.tasks import DEFAULT_PILOT_LR, DEFAULT_PILOT_MODEL, DEFAULT_PILOT_STEPS, PRESETS, resolve

    rng = np.random.default_rng(4)
    noisy = np.clip(0.5 + 0.1 * rng.normal(size=(24, 24, 3)), 0, 1)
    _, cfg = resolve([linr.noisy(noisy)])
    assert (cfg.model, cfg.steps, cfg.lr) == (DEFAULT_PILOT_MODEL, DEFAULT_PILOT_STEPS, DEFAULT_PILOT_LR)
    assert cfg.model.width < 256 and DEFAULT_PILOT_LR != PRESETS["paper"].lr
    from linr.tasks import pilot_precision, pilot_tag

    precision = "" if pilot_precision("cpu") == "float32" else "-bf16"  # bf16 where the CPU has bf16 units
    assert pilot_tag() == f"@pilot7x64-lr{DEFAULT_PILOT_LR:g}-retry{precision}"  # benchmark rows name the pilot's rate
    assert resolve([linr.noisy(noisy)], steps=40)[1].steps == 40  # a budget asked for stays
    assert resolve([linr.noisy(noisy)], lr=2e-4)[1].lr == 2e-4  # so does a learning rate
    paper_fit = [dict(keep_model=True), dict(refine="none"), dict(preset="paper"),
                 dict(model=ModelConfig(depth=5)), dict(stop="fixed"), dict(stop="variance:5:10"),
                 dict(stop="holdout:0.05:40"), dict(stop="pick:0.05:25")]
    for kw in paper_fit:  # not refined, or the network or preset named: the paper's network
        _, cfg = resolve([linr.noisy(noisy)], **kw)
        assert (cfg.model.width, cfg.steps, cfg.lr) == (256, 500, PRESETS["paper"].lr), kw
    # the automatic rule written out, or with 'at', is the rule the pilot was measured with
    for spec in ("holdout:0.05:40:window40", "holdout:0.05:40:window40:0.9", "holdout:0.1:30:ema0.9"):
        _, cfg = resolve([linr.noisy(noisy)], stop=spec)
        assert (cfg.model, cfg.steps, cfg.lr) == (DEFAULT_PILOT_MODEL, DEFAULT_PILOT_STEPS, DEFAULT_PILOT_LR), spec
    for obs in ([linr.noisy(noisy[:6, :6])], [linr.noisy(noisy), linr.lowres(noisy[::4, ::4], 4)]):
        _, cfg = resolve(obs, refine="wiener" if len(obs) == 2 else None)  # too small; joint
        assert (cfg.model.width, cfg.lr) == (256, PRESETS["paper"].lr)
    result = linr.restore(linr.noisy(noisy), steps=3, device="cpu", progress=False)
    assert result.settings["model"]["width"] == DEFAULT_PILOT_MODEL.width and result.settings["refine"]
    assert result.settings["lr"] == DEFAULT_PILOT_LR


def test_a_batch_records_the_pilot_network_of_its_refined_fits(tmp_path, capsys):
    import dataclasses

    from PIL import Image

    from linr.cli import main
    from linr.tasks import DEFAULT_PILOT_LR, DEFAULT_PILOT_MODEL, DEFAULT_PILOT_STEPS, DENOISE_TILE_SIZE, DENOISE_WHOLE_UP_TO

    rng = np.random.default_rng(7)
    (tmp_path / "in").mkdir()
    Image.fromarray((np.clip(0.5 + 0.1 * rng.normal(size=(16, 16, 3)), 0, 1) * 255).astype(np.uint8)).save(
        tmp_path / "in" / "a.png")
    fit = ["--task", "noisy", "--steps", "2", "--device", "cpu", "--threads", "1", "--quiet"]
    batches = {}
    for name, extra in (("pilot", []), ("named", ["--width", "16", "--depth", "2"]), ("plain", ["--refine", "none"]),
                        ("rate", ["--lr", "2e-4"])):
        assert main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / name), *fit, *extra]) == 0
        batches[name] = json.loads((tmp_path / name / "manifest.jsonl").read_text().splitlines()[0])["batch"]
    assert batches["pilot"]["pilot"] == {"model": dataclasses.asdict(DEFAULT_PILOT_MODEL), "budget": DEFAULT_PILOT_STEPS,
                                         "lr": DEFAULT_PILOT_LR, "retry_lr": 1e-4, "whole_up_to": DENOISE_WHOLE_UP_TO,
                                         "precision": "bf16-on-cpus-with-bf16-units-but-sure-picks",  # the rule, whichever CPU
                                         "tile_size": DENOISE_TILE_SIZE}
    assert "pilot" not in batches["named"] and "pilot" not in batches["plain"]
    assert "lr" not in batches["rate"]["pilot"] and "retry_lr" not in batches["rate"]["pilot"] and batches["rate"]["lr"] == 2e-4  # the rate asked for, recorded once


def test_an_inpainting_fit_blended_with_biharmonic_inpainting_of_the_same_pixels(capsys, tmp_path):
    from skimage.restoration import inpaint_biharmonic

    from linr.refine import BiharmonicBlend

    rng = np.random.default_rng(3)
    clean = rng.random((20, 24, 3))
    observed = rng.random((20, 24)) < 0.4
    fit = rng.random((20, 24, 3)).astype(np.float32)
    photo = linr.masked(clean * observed[..., None], observed)
    refined, done = refine_image("biharmonic", fit, [photo])
    reference = 0.5 * fit + 0.5 * inpaint_biharmonic(clean * observed[..., None], ~observed, channel_axis=-1)
    np.testing.assert_allclose(refined, reference, atol=1e-6)  # scikit-image's, float64, directly
    assert done == {"name": "biharmonic", "weight": 0.5} and refined.dtype == np.float32
    assert np.allclose(BiharmonicBlend(weight=1.0)(clean, observed, fit), fit)
    per_channel = np.repeat(observed[None], 3, 0)  # a (C, H, W) mask, the same in every channel
    np.testing.assert_allclose(refine_image("biharmonic", fit, [linr.masked(clean * observed[..., None], observed)])[0],
                               refine_image("biharmonic", fit, [
                                   linr.Observation(clean * observed[..., None], linr.operators.Mask(per_channel),
                                                    None, "masked")])[0], atol=1e-6)
    for wrong in ([linr.noisy(clean)], [photo, linr.lowres(clean[::2, ::2], 2)]):  # beside a noisy photo: taken
        with pytest.raises(InputError, match=re.escape("needs one photo with missing pixels (a mask) of the restored "
                                                       "size, alone or beside noisy photos")):
            refine_input(wrong, (20, 24), "biharmonic")
    assert refine_input([photo, linr.noisy(clean)], (20, 24), "biharmonic") is photo
    with pytest.raises(InputError, match="refinement needs exactly one noisy photo"):
        linr.restore(photo, refine="wiener", steps=10 ** 6)
    # through restore and the command line: the fit's image kept, one line said
    result = linr.restore(photo, refine="biharmonic", stop="fixed", steps=3, model=ModelConfig(width=16, depth=2),
                          progress=False)
    assert result.settings["refine"] == {"name": "biharmonic", "weight": 0.5} and result.fitted_image is not None
    np.testing.assert_allclose(result.image, refine_image("biharmonic", result.fitted_image, [photo])[0], atol=1e-6)
    from PIL import Image

    from linr.cli import main

    Image.fromarray((clean * observed[..., None] * 255).astype(np.uint8)).save(tmp_path / "m.png")
    Image.fromarray((observed * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    assert main(["restore", "--masked", str(tmp_path / "m.png"), "--mask", str(tmp_path / "mask.png"),
                 "--refine", "biharmonic", "--steps", "3", "--width", "16", "--depth", "2",
                 "-o", str(tmp_path / "o.png")]) == 0
    assert "refined: biharmonic (the fit's image averaged with biharmonic inpainting" in capsys.readouterr().out
    assert main(["restore", "--masked", str(tmp_path / "m.png"), "--mask", str(tmp_path / "mask.png"),
                 "--refine", "biharmonic", "--stop", "pick:0.2:2", "--steps", "4", "--width", "16", "--depth", "2",
                 "-o", str(tmp_path / "p.png")]) == 0
    assert "held-out pixels; not in the paper)" in capsys.readouterr().out


def test_the_blend_weight_is_chosen_on_the_pixels_the_fit_held_out(capsys, tmp_path):
    from skimage.restoration import inpaint_biharmonic

    from linr.refine import BiharmonicBlend
    from linr.stopping import HeldOutPick

    rng = np.random.default_rng(5)
    yy, xx = np.mgrid[0:28, 0:30] / 30.0
    clean = np.stack([np.sin(5 * xx) * 0.4 + 0.5, np.cos(4 * yy) * 0.4 + 0.5, xx * yy], -1)
    observed = rng.random((28, 30)) < 0.5
    held = observed & (rng.random((28, 30)) < 0.2)
    fit = (clean + rng.normal(0, 0.05, clean.shape)).astype(np.float32)
    photo = clean * observed[..., None]
    blender = BiharmonicBlend()
    out = blender(photo, observed, fit, held)
    blind = inpaint_biharmonic(photo, ~(observed & ~held), channel_axis=-1)[held].ravel()
    a = fit[held].ravel().astype(np.float64) - blind  # least squares for w in w f + (1 - w) b = y, numpy's
    w = np.clip(np.linalg.lstsq(a[:, None], photo[held].ravel() - blind, rcond=None)[0][0], 0, 1)
    assert blender.used == pytest.approx(w, abs=1e-9) and 0 < w < 1 and blender.weight == 0.5
    assert blender.describe() == {"name": "biharmonic", "weight": round(w, 4), "chosen_on_held_out_pixels": int(held.sum())}
    full = inpaint_biharmonic(photo, ~observed, channel_axis=-1)
    np.testing.assert_allclose(out, w * fit + (1 - w) * full, atol=1e-6)
    # through restore: the pick rule's held-out pixels choose it
    rule = HeldOutPick(fraction=0.2, every=5)
    result = linr.restore(linr.masked(photo, observed), stop=rule, refine="biharmonic", steps=10,
                          model=ModelConfig(width=16, depth=2), progress=False)
    done = result.settings["refine"]
    assert done["chosen_on_held_out_pixels"] == int(rule.held_out_mask().sum()) > 0
    assert rule.held_out_mask().shape == (28, 30) and not (rule.held_out_mask() & ~observed).any()
    np.testing.assert_allclose(result.image, done["weight"] * result.fitted_image + (1 - done["weight"]) * full,
                               atol=1e-3)  # the weight as recorded (rounded)


def test_a_lone_masked_photo_is_blended_by_default_with_the_weight_chosen_on_held_out_pixels(tmp_path, capsys):
    from PIL import Image

    from linr.cli import main
    from linr.stopping import AUTO_BLENDED
    from linr.refine import GroupedFill
    from linr.tasks import DEFAULT_INPAINT_REFINE, resolve_refine, resolve_stop

    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:40, 0:42] / 42.0
    clean = np.stack([np.sin(4 * xx) * 0.4 + 0.5, np.cos(3 * yy) * 0.4 + 0.5, xx * yy], -1)
    observed = rng.random((40, 42)) < 0.5
    photo = linr.masked(clean * observed[..., None], observed)
    tiny = dict(steps=4, model=ModelConfig(width=16, depth=2), progress=False)
    result = linr.restore(photo, **tiny)
    done = result.settings["refine"]
    assert done["name"] == DEFAULT_INPAINT_REFINE and done["chosen_on_held_out_pixels"] > 0
    assert result.settings["stop"]["name"] == "pick" and result.fitted_image is not None
    assert resolve_stop([photo], refine=DEFAULT_INPAINT_REFINE).describe() == resolve_stop(
        [photo], stop=AUTO_BLENDED).describe()
    # an ensemble's members hold out the same pixels, and its mean's blend is weighed on them
    pair = linr.restore(photo, ensemble=2, **tiny)
    assert pair.settings["refine"]["chosen_on_held_out_pixels"] == done["chosen_on_held_out_pixels"]
    assert pair.uncertainty is not None and pair.settings["stop"]["name"] == "pick"
    from linr.ensemble import member_rule

    for shared in (True, False):
        masks = []
        for k in range(2):
            rule = member_rule(resolve_stop([photo], refine=DEFAULT_INPAINT_REFINE), k, shared_held_out=shared)
            rule.reset()
            rule.prepare([photo])
            masks.append(rule.held_out_mask(0))
        assert np.array_equal(*masks) == shared and masks[0].any()
    # the paper preset, a kept model, 'none' and noise keep the paper's fixed fit unblended; tiles keep their
    # fixed steps, and the fill then starts from their image with no choice to make (no one fit's held-out
    # pixels; the pick and a blend in tiles were measured in the sixty-first session and not adopted)
    assert linr.restore(photo, preset="paper", **tiny).settings.get("refine") is None
    kept = linr.restore(photo, keep_model=True, **tiny)
    assert kept.settings.get("refine") is None and kept.settings["stop"]["name"] == "fixed" and kept.steps_run == 4
    assert linr.restore(photo, refine="none", **tiny).settings["stop"]["name"] == "fixed"
    assert resolve_refine(None, [photo], preset=None) == DEFAULT_INPAINT_REFINE
    tiled = linr.restore(photo, tile="32:8", **tiny)
    assert tiled.settings["refine"]["name"] == DEFAULT_INPAINT_REFINE and "weights" not in tiled.settings["refine"]
    assert all(t["steps_run"] == 4 for t in tiled.settings["tiles"]) and len(tiled.settings["tiles"]) > 1
    np.testing.assert_array_equal(tiled.image[observed], clean[observed].astype(np.float32))  # observed kept
    assert resolve_refine(None, [photo, linr.noisy(clean)], preset=None) == DEFAULT_INPAINT_REFINE  # beside a noisy one
    # the command line says it, and a batch records the blend in its manifest
    Image.fromarray((clean * observed[..., None] * 255).astype(np.uint8)).save(tmp_path / "m.png")
    Image.fromarray((observed * 255).astype(np.uint8)).save(tmp_path / "m_mask.png")
    args = ["--steps", "4", "--width", "16", "--depth", "2", "--device", "cpu"]
    assert main(["restore", "--masked", str(tmp_path / "m.png"), "--mask", str(tmp_path / "m_mask.png"),
                 "-o", str(tmp_path / "o.png"), *args]) == 0
    out = capsys.readouterr().out
    # 4 steps: the rule's only look is the last step's (it looks every 25), and the line says so
    assert "the pick rule looks every 25 steps and at the last, so it had only the last iterate to return" in out
    assert "held-out pixels; not in the paper)" in out
    (tmp_path / "in").mkdir()
    (tmp_path / "m.png").rename(tmp_path / "in" / "m.png")
    assert main(["batch", str(tmp_path / "in"), "--task", "masked", "--mask", str(tmp_path / "m_mask.png"),
                 "-o", str(tmp_path / "b"), *args, "--quiet"]) == 0
    record = json.loads((tmp_path / "b" / "manifest.jsonl").read_text().splitlines()[-1])
    assert record["batch"]["refine"] == DEFAULT_INPAINT_REFINE and "blend_up_to" not in record["batch"]
    assert record["batch"]["biharmonic_up_to"] == GroupedFill.BIHARMONIC_UP_TO and record["status"] == "done"
    # a batch of the twenty-first session's default (grouped-fill up to 768 px) says why it does not resume
    manifest = tmp_path / "b" / "manifest.jsonl"
    made = json.loads(manifest.read_text().splitlines()[-1])
    made["batch"]["blend_up_to"] = made["batch"].pop("biharmonic_up_to")  # as such a batch recorded it,
    made["key"] = "0" * len(made["key"])  # and its fingerprint of those settings
    manifest.write_text(json.dumps(made) + "\n")
    capsys.readouterr()
    assert main(["batch", str(tmp_path / "in"), "--task", "masked", "--mask", str(tmp_path / "m_mask.png"),
                 "-o", str(tmp_path / "b"), *args, "--quiet"]) == 2
    said = capsys.readouterr().err
    assert "the default refinement of then, grouped-fill up to 768 px, which no option gives now" in said
    # one asked for with --refine grouped-fill before this session: said too
    made["batch"].pop("blend_up_to")
    manifest.write_text(json.dumps(made) + "\n")
    assert main(["batch", str(tmp_path / "in"), "--task", "masked", "--mask", str(tmp_path / "m_mask.png"),
                 "-o", str(tmp_path / "b"), "--refine", "grouped-fill", *args, "--quiet"]) == 2
    said = capsys.readouterr().err
    assert "(biharmonic_up_to; the images got grouped-fill as it was before it filled images above 768 px" in said
    assert "to resume as made" not in said
    assert main(["batch", str(tmp_path / "in"), "--task", "masked", "--mask", str(tmp_path / "m_mask.png"),
                 "-o", str(tmp_path / "b"), "--refine", "none", *args, "--quiet"]) == 2  # nor does any other option
    said = capsys.readouterr().err
    assert "which no option gives now" in said and "to resume as made" not in said
    # a batch made under an earlier default (the biharmonic blend up to 768 px) says why it does not resume
    # (made here with --refine biharmonic, its manifest then given the size limit such a batch recorded)
    assert main(["batch", str(tmp_path / "in"), "--task", "masked", "--mask", str(tmp_path / "m_mask.png"),
                 "-o", str(tmp_path / "c"), "--refine", "biharmonic", *args, "--quiet"]) == 0
    manifest = tmp_path / "c" / "manifest.jsonl"
    manifest.write_text(manifest.read_text().replace('"refine": "biharmonic"',
                                                     '"refine": "biharmonic", "blend_up_to": 768'))
    capsys.readouterr()
    assert main(["batch", str(tmp_path / "in"), "--task", "masked", "--mask", str(tmp_path / "m_mask.png"),
                 "-o", str(tmp_path / "c"), *args, "--quiet"]) == 2
    said = capsys.readouterr().err
    assert "the default refinement of then, biharmonic up to 768 px, which no option gives now" in said
    assert "to resume as made" not in said


def test_the_default_blend_has_limits_and_never_loses_the_fit(monkeypatch):
    import linr.tasks as tasks
    from linr.refine import MIN_HELD_OUT, BiharmonicBlend
    from linr.tasks import resolve_refine

    def holes(h, w):
        return linr.masked(np.zeros((h, w, 3), np.float32), np.ones((h, w), bool))

    assert resolve_refine(None, [holes(769, 8)], preset=None) == "grouped-fill"  # from the fit alone (below)
    # too few held-out pixels: the fixed weight, not a least-squares jump to 0 or 1
    rng = np.random.default_rng(2)
    photo, fit = rng.random((12, 12, 3)), rng.random((12, 12, 3))
    observed = np.ones((12, 12), bool)
    observed[::2, ::2] = False
    few = np.zeros((12, 12), bool)
    few.flat[1:2 * MIN_HELD_OUT - 2:2] = True  # observed pixels (odd columns), fewer than MIN_HELD_OUT
    few &= observed
    blender = BiharmonicBlend()
    blender(photo, observed, fit, few)
    assert few.sum() < MIN_HELD_OUT and blender.used == 0.5 and blender.chosen_on is None
    enough = observed & (rng.random((12, 12)) < 0.5)
    blender(photo, observed, fit, enough)
    assert enough.sum() >= MIN_HELD_OUT and blender.chosen_on == int(enough.sum())
    # the members of a blended ensemble are given the same held-out pixels by restore
    seen = []
    real = tasks.fit_ensemble

    def spy(obs, config, stops, **kw):
        result = real(obs, config, stops, **kw)
        seen.extend(rule.held_out_mask(0) for rule in stops)
        return result

    monkeypatch.setattr(tasks, "fit_ensemble", spy)
    yy, xx = np.mgrid[0:40, 0:40] / 40.0
    clean = np.stack([np.sin(4 * xx) * 0.4 + 0.5, np.cos(3 * yy) * 0.4 + 0.5, xx * yy], -1)
    mask = rng.random((40, 40)) < 0.5
    tiny = dict(steps=3, model=ModelConfig(width=16, depth=2), progress=False)
    linr.restore(linr.masked(clean * mask[..., None], mask), ensemble=2, **tiny)
    assert len(seen) == 2 and np.array_equal(*seen) and seen[0].sum() >= MIN_HELD_OUT
    # a blend that runs out of memory keeps the finished fit's image
    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(tasks, "refine_image", no_memory)
    result = linr.restore(linr.masked(clean * mask[..., None], mask), **tiny)
    assert result.settings["refine"]["skipped"].startswith("out of memory") and result.image.shape == (40, 40, 3)


def _texture(h: int, w: int) -> np.ndarray:
    """A repeating RGB texture (stripes of period 6 and 8 over a gradient): what a grouped filter
    finds again elsewhere in the image and a biharmonic inpainting smooths away."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    stripes = 0.5 + 0.3 * np.sign(np.sin(2 * np.pi * xx / 6)) * 0.5 + 0.15 * np.cos(2 * np.pi * yy / 8)
    return np.stack([stripes, 0.6 * stripes + 0.2 * xx / w, 0.3 + 0.4 * yy / h], -1)


def test_grouped_fill_keeps_the_observed_pixels_and_fills_a_texture_better_than_biharmonic():
    from skimage.metrics import peak_signal_noise_ratio

    from linr.refine import BiharmonicBlend, GroupedFill

    rng = np.random.default_rng(4)
    clean = _texture(48, 48)
    observed = rng.random((48, 48)) < 0.25
    photo = clean * observed[..., None]
    fit = (clean + rng.normal(0, 0.08, clean.shape)).astype(np.float32)  # a fit that is near, not exact
    filler = GroupedFill()
    filled = filler(photo, observed, fit)
    assert filled.dtype == np.float32 and filled.shape == clean.shape
    np.testing.assert_array_equal(filled[observed], photo[observed].astype(np.float32))  # taken as noise-free
    assert filler.describe() == {"name": "grouped-fill", "passes": 20, "sigmas": [30.0, 2.0], "finish": 5, "step": 4,
                                 "start_weight": 0.5}  # no held-out pixels: the fill of a half-half start
    blended = BiharmonicBlend()(photo, observed, fit)
    psnr = lambda image: peak_signal_noise_ratio(clean, np.clip(image, 0, 1), data_range=1)
    assert psnr(filled) > psnr(blended) + 1.0, (psnr(filled), psnr(blended))
    # the start is the biharmonic blend: one pass at a tiny level changes little of it
    one = GroupedFill(passes=1, start=0.01, end=0.01)(photo, observed, fit)
    assert np.abs(one - blended)[~observed].max() < 0.02
    with pytest.raises(ValueError, match="need passes >= 1"):
        GroupedFill(passes=0)
    whole = GroupedFill()
    np.testing.assert_array_equal(whole(clean, np.ones((48, 48), bool), fit, observed), clean.astype(np.float32))
    assert whole.describe()["nothing_missing"] is True  # nothing to fill: the photo itself


def test_the_grouped_filter_gives_the_same_image_with_any_number_of_threads():
    from linr.refine import GroupedWiener, _starts

    rng = np.random.default_rng(3)
    clean = _texture(72, 90)
    noisy = clean + rng.normal(0, 0.1, clean.shape)
    one = GroupedWiener(step=2, threads=1)
    assert len(_starts(72, 8, 2)) > 2 * one.BLOCK[0]  # three or more blocks of references
    out = one(noisy, clean, 0.1)
    for threads in (2, 3, None):
        np.testing.assert_array_equal(GroupedWiener(step=2, threads=threads)(noisy, clean, 0.1), out)
    with pytest.raises(ValueError, match="threads 0"):
        GroupedWiener(threads=0)
    colour = np.repeat(clean[..., :1], 3, axis=2) * [1.0, 0.8, 0.6]
    colour_noisy = colour + rng.normal(0, 0.1, colour.shape)
    wiener = PilotWiener(threads=1)(colour_noisy, colour, 0.1)  # its channels filtered side by side
    for threads in (2, 3):
        np.testing.assert_array_equal(PilotWiener(threads=threads)(colour_noisy, colour, 0.1), wiener)
    with pytest.raises(ValueError, match="threads 0"):
        PilotWiener(threads=0)


def test_a_per_channel_mask_keeps_each_channels_values_and_is_filled_per_channel():
    from skimage.restoration import inpaint_biharmonic

    from linr.operators import Mask
    from linr.problem import Observation
    from linr.refine import BiharmonicBlend, GroupedFill

    clean = _texture(40, 40)
    cfa = np.zeros((3, 40, 40), bool)  # a Bayer colour filter array: no pixel is seen in every channel
    cfa[0, 0::2, 0::2] = cfa[1, 0::2, 1::2] = cfa[1, 1::2, 0::2] = cfa[2, 1::2, 1::2] = True
    observed = cfa.transpose(1, 2, 0)
    photo = clean * observed
    fit = np.full_like(clean, 0.5)
    per_channel = np.stack([inpaint_biharmonic(photo[..., c], ~observed[..., c]) for c in range(3)], -1)
    np.testing.assert_allclose(BiharmonicBlend._fill(photo, observed, fit), per_channel, atol=1e-12)
    none_seen = observed.copy()
    none_seen[..., 2] = False  # a channel with nothing observed takes the fallback
    np.testing.assert_array_equal(BiharmonicBlend._fill(photo, none_seen, fit)[..., 2], fit[..., 2])
    shared = cfa[:1]  # a (1, H, W) mask: one mask for the three channels
    np.testing.assert_allclose(BiharmonicBlend._fill(photo, shared.transpose(1, 2, 0), fit),
                               inpaint_biharmonic(photo, ~shared[0], channel_axis=-1), atol=1e-12)
    filled = GroupedFill()(photo, observed, fit, held_out=np.ones((40, 40), bool))
    np.testing.assert_array_equal(filled[observed], photo[observed].astype(np.float32))  # each channel's values
    assert np.isfinite(filled).all()  # (its quality on a colour filter array is not measured)
    # through restore with the default refinement (a traceback after the fit before)
    obs = Observation(photo.astype(np.float32), Mask(cfa.astype(np.float32)), None, "masked")
    import torch

    from linr.stopping import AUTO_BLENDED, parse_stop

    rule = parse_stop(AUTO_BLENDED)
    rule.reset()
    (trained,) = rule.prepare([obs])
    held = rule.held_out_mask(0)  # drawn from the pixels seen in some channel, not in the first channel only
    assert held.any() and (held & ~cfa[0]).any() and not (held & ~cfa.any(0)).any()
    kept = trained.operator.forward(torch.ones(1, 3, 40, 40))[0].numpy() > 0  # every channel keeps its own pixels
    np.testing.assert_array_equal(kept, cfa & ~held[None])
    result = linr.restore(obs, steps=3, model=ModelConfig(width=16, depth=2), progress=False)
    assert result.settings["refine"]["name"] == "grouped-fill"
    np.testing.assert_array_equal(result.image[observed], photo[observed].astype(np.float32))
    one = Observation((photo * cfa[0][..., None]).astype(np.float32), Mask(cfa[:1].astype(np.float32)), None, "masked")
    assert linr.restore(one, steps=3, model=ModelConfig(width=16, depth=2), progress=False).settings["refine"][
        "chosen_on_held_out_pixels"] > 0  # a (1, H, W) mask on an RGB photo (a ValueError after the fit before)


def test_grouped_fill_weighs_its_blend_on_held_out_pixels_it_never_saw():
    from skimage.restoration import inpaint_biharmonic

    from linr.refine import GroupedFill, simplex_weights

    rng = np.random.default_rng(9)
    clean = _texture(40, 44)
    observed = rng.random((40, 44)) < 0.3
    held = observed & (rng.random((40, 44)) < 0.25)
    photo = clean * observed[..., None]
    fit = (clean + rng.normal(0, 0.05, clean.shape)).astype(np.float32)
    filler = GroupedFill(passes=6, finish=2)
    out = filler(photo, observed, fit, held)
    # recomputed independently, from a photo whose held-out values are garbage: the candidates never read them
    garbled = photo.copy()
    garbled[held] = rng.random((int(held.sum()), 3))
    seen = observed & ~held
    biharmonic = inpaint_biharmonic(garbled, ~seen, channel_axis=-1)
    a = fit[held].ravel().astype(np.float64) - biharmonic[held].ravel()
    w0 = float(np.clip(np.linalg.lstsq(a[:, None], photo[held].ravel() - biharmonic[held].ravel(), rcond=None)[0][0], 0, 1))
    blind = GroupedFill(passes=6, finish=2).fill(garbled, seen, w0 * fit + (1 - w0) * biharmonic, 6, 30.0)
    w = simplex_weights(photo[held], [fit[held], biharmonic[held], blind[held]])
    report = filler.describe()
    assert report["chosen_on_held_out_pixels"] == int(held.sum()) and report["start_weight"] == round(w0, 4)
    assert report["weights"] == {"fit": round(w[0], 4), "biharmonic": round(w[1], 4), "filled": round(w[2], 4)}
    assert w[2] > 0.5  # on a texture the fill carries the blend
    finished = GroupedFill().fill(photo, observed, blind, 2, 5.0)  # then every observed pixel taken in
    full = inpaint_biharmonic(photo, ~observed, channel_axis=-1)
    np.testing.assert_allclose(out, np.where(observed[..., None], photo, w[0] * fit + w[1] * full + w[2] * finished),
                               atol=1e-5)
    np.testing.assert_array_equal(out[observed], photo[observed].astype(np.float32))  # kept as observed


def test_grouped_fill_above_its_biharmonic_size_starts_from_the_fit_and_weighs_fit_and_fill(monkeypatch):
    import skimage.restoration

    from linr.cli import _fill_line
    from linr.refine import GroupedFill, simplex_weights

    rng = np.random.default_rng(5)
    clean = _texture(40, 44)
    observed = rng.random((40, 44)) < 0.3
    held = observed & (rng.random((40, 44)) < 0.25)
    photo = clean * observed[..., None]
    fit = (clean + rng.normal(0, 0.05, clean.shape)).astype(np.float32)
    monkeypatch.setattr(GroupedFill, "BIHARMONIC_UP_TO", 43)  # this image (44 px wide) counts as large
    monkeypatch.setattr(GroupedFill, "BIHARMONIC_MISSING_UP_TO", 100)  # and misses too many pixels

    def no_solve(*args, **kwargs):
        raise AssertionError("no biharmonic inpainting above the limit")

    monkeypatch.setattr(skimage.restoration, "inpaint_biharmonic", no_solve)
    filler = GroupedFill(passes=6, finish=2)
    assert not filler.uses_biharmonic(observed) and filler.uses_biharmonic(observed[:43, :43])
    # no held-out pixels: the fill of the fit's image, every observed pixel put back after each pass
    alone = filler(photo, observed, fit)
    np.testing.assert_allclose(alone, filler.fill(photo, observed, fit, 6, 30.0), atol=1e-6)
    assert filler.describe()["biharmonic"] is False and "weights" not in filler.describe()
    # held-out pixels: blind to them (garbage there changes nothing), then fit and fill weighed on them
    out = filler(photo, observed, fit, held)
    garbled = photo.copy()
    garbled[held] = rng.random((int(held.sum()), 3))
    seen = observed & ~held
    blind = GroupedFill().fill(garbled, seen, fit, 6, 30.0)
    w = simplex_weights(photo[held], [fit[held], blind[held]])
    report = filler.describe()
    assert report["weights"] == {"fit": round(w[0], 4), "filled": round(w[1], 4)} and report["biharmonic"] is False
    finished = GroupedFill().fill(photo, observed, blind, 2, 5.0)
    np.testing.assert_allclose(out, np.where(observed[..., None], photo, w[0] * fit + w[1] * finished), atol=1e-5)
    assert "from the fit's image; the result weighs fit / filled " in _fill_line([report])
    assert "from the fit's image; the fill alone" in _fill_line([{**report, "weights": None}])


def test_grouped_fill_above_its_biharmonic_size_with_few_pixels_missing_uses_biharmonic_inpainting(monkeypatch):
    """A photo larger than :attr:`GroupedFill.BIHARMONIC_UP_TO` with few pixels missing (a scan's
    scratches) starts from the biharmonic blend, as a small one does: the solve's unknowns are the
    missing pixels; counted in any channel of a per-channel mask."""
    from linr.refine import GroupedFill

    monkeypatch.setattr(GroupedFill, "BIHARMONIC_UP_TO", 20)
    monkeypatch.setattr(GroupedFill, "BIHARMONIC_MISSING_UP_TO", 30)
    filler = GroupedFill()
    observed = np.ones((24, 40), bool)
    observed[5, :30] = False  # a scratch of 30 px
    assert filler.uses_biharmonic(observed)
    observed[9, 3] = False  # 31 missing
    assert not filler.uses_biharmonic(observed)
    per_channel = np.ones((24, 40, 3), bool)
    per_channel[5, :20, 0] = False
    per_channel[7, :11, 2] = False  # 31 pixels missing in some channel
    assert not filler.uses_biharmonic(per_channel)
    assert filler.uses_biharmonic(per_channel[:20, :20])  # within the side: whatever is missing
    rng = np.random.default_rng(3)
    clean = _texture(24, 40)
    observed = np.ones((24, 40), bool)
    observed[5, :30] = False
    photo = clean * observed[..., None]
    fit = (clean + rng.normal(0, 0.05, clean.shape)).astype(np.float32)
    filler(photo, observed, fit)
    assert "biharmonic" not in filler.describe() and "start_weight" in filler.describe()


def test_grouped_fill_through_restore_and_the_command_line(tmp_path, capsys):
    from PIL import Image

    from linr.cli import main
    from linr.stopping import HeldOutPick

    rng = np.random.default_rng(12)
    clean = _texture(32, 36)
    observed = rng.random((32, 36)) < 0.4
    photo = linr.masked(clean * observed[..., None], observed)
    rule = HeldOutPick(fraction=0.2, every=2)
    result = linr.restore(photo, refine="grouped-fill", stop=rule, steps=4, model=ModelConfig(width=16, depth=2),
                          progress=False)
    done = result.settings["refine"]
    assert done["name"] == "grouped-fill" and done["chosen_on_held_out_pixels"] == int(rule.held_out_mask().sum()) > 0
    assert result.fitted_image is not None and result.model is None
    Image.fromarray((clean * observed[..., None] * 255).astype(np.uint8)).save(tmp_path / "m.png")
    Image.fromarray((observed * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    tiny = ["--steps", "4", "--width", "16", "--depth", "2", "--device", "cpu"]
    assert main(["restore", "--masked", str(tmp_path / "m.png"), "--mask", str(tmp_path / "mask.png"),
                 "--refine", "grouped-fill", "--stop", "pick:0.2:2", "-o", str(tmp_path / "o.png"), *tiny]) == 0
    out = capsys.readouterr().out
    assert "refined: grouped-fill (the missing pixels filled by 20 passes of grouped filtering" in out
    assert "; the result weighs fit / biharmonic / filled " in out and " held-out pixels; not in the paper)" in out
    assert main(["restore", "--masked", str(tmp_path / "m.png"), "--mask", str(tmp_path / "mask.png"),
                 "--refine", "grouped-fill", "--stop", "fixed", "-o", str(tmp_path / "p.png"), *tiny]) == 0
    assert "; the fill alone: too few or no pixels held out" in capsys.readouterr().out
    # frames of which some had no missing pixel: the others say how they were filled
    from linr.cli import _fill_line

    whole = {"name": "grouped-fill", "passes": 20, "nothing_missing": True}
    filled = {"name": "grouped-fill", "passes": 20, "chosen_on_held_out_pixels": 40,
              "weights": {"fit": 0.1, "biharmonic": 0.0, "filled": 0.9}}
    assert "weighs fit / biharmonic / filled 0.10 / 0.00 / 0.90, chosen on 40 held-out" in _fill_line([whole, filled])
    assert _fill_line([whole]) == "refined: grouped-fill (no pixel is missing: the photo itself; not in the paper)"


def test_grouped_views_reproduces_the_views_and_beats_the_projection_alone_on_a_texture(tmp_path, capsys):
    import torch
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    from linr.cli import main
    from linr.projection import project_onto_views
    from linr.refine import GroupedViews
    from linr.simulate import lanczos_downscale

    clean = _texture(48, 48)
    small = lanczos_downscale(clean.astype(np.float32), 2)
    views = [linr.lowres(small, 2)]
    # a fit that is smooth where the scene is sharp: the low-res view upsampled by PIL's bicubic
    fit = np.stack([np.asarray(Image.fromarray(small[..., c]).resize((48, 48), Image.BICUBIC)) for c in range(3)], -1)
    refiner = GroupedViews()
    out = refiner(fit, views)
    down = views[0].operator.forward(torch.from_numpy(out.astype(np.float64)).permute(2, 0, 1)[None])
    np.testing.assert_allclose(down[0].permute(1, 2, 0).numpy(), small, atol=1e-4)
    psnr = lambda image: peak_signal_noise_ratio(clean, np.clip(image, 0, 1), data_range=1)
    projected = project_onto_views(fit, views)[0]
    assert psnr(out) > psnr(projected) + 0.5, (psnr(out), psnr(projected))
    assert refiner.describe()["name"] == "grouped-views" and refiner.describe()["projected"]["converged"]
    # views that cannot all be met: the fit's image back
    clash = [linr.lowres(small, 2), linr.lowres(small * 0.5, 2)]
    np.testing.assert_array_equal(GroupedViews(passes=2)(fit, clash), fit.astype(np.float32))
    Image.fromarray((small * 255).astype(np.uint8)).save(tmp_path / "lr.png")
    assert main(["restore", "--lowres", str(tmp_path / "lr.png"), "--factor", "2", "--refine", "grouped-views",
                 "--steps", "3", "--width", "16", "--depth", "2", "--device", "cpu", "-o", str(tmp_path / "o.png")]) == 0
    assert "refined: grouped-views (the fit's image made to reproduce the low-res view exactly, then 20 passes" in \
        capsys.readouterr().out


def test_a_lone_low_res_photo_is_refined_by_grouped_views_by_default_but_at_x2_to_x4(tmp_path, capsys):
    import torch
    from PIL import Image

    from linr.cli import main
    from linr.simulate import lanczos_downscale
    from linr.tasks import DEFAULT_SR_REFINE, default_refine, resolve_stop

    clean = _texture(48, 48)  # x8: where grouped-views is the default (x2, x3, x4: grouped-views-examples)
    small = lanczos_downscale(clean.astype(np.float32), 8)
    view = linr.lowres(small, 8)
    assert DEFAULT_SR_REFINE == "grouped-views"
    tiny = dict(steps=3, model=ModelConfig(width=16, depth=2), progress=False)
    result = linr.restore(view, **tiny)
    done = result.settings["refine"]
    assert done["name"] == DEFAULT_SR_REFINE and done["projected"]["converged"] and result.fitted_image is not None
    assert result.settings["stop"]["name"] == "fixed" and resolve_stop([view], refine=DEFAULT_SR_REFINE) is None
    down = view.operator.forward(torch.from_numpy(result.image.astype(np.float64)).permute(2, 0, 1)[None])
    np.testing.assert_allclose(down[0].permute(1, 2, 0).numpy(), small, atol=1e-4)  # reproduces the photo
    # what keeps the fit as it is: the paper preset, 'none', a kept model, another downsampler,
    # a noisy photo beside it, a zero weight, an image under 8 px
    assert linr.restore(view, preset="paper", **tiny).settings.get("refine") is None
    assert linr.restore(view, refine="none", **tiny).settings.get("refine") is None
    assert linr.restore(view, keep_model=True, **tiny).settings.get("refine") is None
    assert default_refine([linr.lowres(small, 2, kernel="bicubic")], preset=None) is None
    assert default_refine([view, linr.noisy(clean)], preset=None) != DEFAULT_SR_REFINE
    assert default_refine([linr.lowres(small, 2, weight=0.0)], preset=None) is None
    assert default_refine([linr.lowres(np.zeros((1, 2, 3), np.float32), 4)], preset=None) is None
    # any size, in tiles too (since the twenty-third session; up to 768 px whole before): the tiles'
    # image made to reproduce the whole photo
    assert default_refine([linr.lowres(np.zeros((300, 300, 3), np.float32), 4)], preset=None) == "grouped-views-examples"
    assert default_refine([linr.lowres(np.zeros((300, 300, 3), np.float32), 3)], preset=None) == "grouped-views-examples"
    assert default_refine([linr.lowres(np.zeros((300, 300, 3), np.float32), 8)], preset=None) == DEFAULT_SR_REFINE
    assert default_refine([view], preset=None) == DEFAULT_SR_REFINE
    wide = lanczos_downscale(_texture(110, 110).astype(np.float32), 5)  # x5: not measured, grouped-views
    wide_view = linr.lowres(wide, 5)
    tiled = linr.restore(wide_view, tile="65:32", **tiny)
    assert len(tiled.settings["tiles"]) > 1 and tiled.settings["refine"]["name"] == DEFAULT_SR_REFINE
    assert tiled.settings["refine"]["projected"]["converged"]
    down = wide_view.operator.forward(torch.from_numpy(tiled.image.astype(np.float64)).permute(2, 0, 1)[None])
    np.testing.assert_allclose(down[0].permute(1, 2, 0).numpy(), wide, atol=1e-4)
    # the command line says it is the default, and a batch records it with its size limit
    (tmp_path / "in").mkdir()
    Image.fromarray((np.clip(small, 0, 1) * 255).round().astype(np.uint8)).save(tmp_path / "in" / "lr.png")
    args = ["--factor", "8", "--steps", "3", "--width", "16", "--depth", "2", "--device", "cpu"]
    out, record = lowres_restore_and_batch(tmp_path, "lr.png", args, capsys)
    assert "refined: grouped-views" in out and "the default for one low-res photo, --refine none" in out
    assert record["batch"]["refine"] == DEFAULT_SR_REFINE and "refine_up_to" not in record["batch"]
    assert record["status"] == "done"
    # a batch of the twenty-second session's default (grouped-views up to 768 px) says why it does not resume
    manifest = tmp_path / "b" / "manifest.jsonl"
    made = json.loads(manifest.read_text().splitlines()[-1])
    made["batch"]["refine_up_to"] = 768  # as such a batch recorded it,
    made["key"] = "0" * len(made["key"])  # with its fingerprint of those settings
    manifest.write_text(json.dumps(made) + "\n")
    capsys.readouterr()
    assert main(["batch", str(tmp_path / "in"), "--task", "lowres", "-o", str(tmp_path / "b"), *args, "--quiet"]) == 2
    said = capsys.readouterr().err
    assert "grouped-views of images restored whole up to 768 px, which no option gives now" in said
    assert "to resume as made" not in said
    # a batch made before this default (no refinement recorded) resumes with --refine none, as the error says
    assert main(["batch", str(tmp_path / "in"), "--task", "lowres", "-o", str(tmp_path / "c"), *args,
                 "--refine", "none", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["batch", str(tmp_path / "in"), "--task", "lowres", "-o", str(tmp_path / "c"), *args, "--quiet"]) != 0
    assert "--refine none to resume as made" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "in"), "--task", "lowres", "-o", str(tmp_path / "c"), *args,
                 "--refine", "none", "--quiet"]) == 0


def test_every_refiner_says_what_it_does_for_the_note_of_a_run_that_drops_it():
    # `linr restore --save-model` names what the default refinement would have done from `does`; a
    # refiner registered without one would fail there (before the fit).
    from linr.cli import dropped_refinement_note
    from linr.refine import REFINERS

    assert dropped_refinement_note("biharmonic", model_named=False) == (
        "--save-model / --render-*: the image is not blended after the fit (the model renders the fit's own image, "
        "fitted for a fixed number of steps; without them the held-out best iterate is blended with a biharmonic "
        "inpainting, --refine)")
    assert dropped_refinement_note("grouped", model_named=False) == (
        "--save-model / --render-*: the image is not refined after the fit (the model renders the fit's own image; "
        "without them the noisy photo is filtered again with the fit as the pilot, --refine), and the fit is the "
        "paper's SIREN 7x256 rather than the refinement's narrow 7x64 pilot (slower); the image is lower in PSNR "
        "(the refinement with its pilot added 1.1-1.3 dB on the benchmark crops of 128 and 256 px, BENCHMARKS.md)")
    assert ", and the fit is" not in dropped_refinement_note("grouped", model_named=True)

    for name, refiner in REFINERS.items():
        assert refiner.name == name and dropped_refinement_note(name, model_named=False).endswith(
            ("--refine)", "BENCHMARKS.md)")), name
        assert isinstance(refiner.does, str) and refiner.does and refiner.does[-1] not in ".,;", name
        assert getattr(refiner, "verb", "refined") in ("refined", "blended"), name


def test_progress_reports_nest_into_their_spans_and_phases_and_go_nowhere_unheard():
    from linr import progress

    heard = []
    progress.report(0.5)  # nobody listens: nothing happens
    with progress.listening(lambda phase, done: heard.append((phase, round(done, 6)))):
        progress.report(0.25)
        with progress.span(0.5, 1.0):
            progress.report(0.5)
            with progress.span(0.0, 0.5):
                progress.report(1.0)
            with progress.phase("learning"):
                progress.report(0.5)
                with progress.span(0.5, 1.0):
                    progress.report(2.0)  # clipped to the piece
            progress.report(1.0)
    progress.report(1.0)
    assert heard == [("", 0.25), ("", 0.75), ("", 0.75), ("learning", 0.0), ("learning", 0.5), ("learning", 1.0),
                     ("", 1.0)]


def test_the_grouped_filter_says_its_progress_and_filters_the_same(monkeypatch):
    from linr import progress

    rng = np.random.default_rng(3)
    clean = rng.random((40, 30, 3))
    noisy, pilot = (clean + rng.normal(0, 0.1, clean.shape)).astype(np.float32), clean.astype(np.float32)
    monkeypatch.setattr(GroupedWiener, "BLOCK", (2, 4))  # several blocks
    heard = []
    with progress.listening(lambda phase, done: heard.append(done)):
        said = GroupedWiener(threads=2)(noisy, pilot, 0.1)
    assert np.array_equal(said, GroupedWiener(threads=2)(noisy, pilot, 0.1))
    assert heard == sorted(heard) and heard[-1] == 1.0 and len(heard) > 5
    share = GroupedWiener(threads=2).prefilter_share(40, 30)  # one thread, then the blocks on two workers
    assert GroupedWiener(threads=1).prefilter_share(40, 30) == GroupedWiener.PREFILTER_SHARE < share
    assert any(0 < done <= share for done in heard) and share in heard  # the prefilter's passes within its share


def test_a_restore_says_how_far_its_refinement_has_come_unless_quiet(monkeypatch, capsys):
    import linr.tasks

    monkeypatch.setattr(linr.tasks, "REFINE_PROGRESS_EVERY", 0.0)
    ticks = iter(range(0, 10**6, 2))  # a clock two seconds on at every look: a refinement of seconds
    monkeypatch.setattr(linr.tasks.time, "perf_counter", lambda: float(next(ticks)))
    rng = np.random.default_rng(4)
    photo = [linr.noisy(np.clip(rng.random((40, 40, 3)), 0, 1))]
    small = ModelConfig(width=8, depth=1)
    linr.restore(photo, steps=2, stop="fixed", model=small, device="cpu")
    lines = capsys.readouterr().err.splitlines()
    assert any(re.fullmatch(r"refining: \d+% after \d+ s(, about \d+ s left)?", line) for line in lines), lines
    linr.restore(photo, steps=2, stop="fixed", model=small, device="cpu", progress=False)
    assert "refining:" not in capsys.readouterr().err


def test_the_refinements_lines_count_each_phase_from_its_start_floor_the_share_and_survive_a_closed_stderr(
        monkeypatch, capsys):
    import linr.tasks

    clock = {"now": 100.0}
    monkeypatch.setattr(linr.tasks.time, "perf_counter", lambda: clock["now"])
    say = linr.tasks._refine_progress(None)

    def at(seconds, phase, done):
        clock["now"] = 100.0 + seconds
        say(phase, done)

    at(10, "", 0.2)  # under REFINE_PROGRESS_EVERY since the start: nothing
    at(40, "", 0.996)  # floored: never 100% before it is done
    at(45, "", 0.5)  # begun again (a second run of the filter): its pace counts from here
    at(80, "", 0.75)
    at(81, "learning", 0.0)  # a phase's start is heard
    at(120, "learning", 0.5)
    assert capsys.readouterr().err.splitlines() == [
        "refining: 99% after 40 s",
        "refining: 75% after 35 s, about 12 s left",
        "refining: learning, 50% after 39 s, about 39 s left"]
    closed = open(__file__)  # a file not open for writing: print raises, the refinement goes on
    closed.close()
    monkeypatch.setattr("sys.stderr", closed)
    at(200, "learning", 0.9)
    at(300, "learning", 0.95)
    assert linr.tasks._refine_progress(False) is None


def test_a_large_photo_with_few_pixels_missing_fits_the_narrow_inpainting_pilot(tmp_path, capsys, monkeypatch):
    """The defaults' inpainting of a photo above :data:`INPAINT_PILOT_ABOVE` px fits
    :data:`DEFAULT_INPAINT_PILOT_MODEL` at its rate and budget where at most
    :data:`INPAINT_PILOT_MISSING_UP_TO` of the pixels are missing (a scan's scratches), the wider
    :data:`DEFAULT_INPAINT_MODEL` where more are or the photo is no larger; a network named, a stop
    rule given, a kept model or no refinement keep their own; the command line says which."""
    import linr.tasks
    import dataclasses

    from PIL import Image

    from linr.cli import main
    from linr.tasks import (DEFAULT_INPAINT_MODEL, DEFAULT_INPAINT_PILOT_LR, DEFAULT_INPAINT_PILOT_MODEL,
                            DEFAULT_INPAINT_PILOT_STEPS, INPAINT_PILOT_MISSING_UP_TO, inpainting_pilot, missing_share,
                            resolve)
    import torch

    from linr.operators import Mask

    clean = _texture(36, 40)
    scratched = np.ones((36, 40), bool)
    scratched[:, 17:19] = False  # 5% missing
    sparse = np.random.default_rng(4).random((36, 40)) < 0.3
    assert (~scratched).mean() <= INPAINT_PILOT_MISSING_UP_TO < (~sparse).mean()
    few, many = (linr.masked(clean * m[..., None], m) for m in (scratched, sparse))
    assert not inpainting_pilot([few], preset=None)  # 40 px: within the size restored whole
    monkeypatch.setattr(linr.tasks, "INPAINT_PILOT_ABOVE", 39)
    narrower = linr.masked(few.image[:, :39], scratched[:, :39])
    assert inpainting_pilot([few], preset=None) and not inpainting_pilot([narrower], preset=None)
    _, config = resolve([few])
    assert config.model == DEFAULT_INPAINT_PILOT_MODEL and config.steps == DEFAULT_INPAINT_PILOT_STEPS
    assert config.lr == DEFAULT_INPAINT_PILOT_LR
    _, config = resolve([many])
    assert config.model == DEFAULT_INPAINT_MODEL and config.steps == 500 and config.lr == 1e-4
    assert not inpainting_pilot([few], preset=None, model=ModelConfig(width=64))
    assert not inpainting_pilot([few], preset=None, stop="fixed")
    assert not inpainting_pilot([few], preset=None, refine="none")
    assert not inpainting_pilot([few], preset=None, keep_model=True)
    assert not inpainting_pilot([few], preset="paper")
    per_channel = np.ones((3, 36, 40), np.float32)  # a colour filter array's kind of mask, (C, H, W)
    per_channel[0, :4] = 0
    per_channel[2, 4:8] = 0  # 22% missing in some channel, 11% in each
    assert missing_share(dataclasses.replace(few, operator=Mask(torch.from_numpy(per_channel)))) == pytest.approx(8 / 36)
    result = linr.restore(few, steps=3, progress=False)
    assert result.settings["model"] == dataclasses.asdict(DEFAULT_INPAINT_PILOT_MODEL) and result.steps_run == 3
    Image.fromarray((clean * scratched[..., None] * 255).astype(np.uint8)).save(tmp_path / "m.png")
    Image.fromarray((scratched * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    assert main(["restore", "--masked", str(tmp_path / "m.png"), "--mask", str(tmp_path / "mask.png"),
                 "--steps", "3", "--device", "cpu", "-o", str(tmp_path / "o.png")]) == 0
    out = capsys.readouterr().out
    assert "network: siren 7x64 at omega_0 15, 3 steps at learning rate 0.001 (the default for a photo above 39 px " \
           f"with at most {INPAINT_PILOT_MISSING_UP_TO:.0%} of its pixels missing" in out


def test_a_noisy_photo_beside_a_photo_with_missing_pixels_gets_grouped_fill_from_the_joint_fit():
    """The joint fit follows the noisy photo at the masked photo's observed pixels too (its weight
    0.1): its image came back 0.2 to 1.7 dB under those pixels put back, and 1 to 5 dB under the masked
    photo alone on smooth crops (BENCHMARKS.md, sixty-eighth session). The default refinement is
    grouped-fill with the joint fit as its pilot and its blend chosen on the held-out pixels, as a
    masked photo alone gets: the observed pixels kept as they are."""
    import linr
    from linr.tasks import default_refine

    rng = np.random.default_rng(0)
    clean = rng.random((48, 48, 3)).astype(np.float32)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    observed = rng.random((48, 48)) < 0.5
    masked = linr.masked(clean * observed[..., None], observed)
    assert default_refine([linr.noisy(noisy), masked], preset=None) == "grouped-fill"
    assert default_refine([linr.noisy(noisy), masked], preset="paper") is None
    result = linr.restore([linr.noisy(noisy), masked], steps=30, progress=False,
                          model=linr.ModelConfig(width=32, depth=3))
    assert result.settings["refine"]["name"] == "grouped-fill"
    assert result.settings["refine"]["chosen_on_held_out_pixels"] > 0  # the joint fit's held-out pixels
    np.testing.assert_array_equal(result.image[observed], clean[observed])
    with pytest.raises(InputError, match="needs one photo with missing pixels .* alone or beside noisy photos"):
        linr.restore([linr.noisy(noisy), linr.lowres(noisy[::2, ::2], 2)], steps=1, refine="grouped-fill",
                     progress=False)
