"""Observation kinds as a registry: a new kind is one entry in linr.kinds.KINDS, and it works
from `linr restore` and `linr batch` with nothing else changed."""

from __future__ import annotations

import json

import numpy as np
import pytest

import linr
from linr import kinds
from linr.cli import main
from linr.images import read_image, write_image
from linr.kinds import Kind, KindOption, Simulation
from linr.simulate import add_gaussian_noise

from .conftest import crop, load


def _build_boxlow(image, info, options, notes):
    """A low-res photo taken with a box filter (pixel binning, as a camera sensor does)."""
    obs = linr.lowres(image, options["bin"], kernel="box")
    return linr.Observation(obs.image, obs.operator, None, "binned"), []


def _simulate_binned(clean, params, seed):
    h, w = clean.shape[:2]
    f = params["factor"]
    return {"image": clean.reshape(h // f, f, w // f, f, -1).mean(axis=(1, 3))}


TOY = Kind("binned", "a binned (box-filtered) low-res image", "sr", False, _build_boxlow, (
    KindOption("--bin", "bin", "binning factor (default 2)", type=int, default=2),
), Simulation(_simulate_binned, lambda extras, image, p: _build_boxlow(image, None, {"bin": p["factor"]}, [])[0],
              lambda p: f"x{p['factor']} binning", seeded=False))


@pytest.fixture
def toy_kind(monkeypatch):
    monkeypatch.setitem(kinds.KINDS, "binned", TOY)  # the one line a new kind needs
    return TOY


@pytest.fixture(scope="module")
def clean():
    return crop(load("set5/butterfly.png"), 24, top=100, left=100)


def _binned(clean, factor):
    h, w = clean.shape[:2]
    return clean.reshape(h // factor, factor, w // factor, factor, 3).mean(axis=(1, 3))


def test_a_new_kind_works_from_restore(toy_kind, tmp_path, capsys, clean):
    write_image(tmp_path / "small.png", _binned(clean, 3), bit_depth=16)
    write_image(tmp_path / "noisy.png", add_gaussian_noise(clean, 25, seed=0), bit_depth=16)
    assert main(["restore", "--binned", str(tmp_path / "small.png"), "--bin", "3",
                 "--noisy", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "out.png"),
                 "--steps", "3", "--quiet", "--device", "cpu", "--report", str(tmp_path / "r.json"),
                 "--weight", "binned=0.5"]) == 0
    assert read_image(tmp_path / "out.png")[0].shape == (24, 24, 3)
    report = json.loads((tmp_path / "r.json").read_text())
    binned = report["settings"]["observations"][1]
    assert binned["kind"] == "binned" and binned["weight"] == 0.5
    # the automatic stop (a noisy observation is there) holds pixels out behind the kind's operator
    assert binned["operator"]["operators"][0] == {"name": "downsample", "factor": 3, "kernel": "box"}
    assert report["settings"]["observations"][0]["weight"] == 0.1  # the noisy one, joint
    capsys.readouterr()
    assert main(["restore", "--noisy", str(tmp_path / "noisy.png"), "--bin", "3", "-o",
                 str(tmp_path / "o2.png")]) == 2
    assert "--bin needs --binned" in capsys.readouterr().err


def test_a_new_kind_works_from_batch(toy_kind, tmp_path, capsys, clean):
    folder = tmp_path / "small"
    folder.mkdir()
    for name, shift in (("a", 0), ("b", 1)):
        write_image(folder / f"{name}.png", _binned(np.roll(clean, shift, axis=0), 2), bit_depth=16)
    out = tmp_path / "restored"
    assert main(["batch", str(folder), "--task", "binned", "--bin", "2", "-o", str(out),
                 "--steps", "2", "--device", "cpu", "--quiet"]) == 0
    records = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    done = {r["image"]: r for r in records if r.get("status") == "done"}
    assert set(done) == {"a", "b"}
    assert done["a"]["batch"]["options"] == {"bin": 2}
    assert done["a"]["settings"]["observations"][0]["operator"]["kernel"] == "box"
    assert read_image(out / "a.png")[0].shape == (24, 24, 3)


def test_kinds_say_whether_they_carry_noise(clean):
    assert linr.noisy(clean).carries_noise and not linr.lowres(clean[:8, :8], 2).carries_noise
    by_hand = linr.Observation(clean, linr.Identity(), kind="noisy")
    assert by_hand.carries_noise  # named like the kind
    assert set(kinds.KINDS) >= {"noisy", "lowres", "masked", "blurred"}
    assert {k.task for k in kinds.KINDS.values()} >= {"denoise", "sr", "inpaint", "deblur"}


def test_a_new_kind_is_simulated_by_the_bench(toy_kind, tmp_path, clean):
    from linr.bench.runner import BenchRun, Scene
    from linr.bench.spec import PROFILES, Corruption

    run = BenchRun(PROFILES["quick"], data=tmp_path, out=tmp_path / "out", device="cpu", plots=False,
                   log=lambda s: None)
    corruption = Corruption(("binned", "noisy"), factor=2)
    arrays, seeds = run.corrupt(Scene("toy", "toy.png", clean, "full"), corruption)
    assert arrays["binned"].shape == (12, 12, 3) and set(seeds) == {"noisy"}  # binning draws nothing
    obs = run.observations(arrays, corruption)
    assert [o.kind for o in obs] == ["binned", "noisy"] and obs[0].operator.kernel == "box"
    assert corruption.describe() == "x2 binning + noise sigma 25"


@pytest.mark.parametrize("array, says", [
    (np.array([["a", "b"], ["c", "d"]]), "kernel must hold real numbers, got <U1 values"),
    (np.ones((3, 3), complex), "kernel must hold real numbers"),
    (np.ones(3), "kernel must be a non-empty 2-D array"),
    (np.zeros((3, 3)), "kernel must have a positive sum"),
])
def test_a_kernel_file_of_the_wrong_values_is_one_line(tmp_path, array, says):
    from linr.errors import InputError

    path = tmp_path / "k.npy"
    np.save(path, array)
    with pytest.raises(InputError, match=says):
        kinds.parse_kernel(str(path))


def test_the_python_constructors_refuse_what_the_command_line_refuses():
    import linr
    from linr.errors import InputError

    photo = np.full((20, 20), 0.5, np.float32)
    with pytest.raises(InputError, match=r"the kernel \(25x25\) is as large as the blurred photo \(20x20\)"):
        linr.blurred(photo, np.ones((25, 25)))
    with pytest.raises(InputError, match="masked needs a mask"):
        linr.masked(photo, None)
    assert linr.blurred(photo, np.ones((25, 7))).operator is not None  # wider than the photo, not taller: kept
    grey = np.zeros((20, 20), np.float32)
    grey[::2] = 1.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    rgb[1::4, :, 0] = 1.0  # one channel of three on: its mean a third, below 0.5: missing
    same = linr.masked(photo, grey).operator.mask
    assert np.array_equal(linr.masked(photo, rgb).operator.mask, same)  # a colour mask: its channels' mean


def test_a_kernel_off_its_centre_or_with_a_floor_is_noted_and_a_blur_is_not(tmp_path, capsys):
    import numpy as np

    from linr.cli import main
    from linr.kinds import kernel_floor_note, kernel_offset_note
    from linr.operators import gaussian_kernel

    for width, sigma in [(25, 1.6), (81, 15.0), (15, 5.0), (9, 3.0), (24, 3.0)]:  # blurs, truncated or not
        k = gaussian_kernel(width, sigma)
        assert kernel_offset_note(k) is None and kernel_floor_note(k) is None, (width, sigma)
    line = np.zeros((15, 15))
    line[7, 2:13] = 1.0  # a motion blur
    assert kernel_offset_note(line) is None and kernel_floor_note(line) is None
    shifted = np.roll(gaussian_kernel(15, 1.5), 3, axis=0)
    assert "3.0 px from its centre (row 7, column 7)" in kernel_offset_note(shifted)
    hazy = gaussian_kernel(41, 2.0) / gaussian_kernel(41, 2.0).max() + 3 / 255
    assert "the kernel has a floor: its border is about 1.2% of its peak" in kernel_floor_note(hazy)
    rng = np.random.default_rng(0)
    from PIL import Image

    Image.fromarray((rng.random((48, 48, 3)) * 255).astype(np.uint8)).save(tmp_path / "b.png")
    np.save(tmp_path / "k.npy", gaussian_kernel(21, 1.5) / gaussian_kernel(21, 1.5).max() + 3 / 255)
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", str(tmp_path / "k.npy"), "-o",
                 str(tmp_path / "o.png"), "--steps", "1", "--width", "8", "--depth", "2", "--device", "cpu",
                 "--quiet", "--refine", "none"]) == 0
    assert f"linr: note: {tmp_path / 'k.npy'}: the kernel has a floor" in capsys.readouterr().err


