"""What a new user does on day one with real files (issue: real-world inputs must never crash,
mislead or waste a long fit). Each test names the fault it guards against."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import linr
from linr.cli import main
from linr.errors import InputError
from linr.images import as_float_image, read_image, read_mask, write_image
from linr.operators import Downsample, LeftOut

from .conftest import crop, load, run_err


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return crop(load("set5/butterfly.png"), 30, top=100, left=100)


def run_ok(capsys, argv):
    code = main(argv)
    out = capsys.readouterr()
    assert code == 0, out.err
    return out


# --- 1. SR with any factor ---------------------------------------------------------------------


@pytest.mark.parametrize("factor", [3, 5])
@pytest.mark.parametrize("downsampler", ["lanczos2", "bicubic"])
def test_sr_with_odd_factors_restores_from_the_cli(tmp_path, capsys, clean, factor, downsampler):
    write_image(tmp_path / "clean.png", clean)
    run_ok(capsys, ["degrade", str(tmp_path / "clean.png"), "-o", str(tmp_path / "lr.png"),
                    "--downscale", str(factor)])
    run_ok(capsys, ["restore", "--lowres", str(tmp_path / "lr.png"), "--factor", str(factor),
                    "--downsampler", downsampler, "-o", str(tmp_path / "out.png"), "--steps", "2",
                    "--quiet", "--device", "cpu"])
    assert read_image(tmp_path / "out.png")[0].shape == (30, 30, 3)


# --- 2. RGBA holes -----------------------------------------------------------------------------


def test_rgba_holes_are_the_mask_and_the_output_is_opaque(tmp_path, capsys, clean):
    rng = np.random.default_rng(0)
    keep = rng.random(clean.shape[:2]) < 0.5
    rgba = np.concatenate([clean * keep[..., None], keep[..., None].astype(np.float32)], axis=2)
    Image.fromarray((rgba * 255).round().astype(np.uint8), "RGBA").save(tmp_path / "holes.png")
    out = run_ok(capsys, ["restore", "--masked", str(tmp_path / "holes.png"), "-o",
                          str(tmp_path / "out.png"), "--steps", "30", "--quiet", "--device", "cpu"])
    assert "transparent pixels" in out.err
    with Image.open(tmp_path / "out.png") as img:
        assert img.mode == "RGB"  # no alpha copied back: the holes are filled, not transparent
    restored = read_image(tmp_path / "out.png")[0]
    assert np.abs(restored - clean)[~keep].mean() < np.abs(clean)[~keep].mean()  # holes filled


def test_alpha_and_mask_together_and_a_mask_with_nothing_missing_are_said(tmp_path, capsys, clean):
    from linr.images import ImageInfo
    from linr.kinds import _build_masked

    alpha = np.ones(clean.shape[:2], np.float32)
    alpha[:, :10] = 0  # a third of the columns transparent
    half = np.ones(clean.shape[:2], bool)
    half[:15] = False  # the mask drops the top half
    Image.fromarray((half * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    notes: list[str] = []
    info = ImageInfo(path="holes.png", bit_depth=8, channels=3, alpha=alpha)
    obs, _ = _build_masked(clean, info, {"mask": str(tmp_path / "mask.png")}, notes)
    keep = obs.operator.mask.numpy()
    keep = keep if keep.ndim == 2 else keep.min(0)
    assert keep.mean() == pytest.approx((half & (alpha >= 0.5)).mean())
    assert any("and so are the mask's black pixels: 33.3% of the pixels observed" in n for n in notes), notes
    notes.clear()
    Image.fromarray(np.full(clean.shape[:2], 255, np.uint8)).save(tmp_path / "white.png")
    _build_masked(clean, ImageInfo(path="full.png", bit_depth=8, channels=3), {"mask": str(tmp_path / "white.png")},
                  notes)
    assert any("every pixel is observed" in n for n in notes), notes


def test_an_rgba_mask_file_is_read_from_its_alpha(tmp_path):
    keep = np.zeros((8, 8), bool)
    keep[2:6] = True
    # white everywhere, holes only in alpha: brightness would keep every pixel
    rgba = np.dstack([np.full((8, 8, 3), 255, np.uint8), (keep * 255).astype(np.uint8)])
    Image.fromarray(rgba, "RGBA").save(tmp_path / "mask.png")
    notes: list[str] = []
    assert np.array_equal(read_mask(tmp_path / "mask.png", notes=notes), keep)
    assert any("alpha" in n for n in notes)


def test_grey_mask_values_are_reported(tmp_path):
    values = np.tile(np.linspace(0, 1, 8, dtype=np.float32), (8, 1))
    write_image(tmp_path / "grey.png", values)
    notes: list[str] = []
    mask = read_mask(tmp_path / "grey.png", notes=notes)
    assert mask.sum() == 32 and any("thresholded at 50%" in n for n in notes)
    notes.clear()
    write_image(tmp_path / "bw.png", (values > 0.5).astype(np.float32))
    read_mask(tmp_path / "bw.png", notes=notes)
    assert notes == []


# --- 3. output problems are errors before the fit -----------------------------------------------


def _unwritable_folder(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        folder = tmp_path / "ro"
        folder.mkdir()
        folder.chmod(0o500)
        return folder
    for candidate in (Path("/sys"), Path("/proc/self")):
        try:
            with tempfile.TemporaryFile(dir=candidate):
                pass
        except OSError:
            return candidate
    pytest.skip("no folder here refuses a new file to root")


def test_output_location_errors_come_before_the_fit(tmp_path, capsys, clean):
    write_image(tmp_path / "noisy.png", clean)
    (tmp_path / "afile").write_text("x")
    base = ["restore", "--noisy", str(tmp_path / "noisy.png"), "--steps", "100000", "--quiet",
            "--device", "cpu"]
    cases = {
        "is a file, not a folder": ["-o", str(tmp_path / "afile" / "out.png")],
        "cannot write in": ["-o", str(_unwritable_folder(tmp_path) / "sub" / "out.png")],
        "report is JSON": ["-o", str(tmp_path / "o.png"), "--report", str(tmp_path / "r.txt")],
        "report": ["-o", str(tmp_path / "o2.png"), "--report", str(tmp_path / "afile" / "r.json")],
    }
    for expected, extra in cases.items():
        t0 = time.perf_counter()
        err = run_err(capsys, base + extra)
        assert expected in err and time.perf_counter() - t0 < 10, err  # 100000 steps never started
    err = run_err(capsys, ["demo", "-o", str(tmp_path / "afile"), "--steps", "100000"])
    assert "not a folder" in err


# --- 5. EXIF orientation -----------------------------------------------------------------------


def test_exif_orientation_is_applied(tmp_path, capsys, clean):
    stored = (clean[:, :20] * 255).round().astype(np.uint8)  # 30 rows, 20 columns as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to view": viewers show it 20 rows x 30 columns
    Image.fromarray(stored).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    pixels, _ = read_image(tmp_path / "phone.jpg")
    assert pixels.shape == (20, 30, 3)
    run_ok(capsys, ["restore", "--noisy", str(tmp_path / "phone.jpg"), "-o", str(tmp_path / "o.png"),
                    "--steps", "2", "--stop", "fixed", "--quiet", "--device", "cpu"])
    assert read_image(tmp_path / "o.png")[0].shape == (20, 30, 3)


# --- 6. --steps is a budget under automatic stopping --------------------------------------------


def test_steps_alone_keeps_automatic_stopping(tmp_path, capsys, clean):
    write_image(tmp_path / "noisy.png", clean)
    run_ok(capsys, ["restore", "--noisy", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "o.png"),
                    "--steps", "3", "--quiet", "--device", "cpu", "--report", str(tmp_path / "r.json")])
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["settings"]["stop"]["name"] != "fixed" and report["steps_run"] <= 3
    r = linr.restore([linr.noisy(clean)], steps=3, device="cpu", progress=False)
    assert r.settings["stop"]["name"] != "fixed"
    r = linr.restore([linr.noisy(clean)], steps=3, stop="fixed", device="cpu", progress=False)
    assert r.settings["stop"]["name"] == "fixed" and r.steps_run == 3


# --- 7. arrays the Python API cannot use -------------------------------------------------------


def test_integer_arrays_are_scaled_by_their_range(clean):
    as8 = (clean * 255).round().astype(np.uint8)
    as16 = (clean * 65535).round().astype(np.uint16)
    assert np.allclose(linr.noisy(as8).image, as8 / 255.0, atol=1e-7)
    assert np.allclose(linr.noisy(as16).image, as16 / 65535.0, atol=1e-7)
    assert linr.noisy(clean[..., 0] > 0.5).image.max() == 1.0
    a = linr.restore([linr.noisy(as8)], steps=2, stop="fixed", device="cpu", progress=False)
    b = linr.restore([linr.noisy(as8 / np.float32(255))], steps=2, stop="fixed", device="cpu",
                     progress=False)
    assert np.allclose(a.image, b.image, atol=1e-6)


@pytest.mark.parametrize("bad,message", [
    (np.zeros((3, 16, 16), np.float32), "channels-first"),
    (np.zeros((1, 3, 16, 16), np.float32), "batch"),
    (np.zeros((16, 16, 3), np.int32), "ambiguous"),
    (np.full((16, 16, 3), 200.0, np.float32), "divide by 255"),
    (np.full((16, 16), np.nan, np.float32), "non-finite"),
    (np.zeros((0, 16), np.float32), "non-empty"),
])
def test_unusable_arrays_are_refused_in_one_line(bad, message):
    with pytest.raises(InputError, match=message) as info:
        linr.noisy(bad)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match=message):
        as_float_image(bad)


def test_a_reference_array_is_converted_too(clean):
    as8 = (clean * 255).round().astype(np.uint8)
    r = linr.restore([linr.noisy(clean)], steps=2, stop="fixed", reference=as8, device="cpu",
                     progress=False)
    assert r.history["psnr"][0] > 5  # measured against clean / 255, not 0-255 values


# --- 8. a repeated option of an observation kind (a repeated observation flag is a burst:
# tests/test_bursts.py) -------------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["--mask", "--factor", "--peak"])
def test_repeated_kind_options_are_refused(tmp_path, capsys, clean, flag):
    write_image(tmp_path / "a.png", clean)
    value = "4" if flag in ("--factor", "--peak") else str(tmp_path / "a.png")
    err = run_err(capsys, ["restore", "--lowres", str(tmp_path / "a.png"), flag, value, flag, value,
                           "-o", str(tmp_path / "o.png")])
    assert f"{flag} given twice" in err


def test_a_weight_given_twice_for_one_kind_is_refused_and_for_two_kinds_is_kept(tmp_path, capsys, clean):
    from linr.cli import build_parser

    write_image(tmp_path / "a.png", clean)
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "a.png"), "--weight", "noisy=1", "--weight",
                           "noisy=2", "-o", str(tmp_path / "o.png")])
    assert "--weight noisy= given twice (1 and 2)" in err
    args = build_parser().parse_args(["restore", "--noisy", "n.png", "--lowres", "l.png", "--weight", "noisy=1",
                                      "--weight", "lowres=0.5", "-o", "o.png"])
    assert args.weight == [("noisy", 1.0), ("lowres", 0.5)]


# --- 9. blur boundary --------------------------------------------------------------------------


def test_blur_boundary_is_free_by_default_and_circular_for_the_paper(clean):
    from linr.operators import gaussian_kernel

    k = gaussian_kernel(5, 1.0)
    kw = dict(steps=1, device="cpu", progress=False)
    boundary = lambda r: r.settings["observations"][0]["operator"]["boundary"]  # noqa: E731
    assert boundary(linr.restore([linr.blurred(clean, k)], **kw)) == "free"
    assert boundary(linr.restore([linr.blurred(clean, k)], preset="paper", **kw)) == "circular"
    assert boundary(linr.restore([linr.blurred(clean, k)], preset="fast", **kw)) == "reflect"
    chosen = linr.blurred(clean, k, boundary="circular")
    assert boundary(linr.restore([chosen], **kw)) == "circular"  # a choice is kept


# --- 10. the smaller ones ----------------------------------------------------------------------


def test_identical_images_give_valid_json(tmp_path, capsys, clean):
    write_image(tmp_path / "a.png", clean)
    out = run_ok(capsys, ["metrics", str(tmp_path / "a.png"), str(tmp_path / "a.png")])
    data = json.loads(out.out, parse_constant=lambda c: pytest.fail(f"invalid JSON constant {c}"))
    assert data["psnr"] is None and data["ssim"] == pytest.approx(1.0)


def test_report_mode_bit_depth_and_float_tiff(tmp_path, capsys, clean):
    write_image(tmp_path / "n16.png", clean, bit_depth=16)
    old = os.umask(0o022)
    try:
        out = run_ok(capsys, ["restore", "--noisy", str(tmp_path / "n16.png"), "-o",
                              str(tmp_path / "o.jpg"), "--steps", "1", "--quiet", "--device", "cpu",
                              "--report", str(tmp_path / "r.json")])
    finally:
        os.umask(old)
    assert "8-bit" in out.out and "16-bit" not in out.out
    assert (tmp_path / "r.json").stat().st_mode & 0o777 == 0o644
    import tifffile

    tifffile.imwrite(tmp_path / "f.tif", clean.astype(np.float32))
    out = run_ok(capsys, ["restore", "--noisy", str(tmp_path / "f.tif"), "-o", str(tmp_path / "o.tif"),
                          "--steps", "1", "--quiet", "--device", "cpu"])
    assert tifffile.imread(tmp_path / "o.tif").dtype == np.float32 and "float32" in out.out


def test_options_without_their_target_are_errors(tmp_path, capsys, clean):
    write_image(tmp_path / "a.png", clean)
    base = ["restore", "--noisy", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png")]
    assert "--boundary needs --blurred" in run_err(capsys, base + ["--boundary", "reflect"])
    assert "--downsampler needs --lowres" in run_err(capsys, base + ["--downsampler", "box"])
    assert "--omega0 applies to the siren" in run_err(capsys, base + ["--model", "relu", "--omega0", "20"])
    err = run_err(capsys, base + ["--steps", "1000000000000"])
    assert "at most" in err


def test_degrade_refuses_a_mask_that_keeps_nothing(tmp_path, capsys, clean):
    write_image(tmp_path / "a.png", clean)
    err = run_err(capsys, ["degrade", str(tmp_path / "a.png"), "-o", str(tmp_path / "h.png"),
                           "--keep", "0.0001"])
    assert "keeps no pixel" in err
    assert not (tmp_path / "h.png").exists() and not (tmp_path / "h_mask.png").exists()


def test_degrade_keep_of_a_transparent_image_makes_its_holes_transparent(tmp_path, capsys, clean):
    """An RGBA image degraded with --keep: the holes are transparent in the output's alpha (its
    own transparent pixels stay so), so that ``restore --masked`` finds every hole."""
    from linr.images import read_mask

    alpha = np.ones(clean.shape[:2], np.float32)
    alpha[:4, :4] = 0.0
    rgba = (np.concatenate([clean, alpha[..., None]], axis=2) * 255).round().astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = run_ok(capsys, ["degrade", str(tmp_path / "a.png"), "-o", str(tmp_path / "d.png"), "--keep", "0.5"])
    assert "holes are transparent" in out.out
    kept = read_mask(tmp_path / "d_mask.png")
    written = np.asarray(Image.open(tmp_path / "d.png"))[..., 3]
    assert np.array_equal(written > 0, kept & (alpha > 0))
    assert np.array_equal(read_mask(tmp_path / "d.png"), kept & (alpha > 0))  # what --masked reads
    out = run_ok(capsys, ["degrade", str(tmp_path / "a.png"), "-o", str(tmp_path / "d.jpg"), "--keep", "0.5",
                          "--mask-output", str(tmp_path / "j_mask.png")])
    assert "transparent" not in out.out  # a JPEG holds no alpha: not claimed


def test_options_that_contradict_each_other_are_said(tmp_path, capsys, clean):
    """--stop fixed:N beside another --steps is a note saying which ends the fit; an uncertainty
    map as JPEG, and metrics --task without the paper's convention, are one-line errors."""
    write_image(tmp_path / "a.png", clean)
    base = ["restore", "--noisy", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png"), "--width", "8",
            "--depth", "1", "--device", "cpu", "--force"]
    assert "--stop fixed:3 ends the fit before --steps 6 would: 3 steps" in run_ok(capsys, base + ["--stop", "fixed:3", "--steps", "6"]).err
    assert "--steps 2 ends the fit before --stop fixed:5 would" in run_ok(capsys, base + ["--steps", "2", "--stop", "fixed:5"]).err
    err = run_err(capsys, base + ["--steps", "2", "--ensemble", "2", "--uncertainty", str(tmp_path / "u.jpg")])
    assert "write it as .tif or .fits (float32) or .png (16-bit)" in err and not (tmp_path / "u.jpg").exists()
    err = run_err(capsys, ["metrics", str(tmp_path / "a.png"), str(tmp_path / "o.png"), "--task", "deblur"])
    assert "--task deblur applies to --convention paper only" in err
    assert "give at least one of --noisy" in run_err(capsys, ["restore"])  # what it needs first
    assert "give -o/--output FILE" in run_err(capsys, ["restore", "--noisy", str(tmp_path / "a.png")])


