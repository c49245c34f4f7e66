"""Image I/O: formats, bit depths, channels, alpha, and safe writes."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

from linr.errors import InputError
from linr.images import read_image, read_mask, write_frames, write_image


@pytest.mark.parametrize("ext", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3])
def test_16bit_roundtrip(tmp_path, rng, ext, channels):
    img = rng.random((9, 11, channels)).astype(np.float32)
    path = write_image(tmp_path / f"a{ext}", img, bit_depth=16)
    back, info = read_image(path)
    assert info.bit_depth == 16 and info.channels == channels and back.shape == (9, 11, channels)
    assert np.abs(back - img).max() <= 0.5 / 65535 + 1e-7


@pytest.mark.parametrize("ext", [".png", ".bmp", ".tif", ".jpg"])
def test_8bit_roundtrip(tmp_path, rng, ext):
    img = rng.random((16, 12, 3)).astype(np.float32)
    if ext == ".jpg":  # lossy: use a smooth image and a mean tolerance
        img = np.broadcast_to(np.linspace(0.2, 0.8, 12, dtype=np.float32)[None, :, None], img.shape)
    back, info = read_image(write_image(tmp_path / f"a{ext}", img))
    assert info.bit_depth == 8 and back.shape == img.shape
    if ext == ".jpg":
        assert np.abs(back - img).mean() < 0.02
    else:
        assert np.abs(back - img).max() <= 0.5 / 255 + 1e-7


def test_alpha_is_set_aside_and_written_back(tmp_path, rng):
    rgba = (rng.random((8, 8, 4)) * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
    pixels, info = read_image(tmp_path / "in.png")
    assert pixels.shape == (8, 8, 3) and info.alpha is not None
    out = write_image(tmp_path / "out.png", pixels, alpha=info.alpha)
    assert np.array_equal(np.asarray(Image.open(out)), rgba)
    big = write_image(tmp_path / "big.png", np.zeros((16, 16, 3)), alpha=info.alpha)  # SR: resized
    assert Image.open(big).mode == "RGBA" and Image.open(big).size == (16, 16)


def test_grey_and_palette(tmp_path, rng):
    Image.fromarray((rng.random((5, 6)) * 255).astype(np.uint8), "L").save(tmp_path / "g.png")
    assert read_image(tmp_path / "g.png")[0].shape == (5, 6, 1)
    Image.fromarray((rng.random((5, 6, 3)) * 255).astype(np.uint8)).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png")[0].shape == (5, 6, 3)


def test_unreadable_and_missing(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nthis is not a png")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(tmp_path / "bad.png")
    (tmp_path / "txt.jpg").write_text("hello")
    with pytest.raises(InputError, match="not a readable image"):
        read_image(tmp_path / "txt.jpg")
    with pytest.raises(InputError, match="no such file"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(InputError, match="folder"):
        read_image(tmp_path)


def test_non_finite_float_tiff(tmp_path):
    import tifffile

    tifffile.imwrite(tmp_path / "nan.tif", np.full((4, 4), np.nan, dtype=np.float32))
    with pytest.raises(InputError, match="non-finite"):
        read_image(tmp_path / "nan.tif")


def test_writes_never_clobber(tmp_path, rng):
    img = rng.random((4, 4, 3))
    target = write_image(tmp_path / "x.png", img)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    before = target.read_bytes()
    with pytest.raises(InputError, match=r"exists \(force=True to overwrite\)"):  # Python's option, not --force
        write_image(target, 1 - img)
    assert target.read_bytes() == before
    with pytest.raises(InputError, match="input"):
        write_image(target, 1 - img, force=True, protect=[target])
    assert target.read_bytes() == before
    write_image(target, 1 - img, force=True)
    assert target.read_bytes() != before
    with pytest.raises(InputError, match="non-finite"):
        write_image(tmp_path / "nan.png", np.full((2, 2), np.nan))
    assert not (tmp_path / "nan.png").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp litter
    with pytest.raises(InputError, match="unknown output format"):
        write_image(tmp_path / "x.gifx", img)


def test_mask_reading(tmp_path):
    m = np.zeros((6, 7), np.uint8)
    m[2:4] = 255
    Image.fromarray(m).save(tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png", (6, 7))
    assert mask.dtype == bool and mask.sum() == 14
    with pytest.raises(InputError, match="mask is 7x6"):
        read_mask(tmp_path / "m.png", (6, 8))
    Image.fromarray(np.zeros((3, 3), np.uint8)).save(tmp_path / "empty.png")
    with pytest.raises(InputError, match="keeps no pixels"):
        read_mask(tmp_path / "empty.png")


@pytest.mark.parametrize("orientation", range(1, 9))
def test_a_tiff_is_read_as_its_orientation_tag_shows_it(tmp_path, orientation):
    """As Pillow shows it (``ImageOps.exif_transpose``, the independent reference); the resolution
    follows the turn, and an output written from it is upright without the tag."""
    from PIL import Image, ImageOps

    from linr.images import read_frames

    stored = (np.random.default_rng(orientation).random((6, 10, 3)) * 255).astype(np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"turned{orientation}.tif"
    Image.fromarray(stored).save(path, exif=exif, dpi=(100, 300))
    shown = np.asarray(ImageOps.exif_transpose(Image.open(path)))
    image, info = read_image(path)
    assert np.array_equal(np.round(image * 255).astype(np.uint8), shown)
    resolution = info.tiff.resolution
    assert resolution == pytest.approx((300, 100) if orientation >= 5 else (100, 300))
    out = tmp_path / "out.tif"
    write_image(out, image, tiff=info.tiff)
    assert np.array_equal(np.round(read_frames(out)[0][0] * 255).astype(np.uint8), shown)


def test_a_palette_tiff_is_read_in_its_colours_and_a_min_is_white_one_the_right_way_round(tmp_path):
    import tifffile

    rng = np.random.default_rng(0)
    index = rng.integers(0, 16, (8, 12)).astype(np.uint8)
    colours = rng.integers(0, 256, (3, 256)).astype(np.uint16) * 257  # TIFF stores 8-bit colours scaled to 16 bits
    tifffile.imwrite(tmp_path / "palette.tif", index, photometric="palette", colormap=colours)
    image, info = read_image(tmp_path / "palette.tif")
    assert info.bit_depth == 8 and image.shape == (8, 12, 3)
    assert np.array_equal(np.round(image * 255).astype(np.uint16), (colours // 257).T[index])
    deep = rng.integers(0, 65536, (3, 256)).astype(np.uint16)  # 16-bit colours kept as such
    tifffile.imwrite(tmp_path / "deep.tif", index, photometric="palette", colormap=deep)
    image, info = read_image(tmp_path / "deep.tif")
    assert info.bit_depth == 16 and np.array_equal(np.round(image * 65535).astype(np.uint16), deep.T[index])
    grey = rng.integers(0, 256, (8, 12)).astype(np.uint8)
    tifffile.imwrite(tmp_path / "white.tif", grey, photometric="miniswhite")
    assert np.array_equal(np.round(read_image(tmp_path / "white.tif")[0][..., 0] * 255).astype(np.uint8), 255 - grey)
    opaque = np.stack([grey, np.full_like(grey, 255)], axis=-1)  # with alpha: only the grey is inverted
    tifffile.imwrite(tmp_path / "white_alpha.tif", opaque, photometric="miniswhite", extrasamples=["unassalpha"])
    image, info = read_image(tmp_path / "white_alpha.tif")
    assert np.array_equal(np.round(image[..., 0] * 255).astype(np.uint8), 255 - grey) and info.alpha.min() == 1.0
    pil = Image.fromarray(index, "P")  # Pillow writes its colour map as v * 256
    pil.putpalette(list(np.arange(48) * 5))
    pil.save(tmp_path / "pil.tif")
    image, info = read_image(tmp_path / "pil.tif")
    assert info.bit_depth == 8 and np.array_equal(np.round(image * 255).astype(np.uint8), np.asarray(pil.convert("RGB")))


@pytest.mark.parametrize("suffix", ["gif", "png", "webp"])
def test_an_animation_is_read_frame_by_frame_as_a_stack(tmp_path, suffix, capsys):
    """Its frames as Pillow shows them one by one (was: the first frame alone, silently); the CLI
    then restores them as one scene or frame by frame, as a TIFF's pages."""
    from linr.cli import main
    from linr.images import read_stored

    rng = np.random.default_rng(0)
    frames = [Image.fromarray((rng.random((12, 16, 3)) * 255).astype(np.uint8)) for _ in range(3)]
    path = tmp_path / f"anim.{suffix}"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, **({"lossless": True} if suffix == "webp" else {}))
    stored = read_stored(path)
    assert [s.name for s in stored] == [f"{path}[{i}]" for i in (1, 2, 3)]
    with Image.open(path) as shown:
        for index, image in enumerate(stored):
            shown.seek(index)
            assert np.array_equal(image.values, np.asarray(shown.convert("RGB")))
    frames[0].save(tmp_path / "still.gif")  # one frame: one image
    assert len(read_stored(tmp_path / "still.gif")) == 1
    tiny = ["--width", "8", "--depth", "1", "--steps", "2", "--stop", "fixed", "--device", "cpu", "--quiet"]
    assert main(["restore", "--noisy", str(path), "--frames", "separate", "-o", str(tmp_path / "out.tif"), *tiny]) == 0
    assert len(read_stored(tmp_path / "out.tif")) == 3
    tiny.remove("--quiet")
    capsys.readouterr()
    assert main(["restore", "--noisy", str(path), "--frames", "separate", "-o", str(tmp_path / "out2.tif"), *tiny]) == 0
    wrote = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("wrote "))
    assert "2 steps per frame" in wrote and "s fitting in all)" in wrote  # not the frames' steps added up


