"""Photon noise: the Poisson-Gaussian data term, the photon-level estimate, ``--noise`` on
``linr restore`` (with automatic stopping) and ``--poisson`` in ``linr degrade``."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch

import linr
from linr.cli import main
from linr.errors import InputError
from linr.fidelity import Poisson, PoissonGaussian, data_term
from linr.images import read_image, write_image
from linr.photon import estimate_photon_noise
from linr.simulate import add_photon_noise

from .conftest import crop, load, run_err


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return crop(load("set9/house.png"), 24)


def test_poisson_gaussian_is_poisson_without_read_noise_and_peaks_at_the_rate():
    gen = torch.Generator().manual_seed(1)
    pred = torch.rand(50, dtype=torch.float64, generator=gen) * 2 - 1
    target = torch.rand(50, dtype=torch.float64, generator=gen) * 2 - 1
    assert torch.allclose(PoissonGaussian(peak=7.0).elementwise(pred, target),
                          Poisson(peak=7.0).elementwise(pred, target), rtol=1e-12)
    grid = torch.linspace(-0.99, 0.99, 1981, dtype=torch.float64)
    k = torch.full_like(grid, -0.5)  # a dark target: where the read noise's shift matters most
    values = PoissonGaussian(peak=10.0, read_sigma=0.05).elementwise(grid, k)
    assert grid[int(values.argmin())].item() == pytest.approx(-0.5, abs=1e-3)
    assert data_term("poisson_gaussian", peak=3.0, read_sigma=0.1) == PoissonGaussian(3.0, 0.1)


def test_photon_noise_simulation_has_the_model_variance():
    flat = np.full((200, 200, 1), 0.4)
    y = add_photon_noise(flat, 25.0, read_sigma=10.0, seed=3, clip=False)
    assert y.mean() == pytest.approx(0.4, abs=0.003)
    assert y.var() == pytest.approx(0.4 / 25 + (10 / 255) ** 2, rel=0.03)


def test_the_photon_level_is_estimated_from_one_image():
    ramp = np.linspace(0.05, 0.95, 96)[None, :, None] * np.ones((96, 1, 1))
    rng = np.random.default_rng(0)
    counts = np.clip(rng.poisson(ramp * 30) / 30, 0, 1)
    assert estimate_photon_noise(counts, read_noise=False).peak == pytest.approx(30, rel=0.1)
    read = np.clip(counts + rng.normal(0, 8 / 255, counts.shape), 0, 1)
    assert estimate_photon_noise(read, peak=30.0).read_sigma * 255 == pytest.approx(8, rel=0.25)
    with pytest.raises(ValueError, match="too few"):
        estimate_photon_noise(counts[:16, :16])
    obs = linr.noisy(counts, noise="poisson")  # Python: the same estimate, as a data term
    assert isinstance(obs.fidelity, Poisson) and obs.fidelity.peak == pytest.approx(30, rel=0.1)
    with pytest.raises(InputError, match="give --peak"):
        linr.noisy(counts[:16, :16], noise="poisson")


@pytest.mark.parametrize("argv, message", [
    (["--noise", "laplace"], "argument --noise: invalid choice: 'laplace'"),
    (["--noise", "poisson", "--peak", "0"], "argument --peak: expected a positive number, got '0'"),
    (["--noise", "poisson", "--peak", "nan"], "argument --peak: expected a positive number, got 'nan'"),
    (["--noise", "poisson-gaussian", "--peak", "9", "--read-noise", "-1"],
     "argument --read-noise: expected a number >= 0, got '-1'"),
    (["--peak", "9"], "peak (--peak) needs noise 'poisson' or 'poisson-gaussian' (--noise)"),
    (["--noise", "poisson", "--peak", "9", "--read-noise", "2"], "read noise (--read-noise) needs noise 'poisson-gaussian' (--noise)"),
    (["--noise", "poisson"], "cannot estimate the photon noise: too few"),  # 12 px: give --peak
])
def test_bad_noise_options_are_one_line_before_the_fit(tmp_path, capsys, clean, argv, message):
    write_image(tmp_path / "n.png", add_photon_noise(clean[:12, :12], 20.0, seed=0))
    err = run_err(capsys, ["restore", "--noisy", str(tmp_path / "n.png"), *argv, "-o",
                           str(tmp_path / "o.png"), "--steps", "2", "--width", "16", "--depth", "2"])
    assert message in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["--noise", "poisson", "--lowres", "{n}"], "--noise needs --noisy"),
    (["--peak", "50", "--blurred", "{n}", "--kernel", "gaussian:5:1.0"],  # a new user's blurred counts
     "--peak needs --noisy: the noise model is a noisy photo's; a blurred, low-res or masked photo is fitted by "
     "squared error whatever its noise (photon counts too: a blurred photo's noise level is measured on it)"),
    (["degrade", "{c}", "--poisson", "0"], "argument --poisson: expected a positive number"),
    (["degrade", "{c}", "--noise", "20", "--read-noise", "3"], "--read-noise needs --poisson"),
])
def test_noise_options_without_their_target(tmp_path, capsys, clean, argv, message):
    write_image(tmp_path / "c.png", clean)
    argv = [a.format(n=tmp_path / "c.png", c=tmp_path / "c.png") for a in argv]
    command = argv if argv[0] == "degrade" else ["restore", *argv, "--steps", "2", "--width", "16"]
    assert message in run_err(capsys, [*command, "-o", str(tmp_path / "o.png")])


def test_degrade_then_restore_photon_noise_with_automatic_stopping(tmp_path, capsys, clean):
    noisy, out, report = tmp_path / "noisy.png", tmp_path / "out.png", tmp_path / "r.json"
    assert main(["degrade", _write(tmp_path, clean), "-o",
                 str(noisy), "--poisson", "20", "--read-noise", "4"]) == 0
    assert "photon noise, peak 20 photons, read noise 4/255" in capsys.readouterr().out
    assert main(["restore", "--noisy", str(noisy), "--noise", "poisson-gaussian", "--peak", "20",
                 "--read-noise", "4", "--photon-method", "likelihood", "-o", str(out), "--report", str(report),
                 "--steps", "12", "--width", "16", "--depth", "2", "--device", "cpu", "--quiet"]) == 0, \
        capsys.readouterr().err
    data = json.loads(report.read_text())
    term = data["settings"]["observations"][0]["data_term"]
    assert term == {"name": "poisson_gaussian", "peak": 20.0, "read_sigma": pytest.approx(4 / 255),
                    "saturated": term["saturated"], "stop_on": "squared_error", "method": "likelihood"}
    assert data["settings"]["photon"] == {"method": "likelihood"}
    assert term["saturated"] == bool(read_image(noisy)[0].max() == 1.0)  # clipped at white or not
    assert data["settings"]["stop"]["name"] == "holdout"  # automatic stopping, on this data term
    assert read_image(out)[0].shape == clean.shape


def _write(folder, image):
    path = folder / "clean.png"
    write_image(path, image)
    return str(path)


def test_zero_counts_are_counts_not_clipping_without_read_noise():
    # at 10 photons many 2x2 blocks of a photo's darker half hold a zero count: a true count of
    # pure Poisson noise, not a clipped value, so its brightness bins are used (they were left
    # out, and too few bins remained to estimate from on this crop)
    clean = crop(load("set9/kodim12.png"), 64)
    for seed in range(3):
        found = estimate_photon_noise(add_photon_noise(clean, 10.0, seed=seed), read_noise=False)
        assert found.peak == pytest.approx(10, rel=0.15)


def test_bench_photon_rows_resume_and_table(tmp_path, capsys):
    from .conftest import DATA

    if not (DATA / "set9" / "house.png").exists():
        pytest.skip("test data not found")
    jobs = tmp_path / "photon.jsonl"
    argv = ["bench", "photon", "--data", str(DATA), "--images", "set9/house,set9/f16:grey", "--peaks", "30",
            "--crop", "64", "--width", "16", "--depth", "2", "--steps", "25", "--threads", "1",
            "--methods", "anscombe-nlm,gaussian,poisson", "--jobs", str(jobs)]
    assert main(argv) == 0
    rows = [json.loads(line) for line in jobs.read_text().splitlines()]
    assert [(r["image"], r["method"]) for r in rows] == [
        (i, m) for i in ("set9/house", "set9/f16:grey") for m in ("anscombe-nlm", "gaussian", "poisson")]
    assert [r["size"] for r in rows[::3]] == [[64, 64, 3], [64, 64, 1]]
    for r in rows:
        if r["method"] == "anscombe-nlm":
            assert r["psnr"] > r["noisy_psnr"] + 3  # the classical reference denoises
        else:  # (25 steps of a tiny network: far from converged)
            # the returned iterate is one of the fit's steps, so never above the best of them
            assert r["psnr_unclipped"] <= r["oracle_psnr"] + 1e-4
            assert 1 <= r["stop_step"] <= r["steps_run"] <= 25
    assert rows[2]["data_term"]["name"] == "poisson"
    out = capsys.readouterr().out
    assert "| image | peak | clip at | noisy | gaussian | poisson | anscombe-nlm | poisson - gaussian |" in out
    assert main(argv) == 0  # a rerun resumes: nothing is fitted again
    assert len(jobs.read_text().splitlines()) == 6
    assert "| set9/f16:grey | 30 | 1 |" in capsys.readouterr().out
    # clipped at 2 instead of 1: other noisy images (values above 1 kept), so other rows
    assert main([*argv[:-2], "--methods", "anscombe-nlm", "--clip-at", "2", "--jobs", str(jobs)]) == 0
    extra = [json.loads(line) for line in jobs.read_text().splitlines()][6:]
    assert [r["clip_at"] for r in extra] == [2.0, 2.0]
    assert rows[3]["clipped"] > 0.01 and extra[1]["clipped"] == 0.0  # f16's white areas
    assert extra[1]["psnr"] != rows[3]["psnr"]  # the reference saw the counts above 1


def test_anscombe_reference_is_unbiased_at_low_counts():
    from linr.bench.photon import anscombe_denoise

    flat = np.full((96, 96, 1), 0.2)  # 2 photons a pixel at peak 10: the naive inverse is biased
    noisy = add_photon_noise(flat, 10.0, seed=4)
    assert float(anscombe_denoise(noisy, 10.0).mean()) == pytest.approx(0.2, rel=0.05)


@pytest.mark.parametrize("argv, message", [
    (["--images", "set9/house:sepia"], "image 'set9/house:sepia': expected FOLDER/NAME or FOLDER/NAME:grey"),
    (["--images", "set9/nothing"], "image 'set9/nothing': no file"),
    (["--peaks", "10,x"], "--peaks '10,x': expected numbers"),
    (["--methods", "dip"], "unknown method 'dip'"),
    (["--clip-at", "3"], "--clip-at 3: between 1 and 2"),
])
def test_bench_photon_bad_options_are_one_line(tmp_path, capsys, argv, message):
    from .conftest import DATA

    err = run_err(capsys, ["bench", "photon", "--data", str(DATA), "--jobs", str(tmp_path / "j.jsonl"), *argv])
    assert message in err
    assert not (tmp_path / "j.jsonl").exists()


def test_a_photo_clipped_at_ten_photons_still_gives_its_photon_level():
    # a quarter of baby's 128-px crop is white at 10 photons: its bright bins are left out, and a
    # line through the origin needs two of the rest (three were asked before: the estimate failed)
    image = crop(load("set5/baby.png"), 128)
    noisy = np.round(add_photon_noise(image, 10.0, seed=0) * 255) / 255
    assert np.mean(noisy >= 1) > 0.2
    assert estimate_photon_noise(noisy, read_noise=False).peak == pytest.approx(10.0, rel=0.1)
    with pytest.raises(ValueError, match="in 3 bins needed"):  # with read noise: two parameters
        estimate_photon_noise(noisy, read_noise=True)


def test_dim_integer_counts_with_photon_noise_are_fitted_on_their_own_bits(tmp_path):
    """A microscopist's 16-bit counts (up to about 310 of 65535) restored for photon noise are
    mapped 0..511 (the low bits they fill; never their maximum, which would read as clipped at
    white), with --peak / --read-noise converted to that top (still photons at the type's white
    as given) and said; Gaussian noise, a given range, and a photo that uses its range keep the
    type's range."""
    import tifffile

    from linr.scene import load_scene

    rng = np.random.default_rng(0)
    counts = rng.poisson(np.linspace(5, 300, 32 * 32).reshape(32, 32)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "counts.tif", counts)
    top = int(counts.max())
    assert 256 <= top < 511
    notes: list[str] = []
    obs, infos, _ = load_scene({"noisy": str(tmp_path / "counts.tif")},
                               {"noise": "poisson-gaussian", "peak": 300.0, "read_noise": 2.0}, notes=notes)
    assert (infos[0].value_range.low, infos[0].value_range.high, infos[0].value_range.rule) == (0.0, 511.0, "bits")
    assert np.allclose(obs[0].image[..., 0], counts / 511.0, atol=1e-6)
    assert obs[0].fidelity.peak == pytest.approx(300.0 * 511 / 65535)  # photons unchanged
    assert obs[0].fidelity.read_sigma == pytest.approx(2.0 / 255 * 65535 / 511)
    assert not obs[0].fidelity.saturated
    line = next(n for n in notes if "reach only" in n)
    assert f"reach only {top} of 65535: mapped 0..511 -> [0, 1] (the 9 low bits the data fill)" in line
    assert "--peak 300 (photons at 65535, the type's white) is 2.34 at 511; if the values are photon counts, " \
           "--peak 65535 says so" in line and "--read-noise 2 (of 65535 as 255) is 256 of 511 as 255" in line
    assert not any("mapped by the full 16-bit range" in n for n in notes), notes
    for options, range_ in (({"noise": "poisson"}, (0, 65535)), ({"noise": "gaussian"}, None)):
        notes = []
        _, infos, _ = load_scene({"noisy": str(tmp_path / "counts.tif")}, options, notes=notes, value_range=range_)
        assert infos[0].value_range.rule != "bits" and not any("low bits" in n for n in notes), notes
    tifffile.imwrite(tmp_path / "bright.tif", (counts.astype(np.uint32) * 200).astype(np.uint16))
    notes = []
    _, infos, _ = load_scene({"noisy": str(tmp_path / "bright.tif")}, {"noise": "poisson"}, notes=notes)
    assert infos[0].value_range.rule == "dtype" and not any("low bits" in n for n in notes), notes


