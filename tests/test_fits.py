"""FITS files as telescopes and astronomy software write them (:mod:`linr.fits`): read by their
content (Pillow's own reader byte-swaps the samples and ignores the scaling), bottom row first in
the file, written back with the header's world coordinates scaled to the output's size.

The files here are built two ways: byte by byte from the FITS standard's rules (cards of 80
characters in blocks of 2880 bytes, big-endian samples), and by astropy, the reference reader and
writer (those tests skip where astropy is not installed).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from linr.batch import EXIT_SOME_FAILED
from linr.cli import main
from linr.errors import InputError
from linr.fits import FitsHeader
from linr.images import read_frames, read_image, read_stored, write_image

from .conftest import handmade_fits, run_err
from .conftest import fits_card as _card


def verified(path: Path) -> None:
    """``path`` is a FITS file astropy reads without a warning and verifies strictly (where astropy
    is installed)."""
    try:
        from astropy.io import fits
    except ImportError:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(path) as hdus:
            hdus.verify("exception")


def test_a_16_bit_camera_frame_is_read_as_stored_top_row_last(tmp_path):
    file_order = np.arange(12 * 10, dtype=np.int64).reshape(12, 10) * 500  # 0 .. 59500: unsigned
    path = handmade_fits(tmp_path / "frame.fits", file_order - 32768, 16,
                         (_card("BZERO", "32768"), _card("BSCALE", "1")))
    (stored,) = read_stored(path)
    assert stored.values.dtype == np.uint16  # by its type's range, as a 16-bit TIFF or PNG
    assert np.array_equal(stored.values[..., 0], file_order[::-1])  # the file's first row at the bottom
    pixels, info = read_image(path)
    assert info.bit_depth == 16 and np.allclose(pixels[-1, :, 0], file_order[0] / 65535)


def test_float_and_scaled_samples_are_their_physical_values(tmp_path):
    rng = np.random.default_rng(0)
    counts = rng.normal(200, 40, (9, 14))
    (f32,) = read_stored(handmade_fits(tmp_path / "f32.fits", counts, -32))
    assert f32.values.dtype == np.float32 and np.array_equal(f32.values[..., 0], counts[::-1].astype(np.float32))
    (f64,) = read_stored(handmade_fits(tmp_path / "f64.fits", counts, -64))
    assert np.allclose(f64.values[..., 0], counts[::-1], rtol=1e-7)
    raw = np.round(counts).astype(np.int16)
    (scaled,) = read_stored(handmade_fits(tmp_path / "s.fits", raw, 16, (_card("BSCALE", "0.25"),
                                                                          _card("BZERO", "-3.5"))))
    assert np.array_equal(scaled.values[..., 0], (raw[::-1] * 0.25 - 3.5).astype(np.float32))
    # a float photo beyond [0, 1] maps from 0 to its maximum, as a float TIFF's counts do
    pixels, info = read_image(tmp_path / "f32.fits")
    assert info.value_range.high == pytest.approx(float(counts.max()), rel=1e-6) and pixels.max() == 1.0


def test_undefined_pixels_are_holes_to_fill_and_refused_as_data(tmp_path, capsys):
    y, x = np.mgrid[:16, :16]
    raw = (100 + 5 * x + 3 * y).astype(np.int16)  # a smooth ramp: its holes are easy to fill
    raw[2, 3] = raw[9, 11] = -32768
    path = handmade_fits(tmp_path / "holes.fits", raw, 16, (_card("BLANK", "-32768"),))
    (stored,) = read_stored(path)
    assert stored.alpha is not None and np.count_nonzero(stored.alpha == 0) == 2  # BLANK: transparent
    assert stored.alpha[15 - 2, 3] == 0 and stored.values[15 - 2, 3, 0] == 0  # the file's row 2, read top first
    err = run_err(capsys, ["restore", "--noisy", str(path), "-o", str(tmp_path / "out.fits")])
    assert "2 of its pixels are undefined (NaN or BLANK)" in err and f"--masked {path}" in err
    out = tmp_path / "filled.fits"
    assert main(["restore", "--masked", str(path), "-o", str(out), "--steps", "30", "--quiet"]) == 0
    capsys.readouterr()
    (filled,) = read_stored(out)
    assert filled.alpha is None and np.isfinite(filled.values).all()
    for row, col in ((2, 3), (9, 11)):  # filled near the ramp's value there (neighbours differ by 3-5)
        assert abs(float(filled.values[15 - row, col, 0]) - (100 + 5 * col + 3 * row)) < 12
    nan = np.where(np.arange(64).reshape(8, 8) % 9 == 0, np.nan, 1.0)
    (stored,) = read_stored(handmade_fits(tmp_path / "nan.fits", nan, -32))
    assert np.count_nonzero(stored.alpha == 0) == 8 and np.isfinite(stored.values).all()


def test_a_third_axis_is_colour_when_it_holds_3_planes_else_frames(tmp_path):
    rgb = np.stack([np.full((6, 7), v, np.float32) for v in (0.1, 0.5, 0.9)])
    (colour,) = read_stored(handmade_fits(tmp_path / "rgb.fits", rgb, -32))
    assert colour.values.shape == (6, 7, 3) and np.allclose(colour.values[0, 0], (0.1, 0.5, 0.9))
    series = np.stack([np.full((6, 7), v, np.float32) for v in (0.1, 0.2, 0.3, 0.4)])
    frames = read_frames(handmade_fits(tmp_path / "series.fits", series, -32))
    assert [f[1].path for f in frames] == [f"{tmp_path / 'series.fits'}[{i}]" for i in (1, 2, 3, 4)]
    assert [round(float(f[0].mean()), 6) for f in frames] == [0.1, 0.2, 0.3, 0.4]
    single_stokes = series[None, :1]  # NAXIS4 = 1, NAXIS3 = 1: a radio map's single planes
    (plane,) = read_stored(handmade_fits(tmp_path / "stokes.fits", single_stokes, -32))
    assert plane.values.shape == (6, 7, 1)
    with pytest.raises(InputError, match="4 axes"):
        read_stored(handmade_fits(tmp_path / "4d.fits", np.zeros((2, 3, 6, 7), np.float32), -32))


def test_cut_files_and_headers_without_end_are_refused_in_one_line(tmp_path):
    good = handmade_fits(tmp_path / "good.fits", np.ones((8, 8), np.float32), -32).read_bytes()
    (tmp_path / "short.fits").write_bytes(good[:2880 + 100])
    with pytest.raises(InputError, match="cut short"):
        read_stored(tmp_path / "short.fits")
    (tmp_path / "noend.fits").write_bytes(good[:2000])
    with pytest.raises(InputError, match="before its END"):
        read_stored(tmp_path / "noend.fits")


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.float32])
def test_a_fits_output_keeps_the_sample_type_rows_and_header(tmp_path, dtype):
    rng = np.random.default_rng(1)
    stored = (rng.random((10, 12)) * (255 if dtype == np.uint8 else 60000 if dtype == np.uint16 else 5000))
    path = tmp_path / "in.fits"
    extra = (_card("BZERO", "32768"),) if dtype == np.uint16 else ()
    handmade_fits(path, (stored - (32768 if dtype == np.uint16 else 0)).astype(np.int64 if dtype != np.float32
                                                                                  else np.float32),
                  {np.uint8: 8, np.uint16: 16, np.float32: -32}[dtype],
                  extra + ("OBJECT  = 'NGC 1300'           / the target",))
    pixels, info = read_image(path)
    out = write_image(tmp_path / "out.fits", pixels, bit_depth=info.bit_depth, value_range=info.value_range,
                      fits=info.fits)
    (again,) = read_stored(out)
    first = read_stored(path)[0]
    assert again.values.dtype == first.values.dtype
    if dtype == np.float32:  # through the fit's [0, 1] and back: within a rounding
        assert np.allclose(again.values, first.values, rtol=1e-6, atol=0)
    else:  # written back in the input's units, rows as read
        assert np.array_equal(again.values, first.values)
    assert "NGC 1300" in again.fits.cards[0] and "the target" in again.fits.cards[0]
    text = out.read_bytes()
    assert len(text) % 2880 == 0 and b"HISTORY written by linr" in text
    verified(out)


def test_pillow_no_longer_reads_fits_byte_swapped_from_the_command_line(tmp_path, capsys):
    y, x = np.mgrid[:24, :24]
    rng = np.random.default_rng(2)
    counts = 300 + 2000 * np.exp(-((x - 9) ** 2 + (y - 14) ** 2) / 20.0)
    noisy = rng.poisson(counts).astype(np.float64)
    path = handmade_fits(tmp_path / "star.fits", noisy, -32, ("OBJECT  = 'a star'",
                                                              _card("CRPIX1", "12.0"), _card("CDELT1", "-0.001")))
    out = tmp_path / "star_out.fits"
    assert main(["restore", "--noisy", str(path), "-o", str(out), "--steps", "3", "--quiet",
                 "--report", str(tmp_path / "r.json")]) == 0
    capsys.readouterr()
    (restored,) = read_stored(out)
    assert restored.values.dtype == np.float32
    # in the input's units (counts), the bright star where it was: a byte-swapped read has neither
    assert 150 < float(np.median(restored.values)) < 600
    peak = np.unravel_index(np.argmax(restored.values[..., 0]), (24, 24))
    assert abs(peak[0] - (23 - 14)) <= 2 and abs(peak[1] - 9) <= 2  # the file's row 14, read top first
    assert any("a star" in c for c in restored.fits.cards)
    assert json.loads((tmp_path / "r.json").read_text())["steps_run"] == 3
    verified(out)


def test_a_fits_folder_in_a_batch_gives_fits_outputs(tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for name in ("a", "b"):
        handmade_fits(folder / f"{name}.fits", 100 + rng.normal(0, 10, (16, 16)), -32)
    assert main(["batch", "--noisy", str(folder), "-o", str(tmp_path / "out"), "--steps", "2", "--quiet"]) == 0
    capsys.readouterr()
    assert sorted(p.name for p in (tmp_path / "out").glob("*.fits")) == ["a.fits", "b.fits"]


def test_a_bare_photo_on_the_command_line_is_told_how_to_name_it(capsys, tmp_path):
    err = run_err(capsys, ["restore", "photo.png", "-o", str(tmp_path / "out.png")])
    assert "--noisy photo.png" in err and "--lowres photo.png --factor" in err
    err = run_err(capsys, ["restore", "--noisy", "a.png", "--bogus", "1", "-o", str(tmp_path / "out.png")])
    assert err.endswith("unrecognized arguments: --bogus 1")  # an option's value: no photo to name


# --- against astropy, the reference reader and writer ---------------------------------------


def test_every_sample_type_reads_as_astropy_reads_it(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    rng = np.random.default_rng(4)
    base = rng.random((11, 13)) * 1000
    cases = {"u8": (base / 4).astype(np.uint8), "i16": (base - 500).astype(np.int16),
             "u16": (base * 60).astype(np.uint16), "i32": (base * 1e4).astype(np.int32),
             "f32": base.astype(np.float32), "f64": base}
    for name, data in cases.items():
        fits.PrimaryHDU(data).writeto(tmp_path / f"{name}.fits")
        (stored,) = read_stored(tmp_path / f"{name}.fits")
        reference = fits.getdata(tmp_path / f"{name}.fits")[::-1]  # astropy: the file's first row first
        assert np.allclose(stored.values[..., 0].astype(np.float64), reference, rtol=1e-7, atol=0), name
    # an image in an extension after an empty primary and a table; a tile-compressed one refused
    table = fits.BinTableHDU.from_columns([fits.Column(name="a", format="E", array=np.arange(3.0))])
    fits.HDUList([fits.PrimaryHDU(), table, fits.ImageHDU(cases["f32"])]).writeto(tmp_path / "ext.fits")
    assert np.array_equal(read_stored(tmp_path / "ext.fits")[0].values[..., 0], cases["f32"][::-1])
    fits.HDUList([fits.PrimaryHDU(), fits.CompImageHDU(cases["f32"])]).writeto(tmp_path / "comp.fits")
    with pytest.raises(InputError, match="tile-compressed"):
        read_stored(tmp_path / "comp.fits")


def test_world_coordinates_stay_on_the_sky_at_another_size(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    wcs = pytest.importorskip("astropy.wcs")
    header = fits.Header()
    header["CTYPE1"], header["CTYPE2"] = "RA---TAN-SIP", "DEC--TAN-SIP"
    header["CRPIX1"], header["CRPIX2"], header["CRVAL1"], header["CRVAL2"] = 12.3, 8.7, 150.1, 2.2
    header["CD1_1"], header["CD1_2"], header["CD2_1"], header["CD2_2"] = -1e-4, 2e-5, 1.5e-5, 1.1e-4
    header["A_ORDER"] = header["B_ORDER"] = 2
    header["A_2_0"], header["A_1_1"], header["A_0_2"] = 1e-3, -2e-3, 5e-4
    header["B_2_0"], header["B_1_1"], header["B_0_2"] = -7e-4, 1e-3, 3e-4
    image = np.random.default_rng(5).random((20, 30)).astype(np.float32)
    fits.PrimaryHDU(image, header=header).writeto(tmp_path / "in.fits")
    pixels, info = read_image(tmp_path / "in.fits")
    for height, width in ((20, 30), (80, 120), (50, 45)):
        out = write_image(tmp_path / f"out_{height}.fits", np.zeros((height, width), np.float32),
                          bit_depth=32, value_range=info.value_range, fits=info.fits)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            before, after = wcs.WCS(fits.getheader(tmp_path / "in.fits")), wcs.WCS(fits.getheader(out))
        sx, sy = width / 30, height / 20
        at = np.array([[1, 1], [width, height], [width / 3, height / 2], [7.5, 3.25]], float)  # 1-based
        same = np.stack([(at[:, 0] - 0.5) / sx + 0.5, (at[:, 1] - 0.5) / sy + 0.5], axis=1)
        arcsec = np.abs(before.all_pix2world(same, 1) - after.all_pix2world(at, 1)).max() * 3600
        assert arcsec < 1e-6, (height, width, arcsec)
        if (height, width) != (20, 30):  # the check can fail: unscaled cards put the pixels elsewhere
            assert np.abs(before.all_pix2world(at, 1) - after.all_pix2world(at, 1)).max() * 3600 > 0.1


def test_the_header_rides_in_a_saved_model_to_a_render(tmp_path, capsys):
    fits = pytest.importorskip("astropy.io.fits")
    header = fits.Header({"OBJECT": "M 51", "CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 8.0,
                          "CRPIX2": 8.0, "CDELT1": -0.001, "CDELT2": 0.001, "CRVAL1": 202.5, "CRVAL2": 47.2})
    data = (100 + np.random.default_rng(6).normal(0, 5, (16, 16))).astype(np.float32)
    fits.PrimaryHDU(data, header=header).writeto(tmp_path / "m51.fits")
    model = tmp_path / "m.pt"
    assert main(["restore", "--noisy", str(tmp_path / "m51.fits"), "-o", str(tmp_path / "r.fits"), "--steps", "2",
                 "--quiet", "--save-model", str(model)]) == 0
    assert main(["render", str(model), "-o", str(tmp_path / "x2.fits"), "--scale", "2", "--quiet"]) == 0
    capsys.readouterr()
    rendered = fits.getheader(tmp_path / "x2.fits")
    assert rendered["OBJECT"] == "M 51" and rendered["NAXIS1"] == 32
    assert rendered["CRPIX1"] == pytest.approx(2 * (8.0 - 0.5) + 0.5) and rendered["CDELT2"] == pytest.approx(0.0005)
    verified(tmp_path / "x2.fits")


def test_what_an_astronomer_trial_found(tmp_path, capsys):
    import gzip

    image = np.arange(8 * 10, dtype=np.float32).reshape(8, 10)
    # a zero point and a zenith angle are the scene's, kept (only compression's Z keywords go)
    path = handmade_fits(tmp_path / "z.fits", image, -32, (_card("ZP", "25.3"), _card("ZENITH", "12.0"),
                                                           _card("ZCMPTYPE", "'RICE_1'")))
    keys = [c[:8].strip() for c in read_stored(path)[0].fits.cards]
    assert keys == ["ZP", "ZENITH"]
    # gzip-compressed FITS, as archives deliver it: read, and found by a batch under its stem
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "m51.fits.gz").write_bytes(gzip.compress(path.read_bytes()))
    (stored,) = read_stored(folder / "m51.fits.gz")
    assert np.array_equal(stored.values[..., 0], image[::-1])
    assert main(["batch", "--noisy", str(folder), "-o", str(tmp_path / "out"), "--steps", "2", "--quiet"]) == 0
    capsys.readouterr()
    assert [p.name for p in (tmp_path / "out").glob("*.fits")] == ["m51.fits"]
    # three planes along a labelled time axis are three frames, unlabelled ones colour
    cube = np.stack([image, image + 1, image + 2])
    assert len(read_stored(handmade_fits(tmp_path / "t.fits", cube, -32, ("CTYPE3  = 'TIME'",)))) == 3
    assert read_stored(handmade_fits(tmp_path / "c.fits", cube, -32))[0].values.shape == (8, 10, 3)
    assert main(["restore", "--noisy", str(tmp_path / "c.fits"), "-o", str(tmp_path / "c_out.fits"), "--steps", "2",
                 "--quiet"]) == 0
    assert "its 3 planes are read as the colours" in capsys.readouterr().err
    # a radio map's axes of length 1 are written back, so its four-axis world coordinates fit
    radio = handmade_fits(tmp_path / "radio.fits", image[None, None], -32, ("CTYPE3  = 'FREQ'",))
    pixels, info = read_image(radio)
    out = write_image(tmp_path / "radio_out.fits", pixels, bit_depth=32, value_range=info.value_range, fits=info.fits)
    head = out.read_bytes()[:2880].decode()
    assert _card("NAXIS", "4") in head and _card("NAXIS3", "1") in head and _card("NAXIS4", "1") in head
    # an 8-bit mask of 0 and 1 (as saved from booleans) keeps its 1s
    keep = np.ones((8, 10), np.uint8)
    keep[3:5, 4:6] = 0
    from linr.images import read_mask

    notes: list[str] = []
    mask = read_mask(handmade_fits(tmp_path / "mask.fits", keep, 8), notes=notes)
    assert mask.sum() == 76 and "values 0 and 1" in notes[0]
    # an IRAF physical system (LTV, LTM) scales with the image
    header = FitsHeader((_card("LTV1", "-10.0"), _card("LTM1_1", "0.5"), _card("PIXSCALE", "0.4")), (8, 10))
    scaled = {c[:8].strip(): float(c[10:30]) for c in header.for_size(16, 20).cards}
    assert scaled == {"LTV1": pytest.approx(2 * -10.0 + 0.5 * (1 - 2)), "LTM1_1": 1.0, "PIXSCALE": 0.2}


def test_an_image_in_an_extension_keeps_the_primary_header(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    primary = fits.PrimaryHDU(header=fits.Header({"TELESCOP": "HST", "EXPTIME": 300.0, "OBJECT": "old"}))
    sci = fits.ImageHDU(np.ones((6, 7), np.float32), name="SCI", header=fits.Header({"OBJECT": "M 51",
                                                                                     "INHERIT": True}))
    fits.HDUList([primary, sci]).writeto(tmp_path / "hst.fits")
    pixels, info = read_image(tmp_path / "hst.fits")
    out = write_image(tmp_path / "out.fits", pixels, bit_depth=32, value_range=info.value_range, fits=info.fits)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with fits.open(out) as hdus:
            hdus.verify("exception")
            header = hdus[0].header
    assert header["TELESCOP"] == "HST" and header["EXPTIME"] == 300.0 and header["OBJECT"] == "M 51"
    assert "INHERIT" not in header and list(header).count("OBJECT") == 1


def test_a_pc_matrix_without_cdelt_stays_on_the_sky_at_another_size(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    wcs = pytest.importorskip("astropy.wcs")
    header = fits.Header({"CTYPE1": "RA---TAN", "CTYPE2": "DEC--TAN", "CRPIX1": 5.5, "CRPIX2": 4.0,
                          "CRVAL1": 10.0, "CRVAL2": -30.0, "PC1_1": -2e-4, "PC1_2": 3e-5, "PC2_1": 2e-5,
                          "PC2_2": 2.2e-4})
    fits.PrimaryHDU(np.ones((8, 10), np.float32), header=header).writeto(tmp_path / "in.fits")
    _, info = read_image(tmp_path / "in.fits")
    out = write_image(tmp_path / "out.fits", np.zeros((24, 20), np.float32), bit_depth=32,
                      value_range=info.value_range, fits=info.fits)
    before, after = wcs.WCS(fits.getheader(tmp_path / "in.fits")), wcs.WCS(fits.getheader(out))
    at = np.array([[1.0, 1.0], [20.0, 24.0], [7.0, 3.0]])
    same = np.stack([(at[:, 0] - 0.5) / 2 + 0.5, (at[:, 1] - 0.5) / 3 + 0.5], axis=1)
    assert np.abs(before.all_pix2world(same, 1) - after.all_pix2world(at, 1)).max() * 3600 < 1e-6


def test_long_and_hierarch_cards_of_an_inherited_header_survive_whole(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    primary = fits.Header()
    primary["HIERARCH ESO DET CHIP NAME"] = "CCD-44"
    primary["HIERARCH ESO INS NAME"] = "FORS2"
    primary["OBSERVER"] = "a long name " * 12  # a long string: CONTINUE cards
    primary["NOTE"] = "kept " * 30
    ext = fits.Header()
    ext["HIERARCH ESO DET CHIP NAME"] = "CCD-45"  # one HIERARCH card given again: the others stay
    ext["OBSERVER"] = "someone else " * 10  # a long string given again: the primary's goes whole
    sci = np.ones((6, 7), np.float32)
    fits.HDUList([fits.PrimaryHDU(header=primary), fits.ImageHDU(sci, header=ext)]).writeto(tmp_path / "eso.fits")
    pixels, info = read_image(tmp_path / "eso.fits")
    out = write_image(tmp_path / "out.fits", pixels, bit_depth=32, value_range=info.value_range, fits=info.fits)
    verified(out)
    header = fits.getheader(out)
    assert header["HIERARCH ESO DET CHIP NAME"] == "CCD-45" and header["HIERARCH ESO INS NAME"] == "FORS2"
    assert header["OBSERVER"] == ("someone else " * 10).rstrip() and header["NOTE"] == ("kept " * 30).rstrip()


def test_holes_in_a_batch_and_a_damaged_gzip_beside_good_files(tmp_path, capsys):
    import gzip

    masked = tmp_path / "masked"
    masked.mkdir()
    ramp = np.add.outer(np.arange(12.0), np.arange(12.0)).astype(np.float32) + 50
    ramp[4, 5] = np.nan
    handmade_fits(masked / "a.fits", ramp, -32)
    assert main(["batch", "--masked", str(masked), "-o", str(tmp_path / "filled"), "--steps", "5", "--quiet"]) == 0
    capsys.readouterr()
    (filled,) = read_stored(tmp_path / "filled" / "a.fits")
    assert np.isfinite(filled.values).all() and filled.alpha is None
    noisy = tmp_path / "noisy"
    noisy.mkdir()
    good = handmade_fits(noisy / "good.fits", 100 + np.eye(12, dtype=np.float32), -32)
    broken = bytearray(gzip.compress(good.read_bytes()))
    broken[12:60] = bytes(48)
    (noisy / "bad.fits.gz").write_bytes(bytes(broken))
    code = main(["batch", "--noisy", str(noisy), "-o", str(tmp_path / "out"), "--steps", "2", "--quiet"])
    err = capsys.readouterr().err
    assert code == EXIT_SOME_FAILED and "internal error" not in err, err  # the damaged one fails alone
    records = {r["image"]: r for r in map(json.loads, (tmp_path / "out" / "manifest.jsonl").read_text().splitlines())}
    assert records["good"]["status"] == "done" and records["bad"]["status"] == "failed"
    assert "not a readable image" in records["bad"]["error"]
    (noisy / "cut.fits.gz").write_bytes(gzip.compress(good.read_bytes())[:-40])
    with pytest.raises(InputError, match="EOFError: Compressed file ended"):
        read_stored(noisy / "cut.fits.gz")
    err = run_err(capsys, ["restore", "--noisy", str(good), "-o", str(tmp_path / "out.fits.gz")])
    assert "written uncompressed" in err


def test_undefined_pixels_stay_undefined_in_a_float_fits_output(tmp_path, capsys):
    data = np.full((8, 8), 10.0, np.float32)
    data[1, 2] = np.nan
    path = handmade_fits(tmp_path / "holes.fits", data, -32)
    assert main(["degrade", str(path), "--noise", "5", "-o", str(tmp_path / "d.fits")]) == 0
    assert "alpha" not in capsys.readouterr().err  # written as NaN, nothing dropped
    (again,) = read_stored(tmp_path / "d.fits")
    assert again.alpha is not None and np.count_nonzero(again.alpha == 0) == 1 and again.alpha[6, 2] == 0
    verified(tmp_path / "d.fits")
    err = run_err(capsys, ["metrics", str(path), str(tmp_path / "d.fits")])  # no score over undefined pixels
    assert "1 of its pixels are undefined" in err
    # an IRAF matrix without its offset, and an offset without its matrix, scale whole
    header = FitsHeader((_card("LTM1_1", "0.5"), _card("LTV2", "3.0")), (8, 10))
    scaled = {c[:8].strip(): float(c[10:30]) for c in header.for_size(16, 20).cards}
    assert scaled == {"LTM1_1": 1.0, "LTV2": 2 * 3.0 - 0.5, "LTM2_2": 2.0, "LTV1": -0.5}
    assert all("." in c[10:30] or "E" in c[10:30] for c in header.for_size(16, 20).cards)  # reals stay reals


def test_a_cube_restored_frame_by_frame_is_written_as_a_cube(tmp_path, capsys):
    rng = np.random.default_rng(7)
    cube = (100 + rng.normal(0, 5, (4, 12, 12))).astype(np.float32)
    path = handmade_fits(tmp_path / "series.fits", cube, -32, ("CTYPE3  = 'TIME'", "OBJECT  = 'a series'"))
    out = tmp_path / "out.fits"
    assert main(["restore", "--noisy", str(path), "--frames", "separate", "-o", str(out), "--steps", "2",
                 "--quiet"]) == 0
    capsys.readouterr()
    frames = read_stored(out)
    assert len(frames) == 4 and frames[0].values.shape == (12, 12, 1)
    assert any("a series" in c for c in frames[0].fits.cards)
    verified(out)
    three = handmade_fits(tmp_path / "three.fits", cube[:3], -32, ("CTYPE3  = 'TIME'",))
    err = run_err(capsys, ["restore", "--noisy", str(three), "--frames", "separate", "-o", str(tmp_path / "o3.fits"),
                           "--steps", "2"])
    assert "read back as one colour image" in err


def test_a_second_astronomer_trial(tmp_path, capsys):
    fits = pytest.importorskip("astropy.io.fits")
    wcs = pytest.importorskip("astropy.wcs")
    sky = np.full((8, 8), 100.0, np.float32)
    sky[3, 4] = np.nan
    holes = handmade_fits(tmp_path / "holes.fits", sky, -32)
    # operators that mix pixels refuse undefined ones; a kept-pixels mask never marks them observed
    err = run_err(capsys, ["degrade", str(holes), "--downscale", "2", "-o", str(tmp_path / "d.fits")])
    assert "1 of its pixels are undefined" in err and "--downscale" in err
    assert main(["degrade", str(holes), "--keep", "0.99", "-o", str(tmp_path / "k.fits"), "--mask-output",
                 str(tmp_path / "k_mask.png")]) == 0
    capsys.readouterr()
    from linr.images import read_mask

    assert not read_mask(tmp_path / "k_mask.png")[8 - 1 - 3, 4]  # the file's row 3, read top first
    # a series made into one image keeps its third axis (of length 1): its world coordinates fit
    series = np.stack([np.full((10, 10), 100.0 + k, np.float32) for k in range(4)])
    cards = ("CTYPE3  = 'TIME'", _card("CRPIX3", "1.0"), _card("CDELT3", "30.0"), _card("CRVAL3", "0.0"))
    path = handmade_fits(tmp_path / "series.fits", series, -32, cards)
    assert main(["restore", "--noisy", str(path), "-o", str(tmp_path / "one.fits"), "--steps", "2", "--quiet"]) == 0
    capsys.readouterr()
    verified(tmp_path / "one.fits")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert wcs.WCS(fits.getheader(tmp_path / "one.fits")).naxis == 3
    assert fits.getheader(tmp_path / "one.fits")["NAXIS3"] == 1
    # a series whose frames have holes in some: --masked fills those, the others are whole
    series[1, 2, 2] = np.nan
    path = handmade_fits(tmp_path / "some.fits", series, -32, cards)
    err = run_err(capsys, ["restore", "--noisy", str(path), "-o", str(tmp_path / "n.fits"), "--steps", "2"])
    assert f"{path}[2]: 1 of its pixels are undefined" in err  # the frame with the hole, not a whole one
    assert main(["restore", "--masked", str(path), "-o", str(tmp_path / "some_out.fits"), "--steps", "3",
                 "--quiet"]) == 0
    capsys.readouterr()
    assert np.isfinite(read_stored(tmp_path / "some_out.fits")[0].values).all()
    # an ensemble's spread in FITS is in the input's units, as its header's BUNIT says
    counts = handmade_fits(tmp_path / "c.fits", 1000 + 50 * np.eye(16, dtype=np.float32), -32,
                           ("BUNIT   = 'Jy/beam'",))
    assert main(["restore", "--noisy", str(counts), "-o", str(tmp_path / "e.fits"), "--ensemble", "2",
                 "--uncertainty", str(tmp_path / "u.fits"), "--steps", "3", "--quiet",
                 "--report", str(tmp_path / "r.json")]) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "r.json").read_text())
    spread = fits.getdata(tmp_path / "u.fits")
    assert fits.getheader(tmp_path / "u.fits")["BUNIT"] == "Jy/beam"
    assert float(spread.max()) == pytest.approx(report["uncertainty"]["largest"] * 1050.0, rel=1e-3)


def test_a_bias_subtracted_frames_gain_and_read_noise_cards_set_its_photon_levels(tmp_path, capsys):
    """--noise poisson / poisson-gaussian on a FITS frame with GAIN (electrons per stored unit) and
    RDNOISE (electrons): the photon level is GAIN times the range mapped to white, the read noise
    RDNOISE / GAIN on that range (0-255 scale), said in a note; --peak / --read-noise win; a
    range that does not start at 0 (not bias-subtracted), Gaussian noise or no GAIN card: none."""
    from linr.scene import load_scene

    rng = np.random.default_rng(0)
    scene = 0.2 + 0.6 * np.linspace(0, 1, 32 * 32).reshape(32, 32)
    stored = (rng.poisson(scene * 3000) + rng.normal(0, 6, scene.shape)) / 2.0  # GAIN 2 e-/ADU
    extra = (_card("GAIN", "2.0"), _card("RDNOISE", "6.0"))
    path = handmade_fits(tmp_path / "raw.fits", np.clip(stored, 0, None).astype(np.float32), -32, extra)
    high = float(np.clip(stored, 0, None).astype(np.float32).max())
    notes: list[str] = []
    obs, _, _ = load_scene({"noisy": str(path)}, {"noise": "poisson-gaussian"}, notes=notes)
    assert obs[0].fidelity.peak == pytest.approx(2.0 * high, rel=1e-6)
    assert obs[0].fidelity.read_sigma == pytest.approx(6.0 / 2.0 / high, rel=1e-6)
    said = [n for n in notes if "from its header" in n]
    assert len(said) == 1 and "GAIN x" in said[0] and "RDNOISE / GAIN" in said[0], notes
    assert not any("estimated from the image" in n for n in notes), notes
    notes = []
    obs, _, _ = load_scene({"noisy": str(path)}, {"noise": "poisson", "peak": 500.0}, notes=notes)
    assert obs[0].fidelity.peak == 500.0 and not any("from its header" in n for n in notes)
    obs, _, _ = load_scene({"noisy": str(path)}, {}, notes=[])  # Gaussian: the header's levels unused
    assert type(obs[0].fidelity).__name__ == "SquaredError"
    shifted = handmade_fits(tmp_path / "bias.fits", (stored - 400).astype(np.float32), -32, extra)
    notes = []
    load_scene({"noisy": str(shifted)}, {"noise": "poisson"}, notes=notes)  # a range from its minimum < 0
    assert not any("from its header" in n for n in notes)


def test_a_float_reference_of_integer_counts_is_read_in_their_units(tmp_path, capsys):
    """A uint16 FITS of counts (mapped by the 16-bit range) against a float FITS of the same counts
    (its own range would map it from 0 to its maximum): the reference is read in the inputs' units,
    so the noisy input's PSNR against it is the one computed by hand in those units; both notes."""
    from skimage.metrics import peak_signal_noise_ratio

    rng = np.random.default_rng(1)
    clean = 500 + 2000 * np.linspace(0, 1, 24 * 24).reshape(24, 24)
    counts = np.clip(np.round(clean + rng.normal(0, 60, clean.shape)), 0, None)
    noisy = handmade_fits(tmp_path / "n.fits", (counts - 32768).astype(np.int16), 16, (_card("BZERO", "32768"),))
    ref = handmade_fits(tmp_path / "c.fits", clean.astype(np.float32), -32)
    report = tmp_path / "r.json"
    assert main(["restore", "--noisy", str(noisy), "-o", str(tmp_path / "o.fits"), "--reference", str(ref),
                 "--steps", "2", "--device", "cpu", "--report", str(report)]) == 0
    err = capsys.readouterr().err
    assert "reach only" in err and "c.fits: its float values are read in the inputs' units" in err
    by_hand = peak_signal_noise_ratio(clean / 65535, counts / 65535, data_range=1.0)
    inputs = json.loads(report.read_text())["input_psnr"]
    assert inputs[0]["psnr"] == pytest.approx(by_hand, abs=0.01), inputs


