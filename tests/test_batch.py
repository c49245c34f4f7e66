"""linr batch: a folder with a corrupt file, resuming after Ctrl-C and after a kill, pairing of
joint inputs and masks, and the Ray backend against the local one. Tiny crops, few steps."""

from __future__ import annotations

import argparse

import re

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from linr import simulate
from linr.cli import main
from linr.images import read_image, write_image
from linr.metrics import evaluate

from .conftest import crop, load

SRC = Path(__file__).resolve().parents[1] / "src"
FAST = ["--device", "cpu", "--threads", "1", "--quiet"]


def _make_folder(root: Path, n: int, size: int = 16) -> Path:
    """n noisy crops (sigma 25) in root/noisy and their clean crops in root/clean."""
    image = load("set5/butterfly.png")
    (root / "noisy").mkdir(parents=True)
    (root / "clean").mkdir()
    for i in range(n):
        clean = crop(image, size, top=40 + 23 * i, left=30 + 17 * i)
        write_image(root / "clean" / f"img{i}.png", clean)
        write_image(root / "noisy" / f"img{i}.png", simulate.add_gaussian_noise(clean, 25, seed=i))
    return root


def _manifest(folder: Path) -> dict[str, dict]:
    lines = (folder / "manifest.jsonl").read_text().splitlines()
    return {r["image"]: r for r in map(json.loads, lines)}


def _comparable(records: dict[str, dict]) -> dict[str, dict]:
    """Records without what legitimately differs between runs: timings/host, and the folder."""
    out = {}
    for name, r in records.items():
        r = {k: v for k, v in r.items() if k not in ("run", "output")}
        out[name] = r
    return out


def _pixels(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: read_image(p)[0] for p in sorted(folder.glob("*.png"))}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    root = _make_folder(tmp_path_factory.mktemp("batch"), 4)
    (root / "noisy" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(60)))
    return root


@pytest.fixture(scope="module")
def local_run(folder) -> Path:
    out = folder / "out_local"
    code = main(["batch", str(folder / "noisy"), "--task", "noisy", "-o", str(out), "--steps", "3",
                 "--reference-dir", str(folder / "clean"), *FAST])
    assert code == 4  # one image failed, the others are done
    return out


def test_corrupt_file_fails_alone(folder, local_run, capsys):
    records = _manifest(local_run)
    assert sorted(records) == ["broken", "img0", "img1", "img2", "img3"]
    bad = records.pop("broken")
    assert bad["status"] == "failed" and "not a readable image" in bad["error"] and bad["output"] is None
    for name, r in records.items():
        assert r["status"] == "done" and r["error"] is None
        assert r["steps_run"] == r["stop_step"] == 3 and r["settings"]["seed"] == 0
        out, _ = read_image(r["output"])
        assert out.shape == (16, 16, 3)
        # The recorded metrics are of the unquantised output: the 8-bit file measures within 0.05 dB.
        ref, _ = read_image(folder / "clean" / f"{name}.png")
        assert abs(evaluate(ref, out)["psnr"] - r["metrics"]["standard"]["psnr"]) < 0.05
        # the file as written measured too, as linr restore reports it (batches had none before)
        written = r["metrics_as_written"]
        assert (written["bit_depth"], written["format"], written["convention"]) == (8, "png", "standard")
        assert written["psnr"] == pytest.approx(evaluate(ref, out)["psnr"], abs=1e-6)


def test_batch_output_equals_restore_of_one_image(folder, local_run):
    import torch

    import linr

    noisy, _ = read_image(folder / "noisy" / "img2.png")
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # as the batch fitted it (--threads 1)
    try:
        alone = linr.restore([linr.noisy(noisy)], steps=3, seed=0, device="cpu", progress=False)
    finally:
        torch.set_num_threads(previous)
    expected = np.round(np.clip(alone.image, 0, 1) * 255) / 255
    np.testing.assert_array_equal(read_image(local_run / "img2.png")[0], expected.astype(np.float32))


def test_rerun_skips_done_and_retries_failed(folder, local_run, capsys):
    before = _manifest(local_run)
    stamps = {p.name: p.stat().st_mtime_ns for p in local_run.glob("*.png")}
    (local_run / "img1.png").unlink()  # a finished image whose output disappeared is redone
    code = main(["batch", str(folder / "noisy"), "--task", "noisy", "-o", str(local_run), "--steps", "3",
                 "--reference-dir", str(folder / "clean"), *FAST])
    assert code == 4
    assert "5 images: 2 to restore, 3 already done" in capsys.readouterr().out
    after = _manifest(local_run)
    for name in ("img0", "img2", "img3"):
        assert after[name] == before[name]
        assert (local_run / f"{name}.png").stat().st_mtime_ns == stamps[f"{name}.png"]
    assert after["img1"]["run"] != before["img1"]["run"] and (local_run / "img1.png").exists()
    assert after["broken"]["status"] == "failed" and after["broken"]["run"] != before["broken"]["run"]
    assert _comparable(after) == _comparable(before)


