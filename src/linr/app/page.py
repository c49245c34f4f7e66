"""The web page of ``linr app``, built with Gradio on :mod:`linr.app.jobs` (extra ``linr[app]``).

Only :func:`serve` and :func:`build_page` import Gradio, so that ``linr app`` can say in one line
that it is missing. Gradio keeps uploads in its cache, which :func:`serve` points into the job
runner's private folder (removed on exit); the page reads an upload's bytes only after checking
that its path lies in that cache (Gradio itself refuses any other), and never opens another path.
"""

# no `from __future__ import annotations`: Gradio finds the gr.Request parameters by their
# annotations, which must be the class itself, not a string

import html
import logging
import os
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import InputError, LinrError
from .jobs import PRESET_CHOICES, Job, JobRequest, JobRunner, LongJob, Upload, UploadLimits

log = logging.getLogger(__name__)

__all__ = ["build_page", "serve", "render_status"]

UPLOAD_HEIGHT = 110
IMAGE_HEIGHT = 280

LEAVING_SCRIPT = """<script>
(() => {
  // A job lives as long as its page: leaving or reloading the page while Restore is greyed (a job
  // queued or running) cancels it. The browser asks first; a page left anyway notes it for the
  // next page of this tab (sessionStorage), which says so (build_page's load event).
  const running = () => { const b = document.getElementById("linr-start"); return !!b && b.disabled; };
  addEventListener("beforeunload", (event) => { if (running()) { event.preventDefault(); event.returnValue = ""; } });
  addEventListener("pagehide", () => {
    if (!running()) return;
    const status = document.getElementById("linr-status");
    sessionStorage.setItem("linr-left-job", ((status && status.innerText) || "").trim().slice(0, 300) || "running");
  });
})();
</script>"""
"""Script of the page's head: a browser's question before a page whose job runs is left, and a note of
it for the next page (read back by :data:`LEFT_JOB_READ`)."""

LEFT_JOB_READ = """() => { const left = sessionStorage.getItem("linr-left-job"); sessionStorage.removeItem("linr-left-job");
  return left || ""; }"""
"""The page's load event's script: what the job stood at when this tab's last page was left, once."""


def left_job_status(left: str) -> str:
    """The status block of a page opened in a tab whose last page was left (or reloaded) while its
    job ran (``left``: what the status said then; empty: none was)."""
    if not left:
        return render_status(None)
    return ('<p class="linr-question" id="linr-left-job">The restoration that was running when this tab '
            f"last left the page ({html.escape(left.splitlines()[0][:200])}) was cancelled and its files "
            "removed: a job lasts as long as its page. Add the images again and press Restore to start it "
            "again.</p>")


def preset_help() -> str:
    """The preset selector's help: what each preset does, its sizes read from :mod:`linr.tasks`
    (imported here, when the page is built: it brings torch)."""
    from .. import tasks as t

    narrow_sr = "/".join(f"x{f}" for f in sorted(t.SR_NARROW_FACTORS))
    fast = t.PRESETS["fast"].tile_whole_up_to or t.TILE_WHOLE_UP_TO
    return ("default: the paper's network, stops by itself on noisy images, and a noisy photo "
            "gets a total-variation prior weighted by its noise (not a colour photo whose longer side exceeds "
            f"{t.DENOISE_PRIOR_UP_TO} px), a narrower network (SIREN 7x{t.DEFAULT_PILOT_MODEL.width}) "
            "and, after the fit, a grouped Wiener filter (BM3D's second step) with the fit as its pilot; a photo with "
            f"missing pixels is fitted by the paper's network at half its omega_0 ({t.DEFAULT_INPAINT_MODEL.omega_0:g}), "
            f"or, above {t.INPAINT_PILOT_ABOVE} px with at most {t.INPAINT_PILOT_MISSING_UP_TO:.0%} of its pixels "
            f"missing, by a SIREN 7x{t.DEFAULT_INPAINT_PILOT_MODEL.width}, and gets its missing pixels filled again by "
            "grouped filtering from the fit's image; a noisy photo with a low-res view of it gets the grouped filter, "
            "then reproduces the low-res view exactly, the fit's, the filtered and the projected images blended by the "
            f"pixels the fit held out; a low-res photo (above {t.SR_NARROW_ABOVE} px at {narrow_sr}: fitted by a SIREN "
            f"7x{t.DEFAULT_SR_MODEL.width}, a quarter of the paper's network's work) is made to reproduce itself "
            "exactly and filtered again by grouped filtering (at "
            + ", ".join(f"x{f}" for f in sorted(t.SR_EXAMPLES_FACTORS)) + " also averaged with the photo upscaled by "
            "networks learnt from its own smaller copies); a blurred photo is filtered again by grouped filtering, "
            "each pass brought back to the photo (beside a noisy photo of it, to both photos); large images are "
            f"fitted in tiles of about {t.TILE_SIZE} px (anything above {t.TILE_WHOLE_UP_TO} px; fast: above "
            f"{fast} px), a noisy photo above {t.DENOISE_WHOLE_UP_TO} px in tiles of about {t.DENOISE_TILE_SIZE}; "
            "paper: the paper's fixed step counts, no prior, no filter, never tiles; fast: a smaller network for "
            "denoising, quicker on a CPU")


