"""The CLI in-process: every task, joint, degrade/metrics, and every bad input as a one-line error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import linr
from linr.cli import main
from linr.images import read_image, write_image

from .conftest import crop, load


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    clean = crop(load("set5/butterfly.png"), 32, top=100, left=100)
    write_image(d / "clean.png", clean)
    assert main(["degrade", str(d / "clean.png"), "-o", str(d / "noisy.png"), "--noise", "25"]) == 0
    assert main(["degrade", str(d / "clean.png"), "-o", str(d / "low.png"), "--downscale", "4"]) == 0
    assert main(["degrade", str(d / "clean.png"), "-o", str(d / "holes.png"), "--keep", "0.3"]) == 0
    assert main(["degrade", str(d / "clean.png"), "-o", str(d / "blur.png"), "--blur", "gaussian:9:1.6"]) == 0
    return d


def run_err(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err.strip()
    assert code != 0
    assert err.count("\n") == 0 and err.startswith("linr: error:"), err
    assert "Traceback" not in err
    return err


def test_degrade_outputs(files):
    assert read_image(files / "low.png")[0].shape == (8, 8, 3)
    mask = np.asarray(Image.open(files / "holes_mask.png"))
    assert set(np.unique(mask)) <= {0, 255} and 0.15 < (mask > 0).mean() < 0.45


@pytest.mark.parametrize("task", ["noisy", "lowres", "masked", "blurred", "joint"])
def test_restore_each_task(files, tmp_path, capsys, task):
    args = {
        "noisy": ["--noisy", str(files / "noisy.png")],
        "lowres": ["--lowres", str(files / "low.png"), "--factor", "4"],
        "masked": ["--masked", str(files / "holes.png"), "--mask", str(files / "holes_mask.png")],
        "blurred": ["--blurred", str(files / "blur.png"), "--kernel", "gaussian:9:1.6"],
        "joint": ["--noisy", str(files / "noisy.png"), "--lowres", str(files / "low.png")],
    }[task]
    out, report = tmp_path / "out.png", tmp_path / "r.json"
    code = main(["restore", *args, "-o", str(out), "--steps", "12", "--device", "cpu", "--quiet",
                 "--reference", str(files / "clean.png"), "--report", str(report)])
    assert code == 0
    stdout = capsys.readouterr().out
    assert "wrote" in stdout and "PSNR" in stdout
    assert read_image(out)[0].shape == (32, 32, 3)
    rep = json.loads(report.read_text())
    assert rep["steps_run"] == 12 and len(rep["history"]["loss"]) == 12 and len(rep["history"]["psnr"]) == 12
    from linr.tasks import DEFAULT_PILOT_LR

    pilot = task == "noisy"  # one noisy photo, refined: the defaults' pilot fit (its own rate)
    assert rep["settings"]["preset"] == "default" and rep["settings"]["lr"] == (DEFAULT_PILOT_LR if pilot else 1e-4)
    assert set(rep["metrics"]) == {"standard", "paper"}
    assert rep["timings"]["fit_s"] > 0
    if task == "joint":
        assert [o["weight"] for o in rep["settings"]["observations"]] == [0.1, 1.0]


def test_restore_keeps_16bit_and_grey(tmp_path, capsys):
    rng = np.random.default_rng(0)
    write_image(tmp_path / "g16.png", rng.random((16, 16)), bit_depth=16)
    assert main(["restore", "--noisy", str(tmp_path / "g16.png"), "-o", str(tmp_path / "o.png"),
                 "--steps", "2", "--quiet", "--device", "cpu"]) == 0
    img, info = read_image(tmp_path / "o.png")
    assert info.bit_depth == 16 and img.shape == (16, 16, 1)


def test_metrics_command(files, capsys):
    assert main(["metrics", str(files / "clean.png"), str(files / "noisy.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["convention"] == "standard" and 15 < out["psnr"] < 30 and 0 < out["ssim"] < 1
    assert main(["metrics", str(files / "clean.png"), str(files / "noisy.png"), "--convention", "paper"]) == 0
    assert json.loads(capsys.readouterr().out)["convention"] == "paper"


def test_metrics_of_grey_images_on_y_and_of_images_with_alpha_say_what_they_measured(tmp_path, capsys):
    rng = np.random.default_rng(1)
    clean = rng.random((24, 20))
    write_image(tmp_path / "g.png", clean)
    write_image(tmp_path / "gn.png", np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1))
    assert main(["metrics", str(tmp_path / "g.png"), str(tmp_path / "gn.png"), "--y"]) == 0
    on_y = json.loads(capsys.readouterr().out)
    assert main(["metrics", str(tmp_path / "g.png"), str(tmp_path / "gn.png")]) == 0
    assert on_y["psnr"] == json.loads(capsys.readouterr().out)["psnr"]  # a grey image's Y: its values
    rgba = np.dstack([np.stack([clean] * 3, axis=2), np.ones_like(clean)])
    holes = rgba.copy()
    holes[5:9, 5:9, 3] = 0  # transparent holes; the colour channels equal the reference's
    from PIL import Image

    for name, image in (("ref.png", rgba), ("holes.png", holes)):
        Image.fromarray(np.round(image * 255).astype(np.uint8), "RGBA").save(tmp_path / name)
    assert main(["metrics", str(tmp_path / "ref.png"), str(tmp_path / "holes.png")]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["psnr"] is None  # identical colour: infinite, written as null
    assert captured.err.count("alpha channel; it is not measured itself") == 2, captured.err
    assert "its 3.3% transparent pixels (alpha below one half) are left out, as linr restore measures" in captured.err
    # the transparent pixels' colour left out, as linr restore measures its output (they differed by 14 dB)
    wrong = holes.copy()
    wrong[5:9, 5:9, :3] = 1 - wrong[5:9, 5:9, :3]
    Image.fromarray(np.round(wrong * 255).astype(np.uint8), "RGBA").save(tmp_path / "wrong.png")
    assert main(["metrics", str(tmp_path / "ref.png"), str(tmp_path / "wrong.png")]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert measured["psnr"] is None and measured["measured_pixels"] == "464 of 480 (the opaque ones)"
    assert main(["metrics", str(tmp_path / "ref.png"), str(tmp_path / "wrong.png"), "--all-pixels"]) == 0
    assert 0 < json.loads(capsys.readouterr().out)["psnr"] < 30


def test_metrics_of_float_files_in_units_say_how_they_were_mapped_and_take_a_range(tmp_path, capsys):
    """Float TIFFs in their own units (photon counts) are mapped by the data, and the note says so;
    --range maps both files by given units; a float file beside an integer one gets a note; a
    crop too large names the size width first."""
    import tifffile

    rng = np.random.default_rng(2)
    counts = (500 + rng.random((20, 24)) * 3000).astype(np.float32)  # noise stays above 0
    noisy = (counts + rng.normal(0, 100, counts.shape)).astype(np.float32)
    tifffile.imwrite(tmp_path / "ref.tif", counts)
    tifffile.imwrite(tmp_path / "img.tif", noisy)
    assert main(["metrics", str(tmp_path / "ref.tif"), str(tmp_path / "img.tif")]) == 0
    captured = capsys.readouterr()
    high = float(max(counts.max(), noisy.max()))
    by_data = json.loads(captured.out)["psnr"]
    assert by_data == pytest.approx(10 * np.log10(high ** 2 / np.mean((counts.astype(np.float64) - noisy) ** 2)), abs=1e-4)
    assert captured.err.count("mapped 0..") == 2 and "(0 to the data's maximum)" in captured.err
    assert main(["metrics", str(tmp_path / "ref.tif"), str(tmp_path / "img.tif"), "--range", "0:4000"]) == 0
    captured = capsys.readouterr()
    given = json.loads(captured.out)["psnr"]
    assert given == pytest.approx(by_data + 20 * np.log10(4000 / high), abs=1e-4)
    assert json.loads(captured.out)["value_ranges"][str(tmp_path / "img.tif")] == \
        {"low": 0.0, "high": 4000.0, "rule": "given"}  # the JSON says which mapping its PSNR is on
    assert "0..4000 -> [0, 1] (given)" in captured.err
    write_image(tmp_path / "img.png", np.clip(noisy / 4000, 0, 1), bit_depth=16)
    assert main(["metrics", str(tmp_path / "ref.tif"), str(tmp_path / "img.png")]) == 0
    assert "one file holds floats in their own units and the other integers" in capsys.readouterr().err
    twelve = (counts / 3500 * 4095).astype(np.uint16)  # 12-bit data in uint16
    tifffile.imwrite(tmp_path / "r12.tif", twelve)
    tifffile.imwrite(tmp_path / "i12.tif", np.clip(twelve.astype(np.int32) + 50, 0, 4095).astype(np.uint16))
    assert main(["metrics", str(tmp_path / "r12.tif"), str(tmp_path / "i12.tif")]) == 0
    assert "reach only" in capsys.readouterr().err
    assert main(["metrics", str(tmp_path / "r12.tif"), str(tmp_path / "i12.tif"), "--range", "0:4095"]) == 0
    assert json.loads(capsys.readouterr().out)["psnr"] == pytest.approx(20 * np.log10(4095 / 50), abs=0.05)
    write_image(tmp_path / "a.png", np.zeros((20, 24)))
    assert run_err(capsys, ["metrics", str(tmp_path / "a.png"), str(tmp_path / "a.png"), "--crop", "10"]) \
        .endswith("crop 10 leaves nothing of a 24x20 image")


def test_a_photo_smaller_than_the_refinements_patches_says_it_was_not_refined(tmp_path, capsys):
    # a new user's 5 x 5 noisy photo came back without the default refinement, unsaid
    rng = np.random.default_rng(1)
    write_image(tmp_path / "noisy.png", rng.random((5, 7, 3)).astype(np.float32))
    assert main(["restore", "--noisy", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "out.png"), "--steps", "2",
                 "--width", "16", "--depth", "2", "--device", "cpu"]) == 0
    assert ("not refined: the default refinement (grouped): it filters 8 x 8 patches, and the image is 7x5 "
            "(width x height): the fit's image was written") in capsys.readouterr().out
    photo = [linr.noisy(rng.random((5, 7, 3)))]
    small = linr.ModelConfig(width=16, depth=2)
    left = linr.restore(photo, steps=2, model=small, device="cpu")
    assert left.settings["refine"]["name"] == "grouped" and left.fitted_image is None
    try:  # no model may render it (an average of iterates), but not because it was refined
        left.fitted_model()
    except linr.errors.InputError as error:
        assert "refined" not in str(error)
    assert "refine" not in linr.restore(photo, steps=2, model=small, device="cpu", refine="none").settings
    # at 8 px the default refines
    assert "skipped" not in linr.restore([linr.noisy(rng.random((8, 8, 3)))], steps=2, model=small,
                                         device="cpu").settings["refine"]


def test_a_sharpening_kernel_and_a_mask_with_nothing_missing_are_noted_once_before_the_fit(tmp_path, capsys):
    # a new user's trial: the mask ran unsaid (the kernel's note was there)
    rng = np.random.default_rng(2)
    write_image(tmp_path / "photo.png", rng.random((16, 16, 3)).astype(np.float32))
    np.save(tmp_path / "sharpen.npy", np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float))
    np.save(tmp_path / "psf.npy", np.array([[-0.001, 0.2, 0], [0.2, 1, 0.2], [0, 0.2, -0.002]]))  # noise: passes
    write_image(tmp_path / "white.png", np.ones((16, 16), np.float32))
    small = ["-o", str(tmp_path / "out.png"), "--force", "--steps", "1", "--width", "8", "--depth", "1",
             "--device", "cpu", "--refine", "none"]
    assert main(["restore", "--blurred", str(tmp_path / "photo.png"), "--kernel", str(tmp_path / "sharpen.npy"),
                 *small]) == 0
    err = capsys.readouterr().err
    assert err.count("negative values") == 1 and "sharpen.npy: the kernel has negative values down to -20%" in err
    assert main(["restore", "--blurred", str(tmp_path / "photo.png"), "--kernel", str(tmp_path / "psf.npy"),
                 *small]) == 0
    assert "negative values" not in capsys.readouterr().err
    assert main(["restore", "--masked", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "white.png"),
                 *small]) == 0
    err = capsys.readouterr().err
    assert err.count("every pixel is observed, so there is nothing to fill in") == 1 and "white.png" not in err


def test_a_photo_with_nothing_missing_is_returned_as_it_is_with_no_fit(tmp_path, capsys):
    """An all-white mask (an archive's scan without damage) ran the whole fit, of minutes to hours
    at a scan's size, for the photo itself: now no fit, no tiles, no forecast; the photo written
    as it is, from restore, Python and batch; --refine none still fits a network to it."""
    import linr
    from linr.tasks import NOTHING_MISSING

    rng = np.random.default_rng(3)
    photo = rng.random((300, 300, 3)).astype(np.float32)
    write_image(tmp_path / "photo.png", photo)
    write_image(tmp_path / "white.png", np.ones((300, 300), np.float32))
    assert main(["restore", "--masked", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "white.png"),
                 "-o", str(tmp_path / "out.png"), "--tile", "128", "--workers", "2",
                 "--report", str(tmp_path / "r.json")]) == 0
    out, err = capsys.readouterr()
    assert "not fitted: every pixel is observed: the photo itself is the result, with no fit" in out
    assert "tiles" not in err and "estimated" not in err and "network:" not in out and "refined" not in out
    assert np.array_equal(read_image(tmp_path / "out.png")[0], read_image(tmp_path / "photo.png")[0])
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["steps_run"] == 0 and report["stop_reason"] == NOTHING_MISSING
    mask = np.ones((300, 300), bool)
    result = linr.restore([linr.masked(read_image(tmp_path / "photo.png")[0], mask)])
    assert result.steps_run == 0 and np.array_equal(result.image, read_image(tmp_path / "photo.png")[0])
    fitted = linr.restore([linr.masked(photo[:16, :16], mask[:16, :16])], refine="none", steps=2)
    assert fitted.steps_run == 2
    assert main(["batch", "--masked", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "white.png"),
                 "-o", str(tmp_path / "b"), "--quiet"]) == 0
    record = json.loads((tmp_path / "b" / "manifest.jsonl").read_text().splitlines()[-1])
    assert record["status"] == "done" and record["steps_run"] == 0


def test_images_smaller_than_ssims_window_get_psnr_and_say_why_not_ssim(tmp_path, capsys):
    rng = np.random.default_rng(0)
    clean = rng.random((9, 5, 3)).astype(np.float32)  # under both windows (11 px; the paper's 7)
    write_image(tmp_path / "clean.png", clean)
    write_image(tmp_path / "noisy.png", np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1))
    assert main(["metrics", str(tmp_path / "clean.png"), str(tmp_path / "noisy.png")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["psnr"] > 10 and out["ssim"] is None and "11-px window does not fit in 5x9 px" in out["ssim_note"]
    code = main(["restore", "--noisy", str(tmp_path / "noisy.png"), "--reference", str(tmp_path / "clean.png"),
                 "-o", str(tmp_path / "out.png"), "--steps", "3", "--device", "cpu", "--report",
                 str(tmp_path / "report.json")])
    assert code == 0  # before: an internal error after the fit
    assert "SSIM not measured: its 11-px window does not fit in 5x9 px" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "report.json").read_text())["metrics"]
    assert metrics["standard"]["ssim"] is None and metrics["paper"]["ssim"] is None  # the paper's 7 px too
    from linr.metrics import evaluate

    square = rng.random((7, 7, 3))
    assert evaluate(square, square * 0.9, convention="paper")["ssim"] is not None  # the paper's 7-px window fits


def test_bad_inputs(files, tmp_path, capsys):
    out = tmp_path / "o.png"
    noisy = str(files / "noisy.png")
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    write_image(tmp_path / "small_mask.png", np.ones((5, 5)))
    write_image(tmp_path / "zero.tif", np.zeros((8, 8)))
    import tifffile

    tifffile.imwrite(tmp_path / "empty.tif", np.zeros((0, 4), np.uint8))
    (tmp_path / "copy.png").write_bytes((files / "noisy.png").read_bytes())
    tifffile.imwrite(tmp_path / "nan.tif", np.full((4, 4), np.inf, np.float32))
    cases = {
        "no such file": ["restore", "--noisy", str(tmp_path / "missing.png"), "-o", str(out)],
        "not a readable image": ["restore", "--noisy", str(tmp_path / "corrupt.png"), "-o", str(out)],
        "mask is 5x5": ["restore", "--masked", noisy, "--mask", str(tmp_path / "small_mask.png"), "-o", str(out)],
        "disagree": ["restore", "--noisy", noisy, "--lowres", str(tmp_path / "copy.png"), "--factor", "4", "-o", str(out)],
        "given as both noisy and lowres": ["restore", "--noisy", noisy, "--lowres", noisy, "--factor", "4", "-o", str(out)],
        "bad kernel spec": ["restore", "--blurred", noisy, "--kernel", "gaussian:x:1", "-o", str(out)],
        "sigma > 0": ["restore", "--blurred", noisy, "--kernel", "gaussian:5:0", "-o", str(out)],
        "as large as the blurred photo": ["restore", "--blurred", noisy, "--kernel", "gaussian:99:30", "-o", str(out)],
        "zero size": ["restore", "--noisy", str(tmp_path / "empty.tif"), "-o", str(out)],
        "non-finite": ["restore", "--noisy", str(tmp_path / "nan.tif"), "-o", str(out)],
        "--factor needs --lowres": ["restore", "--noisy", noisy, "--factor", "2", "-o", str(out)],
        "--masked needs --mask": ["restore", "--masked", noisy, "-o", str(out)],
        "at least one": ["restore", "-o", str(out)],
        "positive integer": ["restore", "--noisy", noisy, "--steps", "0", "-o", str(out)],
        "unknown preset": ["restore", "--noisy", noisy, "--preset", "fastest", "-o", str(out)],
        "unknown model": ["restore", "--noisy", noisy, "--model", "gelu", "-o", str(out)],
        "refusing to overwrite an input": ["restore", "--noisy", noisy, "-o", noisy, "--force"],
        "unknown output format": ["restore", "--noisy", noisy, "-o", str(tmp_path / "o.xyz")],
        "is a folder; name the output file in it": ["restore", "--noisy", noisy, "-o", str(files)],
        "names a folder (it ends with /); name the output file in it": ["restore", "--noisy", noisy, "-o",
                                                                       str(tmp_path / "newdir") + "/"],
        "not divisible": ["degrade", str(files / "clean.png"), "-o", str(out), "--downscale", "3"],
        "fraction": ["degrade", str(files / "clean.png"), "-o", str(out), "--keep", "2"],
        "sizes differ": ["metrics", str(files / "clean.png"), str(files / "low.png")],
        "invalid choice": ["metrics", str(files / "clean.png"), noisy, "--convention", "odd"],
        "no CUDA": ["restore", "--noisy", noisy, "-o", str(out), "--device", "cuda", "--steps", "1"],
    }
    for expected, argv in cases.items():
        err = run_err(capsys, argv)
        assert expected in err, (expected, err)
        assert not out.exists(), expected
    assert read_image(files / "noisy.png")[0].shape == (32, 32, 3)  # input intact


def test_existing_output_needs_force(files, tmp_path, capsys):
    out = tmp_path / "o.png"
    out.write_bytes(b"precious")
    err = run_err(capsys, ["restore", "--noisy", str(files / "noisy.png"), "-o", str(out), "--steps", "1"])
    assert "exists (use --force to overwrite)" in err and "Python" not in err and out.read_bytes() == b"precious"
    report = tmp_path / "r.json"  # an existing report: the same refusal, before the fit
    report.write_text("kept")
    err = run_err(capsys, ["restore", "--noisy", str(files / "noisy.png"), "-o", str(tmp_path / "new.png"),
                           "--report", str(report), "--steps", "1"])
    assert f"{report}: exists (use --force to overwrite)" in err and report.read_text() == "kept"


def test_divergence_is_an_error_and_writes_nothing(files, tmp_path, capsys):
    out = tmp_path / "o.png"
    err = run_err(capsys, ["restore", "--noisy", str(files / "noisy.png"), "-o", str(out), "--steps", "30",
                           "--lr", "1e30", "--quiet", "--device", "cpu"])
    assert "diverged" in err and not out.exists()


def test_python_module_entry_point():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "linr", "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("linr ")


def test_quiet_restore_keeps_the_forecasts_warnings_and_drops_the_rest(tmp_path, capsys, monkeypatch):
    """``--quiet`` leaves the forecast of a long restore unsaid (as ``linr batch --quiet`` does) but
    still says its warnings (a refinement that may not fit in memory); without it both are said."""
    import linr.tasks

    def forecast(*args, **kwargs):
        return "about 2 h for 500 steps restoring 16x16\nwarning: the refinement after the fit needs about 9 GiB"

    monkeypatch.setattr(linr.tasks, "restore_cost", forecast)
    write_image(tmp_path / "n.png", np.random.default_rng(0).random((16, 16, 3)))
    for quiet in (True, False):
        assert main(["restore", "--noisy", str(tmp_path / "n.png"), "-o", str(tmp_path / f"o{quiet}.png"),
                     "--steps", "2", "--device", "cpu", *(["--quiet"] if quiet else [])]) == 0
        err = capsys.readouterr().err
        assert "warning: the refinement after the fit needs about 9 GiB" in err
        assert ("about 2 h for 500 steps" in err) is not quiet


def test_a_new_users_trial_tile_hint_overlap_note_tiled_report_kernel_message_and_interrupt_line(
        tmp_path, capsys, monkeypatch):
    """Four faults a new user's trial found: the too-small-tiles error's suggestion is a
    SIZE:OVERLAP that then works; an overlap raised above the asked one is said; a tiled restore's
    report has no per-step time (null, not 0); a Gaussian kernel spec larger than the photo is
    not taken for a photo; after an interrupt on a terminal the first line starts on a new line."""
    import re

    import linr.cli

    rng = np.random.default_rng(0)
    write_image(tmp_path / "low.png", rng.random((24, 24, 3)))
    low, out = str(tmp_path / "low.png"), str(tmp_path / "o.png")
    assert main(["restore", "--lowres", low, "--factor", "4", "--tile", "48:8", "-o", out]) == 2
    hint = re.search(r"--tile (\d+:\d+)", capsys.readouterr().err).group(1)
    assert main(["restore", "--lowres", low, "--factor", "4", "--tile", hint, "-o", out, "--steps", "1",
                 "--refine", "none", "--device", "cpu", "--quiet"]) == 0
    capsys.readouterr()
    report = tmp_path / "r.json"
    assert main(["restore", "--lowres", low, "--factor", "4", "--tile", "64:20", "-o", out, "--force", "--steps", "1",
                 "--refine", "none", "--device", "cpu", "--quiet", "--report", str(report)]) == 0
    assert "raised from the 20 px asked" in capsys.readouterr().err
    timings = json.loads(report.read_text())["timings"]
    assert timings["per_step_s"] is None and timings["fit_s"] > 0
    write_image(tmp_path / "blurred.png", rng.random((32, 32, 3)))
    write_image(tmp_path / "photo.png", rng.random((40, 40)))
    for kernel, photo_hint in (("gaussian:51:8", False), (str(tmp_path / "photo.png"), True)):
        assert main(["restore", "--blurred", str(tmp_path / "blurred.png"), "--kernel", kernel, "-o", out]) == 2
        err = capsys.readouterr().err
        assert "as large as the blurred photo" in err and ("a photo given as the kernel" in err) is photo_hint
    monkeypatch.setattr(linr.cli.sys.stderr, "isatty", lambda: True, raising=False)
    assert linr.cli._after_bar() == "\n" and linr.cli._after_bar() == ""  # the first line only
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(linr.cli, "cmd_restore", interrupted)
    for quiet, first in ((True, "linr: interrupted"), (False, "")):  # --quiet draws no bar: no blank line
        assert main(["restore", "--noisy", low, "-o", out] + (["--quiet"] if quiet else [])) == 130
        assert capsys.readouterr().err.splitlines()[0] == first

    import os
    import signal
    import time

    def killed(args):  # a scheduler's or `kill`'s SIGTERM: said as an interrupt, not a silent death
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)
        raise AssertionError("SIGTERM was not turned into an interrupt")

    class Unhandled(Exception):
        pass

    def fallback(signum, frame):  # main() installs its own; if it did not, this fails the test, not pytest
        raise Unhandled

    before = signal.signal(signal.SIGTERM, fallback)
    monkeypatch.setattr(linr.cli, "cmd_restore", killed)
    code = main(["restore", "--noisy", low, "-o", out, "--quiet"])
    said = capsys.readouterr().err
    assert code == 130, said
    assert said.splitlines()[0] == "linr: interrupted"
    assert signal.getsignal(signal.SIGTERM) is fallback  # the handler is the command's only
    signal.signal(signal.SIGTERM, before)


def test_degrade_blur_says_how_to_restore_its_wrapped_borders(tmp_path, capsys):
    """A new user restored ``linr degrade --blur``'s output as the README's deblurring line shows
    and got stripes along its borders: the blur wraps around, which the default's free edges do
    not assume; degrade now says which flags restore it."""
    write_image(tmp_path / "c.png", np.full((16, 16, 3), 0.5, np.float32))
    assert main(["degrade", str(tmp_path / "c.png"), "-o", str(tmp_path / "b.png"), "--blur", "gaussian:5:1"]) == 0
    said = capsys.readouterr().out
    assert f"restore it with --blurred {tmp_path / 'b.png'} --kernel gaussian:5:1 --boundary circular" in said


def test_a_new_user_s_small_inconsistencies(tmp_path, capsys):
    """--keep 0 and --keep 1.5 refused alike; a 5-channel image degraded into a PNG refused before
    any note on how it would be written; a report's new folder said, as the output's is; an input
    given as its own reference said to be identical (it printed 'PSNR inf dB')."""
    import tifffile

    from .conftest import run_err

    write_image(tmp_path / "c.png", np.full((16, 16, 3), 0.5, np.float32))
    for keep in ("0", "1.5"):
        assert run_err(capsys, ["degrade", str(tmp_path / "c.png"), "-o", str(tmp_path / "k.png"), "--keep", keep]) \
            == f"linr: error: degrade: argument --keep: expected a fraction in (0, 1], got '{keep}'"
    tifffile.imwrite(tmp_path / "five.tif", np.full((5, 16, 16), 0.5, np.float32), metadata={"axes": "CYX"})
    assert "PNG holds grey or RGB images" in run_err(capsys, ["degrade", str(tmp_path / "five.tif"), "-o",
                                                             str(tmp_path / "f.png"), "--noise", "10"])
    report = tmp_path / "new" / "r.json"
    assert main(["restore", "--noisy", str(tmp_path / "c.png"), "-o", str(tmp_path / "o.png"), "--steps", "2",
                 "--device", "cpu", "--quiet", "--report", str(report), "--reference", str(tmp_path / "c.png")]) == 0
    said = capsys.readouterr().out
    assert f"made the folder {tmp_path / 'new'} for it" in said and report.exists()
    assert "(noisy) PSNR infinite (identical to the reference)" in said  # the input given as its own reference


def test_restore_measures_the_file_as_written_where_it_differs(tmp_path, capsys):
    import json

    from linr.cli import main

    from .conftest import tiny_noisy_restore

    args = tiny_noisy_restore(tmp_path)
    args = [a for a in args if a != "--quiet"] + ["--reference", str(tmp_path / "n.png"), "--refine", "none"]
    assert main([*args, "-o", str(tmp_path / "o.jpg"), "--report", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "r.json").read_text())
    written = report["metrics_as_written"]
    assert (written["bit_depth"], written["format"]) == (8, "jpeg")
    assert f"; {written['psnr']:.2f} dB as written (8-bit JPEG))" in out, out
    assert main(["metrics", str(tmp_path / "o.jpg"), str(tmp_path / "n.png")]) == 0
    assert json.loads(capsys.readouterr().out)["psnr"] == pytest.approx(written["psnr"], abs=1e-6)


def test_degrade_says_a_jpeg_changes_what_it_simulates_and_refuses_a_jpeg_mask(files, tmp_path, capsys):
    """A new user's degraded JPEGs were written without a word (restore then warned that JPEG noise
    is not the noise it models); a JPEG mask, whose edges compression blurs, was accepted."""
    assert main(["degrade", str(files / "clean.png"), "--noise", "25", "-o", str(tmp_path / "n.jpg")]) == 0
    assert "JPEG's compression changes what is simulated" in capsys.readouterr().err
    assert main(["degrade", str(files / "clean.png"), "--noise", "25", "-o", str(tmp_path / "n.png")]) == 0
    assert "JPEG" not in capsys.readouterr().err
    err = run_err(capsys, ["degrade", str(files / "clean.png"), "--keep", "0.5", "-o", str(tmp_path / "k.png"),
                           "--mask-output", str(tmp_path / "k_mask.jpg")])
    assert "--mask-output" in err and "name a .png or .tif" in err and not (tmp_path / "k.png").exists()


def test_an_output_a_glob_of_the_inputs_matches_is_refused_naming_the_glob(tmp_path, capsys):
    """A rerun of 'burst/*.png -o burst/out.png' matched its earlier output as one more frame and
    said only 'refusing to overwrite an input file'; now the glob is named, before anything is
    read (--force or not), and a report it matches too."""
    (tmp_path / "b").mkdir()
    for k in range(2):
        write_image(tmp_path / "b" / f"f{k}.png", np.full((8, 8, 3), 0.1 * k, np.float32))
    write_image(tmp_path / "b" / "out.png", np.zeros((8, 8, 3), np.float32))
    glob_ = str(tmp_path / "b" / "*.png")
    for extra in ([], ["--force"]):
        err = run_err(capsys, ["restore", "--noisy", glob_, "-o", str(tmp_path / "b" / "out.png"), *extra])
        assert err == (f"linr: error: {tmp_path / 'b' / 'out.png'}: the glob --noisy '{glob_}' matches it (an earlier "
                       "run's output?), so it would be read as a frame and overwritten: write the output elsewhere "
                       "or narrow the glob")
    (tmp_path / "b" / "r.json").write_text("{}")
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "b" / "*"), "-o", str(tmp_path / "o.png"),
                           "--report", str(tmp_path / "b" / "r.json")])
    assert "r.json: the glob --noisy" in err


def test_a_glob_that_misses_by_case_says_so(tmp_path, capsys):
    """'bu/*.jpg' misses IMG_0001.JPG (a glob is case-sensitive): restore's and batch's errors say so."""
    (tmp_path / "bu").mkdir()
    write_image(tmp_path / "bu" / "IMG_0001.JPG", np.zeros((8, 8, 3), np.float32))
    for argv in (["restore", "--noisy", str(tmp_path / "bu" / "*.jpg"), "-o", str(tmp_path / "o.png")],
                 ["batch", str(tmp_path / "bu" / "*.jpg"), "--task", "noisy", "-o", str(tmp_path / "out")]):
        err = run_err(capsys, argv)
        assert "a glob is case-sensitive, and 1 file(s) such as" in err and "IMG_0001.JPG" in err


def test_an_8_bit_reference_beside_float_inputs_given_a_range_is_read_by_its_own_type(tmp_path, capsys):
    """A float32 input restored with --range 0:1 and an 8-bit PNG reference: the reference was read in
    the inputs' range (its 0..255 as 0..255 on the fit's scale: PSNR -0.00 dB); now by its own
    type's range, said in a note (the bench's saved input, restored so, gave the bench's 29.59 dB)."""
    import tifffile

    rng = np.random.default_rng(4)
    clean = rng.random((16, 16, 3)).astype(np.float32)
    write_image(tmp_path / "clean.png", clean)
    tifffile.imwrite(tmp_path / "noisy.tif", (np.round(clean * 255) / 255 + 0.01).astype(np.float32), photometric="rgb")
    assert main(["restore", "--noisy", str(tmp_path / "noisy.tif"), "--range", "0:1", "--reference",
                 str(tmp_path / "clean.png"), "-o", str(tmp_path / "o.tif"), "--steps", "2", "--refine", "none",
                 "--report", str(tmp_path / "r.json")]) == 0
    err = capsys.readouterr().err
    assert "clean.png: uint8, another sample type than the inputs', with values far beyond their range (0..1 -> " \
           "[0, 1] (given)): read by its own type's range" in err
    inputs = json.loads((tmp_path / "r.json").read_text())["input_psnr"]
    assert inputs[0]["psnr"] == pytest.approx(40.0, abs=0.5)  # the 0.01 offset: 40 dB