def test_changed_settings_are_refused(folder, local_run, capsys):
    code = main(["batch", str(folder / "noisy"), "--task", "noisy", "-o", str(local_run), "--steps", "4",
                 "--reference-dir", str(folder / "clean"), *FAST])
    err = capsys.readouterr().err
    assert code == 2 and "other settings (steps)" in err and "--force" in err
    # Leaving the reference folder out is no change (it only adds metrics): tests/test_batch_inputs.py


def test_a_batch_made_without_the_default_prior_does_not_resume_under_it(folder, tmp_path, capsys, monkeypatch):
    """Denoising batches record the prior the defaults add (tv:auto): one made without a prior
    (as before the default had one, or with --prior none) is not silently mixed with it."""
    out = tmp_path / "out"
    base = ["batch", str(folder / "noisy" / "img0.png"), "--task", "noisy", "-o", str(out), "--steps", "2", *FAST]
    assert main([*base, "--prior", "none"]) == 0
    assert "prior" not in _manifest(out)["img0"]["batch"]  # as manifests made before the default prior
    assert main(base) == 2
    assert "other settings (prior)" in capsys.readouterr().err
    assert main([*base, "--prior", "none"]) == 0  # the same settings: resumes
    assert "1 already done" in capsys.readouterr().out
    assert main([*base, "--force"]) == 0
    record = _manifest(out)["img0"]
    assert record["batch"]["prior"] == "tv:auto-except-rgb-above128"  # the defaults' rule (the image is small: tv:auto)
    assert record["settings"]["prior_used"].startswith("tv:0.")
    assert main([*base, "--prior", "tv:0.1"]) == 2  # the rule is no --prior value: resume without one
    err = capsys.readouterr().err
    assert "other settings (prior)" in err and "no --prior to resume as made" in err
    # a batch made when the default gave tv:auto at every size (its manifest says tv:auto) does
    # not resume under the rule
    older = tmp_path / "older"
    older_base = [*base[:4], "-o", str(older), *base[6:]]
    monkeypatch.setattr("linr.tasks.default_prior_rule", lambda: "tv:auto")
    assert main(older_base) == 0
    monkeypatch.undo()
    assert _manifest(older)["img0"]["batch"]["prior"] == "tv:auto"
    capsys.readouterr()
    assert main(older_base) == 2
    err = capsys.readouterr().err
    assert "other settings (prior)" in err and "--prior tv:auto to resume as made" in err
    assert main([*older_base, "--prior", "tv:auto"]) == 0
    assert "1 already done" in capsys.readouterr().out
    from linr.batch.run import _resume_as_made

    # a rule of an earlier default (another size) is no --prior value: no hint that would be refused
    assert _resume_as_made("prior", "tv:auto-except-rgb-above96") == ""
    assert _resume_as_made("prior", None) == ", --prior none to resume as made"


def test_an_auto_prior_without_gaussian_noisy_images_is_refused_up_front(folder, tmp_path, capsys):
    for extra in (["--task", "masked", "--mask", str(folder / "noisy" / "img0.png")],
                  ["--task", "noisy", "--noise", "poisson", "--photon-method", "likelihood"]):
        code = main(["batch", str(folder / "noisy"), *extra, "-o", str(tmp_path / "o"), "--prior", "tv:auto", *FAST])
        err = capsys.readouterr().err
        assert code == 2 and "sets its weight from the Gaussian noise" in err and err.count("\n") == 1
        assert not (tmp_path / "o").exists()
    # photon noise through its Anscombe transform (the default) is restored as Gaussian noise
    from linr.batch import _has_gaussian_noisy, _prior_of

    photon = argparse.Namespace(noisy="n", noise="poisson", photon_method=None, preset=None, prior=None,
                                **{k: None for k in ("lowres", "masked", "blurred")})
    assert _has_gaussian_noisy(photon) and _prior_of(photon) is not None
    assert not _has_gaussian_noisy(argparse.Namespace(**{**vars(photon), "photon_method": "likelihood"}))
    assert not _has_gaussian_noisy(argparse.Namespace(**{**vars(photon), "lowres": "l"}))  # a joint fit: likelihood


def test_existing_foreign_output_is_not_overwritten(folder, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "img0.png").write_bytes(b"someone else's file")
    code = main(["batch", "--noisy", str(folder / "noisy" / "img*.png"), "-o", str(out), "--steps", "2", *FAST])
    assert code == 2 and "exists" in capsys.readouterr().err
    assert (out / "img0.png").read_bytes() == b"someone else's file"


# --- interruption -----------------------------------------------------------------------------

KILL_ARGS = ["--steps", "20", *FAST]


@pytest.fixture(scope="module")
def six(tmp_path_factory) -> Path:
    return _make_folder(tmp_path_factory.mktemp("six"), 6)


@pytest.fixture(scope="module")
def uninterrupted(six) -> Path:
    out = six / "out_full"
    assert main(["batch", str(six / "noisy"), "--task", "noisy", "-o", str(out), *KILL_ARGS]) == 0
    return out


