"""Rendering a fitted model at any size, saving it and rendering it again: scale 1 is the fit's
output value for value, a denser grid covers the same extent, and a smooth image comes back
closer to its analytic values than nearest-neighbour upsampling; bad model files are one line."""

from __future__ import annotations

import pickle
import re

import numpy as np
import pytest
import torch

import linr
from linr.cli import main
from linr.errors import InputError
from linr.fitted import load_model, render_model
from linr.images import read_image, write_image
from linr.models import coordinate_axes, coordinate_grid
from linr.simulate import add_gaussian_noise

from .conftest import run_err

SMALL = linr.ModelConfig(width=32, depth=2)
TINY = ["--width", "16", "--depth", "2", "--steps", "5", "--stop", "fixed", "--device", "cpu", "--quiet"]


def _analytic(height: int, width: int) -> np.ndarray:
    """A smooth RGB image sampled at the centres of ``height`` x ``width`` pixels over [0, 1]^2
    (pixel i of n at (i + 0.5) / n): the same picture at every size."""
    u = (np.arange(height) + 0.5) / height
    v = (np.arange(width) + 0.5) / width
    uu, vv = np.meshgrid(u, v, indexing="ij")
    planes = [0.5 + 0.3 * np.sin(2 * np.pi * uu + k) * np.cos(1.5 * np.pi * vv) for k in range(3)]
    return np.stack(planes, axis=-1).astype(np.float32)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return _analytic(24, 24)


@pytest.mark.parametrize("case", ["fixed", "best iterate", "super-resolution", "plain loop"])
def test_a_scale_1_render_is_the_fit_output_exactly(image, case):
    kw = dict(device="cpu", progress=False, model=SMALL, keep_model=True)
    if case == "fixed":
        result = linr.restore([linr.noisy(add_gaussian_noise(image, 25, seed=0))], steps=8, stop="fixed", **kw)
    elif case == "best iterate":  # the hold-out rule returns an earlier iterate than the last
        result = linr.restore([linr.noisy(add_gaussian_noise(image, 50, seed=0))], steps=400,
                              stop="holdout:0.1:5", **kw)
        assert result.stop_step < result.steps_run
    elif case == "super-resolution":
        result = linr.restore([linr.lowres(image[::2, ::2], 2)], steps=6, **kw)
    else:
        result = linr.restore([linr.noisy(image)], steps=6, stop="fixed", device="cpu", progress=False,
                              model=linr.ModelConfig(name="relu", width=16, depth=2), keep_model=True)
    assert np.array_equal(result.render(), result.image)
    assert np.array_equal(result.render(scale=1.0), result.image)
    assert result.render(scale=2.5).shape == (60, 60, 3)
    assert result.render(size=(10, 31)).shape == (10, 31, 3)


def test_a_denser_grid_covers_the_same_extent():
    for height, width in ((6, 6), (4, 7), (7, 4)):
        rows, cols = coordinate_axes(height, width)
        grid = coordinate_grid(height, width).reshape(height, width, 2)
        assert torch.equal(grid[:, 0, 0], rows) and torch.equal(grid[0, :, 1], cols)
        dense_rows, dense_cols = coordinate_axes(height, width, size=(2 * height, 3 * width))
        # each fitted pixel is the mean of the 2 x 3 dense pixels that tile it
        assert torch.allclose(dense_rows.view(height, 2).mean(1), rows, atol=1e-6)
        assert torch.allclose(dense_cols.view(width, 3).mean(1), cols, atol=1e-6)
        spacing = float(rows[1] - rows[0]) if height > 1 else float(cols[1] - cols[0])
        assert float(dense_rows[1] - dense_rows[0]) == pytest.approx(spacing / 2, abs=1e-6)


def test_a_render_at_scale_2_beats_nearest_neighbour_on_a_smooth_image(image):
    # omega_0 10 on 24 px: about the paper's 30 on its 256-512 px images in periods per pixel
    # (at 30, a 24 px fit matches its samples and overshoots between them: BENCHMARKS.md)
    result = linr.restore([linr.noisy(image)], steps=300, lr=1e-3, stop="fixed", device="cpu",
                          progress=False, model=linr.ModelConfig(width=32, depth=3, omega_0=10), keep_model=True)
    truth = _analytic(48, 48)
    rendered = result.render(scale=2)
    nearest = np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    render_error = float(np.mean((rendered - truth) ** 2))
    nearest_error = float(np.mean((nearest - truth) ** 2))
    assert render_error < 0.5 * nearest_error, (render_error, nearest_error)