def test_review_finds_frames_with_nothing_missing_a_counts_reference_and_numpy_tile_stacks(tmp_path, capsys):
    """A review's finds: --frames separate with tiles and workers stopped at a frame with nothing
    missing ('workers fit the tiles ...'), or left the other frame unresumable; an integer reference
    of float counts in their own units was read by its type's range (4.96 dB where 31.6 was right);
    tile_stack=np.int64(2) was refused."""
    import tifffile

    import linr

    rng = np.random.default_rng(6)
    frames = rng.random((2, 32, 32)).astype(np.float32)
    for name, holed in (("first", 0), ("second", 1)):
        stack = frames.copy()
        stack[holed, 5:9, 5:9] = np.nan
        from astropy.io import fits

        fits.writeto(tmp_path / f"{name}.fits", stack)
        out = tmp_path / f"{name}_out.fits"
        assert main(["restore", "--masked", str(tmp_path / f"{name}.fits"), "--frames", "separate", "--tile", "16",
                     "--workers", "2", "-o", str(out), "--steps", "2", "--quiet"]) == 0, capsys.readouterr().err
        said = capsys.readouterr().out
        assert f"frame {2 - holed}/2: not fitted: every pixel is observed" in said
        assert not list(tmp_path.glob(f"{name}_out.fits*.tiles"))
    counts = rng.poisson(np.full((24, 24, 3), 150.0)).astype(np.float32)
    tifffile.imwrite(tmp_path / "fc.tif", counts, photometric="rgb")
    tifffile.imwrite(tmp_path / "ref.tif", np.full((24, 24, 3), 150, np.uint16), photometric="rgb")
    assert main(["restore", "--noisy", str(tmp_path / "fc.tif"), "--reference", str(tmp_path / "ref.tif"), "-o",
                 str(tmp_path / "x.tif"), "--steps", "2", "--refine", "none", "--report", str(tmp_path / "r.json"),
                 "--quiet"]) == 0
    assert "another sample type" not in capsys.readouterr().err
    inputs = json.loads((tmp_path / "r.json").read_text())["input_psnr"]
    assert inputs[0]["psnr"] > 20  # in the inputs' units (by the type's range: about 5 dB)
    photo = rng.random((40, 40, 3)).astype(np.float32)
    assert linr.restore([linr.noisy(photo)], steps=1, tile="16:4", tile_stack=np.int64(2), refine="none").image.shape \
        == (40, 40, 3)


def test_refine_none_on_a_noisy_photo_says_its_fit_is_the_paper_s_network(files, tmp_path, capsys):
    noisy = str(files / "noisy.png")
    assert main(["restore", "--noisy", noisy, "-o", str(tmp_path / "a.png"), "--refine", "none", "--steps", "2",
                 "--quiet"]) == 0
    err = capsys.readouterr().err
    assert "--refine none: the fit's own image, and the fit is the paper's SIREN 7x256" in err, err
    assert main(["restore", "--noisy", noisy, "-o", str(tmp_path / "b.png"), "--refine", "none", "--steps", "2",
                 "--stop", "fixed", "--quiet"]) == 0  # a fixed stop fits the paper's network either way
    assert "--refine none: the fit's own image" not in capsys.readouterr().err