def test_killed_run_resumes_to_the_same_manifest(six, uninterrupted, capsys):
    out = six / "out_killed"
    argv = [sys.executable, "-m", "linr", "batch", str(six / "noisy"), "--task", "noisy", "-o", str(out),
            *KILL_ARGS]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    manifest = out / "manifest.jsonl"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if manifest.exists() and len(manifest.read_text().splitlines()) >= 2:
                break
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # no chance to clean up: a crash or power cut
        proc.wait()
    killed = _manifest(out)
    assert 2 <= len(killed) < 6, "the run was not killed mid-way"
    code = main(["batch", str(six / "noisy"), "--task", "noisy", "-o", str(out), *KILL_ARGS])
    assert code == 0
    assert f"6 images: {6 - len(killed)} to restore, {len(killed)} already done" in capsys.readouterr().out
    resumed = _manifest(out)
    for name, record in killed.items():
        assert resumed[name] == record  # nothing redone
    assert _comparable(resumed) == _comparable(_manifest(uninterrupted))  # nothing lost
    assert list(resumed) == sorted(resumed)  # compacted: one line per image, sorted
    assert _pixels(out).keys() == _pixels(uninterrupted).keys()
    for name, pixels in _pixels(out).items():
        np.testing.assert_array_equal(pixels, _pixels(uninterrupted)[name])


def test_ctrl_c_loses_only_the_image_in_flight(six, uninterrupted, monkeypatch, capsys):
    import linr.batch.run as run_module

    real_finish, calls = run_module.finish, []

    def finish_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt  # Ctrl-C while the third image is being finished
        return real_finish(*args, **kwargs)

    out = six / "out_ctrl_c"
    argv = ["batch", str(six / "noisy"), "--task", "noisy", "-o", str(out), *KILL_ARGS]
    monkeypatch.setattr(run_module, "finish", finish_then_interrupt)
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert sorted(_manifest(out)) == ["img0", "img1"]
    monkeypatch.setattr(run_module, "finish", real_finish)
    assert main(argv) == 0
    assert _comparable(_manifest(out)) == _comparable(_manifest(uninterrupted))


# --- pairing ----------------------------------------------------------------------------------


@pytest.fixture
def joint(tmp_path) -> Path:
    clean = crop(load("set5/bird.png"), 16)
    for d in ("n", "lr"):
        (tmp_path / d).mkdir()
    for name in ("a", "b", "c"):
        write_image(tmp_path / "n" / f"{name}.png", simulate.add_gaussian_noise(clean, 25, seed=1))
    for name in ("a", "b", "d"):
        write_image(tmp_path / "lr" / f"{name}.png", simulate.lanczos_downscale(clean, 4))
    return tmp_path


def test_joint_pairing_error_lists_unmatched(joint, capsys):
    code = main(["batch", "--noisy", str(joint / "n"), "--lowres", str(joint / "lr" / "*.png"),
                 "-o", str(joint / "out"), *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "--noisy: 1 without a match (c.png)" in err and "--lowres: 1 without a match (d.png)" in err
    assert not (joint / "out").exists()


def test_joint_batch_restores_matched_pairs(joint):
    (joint / "n" / "c.png").unlink()
    (joint / "lr" / "d.png").unlink()
    out = joint / "out"
    assert main(["batch", "--noisy", str(joint / "n"), "--lowres", str(joint / "lr"), "--factor", "4",
                 "-o", str(out), "--steps", "2", *FAST]) == 0
    records = _manifest(out)
    assert sorted(records) == ["a", "b"]
    assert [o["kind"] for o in records["a"]["settings"]["observations"]] == ["noisy", "lowres"]
    assert read_image(out / "a.png")[0].shape == (16, 16, 3)


def test_masks_pair_by_name_in_the_same_folder(tmp_path, capsys):
    # The layout `linr degrade --keep` writes: x.png beside x_mask.png.
    clean = crop(load("set5/head.png"), 16)
    for i in range(2):
        mask = simulate.bernoulli_mask((16, 16), 0.5, seed=i)
        write_image(tmp_path / f"x{i}.png", clean * mask[..., None])
        write_image(tmp_path / f"x{i}_mask.png", mask.astype(np.float32))
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path), "--task", "masked", "--mask", str(tmp_path / "*_mask.png"),
                 "-o", str(out), "--steps", "2", *FAST]) == 0
    records = _manifest(out)
    assert sorted(records) == ["x0", "x1"]
    assert records["x1"]["inputs"]["mask"].endswith("x1_mask.png")
    (tmp_path / "x1_mask.png").unlink()
    code = main(["batch", str(tmp_path), "--task", "masked", "--mask", str(tmp_path / "*_mask.png"),
                 "-o", str(tmp_path / "out2"), *FAST])
    assert code == 2 and "no file for 1 image(s): x1" in capsys.readouterr().err


