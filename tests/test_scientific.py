"""Scientific TIFF: any channel count, 16-bit and float values in their own units, ImageJ / OME
layouts and metadata, and stacks restored frame by frame. Checked against what tifffile reads
back from the files, and against the same fit run on values already on [0, 1]."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import tifffile

from linr.cli import main
from linr.errors import InputError
from linr.images import (choose_value_ranges, read_frames, read_image, read_stored, write_frames,
                         write_image)

from .conftest import run_err

TINY = ["--width", "16", "--depth", "2", "--steps", "4", "--stop", "fixed", "--device", "cpu", "--quiet"]


def _smooth(channels: int, size: int = 16, low: float = 0.0, high: float = 1.0) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size] / size
    planes = [0.5 + 0.4 * np.sin(3 * yy + k) * np.cos(2 * xx - k) for k in range(channels)]
    return (low + (high - low) * np.stack(planes, axis=-1)).astype(np.float32)


def _read(path):
    with tifffile.TiffFile(path) as tif:
        return tif.asarray(), tif.series[0].axes, tif


@pytest.mark.parametrize("channels", [1, 2, 4, 5, 8])
def test_any_channel_count_round_trips_in_16_bit(tmp_path, channels):
    data = (_smooth(channels) * 65535).round().astype(np.uint16)
    tifffile.imwrite(tmp_path / "in.tif", data[..., 0] if channels == 1 else data,
                     photometric="minisblack", planarconfig="contig" if channels > 1 else None, metadata=None)
    pixels, info = read_image(tmp_path / "in.tif")
    # 2 and 4 channels are data, not grey+alpha or RGBA: the file's ExtraSamples do not say alpha
    assert pixels.shape == (16, 16, channels) and info.alpha is None and info.bit_depth == 16
    write_image(tmp_path / "out.tif", pixels, bit_depth=16, value_range=info.value_range, tiff=info.tiff)
    back, axes, _ = _read(tmp_path / "out.tif")
    assert back.dtype == np.uint16 and np.array_equal(back.reshape(data.shape), data)
    assert axes == ("YX" if channels == 1 else "YXS")


def test_alpha_in_a_tiff_is_what_extrasamples_says(tmp_path):
    rgba = (_smooth(4) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "rgba.tif", rgba, photometric="rgb", extrasamples=["unassalpha"])
    pixels, info = read_image(tmp_path / "rgba.tif")
    assert pixels.shape == (16, 16, 3) and np.allclose(info.alpha, rgba[..., 3] / 255)
    write_image(tmp_path / "out.tif", pixels, alpha=info.alpha, tiff=info.tiff)
    back, _, tif = _read(tmp_path / "out.tif")
    assert np.array_equal(back, rgba) and tuple(tif.pages[0].extrasamples) == (2,)
    grey_alpha = np.stack([rgba[..., 0], rgba[..., 3]], axis=-1)
    write_image(tmp_path / "ga.tif", grey_alpha[..., :1] / 255, alpha=grey_alpha[..., 1] / 255)
    back, axes, tif = _read(tmp_path / "ga.tif")  # one page of grey + alpha, not two pages
    assert axes == "YXS" and np.array_equal(back, grey_alpha) and tuple(tif.pages[0].extrasamples) == (2,)


def test_a_planar_tiff_is_written_back_plane_by_plane(tmp_path):
    """A plain TIFF whose samples are stored as planes (PlanarConfiguration 2, axes SYX: a float
    RGB one, an RGBA one, a stack) came back interleaved (YXS); now as it was stored."""
    rgb = np.moveaxis(_smooth(3), -1, 0).astype(np.float32)
    rgba = (np.moveaxis(_smooth(4), -1, 0) * 255).astype(np.uint8)
    for name, data, extra in (("rgb", rgb, {}), ("rgba", rgba, {"extrasamples": ["unassalpha"]}),
                              ("stack", np.stack([rgb, rgb * 0.5]), {})):
        tifffile.imwrite(tmp_path / f"{name}.tif", data, photometric="rgb", planarconfig="separate", **extra)
        frames = read_frames(tmp_path / f"{name}.tif")
        info = frames[0][1]
        assert info.tiff.planar
        write_frames(tmp_path / f"{name}_out.tif", [f for f, _ in frames], bit_depth=info.bit_depth,
                     value_range=info.value_range, tiff=info.tiff, alpha=info.alpha)
        back, axes, tif = _read(tmp_path / f"{name}_out.tif")
        assert tif.pages[0].planarconfig == 2 and axes == ("I" if name == "stack" else "") + "SYX"
        assert back.dtype == data.dtype and np.array_equal(back, data)
    tifffile.imwrite(tmp_path / "contig.tif", np.moveaxis(rgb, 0, -1), photometric="rgb")
    assert not read_frames(tmp_path / "contig.tif")[0][1].tiff.planar  # a contiguous input stays so


def test_imagej_hyperstack_keeps_its_axes_units_and_pixel_size(tmp_path):
    data = (np.stack([np.moveaxis(_smooth(5, low=0.1 * t), -1, 0) for t in range(3)]) * 4000).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ij.tif", data, imagej=True, resolution=(2.5, 2.5),
                     metadata={"axes": "TCYX", "unit": "um", "spacing": 0.7, "finterval": 1.5,
                               "Ranges": (0.0, 4000.0) * 5})
    frames = read_frames(tmp_path / "ij.tif")
    assert len(frames) == 3 and frames[0][0].shape == (16, 16, 5)
    info = frames[0][1]
    write_frames(tmp_path / "out.tif", [f for f, _ in frames], bit_depth=16, value_range=info.value_range,
                 tiff=info.tiff)
    back, axes, tif = _read(tmp_path / "out.tif")
    assert axes == "TCYX" and back.dtype == np.uint16 and np.array_equal(back, data)
    meta = tif.imagej_metadata
    assert (meta["unit"], meta["spacing"], meta["finterval"]) == ("um", 0.7, 1.5)
    assert tuple(meta["Ranges"]) == (0.0, 4000.0) * 5
    assert tif.pages[0].resolution == (2.5, 2.5)
    # one image at twice the size: ImageJ's pixels per unit double (same field of view)
    write_image(tmp_path / "big.tif", np.repeat(np.repeat(frames[0][0], 2, 0), 2, 1), bit_depth=16,
                value_range=info.value_range, tiff=info.tiff)
    _, axes, tif = _read(tmp_path / "big.tif")
    assert axes == "CYX" and tif.pages[0].resolution == (5.0, 5.0) and tif.imagej_metadata["unit"] == "um"


def test_ome_pixel_sizes_and_channel_names_follow_the_output_size(tmp_path):
    data = np.moveaxis(_smooth(3), -1, 0)
    tifffile.imwrite(tmp_path / "ome.tif", data, ome=True, metadata={
        "axes": "CYX", "PhysicalSizeX": 0.4, "PhysicalSizeY": 0.5, "PhysicalSizeXUnit": "µm",
        "Channel": {"Name": ["DAPI", "GFP", "RFP"]}})
    pixels, info = read_image(tmp_path / "ome.tif")
    assert pixels.shape == (16, 16, 3) and info.tiff.channel_axis == "C"  # planes, not RGB
    write_image(tmp_path / "big.tif", np.zeros((32, 48, 3)), bit_depth=32, tiff=info.tiff)
    _, axes, tif = _read(tmp_path / "big.tif")
    pixels_meta = tifffile.xml2dict(tif.ome_metadata)["OME"]["Image"]["Pixels"]
    assert axes == "CYX" and pixels_meta["PhysicalSizeX"] == pytest.approx(0.4 / 3)
    assert pixels_meta["PhysicalSizeY"] == pytest.approx(0.25) and pixels_meta["PhysicalSizeXUnit"] == "µm"
    assert [c["Name"] for c in pixels_meta["Channel"]] == ["DAPI", "GFP", "RFP"]


def test_value_ranges_follow_their_stated_rules(tmp_path):
    counts = _smooth(2, low=50, high=4000)
    for name, data in (("counts", counts), ("unit", counts / 8000), ("signed", counts - 3000)):
        tifffile.imwrite(tmp_path / f"{name}.tif", data, photometric="minisblack", planarconfig="contig")
    (c,), (u,) = read_stored(tmp_path / "counts.tif"), read_stored(tmp_path / "unit.tif")
    (s,) = read_stored(tmp_path / "signed.tif")
    assert choose_value_ranges([c])[0].low == 0 and choose_value_ranges([c])[0].high == counts.max()
    assert (choose_value_ranges([u])[0].low, choose_value_ranges([u])[0].high) == (0, 1)  # as it is
    assert choose_value_ranges([s])[0].low == pytest.approx(counts.min() - 3000)  # negative: from the minimum
    given = choose_value_ranges([c, u], (0, 5000))
    assert [(v.low, v.high, v.rule) for v in given] == [(0, 5000, "given")] * 2
    pixels, info = read_image(tmp_path / "counts.tif")
    assert np.allclose(pixels, counts / counts.max(), atol=1e-7)
    write_image(tmp_path / "back.tif", pixels, bit_depth=32, value_range=info.value_range)
    back, _, _ = _read(tmp_path / "back.tif")
    assert back.dtype == np.float32 and np.allclose(back, counts, rtol=1e-6)


def test_photon_counts_are_restored_and_written_back_in_their_units(tmp_path, capsys):
    counts = _smooth(5, low=0, high=4000)
    counts[0, 0] = 4000.0  # the maximum, exactly
    tifffile.imwrite(tmp_path / "counts.tif", counts, photometric="minisblack", planarconfig="contig")
    tifffile.imwrite(tmp_path / "unit.tif", counts / 4000.0, photometric="minisblack", planarconfig="contig")
    assert main(["restore", "--noisy", str(tmp_path / "counts.tif"), "-o", str(tmp_path / "a.tif"), *TINY]) == 0
    out, err = capsys.readouterr()
    assert "values of" in err and "mapped 0..4000 -> [0, 1] (0 to the data's maximum)" in err
    assert "5 channels, float32, values in the input's units, 0..4000" in out
    assert main(["restore", "--noisy", str(tmp_path / "unit.tif"), "-o", str(tmp_path / "b.tif"), *TINY]) == 0
    in_units, _, _ = _read(tmp_path / "a.tif")
    on_unit, _, _ = _read(tmp_path / "b.tif")
    # the same fit on the same [0, 1] pixels: the output in counts is the [0, 1] output times 4000
    assert in_units.dtype == np.float32 and in_units.shape == (16, 16, 5)
    assert np.allclose(in_units, on_unit * 4000.0, rtol=1e-5, atol=1e-3)


def test_a_given_range_maps_12_bit_data_and_the_output_stays_in_it(tmp_path, capsys):
    data = (_smooth(1, low=0, high=4095)[..., 0]).round().astype(np.uint16)
    tifffile.imwrite(tmp_path / "raw.tif", data)
    tifffile.imwrite(tmp_path / "unit.tif", data.astype(np.float32) / 4095)
    argv = ["restore", "--noisy", str(tmp_path / "raw.tif"), "--range", "0:4095", "-o", str(tmp_path / "a.tif")]
    assert main([*argv, *TINY]) == 0
    assert "values in the input's units, 0..4095" in capsys.readouterr().out
    assert main(["restore", "--noisy", str(tmp_path / "unit.tif"), "-o", str(tmp_path / "b.tif"), *TINY]) == 0
    raw, _, _ = _read(tmp_path / "a.tif")
    unit, _, _ = _read(tmp_path / "b.tif")
    assert raw.dtype == np.uint16 and raw.max() <= 4095
    assert np.abs(raw.astype(np.int64) - np.round(unit * 4095).astype(np.int64)).max() <= 1
    # a range well inside the data (the values past it are what the user leaves out): clipped
    # half a range beyond it for the fit, and to it in the output
    argv = ["restore", "--noisy", str(tmp_path / "raw.tif"), "--range", "0:1000", "-o", str(tmp_path / "c.tif")]
    assert main([*argv, *TINY]) == 0
    assert "values lie outside the range (kept up to half the range beyond it" in capsys.readouterr().err
    assert _read(tmp_path / "c.tif")[0].max() <= 1000
    # noise spilling just past a given range is kept (clipping it would bias the means near black)
    from linr.images import ValueRange

    spill = ValueRange(0.0, 1.0, "given").to_unit(np.array([-0.2, 0.5, 1.3, 9.0]))
    assert np.allclose(spill, [-0.2, 0.5, 1.3, 1.5])


def test_a_stack_restored_frame_by_frame(tmp_path, capsys):
    frames = np.stack([_smooth(3, low=0.1 * k) for k in range(3)])
    data = (np.clip(frames, 0, 1) * 65535).round().astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", np.moveaxis(data, -1, 1), imagej=True, resolution=(3.0, 3.0),
                     metadata={"axes": "ZCYX", "unit": "um", "spacing": 2.0})
    tifffile.imwrite(tmp_path / "second.tif", data[1], photometric="rgb")
    report = tmp_path / "r.json"
    argv = ["restore", "--noisy", str(tmp_path / "stack.tif"), "--frames", "separate", "-o",
            str(tmp_path / "out.tif"), "--report", str(report), *TINY]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "frame 3/3" in out and "3 frames" in out
    stack, axes, tif = _read(tmp_path / "out.tif")
    assert axes == "ZCYX" and stack.shape == (3, 3, 16, 16) and stack.dtype == np.uint16
    assert tif.imagej_metadata["spacing"] == 2.0 and tif.pages[0].resolution == (3.0, 3.0)
    # frame 2 of the stack is what restoring that frame alone gives
    assert main(["restore", "--noisy", str(tmp_path / "second.tif"), "-o", str(tmp_path / "one.tif"), *TINY]) == 0
    one, _, _ = _read(tmp_path / "one.tif")
    assert np.array_equal(np.moveaxis(stack[1], 0, -1), one)
    # one joint scene: asked for (a Z-stack's default is frame by frame since the sixty-third session)
    assert main([*argv[:3], "--frames", "joint", "-o", str(tmp_path / "joint.tif"), *TINY]) == 0
    joint, axes, _ = _read(tmp_path / "joint.tif")
    assert axes == "CYX" and joint.shape == (3, 16, 16)


@pytest.mark.parametrize("case, message", [
    ("five channels to png", r"a.png: PNG holds grey or RGB images \(1 or 3 channels\), this one has 5; write a .tif"),
    ("stack to png", r"a.png: a stack of 2 images needs a TIFF or FITS output \(.tif, .fits\)"),
    ("save separate", "--save-model saves one model; --frames separate fits 2"),
    ("uneven frames", "separate frames need the same number of frames of every kind, got --noisy 2, --lowres 1"),
    ("bad range", "expected auto or LO:HI with finite LO < HI, got '5:1'"),
])
def test_scientific_inputs_fail_in_one_line_before_the_fit(tmp_path, capsys, case, message):
    five = _smooth(5)
    tifffile.imwrite(tmp_path / "five.tif", five, photometric="minisblack", planarconfig="contig")
    tifffile.imwrite(tmp_path / "pages.tif", (_smooth(1)[..., 0] * 255).astype(np.uint8))
    tifffile.imwrite(tmp_path / "pages.tif", (_smooth(1)[..., 0] * 200).astype(np.uint8), append=True)
    write_image(tmp_path / "small.png", _smooth(1, size=8))
    argv = {
        "five channels to png": ["--noisy", str(tmp_path / "five.tif"), "-o", str(tmp_path / "a.png")],
        "stack to png": ["--noisy", str(tmp_path / "pages.tif"), "--frames", "separate", "-o", str(tmp_path / "a.png")],
        "save separate": ["--noisy", str(tmp_path / "pages.tif"), "--frames", "separate", "-o",
                          str(tmp_path / "a.tif"), "--save-model", str(tmp_path / "m.pt")],
        "uneven frames": ["--noisy", str(tmp_path / "pages.tif"), "--lowres", str(tmp_path / "small.png"),
                          "--factor", "2", "--frames", "separate", "-o", str(tmp_path / "a.tif")],
        "bad range": ["--noisy", str(tmp_path / "five.tif"), "--range", "5:1", "-o", str(tmp_path / "a.tif")],
    }[case]
    err = run_err(capsys, ["restore", *argv, *TINY])
    assert re.search(message, err), err
    assert not any(p.name.startswith(("a.", "m.")) for p in tmp_path.iterdir())


def test_unsupported_tiff_layouts_are_one_line(tmp_path):
    tifffile.imwrite(tmp_path / "c64.tif", np.zeros((8, 8), np.complex64))
    with pytest.raises(InputError, match="unsupported pixel type complex64"):
        read_image(tmp_path / "c64.tif")
    tifffile.imwrite(tmp_path / "zt.tif", np.zeros((2, 3, 8, 8), np.uint8), imagej=True,
                     metadata={"axes": "TZYX"})
    with pytest.raises(InputError, match="only stacks of images along one axis"):
        read_frames(tmp_path / "zt.tif")


def test_batch_writes_tiff_inputs_as_tiffs_and_refuses_a_format_too_small_before_the_fit(tmp_path):
    import json

    folder = tmp_path / "in"
    folder.mkdir()
    five = (np.random.default_rng(0).random((12, 12, 5)) * 65535).astype(np.uint16)
    tifffile.imwrite(folder / "five.tif", five, photometric="minisblack", planarconfig="contig")
    write_image(folder / "rgb.png", np.random.default_rng(1).random((12, 12, 3)))
    fit = ["--width", "8", "--depth", "2", "--steps", "2", "--stop", "fixed", "--device", "cpu", "--quiet"]
    out = tmp_path / "out"
    assert main(["batch", str(folder), "--task", "noisy", "-o", str(out), *fit]) == 0
    written = tifffile.imread(out / "five.tif")
    assert written.shape == (12, 12, 5) and written.dtype == np.uint16  # values, channels kept
    assert read_image(out / "rgb.png")[0].shape == (12, 12, 3)
    out_png = tmp_path / "out_png"
    assert main(["batch", str(folder), "--task", "noisy", "-o", str(out_png), "--format", "png", *fit]) == 4  # some failed
    records = {r["image"]: r for r in map(json.loads, (out_png / "manifest.jsonl").read_text().splitlines())}
    assert records["rgb"]["status"] == "done"
    failed = records["five"]
    assert failed["status"] == "failed" and "fit_s" not in failed["run"]  # refused while reading, before any fit
    assert failed["error"].endswith("PNG holds grey or RGB images (1 or 3 channels), this one has 5; write a .tif")
    assert not (out_png / "five.png").exists()


def test_an_array_of_channels_stored_as_narrow_pages_is_refused_with_how_to_write_it(tmp_path):
    """tifffile.imwrite stores an (H, W, 5) array as H pages of W x 5 pixels: refused in one line
    naming the way to write it as one image of 5 channels (which then reads as such); a real
    stack of pages still reads as frames."""
    import tifffile

    from linr.errors import InputError
    from linr.images import read_stored

    rng = np.random.default_rng(0)
    channels = rng.random((32, 24, 5)).astype(np.float32)
    tifffile.imwrite(tmp_path / "c5.tif", channels)
    tifffile.imwrite(tmp_path / "u5.tif", (channels * 1000).astype(np.uint16), photometric="minisblack")
    for name in ("c5.tif", "u5.tif"):
        with pytest.raises(InputError, match=r"32 pages of 5x24 px.*one 24x32 image with 5 channels.*planarconfig='contig'"):
            read_stored(tmp_path / name)
    tifffile.imwrite(tmp_path / "ok.tif", channels, photometric="minisblack", planarconfig="contig")
    (image,) = read_stored(tmp_path / "ok.tif")
    assert image.values.shape == (32, 24, 5) and np.array_equal(image.values, channels)
    tifffile.imwrite(tmp_path / "stack.tif", rng.random((10, 40, 36)).astype(np.float32))
    assert [s.values.shape for s in read_stored(tmp_path / "stack.tif")] == [(40, 36, 1)] * 10
    strips = rng.random((32, 24, 5)).astype(np.float32)  # a real stack of narrow frames, its axes named
    tifffile.imwrite(tmp_path / "named.tif", strips, metadata={"axes": "TYX"})
    assert [s.values.shape for s in read_stored(tmp_path / "named.tif")] == [(24, 5, 1)] * 32
    tifffile.imwrite(tmp_path / "strips.tif", strips, imagej=True, metadata={"axes": "TYX"})
    assert [s.values.shape for s in read_stored(tmp_path / "strips.tif")] == [(24, 5, 1)] * 32


def test_a_stacks_frames_refuse_another_runs_tiles_before_any_frame_is_fitted(tmp_path, capsys):
    from linr.tiling import TileStore, tile_store_path

    frames = np.stack([_smooth(3, size=40, low=0.1 * k) for k in range(2)])
    data = (np.clip(frames, 0, 1) * 65535).round().astype(np.uint16)
    tifffile.imwrite(tmp_path / "stack.tif", np.moveaxis(data, -1, 1), imagej=True, metadata={"axes": "ZCYX"})
    out = tmp_path / "out.tif"
    stale = TileStore(tile_store_path(out, 2), "another run's")  # the second frame's store
    stale.save(0, np.zeros((4, 4, 3), np.float32), {})
    argv = ["restore", "--noisy", str(tmp_path / "stack.tif"), "--frames", "separate", "-o", str(out),
            "--tile", "24:4", *TINY]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "frame 1/2" not in captured.out and len(captured.err.strip().splitlines()) == 1
    assert "another image" in captured.err and "--force" in captured.err
    assert main([*argv, "--force"]) == 0 and out.exists()  # discarded, both frames restored


def test_a_z_stack_is_restored_plane_by_plane_unless_asked_to_be_one_scene(tmp_path, capsys):
    """A microscopist's defocus series (ImageJ axes ZYX) was averaged into one plane as if its planes
    were shots of one scene: a Z-stack now gets --frames separate by default, said; a T stack (a
    time series of one scene) is still one scene; --frames joint asks for it."""
    import tifffile

    from linr.cli import main

    rng = np.random.default_rng(0)
    planes = (rng.random((3, 16, 16)) * 40000).astype(np.uint16)
    tiny = ["--width", "8", "--depth", "1", "--steps", "1", "--stop", "fixed", "--device", "cpu", "--refine", "none"]
    tifffile.imwrite(tmp_path / "z.tif", planes, imagej=True, metadata={"axes": "ZYX"})
    assert main(["restore", "--noisy", str(tmp_path / "z.tif"), "-o", str(tmp_path / "zo.tif"), *tiny]) == 0
    assert "a Z-stack of 3 planes (its axes stack them along Z): each plane restored on its own" in capsys.readouterr().err
    with tifffile.TiffFile(tmp_path / "zo.tif") as out:
        assert out.series[0].axes == "ZYX" and out.series[0].shape == (3, 16, 16)
    assert main(["restore", "--noisy", str(tmp_path / "z.tif"), "--frames", "joint", "-o", str(tmp_path / "zj.tif"),
                 *tiny]) == 0
    assert "Z-stack" not in capsys.readouterr().err
    with tifffile.TiffFile(tmp_path / "zj.tif") as out:
        assert len(out.pages) == 1
    tifffile.imwrite(tmp_path / "t.tif", planes, imagej=True, metadata={"axes": "TYX", "finterval": 2.0})
    assert main(["restore", "--noisy", str(tmp_path / "t.tif"), "-o", str(tmp_path / "to.tif"), *tiny]) == 0
    err = capsys.readouterr().err
    # a time series is one scene's shots by default, said (an astronomer-microscopist's trial: silently one image)
    assert "Z-stack" not in err and "a time series of 3 points (its axes stack them along T): restored as shots" in err
    with tifffile.TiffFile(tmp_path / "to.tif") as out:
        assert len(out.pages) == 1 and "finterval" not in (out.imagej_metadata or {})  # one image: no interval
    assert main(["restore", "--noisy", str(tmp_path / "t.tif"), "--frames", "joint", "-o", str(tmp_path / "tj.tif"),
                 *tiny]) == 0
    assert "time series" not in capsys.readouterr().err


def test_signed_and_32_bit_integers_are_read_as_float_photos_and_named_as_stored(tmp_path, capsys):
    """A background-subtracted int16 micrograph was refused ('unsupported pixel type int16'); a
    float64 one was said to be float32. Both are read as float32 (exactly), mapped by their data,
    written back as float32 in their units, and named as stored; int32 beyond 2**24 is refused."""
    from linr.cli import main
    from linr.images import read_stored

    rng = np.random.default_rng(0)
    signed = (rng.random((16, 16)) * 3000 - 500).astype(np.int16)
    tifffile.imwrite(tmp_path / "i16.tif", signed)
    (stored,) = read_stored(tmp_path / "i16.tif")
    assert stored.values.dtype == np.float32 and np.array_equal(stored.values[..., 0], signed)
    assert stored.type_name == "int16"
    tifffile.imwrite(tmp_path / "f64.tif", signed.astype(np.float64) / 7)
    for name, kind in (("i16.tif", "int16"), ("f64.tif", "float64")):
        assert main(["restore", "--noisy", str(tmp_path / name), "-o", str(tmp_path / f"o_{name}"), *TINY]) == 0
        assert f"values of {tmp_path / name} ({kind}) mapped" in capsys.readouterr().err
        out = tifffile.imread(tmp_path / f"o_{name}")
        scale = 1 if name == "i16.tif" else 1 / 7
        assert out.dtype == np.float32 and abs(out.mean() - signed.mean() * scale) < 300 * scale  # the input's units
    tifffile.imwrite(tmp_path / "big.tif", np.full((4, 4), 2**25, np.int32))
    with pytest.raises(InputError, match="beyond 2\\*\\*24"):
        read_stored(tmp_path / "big.tif")


def test_metrics_of_two_stacks_measure_frame_by_frame(tmp_path, capsys):
    """A --frames separate output could not be scored ('a TIFF stack of 4 images where one image is
    expected'): two stacks of as many frames are measured frame by frame, on one value range, and
    their mean reported; unequal counts are one line."""
    from linr.cli import main
    from linr.metrics import psnr

    rng = np.random.default_rng(0)
    ref = (rng.random((3, 24, 24)) * 40000).astype(np.uint16)
    img = np.clip(ref.astype(np.int32) + rng.normal(0, 900, ref.shape).astype(np.int32), 0, 65535).astype(np.uint16)
    tifffile.imwrite(tmp_path / "ref.tif", ref, imagej=True, metadata={"axes": "ZYX"})
    tifffile.imwrite(tmp_path / "img.tif", img, imagej=True, metadata={"axes": "ZYX"})
    assert main(["metrics", str(tmp_path / "ref.tif"), str(tmp_path / "img.tif")]) == 0
    result = json.loads(capsys.readouterr().out)
    each = [psnr(r.astype(np.float64) / 65535, i.astype(np.float64) / 65535) for r, i in zip(ref, img)]
    assert [f["psnr"] for f in result["frames"]] == pytest.approx(each, abs=1e-6)
    assert result["psnr"] == pytest.approx(np.mean(each), abs=1e-6) and result["value_ranges"][str(tmp_path / "ref.tif")]["rule"] == "dtype"
    tifffile.imwrite(tmp_path / "two.tif", img[:2], imagej=True, metadata={"axes": "ZYX"})
    err = run_err(capsys, ["metrics", str(tmp_path / "ref.tif"), str(tmp_path / "two.tif")])
    assert "frame counts differ" in err and "holds 3" in err