def test_a_render_runs_in_bounded_chunks(image, monkeypatch):
    result = linr.restore([linr.noisy(image)], steps=5, stop="fixed", device="cpu", progress=False,
                          model=SMALL, keep_model=True)
    whole = result.render(scale=3)
    from linr.engine import FastSiren

    seen: list[int] = []
    forward = FastSiren.forward

    def recording(self, coords, *, save):
        seen.append(coords.shape[0])
        return forward(self, coords, save=save)

    monkeypatch.setattr(FastSiren, "forward", recording)
    result.model.chunk_pixels = 1000
    chunked = result.render(scale=3)
    assert max(seen) <= 1000 and sum(seen) == 72 * 72
    assert np.allclose(chunked, whole, atol=1e-6)


def test_save_restore_and_render_again_from_the_command_line(tmp_path, capsys, image):
    noisy = add_gaussian_noise(image, 25, seed=1)
    write_image(tmp_path / "noisy.png", noisy, bit_depth=16)
    model = tmp_path / "m.pt"
    argv = ["restore", "--noisy", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "out.png"),
            "--save-model", str(model), *TINY]
    assert main(argv) == 0
    assert main(["render", str(model), "-o", str(tmp_path / "again.png")]) == 0
    assert main(["render", str(model), "--scale", "2.5", "-o", str(tmp_path / "big.png")]) == 0
    assert main(["render", str(model), "--size", "40x30", "-o", str(tmp_path / "wide.tif")]) == 0
    out = capsys.readouterr().out
    assert "rendered from a model fitted at 24x24" in out
    restored, info = read_image(tmp_path / "out.png")
    again, again_info = read_image(tmp_path / "again.png")
    assert info.bit_depth == again_info.bit_depth == 16 and np.array_equal(again, restored)
    assert read_image(tmp_path / "big.png")[0].shape == (60, 60, 3)
    assert read_image(tmp_path / "wide.tif")[0].shape == (30, 40, 3)
    fitted, stored = load_model(model)
    assert fitted.shape == (24, 24) and fitted.channels == 3 and stored.bit_depth == 16
    assert np.array_equal(render_model(model), fitted.render())
    # restore's own render option writes what linr render writes
    assert main([*argv[:4], str(tmp_path / "direct.png"), *TINY, "--render-scale", "2.5"]) == 0
    assert np.array_equal(read_image(tmp_path / "direct.png")[0], read_image(tmp_path / "big.png")[0])


def test_bad_model_files_are_one_line(tmp_path, capsys):
    (tmp_path / "junk.pt").write_bytes(b"not a model at all")
    (tmp_path / "text.pt").write_text("junk\n")  # torch's unpickler read it as a KeyError
    (tmp_path / "dict.pt").write_bytes(pickle.dumps({"a": 1}, protocol=4))  # torch warned of the protocol
    torch.save({"format": "linr-model", "version": 99, "linr": "9.9"}, tmp_path / "future.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with open(tmp_path / "pickled.pt", "wb") as fh:
        pickle.dump(InputError("a class"), fh, protocol=2)  # never unpickled: weights_only refuses classes
    for name, message in [("junk.pt", "not a linr model file"),
                          ("future.pt", "a linr model file of version 99 .*reads versions 1, 2"),
                          ("other.pt", "not a linr model file \\(no 'linr-model' header\\)"),
                          ("pickled.pt", "not a linr model file"),
                          ("text.pt", "^linr: error: .*text.pt: not a linr model file \\(KeyError\\)$"),
                          ("dict.pt", "^linr: error: .*dict.pt: not a linr model file \\(UnpicklingError\\)$"),
                          ("missing.pt", "no such file")]:
        err = run_err(capsys, ["render", str(tmp_path / name), "-o", str(tmp_path / "x.png")])
        assert re.search(message, err.strip()), err
    assert not (tmp_path / "x.png").exists()


def test_tiles_have_no_single_model_to_save_or_render(tmp_path, capsys, image):
    big = np.tile(image, (2, 2, 1))  # 48 x 48 in tiles of 32
    write_image(tmp_path / "big.png", big)
    base = ["restore", "--noisy", str(tmp_path / "big.png"), "--tile", "32:8", "-o", str(tmp_path / "o.png"), *TINY]
    err = run_err(capsys, [*base, "--save-model", str(tmp_path / "m.pt")])
    assert "--save-model needs one network of the whole image, but this restoration is tiled" in err
    err = run_err(capsys, [*base, "--render-scale", "2"])
    assert "--render-scale / --render-size needs one network" in err
    assert main([*base[:6], str(tmp_path / "same.png"), *TINY, "--render-scale", "1"]) == 0  # its own size: the tiles' image
    result = linr.restore([linr.noisy(big)], tile="32:8", steps=2, stop="fixed", device="cpu",
                          progress=False, model=linr.ModelConfig(width=8, depth=1))
    with pytest.raises(InputError, match="a tiled restoration has one network per tile"):
        result.render(scale=2)
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "m.pt").exists()


