"""A blurred photo of point sources fitted on a widened scale (linr.headroom)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import convolve

import linr
from linr.errors import InputError
from linr.headroom import HEADROOM, headroom_for, peak_contrast, point_sources
from linr.operators import gaussian_kernel


def gaussian_psf() -> np.ndarray:
    """The PSF of the tests' star fields: 11 x 11, sigma 1.5."""
    return gaussian_kernel(11, 1.5)


def star_field(n: int = 32, seed: int = 0, sky: float = 20.0) -> tuple[np.ndarray, np.ndarray]:
    """A few stars on a sky, blurred and photon-counted: (counts float64 (n, n), the PSF)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    clean = np.full((n, n), sky)
    for py, px, flux in zip(rng.uniform(4, n - 4, 5), rng.uniform(4, n - 4, 5), rng.uniform(500, 3000, 5)):
        clean += flux * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * 0.7 ** 2)) / (2 * np.pi * 0.7 ** 2)
    psf = gaussian_psf()
    return rng.poisson(convolve(clean, psf, mode="reflect")).astype(np.float64), psf


def natural(n: int = 32) -> np.ndarray:
    """A smooth scene of broad shapes with noise (no point sources), on [0, 1]."""
    rng = np.random.default_rng(1)
    y, x = np.mgrid[:n, :n] / n
    scene = 0.5 + 0.3 * np.sin(6 * x) * np.cos(4 * y) + 0.1 * (x > 0.5)
    return np.clip(convolve(scene, gaussian_psf(), mode="reflect") + rng.normal(0, 0.02, scene.shape), 0, 1)


def test_a_star_field_is_of_point_sources_and_a_scene_is_not():
    counts, _ = star_field()
    assert peak_contrast(counts) > 5 and point_sources(counts / counts.max(), gaussian_psf())
    assert peak_contrast(natural()) < 2.5 and not point_sources(natural(), gaussian_psf())
    assert peak_contrast(np.full((8, 8), 0.3)) == 0.0  # a flat photo: nothing stands out
    assert peak_contrast(np.pad(np.ones((1, 1)), 7)) == float("inf")  # one bright pixel on black: q10 == q90
    from linr.headroom import POINT_SOURCES_FROM, psf_likeness

    psf = gaussian_psf()
    assert psf_likeness(counts, psf) > 0.4
    rng = np.random.default_rng(2)
    hot = 50 + rng.normal(0, 3, (32, 32))
    hot[10, 20] = 5000  # a hot pixel: far above the rest, but no blurred point
    assert peak_contrast(hot) > POINT_SOURCES_FROM and psf_likeness(hot, psf) < 0.2 and not point_sources(hot, psf)
    edge = np.full((64, 64), 0.1) + rng.normal(0, 0.002, (64, 64))
    edge[:, 40:42] = 0.9  # a flat crop with a bright line: high contrast, the shape of no point
    edge = convolve(edge, psf, mode="reflect")
    assert peak_contrast(edge) > POINT_SOURCES_FROM and not point_sources(edge, psf)


def test_the_headroom_applies_to_one_blurred_photo_of_point_sources_alone():
    counts, psf = star_field()
    photo = (counts / counts.max()).astype(np.float32)
    blurred = [linr.blurred(photo, psf)]
    assert headroom_for(blurred, preset=None, keep_model=False) == HEADROOM
    assert headroom_for(blurred, preset="paper", keep_model=False) == 1.0  # the paper's mathematics kept
    assert headroom_for(blurred, preset=None, keep_model=True) == 1.0
    assert headroom_for(blurred, preset=None, keep_model=False, headroom="off") == 1.0
    assert headroom_for([linr.blurred(natural().astype(np.float32), psf)], preset=None, keep_model=False) == 1.0
    assert headroom_for([linr.noisy(photo)], preset=None, keep_model=False) == 1.0  # a noisy photo: never
    assert headroom_for([linr.blurred(natural().astype(np.float32), psf)], preset=None, keep_model=False,
                        headroom=2.5) == 2.5  # given: any blurred photo alone
    for bad, why in ((0.5, "a factor >= 1"), ("lots", "a factor >= 1"), (float("nan"), "a factor >= 1")):
        with pytest.raises(InputError, match=why):
            headroom_for(blurred, preset=None, keep_model=False, headroom=bad)
    with pytest.raises(InputError, match="a preset keeps the photo's scale"):
        headroom_for(blurred, preset="paper", keep_model=False, headroom=3)
    with pytest.raises(InputError, match="one blurred photo restored alone"):
        headroom_for([linr.noisy(photo)], preset=None, keep_model=False, headroom=3)


def test_a_widened_fit_is_the_photo_divided_and_the_result_multiplied_back():
    counts, psf = star_field()
    photo = (counts / counts.max()).astype(np.float32)
    common = dict(steps=3, stop="fixed", refine="none", progress=False, seed=0, device="cpu")
    widened = linr.restore(linr.blurred(photo, psf), **common)
    assert widened.settings["headroom"]["factor"] == HEADROOM and "point sources" in widened.settings["headroom"]["why"]
    by_hand = linr.restore(linr.blurred(photo / np.float32(HEADROOM), psf), headroom="off", **common)
    assert "headroom" not in by_hand.settings
    np.testing.assert_allclose(widened.image, by_hand.image * HEADROOM, rtol=1e-6, atol=1e-6)
    assert widened.model is None  # a model kept by the way renders the widened scale: dropped
    # a reference is compared on the photo's scale; its per-step PSNR on the fit's, against the reference divided alike
    reference = photo[..., None]
    measured = linr.restore(linr.blurred(photo, psf), reference=reference, **common)
    assert measured.metrics["standard"]["psnr"] == pytest.approx(
        linr.metrics.psnr(reference, np.clip(measured.image, 0, 1)), abs=1e-6)
    divided = linr.restore(linr.blurred(photo / np.float32(HEADROOM), psf), reference=reference / np.float32(HEADROOM),
                           headroom="off", **common)
    assert measured.history["psnr"] == pytest.approx(divided.history["psnr"], abs=1e-6)
    assert "divided alike" in measured.settings["headroom"]["history"]


def test_the_stop_is_decided_on_the_photo_s_own_scale():
    """Divided by 4 the photo's noise reads under NOISY_BLUR_FROM: the held-out stop is still taken."""
    from linr.noise import estimate_noise_sigma
    from linr.tasks import NOISY_BLUR_FROM, plan_restore

    counts, psf = star_field(48, seed=3)
    photo = (counts / counts.max()).astype(np.float32)
    measured = estimate_noise_sigma(photo) * 255
    assert measured >= NOISY_BLUR_FROM > measured / HEADROOM  # the case: noisy as it is, quiet widened
    plan = plan_restore([linr.blurred(photo, psf)])
    assert plan.headroom == HEADROOM and plan.blur_noisy is True
    assert plan.rule is not None and type(plan.rule).__name__ == "HoldOut"
    assert plan_restore([linr.blurred(photo, psf)], headroom="off").rule is not None  # as before