def test_size_messages_are_width_by_height(clean):
    with pytest.raises(InputError, match=r"noisy -> 30x20, noisy -> 30x30; width x height"):
        linr.restore([linr.noisy(clean[:20]), linr.noisy(clean)], steps=1)


def test_psnr_line_names_grey(tmp_path, capsys, clean):
    grey = clean.mean(axis=2)
    write_image(tmp_path / "g.png", grey)
    out = run_ok(capsys, ["restore", "--noisy", str(tmp_path / "g.png"), "-o", str(tmp_path / "o.png"),
                          "--steps", "1", "--quiet", "--device", "cpu", "--reference",
                          str(tmp_path / "g.png")])
    assert "grey" in out.out and "RGB" not in out.out


def test_preset_help_lists_the_presets():
    from linr.cli_common import PRESET_NAMES
    from linr.tasks import PRESETS

    assert tuple(PRESETS) == PRESET_NAMES


def test_a_closed_pipe_is_not_a_traceback(tmp_path, clean):
    write_image(tmp_path / "a.png", clean)
    write_image(tmp_path / "b.png", clean * 0.9)
    script = "import sys; from linr.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen([sys.executable, "-c", script, "metrics", str(tmp_path / "a.png"),
                             str(tmp_path / "b.png")], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the command writes (| head -c 0)
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# --- from the new-user review after the fixes --------------------------------------------------


