"""Several frames of one kind (a burst): repeated observation flags, quoted globs and multi-image
TIFFs, each frame its own observation; their bad forms end in one line before any fit."""

from __future__ import annotations

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
from linr.simulate import add_gaussian_noise
from linr.tasks import resolve

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
    frames = data["settings"]["observations"]
    assert [o["kind"] for o in frames] == ["noisy"] * 3
    assert [o["weight"] for o in frames] == [0.1] * 3  # one weight for every frame of a kind
    assert read_image(tmp_path / "out.png")[0].shape == clean.shape


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