def test_the_input_colour_profile_goes_into_every_output_that_holds_one(tmp_path, capsys):
    """PNG (8- and 16-bit), JPEG and TIFF outputs of restore, degrade and render carry the input's
    ICC profile (as Pillow and tifffile read it back); a BMP, which holds none, says so."""
    import tifffile
    from PIL import ImageCms

    from linr.cli import main

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    rng = np.random.default_rng(0)
    pixels = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "in.jpg", icc_profile=profile, quality=95)
    assert read_image(tmp_path / "in.jpg")[1].icc_profile == profile
    tiny = ["--width", "8", "--depth", "1", "--steps", "2", "--stop", "fixed", "--device", "cpu", "--quiet"]
    for name in ("out.png", "out.jpg", "out.tif"):
        assert main(["restore", "--noisy", str(tmp_path / "in.jpg"), "-o", str(tmp_path / name), *tiny]) == 0
    assert Image.open(tmp_path / "out.png").info["icc_profile"] == profile
    assert Image.open(tmp_path / "out.jpg").info["icc_profile"] == profile
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert bytes(tif.pages[0].tags[34675].value) == profile
    assert read_image(tmp_path / "out.tif")[1].icc_profile == profile  # and a TIFF input gives it on
    write_frames(tmp_path / "pages.tif", [pixels, pixels[::-1]], icc_profile=profile)  # a stack: every page
    with tifffile.TiffFile(tmp_path / "pages.tif") as tif:
        assert len(tif.pages) == 2 and all(bytes(page.tags[34675].value) == profile for page in tif.pages)
    deep = tmp_path / "deep.png"
    write_image(deep, pixels, bit_depth=16, icc_profile=profile)
    assert Image.open(deep).info["icc_profile"] == profile and Image.open(deep).mode in ("RGB", "I;16", "RGB;16")
    assert np.array_equal(np.round(read_image(deep)[0] * 255).astype(np.uint8), pixels)
    assert main(["degrade", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "noisy.png"), "--noise", "10"]) == 0
    assert Image.open(tmp_path / "noisy.png").info["icc_profile"] == profile
    assert main(["restore", "--noisy", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "r.png"),
                 "--save-model", str(tmp_path / "m.pt"), *tiny]) == 0
    assert main(["render", str(tmp_path / "m.pt"), "--scale", "2", "-o", str(tmp_path / "big.png")]) == 0
    assert Image.open(tmp_path / "big.png").info["icc_profile"] == profile
    capsys.readouterr()
    assert main(["restore", "--noisy", str(tmp_path / "in.jpg"), "-o", str(tmp_path / "out.bmp"), *tiny]) == 0
    assert "BMP holds no colour profile" in capsys.readouterr().err
    from linr.images import profile_for

    cmyk = profile[:16] + b"CMYK" + profile[20:]  # a CMYK photo's profile: its pixels are written as RGB
    assert profile_for(cmyk, 3) is None and profile_for(profile, 1) is None and profile_for(profile, 3) == profile
    write_image(tmp_path / "cmyk.png", pixels, icc_profile=cmyk)
    assert "icc_profile" not in Image.open(tmp_path / "cmyk.png").info