def test_demo_does_not_overwrite_without_force(tmp_path, capsys):
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "restored.png").write_bytes(b"mine")
    err = run_err(capsys, ["demo", "-o", str(tmp_path / "demo"), "--steps", "1"])
    assert "restored.png" in err and "--force" in err
    assert (tmp_path / "demo" / "restored.png").read_bytes() == b"mine"


def test_demo_writes_and_scores_the_refined_image(tmp_path, capsys):
    from linr.cli import main

    assert main(["demo", "-o", str(tmp_path / "demo"), "--steps", "2", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "refined (grouped-project)" in out and (tmp_path / "demo" / "refined.png").exists()


def test_saving_a_joint_fits_model_says_what_the_default_would_have_done(tmp_path, capsys, clean):
    from linr.cli import main
    from linr.simulate import lanczos_downscale

    write_image(tmp_path / "n.png", clean)
    write_image(tmp_path / "lr.png", lanczos_downscale(clean, 2))
    assert main(["restore", "--noisy", str(tmp_path / "n.png"), "--lowres", str(tmp_path / "lr.png"), "--factor",
                 "2", "-o", str(tmp_path / "o.png"), "--steps", "2", "--device", "cpu", "--save-model",
                 str(tmp_path / "m.pt")]) == 0
    said = " ".join(capsys.readouterr().err.split())
    assert "--save-model / --render-*: the image is not refined after the fit" in said
    assert "made to reproduce the low-res view exactly, and the fit's image, the filtered one and the projected one blended" in said
    assert (tmp_path / "m.pt").exists()


def test_budget_reached_under_a_rule_is_not_called_fixed(clean):
    r = linr.restore([linr.noisy(clean)], steps=2, device="cpu", progress=False)
    # a clean photo called noisy: below the SURE pick's noise floor (linr.sure.MIN_SIGMA), the hold-out rule
    assert r.settings["stop"]["name"] == "holdout"
    assert r.stop_reason == "step budget (2) reached before the holdout rule fired"
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1).astype(np.float32)
    r = linr.restore([linr.noisy(noisy)], steps=2, device="cpu", progress=False)
    assert r.settings["stop"]["name"] == "sure"  # a small noisy photo (linr.sure)
    skipped = r.settings["stop"]["sure"]["skipped"]  # 2 steps: no average to choose among
    assert r.stop_reason == f"step budget (2) reached before the sure rule fired; no SURE pick: {skipped}"


def test_messages_name_the_right_thing(tmp_path, capsys, clean):
    write_image(tmp_path / "a.png", clean)
    write_image(tmp_path / "g.png", clean.mean(axis=2))
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "a.png"), "-o", str(tmp_path / "x.png"),
                           "--report", str(tmp_path / "x.png")])
    assert "--report and --output name the same file" in err
    err = run_err(capsys, ["degrade", str(tmp_path / "a.png"), "-o", str(tmp_path / "k.png"), "--keep",
                           "0.5", "--mask-output", str(tmp_path / "k.png")])
    assert "--mask-output and -o name the same file" in err
    err = run_err(capsys, ["metrics", str(tmp_path / "a.png"), str(tmp_path / "g.png")])
    assert err.startswith("linr: error: channel counts differ")
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "a.png"), "-o", str(tmp_path / "y.png"),
                           "--steps", "0"])
    assert err.startswith("linr: error: restore: argument --steps") and "linr restore" not in err
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "a.png"), "-o", str(tmp_path / "y.png"),
                           "--stop", "bogus"])
    assert "choose from auto, " in err
    write_image(tmp_path / "small.png", clean[:3, :2])
    err = run_err(capsys, ["restore", "--lowres", str(tmp_path / "small.png"), "--factor", "2000",
                           "-o", str(tmp_path / "z.png")])
    assert "at most 64" in err


def test_even_and_colour_kernels_are_noted(tmp_path, capsys, clean):
    write_image(tmp_path / "b.png", clean)
    write_image(tmp_path / "k.png", np.ones((4, 4, 3), np.float32) * 0.5)
    out = run_ok(capsys, ["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", str(tmp_path / "k.png"),
                          "-o", str(tmp_path / "o.png"), "--steps", "1", "--quiet", "--device", "cpu"])
    assert "even side" in out.err and "channels are averaged" in out.err


def test_python_api_mistakes_are_one_line_errors_before_any_fit():
    from linr.errors import InputError

    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    mistakes = {
        "observation 0 is ndarray, not an observation \\(wrap the image": lambda: linr.restore([image], steps=2),
        "restore takes a list of observations such as \\[linr.noisy\\(image\\)\\], got an array":
            lambda: linr.restore(image, steps=2),
        "got NoneType": lambda: linr.restore(None, steps=2),
        "every observation has weight 0": lambda: linr.restore([linr.noisy(image, weight=0)], steps=2),
        "mask keeps no pixels \\(values above 0.5": lambda: linr.masked(image, np.full((16, 16), 0.4)),
        "mask contains non-finite values": lambda: linr.masked(image, np.full((16, 16), np.nan)),
        "mask must hold numbers": lambda: linr.masked(image, np.full((16, 16), "a")),
        "cannot write pixels of type int32": lambda: linr.write_image("/nonexistent/x.png", np.zeros((4, 4), np.int32)),
        "reference: pixel type int64": lambda: linr.psnr(np.zeros((4, 4), np.int64), image[:4, :4, 0]),
        "image: contains non-finite values": lambda: linr.psnr(image, np.full_like(image, np.nan)),
    }
    for says, call in mistakes.items():
        with pytest.raises(InputError, match=says):
            call()
    soft = np.where(np.arange(16)[:, None] < 8, 0.9, 0.1) * np.ones((1, 16))
    assert linr.masked(image, soft).operator.mask.sum() == 8 * 16  # above 0.5 observed, as the operator reads it
    assert linr.masked(image, (soft > 0.5)[..., None]).operator.mask.sum() == 8 * 16  # (H, W, 1) taken as (H, W)
    scenes = linr.restore_many([linr.noisy(image), linr.noisy(image)], steps=2, progress=False)
    assert len(scenes) == 2  # one bare observation per scene


