"""A noisy photo's transparent pixels: filled with the photo mirrored at their nearest opaque
pixel, so that the noise measured on it is the opaque pixels' (a transparent black half read as a
noise-free area and took the measured noise to 0.9 of 255 on a photo at 24). A low-res or blurred
photo's: filled so too, and left out of every data term (the fit's, the projection onto the
view, the deblurring data step), checked against dense least-squares solves in float64."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from linr.cli import main
from linr.images import write_image
from linr.noise import estimate_noise_sigma
from linr.transparent import mirrored_fill


def _noisy(size: int, sigma: float, seed: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    scene = 0.5 + 0.2 * np.sin(5 * xx) * np.cos(3 * yy)
    noise = np.random.default_rng(seed).normal(0, sigma / 255, (size, size, 3))
    return np.clip(scene[..., None] + noise, 0, 1).astype(np.float32)


def test_a_hole_beside_a_straight_edge_is_the_photo_mirrored_across_it() -> None:
    image = _noisy(32, 20)
    holes = np.zeros((32, 32), bool)
    holes[:, :10] = True  # the nearest kept pixel of (r, c) is (r, 10): the mirror point (r, 20 - c)
    filled = mirrored_fill(image, holes)
    np.testing.assert_array_equal(filled[:, 10:], image[:, 10:])
    np.testing.assert_array_equal(filled[:, :10], image[:, 20:10:-1])
    assert mirrored_fill(image, np.zeros((32, 32), bool)) is image
    assert mirrored_fill(image, np.ones((32, 32), bool)) is image


def test_the_noise_of_a_photo_mostly_transparent_is_measured_as_its_opaque_pixels_say() -> None:
    """Reference: the level of the noise added (its scene stays far from black and white)."""
    image = _noisy(128, 20, seed=1)
    truth = 20 / 255
    yy, xx = np.mgrid[0:128, 0:128]
    for holes in ((yy - 64) ** 2 + (xx - 64) ** 2 > 20 ** 2,  # a small disk kept: 92% transparent
                  np.abs(np.hypot(yy - 64, xx - 64) - 40) > 4,  # a thin ring kept
                  xx < 64):
        black = np.where(holes[..., None], 0, image)
        assert estimate_noise_sigma(black) < truth / 3  # the fault (scikit-image's drops zero coefficients)
        measured = estimate_noise_sigma(mirrored_fill(black, holes))
        assert abs(measured / truth - 1) < 0.15, (measured, truth)


def test_a_transparent_half_of_a_noisy_png_is_not_taken_for_a_noise_free_area(tmp_path, capsys) -> None:
    image = _noisy(48, 25, seed=2)
    alpha = np.full((48, 48), 255, np.uint8)
    alpha[:, :24] = 0
    rgb = np.round(image * 255).astype(np.uint8)
    rgb[:, :24] = 0
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(tmp_path / "cut.png")
    report = tmp_path / "r.json"
    assert main(["restore", "--noisy", str(tmp_path / "cut.png"), "-o", str(tmp_path / "o.png"), "--steps", "3",
                 "--device", "cpu", "--report", str(report)]) == 0
    err = capsys.readouterr().err
    assert "50.0% of its pixels are transparent (alpha below one half); --noisy fills them with the photo mirrored" in err
    settings = json.loads(report.read_text())["settings"]
    assert abs(settings["refine"]["sigma"] / 25 - 1) < 0.15, settings["refine"]["sigma"]  # the noise added
    written = np.asarray(Image.open(tmp_path / "o.png"))
    assert written.shape == (48, 48, 4) and (written[..., 3] == alpha).all()


def test_a_restoration_that_keeps_transparent_pixels_is_measured_on_its_opaque_ones(tmp_path, capsys) -> None:
    """With --reference, the PSNR printed (and reported) of the output and of the noisy input are
    those of the opaque pixels, by scikit-image, not of the filled ones the output keeps transparent."""
    from skimage.metrics import peak_signal_noise_ratio

    clean = _noisy(40, 0)
    noisy = np.round(_noisy(40, 25, seed=3) * 255).astype(np.uint8)
    alpha = np.full((40, 40), 255, np.uint8)
    alpha[:, :10] = 0
    alpha[:, 10:14] = 100  # mostly transparent: left out of the measure too
    Image.fromarray(np.dstack([noisy, alpha]), "RGBA").save(tmp_path / "cut.png")
    Image.fromarray(np.round(clean * 255).astype(np.uint8)).save(tmp_path / "clean.png")
    report = tmp_path / "r.json"
    assert main(["restore", "--noisy", str(tmp_path / "cut.png"), "-o", str(tmp_path / "o.png"), "--steps", "3",
                 "--device", "cpu", "--reference", str(tmp_path / "clean.png"), "--report", str(report)]) == 0
    said = capsys.readouterr().out
    assert "on the 65.0% of pixels that are opaque" in said
    opaque = alpha >= 128
    reference = np.round(clean * 255) / 255
    out = np.asarray(Image.open(tmp_path / "o.png"))[..., :3] / 255.0
    written = json.loads(report.read_text())
    assert written["metrics"]["standard"]["psnr"] == pytest.approx(
        peak_signal_noise_ratio(reference[opaque], out[opaque], data_range=1.0), abs=0.1)  # 8-bit output
    assert written["input_psnr"][0]["psnr"] == pytest.approx(
        peak_signal_noise_ratio(reference[opaque], noisy[opaque] / 255.0, data_range=1.0), abs=1e-3)


def test_a_restoration_given_a_reference_measures_its_output_once(tmp_path, capsys, monkeypatch) -> None:
    """The output's metrics are restore's (``result.metrics``, on the pixels the CLI names), not
    computed again by the CLI: the SSIM of a large image is seconds."""
    import linr.metrics

    clean = _noisy(24, 0)
    Image.fromarray(np.round(_noisy(24, 25, seed=1) * 255).astype(np.uint8)).save(tmp_path / "n.png")
    Image.fromarray(np.round(clean * 255).astype(np.uint8)).save(tmp_path / "clean.png")
    measured = []
    evaluate = linr.metrics.evaluate

    def counted(reference, image, *args, **kwargs):
        measured.append(kwargs.get("convention"))
        return evaluate(reference, image, *args, **kwargs)

    monkeypatch.setattr(linr.metrics, "evaluate", counted)
    assert main(["restore", "--noisy", str(tmp_path / "n.png"), "-o", str(tmp_path / "o.png"), "--steps", "2",
                 "--device", "cpu", "--reference", str(tmp_path / "clean.png"), "--quiet"]) == 0
    # the output in both conventions once, the noisy input in the standard one
    assert sorted(measured) == ["paper", "standard", "standard"], measured
    assert "PSNR" in capsys.readouterr().out


def test_the_python_api_measures_the_pixels_it_is_given() -> None:
    """``linr.restore(..., reference=, measured_pixels=)``: ``result.metrics`` of those pixels, as
    scikit-image measures them; pixels without a reference, or of another size, refused in one
    line before any fit."""
    from skimage.metrics import peak_signal_noise_ratio

    import linr
    from linr.errors import InputError

    clean, noisy = _noisy(24, 0), _noisy(24, 25, seed=2)
    where = np.zeros((24, 24), bool)
    where[4:20, 2:16] = True
    result = linr.restore(linr.noisy(noisy), steps=2, device="cpu", progress=False, reference=clean,
                          measured_pixels=where)
    image = np.clip(result.image, 0, 1)
    assert result.metrics["standard"]["psnr"] == pytest.approx(
        peak_signal_noise_ratio(clean[where], image[where], data_range=1.0), abs=1e-4)
    whole = linr.restore(linr.noisy(noisy), steps=2, device="cpu", progress=False, reference=clean)
    assert np.array_equal(whole.image, result.image)
    assert whole.metrics["standard"]["psnr"] == pytest.approx(
        peak_signal_noise_ratio(clean, image, data_range=1.0), abs=1e-4)
    with pytest.raises(InputError, match="give the reference too"):
        linr.restore(linr.noisy(noisy), steps=2, device="cpu", progress=False, measured_pixels=where)
    with pytest.raises(InputError, match=r"measured_pixels is 24x10 but the reference is 24x24 \(width x height\)"):
        linr.restore(linr.noisy(noisy), steps=2, device="cpu", progress=False, reference=clean,
                     measured_pixels=where[:10])
    many = linr.restore_many([[linr.noisy(noisy)]], steps=2, device="cpu", progress=False, references=[clean],
                             measured_pixels=[where])
    stacked = np.clip(many[0].image, 0, 1)
    assert many[0].metrics["standard"]["psnr"] == pytest.approx(
        peak_signal_noise_ratio(clean[where], stacked[where], data_range=1.0), abs=1e-4)
    with pytest.raises(InputError, match="must be a boolean mask"):
        linr.restore(linr.noisy(noisy), steps=2, device="cpu", progress=False, reference=clean,
                     measured_pixels=where.astype(np.float32))
    with pytest.raises(InputError, match="holds no pixel"):
        linr.restore(linr.noisy(noisy), steps=2, device="cpu", progress=False, reference=clean,
                     measured_pixels=np.zeros_like(where))
    # a reference of 8-bit samples, as PIL reads it, is measured on the 0-1 scale (it gave -42 dB)
    eight = linr.restore(linr.noisy(noisy), steps=2, device="cpu", progress=False,
                         reference=np.round(clean * 255).astype(np.uint8))
    assert eight.metrics["standard"]["psnr"] == pytest.approx(whole.metrics["standard"]["psnr"], abs=0.2)
    with pytest.raises(InputError, match="reference: integer type int32 is ambiguous"):  # it gave 5.8 dB
        linr.restore(linr.noisy(noisy), steps=2, device="cpu", progress=False,
                     reference=np.round(clean * 255).astype(np.int32))


def test_a_batch_measures_an_rgba_photo_on_its_opaque_pixels(tmp_path) -> None:
    """``linr batch`` records the metrics of a photo that keeps transparent pixels on its opaque
    ones, as ``linr restore`` prints them."""
    from skimage.metrics import peak_signal_noise_ratio

    (tmp_path / "in").mkdir()
    (tmp_path / "clean").mkdir()
    clean = np.round(_noisy(32, 0) * 255).astype(np.uint8)
    noisy = np.round(_noisy(32, 25, seed=4) * 255).astype(np.uint8)
    alpha = np.full((32, 32), 255, np.uint8)
    alpha[:12] = 0
    Image.fromarray(np.dstack([noisy, alpha]), "RGBA").save(tmp_path / "in" / "a.png")
    Image.fromarray(clean).save(tmp_path / "clean" / "a.png")
    assert main(["batch", str(tmp_path / "in"), "--task", "noisy", "-o", str(tmp_path / "out"), "--steps", "2",
                 "--device", "cpu", "--reference-dir", str(tmp_path / "clean"), "--quiet"]) == 0
    record = json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[0])
    opaque = alpha >= 128
    assert record["metrics"]["standard"]["measured_pixels"] == f"{int(opaque.sum())} of {opaque.size} (the opaque ones)"
    written = np.asarray(Image.open(tmp_path / "out" / "a.png"))[..., :3] / 255.0
    assert record["metrics"]["standard"]["psnr"] == pytest.approx(
        peak_signal_noise_ratio(clean[opaque] / 255.0, written[opaque], data_range=1.0), abs=0.1)


# --- a low-res or blurred photo's transparent pixels: left out of its data term ------------------


def _left_out_pixels(shape: tuple[int, int], seed: int = 1) -> np.ndarray:
    """(h, w) bool: about a third of the pixels not observed, in blobs and scattered."""
    rng = np.random.default_rng(seed)
    kept = rng.random(shape) > 0.2
    kept[: shape[0] // 3, : shape[1] // 2] = False
    return kept


@pytest.mark.parametrize("tile", ["off", "36:18"])
def test_a_fit_never_reads_the_left_out_pixels_of_a_low_res_photo(tile) -> None:
    import linr
    from linr.operators import Downsample, LeftOut
    from linr.problem import Observation

    view = np.random.default_rng(0).random((24, 24, 3)).astype(np.float32)
    kept = _left_out_pixels((24, 24))
    other = view.copy()
    other[~kept] = 1.0 - other[~kept]  # whatever lies under the transparent pixels
    images = [linr.restore([Observation(v, LeftOut(Downsample(2), kept), kind="lowres")], steps=6, refine="none",
                           stop="holdout", tile=tile, device="cpu", progress=False).image for v in (view, other)]
    np.testing.assert_array_equal(images[0], images[1])
    plain = linr.restore([Observation(view, Downsample(2), kind="lowres")], steps=6, refine="none", stop="holdout",
                         tile=tile, device="cpu", progress=False).image
    assert np.abs(plain - images[0]).max() > 1e-3  # they were read without the mask


def test_the_projection_onto_a_view_with_left_out_pixels_is_the_least_squares_one() -> None:
    import torch

    from linr.operators import Downsample, LeftOut
    from linr.problem import Observation
    from linr.projection import project_onto_views

    rng = np.random.default_rng(0)
    image, view = rng.random((16, 16, 1)), rng.random((8, 8, 1))
    kept = _left_out_pixels((8, 8))
    down = Downsample(2)
    a = down(torch.from_numpy(np.eye(256).reshape(256, 1, 16, 16))).reshape(256, -1).numpy().T[kept.ravel()]
    # the kept rows of D, dense (float64): D of each basis image
    residual = view[..., 0].ravel()[kept.ravel()] - a @ image.ravel()
    expected = image.ravel() + a.T @ np.linalg.solve(a @ a.T, residual)  # the nearest image they reproduce
    other = view.copy()
    other[~kept] = 1.0 - other[~kept]
    for v in (view, other):
        x, done = project_onto_views(image, [Observation(v, LeftOut(down, kept), kind="lowres")])
        assert done["converged"]
        np.testing.assert_allclose(x.ravel(), expected, atol=2e-5)


@pytest.mark.parametrize("boundary", ["circular", "reflect", "free"])
def test_the_deblurring_data_step_leaves_out_a_photo_s_transparent_pixels(boundary) -> None:
    import torch

    from linr.deconvolution import explain_blurred
    from linr.operators import Blur, LeftOut, gaussian_kernel

    rng = np.random.default_rng(0)
    h = w = 10
    kernel = gaussian_kernel(5, 1.2)
    estimate, photo = rng.random((h, w, 1)), rng.random((h, w, 1))
    kept = _left_out_pixels((h, w))
    blur = Blur(kernel, boundary=boundary)
    sigma, level = 0.05, 0.1
    weight = (sigma / level) ** 2
    pad = 2 if boundary == "free" else 0  # free edges: the unknown is the frame grown by the kernel's reach
    side = h + 2 * pad
    basis = torch.from_numpy(np.eye(side * side).reshape(side * side, 1, side, side))
    a = blur(basis).reshape(side * side, -1).numpy().T[kept.ravel()]  # the kept rows of the blur, dense
    start = np.pad(estimate[..., 0], pad, mode="symmetric").ravel()  # free edges: drawn to the estimate mirrored
    solved = np.linalg.solve(a.T @ a + weight * np.eye(side * side), a.T @ photo[..., 0].ravel()[kept.ravel()]
                             + weight * start)
    expected = solved.reshape(side, side)[pad:side - pad, pad:side - pad]
    other = photo.copy()
    other[~kept] = 1.0 - other[~kept]
    for p in (photo, other):
        x, done = explain_blurred(estimate, p, LeftOut(blur, kept), sigma, level, "operator")
        assert done["solver"] == "cg" and done["converged"]
        np.testing.assert_allclose(x[..., 0], expected, atol=2e-5)


def test_a_low_res_burst_with_transparent_pixels_is_still_registered(tmp_path, capsys) -> None:
    rng = np.random.default_rng(0)
    scene = rng.random((44, 44, 3)).astype(np.float32)
    alpha = np.ones((40, 40), np.float32)
    alpha[:, :10] = 0  # the first frame's left quarter transparent: its estimate reads the mirrored fill
    for k in range(2):
        write_image(tmp_path / f"lr{k}.png", scene[2:42, 2 + k:42 + k], alpha=alpha)
    assert main(["restore", "--lowres", str(tmp_path / "lr*.png"), "--factor", "2", "--register", "translation",
                 "--steps", "2", "-o", str(tmp_path / "out.png")]) == 0
    out = capsys.readouterr()
    found = re.search(r"lr1\.png \(lowres\): x ([-+.\d]+), y ([-+.\d]+)", out.out)
    assert abs(float(found[1]) - 2) < 0.1 and abs(float(found[2])) < 0.1  # one low-res pixel: two restored ones
    assert Image.open(tmp_path / "out.png").mode == "RGBA"


def test_a_super_resolved_sprite_is_measured_on_its_opaque_pixels_as_linr_metrics_does(tmp_path, capsys) -> None:
    """The output's alpha is the low-res photo's resized: restore measured every pixel (10 dB from
    ``linr metrics`` on its output in a new user's trial)."""
    rng = np.random.default_rng(2)
    clean = np.clip(0.5 + 0.2 * rng.standard_normal((32, 32, 3)), 0, 1).astype(np.float32)
    small = clean.reshape(16, 2, 16, 2, 3).mean(axis=(1, 3))
    alpha = np.zeros((16, 16), np.float32)
    alpha[4:12, 4:12] = 1.0
    write_image(tmp_path / "sprite.png", small, alpha=alpha)
    write_image(tmp_path / "clean.png", clean)
    assert main(["restore", "--lowres", str(tmp_path / "sprite.png"), "--factor", "2", "-o", str(tmp_path / "o.png"),
                 "--reference", str(tmp_path / "clean.png"), "--steps", "2", "--refine", "none"]) == 0
    printed = capsys.readouterr().out
    assert "of pixels that are opaque" in printed
    restored = float(re.search(r"PSNR ([\d.]+) dB", printed)[1])
    assert main(["metrics", str(tmp_path / "clean.png"), str(tmp_path / "o.png")]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert abs(measured["psnr"] - restored) < 0.2  # the written output rounds to 8 bits
    assert measured["measured_pixels"].startswith("256 of 1024")


def test_the_python_api_leaves_a_low_res_or_blurred_photo_s_transparent_pixels_out_as_the_cli_does(tmp_path) -> None:
    import linr
    from linr.operators import LeftOut
    from linr.scene import load_scene

    rng = np.random.default_rng(3)
    image = rng.random((12, 12, 3)).astype(np.float32)
    alpha = np.ones((12, 12), np.float32)
    alpha[:, :4] = 0.2
    write_image(tmp_path / "p.png", image, alpha=alpha)
    stored, info = linr.images.read_image(tmp_path / "p.png")
    for built, (kind, options) in ((linr.lowres(stored, 2, alpha=info.alpha), ("lowres", {"factor": 2})),
                                   (linr.blurred(stored, "gaussian:3:0.8", alpha=info.alpha),
                                    ("blurred", {"kernel": "gaussian:3:0.8"}))):
        (read,), _, _ = load_scene({kind: str(tmp_path / "p.png")}, options)
        assert isinstance(built.operator, LeftOut) and isinstance(read.operator, LeftOut)
        np.testing.assert_array_equal(built.operator.kept, read.operator.kept)
        np.testing.assert_allclose(built.image, read.image, atol=1e-6)  # filled alike
    assert not isinstance(linr.lowres(stored, 2, alpha=np.ones((12, 12))).operator, LeftOut)
    with pytest.raises(linr.errors.InputError, match="alpha of shape"):
        linr.lowres(stored, 2, alpha=np.ones((6, 6)))