def test_the_input_density_goes_into_every_output_scaled_to_its_size(tmp_path):
    """A 300-dpi scan's pixels per inch reach PNG (8- and 16-bit), JPEG, BMP and TIFF outputs as
    Pillow and tifffile read them back; super-resolution x2 and a render at twice the size give
    600 (the print size stays); a TIFF's resolution in centimetres and a JPEG turned by its EXIF
    orientation are read as pixels per inch across and down."""
    import tifffile

    from linr.cli import main

    rng = np.random.default_rng(1)
    pixels = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(tmp_path / "scan.png", dpi=(300, 300))
    assert read_image(tmp_path / "scan.png")[1].density.x == pytest.approx(300, abs=0.01)
    tiny = ["--width", "8", "--depth", "1", "--steps", "2", "--stop", "fixed", "--device", "cpu", "--quiet"]
    for name in ("out.png", "out.jpg", "out.bmp", "out.tif"):
        assert main(["restore", "--noisy", str(tmp_path / "scan.png"), "-o", str(tmp_path / name), *tiny]) == 0
        with Image.open(tmp_path / name) as im:
            assert im.info["dpi"] == pytest.approx((300, 300), abs=0.01), name
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.pages[0].resolution == pytest.approx((300, 300), abs=0.01) and tif.pages[0].resolutionunit == 2
    deep = write_image(tmp_path / "deep.png", pixels, bit_depth=16, density=read_image(tmp_path / "scan.png")[1].density)
    with Image.open(deep) as im:
        assert deep.read_bytes()[24] == 16 and im.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert main(["degrade", str(tmp_path / "scan.png"), "-o", str(tmp_path / "holes.png"), "--keep", "0.5"]) == 0
    with Image.open(tmp_path / "holes_mask.png") as im:  # the mask beside it too
        assert im.info["dpi"] == pytest.approx((300, 300), abs=0.01)
    assert main(["restore", "--lowres", str(tmp_path / "scan.png"), "--factor", "2", "-o", str(tmp_path / "sr.png"),
                 "--save-model", str(tmp_path / "m.pt"), *tiny]) == 0
    assert main(["render", str(tmp_path / "m.pt"), "--scale", "0.5", "-o", str(tmp_path / "small.jpg")]) == 0
    with Image.open(tmp_path / "sr.png") as sr, Image.open(tmp_path / "small.jpg") as small:
        assert sr.size == (32, 24) and sr.info["dpi"] == pytest.approx((600, 600), abs=0.01)
        assert small.size == (16, 12) and small.info["dpi"] == (300, 300)
    tifffile.imwrite(tmp_path / "cm.tif", pixels, resolution=(100.0, 50.0), resolutionunit=3)
    density = read_image(tmp_path / "cm.tif")[1].density
    assert (density.x, density.y, density.size) == (pytest.approx(254.0), pytest.approx(127.0), (12, 16))
    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned a quarter clockwise
    Image.fromarray(pixels).save(tmp_path / "turned.jpg", dpi=(300, 150), exif=exif)
    density = read_image(tmp_path / "turned.jpg")[1].density
    assert (density.x, density.y, density.size) == (150, 300, (16, 12))
    Image.fromarray(pixels).save(tmp_path / "plain.png")
    assert read_image(tmp_path / "plain.png")[1].density is None
    camera = Image.Exif()
    camera[0x010F] = "a camera"  # EXIF without a resolution: Pillow says 72 dpi, which nobody stored
    Image.fromarray(pixels).save(tmp_path / "exif.jpg", exif=camera)
    assert read_image(tmp_path / "exif.jpg")[1].density is None
    from linr.images import Density

    write_image(tmp_path / "dense.jpg", pixels, density=Density(70000.0, 70000.0, (12, 16)))  # past JFIF's 16 bits
    assert "dpi" not in Image.open(tmp_path / "dense.jpg").info
    turned16 = np.zeros((12, 16), np.uint16)  # a 16-bit PNG is read as stored (no EXIF turn): its density too
    Image.fromarray(turned16).save(tmp_path / "turned16.png", dpi=(300, 150), exif=exif)
    if Image.open(tmp_path / "turned16.png").getexif().get(0x0112) == 6:
        image16, info16 = read_image(tmp_path / "turned16.png")
        assert image16.shape[:2] == (12, 16) and (info16.density.x, info16.density.y) == (pytest.approx(300, abs=0.05), pytest.approx(150, abs=0.05))


def test_compressed_and_bilevel_tiffs_are_read_as_pillow_reads_them(tmp_path):
    """LZW, JPEG and CCITT fax TIFFs (the commonest compressions of scanners and editors; tifffile
    decodes them through imagecodecs) and bilevel (1-bit) scans, min-is-white ones and a
    two-page one, read as Pillow reads the same files."""
    import tifffile
    from PIL import ImageSequence, TiffImagePlugin

    from linr.images import read_stored

    rng = np.random.default_rng(3)
    colour = (rng.random((20, 24, 3)) * 255).astype(np.uint8)
    page = np.zeros((20, 24), bool)
    page[4:11, 3:17] = True
    white = TiffImagePlugin.ImageFileDirectory_v2()
    white[262] = 0  # PhotometricInterpretation: min-is-white
    Image.fromarray(colour).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    Image.fromarray(colour).save(tmp_path / "jpeg.tif", compression="jpeg", quality=90)
    Image.fromarray(page).save(tmp_path / "g4.tif", compression="group4")
    Image.fromarray(page).save(tmp_path / "g4_white.tif", compression="group4", tiffinfo=white)
    Image.fromarray(page).save(tmp_path / "g3_pages.tif", compression="group3", save_all=True,
                               append_images=[Image.fromarray(~page)])
    tifffile.imwrite(tmp_path / "raw_bits.tif", page, photometric="minisblack")
    for name, tolerance in (("lzw", 0), ("jpeg", 3), ("g4", 0), ("g4_white", 0), ("g3_pages", 0), ("raw_bits", 0)):
        with Image.open(tmp_path / f"{name}.tif") as im:
            expected = [np.asarray(f.convert("RGB" if im.mode == "RGB" else "L"), np.float32) / 255
                        for f in ImageSequence.Iterator(im)]
        stored = read_stored(tmp_path / f"{name}.tif")
        assert len(stored) == len(expected), name
        for got, want in zip(stored, expected):
            assert got.values.dtype == np.uint8, name
            values = got.values.astype(np.float32) / 255
            assert np.abs(values.reshape(want.shape) - want).max() <= tolerance / 255, name
    assert np.array_equal(read_image(tmp_path / "g4.tif")[0][..., 0], page.astype(np.float32))
    assert read_image(tmp_path / "g4.tif")[1].bit_depth == 8


