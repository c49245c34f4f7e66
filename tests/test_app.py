"""``linr app``: the job logic without a browser (uploads, restoration, bit depth, queue, cancel)
and the page in a real headless Chromium (skipped, saying why, without Gradio, Selenium or the
browser: ``pip install 'linr[app]' selenium``; Debian: ``apt-get install chromium chromium-driver``).

``LINR_APP_SCREENSHOT=docs/app.png`` makes the browser test save a screenshot of the finished page.
"""

from __future__ import annotations

import importlib.util
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from linr.app.jobs import JobRequest, JobRunner, Upload, UploadLimits
from linr.errors import InputError
from linr.metrics import psnr
from linr.models import ModelConfig

SMALL = ModelConfig(width=32)
QUICK = ModelConfig(width=64)
"""On the 32-px crop a 64-wide SIREN passes the noisy input's PSNR by step 100 (32 wide: 250)."""


def png_bytes(image: np.ndarray, bit_depth: int = 8) -> bytes:
    from PIL import Image

    if bit_depth == 16:
        import png

        data = np.round(np.clip(image, 0, 1) * 65535).astype(np.uint16)
        h, w, c = data.shape
        out = io.BytesIO()
        png.from_array(data.reshape(h, w * c), ("L" if c == 1 else "RGB") + ";16").write(out)
        return out.getvalue()
    out = io.BytesIO()
    arr = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    Image.fromarray(arr[..., 0] if arr.shape[2] == 1 else arr).save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def crops() -> tuple[np.ndarray, np.ndarray]:
    """A clean 32x32 crop of scikit-image's astronaut and a noisy one (sigma 25, 8-bit)."""
    from skimage import data

    from linr.simulate import add_gaussian_noise

    clean = data.astronaut()[100:132, 180:212].astype(np.float32) / 255
    noisy = np.round(np.clip(add_gaussian_noise(clean, 25, seed=0), 0, 1) * 255) / 255
    return clean, noisy.astype(np.float32)


@pytest.fixture
def runner():
    r = JobRunner(device="cpu", preview_every_s=0.0)
    yield r
    r.close()
    assert not r.root.exists()


def refused(runner: JobRunner, request: JobRequest) -> str:
    with pytest.raises(InputError) as info:
        runner.submit(request)
    assert list(runner.root.iterdir()) == []  # the refused job's files are gone
    return str(info.value)


# --- uploads ------------------------------------------------------------------------------------


def test_bad_uploads_are_one_line_messages_naming_the_file_as_uploaded(runner, crops):
    clean, noisy = crops
    message = refused(runner, JobRequest({"noisy": Upload("C:\\Users\\me\\notes.txt", b"hello\n")}))
    assert message == "notes.txt: not an image (PNG, JPEG, TIFF, BMP, WebP, GIF or FITS)"
    assert refused(runner, JobRequest({"noisy": Upload("empty.png", b"")})) == "empty.png: the file is empty"
    truncated = png_bytes(noisy)[:40]
    assert refused(runner, JobRequest({"noisy": Upload("cut.png", truncated)})).startswith("cut.png: not a readable image")
    mask = png_bytes(np.ones((16, 16, 1), np.float32))
    message = refused(runner, JobRequest({"masked": Upload("holes.png", png_bytes(noisy))},
                                         mask=Upload("mask.png", mask)))
    assert message == "mask.png: mask is 16x16 but the image is 32x32 (width x height)"
    assert str(runner.root) not in message
    assert refused(runner, JobRequest({"masked": Upload("holes.png", png_bytes(noisy))})) == \
        "holes.png: an image with missing pixels needs its mask (white = observed), or its holes transparent (alpha 0)"
    assert refused(runner, JobRequest({})) == "add at least one image (noisy, low-res, masked or blurred)"
    reference = Upload("clean.png", png_bytes(clean[:16]))
    message = refused(runner, JobRequest({"noisy": Upload("shot.png", png_bytes(noisy))}, reference=reference))
    assert message.startswith("clean.png: the reference is 32x16")


def test_a_kernel_is_never_a_file_from_the_browser(runner, crops):
    _, noisy = crops
    message = refused(runner, JobRequest({"blurred": Upload("b.png", png_bytes(noisy))}, kernel="/etc/passwd"))
    assert message == "blur kernel '/etc/passwd': give it as gaussian:WIDTH:SIGMA, e.g. gaussian:25:1.6"