def test_blurred_with_kernels_paired_by_name(tmp_path):
    from linr.operators import gaussian_kernel

    clean = crop(load("set5/head.png"), 16)
    (tmp_path / "b").mkdir()
    (tmp_path / "k").mkdir()
    for i, sigma in enumerate((0.8, 1.6)):
        kernel = gaussian_kernel(5, sigma)
        np.save(tmp_path / "k" / f"y{i}_kernel.npy", kernel)
        write_image(tmp_path / "b" / f"y{i}.png", simulate.blur_image(clean, kernel, noise_sigma=0, seed=0))
    out = tmp_path / "out"
    assert main(["batch", str(tmp_path / "b"), "--task", "blurred", "--kernel", str(tmp_path / "k"),
                 "-o", str(out), "--steps", "2", *FAST]) == 0
    records = _manifest(out)
    for i in range(2):
        assert records[f"y{i}"]["status"] == "done"
        assert records[f"y{i}"]["inputs"]["kernel"].endswith(f"y{i}_kernel.npy")
        assert records[f"y{i}"]["settings"]["observations"][0]["operator"]["kernel_shape"] == [5, 5]


@pytest.mark.parametrize("argv, message", [
    (["IN", "-o", "OUT"], "INPUT needs --task"),
    (["--task", "noisy", "-o", "OUT"], "--task needs INPUT"),
    (["IN", "--task", "noisy", "--factor", "2", "-o", "OUT"], "--factor needs --lowres (or --task lowres)"),
    (["IN", "--task", "blurred", "-o", "OUT"], "--task blurred needs --kernel SPEC"),
    (["IN", "--task", "noisy", "-o", "IN"], "would overwrite an input"),
    (["IN", "--task", "noisy", "-o", "OUT", "--ray-address", "auto"], "--ray-address needs --backend ray"),
    (["IN", "--task", "noisy", "-o", "OUT", "--backend", "ray", "--device", "cuda:1"], "Ray assigns the GPUs"),
    (["IN", "--task", "blurred", "--kernel", "gaussian:x:1", "-o", "OUT"], "bad kernel spec"),
    (["IN", "--task", "noisy", "--weight", "lowres=0.5", "-o", "OUT"], "without --lowres"),
    (["IN", "--task", "noisy", "-o", "IN/a.png"], "is not a folder"),
    (["IN", "--task", "blurred", "--kernel", "nokernels/", "-o", "OUT"], "no such file or folder"),
])
def test_usage_errors(folder, tmp_path, capsys, argv, message):
    src = tmp_path / "in"
    src.mkdir()
    write_image(src / "a.png", np.zeros((4, 4, 3), np.float32))
    argv = [a.replace("IN", str(src)) if a.startswith("IN") else str(tmp_path / "out") if a == "OUT" else a
            for a in argv]
    assert main(["batch", *FAST, *argv]) == 2  # argv after FAST: its options win
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0


# --- Ray --------------------------------------------------------------------------------------


def test_ray_backend_matches_local(folder, local_run, capsys):
    from linr.batch.ray_backend import ray_unavailable

    reason = ray_unavailable()
    if reason is not None:
        pytest.skip(reason)
    out = folder / "out_ray"
    code = main(["batch", str(folder / "noisy"), "--task", "noisy", "-o", str(out), "--steps", "3",
                 "--reference-dir", str(folder / "clean"), "--backend", "ray", *FAST])
    assert code == 4
    ray_records, local_records = _manifest(out), _manifest(local_run)
    assert {r["run"]["backend"] for r in ray_records.values() if r["status"] == "done"} == {"ray"}
    ray_view, local_view = _comparable(ray_records), _comparable(local_records)
    differ = [(name, key) for name in ray_view for key in ray_view[name]
              if ray_view[name][key] != local_view.get(name, {}).get(key)]
    assert ray_view == local_view, f"fields that differ (image, field): {differ}"
    local_pixels = _pixels(local_run)
    for name, pixels in _pixels(out).items():
        np.testing.assert_array_equal(pixels, local_pixels[name])
        assert (out / name).read_bytes() == (local_run / name).read_bytes()


def test_stop_option_reaches_every_fit(tmp_path):
    # --stop used to be accepted by batch and ignored; fixed:2 within a budget of 5 must stop at 2
    root = _make_folder(tmp_path, 1)
    out = tmp_path / "out"
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), "--steps", "5",
                 "--stop", "fixed:2", *FAST]) == 0
    (record,) = _manifest(out).values()
    assert record["status"] == "done" and record["steps_run"] == 2
    assert record["batch"]["stop"] == "fixed:2"


def test_temporaries_of_a_killed_write_are_removed_on_the_next_run(tmp_path, capsys):
    root = _make_folder(tmp_path, 1)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".img0.png.ab_cd123.png"  # what write_image's mkstemp leaves when killed
    stale.write_bytes(b"half a png")
    unrelated = [out / ".img0.png.notes", out / ".other.png.ab_cd123.png", out / "img1.png"]
    for p in unrelated:
        p.write_bytes(b"keep")
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), "--steps", "1",
                 *FAST]) == 0
    assert not stale.exists()
    assert all(p.read_bytes() == b"keep" for p in unrelated)
    assert "removed 1 temporary file" in capsys.readouterr().err


# --- stacked fits -----------------------------------------------------------------------------