def test_a_file_is_read_by_its_content_and_an_output_that_holds_fewer_bits_says_so(tmp_path):
    import shutil

    import tifffile

    from linr.images import ImageInfo, output_notes

    rng = np.random.default_rng(0)
    deep = (rng.random((6, 8, 3)) * 65535).astype(np.uint16)
    write_image(tmp_path / "deep.png", deep, bit_depth=16)
    shutil.copy(tmp_path / "deep.png", tmp_path / "named.tif")  # a PNG named as a TIFF
    image, info = read_image(tmp_path / "named.tif")
    assert info.bit_depth == 16 and np.array_equal(np.round(image * 65535).astype(np.uint16), deep)
    tifffile.imwrite(tmp_path / "tiff.png", deep, photometric="rgb")  # a TIFF named as a PNG
    image, info = read_image(tmp_path / "tiff.png")
    assert info.tiff is not None and np.array_equal(np.round(image * 65535).astype(np.uint16), deep)
    notes = output_notes(tmp_path / "o.jpg", ImageInfo("in.png", 16, 3))
    assert notes == ["o.jpg: JPEG holds 8 bits per channel; the 16-bit input is written with 8 "
                     "(write PNG or TIFF to keep them)"]
    assert output_notes(tmp_path / "o.png", ImageInfo("in.png", 16, 3)) == []
    assert output_notes(tmp_path / "o.png", ImageInfo("in.tif", 32, 3))[0].startswith("o.png: PNG holds 16 bits")


def test_an_apng_still_is_not_a_frame_and_an_ome_file_turned_keeps_its_pixel_sizes_right(tmp_path):
    import tifffile

    from linr.images import read_stored

    deep = [Image.fromarray((np.arange(48).reshape(6, 8) * 1000 + 3 + k * 257).astype(np.uint16)) for k in range(2)]
    deep[0].save(tmp_path / "deep.png", save_all=True, append_images=deep[1:])  # a 16-bit APNG: both frames, 16-bit
    frames = read_stored(tmp_path / "deep.png")
    assert [f.values.dtype for f in frames] == [np.uint16] * 2
    with Image.open(tmp_path / "deep.png") as shown:  # as Pillow shows each frame
        for index, frame in enumerate(frames):
            shown.seek(index)
            assert np.array_equal(frame.values[..., 0], np.asarray(shown))
    red, green, blue = (Image.new("RGB", (8, 6), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255)))
    red.save(tmp_path / "still.png", save_all=True, append_images=[green, blue], default_image=True)
    assert [s.values[0, 0].tolist() for s in read_stored(tmp_path / "still.png")] == [[0, 255, 0], [0, 0, 255]]
    data = (np.random.default_rng(0).random((6, 4)) * 255).astype(np.uint8)
    tifffile.imwrite(tmp_path / "turned.ome.tif", data, ome=True, metadata={"PhysicalSizeX": 1.0, "PhysicalSizeY": 2.0},
                     extratags=[(274, 3, 1, 6, True)])  # Orientation 6: shown turned a quarter
    image, info = read_image(tmp_path / "turned.ome.tif")
    assert image.shape == (4, 6, 1)
    assert info.tiff.metadata["PhysicalSizeX"] == 2.0 and info.tiff.metadata["PhysicalSizeY"] == 1.0


def test_quantising_in_pieces_gives_the_same_samples(monkeypatch):
    """The samples are converted a piece at a time (bounded memory): any piece gives the same."""
    from linr import images

    rng = np.random.default_rng(0)
    frames = (rng.random((2, 19, 23, 3)) * 1.4 - 0.2).astype(np.float32)  # beyond [0, 1] too
    units = images.ValueRange(0.0, 1000.0, "data")
    whole = {(bits, r is None): images._quantise(frames, bits, r) for bits in (8, 16, 32) for r in (None, units)}
    monkeypatch.setattr(images, "PIECE_VALUES", 7)
    for (bits, plain), expected in whole.items():
        got = images._quantise(frames, bits, None if plain else units)
        assert got.dtype == expected.dtype and np.array_equal(got, expected)


def test_writing_one_image_holds_no_copy_of_its_samples(tmp_path, monkeypatch):
    """One image is written without a stacked copy or a flag per sample (at 8192 x 8192 RGB those
    took about 1 GB beside the image): the traced peak stays well under the float image's size, and a
    non-finite sample in the last piece is still refused."""
    import tracemalloc

    from linr import images

    monkeypatch.setattr(images, "PIECE_VALUES", 1 << 14)
    image = np.random.default_rng(0).random((256, 256, 3), dtype=np.float32)
    write_image(tmp_path / "warm.png", image)  # first-use imports and caches
    tracemalloc.start()
    try:
        write_image(tmp_path / "out.png", image)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 0.75 * image.nbytes  # the 8-bit samples (a quarter) and the encoder's buffers
    assert np.array_equal(np.asarray(Image.open(tmp_path / "out.png")), images._quantise(image, 8))
    image[-1, -1, -1] = np.nan
    with pytest.raises(InputError, match="non-finite"):
        write_image(tmp_path / "nan.png", image)
    assert not (tmp_path / "nan.png").exists()