def test_degrade_leaves_out_the_cameras_gain_where_it_adds_noise(tmp_path, capsys):
    """An astronomer's `linr degrade --poisson 20` of a FITS kept GAIN 2.0 / RDNOISE 5.0: restoring it
    with --noise poisson took 846 photons at white from them (flux 27% low). Noise added: the cards
    left out, said; a downscale (no noise added) keeps them."""
    rng = np.random.default_rng(2)
    data = (50 + 400 * rng.random((16, 16))).astype(np.float32)
    path = handmade_fits(tmp_path / "c.fits", data, -32, (_card("GAIN", "2.0"), _card("RDNOISE", "5.0"),
                                                          _card("OBJECT", "'M51'")))
    assert main(["degrade", str(path), "-o", str(tmp_path / "p.fits"), "--poisson", "20"]) == 0
    assert "its header's GAIN/RDNOISE left out" in capsys.readouterr().out
    text = (tmp_path / "p.fits").read_bytes()[:2880].decode("ascii")
    assert "GAIN    =" not in text and "RDNOISE =" not in text and "M51" in text
    assert main(["degrade", str(path), "-o", str(tmp_path / "d.fits"), "--downscale", "2"]) == 0
    assert "GAIN    =" in (tmp_path / "d.fits").read_bytes()[:2880].decode("ascii")