def test_a_measured_psf_uploaded_as_an_image_or_npy_is_the_blur(runner, crops):
    """A blur given as a file (a microscopist's measured PSF): an image of it or a .npy array,
    used as linr restore uses ``--kernel FILE``; its problems are one line naming the upload."""
    import json

    import linr
    from linr.operators import gaussian_kernel

    clean, _ = crops
    psf = gaussian_kernel(5, 1.0)
    photo = linr.simulate.blur_image(clean, psf, noise_sigma=0.0, seed=0)
    buffer = io.BytesIO()
    np.save(buffer, psf)
    as_npy = Upload("psf.npy", buffer.getvalue())
    as_image = Upload("psf.png", png_bytes((psf / psf.max())[..., None]))
    for kernel_file, expected in ((as_npy, psf), (as_image, None)):
        job = runner.submit(JobRequest({"blurred": Upload("b.png", png_bytes(photo))}, kernel="",
                                       kernel_file=kernel_file, model=ModelConfig(width=16), steps=2))
        assert job.wait(timeout=300) and job.state == "done", job.describe()
        report = json.loads(job.result.report_path.read_text(encoding="utf-8"))
        assert report["app"]["kernel"] == kernel_file.display_name
        operator = report["settings"]["observations"][0]["operator"]
        assert operator["kernel_shape"] == [5, 5]
        runner.discard(job.id)
    blurred = {"blurred": Upload("b.png", png_bytes(photo))}
    assert refused(runner, JobRequest({"noisy": Upload("n.png", png_bytes(photo))}, kernel_file=as_npy)) == \
        "a blur kernel file was given without a blurred image"
    message = refused(runner, JobRequest(blurred, kernel_file=Upload("psf.txt", b"0 1 0\n1 1 1\n")))
    assert message == "psf.txt: not a blur kernel (an image of the PSF, PNG, JPEG, TIFF, BMP, WebP, GIF or FITS, or a .npy array)"
    buffer = io.BytesIO()
    np.save(buffer, np.ones((3, 3, 3)))
    assert refused(runner, JobRequest(blurred, kernel_file=Upload("cube.npy", buffer.getvalue()))) == \
        "cube.npy: a blur kernel must be a 2-D array, got shape (3, 3, 3)"
    large = Upload("wide.png", png_bytes(np.ones((8, 200, 1), np.float32)))
    assert refused(runner, JobRequest(blurred, kernel_file=large)).startswith("wide.png: a blur kernel of 200x8 px")
    buffer = io.BytesIO()
    np.save(buffer, -psf)
    message = refused(runner, JobRequest(blurred, kernel_file=Upload("neg.npy", buffer.getvalue())))
    assert message == "neg.npy: kernel must have a positive sum" and str(runner.root) not in message


def test_the_status_of_a_rule_that_never_stops_says_so():
    from linr.app.jobs import _stop_state
    from linr.stopping import parse_stop

    pick = parse_stop("pick:0.05:25")
    pick.reset()
    assert _stop_state(pick) == "pick rule: watching; runs the whole budget"
    holdout = parse_stop("holdout:0.05:40")
    holdout.reset()
    assert "whole budget" not in _stop_state(holdout)


def test_size_and_pixel_limits(crops):
    _, noisy = crops
    small = JobRunner(device="cpu", limits=UploadLimits(max_bytes=1000, max_pixels=500))
    try:
        message = refused(small, JobRequest({"noisy": Upload("shot.png", png_bytes(noisy))}))
        assert "shot.png:" in message and "more than this app accepts" in message
    finally:
        small.close()
    few = JobRunner(device="cpu", limits=UploadLimits(max_pixels=500))
    try:
        assert refused(few, JobRequest({"noisy": Upload("shot.png", png_bytes(noisy))})) == \
            "shot.png: 32x32 is 1,024 pixels, more than this app restores (500)"
        tiny = png_bytes(noisy[:16, :16])
        assert refused(few, JobRequest({"lowres": Upload("small.png", tiny)}, factor=4)) == \
            "the restored image would be 64x64 = 4,096 pixels, more than this app restores (500)"
    finally:
        few.close()


# --- running ------------------------------------------------------------------------------------


def test_a_short_restoration_through_the_job_api(runner, crops):
    clean, noisy = crops
    job = runner.submit(JobRequest({"noisy": Upload("shot.png", png_bytes(noisy))},
                                   reference=Upload("clean.png", png_bytes(clean)),
                                   model=QUICK, steps=200))
    assert job.wait(timeout=600), job.describe()
    assert job.state == "done", job.describe()
    result = job.result
    from linr.images import read_image

    written, info = read_image(result.path)
    assert result.path.name == "shot_restored.png" and info.bit_depth == 8
    before, after = psnr(clean, noisy), psnr(clean, written)
    assert after > before + 1.0, (before, after)
    assert result.metrics["standard"]["psnr"] == pytest.approx(psnr(clean, result.image), abs=1e-6)
    assert job.describe().startswith(f"done: {result.steps_run} steps")
    assert job.preview is not None and job.preview.shape == (32, 32, 3)
    assert np.array_equal(job.before, noisy)
    # the report, a JSON file next to the result: settings, steps, stop, timings, metrics
    import json

    assert result.report_path == result.path.with_name("shot_report.json")
    text = result.report_path.read_text(encoding="utf-8")
    assert str(runner.root) not in text  # upload names only, never a private path
    report = json.loads(text)
    assert report == json.loads(json.dumps(result.report))
    assert report["output"] == "shot_restored.png" and report["bit_depth"] == 8
    assert report["app"] == {"inputs": {"noisy": "shot.png"}, "preset": "default", "steps": 200,
                             "seed": 0, "device": "cpu", "reference": "clean.png"}
    assert report["steps_run"] == result.steps_run and report["stop_step"] == result.stop_step
    assert report["stop_reason"] == result.stop_reason
    # a noisy photo under the default preset: refined after the fit, as linr restore does
    assert report["settings"]["refine"]["name"] == "grouped" and "refine_s" in report["timings"]
    # a small noisy photo: its average chosen by SURE after the fit, as linr restore chooses it
    stop = report["settings"]["stop"]
    assert stop["name"] == "sure" and stop["sure"]["step"] == result.stop_step and "sure_s" in report["timings"]
    assert report["settings"]["model"]["width"] == 64
    assert report["timings"]["fit_s"] == pytest.approx(result.fit_s)
    assert len(report["history"]["loss"]) == result.steps_run
    assert report["metrics"]["standard"]["psnr"] == pytest.approx(result.metrics["standard"]["psnr"])
    assert report["input_psnr"] == [{"kind": "noisy", "psnr": pytest.approx(psnr(clean, noisy), abs=1e-3)}]
    from linr.app.page import _metrics_text

    assert f"; the noisy photo {psnr(clean, noisy):.2f} dB" in _metrics_text(job, "clean.png")
    runner.discard(job.id)
    assert not job.folder.exists() and runner.get(job.id) is None


