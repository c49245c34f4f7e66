"""Bursts in ``linr batch``: one scene per sub-folder of frames, or per multi-image TIFF; each
restored as ``linr restore`` restores that burst; bad layouts end in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch

from linr.batch import EXIT_SOME_FAILED
from linr.cli import main
from linr.images import read_image, write_image
from linr.simulate import add_gaussian_noise

from .conftest import crop, load, run_err

FIT = ["--width", "16", "--depth", "2", "--steps", "3", "--stop", "fixed", "--device", "cpu", "--quiet"]


def _manifest(folder: Path) -> dict[str, dict]:
    return {r["image"]: r for r in map(json.loads, (folder / "manifest.jsonl").read_text().splitlines())}


def _scene(size: int, index: int) -> np.ndarray:
    return crop(load("set9/peppers.png"), size, top=60 + 40 * index, left=80 + 30 * index)


def _restore_alone(tmp_path: Path, spec: str, name: str) -> np.ndarray:
    """What ``linr restore`` makes of one burst, with the batch's one thread."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["restore", "--noisy", spec, "-o", str(tmp_path / name), *FIT]) == 0
    finally:
        torch.set_num_threads(previous)
    return read_image(tmp_path / name)[0]


def test_a_folder_of_scene_folders_restores_each_as_one_burst(tmp_path, capsys):
    bursts = tmp_path / "bursts"
    counts = {"cat": 3, "dog": 2}
    for k, (name, count) in enumerate(counts.items()):
        (bursts / name).mkdir(parents=True)
        for seed in range(count):
            write_image(bursts / name / f"frame{seed}.png", add_gaussian_noise(_scene(16, k), 40, seed=seed))
    (bursts / "empty").mkdir()  # no frames: not a scene
    out = tmp_path / "out"
    assert main(["batch", str(bursts), "--task", "noisy", "-o", str(out), "--threads", "1", *FIT]) == 0
    records = _manifest(out)
    assert sorted(records) == ["cat", "dog"]
    for name, count in counts.items():
        record = records[name]
        assert record["status"] == "done"
        assert record["inputs"]["noisy"] == [str(bursts / name / f"frame{s}.png") for s in range(count)]
        # an aligned Gaussian burst is restored as its frames' mean (linr.stabilise)
        assert [o["kind"] for o in record["settings"]["observations"]] == ["noisy"]
        assert record["settings"]["clipping"]["frames_averaged"] == count
        alone = _restore_alone(tmp_path, str(bursts / name / "*.png"), f"{name}_alone.png")
        assert np.array_equal(read_image(out / f"{name}.png")[0], alone)
    # a rerun skips both (the inputs, lists of frames, are recorded and compared)
    capsys.readouterr()
    assert main(["batch", str(bursts), "--task", "noisy", "-o", str(out), "--threads", "1", *FIT]) == 0
    assert "2 images: 0 to restore, 2 already done" in capsys.readouterr().out