def test_linr_restore_says_the_widened_scale_and_refuses_a_bad_factor(tmp_path, capsys):
    import tifffile

    from linr.cli import main

    from .conftest import run_err

    counts, psf = star_field()
    tifffile.imwrite(tmp_path / "stars.tif", counts.astype(np.float32))  # floats beyond [0, 1]: mapped 0..max
    np.save(tmp_path / "psf.npy", psf)
    args = ["restore", "--blurred", str(tmp_path / "stars.tif"), "--kernel", str(tmp_path / "psf.npy"), "--steps", "3",
            "--stop", "fixed", "--refine", "none", "--device", "cpu", "--quiet"]
    out = tmp_path / "out.tif"
    assert main([*args, "-o", str(out), "--report", str(tmp_path / "r.json")]) == 0
    said = capsys.readouterr().out
    assert "fitted on a scale 4x the blurred photo's value range: a photo of point sources" in said, said
    assert json.loads((tmp_path / "r.json").read_text())["settings"]["headroom"]["factor"] == HEADROOM
    assert main([*args, "-o", str(tmp_path / "kept.tif"), "--save-model", str(tmp_path / "m.pt")]) == 0
    captured = capsys.readouterr()
    assert "this blurred photo of point sources is fitted on its own value range" in captured.err, captured.err
    assert "fitted on a scale" not in captured.out
    err = run_err(capsys, [*args, "-o", str(tmp_path / "bad.tif"), "--headroom", "0.5"])
    assert "headroom must be auto, off or a factor >= 1" in err and not (tmp_path / "bad.tif").exists()