def test_integer_arrays_mean_the_same_to_the_metrics_and_the_writer_as_to_restore(tmp_path):
    rng = np.random.default_rng(1)
    clean = rng.random((16, 16, 3)).astype(np.float32)
    noisy = np.clip(clean + rng.normal(0, 0.05, clean.shape), 0, 1).astype(np.float32)
    as8 = np.round(clean * 255).astype(np.uint8)
    assert linr.psnr(as8, noisy) == pytest.approx(linr.psnr(as8 / 255.0, noisy))  # was -41 dB: 0-255 against 0-1
    assert linr.evaluate(as8, noisy)["psnr"] == pytest.approx(linr.evaluate(as8 / 255.0, noisy)["psnr"])
    assert linr.psnr(clean[..., :1][..., 0], clean[..., :1]) == float("inf")  # (H, W) against (H, W, 1)
    linr.write_image(tmp_path / "eight.png", as8)  # was solid white: uint8 read as floats and clipped
    assert np.array_equal(np.round(linr.read_image(tmp_path / "eight.png")[0] * 255).astype(np.uint8), as8)
    as16 = np.round(clean * 65535).astype(np.uint16)
    linr.write_image(tmp_path / "sixteen.png", as16, bit_depth=16)
    assert np.array_equal(np.round(linr.read_image(tmp_path / "sixteen.png")[0] * 65535).astype(np.uint16), as16)


def test_python_api_options_of_the_wrong_type_are_one_line_errors():
    from linr.errors import InputError

    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    for steps in (True, "5", 2.5):
        with pytest.raises(InputError, match="steps must be a positive integer"):
            linr.restore([linr.noisy(image)], steps=steps)
    with pytest.raises(InputError, match="a stop rule is a spec such as 'auto'"):
        linr.restore([linr.noisy(image)], steps=2, stop=5)
    result = linr.restore([linr.noisy(image)], steps=3, stop="fixed", refine="none", keep_model=True, progress=False)
    for size in (5, (3, 3, 3), (2.7, 3.2), ("4", "4")):
        with pytest.raises(InputError, match="render size must be \\(height, width\\) in whole pixels"):
            result.render(size=size)
    for scale in ("2", True):
        with pytest.raises(InputError, match="render scale must be a positive number"):
            result.render(scale=scale)
    assert result.render(size=(np.int64(5), 6)).shape == (5, 6, 3)


def test_python_api_values_a_new_user_got_wrong_are_one_line_errors():
    from linr.errors import InputError
    from linr.kinds import KINDS

    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    for weight in ("1", True, [1.0]):
        with pytest.raises(InputError, match="noisy weight must be a finite number >= 0"):
            linr.noisy(image, weight=weight)
    for seed in ("a", 1.5, True):
        with pytest.raises(InputError, match="seed must be a whole number"):
            linr.restore([linr.noisy(image)], steps=2, seed=seed, refine="none")
    with pytest.raises(InputError, match="ensemble must be a whole number of members"):
        linr.restore([linr.noisy(image)], steps=2, ensemble=True)
    for peak in ("10", True, -1.0):  # the same raw TypeError for a photon level given as a string
        with pytest.raises(InputError, match="peak must be a finite number of photons > 0"):
            linr.noisy(image, noise="poisson", peak=peak)
    with pytest.raises(InputError, match="read noise must be a finite number >= 0"):
        linr.noisy(image, noise="poisson-gaussian", peak=10.0, read_noise="2")
    for lr in ("1e-3", True, float("nan")):  # a string raised a raw TypeError (a researcher's trial)
        with pytest.raises(InputError, match="learning rate must be a positive number"):
            linr.restore([linr.noisy(image)], steps=2, lr=lr, refine="none")
    with pytest.raises(InputError, match="tile_stack must be a whole number of tiles"):
        linr.restore([linr.noisy(np.tile(image, (3, 3, 1)))], steps=2, tile="16:4", tile_stack="2", refine="none")
    for model in ("siren", {"width": 32}):
        with pytest.raises(InputError, match="model must be a linr.ModelConfig"):
            linr.restore([linr.noisy(image)], steps=2, model=model)
    for fields, message in (({"name": "sirne"}, "unknown model 'sirne'"), ({"width": 0}, "model width must be"),
                            ({"depth": 2.5}, "model depth must be"), ({"omega_0": -1.0}, "model omega_0 must be")):
        with pytest.raises(InputError, match=message):
            linr.ModelConfig(**fields)
    numpy = linr.ModelConfig(width=np.int64(16), depth=np.int32(2), omega_0=np.float32(30))  # as plain numbers
    assert (numpy.width, numpy.depth, numpy.omega_0) == (16, 2, 30.0) and type(numpy.width) is int
    for factor in (True, "4", 2.5):
        with pytest.raises(InputError, match="downsampling factor must be a positive integer"):
            linr.lowres(image, factor)
    assert linr.lowres(image, np.int64(2)).operator.factor == 2
    with pytest.raises(InputError, match="unknown task 'deblurr'"):
        linr.evaluate(image, image, convention="paper", task="deblurr")
    assert set(linr.metrics.TASKS) == {kind.task for kind in KINDS.values()} | {"joint", "real"}
    for flipped in (-image, image * 0.6 * 2 - 1):  # negated, or a darkish photo on [-1, 1]
        with pytest.raises(InputError, match="below black; floats are read on \\[0, 1\\]"):
            linr.noisy(flipped)
    dark = np.random.default_rng(1).normal(0.0, 0.2, (16, 16, 3)).astype(np.float32)
    assert linr.noisy(dark).image.mean() == pytest.approx(dark.mean())  # black with noise: read as it is
    # a bright photo on [-1, 1] averages above the limit, but too much of it lies below black for its
    # noise (a new user's trial: restored without a word); a sigma-50 black one stays accepted
    bright = np.clip(np.linspace(0.05, 1.0, 64)[None, :, None] + np.zeros((64, 64, 3)), 0, 1) * 2 - 1
    assert bright.mean() > -0.1
    with pytest.raises(InputError, match=r"\d+% of its float values lie below -0\.5, far below black; floats"):
        linr.noisy(bright.astype(np.float32))
    black50 = np.random.default_rng(3).normal(0.0, 50 / 255, (64, 64, 3)).astype(np.float32)
    assert linr.noisy(black50).kind == "noisy" and linr.masked(black50, np.ones((64, 64), bool)).kind == "masked"
    # what a measured noise level would have misread: smoothed (correlated) noise of a
    # background-subtracted frame, most of the photo constant, masked holes set to -1
    smooth = np.random.default_rng(4).normal(0.0, 0.15, (256, 256))
    smooth = (smooth + np.roll(smooth, 1, 0) + np.roll(smooth, 1, 1) + np.roll(smooth, 1, (0, 1))) / 4
    letterboxed = np.zeros((256, 256, 1), np.float32)
    letterboxed[100:150] = np.random.default_rng(5).normal(0.05, 0.1, (50, 256, 1))
    holes = np.random.default_rng(6).random((64, 64)) > 0.1
    for fine in (linr.noisy(smooth.astype(np.float32)), linr.noisy(letterboxed),
                 linr.masked(np.where(holes[..., None], -1.0, black50), ~holes)):
        assert fine.image.shape[0] > 0
    with pytest.raises(InputError, match="peak \\(--peak\\) needs noise 'poisson'"):
        linr.noisy(image, peak=10)
    big = np.random.default_rng(2).random((96, 96, 3)).astype(np.float32)
    with pytest.raises(InputError, match="keep_model needs one network of the whole image.*tile='off'"):
        linr.restore([linr.noisy(big)], steps=2, tile="64", keep_model=True)


def test_a_wrong_sized_reference_and_an_indivisible_downscale_name_the_file_and_the_side(tmp_path, capsys):
    from linr.images import write_image
    from tests.conftest import run_err

    rng = np.random.default_rng(0)
    write_image(tmp_path / "in.png", rng.random((32, 48, 3)).astype(np.float32))
    write_image(tmp_path / "ref.png", rng.random((8, 48, 3)).astype(np.float32))
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "in.png"), "-o", str(tmp_path / "o.png"),
                           "--reference", str(tmp_path / "ref.png"), "--steps", "2"])
    assert err.endswith("ref.png: the reference is 48x8 with 3 channel(s); the restored image will be 48x32 with 3 channel(s)")
    err = run_err(capsys, ["degrade", str(tmp_path / "in.png"), "-o", str(tmp_path / "d.png"), "--downscale", "3"])
    assert err.endswith("in.png: size 48x32: its height 32 is not divisible by 3; crop it first")
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "d.png").exists()
    with pytest.raises(linr.InputError, match="the reference is 48x8 with 3 channel\\(s\\); the restored image is 48x32"):
        linr.fit([linr.noisy(rng.random((32, 48, 3)).astype(np.float32))], linr.FitConfig(steps=1),
                 reference=rng.random((8, 48, 3)))