def test_dim_counts_restored_by_the_photon_likelihood_keep_their_brightness(tmp_path, capsys):
    """Counts up to about 60 of 65535 restored by the photon likelihood came back 0.3x too dark
    (one photo) or 4-6x too bright (given --peak; a burst) where the fit took the type's range;
    on their own bits the restored mean is the photo's, in its units (16-bit, the same counts)."""
    import tifffile

    rng = np.random.default_rng(1)
    scene = 20.0 + 30.0 * np.add.outer(np.sin(np.arange(32) / 5.0), np.cos(np.arange(32) / 7.0)) ** 2 / 4
    for k in range(2):
        tifffile.imwrite(tmp_path / f"f{k}.tif", rng.poisson(scene).astype(np.uint16))
    out = tmp_path / "out.tif"
    assert main(["restore", "--noisy", str(tmp_path / "f*.tif"), "--noise", "poisson", "--photon-method",
                 "likelihood", "-o", str(out), "--device", "cpu", "--quiet"]) == 0, capsys.readouterr().err
    restored = tifffile.imread(out)
    assert restored.dtype == np.uint16
    assert restored.mean() == pytest.approx(scene.mean(), rel=0.1)
    tifffile.imwrite(tmp_path / "ref.tif", np.round(scene).astype(np.uint16))
    assert main(["restore", "--noisy", str(tmp_path / "f0.tif"), "--noise", "poisson", "--reference",
                 str(tmp_path / "ref.tif"), "-o", str(tmp_path / "one.tif"), "--device", "cpu", "--steps", "20"]) == 0
    line = next(t for t in capsys.readouterr().out.splitlines() if t.startswith("PSNR"))
    hint = re.search(r"as linr metrics --range=(0:\d+) measures", line)
    assert hint, line
    assert main(["metrics", f"--range={hint[1]}", str(tmp_path / "ref.tif"), str(tmp_path / "one.tif")]) == 0
    measured = json.loads(capsys.readouterr().out)["psnr"]
    as_written = re.search(r"; ([\d.]+) dB as written", line) or re.search(r"PSNR ([\d.]+) dB", line)
    assert measured == pytest.approx(float(as_written[1]), abs=0.01), line  # the file's values: rounded counts
    assert np.mean((restored - scene) ** 2) < np.mean((rng.poisson(scene) - scene) ** 2)


