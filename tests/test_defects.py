"""Pixels sharper than a blurred photo's blur allows: hot pixels, cosmic rays (linr.defects)."""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.ndimage import convolve

import linr
from linr.config import ModelConfig
from linr.defects import Defects, defect_scale, defects_of, impossible_pixels, sharpest_ratio, without_defects
from linr.errors import InputError
from linr.operators import gaussian_kernel


def star_field(n: int = 40, seed: int = 0, sky: float = 20.0, psf_sigma: float = 1.5):
    """(clean counts, PSF, blurred Poisson counts) of a few stars on a sky."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    clean = np.full((n, n), sky)
    for py, px, flux in zip(rng.uniform(5, n - 5, 6), rng.uniform(5, n - 5, 6), rng.uniform(300, 3000, 6)):
        clean += flux * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * 0.7 ** 2)) / (2 * np.pi * 0.7 ** 2)
    psf = gaussian_kernel(2 * round(3.5 * psf_sigma) + 1, psf_sigma)
    return clean, psf, rng.poisson(convolve(clean, psf, mode="reflect")).astype(np.float64)


def with_defects(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``counts`` with a hot pixel at 40x their maximum and a cosmic ray's 4-px track at 3x; the mask."""
    out, mask = counts.copy(), np.zeros(counts.shape, bool)
    top = counts.max()
    out[12, 30] = 40 * top
    mask[12, 30] = True
    out[25, 8:12] += 3 * top
    mask[25, 8:12] = True
    return out, mask


def test_the_kernel_s_sharpest_ratio_is_a_point_s_image_at_its_centre():
    for sigma in (0.8, 1.5, 3.0):  # a sampled Gaussian: (k(1) + k(-1)) / 2 k(0) along each axis
        vertical, horizontal = sharpest_ratio(gaussian_kernel(2 * round(3.5 * sigma) + 1, sigma))
        assert vertical == pytest.approx(math.exp(-1 / (2 * sigma ** 2)), rel=1e-9)
        assert horizontal == pytest.approx(vertical, rel=1e-12)
    motion = np.zeros((9, 9))
    motion[4, :] = 1 / 9  # a blur along rows: nothing bounds a photo's sharpness across them
    assert sharpest_ratio(motion) == (0.0, 0.5)


def test_no_scene_blurred_by_the_kernel_has_a_defect():
    """The bound holds for any scene that is nowhere negative: points alone (the sharpest there
    are), lines, and a photo's values, blurred exactly (no noise: only the values' step as margin)."""
    rng = np.random.default_rng(3)
    kernels = [gaussian_kernel(9, 1.0), gaussian_kernel(15, 2.0), np.full((1, 7), 1 / 7)]
    for kernel in kernels:
        for _ in range(3):
            scene = np.zeros((48, 48))
            scene[rng.integers(0, 48, 30), rng.integers(0, 48, 30)] = rng.uniform(0.1, 1, 30)
            scene[rng.integers(0, 48), :] += 0.3  # a line
            blurred = convolve(scene, kernel, mode="reflect")
            assert impossible_pixels(blurred / blurred.max(), kernel) is None


def test_a_hot_pixel_and_a_cosmic_ray_are_found_and_nothing_else():
    for sigma, seed, sky in ((1.0, 1, 20.0), (1.5, 2, 0.0), (2.5, 3, 200.0)):
        _, psf, counts = star_field(seed=seed, sky=sky, psf_sigma=sigma)
        assert impossible_pixels(counts / counts.max(), psf) is None
        spoilt, mask = with_defects(counts)
        found = impossible_pixels(spoilt / spoilt.max(), psf)
        np.testing.assert_array_equal(found, mask)
        # transparent pixels are neither tested nor read
        kept = np.ones(mask.shape, bool)
        kept[10:15, 28:33] = False
        found = impossible_pixels(spoilt / spoilt.max(), psf, kept=kept)
        np.testing.assert_array_equal(found, mask & kept)


def test_a_bright_star_s_tail_is_no_defect():
    """A star of 1e5 counts is seen far into the kernel's tail: an Airy pattern's rings and a motion
    blur's anti-aliased ends are part of the bound (a reviewer's cases, flagged with its core alone)."""
    from scipy.ndimage import rotate
    from scipy.special import j1

    r = np.hypot(*np.mgrid[-15:16, -15:16]) * 3.8317 / 2.0 + 1e-9
    airy = (2 * j1(r) / r) ** 2
    line = np.zeros((11, 11))
    line[5, 1:-1] = 1
    motion = np.clip(rotate(line, 30, reshape=False, order=1), 0, None)
    rng = np.random.default_rng(5)
    for kernel in (airy / airy.sum(), motion / motion.sum()):
        clean = np.full((64, 64), 10.0)
        clean[32, 32] += 1e5
        blurred = convolve(clean, kernel, mode="reflect")
        for _ in range(3):
            counts = rng.poisson(blurred).astype(np.float64)
            assert impossible_pixels(counts / counts.max(), kernel) is None
        spoilt = counts.copy()
        spoilt[10, 50] = 5e4  # a hot pixel on the sky is still found
        np.testing.assert_array_equal(np.argwhere(impossible_pixels(spoilt / spoilt.max(), kernel)), [[10, 50]])