def _without_stacking(records: dict[str, dict]) -> dict[str, dict]:
    out = _comparable(records)  # without the run block (timings; `stacked` is recorded there too)
    for r in out.values():
        if r.get("settings"):
            r["settings"]["engine_used"].pop("stacked", None)
        if r.get("metrics"):
            r.pop("metrics")  # float rounding of stacked products may move the last digits
    return out


def test_stacked_batch_matches_one_by_one(folder, local_run, capsys):
    out = folder / "out_stacked"
    capsys.readouterr()
    code = main(["batch", str(folder / "noisy"), "--task", "noisy", "-o", str(out), "--steps", "3",
                 "--reference-dir", str(folder / "clean"), "--stack", "3", *FAST])
    wall = float(re.search(r"in ([0-9.]+) s on", capsys.readouterr().out).group(1))  # the run's
    assert code == 4  # the corrupt file still fails alone
    records = _manifest(out)
    stacked = sorted(r["settings"]["engine_used"].get("stacked", 1) for r in records.values()
                     if r["status"] == "done")
    assert stacked == [1, 3, 3, 3]  # img0-img2 together (broken.png sorts first), img3 alone
    assert sorted(r["run"].get("stacked", 1) for r in records.values() if r["status"] == "done") == [1, 3, 3, 3]
    # a stacked image is not charged the other two images' shares of the stack's fit
    shared = [r["run"] for r in records.values() if r["run"].get("stacked") == 3]
    assert len(shared) == 3 and all(run["time_s"] < run["stack_time_s"] <= wall + 0.05 for run in shared)
    # each its own time (read, a third of the stack's worker time, written): together about the stack's
    assert sum(run["time_s"] for run in shared) <= max(run["stack_time_s"] for run in shared) + 0.05
    from linr.batch.work import _own_time

    assert _own_time(10.0, {"stacked": 4, "fit_s": 2.0}) == 4.0  # 10 s, less three other shares of 2 s
    assert _own_time(10.0, {"fit_s": 2.0}) == 10.0  # fitted alone: all of it
    assert _without_stacking(records) == _without_stacking(_manifest(local_run))
    local_pixels = _pixels(local_run)
    for name, pixels in _pixels(out).items():
        assert np.abs(pixels - local_pixels[name]).max() <= 1 / 255 + 1e-6


def test_stacks_group_only_images_of_one_size(tmp_path):
    root = _make_folder(tmp_path, 2)
    image = load("set5/butterfly.png")
    for i, size in ((2, 20), (3, 16)):  # img2 is larger and breaks the run of 16-px images
        clean = crop(image, size, top=10 * i, left=10)
        write_image(root / "noisy" / f"img{i}.png", simulate.add_gaussian_noise(clean, 25, seed=i))
    out = tmp_path / "out"
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), "--steps", "2",
                 "--stack", "4", *FAST]) == 0
    records = _manifest(out)
    assert {n: r["settings"]["engine_used"].get("stacked", 1) for n, r in records.items()} == {
        "img0": 2, "img1": 2, "img2": 1, "img3": 1}


def test_a_failed_stack_is_retried_image_by_image(tmp_path, monkeypatch):
    import linr.tasks

    def broken(*args, **kwargs):
        raise RuntimeError("stacked fit failed")

    monkeypatch.setattr(linr.tasks, "restore_many", broken)
    root = _make_folder(tmp_path, 2)
    out = tmp_path / "out"
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), "--steps", "2",
                 "--stack", "2", *FAST]) == 0
    assert all(r["status"] == "done" and "stacked" not in r["settings"]["engine_used"]
               for r in _manifest(out).values())