def test_a_deblurring_batch_from_before_the_headroom_says_how_to_resume(tmp_path, capsys):
    import tifffile

    import linr.batch as batch_module
    from linr.cli import main

    from .conftest import run_err

    counts, psf = star_field()
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", counts.astype(np.float32))
    common = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--task", "blurred", "--kernel",
              "gaussian:5:1.0", "--steps", "2", "--width", "16", "--depth", "2", "--refine", "none",
              "--device", "cpu", "--threads", "1", "--quiet"]
    settings = batch_module._settings

    def as_before(args, model):  # the sixty-fifth session's: no headroom
        made = settings(args, model)
        assert made.pop("headroom") == [HEADROOM, 3.5, 0.4, 3]
        return made

    with pytest.MonkeyPatch.context() as m:
        m.setattr(batch_module, "_settings", as_before)
        assert main(common) == 0
    err = run_err(capsys, common)
    assert "fitted on their own scale, the default until the sixty-sixth session" in err, err
    assert "--headroom off to resume as made" in err
    assert main([*common, "--headroom", "off"]) == 0  # resumes: nothing left to do


def test_a_saturated_star_is_left_out_of_the_data_term_where_the_scale_is_widened():
    from linr.headroom import saturated_plateau
    from linr.operators import LeftOut
    from linr.tasks import plan_restore

    counts, psf = star_field()
    assert saturated_plateau(counts) is None  # one brightest pixel: nothing clipped
    tied = np.array(counts)
    tied[2, 2] = tied[20, 20] = tied.max() + 1  # two pixels tied by chance, apart: no plateau
    assert saturated_plateau(tied) is None
    tied[2, 3] = tied[3, 2] = tied[2, 2]  # three touching: a plateau of those three
    assert saturated_plateau(tied).sum() == 3
    opaque = np.ones(tied.shape, bool)
    opaque[:5, :5] = False  # where they are transparent (values mirrored in): none over the opaque pixels
    assert saturated_plateau(tied, opaque) is None
    ceiling = np.round(0.8 * counts.max())
    clipped = np.minimum(counts, ceiling)
    photo = (clipped / ceiling).astype(np.float32)
    plateau = saturated_plateau(photo)
    assert plateau is not None and plateau.sum() == (clipped >= ceiling).sum() >= 3
    plan = plan_restore([linr.blurred(photo, psf)])
    assert plan.headroom == HEADROOM and plan.saturated == plateau.sum()
    assert isinstance(plan.obs[0].operator, LeftOut) and not plan.obs[0].operator.kept[plateau].any()
    assert not isinstance(plan_restore([linr.blurred(photo, psf)], headroom=4).obs[0].operator, LeftOut)  # given: as is
    result = linr.restore(linr.blurred(photo, psf), steps=2, stop="fixed", refine="none", progress=False,
                          device="cpu")
    assert result.settings["headroom"]["saturated_left_out"] == plateau.sum()


def test_a_saturated_star_in_a_photo_with_transparent_pixels_leaves_both_out():
    from linr.kinds import left_out_where_transparent
    from linr.operators import LeftOut
    from linr.tasks import plan_restore

    counts, psf = star_field()
    ceiling = np.round(0.8 * counts.max())
    photo = (np.minimum(counts, ceiling) / ceiling).astype(np.float32)
    alpha = np.ones(photo.shape, np.float32)
    alpha[:3, :3] = 0  # a transparent corner
    plan = plan_restore([left_out_where_transparent(linr.blurred(photo, psf), alpha)])
    kept = plan.obs[0].operator.kept
    assert isinstance(plan.obs[0].operator, LeftOut) and not kept[:3, :3].any() and not kept[photo >= 1].any()
    assert kept.sum() == photo.size - 9 - (photo >= 1).sum()