@pytest.mark.parametrize("extra, message", [
    (["--render-scale", "2", "--render-size", "10x10"], "give --render-scale or --render-size, not both"),
    (["--render-size", "10by10"], "expected WIDTHxHEIGHT in pixels"),
    (["--render-scale", "5000"], "a render of 120000x120000 is .* Mpx; at most 268 Mpx"),
    (["--save-model", "model.bin"], "a model file is named FILE.pt"),
])
def test_bad_render_options_are_one_line(tmp_path, capsys, image, extra, message):
    write_image(tmp_path / "noisy.png", image)
    extra = [str(tmp_path / e) if e.endswith(".bin") else e for e in extra]
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "o.png"),
                           *extra, *TINY])
    assert re.search(message, err), err
    assert not (tmp_path / "o.png").exists()


def test_a_saved_model_renders_in_the_inputs_units_and_layout(tmp_path, capsys, image):
    import tifffile

    counts = np.moveaxis(image[..., :2], -1, 0) * 3000.0  # 2 channels of float counts, CYX
    lut = np.zeros((3, 256), np.uint8)
    lut[1] = np.arange(256)
    tifffile.imwrite(tmp_path / "cells.tif", counts.astype(np.float32), imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "CYX", "unit": "um", "LUTs": [lut, lut]})
    model = tmp_path / "m.pt"
    assert main(["restore", "--noisy", str(tmp_path / "cells.tif"), "-o", str(tmp_path / "a.tif"),
                 "--save-model", str(model), *TINY]) == 0
    assert main(["render", str(model), "-o", str(tmp_path / "same.tif")]) == 0
    assert main(["render", str(model), "--scale", "2", "-o", str(tmp_path / "big.tif")]) == 0
    assert "values in the input's units" in capsys.readouterr().out
    with tifffile.TiffFile(tmp_path / "a.tif") as tif:
        restored = tif.asarray()
    with tifffile.TiffFile(tmp_path / "same.tif") as tif:
        assert np.array_equal(tif.asarray(), restored) and restored.dtype == np.float32
    with tifffile.TiffFile(tmp_path / "big.tif") as tif:
        big, meta = tif.asarray(), tif.imagej_metadata
        assert tif.series[0].axes == "CYX" and big.shape == (2, 48, 48)
        assert tif.pages[0].resolution == (4.0, 4.0) and meta["unit"] == "um"
        assert np.array_equal(meta["LUTs"][1], lut)
    assert restored.max() > 1.5  # counts, not [0, 1]