def test_a_kernel_wider_than_the_photo_s_blur_leaves_nothing_out():
    """A star field as sharp as its stars, given a kernel of sigma 2: its stars read as defects,
    too many to be: none left out, and the count said."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:64, :64]
    sharp = np.full((64, 64), 0.02)
    for py, px in rng.uniform(3, 61, (40, 2)):
        sharp += np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * 0.6 ** 2))
    said = defects_of([linr.blurred((sharp / sharp.max()).astype(np.float32), gaussian_kernel(15, 2.0))], preset=None)
    assert said.pixels is None and said.too_many > 16


def test_defects_apply_to_one_blurred_photo_alone_with_no_preset():
    _, psf, counts = star_field()
    spoilt, mask = with_defects(counts)
    photo = (spoilt / spoilt.max()).astype(np.float32)
    np.testing.assert_array_equal(defects_of([linr.blurred(photo, psf)], preset=None).pixels, mask)
    assert defects_of([linr.blurred(photo, psf)], preset="paper").pixels is None
    assert defects_of([linr.blurred(photo, psf)], preset=None, defects="off").pixels is None
    assert defects_of([linr.blurred(photo, psf), linr.noisy(photo)], preset=None).pixels is None
    with pytest.raises(InputError, match="defects must be auto or off"):
        defects_of([linr.blurred(photo, psf)], preset=None, defects="yes")


def test_the_fit_s_scale_is_the_brightest_pixel_left_where_a_defect_was_the_maximum():
    image = np.array([[0.1, 0.2], [1.0, 0.4]])
    assert defect_scale(image, np.array([[False, False], [True, False]])) == pytest.approx(0.4)
    assert defect_scale(image, np.array([[True, False], [False, False]])) == 1.0  # the maximum is the scene's
    _, psf, counts = star_field()
    spoilt, mask = with_defects(counts)
    photo = (spoilt / spoilt.max()).astype(np.float32)
    found = defects_of([linr.blurred(photo, psf)], preset=None)
    assert found.maximum == pytest.approx(defect_scale(photo, mask), rel=1e-12)
    [fitted], scale = without_defects([linr.blurred(photo, psf)], found)
    assert scale == pytest.approx(counts.max() / spoilt.max(), rel=1e-6)
    assert fitted.operator.kept.sum() == mask.size - mask.sum()
    assert float(fitted.image[~mask].max()) == pytest.approx(1.0, rel=1e-6)


def test_a_restore_leaves_defects_out_and_comes_back_on_the_photo_s_scale():
    from linr.kinds import left_out_where_transparent

    _, psf, counts = star_field()
    spoilt, mask = with_defects(counts)
    photo = (spoilt / spoilt.max()).astype(np.float32)
    common = dict(steps=3, stop="fixed", refine="none", progress=False, seed=0, device="cpu", headroom="off",
                  model=ModelConfig(width=32, depth=3))
    restored = linr.restore(linr.blurred(photo, psf), **common)
    scale = counts.max() / spoilt.max()
    assert restored.settings["defects"]["left_out"] == 5 and restored.settings["defects"]["rescaled"] is True
    assert restored.settings["defects"]["maximum"] == pytest.approx(scale, rel=1e-6)
    by_hand = left_out_where_transparent(linr.blurred(photo, psf), (~mask).astype(np.float32))  # defects filled
    assert float(by_hand.image.max()) == pytest.approx(scale, rel=1e-6)  # the brightest pixel left
    by_hand = dataclasses.replace(by_hand, image=by_hand.image / np.float32(scale))
    np.testing.assert_allclose(restored.image, linr.restore(by_hand, **common).image * np.float32(scale),
                               rtol=1e-5, atol=1e-7)
    off = linr.restore(linr.blurred(photo, psf), **{**common, "defects": "off"})
    assert "defects" not in off.settings
    # a reference is measured on the scene's range, as the photo without its defects would be mapped
    reference = (counts / spoilt.max()).astype(np.float32)[..., None]
    measured = linr.restore(linr.blurred(photo, psf), reference=reference, **common)
    expected = linr.metrics.psnr(reference / np.float32(scale), np.clip(measured.image / np.float32(scale), 0, 1))
    assert measured.metrics["standard"]["psnr"] == pytest.approx(expected, abs=1e-6)
    assert "without its defects" in measured.metrics["standard"]["scale_note"]
    # a kept model renders the photo's scale: fitted on it (defects left out all the same), measured alike
    kept = linr.restore(linr.blurred(photo, psf), reference=reference, keep_model=True, **common)
    assert kept.model is not None and kept.settings["defects"]["rescaled"] is False
    assert kept.metrics["standard"]["psnr"] == pytest.approx(
        linr.metrics.psnr(reference / np.float32(scale), np.clip(kept.image / np.float32(scale), 0, 1)), abs=1e-6)


def test_linr_restore_says_the_defects_and_measures_on_the_scene_s_range(tmp_path, capsys):
    import tifffile
    from skimage.metrics import peak_signal_noise_ratio

    from linr.cli import main

    clean, psf, counts = star_field()
    spoilt, _ = with_defects(counts)
    tifffile.imwrite(tmp_path / "stars.tif", spoilt.astype(np.float32))
    tifffile.imwrite(tmp_path / "clean.tif", clean.astype(np.float32))
    np.save(tmp_path / "psf.npy", psf)
    out = tmp_path / "out.tif"
    args = ["restore", "--blurred", str(tmp_path / "stars.tif"), "--kernel", str(tmp_path / "psf.npy"), "--steps",
            "20", "--stop", "fixed", "--refine", "none", "--width", "32", "--depth", "3", "--device", "cpu", "--quiet",
            "--reference",
            str(tmp_path / "clean.tif")]
    assert main([*args, "-o", str(out), "--report", str(tmp_path / "r.json")]) == 0
    said = capsys.readouterr().out
    assert "5 pixel(s) sharper than the blur allows" in said and "one of them the photo's maximum" in said, said
    restored = tifffile.imread(out).astype(np.float64)  # in counts, as the photo
    assert restored.max() < 5 * clean.max()  # the hot pixel is not in the image
    peak = float(clean.astype(np.float32).max())  # the reference reaches beyond the photo's range left
    expected = peak_signal_noise_ratio(clean.astype(np.float32).astype(np.float64), np.clip(restored, 0, peak),
                                       data_range=peak)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["metrics"]["standard"]["psnr"] == pytest.approx(expected, abs=0.01)
    assert report["settings"]["defects"]["left_out"] == 5
    assert f"PSNR {expected:.2f} dB" in said
    assert main([*args, "-o", str(tmp_path / "off.tif"), "--defects", "off"]) == 0
    assert "sharper than the blur allows" not in capsys.readouterr().out


def test_an_8_bit_photo_s_hot_pixel_leaves_its_metrics_on_its_type_s_range(tmp_path, capsys):
    """255 is an 8-bit photo's white whatever its brightest pixel: a hot pixel there set no range, and
    the PSNR printed is that of the output file as linr metrics reads the two files."""
    from PIL import Image
    from skimage.metrics import peak_signal_noise_ratio

    from linr.cli import main

    clean, psf, counts = star_field()
    scene = np.round(clean / clean.max() * 120).astype(np.uint8)  # a dim photo: 120 its brightest
    photo = np.round(counts / counts.max() * 60).astype(np.uint8)
    photo[12, 30] = 255
    Image.fromarray(photo).save(tmp_path / "stars.png")
    Image.fromarray(scene).save(tmp_path / "clean.png")
    np.save(tmp_path / "psf.npy", psf)
    out = tmp_path / "out.png"
    assert main(["restore", "--blurred", str(tmp_path / "stars.png"), "--kernel", str(tmp_path / "psf.npy"),
                 "--steps", "10", "--stop", "fixed", "--refine", "none", "--width", "32", "--depth", "3",
                 "--device", "cpu", "--quiet", "--reference", str(tmp_path / "clean.png"), "-o", str(out),
                 "--report", str(tmp_path / "r.json")]) == 0
    said = capsys.readouterr().out
    assert "1 pixel(s) sharper than the blur allows" in said, said
    written = np.asarray(Image.open(out), np.float64) / 255
    expected = peak_signal_noise_ratio(scene / 255.0, written, data_range=1.0)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["metrics_as_written"]["psnr"] == pytest.approx(expected, abs=1e-6)
    assert "scale_note" not in report["metrics"]["standard"]
    assert abs(report["metrics"]["standard"]["psnr"] - expected) < 0.1  # the same, before 8-bit rounding
