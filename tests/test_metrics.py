"""Our metrics against scikit-image (the independent reference)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from linr.metrics import evaluate, psnr, rgb_to_y, ssim


@pytest.fixture
def pair(rng):
    ref = rng.random((40, 48, 3))
    img = np.clip(ref + rng.normal(0, 0.08, ref.shape), -0.1, 1.1)
    return ref, img


def test_psnr_matches_skimage(pair):
    ref, img = pair
    assert math.isclose(psnr(ref, img), peak_signal_noise_ratio(ref, img, data_range=1.0), rel_tol=1e-12)
    assert psnr(ref, ref) == math.inf


def test_ssim_standard_matches_skimage(pair):
    ref, img = pair
    img = np.clip(img, 0, 1)
    sk = structural_similarity(ref, img, channel_axis=-1, data_range=1.0, gaussian_weights=True,
                               sigma=1.5, use_sample_covariance=False)
    assert math.isclose(ssim(ref, img), sk, rel_tol=1e-9, abs_tol=1e-12)


def test_ssim_paper_matches_old_skimage_defaults(pair):
    ref, img = pair
    sk = structural_similarity(ref, img, channel_axis=-1, data_range=2.0)  # 7x7 uniform, sample cov
    ours = evaluate(ref, img, convention="paper")["ssim"]
    assert math.isclose(ours, sk, rel_tol=1e-9)
    assert ours > ssim(ref, np.clip(img, 0, 1))  # the paper's convention inflates SSIM


def test_y_channel_and_crop(pair):
    ref, img = pair
    img = np.clip(img, 0, 1)
    y = rgb_to_y(ref)
    assert y.shape == (40, 48, 1)
    assert np.allclose(rgb_to_y(np.ones((1, 1, 3))), 235 / 255) and np.allclose(rgb_to_y(np.zeros((1, 1, 3))), 16 / 255)
    expected = peak_signal_noise_ratio(rgb_to_y(ref)[4:-4, 4:-4], rgb_to_y(img)[4:-4, 4:-4], data_range=1.0)
    assert math.isclose(psnr(ref, img, y_channel=True, crop=4), expected, rel_tol=1e-12)
    with pytest.raises(ValueError):
        psnr(ref, img, crop=30)


def test_conventions_differ_as_documented(pair):
    ref, img = pair  # img has values outside [0, 1]
    std = evaluate(ref, img)
    paper = evaluate(ref, img, convention="paper")
    assert std["psnr"] > paper["psnr"]  # clipping helps; the paper measured unclipped
    assert math.isclose(paper["psnr"], psnr(ref, img))
    deblur = evaluate(ref, img, convention="paper", task="deblur")
    r8 = np.round(np.clip(ref, 0, 1) * 255) / 255
    i8 = np.round(np.clip(img, 0, 1) * 255) / 255
    assert math.isclose(deblur["psnr"], psnr(r8, i8, y_channel=True))
    with pytest.raises(ValueError):
        evaluate(ref, img, convention="nope")


def test_shape_mismatch():
    with pytest.raises(ValueError, match="differ"):
        psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_a_grey_image_is_measured_on_its_channel_for_y_and_rounded_for_the_papers_deblur(rng):
    """Super-resolution tables measure a grey image's own values where an RGB one's luma is
    read; the paper's deblurring convention rounds to 8 bits whatever the channel count."""
    ref = rng.random((20, 24, 1))
    img = np.clip(ref + rng.normal(0, 0.05, ref.shape), -0.05, 1.05)
    assert psnr(ref, img, y_channel=True, crop=2) == psnr(ref, img, crop=2)
    assert evaluate(ref, img, y_channel=True)["y_channel_note"] == "a grey image: measured on its values"
    assert "y_channel_note" not in evaluate(np.dstack([ref] * 3), np.dstack([img] * 3), y_channel=True)
    assert ssim(ref, np.clip(img, 0, 1), y_channel=True) == ssim(ref, np.clip(img, 0, 1))
    deblur = evaluate(ref, img, convention="paper", task="deblur")
    r8, i8 = (np.round(np.clip(x[..., 0], 0, 1) * 255).astype(np.uint8) for x in (ref, img))
    assert math.isclose(deblur["psnr"], peak_signal_noise_ratio(r8, i8, data_range=255), rel_tol=1e-12)
    assert deblur["psnr_on"] == "grey, 8-bit rounded"
    assert evaluate(ref, img, convention="paper")["psnr_on"] == "grey, unclipped"
    with pytest.raises(ValueError, match="RGB"):
        psnr(rng.random((8, 8, 4)), rng.random((8, 8, 4)), y_channel=True)