def test_an_averaged_result_has_no_model_to_render_and_the_cli_says_so_first(tmp_path, capsys):
    from linr.cli import main
    from linr.errors import InputError
    from linr.fit import FitConfig, Observation, fit
    from linr.images import write_image
    from linr.models import ModelConfig
    from linr.operators import Identity
    from linr.stopping import HoldOut

    rng = np.random.default_rng(0)
    y = np.clip(0.5 + 0.2 * rng.standard_normal((16, 16, 1)), 0, 1).astype(np.float32)
    result = fit([Observation(y, Identity(), kind="noisy")],
                 FitConfig(steps=12, model=ModelConfig(width=16, depth=2), device="cpu", progress=False),
                 stop=HoldOut(fraction=0.2, patience=3, average="window3"))
    assert result.settings["stop"]["returned"] == "average"
    with pytest.raises(InputError, match="average of iterates"):
        result.render(scale=2)
    write_image(tmp_path / "n.png", y[..., 0], bit_depth=8)
    code = main(["restore", "--noisy", str(tmp_path / "n.png"), "-o", str(tmp_path / "o.png"),
                 "--stop", "holdout:0.2:3:window3", "--save-model", str(tmp_path / "m.pt")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "average of iterates" in err and err.count("\n") == 0, err
    assert not (tmp_path / "o.png").exists()


def test_the_default_noisy_fit_returns_an_average_and_keeps_a_model_when_asked(tmp_path, capsys, image):
    """By default a noisy fit returns the hold-out rule's window40 average (no model); asked to
    keep a model (keep_model=True, or --save-model / --render-*), the same automatic stop returns
    the best single iterate, which the saved model renders again exactly."""
    from linr.stopping import AUTO_NOISY, AUTO_NOISY_MODEL

    assert AUTO_NOISY == AUTO_NOISY_MODEL + ":window40"
    noisy = add_gaussian_noise(image, 25, seed=1)
    kw = dict(model=SMALL, steps=300, device="cpu", progress=False)
    averaged = linr.restore(linr.noisy(noisy), **kw)
    assert averaged.settings["stop"]["average"] == "window40"
    assert averaged.settings["stop"]["returned"] == "average" and averaged.model is None
    kept = linr.restore(linr.noisy(noisy), keep_model=True, **kw)
    assert "average" not in kept.settings["stop"] and kept.settings["stop"]["name"] == "holdout"
    assert np.array_equal(kept.render(), kept.image)
    write_image(tmp_path / "noisy.png", noisy, bit_depth=16)
    fit = ["--width", "32", "--depth", "2", "--steps", "300", "--device", "cpu", "--quiet"]
    assert main(["restore", "--noisy", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "out.png"),
                 "--save-model", str(tmp_path / "m.pt"), *fit]) == 0
    assert "the automatic stop returns the model's best single iterate" in capsys.readouterr().err
    assert main(["render", str(tmp_path / "m.pt"), "-o", str(tmp_path / "again.png")]) == 0
    assert np.array_equal(read_image(tmp_path / "again.png")[0], read_image(tmp_path / "out.png")[0])


@pytest.mark.parametrize("bit_depth", [8, 16])
def test_a_saved_model_keeps_the_inputs_alpha_and_renders_it_resized(tmp_path, capsys, image, bit_depth):
    noisy = add_gaussian_noise(image, 25, seed=1)
    alpha = np.zeros(image.shape[:2], np.float32)
    alpha[:, 12:] = 1.0  # half transparent, with an edge: where the resize shows
    write_image(tmp_path / "noisy.png", noisy, bit_depth=bit_depth, alpha=alpha)
    model = tmp_path / "m.pt"
    argv = ["restore", "--noisy", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "out.png"),
            "--save-model", str(model), *TINY]
    assert main(argv) == 0
    assert main(["render", str(model), "-o", str(tmp_path / "again.png")]) == 0
    restored, info = read_image(tmp_path / "out.png")
    again, again_info = read_image(tmp_path / "again.png")
    assert np.array_equal(again, restored) and np.array_equal(again_info.alpha, info.alpha)  # as restore wrote it
    assert main(["render", str(model), "--scale", "2.5", "-o", str(tmp_path / "big.png")]) == 0
    assert main([*argv[:4], str(tmp_path / "direct.png"), *TINY, "--render-scale", "2.5"]) == 0
    big, direct = read_image(tmp_path / "big.png")[1], read_image(tmp_path / "direct.png")[1]
    assert big.alpha.shape == (60, 60) and np.array_equal(big.alpha, direct.alpha)  # restore's own render
    assert main(["render", str(model), "-o", str(tmp_path / "flat.jpg")]) == 0
    assert "JPEG has no alpha channel, so the input's transparency is not written" in capsys.readouterr().err