def test_multi_image_tiffs_are_one_scene_each_and_stack(tmp_path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    for k, name in enumerate(["a", "b"]):
        pages = np.stack([(add_gaussian_noise(_scene(16, k), 40, seed=s) * 255).round().astype(np.uint8)
                          for s in range(3)])
        tifffile.imwrite(stacks / f"{name}.tif", pages, photometric="rgb")
    out = tmp_path / "out"
    assert main(["batch", str(stacks), "--task", "noisy", "-o", str(out), "--threads", "1", "--stack", "2",
                 *FIT]) == 0
    records = _manifest(out)
    for name in ("a", "b"):
        assert records[name]["inputs"]["noisy"] == str(stacks / f"{name}.tif")
        # three frames, one scene: restored as their mean, stacked as restore_many takes the route
        assert records[name]["settings"]["clipping"]["frames_averaged"] == 3
        assert records[name]["run"]["stacked"] == 2  # two bursts of one shape fitted at once
        alone = _restore_alone(tmp_path, str(stacks / f"{name}.tif"), f"{name}_alone.png")
        # stacked fits equal single ones up to float rounding: within one 8-bit level
        assert np.abs(read_image(out / f"{name}.tif")[0] - alone).max() <= 1 / 255 + 1e-6  # TIFF in, TIFF out


def test_a_z_stack_is_restored_plane_by_plane_as_linr_restore_does(tmp_path, capsys):
    """A microscopist's Z-stack in a batch came back as one plane (its planes averaged as a burst),
    where ``linr restore`` restores each plane: now the same planes, a stack of as many, each
    frame's steps and metrics (and their mean) in the manifest; --frames joint keeps the burst,
    --frames separate splits any stack, and --register with it is refused."""
    stacks, refs = tmp_path / "stacks", tmp_path / "refs"
    stacks.mkdir()
    refs.mkdir()
    clean = np.stack([_scene(16, k)[..., 0] for k in range(3)])
    planes = np.stack([add_gaussian_noise(plane[..., None], 30, seed=k)[..., 0] for k, plane in enumerate(clean)])
    tifffile.imwrite(stacks / "z.tif", (planes * 65535).round().astype(np.uint16), imagej=True,
                     metadata={"axes": "ZYX"})
    tifffile.imwrite(refs / "z.tif", (clean * 65535).round().astype(np.uint16), imagej=True, metadata={"axes": "ZYX"})
    out = tmp_path / "out"
    assert main(["batch", str(stacks), "--task", "noisy", "-o", str(out), "--threads", "1",
                 "--reference-dir", str(refs), *FIT]) == 0
    record = _manifest(out)["z"]
    assert any("a Z-stack of 3 planes" in n for n in record["input_notes"])
    assert record["steps_run"] == [3, 3, 3] and record["settings"]["frames_separate"] == 3
    frames = [f["standard"]["psnr"] for f in record["metrics"]["frames"]]
    assert len(frames) == 3 and record["metrics"]["standard"]["psnr"] == pytest.approx(np.mean(frames))
    as_written = [f["psnr"] for f in record["metrics_as_written"]["frames"]]  # each 16-bit plane's
    assert record["metrics_as_written"]["bit_depth"] == 16 and len(as_written) == 3
    assert record["metrics_as_written"]["psnr"] == pytest.approx(np.mean(as_written))
    assert as_written == pytest.approx(frames, abs=0.01)  # 16 bits: within a hundredth of the values'
    written = tifffile.imread(out / "z.tif")
    assert written.shape == (3, 16, 16)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # each plane as linr restore restores it
        assert main(["restore", "--noisy", str(stacks / "z.tif"), "-o", str(tmp_path / "alone.tif"), *FIT]) == 0
    finally:
        torch.set_num_threads(previous)
    assert np.array_equal(written, tifffile.imread(tmp_path / "alone.tif"))
    assert main(["batch", str(stacks), "--task", "noisy", "-o", str(tmp_path / "joint"), "--threads", "1",
                 "--frames", "joint", *FIT]) == 0
    assert tifffile.imread(tmp_path / "joint" / "z.tif").shape == (16, 16)
    tifffile.imwrite(stacks / "t.tif", (planes * 255).round().astype(np.uint8), photometric="minisblack")  # a burst
    assert main(["batch", str(stacks), "--task", "noisy", "-o", str(tmp_path / "sep"), "--threads", "1",
                 "--frames", "separate", *FIT]) == 0
    assert tifffile.imread(tmp_path / "sep" / "t.tif").shape == (3, 16, 16)
    capsys.readouterr()
    assert run_err(capsys, ["batch", str(stacks), "--task", "noisy", "-o", str(tmp_path / "reg"), "--frames",
                            "separate", "--register", "translation", *FIT]).startswith(
        "linr: error: --register translation registers a scene's frames against its first, and --frames separate")


def test_scene_folders_pair_by_name_with_other_kinds(tmp_path):
    bursts, small = tmp_path / "bursts", tmp_path / "lr"
    small.mkdir()
    for k, name in enumerate(["cat", "dog"]):
        (bursts / name).mkdir(parents=True)
        clean = _scene(16, k)
        for seed in range(2):
            write_image(bursts / name / f"{seed}.png", add_gaussian_noise(clean, 40, seed=seed))
        write_image(small / f"{name}.png", clean[::4, ::4])
    out = tmp_path / "out"
    assert main(["batch", "--noisy", str(bursts), "--lowres", str(small), "--factor", "4", "-o", str(out),
                 "--threads", "1", *FIT]) == 0
    kinds = [o["kind"] for o in _manifest(out)["dog"]["settings"]["observations"]]
    assert kinds == ["noisy", "noisy", "lowres"]


@pytest.mark.parametrize("layout, message", [
    ("sizes", r"INPUT scene .*bursts/cat: frames differ in size: 0.png is 16x16, 1.png is 12x12 "
              r"\(width x height\)"),
    ("unpaired", r"files do not pair by name: --noisy: 1 without a match \(dog/\)"),
    ("output inside a scene", r"-o .*bursts/cat: a scene folder of INPUT .*bursts \(it holds frames\)"),
])
def test_bad_burst_layouts_are_one_line_before_anything(tmp_path, capsys, layout, message):
    bursts = tmp_path / "bursts"
    for name in ("cat", "dog"):
        (bursts / name).mkdir(parents=True)
        for seed in range(2):
            write_image(bursts / name / f"{seed}.png", add_gaussian_noise(_scene(16, 0), 40, seed=seed))
    argv = ["batch", str(bursts), "--task", "noisy"]
    out = tmp_path / "out"
    if layout == "sizes":
        write_image(bursts / "cat" / "1.png", _scene(16, 0)[:12, :12], force=True)
    elif layout == "unpaired":
        (tmp_path / "lr").mkdir()
        write_image(tmp_path / "lr" / "cat.png", _scene(16, 0)[::4, ::4])
        argv = ["batch", "--noisy", str(bursts), "--lowres", str(tmp_path / "lr"), "--factor", "4"]
    else:
        out = bursts / "cat"
    import re

    err = run_err(capsys, [*argv, "-o", str(out), *FIT])
    assert re.search(message, err), err
    if layout != "output inside a scene":
        assert not out.exists()


def test_a_stack_whose_pages_differ_fails_alone_in_one_line(tmp_path):
    stacks = tmp_path / "stacks"
    stacks.mkdir()
    tifffile.imwrite(stacks / "bad.tif", np.zeros((16, 16), np.uint8))
    tifffile.imwrite(stacks / "bad.tif", np.zeros((8, 8), np.uint8), append=True)
    pages = np.stack([(add_gaussian_noise(_scene(16, 0)[..., 0], 40, seed=s) * 255).round().astype(np.uint8)
                      for s in range(2)])
    tifffile.imwrite(stacks / "good.tif", pages)
    out = tmp_path / "out"
    assert main(["batch", str(stacks), "--task", "noisy", "-o", str(out), "--threads", "1", *FIT]) == 4
    records = _manifest(out)
    assert records["good"]["status"] == "done"
    assert records["bad"]["status"] == "failed"
    assert records["bad"]["error"] == (f"--noisy frames differ in size: {stacks / 'bad.tif'}[1] is 16x16, "
                                       f"{stacks / 'bad.tif'}[2] is 8x8 (width x height)")


def test_a_folder_of_images_with_sub_folders_says_what_it_left_unread(tmp_path, capsys):
    noisy = tmp_path / "noisy"
    (noisy / "old").mkdir(parents=True)
    write_image(noisy / "x.png", add_gaussian_noise(_scene(16, 0), 40, seed=0))
    write_image(noisy / "old" / "y.png", add_gaussian_noise(_scene(16, 1), 40, seed=0))
    out = tmp_path / "out"
    assert main(["batch", str(noisy), "--task", "noisy", "-o", str(out), "--threads", "1", *FIT]) == 0
    err = capsys.readouterr().err
    assert "sub-folder(s) with images (old) are not read" in err, err
    assert sorted(_manifest(out)) == ["x"]


def test_folders_two_levels_down_are_named_when_left_unread(tmp_path, capsys):
    noisy = tmp_path / "noisy"
    for scene in ("night1/raw", "night2"):
        (noisy / scene).mkdir(parents=True)
        for i in (0, 1):
            write_image(noisy / scene / f"f{i}.png", add_gaussian_noise(_scene(16, i), 40, seed=i))
    out = tmp_path / "out"
    assert main(["batch", str(noisy), "--task", "noisy", "-o", str(out), "--threads", "1", *FIT]) == 0
    err = capsys.readouterr().err
    assert "1 folder(s) two levels down hold images (night1/raw) and are not read" in err, err
    assert sorted(_manifest(out)) == ["night2"]
    inside = noisy / "results" / "run1"  # a batch's own output folder inside its input: never named
    assert main(["batch", str(noisy), "--task", "noisy", "-o", str(inside), "--threads", "1", *FIT]) == 0
    assert main(["batch", str(noisy), "--task", "noisy", "-o", str(inside), "--threads", "1", *FIT]) == 0
    assert "results/run1" not in capsys.readouterr().err
    # with no scene one level down, nothing would be restored: refused, naming them
    for frame in (noisy / "night2").iterdir():
        frame.unlink()
    (noisy / "night2").rmdir()
    err = run_err(capsys, ["batch", str(noisy), "--task", "noisy", "-o", str(tmp_path / "out2"), *FIT])
    assert "no images, nor sub-folders of images" in err and "night1/raw" in err
    assert not (tmp_path / "out2").exists()


def test_frames_that_do_not_line_up_are_registered_per_scene(tmp_path, capsys):
    """``--register translation``: each scene's frames after the first get a shift (moved onto
    the first's grid before their mean: linr.stabilise.aligned_burst), recorded in the manifest; the output is what ``linr restore --register`` makes of the
    burst; the setting is part of the batch's key (a rerun without it restores again)."""
    bursts = tmp_path / "bursts"
    clean = crop(load("set9/peppers.png"), 40, top=100, left=100)
    for name, shift in (("near", 2), ("far", 3)):
        (bursts / name).mkdir(parents=True)
        for k in range(2):
            frame = np.roll(clean, k * shift, axis=1)[4:-4, 4:-4]
            write_image(bursts / name / f"frame{k}.png", add_gaussian_noise(frame, 10, seed=k))
    (bursts / "single").mkdir()
    write_image(bursts / "single" / "frame0.png", add_gaussian_noise(clean, 10, seed=0))
    out = tmp_path / "out"
    args = ["batch", str(bursts), "--task", "noisy", "-o", str(out), "--threads", "1", "--stack", "2",
            "--register", "translation", *FIT]
    assert main(args) == EXIT_SOME_FAILED  # one scene failed, the others restored
    records = _manifest(out)
    assert records["single"]["status"] == "failed"
    assert "registration needs at least two observations" in records["single"]["error"]
    for name in ("near", "far"):
        assert records[name]["status"] == "done"
        reference, fitted = records[name]["settings"]["registration"]
        assert reference is None and fitted["name"] == "translation"  # the second frame's shift
        assert abs(fitted["shift_x"] + {"near": 2, "far": 3}[name]) < 0.3 and abs(fitted["shift_y"]) < 0.3
        previous = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            assert main(["restore", "--noisy", str(bursts / name / "*.png"), "-o", str(tmp_path / f"{name}.png"),
                         "--register", "translation", *FIT]) == 0
        finally:
            torch.set_num_threads(previous)
        assert np.array_equal(read_image(out / f"{name}.png")[0], read_image(tmp_path / f"{name}.png")[0])
    capsys.readouterr()  # the setting is part of the key: without it, the finished images are not reused
    assert main(["batch", str(bursts), "--task", "noisy", "-o", str(out), "--threads", "1", *FIT]) == 2
    assert "made with other settings (register)" in capsys.readouterr().err


def test_a_frame_left_out_of_a_burst_s_mean_is_said_on_its_line(tmp_path, capsys):
    """A burst whose second frame moved, without ``--register``: restored from the first frame
    alone (the mean would blur what moved), which the image's line and its record say, as
    ``linr restore`` does (it was only in the manifest's settings); so is a frame that takes nearly
    all of a mean's weight."""
    bursts = tmp_path / "bursts" / "moved"
    bursts.mkdir(parents=True)
    clean = crop(load("set9/peppers.png"), 40, top=100, left=100)
    for k in range(2):
        write_image(bursts / f"frame{k}.png", add_gaussian_noise(np.roll(clean, 3 * k, axis=1)[4:-4, 4:-4], 10, seed=k))
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "bursts"), "--task", "noisy", "-o", str(out), "--threads", "1",
                 *[a for a in FIT if a != "--quiet"]]) == 0
    said = "frame 2 (frame1.png) of the burst shifted against the first (by up to 3.0 px) and left out"
    assert said in capsys.readouterr().err
    assert said in _manifest(out)["moved"]["burst_note"]
    copy = tmp_path / "more" / "copy"  # a much cleaner copy among the frames: asked about too
    copy.mkdir(parents=True)
    house = crop(load("set9/house.png"), 48)
    for k, sigma in enumerate([25, 25, 2]):
        write_image(copy / f"shot{k}.png", add_gaussian_noise(house, sigma, seed=k))
    assert main(["batch", str(tmp_path / "more"), "--task", "noisy", "-o", str(tmp_path / "out2"), "--threads", "1",
                 *[a for a in FIT if a != "--quiet"]]) == 0
    assert "frame 3 (shot2.png) takes 9" in capsys.readouterr().err
    assert "is it a frame of this burst" in _manifest(tmp_path / "out2")["copy"]["burst_note"]