def test_stored_values_reach_the_fits_scale_in_pieces(monkeypatch):
    """Reading converts the stored samples a piece at a time (no float64 copy of a whole photo:
    1.6 GB at 8192 x 8192 RGB): the same values as the whole conversion, for every range rule."""
    import tracemalloc

    from linr import images

    rng = np.random.default_rng(1)
    stored = {"uint8": rng.integers(0, 256, (17, 13, 3)).astype(np.uint8),
              "uint16": rng.integers(0, 65536, (17, 13, 3)).astype(np.uint16),
              "float": (rng.random((17, 13, 3)) * 3000 - 500).astype(np.float32)}
    ranges = [images.ValueRange(0, 255, "dtype"), images.ValueRange(0, 65535, "dtype"),
              images.ValueRange(-500, 2500, "data"), images.ValueRange(100, 900, "given")]
    for values in stored.values():
        for r in ranges:
            whole = (values.astype(np.float64) - r.low) / (r.high - r.low)
            if r.rule == "given":
                whole = np.clip(whole, -images.GIVEN_RANGE_SLACK, 1 + images.GIVEN_RANGE_SLACK)
            monkeypatch.setattr(images, "PIECE_VALUES", 7)
            got = r.to_unit(values)
            assert got.dtype == np.float32 and got.shape == values.shape
            assert np.array_equal(got, whole.astype(np.float32))
    monkeypatch.setattr(images, "PIECE_VALUES", 1 << 12)
    big = rng.integers(0, 65536, (256, 256, 3)).astype(np.uint16)
    tracemalloc.start()
    try:
        images.ValueRange(0, 65535, "dtype").to_unit(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.25 * big.size * 4  # the float32 result and a piece (a float64 copy: 2x more)


def test_a_jpeg_is_written_with_its_colour_at_full_resolution(tmp_path, rng):
    from PIL import JpegImagePlugin

    img = rng.random((32, 32, 3)).astype(np.float32)  # colour that changes from pixel to pixel
    path = write_image(tmp_path / "a.jpg", img)
    with Image.open(path) as stored:
        assert JpegImagePlugin.get_sampling(stored) == 0  # 4:4:4, not Pillow's 4:2:0
    back = read_image(path)[0]
    halved = tmp_path / "halved.jpg"
    Image.fromarray((img * 255).round().astype(np.uint8)).save(halved, quality=95)
    assert np.abs(back - img).mean() < np.abs(read_image(halved)[0] - img).mean()


@pytest.mark.parametrize("name, bit_depth", [("a.png", 8), ("a.png", 16), ("a.tif", 16), ("a.bmp", 16), ("a.jpg", 8),
                                             ("a.tif", 32)])
def test_written_values_are_the_files_pixels_as_read_back(tmp_path, rng, name, bit_depth):
    from linr.images import written_values

    img = (rng.random((10, 13, 3)) * 1.2 - 0.1).astype(np.float32)  # beyond [0, 1] too: clipped as written
    path = write_image(tmp_path / name, img, bit_depth=bit_depth)
    values = written_values(path, img, bit_depth=bit_depth)
    if bit_depth == 32 and name.endswith(".tif"):
        assert values is None  # float32 holds the values as they are
        return
    np.testing.assert_array_equal(values, read_image(path)[0])
    assert np.abs(values - np.clip(img, 0, 1)).max() > 0  # rounded (and compressed), not the image's own


def test_written_values_in_the_inputs_units(tmp_path, rng):
    from linr.images import ValueRange, written_values

    units = ValueRange(0.0, 4095.0, "given")  # 12-bit data in 16-bit samples, written back in its units
    img = rng.random((6, 7, 1)).astype(np.float32)
    path = write_image(tmp_path / "a.tif", img, bit_depth=16, value_range=units)
    values = written_values(path, img, bit_depth=16, value_range=units)
    import tifffile

    np.testing.assert_allclose(values[..., 0], tifffile.imread(path) / 4095.0, atol=1e-7)
    assert np.abs(values - img).max() <= 0.5 / 4095 + 1e-6


def test_a_float_inputs_units_keep_values_above_its_range_and_a_note_says_so(tmp_path):
    """A deconvolution brightens what the blur spread: an output in the units of a float photo whose
    range was read from its data keeps values above that range (a new user's deblurred beads came
    back flat at the blurred photo's maximum); a given range, or an output of another scale, clips them."""
    from linr.images import ImageInfo, ValueRange, beyond_range_note

    restored = np.full((4, 5, 1), 0.5, np.float32)
    restored[1, 2] = 3.0  # a peak three times the photo's brightest value
    restored[2, 2] = -0.5
    data = ValueRange(0.0, 80.0, "data")
    path = write_image(tmp_path / "a.tif", restored, bit_depth=32, value_range=data)
    back = tifffile_read(path)
    assert back[1, 2] == pytest.approx(240.0) and back[2, 2] == 0.0 and back[0, 0] == pytest.approx(40.0)
    info = ImageInfo("in.tif", 32, 1, value_range=data)
    note = beyond_range_note(path, [restored], info)
    assert note == ("a.tif: 5.00% of the restored values lie above the input's range (up to 240 where it ends at 80): "
                    "kept, in the input's units")
    assert "clipped at the output's white" in beyond_range_note(tmp_path / "a.png", [restored], info)
    given = ValueRange(0.0, 4095.0, "given")
    path = write_image(tmp_path / "b.tif", restored, bit_depth=16, value_range=given)
    assert tifffile_read(path).max() == 4095  # --range: what lies past it the user leaves out
    assert "clipped at 4095, the end of --range" in beyond_range_note(path, [restored], ImageInfo("b", 16, 1,
                                                                                             value_range=given))
    photo = ImageInfo("c.png", 8, 1, value_range=ValueRange(0.0, 255.0, "dtype"))
    assert beyond_range_note(tmp_path / "c.png", [restored], photo) is None  # a photo's white is white
    assert beyond_range_note(path, [np.clip(restored, 0, 1)], info) is None


def tifffile_read(path):
    import tifffile

    return tifffile.imread(path)


def test_integer_outputs_clip_above_the_range_and_a_unit_photos_overshoot_says_nothing(tmp_path):
    from linr.images import ImageInfo, ValueRange, beyond_range_note, written_values

    restored = np.full((4, 5, 1), 0.5, np.float32)
    restored[1, 2] = 2.0
    auto = ValueRange(0.0, 100.0, "data")  # an 8-bit photo with --range auto: data up to 100
    path = write_image(tmp_path / "a.png", restored, bit_depth=8, value_range=auto)
    assert read_image(path)[0].max() == pytest.approx(100 / 255)  # integer samples clip at the range's end
    assert "clipped at 100, the range's end" in beyond_range_note(path, [restored], ImageInfo("a", 8, 1, value_range=auto))
    unit = ImageInfo("u.tif", 32, 1, value_range=ValueRange(0.0, 1.0, "unit"))
    assert beyond_range_note(tmp_path / "u.png", [restored], unit) is None  # a [0, 1] photo's white, as 8-bit's
    assert "kept, in the input's units" in beyond_range_note(tmp_path / "u.tif", [restored], unit)
    jpeg = write_image(tmp_path / "a.jpg", np.clip(restored, 0, 1), bit_depth=8, value_range=auto)
    values = written_values(jpeg, np.clip(restored, 0, 1), bit_depth=8, value_range=auto)
    assert np.abs(values - np.clip(restored, 0, 1)).mean() < 0.03  # read back through the range, not / 255


def test_separate_frames_say_each_ones_own_lines_where_they_differ(tmp_path, capsys):
    """``--frames separate`` of a 2-page stack, one page five times brighter: each frame's photon
    level on its own line (the first frame's alone was said for all)."""
    import tifffile

    from linr.cli import main

    rng = np.random.default_rng(0)
    ramp = np.linspace(0.2, 1, 48)[None, :] * np.ones((48, 1))
    tifffile.imwrite(tmp_path / "st.tif", np.stack([rng.poisson(ramp * 40) * 50,
                                                     rng.poisson(ramp * 8) * 250]).astype(np.uint16))
    assert main(["restore", "--noisy", str(tmp_path / "st.tif"), "--noise", "poisson", "--frames", "separate",
                 "-o", str(tmp_path / "o.tif"), "--width", "8", "--depth", "1", "--steps", "2", "--stop", "fixed",
                 "--device", "cpu"]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if "photon noise" in x]
    assert len(lines) == 2 and lines[0].startswith("frame 1 of 2: photon noise") and lines[1].startswith("frame 2 of 2: ")
    assert lines[0] != lines[1].replace("frame 2", "frame 1")


def test_frames_lines_say_a_line_once_where_every_frame_has_it():
    from linr.cli import _frames_lines

    assert _frames_lines(["a"]) == ["a"] and _frames_lines(["a", "a", "a"]) == ["a"] and _frames_lines([None, None]) == []
    assert _frames_lines(["a", "b", "a", None]) == ["frames 1, 3 of 4: a", "frame 2 of 4: b"]


def test_an_opaque_alpha_dropped_by_a_jpeg_is_not_said_to_lose_transparency(tmp_path):
    """A new user's RGBA photo with every pixel opaque, degraded to a JPEG, was told its
    transparency was not written: there was none; a photo with a transparent pixel still is. The
    JPEG, BMP and FITS outputs of an opaque RGBA photo are written (the review of the first fix
    found it wrote their alpha as a fourth channel: 'cannot write mode RGBA as JPEG')."""
    from linr.images import ImageInfo, output_notes, read_image, read_stored

    opaque = np.ones((4, 4), np.float32)
    assert output_notes(tmp_path / "x.jpg", ImageInfo("p.png", 8, 3, opaque)) == []
    half = opaque.copy()
    half[0, 0] = 0.4
    assert any("transparency is not written" in n for n in output_notes(tmp_path / "x.jpg", ImageInfo("p.png", 8, 3, half)))
    image = np.random.default_rng(0).random((4, 4, 3)).astype(np.float32)
    for name in ("o.jpg", "o.bmp", "o.fits", "o.png"):
        write_image(tmp_path / name, image, alpha=opaque)
        assert read_stored(tmp_path / name)[0].values.shape[2] == 3
    assert read_image(tmp_path / "o.png")[1].alpha is not None  # a PNG keeps it


def test_a_photos_exif_goes_into_jpeg_and_png_outputs_upright_at_the_outputs_size(tmp_path, capsys):
    """A new user's phone JPEG came back without its EXIF (camera, time, place). Now kept: the
    orientation upright as the pixels are, the pixel size the output's, the thumbnail not kept,
    linr named as the software; a TIFF output says it is not written; a corrupt EXIF is read
    without Pillow's warning."""
    from PIL import Image

    from linr.cli import main

    exif = Image.Exif()
    exif[0x0112], exif[0x010F], exif[0x0110] = 6, "PhoneCo", "P1"
    sub = exif.get_ifd(0x8769)
    sub[0x9003], sub[0xA002], sub[0xA003] = "2026:01:02 03:04:05", 24, 16
    exif.get_ifd(0x8825)[1] = "N"
    stored = (np.random.default_rng(0).random((16, 24, 3)) * 255).astype(np.uint8)
    Image.fromarray(stored).save(tmp_path / "phone.jpg", quality=95, exif=exif.tobytes())
    tiny = ["--width", "8", "--depth", "1", "--steps", "1", "--stop", "fixed", "--refine", "none", "--device", "cpu",
            "--quiet"]
    for name, kind in (("o.jpg", ["--noisy"]), ("o.png", ["--noisy"]), ("sr.jpg", ["--factor", "2", "--lowres"])):
        assert main(["restore", *kind, str(tmp_path / "phone.jpg"), "-o", str(tmp_path / name), *tiny]) == 0
        with Image.open(tmp_path / name) as out:
            kept = out.getexif()
            size = out.size
        assert size == ((16, 24) if name != "sr.jpg" else (32, 48))  # upright: 16 wide, 24 tall
        assert kept[0x0112] == 1 and kept[0x010F] == "PhoneCo" and kept[0x0110] == "P1"
        assert kept[0x0131].startswith("linr ")
        assert kept.get_ifd(0x8769)[0x9003] == "2026:01:02 03:04:05" and kept.get_ifd(0x8825)[1] == "N"
        assert (kept.get_ifd(0x8769)[0xA002], kept.get_ifd(0x8769)[0xA003]) == size
    assert main(["restore", "--noisy", str(tmp_path / "phone.jpg"), "-o", str(tmp_path / "o.tif"), *tiny]) == 0
    assert "the input's EXIF (camera, time, place) is not written into a TIFF output" in capsys.readouterr().err
    from linr.images import read_stored, write_image

    sixteen = write_image(tmp_path / "o16.png", stored / 255.0, bit_depth=16, exif=read_stored(tmp_path / "phone.jpg")[0].exif)
    with Image.open(sixteen) as out:
        assert out.getexif()[0x010F] == "PhoneCo"
    one = Image.Exif()
    one[0x0112] = 6
    Image.fromarray(stored).save(tmp_path / "bad.jpg", exif=one.tobytes())
    data = (tmp_path / "bad.jpg").read_bytes()
    at = data.index(b"Exif\x00\x00") + 6 + 8  # past the TIFF header: IFD0's entry count, 1 -> 5 (cut short)
    (tmp_path / "bad.jpg").write_bytes(data[:at] + b"\x00\x05" + data[at + 2:])
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with Image.open(tmp_path / "bad.jpg") as im:
            im.getexif()
        assert any("Corrupt EXIF" in str(w.message) for w in caught)  # Pillow warns on it
        caught.clear()
        assert read_stored(tmp_path / "bad.jpg")[0].values.shape == (24, 16, 3)  # turned, as tagged
        assert not any("Corrupt EXIF" in str(w.message) for w in caught)


def test_an_exif_longer_than_a_jpeg_holds_loses_its_maker_note_or_is_said_not_written(tmp_path):
    """The review: a PNG's 70 KB EXIF made a JPEG write fail after the fit ('EXIF data is too long')."""
    from PIL import Image

    from linr.errors import ExistingFileError
    from linr.images import ImageInfo, output_notes, read_stored, write_image

    pixels = (np.random.default_rng(0).random((8, 8, 3)) * 255).astype(np.uint8)
    for name, tag, ifd in (("maker.png", 0x927C, 0x8769), ("described.png", 0x010E, None)):
        exif = Image.Exif()
        exif[0x010F] = "PhoneCo"
        (exif.get_ifd(ifd) if ifd else exif)[tag] = "x" * 70000
        Image.fromarray(pixels).save(tmp_path / name, exif=exif.tobytes())
        kept = read_stored(tmp_path / name)[0].exif
        assert len(kept) > 70000
        out = write_image(tmp_path / f"{name}.jpg", pixels, exif=kept)  # no error
        with Image.open(out) as im:
            written = im.getexif()
        notes = output_notes(out, ImageInfo(name, 8, 3, exif=kept))
        if ifd:  # the maker note left out, the rest kept
            assert written[0x010F] == "PhoneCo" and 0x927C not in written.get_ifd(0x8769) and not notes
        else:
            assert not len(written) and any("longer than a JPEG holds" in n for n in notes)
    import pickle

    error = pickle.loads(pickle.dumps(ExistingFileError("o.png")))  # as a worker's error travels
    assert str(error) == "o.png: exists (force=True to overwrite)"


def test_a_files_text_goes_into_outputs_that_hold_it_and_a_note_names_what_another_drops(tmp_path, capsys):
    """A new user's archive files lost their text without a word (PNG Title and Copyright chunks,
    a JPEG's XMP, a TIFF's Artist, Copyright and DateTime tags): they travel now where the output
    holds them, and a note names what it cannot."""
    import tifffile
    from PIL import Image, PngImagePlugin

    from linr.cli import main

    rng = np.random.default_rng(3)
    pixels = (np.clip(0.5 + 0.1 * rng.normal(size=(24, 24, 3)), 0, 1) * 255).astype(np.uint8)
    chunks = PngImagePlugin.PngInfo()
    chunks.add_text("Title", "Harbour 1923")
    chunks.add_text("Copyright", "City Archive")
    chunks.add_itxt("Description", "Glasnegativ, ÄÖÜ", lang="de")
    chunks.add_text("Source", "plate 12, box 3", zip=True)  # zTXt
    chunks.add_itxt("Comment", "gescannt 2026, ß", zip=True)  # a compressed iTXt
    Image.fromarray(pixels).save(tmp_path / "text.png", pnginfo=chunks)
    xmp = '<x:xmpmeta xmlns:x="adobe:ns:meta/"><dc:rights>City Archive</dc:rights></x:xmpmeta>'
    Image.fromarray(pixels).save(tmp_path / "xmp.jpg", xmp=xmp.encode(), comment=b"scan 12", quality=95)
    tifffile.imwrite(tmp_path / "meta.tif", pixels, photometric="rgb", description="Harbour 1923",
                     extratags=[(315, "s", 0, "Jane Doe", True), (33432, "s", 0, "City Archive", True),
                                (306, "s", 0, "1923:05:01 10:00:00", True)])
    fit = ["--steps", "2", "--width", "16", "--depth", "2", "--device", "cpu", "--refine", "none"]
    for name, out in (("text.png", "o.png"), ("xmp.jpg", "o.jpg"), ("meta.tif", "o.tif"), ("text.png", "o16.tif")):
        assert main(["restore", "--noisy", str(tmp_path / name), "-o", str(tmp_path / out), *fit]) == 0
    said = capsys.readouterr()
    with Image.open(tmp_path / "o.png") as png:
        assert png.text == {"Title": "Harbour 1923", "Copyright": "City Archive", "Description": "Glasnegativ, ÄÖÜ",
                            "Source": "plate 12, box 3", "Comment": "gescannt 2026, ß"}
    with Image.open(tmp_path / "o.jpg") as jpeg:
        assert jpeg.info["xmp"].decode() == xmp and jpeg.info["comment"] == b"scan 12"
    with tifffile.TiffFile(tmp_path / "o.tif") as tif:
        tags = tif.pages.first.tags
        assert (tags[315].value, tags[33432].value, tags[306].value) == ("Jane Doe", "City Archive", "1923:05:01 10:00:00")
        assert tif.pages.first.description == "Harbour 1923"
    with tifffile.TiffFile(tmp_path / "o16.tif") as tif:  # a PNG's Copyright is a TIFF tag too
        assert tif.pages.first.tags[33432].value == "City Archive"
    assert "o16.tif: the input's text (Title, Description, Source, Comment) is not written into a TIFF output" \
        in said.err, said.err
    assert "o.png: the input's text" not in said.err and "o.jpg: the input's text" not in said.err


def test_written_text_is_brought_up_to_date_and_what_an_output_cannot_hold_is_left_out_said(tmp_path):
    """A review's findings: an XMP packet's orientation and pixel size were copied as the input had
    them (a PNG output then read back turned by its XMP), XMP went into a PNG as tEXt (which XMP
    readers do not take), and an XMP or a comment longer than a JPEG segment failed the write after
    the fit."""
    from PIL import Image

    from linr.images import XMP_KEY, dropped_text, write_image

    image = np.random.default_rng(1).random((30, 20, 3)).astype(np.float32)
    xmp = ('<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description tiff:Orientation="6" '
           'exif:PixelXDimension="5"><tiff:ImageLength>7</tiff:ImageLength></rdf:Description></x:xmpmeta>')
    text = {XMP_KEY: xmp, "Raw profile type exif": "exif 6", "Title": "t"}
    write_image(tmp_path / "o.png", image, text=text)
    with Image.open(tmp_path / "o.png") as png:
        assert png.size == (20, 30) and png.getexif().get(0x0112) in (None, 1)  # not turned by its XMP
        kept = png.info["xmp"] if "xmp" in png.info else png.info[XMP_KEY]
        assert 'tiff:Orientation="1"' in str(kept) and 'exif:PixelXDimension="20"' in str(kept) \
            and "<tiff:ImageLength>30</tiff:ImageLength>" in str(kept)
        assert "Raw profile type exif" not in png.text and png.text["Title"] == "t"
    chunks = open(tmp_path / "o.png", "rb").read()
    assert b"iTXtXML:com.adobe.xmp" in chunks and b"tEXtXML:com.adobe.xmp" not in chunks
    long_values = {"Notes": "a" * 20000, "Notiz": "ß" * 20000}  # deflated (zTXt, compressed iTXt), as read
    write_image(tmp_path / "long.png", image, text=long_values)
    with Image.open(tmp_path / "long.png") as png:
        assert png.text == long_values
    assert (tmp_path / "long.png").stat().st_size < 10000
    long = {XMP_KEY: "<x>" + "a" * 70000 + "</x>", "Comment": "c" * 70000}
    write_image(tmp_path / "o.jpg", image, text=long)  # written without them, not failed
    with Image.open(tmp_path / "o.jpg") as jpeg:
        assert "xmp" not in jpeg.info and "comment" not in jpeg.info
    assert dropped_text(tmp_path / "o.jpg", long) == ("o.jpg: the input's text (XMP, Comment) is not written into a "
                                                       "JPEG output (write PNG to keep it all)")
    assert dropped_text(tmp_path / "o.tif", text) == ("o.tif: the input's text (Title) is not written into a TIFF "
                                                       "output (write PNG to keep it all)")  # the raw copy: superseded


def test_an_integer_tiff_of_another_type_says_its_output_is_float32(tmp_path, capsys):
    """int16 and uint32 TIFFs are read as float32 and written back as float32: a note says so (the
    README said they were refused)."""
    import tifffile

    from linr.cli import main

    rng = np.random.default_rng(4)
    tifffile.imwrite(tmp_path / "i16.tif", (rng.normal(size=(24, 24)) * 800 - 2000).astype(np.int16))
    assert main(["restore", "--noisy", str(tmp_path / "i16.tif"), "-o", str(tmp_path / "o.tif"), "--steps", "2",
                 "--width", "16", "--depth", "2", "--device", "cpu", "--refine", "none"]) == 0
    assert "o.tif: the input's int16 samples are written as float32, in its units" in capsys.readouterr().err
    assert tifffile.imread(tmp_path / "o.tif").dtype == np.float32


def test_an_opaque_webp_animation_reads_rgb_and_a_jpeg_is_known_by_its_bytes(tmp_path):
    """An opaque animated WebP came back RGBA, and the JPEG note went by the name (a PNG named .jpg
    got it, a JPEG named .png did not)."""
    from PIL import Image

    from linr.images import is_jpeg, read_frames

    rng = np.random.default_rng(6)
    colour = Image.fromarray((rng.random((16, 20, 3)) * 255).astype(np.uint8))
    frames = [Image.fromarray((rng.random((16, 20, 3)) * 255).astype(np.uint8)) for _ in range(2)]
    frames[0].save(tmp_path / "anim.webp", save_all=True, append_images=frames[1:], lossless=True)
    stack = read_frames(tmp_path / "anim.webp")
    assert [pixels.shape for pixels, info in stack] == [(16, 20, 3)] * 2 and stack[0][1].alpha is None
    colour.save(tmp_path / "png_named.jpg", format="PNG")
    colour.save(tmp_path / "jpeg_named.png", format="JPEG")
    assert not is_jpeg(tmp_path / "png_named.jpg") and is_jpeg(tmp_path / "jpeg_named.png")
    assert not is_jpeg(tmp_path / "stack.tif[2]")


def test_a_cmyk_jpeg_says_how_its_colours_became_rgb(tmp_path, capsys):
    """A CMYK JPEG was turned into RGB by Pillow's plain formula without a word (its print profile
    dropped): it goes through its profile where Little CMS can use it, and a note says which way."""
    from PIL import Image, ImageCms

    from linr.cli import main
    from linr.images import read_stored

    rng = np.random.default_rng(7)
    cmyk = Image.fromarray((np.clip(0.5 + 0.1 * rng.normal(size=(24, 24, 3)), 0, 1) * 255).astype(np.uint8)).convert("CMYK")
    cmyk.save(tmp_path / "plain.jpg", quality=95)
    broken = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    broken[16:20] = b"CMYK"  # an RGB profile's tables under a CMYK header: Little CMS refuses it
    cmyk.save(tmp_path / "profiled.jpg", quality=95, icc_profile=bytes(broken))
    plain, profiled = read_stored(tmp_path / "plain.jpg")[0], read_stored(tmp_path / "profiled.jpg")[0]
    assert plain.values.shape == (24, 24, 3) and "(it has no colour profile" in plain.converted
    assert "(its colour profile could not be used" in profiled.converted
    assert main(["restore", "--noisy", str(tmp_path / "plain.jpg"), "-o", str(tmp_path / "o.png"), "--steps", "2",
                 "--width", "16", "--depth", "2", "--device", "cpu", "--refine", "none"]) == 0
    assert "plain.jpg: CMYK converted to RGB by the plain formula" in capsys.readouterr().err
    with Image.open(tmp_path / "o.png") as out:
        assert out.mode == "RGB" and "icc_profile" not in out.info


def test_an_image_above_pillows_pixel_limit_is_refused_with_its_size_and_the_way_to_read_it(tmp_path, monkeypatch):
    """A 192-megapixel scan failed as 'not a readable image (DecompressionBombError)'. The limit is
    lowered here so that a small file crosses it."""
    from PIL import Image

    from linr.errors import InputError
    from linr.images import MAX_PIXELS_VARIABLE, read_stored

    pillows = Image.MAX_IMAGE_PIXELS
    Image.new("L", (300, 200)).save(tmp_path / "scan.png")
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, "60001")  # an odd count: an image of 60000 pixels is read
    assert read_stored(tmp_path / "scan.png")[0].values.shape == (200, 300, 1)
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, "20000")
    with pytest.raises(InputError, match=r"scan.png: 0.06 megapixels is above the most read from this format, 0.02 "
                                         r"megapixels \(Pillow's guard .* LINR_MAX_PIXELS=N sets another"):
        read_stored(tmp_path / "scan.png")
    monkeypatch.setenv(MAX_PIXELS_VARIABLE, "0")
    assert read_stored(tmp_path / "scan.png")[0].values.shape == (200, 300, 1)
    for given in ("lots", "inf"):
        monkeypatch.setenv(MAX_PIXELS_VARIABLE, given)
        with pytest.raises(InputError, match=f"LINR_MAX_PIXELS='{given}' is not a pixel count"):
            read_stored(tmp_path / "scan.png")
    assert Image.MAX_IMAGE_PIXELS == pillows  # restored after each read, refused or not
    monkeypatch.delenv(MAX_PIXELS_VARIABLE)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # a program's own setting is left as it was
    read_stored(tmp_path / "scan.png")
    assert Image.MAX_IMAGE_PIXELS is None


