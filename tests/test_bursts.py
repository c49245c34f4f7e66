"""Several frames of one kind (a burst): repeated observation flags, quoted globs and multi-image
TIFFs, each frame its own observation; their bad forms end in one line before any fit."""

from __future__ import annotations

import dataclasses
import json
import re

import numpy as np
import pytest
import tifffile

import linr
from linr.cli import main
from linr.errors import InputError
from linr.images import read_frames, read_image, write_image
from linr.scene import load_scene
from linr.simulate import add_gaussian_noise, add_photon_noise
from linr.tasks import measured_noise, resolve
from skimage.metrics import peak_signal_noise_ratio

from .conftest import crop, load, run_err

TINY = ["--width", "16", "--depth", "2", "--steps", "3", "--stop", "fixed", "--device", "cpu", "--quiet"]


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return crop(load("set9/house.png"), 16)


def _burst(folder, clean, count=3, sigma=50):
    paths = []
    for seed in range(count):
        path = folder / f"shot{seed}.png"
        write_image(path, add_gaussian_noise(clean, sigma, seed=seed))
        paths.append(path)
    return paths


def test_repeated_flags_and_a_glob_are_frames_of_one_fit(tmp_path, capsys, clean):
    a, b, c = _burst(tmp_path, clean)
    report = tmp_path / "r.json"
    argv = ["restore", "--noisy", str(a), "--noisy", str(tmp_path / "shot[12].png"), "-o",
            str(tmp_path / "out.png"), "--report", str(report), *TINY]
    assert main(argv) == 0, capsys.readouterr().err
    data = json.loads(report.read_text())
    assert data["inputs"] == [str(a), str(b), str(c)]
    # aligned Gaussian frames alone: restored as their mean, one photo (linr.stabilise)
    assert data["settings"]["clipping"]["frames_averaged"] == 3
    assert [o["kind"] for o in data["settings"]["observations"]] == ["noisy"]
    assert read_image(tmp_path / "out.png")[0].shape == clean.shape
    # registered by a translation, they are moved onto the first's grid and averaged the same way
    assert main([*argv, "--register", "translation", "--force"]) == 0, capsys.readouterr().err
    settings = json.loads(report.read_text())["settings"]
    assert settings["clipping"]["frames_averaged"] == 3 and [o["kind"] for o in settings["observations"]] == ["noisy"]
    assert settings["registration"][0] is None and all(t["method"] for t in settings["registration"][1:])
    # registered by a transform the fit learns, they are frames of one fit, each with the kind's weight
    assert main([*argv, "--register", "affine", "--force"]) == 0, capsys.readouterr().err
    frames = json.loads(report.read_text())["settings"]["observations"]
    assert [o["kind"] for o in frames] == ["noisy"] * 3
    assert [o["weight"] for o in frames] == [0.1] * 3  # one weight for every frame of a kind


def test_a_multi_image_tiff_is_a_burst_and_one_page_is_one_frame(tmp_path, clean):
    shots = np.stack([(add_gaussian_noise(clean, 50, seed=s) * 65535).round().astype(np.uint16)
                      for s in range(4)])
    tifffile.imwrite(tmp_path / "stack.tif", shots, photometric="rgb")
    tifffile.imwrite(tmp_path / "one.tif", shots[:1], photometric="rgb")
    observations, infos, inputs = load_scene({"noisy": tmp_path / "stack.tif"})
    assert len(observations) == 4 and inputs == [str(tmp_path / "stack.tif")]
    assert [i.path for i in infos][-1] == f"{tmp_path / 'stack.tif'}[4]" and infos[0].bit_depth == 16
    assert np.allclose(observations[2].image, shots[2] / 65535, atol=1e-6)
    assert len(load_scene({"noisy": tmp_path / "one.tif"})[0]) == 1
    assert len(read_frames(tmp_path / "one.tif")) == 1
    with pytest.raises(InputError, match="a TIFF stack of 4 images where one image is expected"):
        read_image(tmp_path / "stack.tif")  # a reference or a mask is one image