def test_stack_needs_the_siren(folder, tmp_path, capsys):
    code = main(["batch", str(folder / "noisy"), "--task", "noisy", "-o", str(tmp_path / "o"),
                 "--stack", "2", "--model", "relu", *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "--stack needs the SIREN" in err and err.count("\n") == 0


def test_a_batch_says_what_its_first_image_will_cost_before_it_starts(tmp_path, monkeypatch, capsys):
    from linr.batch import run as batch_run

    (tmp_path / "noisy").mkdir()
    big = np.random.default_rng(0).random((1024, 1024, 3)).astype(np.float32)
    write_image(tmp_path / "noisy" / "a.png", big)
    write_image(tmp_path / "noisy" / "b.png", big[:16, :16])
    monkeypatch.setattr(batch_run, "run_jobs", lambda *a, **k: batch_run.Outcome())  # no fit: only what is said
    code = main(["batch", str(tmp_path / "noisy"), "--task", "noisy", "-o", str(tmp_path / "out"),
                 "--device", "cpu", "--threads", "1"])
    assert code == 0
    err = capsys.readouterr().err
    assert "linr: the first image, a (1 more after it): up to 2000 steps (automatic stop) restoring 1024x1024 in 81 " \
        "tiles" in err and "to refine the fit's image (grouped on one CPU thread)" in err
    assert "cores it uses" not in err  # estimated with the worker's one thread (--threads 1)
    main(["batch", str(tmp_path / "noisy"), "--task", "noisy", "-o", str(tmp_path / "out2"), "--device", "cpu",
          "--threads", "1", "--quiet"])
    assert "the first image" not in capsys.readouterr().err  # --quiet: nothing said
    # two workers: the first image is not the first to finish, nor do the others come after it
    main(["batch", str(tmp_path / "noisy"), "--task", "noisy", "-o", str(tmp_path / "out3"), "--device", "cpu",
          "--threads", "1", "--workers", "2"])
    assert "the first image, a (1 more; 2 restored at a time, so others may finish first)" in capsys.readouterr().err


def test_a_batch_says_when_its_output_format_drops_the_inputs_alpha(tmp_path, capsys):
    (tmp_path / "noisy").mkdir()
    rng = np.random.default_rng(0)
    alpha = np.ones((16, 16), np.float32)
    alpha[:5] = 0.0
    write_image(tmp_path / "noisy" / "clear.png", rng.random((16, 16, 3)).astype(np.float32), alpha=alpha)
    write_image(tmp_path / "noisy" / "opaque.png", rng.random((16, 16, 3)).astype(np.float32))
    code = main(["batch", str(tmp_path / "noisy"), "--task", "noisy", "-o", str(tmp_path / "out"), "--format", "jpg",
                 "--steps", "3", "--device", "cpu", "--threads", "1"])
    assert code == 0
    err = capsys.readouterr().err
    assert "clear: done in" in err and "JPEG has no alpha channel, so the input's transparency is not written" in err
    records = _manifest(tmp_path / "out")
    assert "JPEG has no alpha" in records["clear"]["output_note"] and "output_note" not in records["opaque"]


def test_a_batch_of_float32_pilots_does_not_resume_under_the_bf16_pilot(folder, tmp_path, capsys):
    """A denoising batch records its pilot's products (bf16 where the CPU has bf16 units since
    the forty-sixth session): one made before (float32 pilots; as ``--precision float32`` makes
    now) is not mixed with the new default, and ``--precision float32`` resumes it."""
    out = tmp_path / "out"
    base = ["batch", str(folder / "noisy" / "img0.png"), "--task", "noisy", "-o", str(out), "--steps", "2", *FAST]
    assert main([*base, "--precision", "float32"]) == 0
    made = _manifest(out)["img0"]["batch"]
    assert made["precision"] is None and "precision" not in made["pilot"]  # as manifests made before
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "other settings (pilot; " in err and "multiplied in float32" in err
    assert "--precision float32 to resume as made" in err
    assert main([*base, "--precision", "float32"]) == 0
    assert "1 already done" in capsys.readouterr().out
    assert main([*base, "--force"]) == 0
    assert _manifest(out)["img0"]["batch"]["pilot"]["precision"] == "bf16-on-cpus-with-bf16-units-but-sure-picks"


def test_a_batch_made_before_the_pilots_tiles_of_128_says_why_it_does_not_resume(folder, tmp_path, capsys, monkeypatch):
    """A batch of the forty-fifth session's pilot (no precision, no tile size recorded: float32
    products, tiles of 256) is refused with both reasons named and no hint that would be refused."""
    import linr.batch as batch

    out = tmp_path / "out"
    base = ["batch", str(folder / "noisy" / "img0.png"), "--task", "noisy", "-o", str(out), "--steps", "2", *FAST]
    today = batch._pilot_of

    def before(args, model):
        pilot = today(args, model)
        return None if pilot is None else {k: v for k, v in pilot.items() if k not in ("precision", "tile_size")}

    monkeypatch.setattr(batch, "_pilot_of", before)
    assert main(base) == 0
    monkeypatch.undo()
    assert "tile_size" not in _manifest(out)["img0"]["batch"]["pilot"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "multiplied in float32" in err and "tiles of 256 px" in err and "--precision float32" not in err


def test_a_batch_made_before_the_clipping_route_says_why_it_does_not_resume(folder, tmp_path, capsys, monkeypatch):
    """A denoising batch made before the fifty-fifth session has no clipping setting (its photos'
    clipping not undone, its bursts fitted jointly): a resume is refused with that reason."""
    import linr.batch as batch

    out = tmp_path / "out"
    base = ["batch", str(folder / "noisy" / "img0.png"), "--task", "noisy", "-o", str(out), "--steps", "2", *FAST]
    monkeypatch.setattr(batch, "_clipping_route", lambda args: False)  # as manifests were made before
    assert main(base) == 0
    monkeypatch.undo()
    assert "clipping" not in _manifest(out)["img0"]["batch"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "other settings (clipping; the images were restored before the fifty-fifth session" in err, err
    assert main([*base, "--force"]) == 0 and _manifest(out)["img0"]["batch"]["clipping"] == "auto"


def test_workers_lost_stop_the_batch_with_one_error_and_fail_no_image(tmp_path, monkeypatch, capsys):
    """A Ray cluster stopped mid-run marked every image still to do as failed, those never started
    too (a new user's batch of 8: six 'Ray task failed' records); a lost backend now stops the run
    with one line, records nothing for the unfinished images, and the same command resumes them."""
    from linr.batch.local import InlineBackend
    from linr.batch.work import BackendLost

    root = _make_folder(tmp_path, 3)
    out = tmp_path / "out"
    wait, calls = InlineBackend.wait, []

    def lost_after_one(self, handles):
        calls.append(1)
        if len(calls) > 1:
            raise BackendLost("the Ray cluster was lost (NodeDiedError: a test); finished images are kept: rerun "
                              "the same command once it is back")
        return wait(self, handles)

    monkeypatch.setattr(InlineBackend, "wait", lost_after_one)
    argv = ["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), "--steps", "2", *FAST]
    assert main(argv) == 4
    assert capsys.readouterr().err.strip().endswith("linr: error: the Ray cluster was lost (NodeDiedError: a test); "
                                                    "finished images are kept: rerun the same command once it is back")
    records = _manifest(out)
    assert list(records) == ["img0"] and records["img0"]["status"] == "done"  # no failure recorded
    monkeypatch.setattr(InlineBackend, "wait", wait)
    assert main(argv) == 0
    assert sorted(_manifest(out)) == ["img0", "img1", "img2"]


def test_a_ray_address_nothing_answers_at_is_one_line_at_once():
    """Ray itself retried an unreachable address for minutes, printing its own warnings."""
    import socket

    from linr.batch.ray_backend import _check_reachable
    from linr.errors import InputError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    t0 = time.monotonic()
    with pytest.raises(InputError, match=f"cannot reach the Ray cluster at 127.0.0.1:{port} .*ray start --head"):
        _check_reachable(f"127.0.0.1:{port}")
    assert time.monotonic() - t0 < 10


def test_names_in_either_unicode_form_pair(tmp_path):
    """A reference named café.png decomposed (as a Mac copies it) did not pair with the input café.png
    composed: 'no file for 1 image(s): café', the two names alike on screen."""
    import unicodedata

    from linr.batch.plan import plan_jobs

    src, refs = tmp_path / "in", tmp_path / "refs"
    src.mkdir()
    refs.mkdir()
    write_image(src / (unicodedata.normalize("NFC", "café") + ".png"), np.zeros((8, 8, 3), np.float32))
    write_image(refs / (unicodedata.normalize("NFD", "café") + ".png"), np.zeros((8, 8, 3), np.float32))
    (job,) = plan_jobs({"noisy": str(src)}, output_dir=str(tmp_path / "out"), reference_dir=str(refs))
    assert job.reference is not None and Path(job.reference).name == unicodedata.normalize("NFD", "café") + ".png"


def test_a_terminal_of_no_width_gets_a_line_per_image():
    """A pseudo-terminal that reports 0 columns (a harness' `script`) showed no bar and no line."""
    import os
    import pty

    from linr.batch.run import Progress

    master, slave = pty.openpty()  # a new pseudo-terminal reports 0 x 0
    with os.fdopen(slave, "w") as stream:
        assert os.get_terminal_size(stream.fileno()).columns == 0
        progress = Progress(2, enabled=True, stream=stream)
        assert progress.bar is None and progress.lines
        progress({"status": "done", "image": "a", "run": {"time_s": 1.0}})
        assert b"[1/2, 0 failed, ETA" in os.read(master, 4096)
    os.close(master)


def test_an_interrupted_force_run_resumes_without_force(tmp_path, monkeypatch, capsys):
    """A --force run with other settings, interrupted after one image, could not be resumed: without
    --force the others were 'made with other settings', with it every image started over (and the
    summary counted the old images as done)."""
    from linr.batch.local import InlineBackend

    root = _make_folder(tmp_path, 3)
    out = tmp_path / "out"
    base = ["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), *FAST]
    assert main([*base, "--steps", "2"]) == 0
    wait, calls = InlineBackend.wait, []

    def interrupted_after_one(self, handles):
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt
        return wait(self, handles)

    monkeypatch.setattr(InlineBackend, "wait", interrupted_after_one)
    capsys.readouterr()
    assert main([*base, "--steps", "3", "--force"]) == 130
    err = capsys.readouterr().err
    assert "rerun the same command without --force to resume (with it, every image starts over)" in err
    records = _manifest(out)
    assert records["img0"]["status"] == "done" and records["img0"]["steps_run"] == 3
    assert {records[n]["status"] for n in ("img1", "img2")} == {"superseded"}
    monkeypatch.setattr(InlineBackend, "wait", wait)
    assert main([*base, "--steps", "3"]) == 0
    assert "3 images: 2 to restore, 1 already done" in capsys.readouterr().out
    assert all(r["status"] == "done" and r["steps_run"] == 3 for r in _manifest(out).values())


def test_a_full_disk_is_one_line_and_a_documented_exit(tmp_path, monkeypatch, capsys):
    """A batch whose output filled its disk stopped with 'internal error: OSError: [Errno 28]', exit
    1 (not among batch's documented codes), naming no file."""
    import errno
    import os

    from linr.batch.manifest import Manifest

    root = _make_folder(tmp_path, 1)
    tiled = _make_folder(tmp_path / "tiled", 1, size=40)  # restored in tiles of 16 below

    def full(self, record):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    said = ("linr: error: No space left on device: free some space and rerun the same command (a batch or a "
            "tiled restore resumes: what was finished is kept)")
    with monkeypatch.context() as m:
        m.setattr(Manifest, "add", full)
        assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(tmp_path / "out"), "--steps", "1",
                     *FAST]) == 2
        assert capsys.readouterr().err.strip().splitlines()[-1] == said
    # the output's write fills it (the usual case): the batch stops too, no image recorded as failed
    monkeypatch.setattr("linr.images.write_frames", lambda *a, **k: full(None, None))
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(tmp_path / "out2"), "--steps", "1",
                 *FAST]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == said
    assert not (tmp_path / "out2" / "manifest.jsonl").exists() or not _manifest(tmp_path / "out2")
    # an image restored in tiles stops the batch alike (it was recorded as failed, and the next one tried)
    assert main(["batch", str(tiled / "noisy"), "--task", "noisy", "-o", str(tmp_path / "out3"), "--steps", "1",
                 "--tile", "16:4", *FAST]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == said
    assert not (tmp_path / "out3" / "manifest.jsonl").exists() or not _manifest(tmp_path / "out3")


def test_batches_made_before_this_sessions_defaults_do_not_resume_under_them(tmp_path, capsys):
    """Blurred batches record the censored data term at white, noisy + masked batches their
    grouped-fill refinement (both defaults since the sixty-eighth session): a batch made before (as
    --clipping ignore, or --refine none, make it) is not silently mixed with them, and the hint says
    how to resume it as made."""
    rng = np.random.default_rng(0)
    (tmp_path / "b").mkdir()
    write_image(tmp_path / "b" / "a.png", rng.random((24, 24, 3)).astype(np.float32))
    out = tmp_path / "out"
    base = ["batch", str(tmp_path / "b"), "--task", "blurred", "--kernel", "gaussian:5:1", "-o", str(out),
            "--steps", "2", *FAST]
    assert main([*base, "--clipping", "ignore"]) == 0
    assert "censored_at_white" not in _manifest(out)["a"]["batch"]  # as manifests made before
    capsys.readouterr()
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "other settings (censored_at_white;" in err and "--clipping ignore to resume as made" in err
    for kind in ("noisy", "masked"):
        (tmp_path / kind).mkdir()
    write_image(tmp_path / "noisy" / "a.png", rng.random((24, 24, 3)).astype(np.float32))
    write_image(tmp_path / "masked" / "a.png", rng.random((24, 24, 3)).astype(np.float32))
    write_image(tmp_path / "masked" / "a_mask.png", (rng.random((24, 24)) < 0.5).astype(np.float32))
    joint = ["batch", "--noisy", str(tmp_path / "noisy"), "--masked", str(tmp_path / "masked" / "a.png"),
             "--mask", str(tmp_path / "masked" / "a_mask.png"), "-o", str(tmp_path / "joint"), "--steps", "2", *FAST]
    assert main([*joint, "--refine", "none"]) == 0
    capsys.readouterr()
    assert main(joint) == 2
    err = capsys.readouterr().err
    assert "refine)" in err and "--refine none to resume as made" in err


def test_a_batch_says_a_joint_shot_that_looks_shifted(tmp_path, capsys):
    """linr restore said a shot of a joint fit that looks shifted against the first; a batch did not."""
    from skimage import data

    big = data.astronaut()[100:160, 180:240].astype(np.float32) / 255
    for kind in ("n", "l"):
        (tmp_path / kind).mkdir()
    write_image(tmp_path / "n" / "a.png", big[4:52, 4:52])
    write_image(tmp_path / "l" / "a.png", big[6:54, 8:56].reshape(24, 2, 24, 2, 3).mean(axis=(1, 3)))
    assert main(["batch", "--noisy", str(tmp_path / "n"), "--lowres", str(tmp_path / "l"), "--factor", "2",
                 "-o", str(tmp_path / "out"), "--steps", "1", "--device", "cpu", "--threads", "1"]) == 0
    assert "(lowres) looks shifted against" in capsys.readouterr().err
    assert any("looks shifted" in n for n in _manifest(tmp_path / "out")["a"]["input_notes"])


def test_an_images_time_is_its_own_not_a_queues_or_its_stacks(tmp_path):
    """Four images stacked in one fit on one worker: each record's time_s was the time from reading
    it to writing it, the others' reads and shares included (6.7 s in all in a 2.9 s run); it is the
    image's own now (read, its share of the worker's time, written), and they add up to the run."""
    root = _make_folder(tmp_path, 4)
    t0 = time.monotonic()
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(tmp_path / "out"), "--steps", "2",
                 "--stack", "4", *FAST]) == 0
    wall = time.monotonic() - t0
    records = _manifest(tmp_path / "out")
    assert {r["run"].get("stacked") for r in records.values()} == {4}
    assert sum(r["run"]["time_s"] for r in records.values()) <= wall