def test_linr_fit_stays_the_function_after_its_submodule_is_imported():
    import importlib
    import subprocess
    import sys

    code = ("import linr; linr.noisy; import linr.fit; from linr.fit import FitResult; "
            "assert callable(linr.fit) and linr.fit.__name__ == 'fit', linr.fit; "
            "import sys; assert sys.modules['linr.fit'].FitResult is FitResult")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)  # a fresh import
    assert done.returncode == 0, done.stderr
    assert linr.fit is importlib.import_module("linr.fit").fit


def test_linr_fit_can_be_patched(monkeypatch):
    from unittest import mock

    fake = object()
    with mock.patch.object(linr, "fit", fake):
        assert linr.fit is fake
    assert callable(linr.fit)
    monkeypatch.setattr(linr, "fit", fake)
    assert linr.fit is fake
    monkeypatch.undo()
    assert callable(linr.fit)


def test_a_photo_averaging_below_black_is_refused_once_not_per_tile():
    image = np.full((64, 64, 3), 0.8, np.float32)
    image[:, :32] = -0.3  # averages 0.25: accepted, though its left tiles average below black
    result = linr.restore([linr.noisy(image)], steps=2, stop="fixed", tile="36:8", refine="none", progress=False,
                          model=linr.ModelConfig(width=8, depth=1))
    assert result.image.shape == (64, 64, 3)
    holes = np.zeros((16, 16), bool)
    holes[:4] = True
    photo = np.where(holes[..., None], -1.0, 0.5).astype(np.float32)  # holes filled with -1: not counted
    assert linr.masked(photo, ~holes).kind == "masked"


def test_one_pixel_refused_and_a_constant_photo_and_a_missing_factor_said(tmp_path):
    from linr.errors import InputError
    from linr.images import write_image
    from linr.scene import load_scene

    write_image(tmp_path / "one.png", np.zeros((1, 1, 3), np.float32))
    with pytest.raises(InputError, match="one pixel"):
        load_scene({"noisy": str(tmp_path / "one.png")}, {})
    write_image(tmp_path / "flat.png", np.full((12, 12), 0.5, np.float32))
    notes: list[str] = []
    load_scene({"noisy": str(tmp_path / "flat.png")}, {}, notes=notes)
    assert any("is constant" in n for n in notes)
    notes = []
    observations, _, _ = load_scene({"lowres": str(tmp_path / "flat.png")}, {}, notes=notes)
    assert observations[0].operator.factor == 4 and sum("--factor not given" in n and "48x48" in n for n in notes) == 1
    notes = []  # a burst: one note each, not one per frame
    write_image(tmp_path / "flat2.png", np.full((12, 12), 0.5, np.float32))
    burst = [str(tmp_path / "flat.png"), str(tmp_path / "flat2.png")]
    load_scene({"lowres": burst}, {}, notes=notes)
    assert sum("--factor not given" in n for n in notes) == 1 and sum("is constant" in n for n in notes) == 1
    notes = []
    observations, _, _ = load_scene({"lowres": str(tmp_path / "flat.png")}, {"factor": 3}, notes=notes)
    assert observations[0].operator.factor == 3 and not any("--factor" in n for n in notes)


# --- a new user's trial (fifty-second session): file names, formats, transparency ---------------


def test_a_name_the_file_system_can_hold_is_written_and_a_longer_one_refused_before_the_fit(tmp_path, capsys):
    """A 255-byte output name was accepted and then failed after the fit (its temporary file's
    name was 14 bytes longer): the temporary name is cut now, and a name over the limit refused
    at once, as are an over-long input, report and tile store name."""
    from linr.images import stale_temporaries

    from linr.images import name_limit

    if name_limit(tmp_path) != 255:
        pytest.skip("a file system whose names are not up to 255 bytes")
    image = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32)
    longest = tmp_path / ("w" * 251 + ".png")  # 255 bytes
    write_image(longest, image)
    assert read_image(longest)[0].shape == (10, 12, 3) and os.listdir(tmp_path) == [longest.name]
    assert stale_temporaries(longest) == []
    wide = tmp_path / ("日" * 80 + ".png")  # 244 bytes in UTF-8
    write_image(wide, image)
    with pytest.raises(InputError, match="is 256 bytes long; this file system allows 255"):
        write_image(tmp_path / ("w" * 252 + ".png"), image)
    src = str(longest)
    over = str(tmp_path / ("x" * 300 + ".png"))
    assert "is 304 bytes long" in run_err(capsys, ["restore", "--noisy", src, "-o", over, "--steps", "2"])
    assert "is 304 bytes long" in run_err(capsys, ["restore", "--noisy", over, "-o", str(tmp_path / "o.png")])
    err = run_err(capsys, ["restore", "--noisy", src, "-o", str(tmp_path / "o.png"), "--report",
                           str(tmp_path / ("r" * 300 + ".json"))])
    assert err.startswith("linr: error: --report ") and "is 305 bytes long" in err
    assert sorted(os.listdir(tmp_path)) == sorted([longest.name, wide.name])  # nothing fitted or written
    # the temporary file of a 255-byte name: cut to fit, and still found as the name's own
    from linr.images import _temp_prefix

    assert len(os.fsencode(_temp_prefix(longest) + "abcdefgh.png")) <= 255
    (tmp_path / (_temp_prefix(longest) + "abcdefgh.png")).write_bytes(b"")
    assert [p.name for p in stale_temporaries(longest)] == [_temp_prefix(longest) + "abcdefgh.png"]
    twin = tmp_path / ("w" * 250 + "v.png")  # its start the same: its temporaries are not the other's
    assert _temp_prefix(twin) != _temp_prefix(longest) and stale_temporaries(twin) == []
    # a tiled restoration keeps its tiles in a folder named after the output: cut to fit too
    from linr.tiling import tile_store_path

    store = tile_store_path(longest)
    assert store.name.endswith(".tiles") and len(os.fsencode(store.name)) <= 255 and store != tile_store_path(twin)
    write_image(tmp_path / "big.png", np.random.default_rng(1).random((40, 40, 3)).astype(np.float32))
    out = run_ok(capsys, ["restore", "--noisy", str(tmp_path / "big.png"), "-o", str(tmp_path / ("o" * 246 + ".png")),
                          "--tile", "16", "--steps", "2", "--quiet"])
    assert "wrote" in out.out and (tmp_path / ("o" * 246 + ".png")).exists()


