"""linr batch on a new user's inputs and options (issue 11): the layout `linr degrade --keep`
writes, options checked before anything is created, OMP_NUM_THREADS, resuming with or without
references, a closed output pipe; and the Makefile's set-up checks. 16-px images, 2 steps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import linr.batch
from linr.batch.plan import Job, fingerprint, plan_jobs
from linr.cli import main
from linr.errors import InputError
from linr.images import read_image, write_image

from .conftest import run_err

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--device", "cpu", "--threads", "1", "--quiet", "--steps", "2"]


def _image(seed: int, size: int = 16) -> np.ndarray:
    rng = np.random.default_rng(seed)
    smooth = np.cumsum(np.cumsum(rng.random((size, size, 3)), axis=0), axis=1)
    return (smooth / smooth.max()).astype(np.float32)


def _noisy_folder(root: Path, names: list[str]) -> Path:
    """root/noisy/NAME.png (noisy) and root/clean/NAME.png."""
    for d in ("noisy", "clean"):
        (root / d).mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        clean = _image(i)
        write_image(root / "clean" / f"{name}.png", clean)
        noise = np.random.default_rng(100 + i).normal(0, 0.1, clean.shape)
        write_image(root / "noisy" / f"{name}.png", np.clip(clean + noise, 0, 1))
    return root


def _manifest(folder: Path) -> dict[str, dict]:
    lines = (folder / "manifest.jsonl").read_text().splitlines()
    return {r["image"]: r for r in map(json.loads, lines)}


# --- item 1: images and their masks (kernels) in one folder -------------------------------------


def test_the_layout_linr_degrade_keep_writes_restores(tmp_path, capsys):
    holes = tmp_path / "holes"
    for i, name in enumerate(("a", "b")):
        write_image(tmp_path / f"{name}.png", _image(i))
        assert main(["degrade", str(tmp_path / f"{name}.png"), "-o", str(holes / f"{name}.png"),
                     "--keep", "0.3", "--seed", str(i)]) == 0
    assert sorted(p.name for p in holes.iterdir()) == ["a.png", "a_mask.png", "b.png", "b_mask.png"]
    out = tmp_path / "restored"
    # the README's command
    assert main(["batch", str(holes), "--task", "masked", "--mask", str(holes), "-o", str(out), *FAST]) == 0
    records = _manifest(out)
    assert sorted(records) == ["a", "b"]
    for name, r in records.items():
        assert r["status"] == "done"
        assert r["inputs"]["masked"].endswith(f"{name}.png") and r["inputs"]["mask"].endswith(f"{name}_mask.png")
    assert sorted(p.name for p in out.glob("*.png")) == ["a.png", "b.png"]
    capsys.readouterr()
    assert main(["batch", str(holes), "--task", "masked", "--mask", str(holes), "-o", str(out), *FAST]) == 0
    assert "2 images: 0 to restore, 2 already done" in capsys.readouterr().out


def test_masked_without_mask_or_alpha_stops_before_anything_is_created(tmp_path, capsys):
    """--task masked with no --mask, on images none of which has alpha to mark holes: one line
    naming the masks beside them, before the output folder exists; an image with alpha is enough
    to go on (its holes are its transparent pixels)."""
    from PIL import Image

    holes = tmp_path / "holes"
    assert main(["degrade", str(_write(tmp_path / "a.png", _image(0))), "-o", str(holes / "a.png"), "--keep", "0.5"]) == 0
    out = tmp_path / "restored"
    capsys.readouterr()
    assert main(["batch", str(holes), "--task", "masked", "-o", str(out), *FAST]) == 2
    err = capsys.readouterr().err
    assert "none of its 2 images has an alpha channel" in err and f"--mask {holes}" in err and not out.exists()
    rgba = (np.concatenate([_image(1), np.ones((16, 16, 1))], axis=2) * 255).astype(np.uint8)
    rgba[:4, :4, 3] = 0
    Image.fromarray(rgba, "RGBA").save(holes / "b.png")
    (holes / "a_mask.png").unlink()
    assert main(["batch", str(holes), "--task", "masked", "-o", str(out), *FAST]) == 4  # a.png alone fails
    records = _manifest(out)
    assert records["b"]["status"] == "done" and records["a"]["status"] == "failed"


def _write(path: Path, image: np.ndarray) -> Path:
    write_image(path, image)
    return path


def test_an_image_without_its_mask_in_the_shared_folder_is_named(tmp_path, capsys):
    holes = tmp_path / "holes"
    holes.mkdir()
    mask = np.random.default_rng(0).random((16, 16)) < 0.5
    for name in ("a", "b"):
        write_image(holes / f"{name}.png", _image(0) * mask[..., None])
    write_image(holes / "a_mask.png", mask.astype(np.float32))
    code = main(["batch", str(holes), "--task", "masked", "--mask", str(holes), "-o", str(tmp_path / "o"), *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no file for 1 image(s): b" in err and err.count("\n") == 0
    assert not (tmp_path / "o").exists()


def test_a_mask_folder_may_leave_out_images_that_carry_their_own_holes(tmp_path, capsys):
    """One folder mixing photos with x_mask.png files and photos whose transparent pixels are their
    holes (the layout --mask DIR and no --mask each take alone): each image gets its own, a note
    names those without a file; one without a file and without alpha is still named up front."""
    from PIL import Image

    holes = tmp_path / "holes"
    holes.mkdir()
    mask = np.random.default_rng(0).random((16, 16)) < 0.5
    write_image(holes / "a.png", _image(0) * mask[..., None])
    write_image(holes / "a_mask.png", mask.astype(np.float32))
    rgba = (np.concatenate([_image(1), np.ones((16, 16, 1))], axis=2) * 255).astype(np.uint8)
    rgba[:4, :4, 3] = 0
    Image.fromarray(rgba, "RGBA").save(holes / "b.png")
    out = tmp_path / "restored"
    assert main(["batch", str(holes), "--task", "masked", "--mask", str(holes), "-o", str(out), *FAST]) == 0
    captured = capsys.readouterr()
    assert "no file for 1 image(s), which mark their holes by their own transparent pixels: b" in captured.out + captured.err
    records = _manifest(out)
    assert records["a"]["status"] == records["b"]["status"] == "done"
    assert records["a"]["inputs"]["mask"].endswith("a_mask.png") and records["b"]["inputs"]["mask"] is None
    restored_b = read_image(out / "b.png")[0]
    assert restored_b.shape == (16, 16, 3)  # the holes filled, no alpha left
    write_image(holes / "c.png", _image(2))  # no mask file, no alpha: named before anything runs
    opaque = (np.concatenate([_image(3), np.ones((16, 16, 1))], axis=2) * 255).astype(np.uint8)
    Image.fromarray(opaque, "RGBA").save(holes / "d.png")  # alpha, but no pixel transparent: no holes of its own
    code = main(["batch", str(holes), "--task", "masked", "--mask", str(holes), "-o", str(tmp_path / "o2"), *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no file for 2 image(s): c, d" in err and not (tmp_path / "o2").exists()
    # a mask folder that names none of the images is refused, whatever alpha they carry
    other = tmp_path / "other"
    other.mkdir()
    write_image(other / "mask-a.png", mask.astype(np.float32))
    code = main(["batch", str(holes / "b.png"), "--task", "masked", "--mask", str(other), "-o", str(tmp_path / "o3"), *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "no file for any of the 1 image(s) (b)" in err and not (tmp_path / "o3").exists()


def test_kernel_images_beside_the_blurred_images(tmp_path):
    from linr import simulate
    from linr.operators import gaussian_kernel

    blurred = tmp_path / "blurred"
    kernel = gaussian_kernel(5, 1.0)
    write_image(blurred / "y.png", simulate.blur_image(_image(0), kernel, noise_sigma=0, seed=0))
    write_image(blurred / "y_kernel.png", (kernel / kernel.max()).astype(np.float32))
    jobs = plan_jobs({"blurred": str(blurred)}, output_dir=tmp_path / "o", kernel=str(blurred))
    assert [(j.name, Path(j.observations["blurred"]).name, Path(j.kernel).name) for j in jobs] == [
        ("y", "y.png", "y_kernel.png")]


def test_a_glob_takes_image_files_only(tmp_path):
    root = _noisy_folder(tmp_path, ["a"])
    (root / "noisy" / "notes.txt").write_text("how these were made")
    jobs = plan_jobs({"noisy": str(root / "noisy" / "*")}, output_dir=tmp_path / "o")
    assert [j.name for j in jobs] == ["a"]


def test_outputs_a_rerun_would_read_as_inputs_are_refused(tmp_path):
    root = _noisy_folder(tmp_path, ["a"])
    with pytest.raises(InputError, match="would be read as --noisy files"):
        plan_jobs({"noisy": str(root / "noisy")}, output_dir=root / "noisy", suffix=".tif")
    with pytest.raises(InputError, match="would be read as --noisy files"):
        plan_jobs({"noisy": str(root / "noisy" / "*")}, output_dir=root / "noisy", suffix=".tif")
    # a glob that does not match the outputs: they are never read back
    jobs = plan_jobs({"noisy": str(root / "noisy" / "*.png")}, output_dir=root / "noisy", suffix=".tif")
    assert [Path(j.output).name for j in jobs] == ["a.tif"]


@pytest.mark.parametrize("argv, message", [
    (["N/a.png", "N/b.png", "N/c.png", "--task", "noisy"], "INPUT is one folder or glob, got 3"),
    (["--noisy", "N/a.png", "N/b.png", "N/c.png"], "INPUT is one folder or glob, got 2"),
    (["--noisy", "N/a.png", "N/b.png"], "--noisy followed by more than one path"),
    (["--noisy", "N", "--noisy", "N"], "--noisy given twice"),
])
def test_an_unquoted_glob_or_a_repeated_folder_is_named(tmp_path, capsys, argv, message):
    root = _noisy_folder(tmp_path, ["a", "b", "c"])
    argv = [a.replace("N", str(root / "noisy"), 1) if a.startswith("N") else a for a in argv]
    assert main(["batch", *argv, "-o", str(tmp_path / "o"), *FAST]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and err.count("\n") == 0
    assert not (tmp_path / "o").exists()


# --- item 2: every option checked before the output folder exists -------------------------------


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


@pytest.mark.parametrize("extra, message", [
    (["--device", "cuda"], "no CUDA GPU"),
    (["--device", "tpu"], "unknown device"),
    (["--stop", "bogus"], "--stop bogus: unknown stop rule"),
    (["--stop", "variance:1:2:3"], "too many parameters"),
    (["--precision", "tf32"], "needs a CUDA GPU"),
    (["--precision", "bf16", "--model", "relu"], "needs the SIREN model"),
    (["--task", "masked", "--mask", "BAD"], "not a readable image"),
    (["--task", "blurred", "--kernel", "BAD.npy"], "not a readable .npy kernel"),
])
def test_a_bad_option_creates_nothing(tmp_path, capsys, extra, message):
    if "cuda" in extra and _cuda():
        pytest.skip("this machine has CUDA")
    root = _noisy_folder(tmp_path, ["a"])
    (tmp_path / "BAD").write_bytes(b"not an image")
    (tmp_path / "BAD.npy").write_bytes(b"not an array")
    extra = [str(tmp_path / e) if e.startswith("BAD") else e for e in extra]
    task = [] if "--task" in extra else ["--task", "noisy"]
    out = tmp_path / "out" / "deeper"
    code = main(["batch", str(root / "noisy"), *task, "-o", str(out), *FAST, *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and err.count("\n") == 0
    assert not (tmp_path / "out").exists()


def test_a_failure_after_the_folder_was_made_leaves_nothing(tmp_path, monkeypatch, capsys):
    root = _noisy_folder(tmp_path, ["a"])

    def unreachable(*args):
        raise InputError("cannot connect to the Ray cluster")  # fails once the folder exists

    monkeypatch.setattr(linr.batch, "_backend", unreachable)
    out = tmp_path / "out" / "deeper"
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), *FAST]) == 2
    assert not (tmp_path / "out").exists()
    # a folder that was there: kept, with no manifest left that would vouch for its files
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "a.png").write_bytes(b"someone else's file")
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(mine), *FAST]) == 2
    assert not (mine / "manifest.jsonl").exists()
    monkeypatch.undo()
    capsys.readouterr()
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(mine), *FAST]) == 2
    assert "exists and is not from a linr batch" in capsys.readouterr().err
    assert (mine / "a.png").read_bytes() == b"someone else's file"


def test_an_output_folder_that_cannot_be_made_is_a_usage_error(tmp_path, capsys):
    root = _noisy_folder(tmp_path, ["a"])
    (tmp_path / "file").write_text("x")
    code = main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(tmp_path / "file" / "o"), *FAST])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "cannot create the folder" in err and "internal error" not in err


# --- item 3: OMP_NUM_THREADS -----------------------------------------------------------------


def test_threads_per_fit_follow_omp_num_threads(monkeypatch, capsys):
    monkeypatch.setattr(linr.batch, "usable_cores", lambda: 8)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert linr.batch.local_threads(None, 2) == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert linr.batch.local_threads(None, 2) == 3
    assert linr.batch.local_threads(5, 2) == 5  # --threads wins
    monkeypatch.setenv("OMP_NUM_THREADS", "3,2")  # nested levels: the first
    assert linr.batch.local_threads(None, 1) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    assert linr.batch.local_threads(None, 2) == 4
    assert "OMP_NUM_THREADS='many'" in capsys.readouterr().err


def test_a_batch_fits_with_omp_num_threads(tmp_path, monkeypatch, capsys):
    root = _noisy_folder(tmp_path, ["a"])
    monkeypatch.setattr(linr.batch, "usable_cores", lambda: 4)  # without the variable: 4 threads
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "out"
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), "--device", "cpu",
                 "--quiet", "--steps", "2"]) == 0
    assert _manifest(out)["a"]["run"]["threads"] == 1
    assert "1 threads/fit" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["batch", "--help"])
    assert "OMP_NUM_THREADS" in capsys.readouterr().out


# --- item 4: references only add metrics ------------------------------------------------------


def test_resuming_without_or_with_the_reference_folder(tmp_path, capsys):
    root = _noisy_folder(tmp_path, ["a", "b"])
    batch = ["batch", str(root / "noisy"), "--task", "noisy", *FAST]
    ref = ["--reference-dir", str(root / "clean")]
    first = tmp_path / "with_ref"
    assert main([*batch, "-o", str(first), *ref]) == 0
    made = _manifest(first)
    assert all(r["metrics"] for r in made.values())
    capsys.readouterr()
    assert main([*batch, "-o", str(first)]) == 0  # the reference folder left out
    assert "2 images: 0 to restore, 2 already done" in capsys.readouterr().out
    assert _manifest(first) == made  # metrics kept where known
    # a manifest written when the key hashed the reference path too still resumes
    records = _manifest(first)
    for r in records.values():
        inputs = dict(r["inputs"])
        job = Job(r["image"], {"noisy": inputs["noisy"]}, r["output"], mask=None, kernel=None,
                  reference=inputs["reference"])
        r["key"] = fingerprint(job, r["batch"], reference=inputs["reference"])
    (first / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records.values()))
    assert main([*batch, "-o", str(first)]) == 0
    assert "2 images: 0 to restore, 2 already done" in capsys.readouterr().out
    # ... and the other way: a reference folder added on resume
    second = tmp_path / "without_ref"
    assert main(["batch", "--noisy", str(root / "noisy" / "a.png"), *FAST, "-o", str(second)]) == 0
    capsys.readouterr()
    assert main([*batch, "-o", str(second), *ref]) == 0
    captured = capsys.readouterr()
    out = captured.out
    assert "2 images: 1 to restore, 1 already done" in out
    records = _manifest(second)
    assert records["a"]["metrics"] is None and records["b"]["metrics"] is not None
    assert "means over the 1 of 2 done images" in out
    # the image done before is said to be unmeasured, and how to measure it
    assert "note: 1 image(s) done before have a reference now but no metrics" in captured.err
    assert "linr metrics REFERENCE OUTPUT" in captured.err and "e.g. a" in captured.err


def test_a_reference_that_does_not_fit_costs_only_the_metrics(tmp_path, capsys):
    root = _noisy_folder(tmp_path, ["a", "b"])
    write_image(root / "clean" / "a.png", _image(0, size=8), force=True)  # another size
    (root / "clean" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")  # unreadable
    out = tmp_path / "out"
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), *FAST,
                 "--reference-dir", str(root / "clean")]) == 0
    records = _manifest(out)
    for name, r in records.items():
        assert r["status"] == "done" and r["metrics"] is None and r["metrics_error"], name
        assert read_image(out / f"{name}.png")[0].shape == (16, 16, 3)
    assert "b.png" in records["b"]["metrics_error"]
    assert "no metrics for 2 image(s) whose reference could not be used" in capsys.readouterr().out
    # resumed with the same references: no note that they are new
    assert main(["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), *FAST,
                 "--reference-dir", str(root / "clean")]) == 0
    assert "have a reference now" not in capsys.readouterr().err


# --- item 5: a closed output pipe -------------------------------------------------------------


class _ClosedPipe:
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self):
        raise BrokenPipeError(32, "Broken pipe")


def test_pipe_guard_turns_a_broken_pipe_into_silence():
    from linr.batch.pipes import PipeGuard

    guard = PipeGuard(_ClosedPipe())
    assert guard.write("line\n") == 5 and guard.broken
    guard.write("more\n")
    guard.flush()


def _linr(argv: list[str], *, close: str) -> tuple[int, str]:
    """Run ``python -m linr ARGV`` with its stdout or stderr pipe closed by the reader at once
    (``linr ... | head -0``); returns the exit status and the other stream."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen([sys.executable, "-m", "linr", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    closed, other = (proc.stdout, proc.stderr) if close == "stdout" else (proc.stderr, proc.stdout)
    closed.close()
    text = other.read()
    return proc.wait(timeout=300), text