def test_a_given_photon_level_far_from_the_measured_one_is_said(tmp_path):
    """A microscopist's --peak 127 on counts up to 78 (0.25 photons at the 16-bit white) came back 41%
    too bright, and a simulated FITS kept its camera's GAIN (846 photons at white for 20): a note
    where the given level is over 3x off the one the noise says; none where it agrees."""
    import tifffile

    from linr.scene import load_scene

    rng = np.random.default_rng(7)
    counts = rng.poisson(np.linspace(5, 300, 64 * 64).reshape(64, 64)).astype(np.uint16)
    tifffile.imwrite(tmp_path / "c.tif", counts)
    for peak, said in ((300.0, True), (65535.0, False), (20000.0, True)):
        notes: list[str] = []
        load_scene({"noisy": str(tmp_path / "c.tif")}, {"noise": "poisson", "peak": peak}, notes=notes)
        lines = [n for n in notes if "and its noise says about" in n]
        assert bool(lines) == said, notes
        if said:
            assert ("too smooth and too bright" in lines[0]) == (peak < 65535)


def test_a_dim_16_bit_blurred_photo_is_deblurred_on_its_own_bits(tmp_path):
    """A new user's blurred photon counts up to 58 of 65535, mapped by the type, measured 0.5/255 of
    noise: no early stop, 2000 steps, and 2.3 dB under the blurred photo. A blurred photo's dim
    integers are mapped by the bits they fill, whatever the noise model, so its noise is measured on
    the fit's scale (here: the held-out stop)."""
    import tifffile
    from scipy import ndimage

    from linr.operators import gaussian_kernel
    from linr.scene import load_scene
    from linr.tasks import noisy_blur

    rng = np.random.default_rng(1)
    clean = ndimage.zoom(rng.random((8, 8)), 4, order=1)
    counts = rng.poisson(50 * ndimage.convolve(clean, gaussian_kernel(7, 1.5), mode="reflect")).astype(np.uint16)
    tifffile.imwrite(tmp_path / "blurred.tif", counts)
    notes: list[str] = []
    obs, infos, _ = load_scene({"blurred": str(tmp_path / "blurred.tif")}, {"kernel": "gaussian:7:1.5"}, notes=notes)
    top = int(counts.max())
    assert (infos[0].value_range.rule, infos[0].value_range.high) == ("bits", 63.0 if top < 64 else 127.0)
    assert any(f"reach only {top} of 65535" in n and "the deblurring measures their noise" in n for n in notes), notes
    assert noisy_blur(obs)  # its noise, on the fit's scale, is far above 3/255
    _, infos, _ = load_scene({"blurred": str(tmp_path / "blurred.tif")}, {"kernel": "gaussian:7:1.5"},
                             value_range=(0, 65535))
    assert infos[0].value_range.rule != "bits"  # a given range is kept