def test_a_format_without_alpha_says_the_transparency_is_not_written(tmp_path, capsys, image):
    alpha = np.ones(image.shape[:2], np.float32)
    alpha[:4] = 0.0
    write_image(tmp_path / "noisy.png", add_gaussian_noise(image, 25, seed=1), alpha=alpha)
    for suffix in (".jpg", ".bmp"):
        assert main(["restore", "--noisy", str(tmp_path / "noisy.png"), "-o", str(tmp_path / f"out{suffix}"),
                     *TINY]) == 0
        assert f"{suffix[1:].upper().replace('JPG', 'JPEG')} has no alpha channel" in capsys.readouterr().err
        assert read_image(tmp_path / f"out{suffix}")[1].alpha is None
    assert main(["restore", "--noisy", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "out.png"), *TINY]) == 0
    assert "has no alpha channel" not in capsys.readouterr().err  # a PNG keeps it
    assert main(["degrade", str(tmp_path / "noisy.png"), "--noise", "10", "-o", str(tmp_path / "d.bmp")]) == 0
    assert "BMP has no alpha channel" in capsys.readouterr().err


def test_a_model_saved_from_a_transparent_low_res_photo_renders(tmp_path, image):
    """A low-res photo's alpha is kept at the fit's size (a new user's model file of an RGBA x4 was
    refused by linr render: 'alpha of (24, 24) for an image of (96, 96)'); files that kept it at
    the photo's size, as before, are read too."""
    import torch

    from linr.fitted import load_model

    low = image[::2, ::2]
    alpha = np.ones(low.shape[:2], np.float32)
    alpha[:, :4] = 0.0
    write_image(tmp_path / "low.png", low, alpha=alpha)
    model = tmp_path / "m.pt"
    assert main(["restore", "--lowres", str(tmp_path / "low.png"), "--factor", "2", "-o", str(tmp_path / "out.png"),
                 "--save-model", str(model), *TINY]) == 0
    assert main(["render", str(model), "-o", str(tmp_path / "again.png")]) == 0
    restored, info = read_image(tmp_path / "out.png")
    again, again_info = read_image(tmp_path / "again.png")
    assert info.alpha.shape == image.shape[:2]
    assert np.array_equal(again, restored) and np.array_equal(again_info.alpha, info.alpha)  # as restore wrote it
    assert main(["render", str(model), "--scale", "1.5", "-o", str(tmp_path / "big.png")]) == 0
    assert read_image(tmp_path / "big.png")[1].alpha.shape == (36, 36)
    data = torch.load(model, weights_only=True)  # as files saved before kept it: the photo's own size
    data["alpha"] = torch.from_numpy(np.round(alpha * 255).astype(np.uint8))
    torch.save(data, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt")[1].alpha.shape == image.shape[:2]
    data["alpha"] = torch.zeros((5, 7), dtype=torch.uint8)  # of no size the image's is a multiple of
    torch.save(data, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="a damaged linr model file"):
        load_model(tmp_path / "bad.pt")


def test_a_render_smaller_than_the_fit_averages_each_pixels_footprint(image):
    """At half the size each pixel is the mean of the 2 x 2 fitted pixels it covers (the same sample
    grid), not the network at its centre, which aliases detail finer than the render's pixels."""
    from linr.fitted import supersampling

    result = linr.restore(linr.noisy(image), model=SMALL, steps=20, device="cpu", progress=False, keep_model=True,
                          stop="fixed", refine="none", prior="none")
    full = result.render()
    half = result.render(scale=0.5)
    blocks = full.reshape(12, 2, 12, 2, full.shape[2]).mean(axis=(1, 3))
    np.testing.assert_allclose(half, blocks, atol=1e-6)
    third = result.render(size=(8, 10))  # 3 x 3 samples a pixel: no side sampled coarser than the fit
    assert third.shape == (8, 10, full.shape[2]) and supersampling((24, 24), (8, 10)) == (3, 3)
    assert supersampling((24, 24), (24, 24)) == (1, 1) and supersampling((24, 24), (48, 30)) == (1, 1)
    assert supersampling((24, 24), (23, 48)) == (2, 1)
    assert supersampling((1024, 1024), (1, 4096)) == (1024, 1)  # per side: a sliver asks no more than the fit's
    assert result.render(size=(1, 48)).shape == (1, 48, full.shape[2])