def test_metrics_on_some_pixels_match_skimage_on_those_pixels(pair):
    """``where``: PSNR over the chosen pixels (every channel), SSIM averaged over the windows
    centred on them: scikit-image's PSNR of those pixels, and the mean of its full SSIM map (cropped
    to the windows inside the image, as ours) over them; all pixels: the plain metrics."""
    ref, img = pair
    img = np.clip(img, 0, 1)
    where = np.zeros(ref.shape[:2], bool)
    where[:, 18:] = True
    where[5:9, 2:6] = True
    assert math.isclose(psnr(ref, img, where=where),
                        peak_signal_noise_ratio(ref[where], img[where], data_range=1.0), rel_tol=1e-12)
    _, full = structural_similarity(ref, img, channel_axis=-1, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                    use_sample_covariance=False, full=True)
    inside = (slice(5, -5), slice(5, -5))  # 11-px windows lying wholly inside the image
    by_hand = float(np.mean([full[..., c][inside][where[inside]].mean() for c in range(3)]))
    assert math.isclose(ssim(ref, img, where=where), by_hand, rel_tol=1e-9)
    everywhere = np.ones(ref.shape[:2], bool)
    assert math.isclose(ssim(ref, img, where=everywhere), ssim(ref, img), rel_tol=1e-12)
    measured = evaluate(ref, img, where=where)
    assert measured["measured_pixels"] == f"{int(where.sum())} of {where.size}"
    assert "measured_pixels" not in evaluate(ref, img)


def test_identical_images_say_why_their_psnr_is_infinite(pair):
    ref, _ = pair
    for convention in ("standard", "paper"):
        measured = evaluate(ref, ref, convention=convention)
        assert measured["psnr"] == math.inf and "identical" in measured["psnr_note"]
    assert "psnr_note" not in evaluate(ref, np.clip(ref + 0.01, 0, 1))


def test_a_restoration_given_a_reference_carries_its_returned_image_s_metrics() -> None:
    """``result.metrics`` is of the returned (refined) image, as ``linr restore`` prints it; the
    history's PSNR follows the fit's iterates (a new user read its last entry, 6 dB under)."""
    import linr

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:40, 0:40] / 40
    clean = np.stack([0.5 + 0.3 * np.sin(6 * xx + 3 * yy)] * 3, -1)
    noisy = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    result = linr.restore([linr.noisy(noisy)], reference=clean, steps=20, device="cpu", progress=False)
    expected = peak_signal_noise_ratio(clean, np.clip(result.image.astype(np.float64), 0, 1), data_range=1.0)
    assert result.metrics["standard"]["psnr"] == pytest.approx(expected, abs=1e-5)
    assert result.to_dict()["metrics"] == result.metrics
    assert "refine" in result.settings and result.metrics["paper"]["convention"] == "paper"
    assert linr.restore([linr.noisy(noisy)], steps=2, refine="none", device="cpu", progress=False).metrics is None
    many = linr.restore_many([[linr.noisy(noisy)]], references=[clean], steps=20, device="cpu", progress=False)
    assert many[0].metrics["standard"]["psnr"] == pytest.approx(
        peak_signal_noise_ratio(clean, np.clip(many[0].image.astype(np.float64), 0, 1), data_range=1.0), abs=1e-5)


def test_a_reference_beyond_the_photo_s_range_is_measured_on_its_own(pair):
    """A reference in a photo's units may reach past its white (a deblurred star field's clean peaks):
    the image is clipped to the reference's range and measured with its span, not clipped at 1."""
    ref, img = pair
    ref, img = ref * 5.0, img * 5.0  # peaks 5x the photo's white
    std = evaluate(ref, img, convention="standard")
    span = float(ref.max())
    clipped = np.clip(img, 0, span)
    assert math.isclose(std["psnr"], peak_signal_noise_ratio(ref, clipped, data_range=span), rel_tol=1e-12)
    sk = structural_similarity(ref, clipped, channel_axis=-1, data_range=span, gaussian_weights=True,
                               sigma=1.5, use_sample_covariance=False)
    assert math.isclose(std["ssim"], sk, rel_tol=1e-9, abs_tol=1e-12)
    assert std["data_range"] == pytest.approx(span) and "beyond [0, 1]" in std["range_note"]
    # the same picture on [0, 1] measures the same
    assert std["psnr"] == pytest.approx(evaluate(ref / span, img / span, convention="standard")["psnr"], abs=1e-9)
    within = evaluate(pair[0], pair[1], convention="standard")
    assert "data_range" not in within and "range_note" not in within  # [0, 1] as before