def test_python_frames_share_the_joint_weight_and_its_scale_changes_nothing(clean):
    frames = [linr.noisy(add_gaussian_noise(clean, 50, seed=s)) for s in range(3)]
    resolved, _ = resolve(frames, device="cpu")
    assert [o.weight for o in resolved] == [0.1, 0.1, 0.1]
    kw = dict(steps=4, stop="fixed", device="cpu", progress=False,
              model=linr.ModelConfig(width=16, depth=2))
    preset = linr.restore(frames, **kw)
    ones = linr.restore([linr.noisy(o.image, weight=1.0) for o in frames], **kw)
    # Adam's steps do not depend on the loss's scale (up to its epsilon): a common weight of 0.1
    # on every frame is the same fit as weight 1
    assert np.abs(preset.image - ones.image).max() < 1e-4


@pytest.mark.parametrize("case, message", [
    ("empty glob", r"nomatch\*\.png: no file matches this pattern"),
    ("sizes", "--noisy frames differ in size: .*shot0.png is 16x16, .*small.png is 12x12"),
    ("channels", "--noisy frames differ in channels: .*shot0.png has 3, .*grey.png has 1"),
    ("stack sizes", r"--noisy frames differ in size: .*pages.tif\[1\] is 16x16, .*pages.tif\[2\] is 8x8"),
    ("twice", "shot0.png: named twice"),
])
def test_bad_bursts_are_one_line_before_the_fit(tmp_path, capsys, clean, case, message):
    (a, *_), out = _burst(tmp_path, clean, count=1), tmp_path / "out.png"
    write_image(tmp_path / "small.png", clean[:12, :12])
    write_image(tmp_path / "grey.png", clean.mean(axis=2))
    tifffile.imwrite(tmp_path / "pages.tif", (clean[..., 0] * 255).astype(np.uint8))
    tifffile.imwrite(tmp_path / "pages.tif", np.zeros((8, 8), np.uint8), append=True)
    second = {"empty glob": str(tmp_path / "nomatch*.png"), "sizes": str(tmp_path / "small.png"),
              "channels": str(tmp_path / "grey.png"), "twice": str(tmp_path / "shot*.png")}
    argv = (["restore", "--noisy", str(tmp_path / "pages.tif")] if case == "stack sizes"
            else ["restore", "--noisy", str(a), "--noisy", second[case]])
    err = run_err(capsys, [*argv, "-o", str(out), *TINY])
    assert re.search(message, err), err
    assert not out.exists()


def _frames(clean, sigmas):
    return [add_gaussian_noise(clean, s, seed=k) for k, s in enumerate(sigmas)]


def test_a_much_noisier_frame_weighs_less_and_the_burst_restores_better():
    clean = crop(load("set9/house.png"), 24)
    frames = _frames(clean, [15, 15, 100])
    kw = dict(steps=150, stop="fixed", device="cpu", progress=False,
              model=linr.ModelConfig(width=32, depth=3))
    measured = linr.restore([linr.noisy(f) for f in frames], **kw)
    equal = linr.restore([linr.noisy(f, weight=0.1) for f in frames], **kw)  # the kind's weight
    # aligned frames alone are averaged (linr.stabilise) with the weights a joint fit gives them
    averaged = measured.settings["clipping"]
    weights = np.array(averaged["weights"], np.float64)
    sigmas = np.array(averaged["measured_sigmas"], np.float64)  # "sigmas": clipping's lowering undone
    # the measured levels are those of the frames' noise (clipping shrinks the 100 somewhat)
    actual = np.array([np.std(f.astype(np.float64) - clean) * 255 for f in frames])
    assert np.allclose(sigmas, actual, rtol=0.2), (sigmas, actual)
    # inverse variance, summing to 1
    assert weights.sum() == pytest.approx(1.0, abs=1e-3)
    assert weights[2] / weights[0] == pytest.approx((sigmas[0] / sigmas[2]) ** 2, rel=1e-2)  # both rounded
    assert equal.settings["clipping"]["weights"] == [0.3333] * 3
    # registered by a transform the fit learns, the joint fit weighs them the same way: inverse
    # variance, the paper's total (a translation: aligned, then averaged as above)
    joint, _ = resolve([linr.noisy(f) for f in frames], register="affine", device="cpu")
    joint_weights = np.array([o.weight for o in joint], np.float64)
    assert joint_weights.sum() == pytest.approx(0.3, rel=1e-9)
    assert joint_weights / joint_weights.sum() == pytest.approx(weights, abs=2e-3)
    assert None not in measured_noise([linr.noisy(f) for f in frames])  # each weight set from a measured level
    psnr_measured = peak_signal_noise_ratio(clean, np.clip(measured.image, 0, 1), data_range=1)
    psnr_equal = peak_signal_noise_ratio(clean, np.clip(equal.image, 0, 1), data_range=1)
    assert psnr_measured > psnr_equal + 1.0, (psnr_measured, psnr_equal)