def test_a_photo_fitted_whole_comes_back_as_linr_restore_gives_it(runner, tmp_path, monkeypatch):
    """A dark noisy photo clipped at black, fitted whole: the app's image is linr.restore's to the
    bit, mapped back through the clipped noise (it once skipped that and returned the fit as it
    was, 0.04 away on this photo), and the page's stop state is that of the rule the fit consults."""
    import linr
    import linr.app.jobs
    from linr.images import read_image

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:32, 0:32] / 32
    clean = (0.06 + 0.05 * np.sin(6 * xx) * np.cos(3 * yy))[..., None]
    noisy = np.round(np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1) * 255) / 255
    data = png_bytes(noisy)
    states = []
    stop_state = linr.app.jobs._stop_state
    monkeypatch.setattr(linr.app.jobs, "_stop_state", lambda rule: states.append(stop_state(rule)) or states[-1])
    job = runner.submit(JobRequest({"noisy": Upload("dark.png", data)}, steps=12))
    assert job.tiles == 0
    assert job.wait(timeout=300) and job.state == "done", job.describe()
    (tmp_path / "dark.png").write_bytes(data)
    photo, _ = read_image(tmp_path / "dark.png")
    expected = linr.restore(linr.noisy(photo), steps=12, seed=0, device="cpu", progress=False)
    assert expected.settings["clipping"]["clipped_at_black"]
    assert job.result.report["settings"]["clipping"] == expected.settings["clipping"]
    assert np.array_equal(job.result.image, np.clip(expected.image, 0, 1))
    assert any("best so far at step" in state for state in states), states


def test_a_16_bit_input_gives_a_16_bit_png(runner, crops):
    _, noisy = crops
    job = runner.submit(JobRequest({"noisy": Upload("deep.png", png_bytes(noisy[:16, :16], 16))},
                                   model=ModelConfig(width=16), steps=3))
    assert job.wait(timeout=300) and job.state == "done", job.describe()
    from linr.images import read_image

    assert job.result.bit_depth == 16 and read_image(job.result.path)[1].bit_depth == 16


def test_fits_and_webp_uploads_are_restored_and_a_fits_one_comes_back_as_fits(runner, crops, tmp_path):
    from PIL import Image

    from linr.images import read_stored
    from .conftest import handmade_fits

    _, noisy = crops
    counts = 1000.0 + 3000.0 * noisy[:16, :16, 0]
    fits_bytes = handmade_fits(tmp_path / "m51.fits", counts, -32, ("OBJECT  = 'M 51'",)).read_bytes()
    job = runner.submit(JobRequest({"noisy": Upload("m51.fits", fits_bytes)}, model=ModelConfig(width=16), steps=3))
    assert job.wait(timeout=300) and job.state == "done", job.describe()
    (written,) = read_stored(job.result.path)
    assert job.result.path.name == "m51_restored.fits" and written.values.dtype == np.float32
    assert 900 < float(written.values.mean()) < 4100  # in the upload's units (counts), not a picture's [0, 1]
    assert any("M 51" in card for card in written.fits.cards)
    webp = io.BytesIO()
    Image.fromarray((noisy[:16, :16] * 255).round().astype(np.uint8)).save(webp, format="WEBP", lossless=True)
    job = runner.submit(JobRequest({"noisy": Upload("phone.webp", webp.getvalue())}, model=ModelConfig(width=16),
                                   steps=3))
    assert job.wait(timeout=300) and job.state == "done", job.describe()
    assert job.result.path.name == "phone_restored.png"