def test_batch_into_a_closed_pipe_finishes_quietly(tmp_path):
    root = _noisy_folder(tmp_path, ["a", "b"])
    argv = ["batch", str(root / "noisy"), "--task", "noisy", "--device", "cpu", "--threads", "1",
            "--steps", "2"]
    code, err = _linr([*argv, "-o", str(tmp_path / "o1")], close="stdout")
    assert code == 0 and "Traceback" not in err and "BrokenPipe" not in err, err
    assert sorted(_manifest(tmp_path / "o1")) == ["a", "b"]  # the batch went on
    code, out = _linr([*argv, "-o", str(tmp_path / "o2")], close="stderr")  # progress lines
    assert code == 0 and "this run (finished): 2 restored" in out, out


# --- item 8: the Makefile's set-up ------------------------------------------------------------

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


@needs_make
def test_make_says_what_to_install_without_venv(tmp_path):
    fake = tmp_path / "python3"
    fake.write_text(f'#!/bin/sh\ncase "$2" in *ensurepip*) exit 1;; esac\nexec {sys.executable} "$@"\n')
    fake.chmod(0o755)
    venv = tmp_path / "venv"
    proc = subprocess.run(["make", "-C", str(ROOT), "setup", f"PYTHON={fake}", f"VENV={venv}"],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and not venv.exists()
    lines = [line for line in proc.stdout.splitlines() if line.startswith("linr:")]
    assert len(lines) == 1 and "apt install python3-venv" in lines[0], proc.stdout


@needs_make
def test_make_takes_a_torch_index_for_torch_only(tmp_path):
    def dry_run(*extra: str) -> list[str]:
        proc = subprocess.run(["make", "-n", "-C", str(ROOT), "setup", f"VENV={tmp_path / 'v'}", *extra],
                              capture_output=True, text=True, check=True)
        return [line for line in proc.stdout.splitlines() if "pip install" in line]

    cpu = "https://download.pytorch.org/whl/cpu"
    lines = dry_run(f"TORCH_INDEX={cpu}")
    assert [line.endswith(f"torch==2.13.0 --index-url {cpu}") for line in lines if "torch==" in line] == [True]
    assert all("--index-url" not in line for line in lines if "torch==" not in line)
    assert all("--index-url" not in line for line in dry_run())  # empty by default


def test_an_empty_input_folder_is_named_as_given(tmp_path, capsys):
    from linr.cli import main

    (tmp_path / "empty").mkdir()
    code = main(["batch", str(tmp_path / "empty"), "--task", "noisy", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and f"INPUT {tmp_path / 'empty'}: matches no files" in err and "--noisy" not in err


def test_each_output_format_follows_its_input_content_not_its_name(tmp_path):
    """With no --format, an output is a TIFF where its input is one by content: a TIFF named .png
    (16 bits, 5 channels a PNG cannot hold) gets a .tif, a PNG named .tif a .png."""
    import tifffile

    folder = tmp_path / "in"
    folder.mkdir()
    tifffile.imwrite(folder / "scan.png", (np.random.default_rng(0).random((16, 16, 5)) * 65535).astype(np.uint16))
    write_image(tmp_path / "photo.png", _image(0))
    (tmp_path / "photo.png").rename(folder / "photo.tif")
    jobs = plan_jobs({"noisy": str(folder)}, output_dir=tmp_path / "out", suffix=None)
    assert {Path(j.output).name for j in jobs} == {"scan.tif", "photo.png"}


def test_a_resumed_batch_restores_again_an_image_whose_input_was_replaced(tmp_path, capsys):
    """Each done image records its inputs' sizes and times; an input replaced since (another
    picture under the same name) is restored again, with a note, the others skipped."""
    root = _noisy_folder(tmp_path, ["a", "b"])
    batch = ["batch", str(root / "noisy"), "--task", "noisy", "-o", str(tmp_path / "out"), *FAST]
    assert main(batch) == 0
    first = _manifest(tmp_path / "out")
    assert set(first["a"]["input_stamps"]) == {str(root / "noisy" / "a.png")}
    before = (tmp_path / "out" / "a.png").read_bytes()
    capsys.readouterr()
    write_image(root / "noisy" / "a.png", _image(7), force=True)  # another picture, same name
    assert main(batch) == 0
    captured = capsys.readouterr()
    assert "2 images: 1 to restore, 1 already done" in captured.out
    assert "1 done image(s) restored again: an input file changed since" in captured.err and "e.g. a" in captured.err
    assert (tmp_path / "out" / "a.png").read_bytes() != before
    assert _manifest(tmp_path / "out")["b"] == first["b"]
    assert main(batch) == 0 and "0 to restore, 2 already done" in capsys.readouterr().out  # then resumed as usual
    # the same batch named from another folder, by relative paths: nothing counts as replaced
    import os

    here = os.getcwd()
    try:
        os.chdir(root)
        assert main(["batch", "noisy", "--task", "noisy", "-o", str(tmp_path / "out"), *FAST]) == 0
    finally:
        os.chdir(here)
    captured = capsys.readouterr()
    assert "0 to restore, 2 already done" in captured.out and "restored again" not in captured.err


def test_a_tiff_added_to_or_taken_from_a_folder_changes_no_other_images_key(tmp_path, capsys):
    """Without --format the batch was keyed 'png' while every output was a PNG and 'by input'
    once one input was a TIFF, so adding one TIFF (or taking the only one away) refused the
    resume as made 'with other settings (format)'. Each image is keyed by its own output now;
    a manifest keyed the old way (a folder with a TIFF) still resumes."""
    from linr.batch.manifest import Manifest
    from linr.batch.run import select

    root = _noisy_folder(tmp_path, ["a", "b"])
    out = tmp_path / "out"
    argv = ["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), "--workers", "1", *FAST]
    assert main(argv) == 0
    write_image(root / "noisy" / "c.tif", _image(7))
    capsys.readouterr()
    assert main(argv) == 0
    assert "3 images: 1 to restore, 2 already done" in capsys.readouterr().out
    assert (out / "c.tif").exists()
    (root / "noisy" / "c.tif").unlink()
    assert main(argv) == 0
    assert "2 images: 0 to restore, 2 already done" in capsys.readouterr().out
    # a manifest of before: the PNG outputs of a folder with a TIFF keyed by the batch's format
    write_image(root / "noisy" / "c.tif", _image(7))
    records = _manifest(out)
    jobs = plan_jobs({"noisy": str(root / "noisy")}, output_dir=str(out), suffix=None)
    settings = records["a"]["batch"]
    assert settings["format"] == "by input"
    old = {j.name: fingerprint(j, settings, batch_format=True) for j in jobs}
    assert old["a"] != records["a"]["key"] and old["c"] == records["c"]["key"]
    lines = [json.dumps({**r, "key": old[r["image"]]}) for r in records.values()]
    (out / "manifest.jsonl").write_text("\n".join(lines) + "\n")
    with Manifest(str(out)) as manifest:
        todo, skipped, _ = select(jobs, manifest, settings, force=False, existed=True)
    assert [j.name for j in todo] == ["c"] and sorted(skipped) == ["a", "b"]  # c: its file written again


def test_an_output_folder_that_takes_no_new_file_is_one_line_and_register_of_single_photos_refused(
        tmp_path, capsys, monkeypatch):
    """A read-only (or immutable) existing -o folder ended in an internal error when the manifest
    was rewritten; --register on a folder of single photos failed every image after the folder
    was made. Both are one line now, before any fit."""
    from linr.batch.manifest import Manifest

    root = _noisy_folder(tmp_path, ["a", "b"])
    out = tmp_path / "out"
    argv = ["batch", str(root / "noisy"), "--task", "noisy", "-o", str(out), "--workers", "1", *FAST]
    assert main(argv) == 0

    def refused(self) -> None:
        raise PermissionError(1, "Operation not permitted", str(out / ".manifest.jsonl.x"))

    monkeypatch.setattr(Manifest, "compact", refused)  # as in a folder made immutable (chattr +i)
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"linr: error: -o {out}: cannot write there (Operation not permitted)"
    monkeypatch.undo()
    fresh = tmp_path / "fresh"
    err = run_err(capsys, ["batch", str(root / "noisy"), "--task", "noisy", "-o", str(fresh),
                           "--register", "translation", "--workers", "1", *FAST])
    assert "--register translation fits each frame's shift" in err and "every image of this batch is one photo" in err
    assert not fresh.exists()
    from PIL import Image

    from linr.batch import _one_photo

    frames = [Image.fromarray(np.full((8, 8, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    one = str(root / "noisy" / "a.png")
    assert _one_photo(Job("a", {"noisy": one}, "o.png"))
    assert not _one_photo(Job("g", {"noisy": str(tmp_path / "anim.gif")}, "o.png"))  # a burst of its frames
    assert not _one_photo(Job("b", {"noisy": [one, str(root / "noisy" / "b.png")]}, "o.png"))


def test_a_globs_double_star_matches_any_depth(tmp_path):
    from linr.batch.plan import find_files

    for rel in ("one.png", "sub/two.png", "sub/deeper/three.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        write_image(tmp_path / rel, _image(1))
    found = find_files(str(tmp_path / "**" / "*.png"), what="--noisy")
    assert sorted(p.name for p in found) == ["one.png", "three.png", "two.png"]
    assert [p.name for p in find_files(str(tmp_path / "*" / "*.png"), what="--noisy")] == ["two.png"]


def test_what_reading_an_image_says_is_on_its_line_once_and_in_its_record(tmp_path, capsys):
    """``linr restore`` notes a noisy JPEG (compression is not the white noise modelled); a batch
    said nothing. Now each image's record keeps its notes and the lines say each note once,
    whatever file it names (not once per JPEG of the folder)."""
    from PIL import Image

    folder = tmp_path / "noisy"
    folder.mkdir()
    for i, name in enumerate(["a", "b"]):
        noisy = np.clip(_image(i, 24) + np.random.default_rng(i).normal(0, 0.1, (24, 24, 3)), 0, 1)
        Image.fromarray(np.round(noisy * 255).astype(np.uint8)).save(folder / f"{name}.jpg", quality=90)
    write_image(folder / "c.png", _image(2, 24))
    out = tmp_path / "out"
    assert main(["batch", str(folder), "--task", "noisy", "-o", str(out),
                 *[a for a in FAST if a != "--quiet"]]) == 0
    err = capsys.readouterr().err
    assert err.count("a JPEG: its compression smoothed part of the noise") == 1, err
    records = _manifest(out)
    for name in ("a", "b"):
        (note,) = records[name]["input_notes"]
        assert note.endswith("output is restored as modelled)") and f"{name}.jpg: a JPEG" in note
    assert "input_notes" not in records["c"]


def test_a_batch_takes_the_inputs_value_range_as_restore_does(tmp_path, capsys):
    """A microscopist's 12-bit TIFFs: the batch's note said 'give --range 0:4095', which linr batch
    did not take. It maps them as linr restore --range does, writes them back in their units and
    records the range (a batch without one records none: those made before resume)."""
    import tifffile

    from linr.cli import main

    rng = np.random.default_rng(0)
    (tmp_path / "in").mkdir()
    tifffile.imwrite(tmp_path / "in" / "a.tif", (rng.random((16, 16)) * 4095).astype(np.uint16))
    tiny = ["--steps", "1", "--stop", "fixed", "--width", "8", "--depth", "1", "--device", "cpu", "--quiet"]
    assert main(["batch", str(tmp_path / "in"), "--task", "noisy", "--range", "0:4095", "-o", str(tmp_path / "out"),
                 *tiny]) == 0
    record = json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[-1])
    assert record["status"] == "done" and record["batch"]["range"] == [0.0, 4095.0]
    assert any("mapped 0..4095 -> [0, 1] (given)" in n for n in record["input_notes"])
    out = tifffile.imread(tmp_path / "out" / record["output"].split("/")[-1])
    assert out.dtype == np.uint16 and 1500 < out.mean() < 2600  # in the input's 12-bit units, not 16-bit ones
    assert main(["batch", str(tmp_path / "in"), "--task", "noisy", "-o", str(tmp_path / "plain"), *tiny]) == 0
    plain = json.loads((tmp_path / "plain" / "manifest.jsonl").read_text().splitlines()[-1])
    assert "range" not in plain["batch"]