def test_equal_levels_and_the_paper_preset_keep_the_kinds_weight():
    clean = crop(load("set9/house.png"), 48)
    same = [linr.noisy(f) for f in _frames(clean, [25, 25, 25])]
    assert measured_noise(same) == [None] * 3  # the estimates differ a little: not the frames
    assert [o.weight for o in resolve(same, device="cpu")[0]] == [0.1] * 3
    mixed = [linr.noisy(f) for f in _frames(clean, [10, 60])]
    assert [o.weight for o in resolve(mixed, preset="paper", device="cpu")[0]] == [0.1, 0.1]
    assert [o.weight for o in resolve(mixed, preset="fast", device="cpu")[0]] == [0.1, 0.1]
    default = [o.weight for o in resolve(mixed, device="cpu")[0]]
    assert default[0] > 0.15 and default[1] < 0.01
    # a weight given for the kind, a lone noisy frame and photon-noise frames are not measured
    assert measured_noise([linr.noisy(mixed[0].image, weight=1.0), mixed[1]]) == [None, None]
    assert resolve(mixed[:1], device="cpu")[0][0].weight == 1.0
    lowres = linr.lowres(clean[::4, ::4], 4)
    assert [o.weight for o in resolve([*mixed, lowres], device="cpu")[0]][2] == 1.0
    photon = [linr.noisy(f, noise="poisson", peak=p) for f, p in
              zip([add_photon_noise(clean, p, seed=p) for p in (5, 50)], (5, 50))]
    assert measured_noise(photon) == [None, None]


def test_a_frame_that_takes_nearly_all_of_the_mean_s_weight_is_asked_about(tmp_path, capsys):
    """A glob that took in a much cleaner copy (a new user's b*.png took blurred.png: 0.98 of the
    weight, 5.7 dB lost): its line asks whether it belongs; frames of like levels are not asked."""
    clean = crop(load("set9/house.png"), 48)
    for k, sigma in enumerate([25, 25, 2]):
        write_image(tmp_path / f"shot{k}.png", add_gaussian_noise(clean, sigma, seed=k))
    assert main(["restore", "--noisy", str(tmp_path / "shot*.png"), "-o", str(tmp_path / "o.png"), *TINY]) == 0
    out = capsys.readouterr().out
    assert re.search(r"frame 3 \(shot2\.png\) takes 9\d% of the mean's weight, its noise measured \d+\.\dx lower than the others'", out)
    assert "is it a frame of this burst" in out
    assert main(["restore", "--noisy", str(tmp_path / "shot[01].png"), "-o", str(tmp_path / "o2.png"), *TINY]) == 0
    assert "of the mean's weight" not in capsys.readouterr().out