def test_cancel_stops_a_running_fit_and_the_queue_runs_one_fit_at_a_time(runner, crops):
    _, noisy = crops
    upload = Upload("shot.png", png_bytes(noisy))
    first = runner.submit(JobRequest({"noisy": upload}, preset="paper", model=SMALL, steps=10_000))
    second = runner.submit(JobRequest({"noisy": upload}, preset="paper", model=SMALL, steps=10_000))
    deadline = time.monotonic() + 120
    while first.step < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert first.state == "running" and first.step >= 2, first.describe()
    assert second.state == "queued" and second.describe() == "queued: waiting for the fit before it"
    first.cancel()
    assert first.wait(timeout=30), "the cancelled fit did not stop"
    assert first.state == "cancelled" and first.step < 10_000
    assert first.describe() == f"cancelled at step {first.step}"
    assert first.result is None
    while second.step < 1 and time.monotonic() < deadline:  # the next job starts once it ends
        time.sleep(0.05)
    assert second.state == "running"
    runner.discard(second.id)  # a closed tab: cancelled, its files removed once it lets go
    assert second.wait(timeout=30) and second.state == "cancelled"
    assert not second.folder.exists()


def test_a_photo_above_the_pilot_tile_size_is_restored_in_tiles_as_linr_restore_does(runner, tmp_path):
    """The defaults fit a noisy photo larger than DENOISE_WHOLE_UP_TO in tiles: the app does what
    linr.restore does (same tiles, same image), the progress counts every tile's steps, the
    preview is the whole image, and a cancel stops a tile's fit."""
    import linr
    from linr.images import read_image
    from linr.tasks import DENOISE_WHOLE_UP_TO

    side = DENOISE_WHOLE_UP_TO + 16
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:side, 0:side] / side
    clean = (0.5 + 0.3 * np.sin(6 * xx) * np.cos(4 * yy))[..., None]
    noisy = np.round(np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1) * 255) / 255
    data = png_bytes(noisy)
    job = runner.submit(JobRequest({"noisy": Upload("big.png", data)}, steps=3))
    tiles = job.tiles
    assert tiles >= 4 and job.budget == 3 * tiles
    assert job.wait(timeout=300) and job.state == "done", job.describe()
    assert job.step == job.budget == job.result.steps_run  # every tile ran its 3 steps
    assert job.steps_left == 0 and job.describe().startswith(f"done: {3 * tiles} steps in all")
    # the preview: each tile's fit pasted where it belongs, so nothing of the noisy photo is left
    assert job.preview.shape == (side, side, 1) and (job.preview != job.before).mean() > 0.99
    report = job.result.report
    assert len(report["settings"]["tiles"]) == tiles and report["settings"]["refine"]["name"]
    assert job.result.tiles == tiles and job.refining == report["settings"]["refine"]["name"]

    upload = tmp_path / "big.png"
    upload.write_bytes(data)
    photo, _ = read_image(upload)
    expected = linr.restore(linr.noisy(photo), steps=3, seed=0, device="cpu", progress=False)
    assert len(expected.settings["tiles"]) == tiles
    assert np.allclose(job.result.image, np.clip(expected.image, 0, 1), atol=1e-6)
    written, _ = read_image(job.result.path)
    assert written.shape == (side, side, 1)

    slow = runner.submit(JobRequest({"noisy": Upload("big.png", data)}, steps=10_000))
    deadline = time.monotonic() + 120
    while slow.step < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert slow.state == "running" and "tile 1 of" in slow.describe(), slow.describe()
    assert "each tile stops by itself" in slow.describe()
    assert abs(slow.steps_left - (slow.budget - slow.step)) <= 1  # in tile 1 (read while it runs)
    slow.cancel()
    assert slow.wait(timeout=60) and slow.state == "cancelled", slow.describe()
    assert slow.step < 10_000


def test_the_page_says_when_the_fit_is_refined_and_a_cancel_then_is_honoured(runner, crops, monkeypatch):
    import threading

    import linr.tasks

    _, noisy = crops
    seen, gate = {}, threading.Event()

    def slow_refine(result, name, observations, held_out=None):  # the refinement, while it runs
        gate.wait(60)
        seen["text"] = seen["job"].describe()
        seen["job"].cancel()

    monkeypatch.setattr(linr.tasks, "apply_refine", slow_refine)
    job = runner.submit(JobRequest({"noisy": Upload("shot.png", png_bytes(noisy))}, steps=3))
    seen["job"] = job
    gate.set()
    assert job.wait(timeout=120) and job.state == "cancelled", job.describe()
    assert seen["text"].startswith("running: the fit is done (3 steps); refining its image with the "
                                   "grouped filter"), seen["text"]
    assert job.result is None


# --- the command --------------------------------------------------------------------------------


def test_linr_app_without_gradio_says_how_to_install_it(monkeypatch, capsys):
    from linr.cli import main

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gradio" else real(name, *a))
    assert main(["app"]) == 2
    err = capsys.readouterr().err
    assert err == "linr: error: linr app needs Gradio, which is not installed: pip install 'linr[app]'\n"