DISPLAY_SIDE = 256
"""Images are shown enlarged (nearest neighbour, whole factors) to about this many pixels, so that
a small crop can be compared pixel by pixel; 'before' of a super-resolution at the result's size."""


def for_display(image: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    """``image`` (H, W, C) on [0, 1] as 8-bit for the page, enlarged by a whole factor to about
    :data:`DISPLAY_SIDE` pixels (``shape``: first to that (H, W), as 'before' of an SR)."""
    if shape is not None and image.shape[:2] != tuple(shape) and shape[0] % image.shape[0] == 0 \
            and shape[1] % image.shape[1] == 0:
        image = image.repeat(shape[0] // image.shape[0], axis=0).repeat(shape[1] // image.shape[1], axis=1)
    zoom = max(1, DISPLAY_SIDE // max(image.shape[:2]))
    image = image.repeat(zoom, axis=0).repeat(zoom, axis=1)
    out = np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)
    return out[..., 0] if out.ndim == 3 and out.shape[2] == 1 else out


def render_status(job: Job | None, error: str | None = None) -> str:
    """The status block: an error, or where the job stands with a progress bar while it runs."""
    if error is not None:
        return f'<p class="linr-error" id="linr-error">Error: {html.escape(error)}</p>'
    if job is None:
        return '<p class="linr-idle">Add an image, say what it is, and press Restore.</p>'
    text = html.escape(job.describe())
    state = html.escape(job.state)
    if job.state == "failed":
        return f'<p class="linr-error" id="linr-error" data-state="{state}">Error: {html.escape(job.error or "")}</p>'
    bar = forecast = ""
    if job.state == "running" and job.budget:
        bar = f'<progress max="{job.budget}" value="{job.budget - job.steps_left}" style="width:100%"></progress>'
    if job.state == "running" and job.forecast:
        lines = "<br>".join(html.escape(line) for line in job.forecast.splitlines())
        forecast = f'<p class="linr-forecast" id="linr-forecast">Before the fit: {lines}</p>'
    return f'<div data-state="{state}" class="linr-state">{bar}<p>{text}</p>{forecast}</div>'


def render_question(text: str) -> str:
    """A long job's forecast, said before it starts (:class:`~linr.app.jobs.LongJob`)."""
    return f'<p class="linr-question" id="linr-question">{html.escape(text[:1].upper() + text[1:])}</p>'


def _metrics_text(job: Job, reference_name: str | None) -> str:
    result = job.result
    if result is None or result.metrics is None:
        return ""
    std = result.metrics["standard"]
    similarity = f"SSIM {std['ssim']:.4f}" if std["ssim"] is not None else f"SSIM {std['ssim_note']}"
    inputs = "".join(f"; the {d['kind']} photo {d['psnr']:.2f} dB" for d in result.report.get("input_psnr", []))
    scale = "clipped, data range 1" if std.get("data_range") is None else \
        f"clipped to the reference's range, beyond the photo's, data range {std['data_range']:.4g} times the photo's"
    return (f"**PSNR {std['psnr']:.2f} dB, {similarity}** against "
            f"{html.escape(reference_name or 'the reference')} ({scale}){inputs}")


class _Sessions:
    """Which job belongs to which browser tab (Gradio's session hash): a tab sees only its own."""

    def __init__(self, runner: JobRunner):
        self.runner = runner
        self.jobs: dict[str, str] = {}
        self.asked: dict[str, str] = {}
        """Per tab, the request (:meth:`JobRequest.fingerprint`) whose long forecast was said: sent
        again, it starts."""

    def replace(self, session: str, job: Job | None) -> None:
        old = self.jobs.pop(session, None)
        if old is not None:
            self.runner.discard(old)
        if job is not None:
            self.jobs[session] = job.id

    def job(self, session: str) -> Job | None:
        return self.runner.get(self.jobs.get(session))


def _read_upload(path: str | None, upload_folder: Path) -> Upload | None:
    """The bytes of a file Gradio received, refusing any path outside its upload cache."""
    if not path:
        return None
    real = Path(os.path.realpath(path))
    if not real.is_relative_to(upload_folder):
        raise InputError("that file was not uploaded to this page")
    return Upload(real.name, real.read_bytes())


def build_page(runner: JobRunner, *, poll_s: float = 1.0) -> Any:
    """The Gradio Blocks of the page, running its fits on ``runner``."""
    import gradio as gr
    from gradio.utils import get_upload_folder

    sessions = _Sessions(runner)
    upload_folder = Path(os.path.realpath(get_upload_folder()))

    # delete_cache: Gradio's copies of uploads and shown images go after an hour (checked every 10 min)
    with gr.Blocks(title="linr: restore an image", analytics_enabled=False,
                   delete_cache=(600, 3600)) as page:
        gr.Markdown("## linr: restore an image\nZero-shot restoration with a small neural network "
                    "fitted to your image. Add one image, or several shots of the same scene "
                    "(they are restored jointly), say what each is, and press **Restore**. "
                    "Files stay on this computer and are deleted when you leave.")
        with gr.Row():
            with gr.Column(min_width=180):
                noisy = gr.File(label="noisy image", elem_id="linr-noisy", height=UPLOAD_HEIGHT)
            with gr.Column(min_width=180):
                lowres = gr.File(label="low-resolution image", elem_id="linr-lowres", height=UPLOAD_HEIGHT)
                factor = gr.Number(value=4, precision=0, minimum=1, maximum=16,
                                   label="its factor (the result is this much larger)")
            with gr.Column(min_width=180):
                masked = gr.File(label="image with missing pixels", elem_id="linr-masked", height=UPLOAD_HEIGHT)
                mask = gr.File(label="its mask (white = observed; none when its holes are transparent)", elem_id="linr-mask", height=UPLOAD_HEIGHT)
                mask_white = gr.Checkbox(value=False, label="the mask marks the damage in white (--mask-white missing)",
                                         elem_id="linr-mask-white")
            with gr.Column(min_width=180):
                blurred = gr.File(label="blurred image", elem_id="linr-blurred", height=UPLOAD_HEIGHT)
                kernel = gr.Textbox(value="gaussian:25:1.6", label="its blur (gaussian:WIDTH:SIGMA)")
                kernel_file = gr.File(label="or its blur as a file (PSF image or .npy)", elem_id="linr-kernel",
                                      height=UPLOAD_HEIGHT)
        with gr.Row():
            reference = gr.File(label="clean reference, optional: PSNR/SSIM of the result",
                                elem_id="linr-reference", height=UPLOAD_HEIGHT)
            with gr.Column():
                preset = gr.Radio(list(PRESET_CHOICES), value="default", label="preset",
                                  info=preset_help())
                steps = gr.Number(value=0, precision=0, minimum=0, label="most steps (0: the "
                                  "preset's; per tile when tiled)", elem_id="linr-steps")
        with gr.Row():
            start = gr.Button("Restore", variant="primary", elem_id="linr-start")
            cancel = gr.Button("Cancel", variant="stop", elem_id="linr-cancel")
        status = gr.HTML(render_status(None), elem_id="linr-status")
        with gr.Row():
            before = gr.Image(label="before", interactive=False, format="png", elem_id="linr-before",
                              height=IMAGE_HEIGHT)
            after = gr.Image(label="after", interactive=False, format="png", elem_id="linr-after",
                             height=IMAGE_HEIGHT)
        metrics = gr.Markdown(elem_id="linr-metrics")
        with gr.Row():
            download = gr.File(label="download the result", interactive=False, elem_id="linr-download")
            report = gr.File(label="download the report (JSON: settings, steps, stop, timings, "
                             "metrics)", interactive=False, elem_id="linr-report")

        outputs = [status, before, after, metrics, download, report, start]
        cleared = (None, None, "", None, None)
        # Restore is greyed while this tab's job runs (a click then had done nothing, unsaid: Cancel first)
        busy, free = gr.update(interactive=False), gr.update(interactive=True)

        def run(noisy_path, lowres_path, factor_value, masked_path, mask_path, mask_white_box, blurred_path,
                kernel_spec, kernel_path, reference_path, preset_name, step_budget,
                request: gr.Request) -> Iterator[tuple[Any, ...]]:
            session = request.session_hash
            sessions.replace(session, None)
            try:
                images = {kind: _read_upload(p, upload_folder) for kind, p in
                          (("noisy", noisy_path), ("lowres", lowres_path), ("masked", masked_path),
                           ("blurred", blurred_path))}
                job_request = JobRequest(
                    {kind: up for kind, up in images.items() if up is not None},
                    factor=int(factor_value or 4), mask=_read_upload(mask_path, upload_folder),
                    mask_white="missing" if mask_white_box else "observed",
                    kernel=kernel_spec or "", kernel_file=_read_upload(kernel_path, upload_folder),
                    reference=_read_upload(reference_path, upload_folder),
                    preset=preset_name or "default",
                    steps=int(step_budget) if step_budget else None)
                key = job_request.fingerprint()
                job_request.confirmed = sessions.asked.pop(session, None) == key  # asked already: start it
                job = runner.submit(job_request)
            except LongJob as exc:  # said before it starts: the same request again starts it
                sessions.asked[session] = key
                yield (render_question(str(exc)), *cleared, free)
                return
            except LinrError as exc:
                yield (render_status(None, str(exc)), *cleared, free)
                return
            sessions.replace(session, job)
            before_image = for_display(job.before)
            yield (render_status(job), gr.update(value=before_image, label="before"),
                   gr.update(value=None, label="after"), "", None, None, busy)
            try:
                yield from follow(job, job_request)
            except Exception:  # a bug: said on the page, Restore free again (the traceback in the server's log)
                log.exception("the page's view of job %s failed", job.id)
                yield (render_status(None, "internal error showing the job; see the server's log"),
                       gr.skip(), gr.skip(), "", None, None, free)

        def follow(job: Job, job_request: JobRequest) -> Iterator[tuple[Any, ...]]:
            """The page's view of a running job, every poll, then its result."""
            shown = -1
            while not job.wait(poll_s):
                after_image = gr.skip()
                if job.preview is not None and job.preview_step != shown:
                    shown = job.preview_step
                    after_image = gr.update(value=for_display(job.preview),
                                            label=f"after: step {shown}, still fitting")
                yield (render_status(job), gr.skip(), after_image, "", None, None, gr.skip())
            result = job.result
            if job.state != "done" or result is None:  # the preview's label no longer says 'still fitting'
                stopped = gr.update(label=f"after: step {shown}, {job.state}") if shown >= 0 else gr.skip()
                yield (render_status(job), gr.skip(), stopped, "", None, None, free)
                return
            reference_name = None if job_request.reference is None else job_request.reference.display_name
            shape = result.image.shape[:2]
            yield (render_status(job), for_display(job.before, shape),
                   gr.update(value=for_display(result.image), label="after: restored"),
                   _metrics_text(job, reference_name), str(result.path),
                   None if result.report_path is None else str(result.report_path), free)

        def stop(request: gr.Request) -> None:
            job = sessions.job(request.session_hash)
            if job is not None:
                job.cancel()

        def leave(request: gr.Request) -> None:
            sessions.replace(request.session_hash, None)

        start.click(run, [noisy, lowres, factor, masked, mask, mask_white, blurred, kernel, kernel_file, reference,
                          preset, steps], outputs, show_progress="hidden", concurrency_limit=8,
                    concurrency_id="restore", api_visibility="private")
        cancel.click(stop, None, None, show_progress="hidden", concurrency_limit=None,
                     api_visibility="private")
        page.unload(leave)
        left_job = gr.Textbox(visible=False)
        page.load(left_job_status, left_job, status, js=LEFT_JOB_READ, show_progress="hidden",
                  api_visibility="private")
    return page


def serve(host: str = "127.0.0.1", port: int = 7860, *, device: str = "auto",
          limits: UploadLimits | None = None, block: bool = True) -> tuple[Any, JobRunner, str]:
    """Start the page on ``host:port``; returns (page, runner, url). With ``block`` it serves
    until interrupted and then removes every file it kept."""
    runner = JobRunner(device=device, limits=limits)
    os.environ["GRADIO_TEMP_DIR"] = str(runner.root / "gradio")
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    try:
        import gradio as gr

        page = build_page(runner)
        # system fonts: the page asks nothing of other servers (the default theme loads web fonts)
        theme = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["monospace"])
        page.queue(default_concurrency_limit=None)
        try:
            _, url, _ = page.launch(server_name=host, server_port=port, prevent_thread_lock=True,
                                    max_file_size=runner.limits.max_bytes, ssr_mode=False,
                                    quiet=True, footer_links=[], inbrowser=False, share=False,
                                    theme=theme, head=LEAVING_SCRIPT)
        except OSError as exc:
            raise InputError(f"cannot listen on {host}:{port} ({exc}); choose another --port") from None
    except BaseException:
        runner.close()
        raise
    if not block:
        return page, runner, url
    print(f"linr app: open {url} (Ctrl-C stops it and deletes its files)", flush=True)
    import signal

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # `kill` cleans up like Ctrl-C
    try:
        page.block_thread()
    finally:
        page.close()
        runner.close()
    return page, runner, url