def test_a_png_whose_trns_colour_marks_transparent_pixels_keeps_them(tmp_path, capsys):
    """Grey and RGB PNGs store transparency as one colour (tRNS): it was ignored (alpha lost,
    --masked refused such a photo); palette PNGs' was read."""
    grey = (np.arange(48).reshape(6, 8) * 5).astype(np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "grey.png", transparency=10)
    rgb = np.dstack([grey, grey // 2, 255 - grey])
    Image.fromarray(rgb, "RGB").save(tmp_path / "rgb.png", transparency=(10, 5, 245))
    import png

    low = (np.arange(24).reshape(4, 6) % 4).astype(int)  # 2-bit grey: Pillow scales it, not its tRNS value
    png.Writer(6, 4, greyscale=True, bitdepth=2, transparent=1).write(open(tmp_path / "grey2.png", "wb"), low.tolist())
    pixels, info = read_image(tmp_path / "grey2.png")
    assert np.array_equal(info.alpha < 0.5, low == 1) and np.allclose(pixels[..., 0], low / 3)
    bits = (np.arange(24).reshape(4, 6) % 2).astype(int)  # 1-bit
    png.Writer(6, 4, greyscale=True, bitdepth=1, transparent=1).write(open(tmp_path / "grey1.png", "wb"), bits.tolist())
    assert np.array_equal(read_image(tmp_path / "grey1.png")[1].alpha < 0.5, bits == 1)
    for name, values in (("grey.png", grey), ("rgb.png", rgb)):
        pixels, info = read_image(tmp_path / name)
        assert info.alpha is not None and np.array_equal(info.alpha < 0.5, grey == 10)
        assert np.array_equal(np.round(pixels * 255).astype(np.uint8), values.reshape(6, 8, -1))
    out = run_ok(capsys, ["restore", "--masked", str(tmp_path / "rgb.png"), "-o", str(tmp_path / "out.png"),
                          "--steps", "2", "--quiet"])
    assert "rgb.png: transparent pixels (2.1%) taken as missing" in out.err


def test_transparent_pixels_of_a_photo_are_filled_from_its_opaque_ones_and_said_so(tmp_path):
    from linr.scene import load_scene

    image = np.random.default_rng(0).random((12, 12, 3)).astype(np.float32)
    alpha = np.ones((12, 12), np.float32)
    alpha[:3] = 0
    write_image(tmp_path / "holes.png", image, alpha=alpha)
    notes: list[str] = []
    obs, _, _ = load_scene({"noisy": str(tmp_path / "holes.png")}, {}, notes=notes)
    assert sum("25.0% of its pixels are transparent (alpha below one half); --noisy fills them with the photo mirrored" in n for n in notes) == 1
    stored = np.round(image * 255) / 255  # the transparent rows: rows 6, 5, 4 mirrored across row 3
    np.testing.assert_allclose(obs[0].image[:3], stored[6:3:-1], atol=1e-6)
    np.testing.assert_allclose(obs[0].image[3:], stored[3:], atol=1e-6)
    for kind, options in (("lowres", {"factor": 2}), ("blurred", {"kernel": "gaussian:3:0.8"})):
        notes = []  # a low-res or blurred photo's too: black read as data made a dark fringe and a noise-free area
        obs, _, _ = load_scene({kind: str(tmp_path / "holes.png")}, options, notes=notes)
        assert sum(f"25.0% of its pixels are transparent (alpha below one half); --{kind} leaves them out of what the restoration must "
                   "reproduce (filled with the photo mirrored at their nearest opaque pixel where a filter reads it "
                   "as an image), and the output keeps" in n for n in notes) == 1
        np.testing.assert_allclose(obs[0].image[:3], stored[6:3:-1], atol=1e-6)
        assert isinstance(obs[0].operator, LeftOut)  # and out of its data term: the opaque rows alone
        np.testing.assert_array_equal(obs[0].operator.kept, alpha >= 0.5)
    alpha[:] = 0
    write_image(tmp_path / "clear.png", image, alpha=alpha)
    notes = []
    obs, _, _ = load_scene({"lowres": str(tmp_path / "clear.png")}, {"factor": 2}, notes=notes)
    assert sum("every pixel is transparent (alpha below one half); --lowres fits their colours as data" in n for n in notes) == 1
    assert isinstance(obs[0].operator, Downsample)
    np.testing.assert_allclose(obs[0].image, stored, atol=1e-6)
    notes = []
    load_scene({"masked": str(tmp_path / "holes.png")}, {}, notes=notes)
    assert not any("fits their colours" in n for n in notes)


def test_an_animation_where_one_image_is_expected_is_not_called_a_tiff(tmp_path, capsys):
    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 90, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    with pytest.raises(InputError, match="anim.gif: an animation of 3 images where one image is expected"):
        read_image(tmp_path / "anim.gif")
    assert main(["metrics", str(tmp_path / "anim.gif"), str(tmp_path / "anim.gif")]) == 0  # two stacks: frame by frame
    assert len(json.loads(capsys.readouterr().out)["frames"]) == 3
    err = run_err(capsys, ["metrics", str(tmp_path / "anim.gif"), str(tmp_path / "anim.gif"), "--y", "--convention",
                           "paper"])
    assert "--y and --crop apply to the standard convention only" in err


def test_the_python_api_refuses_a_one_pixel_photo_as_the_command_line_does():
    for make in (linr.noisy, linr.lowres):
        with pytest.raises(InputError, match="is one pixel \\(1x1\\): there is nothing to restore"):
            make(np.full((1, 1, 3), 0.5, np.float32))
    with pytest.raises(InputError, match="one pixel"):
        linr.masked(np.full((1, 1), 0.5, np.float32), np.ones((1, 1), bool))
    assert linr.noisy(np.full((1, 2), 0.5, np.float32)).image.shape == (1, 2, 1)


def test_a_tile_store_that_is_a_file_is_refused_in_one_line_before_the_fit(tmp_path):
    path = tmp_path / "photo.png"
    path.write_bytes(b"not a folder")
    image = np.random.default_rng(0).random((40, 40, 3)).astype(np.float32)
    with pytest.raises(InputError, match="tile store .*photo.png: is a file, not a folder"):
        linr.restore([linr.noisy(image)], tile="16", tile_store=str(path), steps=1, progress=False,
                     on_step=lambda *a: pytest.fail("fitted"))
    assert path.read_bytes() == b"not a folder"


def test_write_image_takes_an_alpha_plane_and_refuses_other_shapes_and_values(tmp_path):
    image = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32)
    write_image(tmp_path / "a.png", image, alpha=np.ones((10, 12, 1)))  # a trailing channel of one
    assert read_image(tmp_path / "a.png")[1].alpha.shape == (10, 12)
    with pytest.raises(InputError, match="alpha must be an \\(H, W\\) array"):
        write_image(tmp_path / "b.png", image, alpha=np.ones((10, 12, 2)))
    with pytest.raises(InputError, match="alpha values must lie in \\[0, 1\\]"):
        write_image(tmp_path / "c.png", image, alpha=np.full((10, 12), 2.0))
    assert sorted(os.listdir(tmp_path)) == ["a.png"]


def test_a_made_folder_is_named_as_the_output_was(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_image("in.png", np.random.default_rng(0).random((10, 12, 3)).astype(np.float32))
    out = run_ok(capsys, ["restore", "--noisy", "in.png", "-o", "new/sub/out.png", "--steps", "2", "--quiet"])
    assert "made the folder new/sub for it, and new above it (they did not exist)" in out.out
    out = run_ok(capsys, ["restore", "--noisy", "in.png", "-o", "deep/a/b/out.png", "--steps", "2", "--quiet"])
    assert "made the folder deep/a/b for it, and deep, deep/a above it (they did not exist)" in out.out


def test_a_chosen_boundary_a_defaulted_factor_and_a_batch_of_low_res_images_are_said(tmp_path, capsys):
    """--boundary reflect / circular keeps the paper's fit (steps, constant rate), which free edges
    replace: said before the fit; a joint fit whose sizes disagree because --factor was left at
    its default says so in its error; a batch of low-res images without --factor says the x4."""
    from linr.cli import main
    from linr.tasks import DEFAULT_FREE_BLUR_STEPS, chosen_boundary_fit_note

    rng = np.random.default_rng(5)
    write_image(tmp_path / "b.png", rng.random((24, 24, 3)).astype(np.float32))
    blur = ["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:5:1.0", "--device", "cpu"]
    assert main([*blur, "--boundary", "circular", "--steps", "1", "-o", str(tmp_path / "o.png")]) == 0
    assert "--boundary circular: the blur's fit" not in capsys.readouterr().err  # --steps given: nothing differs
    from linr.kinds import blurred as blurred_photo

    circular = [blurred_photo(rng.random((24, 24)).astype(np.float32), np.ones((3, 3)) / 9, boundary="circular")]
    note = chosen_boundary_fit_note(circular, preset=None, steps=None)
    assert note is not None and f"free edges (the default) get {DEFAULT_FREE_BLUR_STEPS} steps" in note
    assert chosen_boundary_fit_note(circular, preset="paper", steps=None) is None
    free = [blurred_photo(rng.random((24, 24)).astype(np.float32), np.ones((3, 3)) / 9, boundary="free")]
    assert chosen_boundary_fit_note(free, preset=None, steps=None) is None
    write_image(tmp_path / "n.png", rng.random((48, 48, 3)).astype(np.float32))
    write_image(tmp_path / "lr.png", rng.random((16, 16, 3)).astype(np.float32))
    assert main(["restore", "--noisy", str(tmp_path / "n.png"), "--lowres", str(tmp_path / "lr.png"),
                 "-o", str(tmp_path / "j.png")]) == 2
    err = capsys.readouterr().err
    assert "--factor was not given, so the low-res image was taken as x4" in err and err.count("\n") == 1
    (tmp_path / "lrin").mkdir()
    write_image(tmp_path / "lrin" / "a.png", rng.random((12, 12, 3)).astype(np.float32))
    assert main(["batch", str(tmp_path / "lrin"), "--task", "lowres", "--steps", "1", "--refine", "none",
                 "--device", "cpu", "-o", str(tmp_path / "bo")]) == 0
    assert "--factor not given: the low-res images are taken as x4" in capsys.readouterr().err


def test_an_inverted_mask_is_named_in_a_note(tmp_path):
    """A mask whose kept (white) pixels are all black in the image while the image holds other
    values there is most likely inverted: a note says so; a right mask gets none."""
    from linr.scene import load_scene

    image = np.full((16, 16, 3), 0.6, np.float32)
    holes = np.zeros((16, 16), bool)
    holes[4:10, 4:10] = True
    image[holes] = 0.0
    write_image(tmp_path / "m.png", image)
    write_image(tmp_path / "inverted.png", holes.astype(np.float32))
    write_image(tmp_path / "right.png", (~holes).astype(np.float32))
    notes: list[str] = []
    load_scene({"masked": str(tmp_path / "m.png")}, {"mask": str(tmp_path / "inverted.png")}, notes=notes)
    assert any("is the mask inverted?" in n for n in notes), notes
    notes = []
    load_scene({"masked": str(tmp_path / "m.png")}, {"mask": str(tmp_path / "right.png")}, notes=notes)
    assert not any("inverted" in n for n in notes), notes
    # scratches of one colour (not black) over a photo that varies: the inverted mask keeps only them
    photo = np.random.default_rng(2).random((16, 16, 3)).astype(np.float32) * 0.8
    photo[holes] = (0.9, 0.85, 0.8)
    write_image(tmp_path / "s.png", photo)
    notes = []
    load_scene({"masked": str(tmp_path / "s.png")}, {"mask": str(tmp_path / "inverted.png")}, notes=notes)
    assert any("keeps is of nearly one value (230, 217, 204 of 255) while others are not: is the mask inverted?"
               in n for n in notes), notes
    notes = []
    load_scene({"masked": str(tmp_path / "s.png")}, {"mask": str(tmp_path / "right.png")}, notes=notes)
    assert not any("inverted" in n for n in notes), notes


def test_a_mask_marking_most_pixels_missing_in_large_regions_is_noted_and_can_be_read_the_other_way(tmp_path, capsys):
    """A new user's scratch mask drawn as many inpainting tools draw theirs (damage in white) marked
    89% of the photo missing and ran silently (6.3 dB): a note names --mask-white, which reads it
    the other way round; the paper's random masks (10% kept) say nothing."""
    from linr.cli import main
    from linr.scene import load_scene

    rng = np.random.default_rng(3)
    photo = rng.random((48, 48, 3)).astype(np.float32)
    scratches = np.zeros((48, 48), bool)
    scratches[:, 10] = scratches[:, 30] = scratches[20, :] = True  # thin lines: the damage
    write_image(tmp_path / "p.png", photo)
    write_image(tmp_path / "damage_white.png", scratches.astype(np.float32))
    notes: list[str] = []
    load_scene({"masked": str(tmp_path / "p.png")}, {"mask": str(tmp_path / "damage_white.png")}, notes=notes)
    assert any("marks 94% of the pixels missing, most of them more than 4 px from any observed one "
               "(white = observed): if the mask marks the damage in white, pass --mask-white missing" in n
               for n in notes), notes
    notes = []
    obs, _, _ = load_scene({"masked": str(tmp_path / "p.png")}, {"mask": str(tmp_path / "damage_white.png"),
                                                             "mask_white": "missing"}, notes=notes)
    assert np.array_equal(obs[0].operator.mask.numpy() > 0.5, ~scratches) and not any("mask-white" in n for n in notes)
    from linr.simulate import bernoulli_mask

    write_image(tmp_path / "random.png", bernoulli_mask((48, 48), 0.1, seed=0).astype(np.float32))
    notes = []
    load_scene({"masked": str(tmp_path / "p.png")}, {"mask": str(tmp_path / "random.png")}, notes=notes)
    assert not any("missing" in n for n in notes), notes
    assert main(["restore", "--masked", str(tmp_path / "p.png"), "--mask", str(tmp_path / "damage_white.png"),
                 "--mask-white", "missing", "-o", str(tmp_path / "o.png"), "--steps", "1", "--width", "8",
                 "--depth", "1", "--device", "cpu", "--quiet"]) == 0
    assert "--mask-white" not in capsys.readouterr().err


def test_damage_painted_in_colour_on_a_white_mask_is_missing(tmp_path):
    """A mask is white where observed: yellow or cyan strokes on it (whose channel mean is above a
    half) were read as observed, and the mask said nothing was missing."""
    from linr.images import read_mask

    mask = np.ones((12, 12, 3), np.float32)
    mask[3, :] = (1, 1, 0)  # yellow
    mask[:, 7] = (0, 1, 1)  # cyan
    mask[9, 2:5] = 0.7  # light grey: observed, as before
    write_image(tmp_path / "m.png", mask)
    notes: list[str] = []
    keep = read_mask(tmp_path / "m.png", notes=notes)
    want = np.ones((12, 12), bool)
    want[3, :] = want[:, 7] = False
    assert np.array_equal(keep, want)
    assert notes == ["%s: 23 mask pixels are coloured; a pixel counts as observed only where every channel is "
                     "at least half (white = observed): 84.0%% of pixels observed" % (tmp_path / "m.png"),
                     "%s: 3 grey mask pixels thresholded at 50%%; 84.0%% of pixels count as observed"
                     % (tmp_path / "m.png")]
    import linr

    assert np.array_equal(linr.masked(np.zeros((12, 12, 3), np.float32), mask).operator.mask.numpy() > 0.5, want)


def test_a_noisy_jpeg_is_said_to_carry_compression_not_white_noise(tmp_path):
    from linr.scene import load_scene

    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    for k in range(2):
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(tmp_path / f"shot{k}.jpg", quality=95)
    write_image(tmp_path / "shot.png", image)
    notes: list[str] = []
    load_scene({"noisy": str(tmp_path / "shot*.jpg")}, {}, notes=notes)
    assert sum("a JPEG: its compression smoothed part of the noise" in n for n in notes) == 1  # once for a burst
    notes = []
    load_scene({"noisy": str(tmp_path / "shot.png")}, {}, notes=notes)
    assert not any("a JPEG" in n for n in notes)


def test_a_noisy_photo_with_missing_pixels_is_said_to_keep_its_noise(tmp_path):
    """A new user's grainy, scratched scan came back with its grain and no word: a note measures
    the noise on the observed pixels; a clean photo (even baboon's fur) and the paper's random
    masks (no whole 2 x 2 block observed to measure on) say nothing."""
    from linr.kinds import observed_noise_sigma
    from linr.scene import load_scene
    from linr.simulate import bernoulli_mask

    clean = crop(load("set9/baboon.png"), 96)
    keep = np.ones((96, 96), bool)
    keep[:, ::9] = False  # scratches
    noisy = np.clip(clean + np.random.default_rng(0).normal(0, 25 / 255, clean.shape), 0, 1)
    sigma, blocks = observed_noise_sigma(noisy, keep)
    assert 22 < sigma < 28 and blocks > 1500  # 25, clipped at black and white
    write_image(tmp_path / "m.png", keep.astype(np.float32))
    for photo, said in ((noisy, True), (clean, False)):
        write_image(tmp_path / "p.png", np.where(keep[..., None], photo, 1.0).astype(np.float32), force=True)
        notes: list[str] = []
        load_scene({"masked": str(tmp_path / "p.png")}, {"mask": str(tmp_path / "m.png")}, notes=notes)
        assert any("measured on its observed pixels: inpainting keeps them as they are" in n for n in notes) == said
    random = bernoulli_mask((96, 96), 0.1, seed=0).astype(bool)
    assert observed_noise_sigma(noisy, random)[1] < 256


def test_mask_white_missing_reads_alpha_colour_and_0_1_masks_the_other_way_round(tmp_path):
    """The review of --mask-white: an alpha mask's opaque strokes, strokes in any colour on black and
    a 0/1 mask's 1s are the missing pixels with --mask-white missing, said so; without --mask the
    option is refused in one line."""
    from linr.images import read_mask
    from linr.scene import load_scene

    strokes = np.zeros((12, 12), bool)
    strokes[4, :] = strokes[:, 6] = True
    rgba = np.zeros((12, 12, 4), np.uint8)
    rgba[strokes] = 255  # white opaque strokes on a transparent background
    Image.fromarray(rgba).save(tmp_path / "alpha.png")
    notes: list[str] = []
    assert np.array_equal(read_mask(tmp_path / "alpha.png", white="missing", notes=notes), ~strokes)
    assert any("its alpha channel (opaque = missing)" in n for n in notes)
    colour = np.zeros((12, 12, 3), np.float32)
    colour[strokes] = (1, 0, 0)  # red strokes on black
    write_image(tmp_path / "red.png", colour)
    notes = []
    assert np.array_equal(read_mask(tmp_path / "red.png", white="missing", notes=notes), ~strokes)
    assert any("a pixel counts as missing where any channel is at least half (white = missing)" in n for n in notes)
    Image.fromarray(strokes.astype(np.uint8)).save(tmp_path / "ones.png")
    notes = []
    assert np.array_equal(read_mask(tmp_path / "ones.png", white="missing", notes=notes), ~strokes)
    assert any("its values 0 and 1 (1 = missing)" in n for n in notes)
    with pytest.raises(InputError, match="keeps no pixels \\(white = missing\\)"):
        read_mask(write_image(tmp_path / "all.png", np.ones((12, 12), np.float32)), white="missing")
    photo = np.random.default_rng(0).random((12, 12, 4)).astype(np.float32)
    photo[..., 3] = 1.0
    photo[0, 0, 3] = 0.0
    write_image(tmp_path / "holes.png", photo[..., :3], alpha=photo[..., 3])
    with pytest.raises(InputError, match="--mask-white missing says what a mask file's white marks: it needs --mask"):
        load_scene({"masked": str(tmp_path / "holes.png")}, {"mask_white": "missing"})


# --- a new user's joint fits (sixty-eighth session) -------------------------------------------

def test_a_given_range_maps_only_the_inputs_whose_type_can_hold_it(tmp_path, capsys, clean):
    """12-bit counts in a 16-bit TIFF beside an 8-bit low-res PNG, given --range 0:4095: the PNG
    (and the 8-bit reference) were mapped 0..4095 too, the result came back nearly black and its
    PSNR against the reference read alike said 35 dB. The 8-bit files stay in their own units."""
    import tifffile

    rng = np.random.default_rng(0)
    clean = clean[:24, :24]
    tifffile.imwrite(tmp_path / "n12.tif",
                     np.clip(np.round((clean + rng.normal(0, 0.05, clean.shape)) * 4095), 0, 4095).astype(np.uint16))
    low = clean.reshape(12, 2, 12, 2, 3).mean(axis=(1, 3))
    write_image(tmp_path / "lr.png", low)
    write_image(tmp_path / "clean.png", clean)
    out = run_ok(capsys, ["restore", "--noisy", str(tmp_path / "n12.tif"), "--lowres", str(tmp_path / "lr.png"),
                          "--factor", "2", "--range", "0:4095", "--steps", "60", "--refine", "none",
                          "-o", str(tmp_path / "r.tif"), "--reference", str(tmp_path / "clean.png")])
    assert "lr.png (uint8): its type cannot reach the value range's 4095, so it is in its own units" in out.err
    restored = tifffile.imread(tmp_path / "r.tif").astype(np.float64) / 4095
    assert abs(restored.mean() - clean.mean()) < 0.05  # not dark (it was a fifth of it)
    psnr_line = next(line for line in out.out.splitlines() if line.startswith("PSNR"))
    from skimage.metrics import peak_signal_noise_ratio

    printed = float(psnr_line.split()[1])
    measured = peak_signal_noise_ratio(read_image(tmp_path / "clean.png")[0].astype(np.float64),
                                       np.clip(restored, 0, 1), data_range=1)
    assert abs(printed - measured) < 0.05  # the reference in its own 8-bit units, as the result is
    write_image(tmp_path / "lr2.png", low)
    err = run_err(capsys, ["restore", "--lowres", str(tmp_path / "lr.png"), "--factor", "2", "--range", "0:4095",
                           "-o", str(tmp_path / "o.png")])
    assert "the value range 0..4095 reaches beyond what every input's sample type holds (" in err
    # linr metrics reads the files as linr restore does: the 8-bit reference in its own units, said
    assert main(["metrics", str(tmp_path / "clean.png"), str(tmp_path / "r.tif"), "--range", "0:4095"]) == 0
    out = capsys.readouterr()
    assert abs(json.loads(out.out)["psnr"] - printed) < 0.01
    assert "clean.png (uint8): its type cannot reach the value range's 4095" in out.err
    err = run_err(capsys, ["metrics", str(tmp_path / "clean.png"), str(tmp_path / "lr.png"), "--range", "0:4095"])
    assert "reaches beyond what both files' sample types hold" in err


def test_one_file_as_two_kinds_is_refused_and_sizes_that_a_factor_does_not_divide_say_which_crop(tmp_path, capsys, clean):
    """A noisy photo also given as the blurred one was fitted as both (4 dB under the photo alone);
    a 50 x 37 photo beside an x3 low-res view was refused without saying what lines up."""
    write_image(tmp_path / "a.png", clean)
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "a.png"), "--blurred", str(tmp_path / "a.png"),
                           "--kernel", "gaussian:5:1", "-o", str(tmp_path / "o.png")])
    assert "a.png: given as both noisy and blurred; each file is one observation of one kind" in err
    write_image(tmp_path / "n.png", np.zeros((37, 50, 3), np.float32) + 0.5)
    write_image(tmp_path / "lr.png", np.zeros((12, 17, 3), np.float32) + 0.5)
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "n.png"), "--lowres", str(tmp_path / "lr.png"),
                           "--factor", "3", "-o", str(tmp_path / "o.png")])
    assert "crop every shot to a multiple of 3 a side (such as 48x36, its low-res view 16x12)" in err