def test_the_core_and_the_cli_do_not_import_the_web_library():
    code = ("import sys, linr, linr.cli, linr.app, linr.app.jobs; linr.cli.build_parser(); "
            "print(sorted(m for m in ('gradio', 'fastapi', 'starlette') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --- in a real browser ----------------------------------------------------------------------------


def _browser_missing() -> str | None:
    for module, what in (("gradio", "Gradio (pip install 'linr[app]')"), ("selenium", "Selenium (pip install selenium)")):
        if importlib.util.find_spec(module) is None:
            return f"{what} is not installed"
    if not (shutil.which("chromium") or shutil.which("chromium-browser")):
        return "no Chromium browser (Debian: apt-get install chromium chromium-driver)"
    if not shutil.which("chromedriver"):
        return "no chromedriver (Debian: apt-get install chromium-driver)"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1360"):
        options.add_argument(arg)
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    yield driver
    driver.quit()


def _page(d):
    """``find(css)``, ``status()`` (the page's status line) and ``wait_for(condition, timeout,
    what)`` (poll until truthy, else fail naming what and the status) on the driver ``d``."""
    from selenium.webdriver.common.by import By

    def find(css: str):
        return d.find_element(By.CSS_SELECTOR, css)

    def status() -> str:
        return find("#linr-status").text

    def wait_for(condition, timeout: float, what: str):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = condition()
            if value:
                return value
            time.sleep(0.25)
        raise AssertionError(f"timed out waiting for {what}; status: {status()!r}")

    return find, status, wait_for


@pytest.mark.skipif(_browser_missing() is not None, reason=f"browser test: {_browser_missing()}")
def test_the_page_in_a_headless_browser(browser, crops, tmp_path, monkeypatch):
    from selenium.webdriver.common.by import By

    from linr.app.page import serve

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))  # serve() sets it; restored afterwards
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    clean, noisy = crops
    files = {"noisy.png": png_bytes(noisy), "clean.png": png_bytes(clean), "notes.txt": b"a note\n"}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    page, runner, url = serve("127.0.0.1", _free_port(), device="cpu", block=False)
    try:
        d = browser
        d.get(url)

        find, status, wait_for = _page(d)

        def uploaded(elem_id: str, name: str) -> bool:
            return bool(d.find_elements(By.CSS_SELECTOR, f"#{elem_id} [aria-label='{name}']"))

        wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#linr-start"), 60, "the page")
        # a text file: a message on the page, no traceback
        find("#linr-noisy input[type=file]").send_keys(str(tmp_path / "notes.txt"))
        wait_for(lambda: uploaded("linr-noisy", "notes.txt"), 30, "the upload")
        find("#linr-start").click()
        wait_for(lambda: status().startswith("Error"), 60, "the error message")
        assert status() == "Error: notes.txt: not an image (PNG, JPEG, TIFF, BMP, WebP, GIF or FITS)"
        assert "Traceback" not in d.page_source

        # a noisy crop with its reference, a short fit
        find("#linr-noisy button[aria-label='Clear']").click()
        find("#linr-noisy input[type=file]").send_keys(str(tmp_path / "noisy.png"))
        find("#linr-reference input[type=file]").send_keys(str(tmp_path / "clean.png"))
        wait_for(lambda: uploaded("linr-noisy", "noisy.png") and uploaded("linr-reference", "clean.png"),
                 30, "the uploads")
        d.find_element(By.XPATH, "//label[.//input[@value='fast']]").click()
        steps = find("#linr-steps input")
        steps.clear()
        steps.send_keys("40")
        find("#linr-start").click()
        wait_for(lambda: status().startswith("done"), 300, "the result")
        assert "PSNR" in find("#linr-metrics").text
        link = wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#linr-download a"), 30, "the download")
        href = link[0].get_attribute("href")
        assert href.endswith("noisy_restored.png")
        from PIL import Image

        with urllib.request.urlopen(href) as response:
            restored = np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"), np.float32) / 255
        assert restored.shape == clean.shape
        assert psnr(clean, restored) > psnr(clean, noisy) + 1.0
        report = wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#linr-report a"), 30, "the report")
        assert report[0].get_attribute("href").endswith("noisy_report.json")
        with urllib.request.urlopen(report[0].get_attribute("href")) as response:
            import json

            assert json.loads(response.read())["app"]["inputs"] == {"noisy": "noisy.png"}
        shot = os.environ.get("LINR_APP_SCREENSHOT")
        if shot:
            d.save_screenshot(shot)

        # cancel a long fit
        steps.clear()
        steps.send_keys("5000")
        d.find_element(By.XPATH, "//label[.//input[@value='paper']]").click()
        # a job forecast to be long is said first; Restore again starts it
        import linr.app.jobs
        from linr.forecast import Forecast

        monkeypatch.setattr(linr.app.jobs, "_forecast",
                            lambda prepared: Forecast("5000 steps restoring 32x32", 5400.0, 5400.0))
        find("#linr-start").click()
        wait_for(lambda: status().startswith("This restoration is forecast to take about 90 min on this machine "
                                             "(5000 steps restoring 32x32): press Restore again"), 60, "the question")
        find("#linr-start").click()
        wait_for(lambda: status().startswith("running: step"), 120, "the fit to run")
        # Restore is greyed while the job runs (a click did nothing, unsaid), and free again after the cancel
        wait_for(lambda: not find("#linr-start").is_enabled(), 30, "Restore greyed")
        wait_for(lambda: "still fitting" in find("#linr-after").text, 60, "a preview")
        find("#linr-cancel").click()
        wait_for(lambda: status().startswith("cancelled at step"), 60, "the cancel")
        wait_for(lambda: find("#linr-start").is_enabled(), 30, "Restore free again")
        wait_for(lambda: "still fitting" not in find("#linr-after").text, 30, "the preview's label")
        # reloading the page while a job runs: the browser asks first; the page that comes says the
        # job was cancelled (a job lasts as long as its page), once
        find("#linr-start").click()
        wait_for(lambda: status().startswith("This restoration is forecast"), 60, "the question again")
        find("#linr-start").click()
        wait_for(lambda: status().startswith("running: step"), 120, "the fit to run again")
        asks = "const e = new Event('beforeunload', {cancelable: true}); dispatchEvent(e); return e.defaultPrevented;"
        assert d.execute_script(asks)  # the browser asks before the page is left (ChromeDriver answers it itself)
        d.refresh()
        left = wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#linr-left-job"), 60, "the note of the left job")
        assert left[0].text.startswith("The restoration that was running when this tab last left the page (running: step")
        assert "was cancelled and its files removed" in left[0].text
        wait_for(lambda: not runner._jobs, 60, "the left job's end")  # the unload cancelled it
        assert not d.execute_script(asks)  # no job runs: nothing to ask
        d.refresh()  # and no note on the next page
        wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#linr-start"), 60, "the page")
        wait_for(lambda: status().startswith("Add an image"), 30, "the idle status")
    finally:
        page.close()
        runner.close()
    assert not runner.root.exists()