def test_an_astronomers_notes_undefined_pixels_unused_gain_sr_flux_and_frame_numbered_psnr(tmp_path, capsys):
    """An astronomer's trial: NaN holes were called 'transparent pixels'; a sky-subtracted frame's GAIN
    was left unused without a word; a x2 super-resolved FITS of counts summed to 4 times its input's
    with no word; separate frames' PSNR lines did not say which frame they were."""
    from linr.scene import load_scene

    rng = np.random.default_rng(3)
    data = (100 + 300 * rng.random((16, 16))).astype(np.float32)
    holed = data.copy()
    holed[3:5, 3:5] = np.nan
    notes: list[str] = []
    load_scene({"masked": str(handmade_fits(tmp_path / "h.fits", holed, -32))}, notes=notes)
    assert any("undefined pixels (NaN or BLANK) (1.6%) taken as missing; the output defines every pixel" in n
               for n in notes), notes
    notes = []
    sky = (rng.poisson(np.linspace(20, 400, 48 * 48).reshape(48, 48)) - 30).astype(np.float32)
    gained = handmade_fits(tmp_path / "s.fits", sky, -32, (_card("GAIN", "2.0"),))
    load_scene({"noisy": str(gained)}, {"noise": "poisson"}, notes=notes)
    assert any("its header's gain is not used: its values run from" in n for n in notes), notes
    notes = []
    load_scene({"noisy": str(gained)}, {"noise": "poisson", "peak": 400.0}, notes=notes)  # nothing estimated
    assert not any("its header's gain is not used" in n for n in notes), notes
    notes = []
    load_scene({"lowres": str(handmade_fits(tmp_path / "l.fits", data, -32))}, {"factor": 2}, notes=notes)
    assert any("the output's pixels sum to 4 times the input's (x2): divide the output by 4" in n for n in notes)
    stack = np.stack([data, data * 0.5]) / 400
    path = handmade_fits(tmp_path / "st.fits", stack.astype(np.float32), -32)
    ref = handmade_fits(tmp_path / "ref.fits", stack.astype(np.float32), -32)
    assert main(["restore", "--noisy", str(path), "--frames", "separate", "--reference", str(ref), "-o",
                 str(tmp_path / "o.fits"), "--steps", "2", "--refine", "none", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "frame 1/2: PSNR" in out and "frame 2/2: PSNR" in out and "frame 2/2: the inputs against it" in out


def test_a_deconvolutions_reference_brighter_than_its_photo_is_measured_as_the_file_keeps_it(tmp_path, capsys):
    """An astronomer's deconvolved stars: a reference whose peaks lie far above the blurred photo's
    maximum was refused ('float values must lie in [0, 1]'), and where it was taken the printed PSNR
    clipped the output at the photo's maximum though the float file keeps the brighter peaks. Now
    taken, and measured also as the file keeps it; where everything lies within the inputs' range,
    the --range that makes linr metrics measure alike is named."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(8)
    clean = np.full((24, 24), 20.0)
    clean[8, 9], clean[15, 16] = 900.0, 600.0
    clean = gaussian_filter(clean, 1.0)
    blurred = gaussian_filter(clean, 1.5) + rng.normal(0, 0.5, clean.shape)
    ref = handmade_fits(tmp_path / "c.fits", clean.astype(np.float32), -32)
    photo = handmade_fits(tmp_path / "b.fits", blurred.astype(np.float32), -32)
    x = np.arange(-4, 5)
    psf = np.exp(-(x[:, None] ** 2 + x[None] ** 2) / (2 * 1.5 ** 2))
    np.save(tmp_path / "psf.npy", psf / psf.sum())
    assert main(["restore", "--blurred", str(photo), "--kernel", str(tmp_path / "psf.npy"), "--reference", str(ref),
                 "-o", str(tmp_path / "o.fits"), "--steps", "30", "--report", str(tmp_path / "r.json")]) == 0
    line = next(t for t in capsys.readouterr().out.splitlines() if t.startswith("PSNR"))
    written = json.loads((tmp_path / "r.json").read_text())["metrics_as_written"]
    # since the sixty-seventh session the reference's range is the one measured on (its peaks 2.5x the
    # photo's maximum): the headline number is the file's, so no second one is printed beside it
    assert "clipped to the reference's range 0..2.5" in line and written["bit_depth"] == 32, line
    std = json.loads((tmp_path / "r.json").read_text())["metrics"]["standard"]
    assert written["psnr"] == pytest.approx(std["psnr"], abs=0.005) and "as written" not in line
    assert "linr metrics --range" not in line  # the reference reaches beyond the range: no such claim


def test_a_fits_output_says_what_was_done_in_history_cards(tmp_path):
    """An astronomer's restored FITS said only 'HISTORY written by linr': the inputs, steps,
    refinement (restore) and the simulation (degrade) are written as HISTORY cards, a long line over
    several."""
    from linr.fits import FitsHeader

    rng = np.random.default_rng(9)
    data = (0.2 + 0.6 * rng.random((16, 16))).astype(np.float32)
    path = handmade_fits(tmp_path / "n.fits", data, -32, (_card("OBJECT", "'M51'"),))
    assert main(["restore", "--noisy", str(path), "-o", str(tmp_path / "o.fits"), "--steps", "3", "--quiet"]) == 0
    head = (tmp_path / "o.fits").read_bytes()[:2880].decode("ascii")
    assert "HISTORY linr restore: 1 noisy (n.fits)" in head and "HISTORY linr restore: 3 steps" in head
    assert main(["degrade", str(path), "-o", str(tmp_path / "d.fits"), "--noise", "10"]) == 0
    assert "HISTORY linr degrade: Gaussian noise sigma 10/255, seed" in \
        (tmp_path / "d.fits").read_bytes()[:2880].decode("ascii")
    header = FitsHeader((), (1, 1)).with_history("x" * 100)
    assert [c.rstrip() for c in header.cards] == ["HISTORY " + "x" * 72, "HISTORY " + "x" * 28]


def test_write_fits_splits_its_own_history_line_over_cards(tmp_path):
    """write_fits cut its ``history`` at one card where FitsHeader.with_history splits a long line:
    both now write it whole, over as many cards as it needs, and astropy reads it back."""
    from linr.fits import write_fits

    line = "written by linr " + "9" * 90
    write_fits(tmp_path / "h.fits", np.zeros((4, 4, 1), np.float32), history=line)
    head = (tmp_path / "h.fits").read_bytes()[:2880].decode("ascii")
    cards = [head[k:k + 80].rstrip() for k in range(0, len(head), 80) if head.startswith("HISTORY", k)]
    assert "".join(card[len("HISTORY "):] for card in cards) == line and len(cards) == 2
    fits_io = pytest.importorskip("astropy.io.fits")
    assert "".join(fits_io.getheader(tmp_path / "h.fits")["HISTORY"]) == line