def test_a_frames_transparent_block_is_filled_by_the_frames_that_saw_it_and_comes_back_opaque(tmp_path, capsys, clean):
    """Two noisy frames, one with a transparent 6 x 10 block: the block was filled by its own frame
    mirrored and averaged into the burst as if seen (22.89 dB there against 35.1 with both opaque), and
    the output kept it transparent though the other frame saw it."""
    from linr.images import output_info
    from linr.scene import load_scene

    rng = np.random.default_rng(1)
    first, second = (np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32) for _ in range(2))
    alpha = np.ones(clean.shape[:2], np.float32)
    alpha[4:10, 8:18] = 0.0
    write_image(tmp_path / "a.png", first, alpha=alpha)
    write_image(tmp_path / "b.png", second)
    notes: list[str] = []
    observations, infos, _ = load_scene({"noisy": [str(tmp_path / "a.png"), str(tmp_path / "b.png")]}, notes=notes)
    block = np.s_[4:10, 8:18]
    seen = read_image(tmp_path / "b.png")[0]
    assert np.array_equal(observations[0].image[block], seen[block])  # the other frame's values
    assert any("fills them with the other frames' values where those saw them" in n for n in notes), notes
    assert output_info(infos).alpha is None  # the other frame saw every pixel: opaque
    assert output_info(infos, joint=False).alpha is not None  # frames restored each on its own keep their own
    write_image(tmp_path / "c.png", first, alpha=np.maximum(alpha, np.eye(*alpha.shape, dtype=np.float32)))
    _, infos, _ = load_scene({"noisy": [str(tmp_path / "a.png"), str(tmp_path / "c.png")]})
    assert np.array_equal(output_info(infos).alpha, np.maximum(alpha, np.eye(*alpha.shape)))  # seen by either
    out = run_ok(capsys, ["restore", "--noisy", str(tmp_path / "a.png"), "--noisy", str(tmp_path / "b.png"),
                          "--steps", "2", "--refine", "none", "-o", str(tmp_path / "o.png")])
    assert Image.open(tmp_path / "o.png").mode == "RGB", out.err


def test_a_trimmed_kernel_too_large_names_the_size_asked_for_and_a_joint_model_note_names_no_sure(tmp_path, capsys, clean):
    """gaussian:99:5 on a 30-px photo was refused naming a 53 x 53 kernel nobody asked for; the
    --save-model note of a joint fit spoke of the SURE pick, which only one noisy photo takes."""
    write_image(tmp_path / "b.png", clean)
    err = run_err(capsys, ["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:99:5",
                           "-o", str(tmp_path / "o.png")])
    assert "the kernel (53x53, 99x99 less its border under a millionth of its peak) is as large as" in err
    write_image(tmp_path / "lr.png", clean.reshape(15, 2, 15, 2, 3).mean(axis=(1, 3)))
    out = run_ok(capsys, ["restore", "--noisy", str(tmp_path / "b.png"), "--lowres", str(tmp_path / "lr.png"),
                          "--factor", "2", "--steps", "2", "--save-model", str(tmp_path / "m.pt"),
                          "-o", str(tmp_path / "o.png")])
    assert "the automatic stop returns the model's best single iterate" in out.err and "SURE" not in out.err