def _fetch_image(href: str) -> np.ndarray:
    from PIL import Image

    with urllib.request.urlopen(href) as response:
        return np.asarray(Image.open(io.BytesIO(response.read())).convert("RGB"), np.float32) / 255


@pytest.mark.skipif(_browser_missing() is not None, reason=f"browser test: {_browser_missing()}")
def test_two_browser_tabs_at_once_each_get_their_own_result(browser, crops, tmp_path, monkeypatch):
    """Two tabs on one server, each with its own noisy crop, started one right after the other
    (the second waits in the queue): each tab shows and downloads the restoration of its own
    image, closer to its own clean crop than to the other tab's."""
    from selenium.webdriver.common.by import By
    from skimage import data

    from linr.app.page import serve
    from linr.simulate import add_gaussian_noise

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    clean_a, noisy_a = crops
    clean_b = data.astronaut()[300:332, 60:92].astype(np.float32) / 255  # another part of the photo
    noisy_b = (np.round(np.clip(add_gaussian_noise(clean_b, 25, seed=1), 0, 1) * 255) / 255).astype(np.float32)
    assert psnr(clean_a, clean_b) < 15  # different enough to tell the results apart
    (tmp_path / "first.png").write_bytes(png_bytes(noisy_a))
    (tmp_path / "second.png").write_bytes(png_bytes(noisy_b))
    page, runner, url = serve("127.0.0.1", _free_port(), device="cpu", block=False)
    d = browser
    try:
        find, status, wait_for = _page(d)

        def start(name: str) -> None:
            d.get(url)
            wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#linr-start"), 60, "the page")
            find("#linr-noisy input[type=file]").send_keys(str(tmp_path / name))
            wait_for(lambda: d.find_elements(By.CSS_SELECTOR, f"#linr-noisy [aria-label='{name}']"),
                     30, f"the upload of {name}")
            d.find_element(By.XPATH, "//label[.//input[@value='fast']]").click()
            steps = find("#linr-steps input")
            steps.clear()
            steps.send_keys("40")
            find("#linr-start").click()
            wait_for(lambda: status().startswith(("queued", "running", "done")), 60, f"{name}'s job")

        def result(name: str) -> np.ndarray:
            wait_for(lambda: status().startswith("done"), 300, f"{name}'s result")
            link = wait_for(lambda: d.find_elements(By.CSS_SELECTOR, "#linr-download a"), 30, "the download")
            href = link[0].get_attribute("href")
            assert href.endswith(f"{Path(name).stem}_restored.png"), href
            return _fetch_image(href)

        start("first.png")
        first_tab = d.current_window_handle
        d.switch_to.new_window("tab")
        start("second.png")
        with runner._lock:
            assert len(runner._jobs) == 2  # one job per tab, neither replaced the other
        restored_b = result("second.png")
        d.switch_to.window(first_tab)
        restored_a = result("first.png")
    finally:
        page.close()
        runner.close()
    assert not runner.root.exists()
    for own_clean, own_noisy, other_clean, restored in ((clean_a, noisy_a, clean_b, restored_a),
                                                        (clean_b, noisy_b, clean_a, restored_b)):
        assert restored.shape == own_clean.shape
        assert psnr(own_clean, restored) > psnr(other_clean, restored) + 5
        assert psnr(own_clean, restored) > psnr(own_clean, own_noisy) + 1.0