def test_the_fast_preset_says_it_is_no_setting_for_deblurring(tmp_path, capsys):
    import numpy as np
    from PIL import Image

    from linr.cli import main

    Image.fromarray((np.random.default_rng(1).random((32, 32, 3)) * 255).astype(np.uint8)).save(tmp_path / "b.png")
    argv = ["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:5:1", "--steps", "1", "--width", "8",
            "--depth", "2", "--device", "cpu", "--quiet"]
    assert main([*argv, "-o", str(tmp_path / "o.png"), "--preset", "fast"]) == 0
    assert "--preset fast deblurs with a SIREN 7x128, mirrored edges (reflect)" in capsys.readouterr().err
    assert main([*argv, "-o", str(tmp_path / "p.png")]) == 0
    assert "--preset fast" not in capsys.readouterr().err


def test_an_off_centre_psf_on_a_background_floor_is_said_off_centre_too():
    """A microscopist's measured PSF, 2 px off centre and on a flat background, got only the floor's
    note (the floor pulled its centre of mass to the array's) and came back shifted by 2 px."""
    from linr.kinds import kernel_floor_note, kernel_offset_note
    from linr.operators import gaussian_kernel

    psf = np.zeros((15, 15))
    psf[3:12, 5:14] = gaussian_kernel(9, 1.5)  # its centre at row 7, column 9
    floored = psf + 0.002
    assert kernel_floor_note(floored) is not None
    assert "column 9.0 (0-based), 2.0 px from its centre" in kernel_offset_note(floored)
    assert kernel_offset_note(gaussian_kernel(15, 2.0) + 0.002) is None  # centred on a floor: only the floor's


def test_a_photo_too_thin_to_measure_its_noise_says_why_it_gets_no_defaults(tmp_path, capsys):
    """A 40x1 line scan was fitted by the paper's 7x256 with no prior and no refinement, and
    nothing said why: under 4 px a side its noise is not measured, which the defaults need."""
    from linr.scene import load_scene

    for shape, said in (((1, 40), True), ((3, 40), True), ((4, 40), False)):
        write_image(tmp_path / "line.png", np.linspace(0, 1, shape[0] * shape[1]).reshape(shape), force=True)
        notes: list[str] = []
        load_scene({"noisy": str(tmp_path / "line.png")}, notes=notes)
        line = f"line.png: 40x{shape[0]} (width x height): under 4 px a side its noise cannot be measured"
        assert any(line in n for n in notes) == said, notes
    notes = []
    load_scene({"noisy": str(tmp_path / "line.png")}, {"noise": "poisson", "peak": 10.0}, notes=notes)
    assert not any("cannot be measured" in n for n in notes)