def test_a_mask_drawn_on_a_turned_photos_stored_pixels_is_told_why_it_does_not_fit(tmp_path, capsys):
    """A new user's mask, drawn on a phone photo's stored pixels (EXIF orientation 6), was told
    'mask is 32x48 but the image is 48x32' with no word of the turn."""
    from PIL import Image

    from linr.cli import main

    rng = np.random.default_rng(8)
    photo = Image.fromarray((rng.random((48, 32, 3)) * 255).astype(np.uint8))  # stored 32 wide, 48 high
    exif = Image.Exif()
    exif[0x0112] = 6
    photo.save(tmp_path / "turned.jpg", exif=exif, quality=95)
    Image.fromarray(np.full((48, 32), 255, np.uint8)).save(tmp_path / "mask.png")
    assert main(["restore", "--masked", str(tmp_path / "turned.jpg"), "--mask", str(tmp_path / "mask.png"),
                 "-o", str(tmp_path / "o.png"), "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "mask is 32x48 but the image is 48x32 (width x height): the photo is read upright by its EXIF " \
           "orientation 6 (stored 32x48, as the mask is)" in err, err


def test_a_float_tiffs_nan_pixels_are_refused_with_the_ways_to_restore_them(tmp_path):
    """A FITS file's NaN pixels are taken as missing; a TIFF's were refused with 'fill them first'
    alone, though the same file as FITS restores: the refusal names the ways."""
    import tifffile

    from linr.errors import InputError
    from linr.images import read_stored

    values = np.random.default_rng(9).random((16, 20)).astype(np.float32)
    values[4:6, 4:6] = np.nan
    tifffile.imwrite(tmp_path / "holes.tif", values)
    with pytest.raises(InputError, match=r"4 of 320 samples are NaN or infinite: undefined pixels\); a FITS file's "
                                         r"NaN are taken as missing pixels, not this format's: save it as FITS"):
        read_stored(tmp_path / "holes.tif")