def test_the_page_says_what_a_long_job_will_cost_before_its_fit(runner, crops, monkeypatch):
    import linr.tasks
    from linr.app.page import render_status

    _, noisy = crops
    asked: list[dict] = []

    def forecast(observations, **options):  # as linr restore's line for a long restoration
        from linr.forecast import Forecast

        asked.append(options)
        return Forecast("about 40 min for the fit\nwarning: <the refinement> may not fit in memory", 3000.0, 300.0)

    monkeypatch.setattr(linr.tasks, "restore_cost", forecast)
    job = runner.submit(JobRequest({"noisy": Upload("shot.png", png_bytes(noisy))}, model=SMALL, steps=3))
    assert job.wait(timeout=300) and job.state == "done", job.describe()
    assert job.forecast == "about 40 min for the fit\nwarning: <the refinement> may not fit in memory"
    assert asked == [{"tile": "auto", "tile_stack": 1, "threads": None, "detail": True, "preset": None, "steps": 3,
                      "seed": 0, "device": "cpu", "model": SMALL}]  # what the job restores with (when submitted)
    job.state = "running"  # as the page shows it while the fit runs
    shown = render_status(job)
    assert ('<p class="linr-forecast" id="linr-forecast">Before the fit: about 40 min for the fit<br>'
            "warning: &lt;the refinement&gt; may not fit in memory</p>") in shown
    job.state = "done"
    assert "linr-forecast" not in render_status(job)  # the done line says what it took

    def broken(observations, **options):
        raise RuntimeError("no throughput")

    monkeypatch.setattr(linr.tasks, "restore_cost", broken)  # a forecast that fails never stops the job
    job = runner.submit(JobRequest({"noisy": Upload("shot.png", png_bytes(noisy))}, model=SMALL, steps=3))
    assert job.wait(timeout=300) and job.state == "done" and job.forecast is None, job.describe()


def test_the_preset_help_reads_its_sizes_from_the_defaults(monkeypatch):
    """The page's help says the sizes the defaults use (it wrote 1024 and the rest by hand)."""
    from linr import tasks
    from linr.app.page import preset_help

    text = preset_help()
    assert f"above {tasks.SR_NARROW_ABOVE} px at x4: fitted by a SIREN 7x{tasks.DEFAULT_SR_MODEL.width}" in text
    assert f"tiles of about {tasks.TILE_SIZE} px (anything above {tasks.TILE_WHOLE_UP_TO} px" in text
    monkeypatch.setattr(tasks, "SR_NARROW_ABOVE", 2048)
    monkeypatch.setattr(tasks, "INPAINT_PILOT_MISSING_UP_TO", 0.05)
    text = preset_help()
    assert "above 2048 px at x4" in text and "at most 5% of its pixels" in text


def test_a_mask_drawn_with_the_damage_in_white_is_read_the_other_way_round(runner, crops):
    """The page's check box ('the mask marks the damage in white') is restore's --mask-white missing."""
    clean, _ = crops
    damage = np.zeros((32, 32, 1), np.float32)
    damage[10, :] = damage[:, 20] = 1.0
    photo = np.where(damage > 0, 1.0, clean).astype(np.float32)
    job = runner.submit(JobRequest({"masked": Upload("scratched.png", png_bytes(photo))},
                                   mask=Upload("damage.png", png_bytes(damage)), mask_white="missing",
                                   steps=2, model=ModelConfig(width=8, depth=1)))
    assert job.wait(timeout=300) and job.state == "done", job.describe()
    settings = job.result.report["settings"]
    operator = settings["observations"][0]["operator"]
    photo_mask = operator["operators"][0] if operator["name"] == "compose" else operator  # then the stop's held-out
    assert photo_mask["kept_fraction"] == pytest.approx(1 - 63 / 1024, abs=1e-6)
    kept = damage[..., 0] == 0  # the observed pixels come back as they were (grouped-fill keeps them)
    assert np.abs(job.result.image[kept] - np.round(photo * 255)[kept] / 255).max() < 1 / 255 + 1e-6


def test_a_cancel_during_the_refinement_ends_it_there_and_the_page_says_how_far_it_came(runner, monkeypatch):
    """A tab closed during a refinement of minutes kept the next user's job waiting: the refinement
    cannot stop midway, so its progress reports now end it once the job is cancelled; the page says
    its share done and the seconds of refining (not of the whole job)."""
    import linr.tasks

    rng = np.random.default_rng(3)
    noisy = np.clip(0.5 + 0.2 * rng.standard_normal((48, 48, 1)), 0, 1).astype(np.float32)
    seen: dict = {}
    real_refine = linr.tasks.apply_refine

    def watched_refine(*args, **kwargs):
        from linr import progress

        progress.report(0.25)  # as the refiners report: the page's listener hears it
        seen["text"] = seen["job"].describe()
        seen["job"].cancel()
        try:
            real_refine(*args, **kwargs)
        except BaseException as exc:
            seen["raised"] = type(exc).__name__
            raise
        seen["finished"] = True

    monkeypatch.setattr(linr.tasks, "apply_refine", watched_refine)
    job = runner.submit(JobRequest({"noisy": Upload("shot.png", png_bytes(noisy))}, steps=3))
    seen["job"] = job
    assert job.wait(timeout=120) and job.state == "cancelled", job.describe()
    assert seen.get("raised") == "JobCancelled" and "finished" not in seen
    assert "refining its image with the grouped filter: 25%" in seen["text"] and "s of refining so far" in \
        seen["text"], seen["text"]