def test_a_clean_reference_brighter_than_the_blurred_photo_is_measured_on_its_counts(tmp_path, capsys):
    """The clean counts peak far above the blurred photo's maximum: the PSNR printed is that of the
    output file against them with data range their peak (clipped at 1, a field at 32.1 dB read 14.76)."""
    import tifffile
    from skimage.metrics import peak_signal_noise_ratio

    from linr.cli import main

    rng = np.random.default_rng(5)
    n = 32
    yy, xx = np.mgrid[:n, :n]
    clean = np.full((n, n), 20.0)
    for py, px, flux in zip(rng.uniform(4, n - 4, 5), rng.uniform(4, n - 4, 5), rng.uniform(500, 3000, 5)):
        clean += flux * np.exp(-((yy - py) ** 2 + (xx - px) ** 2) / (2 * 0.7 ** 2)) / (2 * np.pi * 0.7 ** 2)
    psf = gaussian_psf()
    counts = rng.poisson(convolve(clean, psf, mode="reflect")).astype(np.float32)
    assert clean.max() > 2 * counts.max()  # the case
    tifffile.imwrite(tmp_path / "stars.tif", counts)
    tifffile.imwrite(tmp_path / "clean.tif", clean.astype(np.float32))
    np.save(tmp_path / "psf.npy", psf)
    out = tmp_path / "out.tif"
    assert main(["restore", "--blurred", str(tmp_path / "stars.tif"), "--kernel", str(tmp_path / "psf.npy"),
                 "--steps", "40", "--stop", "fixed", "--refine", "none", "--device", "cpu", "--quiet",
                 "--reference", str(tmp_path / "clean.tif"), "-o", str(out), "--report", str(tmp_path / "r.json")]) == 0
    said = capsys.readouterr().out
    restored = tifffile.imread(out).astype(np.float64)  # in counts, as the photo
    peak = float(clean.astype(np.float32).max())
    expected = peak_signal_noise_ratio(clean.astype(np.float32).astype(np.float64), np.clip(restored, 0, peak),
                                       data_range=peak)
    std = json.loads((tmp_path / "r.json").read_text())["metrics"]["standard"]
    assert std["psnr"] == pytest.approx(expected, abs=0.01)
    assert std["data_range"] == pytest.approx(peak / counts.max(), rel=1e-5)
    assert f"PSNR {std['psnr']:.2f} dB" in said and "clipped to the reference's range 0.." in said, said
    blurred = peak_signal_noise_ratio(clean.astype(np.float32).astype(np.float64), counts.astype(np.float64),
                                      data_range=peak)
    assert f"PSNR {blurred:.2f} dB" in said  # the input against it, on the same range


def clipped_blur(n: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A natural 32-px grey crop blurred (Gaussian, sigma 2), brightened so that its brightest 15%
    reach white, with noise of 5/255, 8-bit: (photo float32 (n, n), kernel)."""
    from skimage import data

    crop = data.camera()[200:200 + n, 200:200 + n] / 255.0
    k = gaussian_kernel(13, 2.0)
    blurred = convolve(crop, k, mode="reflect")
    noise = np.random.default_rng(0).normal(0, 5 / 255, blurred.shape)
    photo = np.round(np.clip(blurred / np.quantile(blurred, 0.85) + noise, 0, 1) * 255) / 255
    return photo.astype(np.float32), k


def test_a_blurred_photo_clipped_at_white_is_fitted_with_its_data_term_censored_there(monkeypatch):
    """Its pixels at white say only that the scene blurred is at least white: fitted as values, a
    bright area's deblurred edges overshot (+0.2 to +1.3 dB censored on 64-px crops clipped on 8-20%
    of their pixels, BENCHMARKS.md). Not with --clipping ignore, a preset, an unclipped photo, or a
    plateau at a maximum below white."""
    from linr.fidelity import SquaredError, SquaredErrorCensoredAtWhite
    from linr.headroom import censored_at_white, clipped_at_white
    from linr.models import ModelConfig

    photo, k = clipped_blur()
    at_white = int(np.count_nonzero(photo >= 1.0))
    assert at_white > 20 and clipped_at_white(linr.blurred(photo, k)) == at_white
    obs = censored_at_white([linr.blurred(photo, k)], preset=None, clipping="auto")
    assert type(obs[0].fidelity) is SquaredErrorCensoredAtWhite
    for other in (censored_at_white([linr.blurred(photo, k)], preset=None, clipping="ignore"),
                  censored_at_white([linr.blurred(photo, k)], preset="paper", clipping="auto"),
                  censored_at_white([linr.blurred(photo * np.float32(0.9), k)], preset=None, clipping="auto"),
                  censored_at_white([linr.blurred(np.clip(photo, 0, 0.99), k)], preset=None, clipping="auto")):
        assert type(other[0].fidelity) is SquaredError
    calls = []
    value = SquaredErrorCensoredAtWhite.value
    monkeypatch.setattr(SquaredErrorCensoredAtWhite, "value", lambda self, *a, **k: calls.append(1) or value(self, *a, **k))
    small = dict(steps=5, stop="fixed", refine="none", progress=False, model=ModelConfig(width=32, depth=3))
    result = linr.restore(linr.blurred(photo, k), **small)
    assert result.settings["clipped_at_white"]["pixels"] == at_white and len(calls) >= 5  # the fit's term
    assert result.settings["observations"][0]["data_term"]["name"] == "squared_error_censored_at_white"
    calls.clear()
    plain = linr.restore(linr.blurred(photo, k), clipping="ignore", **small)
    assert "clipped_at_white" not in plain.settings and not calls