def test_the_cli_reports_the_weights_and_one_line_of_noise_estimates(tmp_path, capsys):
    clean = crop(load("set9/house.png"), 48)
    for k, sigma in enumerate([10, 10, 80]):
        write_image(tmp_path / f"shot{k}.png", add_gaussian_noise(clean, sigma, seed=k))
    report = tmp_path / "r.json"
    assert main(["restore", "--noisy", str(tmp_path / "shot*.png"), "-o", str(tmp_path / "o.png"),
                 "--report", str(report), *TINY]) == 0
    said = capsys.readouterr()
    averaged = json.loads(report.read_text())["settings"]["clipping"]  # aligned: averaged, one photo
    assert averaged["weights"][2] < averaged["weights"][0] / 10
    levels = ", ".join(f"{s:.1f}" for s in averaged.get("measured_sigmas", averaged["sigmas"]))
    assert f"3 aligned frames averaged and restored as one photo (measured noise sigma {levels}" in said.out
    # frames registered by the fit are fitted jointly: one line of weights, each frame named beside its level
    assert main(["restore", "--noisy", str(tmp_path / "shot*.png"), "-o", str(tmp_path / "o.png"), "--force",
                 "--register", "affine", "--report", str(report), *TINY]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "weighed by their measured noise" in line]
    assert len(lines) == 1, err
    entries = json.loads(report.read_text())["settings"]["observations"]
    for k, entry in enumerate(entries):  # each frame named beside its level
        assert f"shot{k}.png sigma {entry['weight_from_sigma']:.1f} -> {entry['weight']:.3g}" in lines[0]
    assert entries[2]["weight"] < entries[0]["weight"] / 10
    # photon noise estimated on each of several frames: one line for the burst, not one per frame
    for k in range(3):
        write_image(tmp_path / f"photon{k}.png", add_photon_noise(clean, 20, seed=k))
    assert main(["restore", "--noisy", str(tmp_path / "photon*.png"), "--noise", "poisson", "-o",
                 str(tmp_path / "p.png"), *TINY]) == 0
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "noise estimated" in line]
    assert len(notes) == 1 and "from each of 3 frames: peak" in notes[0], err


def test_an_averaged_burst_measured_as_its_frames_say_is_stopped_by_the_sure_pick():
    """Three frames at sigma 25 average to a photo measured under linr.sure.MIN_SIGMA (which keeps
    the pick from photos whose texture the measure reads as noise): the held-out stop returned 1-2
    dB less there on 64-px crops (a new user's 35.58 dB against 37.34). Where the mean is measured
    as its frames' levels say (texture does not average out, noise does), it takes the pick; the
    same mean given as one photo does not, nor a textured burst measured well above its frames'
    level (head at sigma 10: the pick lost 0.21 dB there)."""
    from linr.noise import floored_noise_sigma
    from linr.stopping import SurePick
    from linr.sure import AVERAGED_AGREE, MIN_SIGMA
    from linr.tasks import _averaged_level, plan_restore

    def burst(name, sigma):
        clean = crop(load(name), 64)
        return [np.round(np.clip(add_gaussian_noise(clean, sigma, seed=k), 0, 1) * 255) / 255 for k in range(3)]

    frames = burst("set5/baby.png", 25)
    mean = np.mean(frames, axis=0)
    assert floored_noise_sigma(mean) * 255 < MIN_SIGMA
    plan = plan_restore([linr.noisy(f) for f in frames], device="cpu")
    level = _averaged_level(plan.route)
    frame_levels = [floored_noise_sigma(f) for f in frames]
    assert level == pytest.approx(np.sqrt(np.sum(np.square(frame_levels))) / 3, rel=1e-6)
    assert floored_noise_sigma(mean) <= AVERAGED_AGREE * level and isinstance(plan.rule, SurePick)
    assert not isinstance(plan_restore([linr.noisy(mean)], device="cpu").rule, SurePick)
    textured = burst("set5/head.png", 10)
    plan = plan_restore([linr.noisy(f) for f in textured], device="cpu")
    assert floored_noise_sigma(np.mean(textured, axis=0)) > AVERAGED_AGREE * _averaged_level(plan.route)
    assert not isinstance(plan.rule, SurePick)
    # one frame taking all the weight is that frame, texture and all: no test to pass (a reviewer's case)
    weighed = [dataclasses.replace(linr.noisy(f), weight=w) for f, w in zip(textured, (1.0, 0.0, 0.0))]
    plan = plan_restore(weighed, device="cpu")
    assert _averaged_level(plan.route) is None and not isinstance(plan.rule, SurePick)