def test_the_page_says_what_image_of_the_fit_came_back_as_linr_restore_says_it(runner, crops):
    """The page said 'returned the iterate of step N' where the fit returned a mean of iterates
    (linr restore said so): both now read linr.fit.FitResult.returned."""
    _, noisy = crops
    job = runner.submit(JobRequest({"noisy": Upload("shot.png", png_bytes(noisy))}, preset="fast", steps=60))
    assert job.wait(timeout=300) and job.state == "done", job.describe()
    stop = job.result.report["settings"]["stop"]
    assert stop["returned"] == "average"
    assert job.describe().endswith(f"; returned the mean of up to {stop['average'][6:]} iterates ending at step "
                                   f"{job.result.stop_step}"), job.describe()


def test_holes_given_as_transparent_pixels_need_no_mask(runner, crops, tmp_path):
    """The page refused an RGBA photo whose holes are transparent ('needs its mask') where linr
    restore --masked takes them: restored as restore restores it, and written opaque."""
    import linr
    from linr.images import read_image

    clean, _ = crops
    alpha = (np.random.default_rng(5).random(clean.shape[:2]) < 0.8).astype(np.float32)[..., None]
    data = png_bytes(np.concatenate([clean * alpha, alpha], axis=2))
    job = runner.submit(JobRequest({"masked": Upload("holes.png", data)}, steps=5))
    assert job.wait(timeout=300) and job.state == "done", job.describe()
    written, info = read_image(job.result.path)
    assert info.alpha is None and written.shape == clean.shape
    (tmp_path / "holes.png").write_bytes(data)
    from linr.scene import load_scene

    observations, _, _ = load_scene({"masked": str(tmp_path / "holes.png")}, {})
    expected = linr.restore(observations, steps=5, seed=0, device="cpu", progress=False)
    assert np.array_equal(job.result.image, np.clip(expected.image, 0, 1))
    runner.discard(job.id)
    opaque = png_bytes(np.concatenate([clean, np.ones_like(alpha)], axis=2))
    assert refused(runner, JobRequest({"masked": Upload("opaque.png", opaque)})).startswith(
        "opaque.png: an image with missing pixels needs its mask")


def test_a_job_forecast_to_take_long_is_said_before_it_starts_and_starts_when_asked_again(runner):
    """A new user's 3000 x 20 low-res strip at x4 (12000 x 80) started at once, forecast at hours:
    the page now says the forecast first; the same request confirmed starts it."""
    from linr.app.jobs import ASKS_FROM_SECONDS, LongJob

    strip = np.random.default_rng(0).random((20, 3000, 3)).astype(np.float32)
    request = JobRequest({"lowres": Upload("strip.png", png_bytes(strip))}, factor=4)
    with pytest.raises(LongJob) as info:
        runner.submit(request)
    message = str(info.value)
    assert message.startswith("this restoration is forecast to take about ") and "restoring 12000x80 in " in message
    assert message.endswith("press Restore again to start it, or restore a smaller image")
    assert list(runner.root.iterdir()) == []  # nothing kept of the request asked about
    same = JobRequest({"lowres": Upload("strip.png", png_bytes(strip))}, factor=4)
    assert same.fingerprint() == request.fingerprint()
    assert JobRequest({"lowres": Upload("strip.png", png_bytes(strip))}, factor=2).fingerprint() != request.fingerprint()
    same.confirmed = True
    assert same.fingerprint() == request.fingerprint()
    job = runner.submit(same)
    assert job.forecast_said.likely_seconds == job.forecast_said.seconds >= ASKS_FROM_SECONDS  # a fixed budget
    job.cancel()
    assert job.wait(timeout=120) and job.state == "cancelled"


def test_a_fits_download_keeps_what_is_brighter_than_the_photo_as_linr_restore_writes_it(runner, tmp_path):
    """A deblurred star field comes back brighter than its blurred peak (linr.headroom); the page's
    FITS download clipped it at the photo's maximum, where linr restore keeps it."""
    from scipy.ndimage import convolve

    from linr.images import read_stored
    from linr.operators import gaussian_kernel
    from .conftest import handmade_fits

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:24, :24]
    sky = 20.0 + sum(f * np.exp(-((yy - y) ** 2 + (xx - x) ** 2) / 0.98) for y, x, f in ((8, 8, 3000), (15, 17, 1500)))
    counts = rng.poisson(convolve(sky, gaussian_kernel(9, 1.5), mode="reflect")).astype(np.float64)
    fits_bytes = handmade_fits(tmp_path / "field.fits", counts, -32, ("OBJECT  = 'field'",)).read_bytes()
    job = runner.submit(JobRequest({"blurred": Upload("field.fits", fits_bytes)}, kernel="gaussian:9:1.5",
                                   model=ModelConfig(width=16), steps=3))
    assert job.wait(timeout=300) and job.state == "done", job.describe()
    (written,) = read_stored(job.result.path)
    assert float(written.values.max()) > counts.max(), (written.values.max(), counts.max())