def test_register_with_tiles_is_refused_before_anything_is_created(tmp_path, capsys):
    out = tmp_path / "out"
    err = run_err(capsys, ["batch", str(tmp_path), "--task", "noisy", "-o", str(out), "--register",
                           "affine", "--tile", "64", *FIT])  # learned by the fit (a translation: aligned first)
    assert "registration (--register) needs one fit of the whole image" in err
    assert not out.exists()


def test_webp_and_gif_files_are_found_and_an_animation_is_one_burst(tmp_path, capsys):
    """A batch skipped WebP and GIF files without a word (and a folder of them 'matched no
    files') though ``linr restore`` reads them: found now, an animated GIF one scene of its frames."""
    from PIL import Image

    photos = tmp_path / "photos"
    photos.mkdir()
    frames = [Image.fromarray((add_gaussian_noise(_scene(16, 0), 40, seed=s) * 255).round().astype(np.uint8))
              for s in range(3)]
    frames[0].save(photos / "anim.gif", save_all=True, append_images=frames[1:])
    frames[1].save(photos / "still.webp", lossless=True)
    out = tmp_path / "out"
    assert main(["batch", str(photos), "--task", "noisy", "-o", str(out), "--threads", "1", *FIT]) == 0
    records = _manifest(out)
    assert sorted(records) == ["anim", "still"] and all(r["status"] == "done" for r in records.values())
    assert records["anim"]["settings"]["clipping"]["frames_averaged"] == 3  # one burst, restored as its mean
    assert np.array_equal(read_image(out / "anim.png")[0],
                          _restore_alone(tmp_path, str(photos / "anim.gif"), "anim_alone.png"))
    assert main(["batch", str(photos / "*.webp"), "--task", "noisy", "-o", str(tmp_path / "out2"),
                 "--threads", "1", *FIT]) == 0