def test_degrade_blurs_then_counts_photons_in_one_command(tmp_path, capsys, clean):
    """A microscopist simulating a blurred photo with photon noise had to run degrade twice (--blur
    and --poisson could not go together): --blur with --poisson is the blurred image's photons."""
    import tifffile

    from linr.kinds import parse_kernel
    from linr.simulate import add_photon_noise, blur_image

    tifffile.imwrite(tmp_path / "c.tif", clean.astype(np.float32))
    out = tmp_path / "b.tif"
    assert main(["degrade", str(tmp_path / "c.tif"), "-o", str(out), "--blur", "gaussian:5:1.0", "--poisson", "50",
                 "--seed", "3"]) == 0
    assert "circular blur gaussian:5:1.0 plus photon noise, peak 50 photons" in capsys.readouterr().out
    expected = add_photon_noise(blur_image(clean, parse_kernel("gaussian:5:1.0"), noise_sigma=0.0, seed=3), 50, seed=3)
    written = tifffile.imread(out)
    assert np.allclose(written.reshape(expected.shape), expected, atol=1e-6)
    for argv, message in ((["--noise", "10", "--poisson", "50"], "--poisson goes alone or after --blur, not with --noise"),
                          (["--blur", "gaussian:5:1.0", "--poisson", "50", "--blur-noise", "2"],
                           "--blur-noise and --poisson both give the blurred image's noise"),
                          ([], "give one of --noise, --downscale, --keep, --blur or --poisson")):
        assert message in run_err(capsys, ["degrade", str(tmp_path / "c.tif"), "-o", str(tmp_path / "x.tif"), *argv])