def test_a_burst_s_frames_are_named_as_read_beside_a_multi_image_file(tmp_path, capsys):
    """A scene folder holding a 2-page TIFF and a PNG is three frames: the PNG is frame 3 and its
    line says so (names were once taken one per file: 'frame 3' got no name or the wrong one)."""
    scene = tmp_path / "bursts" / "cat"
    scene.mkdir(parents=True)
    clean = crop(load("set9/peppers.png"), 40, top=100, left=100)
    pages = [np.round(np.clip(add_gaussian_noise(clean[4:-4, 4:-4], 10, seed=k), 0, 1) * 255).astype(np.uint8)
             for k in range(2)]
    tifffile.imwrite(scene / "a.tif", np.stack(pages), photometric="rgb")
    write_image(scene / "b.png", add_gaussian_noise(np.roll(clean, 3, axis=1)[4:-4, 4:-4], 10, seed=2))
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "bursts"), "--task", "noisy", "-o", str(out), "--threads", "1",
                 *[a for a in FIT if a != "--quiet"]]) == 0
    said = capsys.readouterr().err
    assert "frame 3 (b.png) of the burst shifted against the first" in said, said
    assert "frame 3 (b.png)" in _manifest(out)["cat"]["burst_note"]


def test_review_finds_batch_dim_counts_reference_and_a_tiled_mask_with_nothing_missing(tmp_path):
    """A review's finds: dim photon counts mapped by their low bits were measured in batch against a
    reference read by its type's range (PSNR 11.8 dB where restore said 39); a tiled batch image
    whose mask leaves nothing missing failed ('workers fit the tiles ...')."""
    rng = np.random.default_rng(5)
    (tmp_path / "in").mkdir()
    (tmp_path / "ref").mkdir()
    scene = 20.0 + 50.0 * _scene(48, 0)[..., 0]
    tifffile.imwrite(tmp_path / "in" / "a.tif", rng.poisson(scene).astype(np.uint16))
    tifffile.imwrite(tmp_path / "ref" / "a.tif", np.round(scene).astype(np.uint16))
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "in"), "--task", "noisy", "--noise", "poisson", "--reference-dir",
                 str(tmp_path / "ref"), "-o", str(out), *FIT]) == 0
    record = _manifest(out)["a"]
    assert any("the 7 low bits the data fill" in n for n in record["input_notes"])
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["restore", "--noisy", str(tmp_path / "in" / "a.tif"), "--noise", "poisson", "--reference",
                     str(tmp_path / "ref" / "a.tif"), "-o", str(tmp_path / "alone.tif"), "--report",
                     str(tmp_path / "r.json"), *FIT]) == 0
    finally:
        torch.set_num_threads(previous)
    alone = json.loads((tmp_path / "r.json").read_text())["metrics"]["standard"]["psnr"]
    assert record["metrics"]["standard"]["psnr"] == pytest.approx(alone, abs=1e-6)
    (tmp_path / "m").mkdir()
    write_image(tmp_path / "m" / "b.png", _scene(32, 1))
    write_image(tmp_path / "white.png", np.ones((32, 32), np.float32))
    assert main(["batch", str(tmp_path / "m"), "--task", "masked", "--mask", str(tmp_path / "white.png"), "-o",
                 str(tmp_path / "mo"), "--tile", "16", "--quiet", "--device", "cpu"]) == 0
    record = _manifest(tmp_path / "mo")["b"]
    assert record["status"] == "done" and record["steps_run"] == 0
