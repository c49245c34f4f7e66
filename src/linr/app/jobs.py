"""The web app's jobs, without the web: uploads checked into a private folder, one fit at a time
per device, progress with an ETA, a preview every few seconds, cancel, the result at the input's
bit depth. :mod:`linr.app.page` builds the page on this; tests drive it directly.

    >>> runner = JobRunner()                                                # doctest: +SKIP
    >>> job = runner.submit(JobRequest({"noisy": Upload("shot.png", data)})) # doctest: +SKIP
    >>> job.wait(); job.result.path                                         # doctest: +SKIP

Safety: an upload is bytes and a name; the name is used only in messages (its folders dropped),
never as a path. Files live in one private temporary folder (mode 0700), one subfolder per job,
removed when the job is discarded and the whole folder when the runner closes. A blur kernel is
a ``gaussian:WIDTH:SIGMA`` spec or an uploaded file (a measured PSF as an image or a .npy array,
stored in the job's folder like any upload), never a file name. Every problem with an upload
is an :class:`~linr.errors.InputError` with one line that names the upload as the user knows it.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, LinrError

__all__ = ["Upload", "UploadLimits", "JobRequest", "Job", "JobResult", "JobRunner", "JobCancelled",
           "PRESET_CHOICES", "check_upload"]

log = logging.getLogger(__name__)

PRESET_CHOICES = {
    "default": None,
    "paper": "paper",
    "fast": "fast",
}
"""Preset names offered on the page -> the preset given to :func:`linr.tasks.resolve` (None: the
defaults: the paper's network with automatic stopping on noisy inputs)."""

IMAGE_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", ".png"),
    (b"\xff\xd8\xff", ".jpg"),
    (b"II*\x00", ".tif"),
    (b"MM\x00*", ".tif"),
    (b"BM", ".bmp"),
    (b"GIF87a", ".gif"),
    (b"GIF89a", ".gif"),
    (b"SIMPLE  =", ".fits"),
)
"""File signatures of the formats linr reads (and WebP's, ``RIFF....WEBP``, in
:func:`_format_suffix`); an upload is stored under the suffix its bytes say (never the one its
name says)."""
FORMAT_NAMES = "PNG, JPEG, TIFF, BMP, WebP, GIF or FITS"
"""The formats an upload may be in, for messages."""


class JobCancelled(Exception):
    """Raised inside the fit (from its per-step callback) when its job was cancelled."""


ASKS_FROM_SECONDS = 600.0
"""A job forecast to take at least this long (:func:`linr.tasks.restore_cost`: its
:attr:`~linr.forecast.Forecast.likely_seconds`, its fit's step count, or where its automatic stop
usually comes where that was measured, and its refinement) starts only when asked again
(:class:`LongJob`): a new user's 12000 x 80 super-resolution started at once, forecast at 2.5 h."""


class LongJob(InputError):
    """A request forecast to take at least :data:`ASKS_FROM_SECONDS`: the message says so; the same
    request sent again with ``confirmed`` starts it."""


@dataclass(frozen=True)
class Upload:
    """A file as the browser sent it: its name (for messages only) and its bytes."""

    name: str
    data: bytes

    @property
    def display_name(self) -> str:
        """The name without any folders or control characters, at most 80 characters."""
        base = re.split(r"[\\/]", self.name)[-1]
        base = "".join(ch for ch in base if ch.isprintable()).strip()
        return (base or "upload")[:80]


@dataclass(frozen=True)
class UploadLimits:
    """Largest upload accepted, in bytes and in pixels (also the largest restored image)."""

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 1024 * 1024
    max_steps: int = 20_000
    max_kernel_side: int = 129
    """Largest side of an uploaded blur kernel: every fit step convolves the image with it (the
    paper's kernel is 25 px; a measured PSF is cropped to where it is not zero)."""


@dataclass
class JobRequest:
    """What the page sends: images by observation kind (noisy, lowres, masked, blurred) and their
    options, an optional clean reference, the preset and an optional step budget."""

    images: dict[str, Upload]
    factor: int = 4
    mask: Upload | None = None
    mask_white: str = "observed"
    """What the mask's white marks: 'observed', or 'missing' (a mask drawn the other way round, as many
    inpainting tools draw theirs; ``linr restore --mask-white``)."""
    kernel: str = "gaussian:25:1.6"
    kernel_file: Upload | None = None
    """The blur as a file (a PSF image, PNG/TIFF, or a .npy array): used instead of ``kernel``."""
    reference: Upload | None = None
    preset: str = "default"
    steps: int | None = None
    model: Any = None
    """A :class:`~linr.models.ModelConfig` overriding the preset's network (tests: a small one)."""
    seed: int = 0
    confirmed: bool = False
    """Start it even when it is forecast to be long (:class:`LongJob`: the page asks first)."""

    def fingerprint(self) -> str:
        """A digest of everything asked (uploads' names and bytes, options; not ``confirmed``): the
        page starts a long job when the same request comes again."""
        import hashlib

        digest = hashlib.sha256()
        uploads = [(kind, up) for kind, up in sorted(self.images.items())] + \
            [(name, up) for name, up in (("mask", self.mask), ("kernel_file", self.kernel_file),
                                         ("reference", self.reference)) if up is not None]
        for kind, up in uploads:
            digest.update(f"{kind}\0{up.name}\0{len(up.data)}\0".encode())
            digest.update(up.data)
        digest.update(repr((self.factor, self.mask_white, self.kernel, self.preset, self.steps, self.model,
                            self.seed)).encode())
        return digest.hexdigest()


@dataclass
class JobResult:
    """A finished restoration."""

    image: np.ndarray
    """(H, W, C) float32, clipped to [0, 1]."""
    path: Path
    """The result file (PNG, 16-bit when an input had more than 8 bits)."""
    bit_depth: int
    steps_run: int
    stop_step: int
    stop_reason: str
    fit_s: float
    metrics: dict[str, Any] | None
    """``linr.metrics.report`` against the reference, when one was uploaded."""
    report: dict[str, Any] = field(default_factory=dict)
    """The run's report: the app's settings, the fit's settings, steps, stop, timings, metrics
    (as ``linr restore --report`` writes it, with upload names instead of paths)."""
    report_path: Path | None = None
    """The report as a JSON file next to the result, for download."""
    tiles: int = 0
    """How many tiles were fitted (0: one fit of the whole image; ``steps_run`` then counts the
    steps of all tiles and ``stop_step`` is their median stop)."""
    returned: str | None = None
    """What image of its fit the result is, in words (:meth:`linr.fit.FitResult.returned`)."""


@dataclass
class _Prepared:
    observations: list[Any]
    infos: list[Any]
    reference: np.ndarray | None
    config: Any
    stop: Any
    download_name: str
    request: dict[str, Any] = field(default_factory=dict)
    """What the user asked for, for the report: upload names (never paths) and options."""
    grid: Any = None
    """The tiles the restoration fits (:func:`linr.tasks.tile_grid` with ``tile='auto'``, as
    ``linr restore`` does), or None for one fit of the whole image."""
    loaded: list[Any] = field(default_factory=list)
    """The observations as read, before :func:`linr.tasks.resolve` (the job hands them to
    :func:`linr.tasks.restore`, which resolves them itself)."""
    options: dict[str, Any] = field(default_factory=dict)
    """The :func:`linr.tasks.restore` options of a job (preset, steps, seed, device, model)."""
    measured: np.ndarray | None = None
    """The reference's pixels its metrics measure (:func:`_measured_pixels`), or None: every pixel."""


@dataclass
class Job:
    """One restoration: queued, running, then done, cancelled or failed. Read its fields from any
    thread; only the runner's worker writes them."""

    id: str
    folder: Path
    state: str = "queued"
    step: int = 0
    """Steps run so far (over all tiles of a tiled job)."""
    budget: int = 0
    """The most steps the job may run (the step budget times the number of tiles)."""
    left: int | None = None
    """The most steps still to run (None: ``budget - step``; a tiled job's tiles that stopped
    early leave less than that)."""
    tiles: int = 0
    """How many tiles a tiled job fits one after the other (0: one fit of the whole image)."""
    refining: str | None = None
    """The refinement running after the fit (its name), else None."""
    refine_progress: tuple[str, float, float] | None = None
    """How far the refinement has come (:mod:`linr.progress`): the name of its current phase ('' for
    the whole), the share of that phase done and when that phase began (``time.perf_counter``)."""
    refine_started: float | None = None
    """When the refinement (or the SURE pick before it) began (``time.perf_counter``)."""
    forecast: str | None = None
    """What the restoration was expected to cost when its fit began (``linr restore``'s line,
    :func:`linr.tasks.restore_cost`), or None for a short one."""
    forecast_said: Any = None
    """The :class:`~linr.forecast.Forecast` made when the job was submitted (None: not said)."""
    automatic_stop: bool = False
    started: float | None = None
    elapsed_s: float = 0.0
    stop_state: str = ""
    before: np.ndarray | None = field(default=None, repr=False)
    """The first observation, (h, w, C) on [0, 1]: the 'before' of the comparison."""
    preview: np.ndarray | None = field(default=None, repr=False)
    """The current restoration, refreshed every few seconds while the fit runs."""
    preview_step: int = 0
    result: JobResult | None = None
    error: str | None = None
    queue_position: int = 0
    """While queued: how many jobs are ahead of it (the running one included)."""
    _prepared: _Prepared | None = field(default=None, repr=False)
    _released: bool = field(default=False, repr=False)
    """Whether the worker is done with the job's files (set under the runner's lock)."""
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _finished: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def finished(self) -> bool:
        return self._finished.is_set()

    def cancel(self) -> None:
        """Ask the fit to stop: it ends at its next step (a queued job never starts)."""
        self._cancel.set()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job is finished; False on timeout."""
        return self._finished.wait(timeout)

    @property
    def eta_s(self) -> float | None:
        """Seconds left if the whole step budget runs (an upper bound under an automatic stop)."""
        if self.state != "running" or self.step < 1:
            return None
        return self.elapsed_s / self.step * max(self.steps_left, 0)

    @property
    def steps_left(self) -> int:
        """The most steps still to run."""
        return self.budget - self.step if self.left is None else self.left

    def describe(self) -> str:
        """One line for the page: where the job stands."""
        if self.state == "queued":
            ahead = self.queue_position
            return ("queued: waiting for the fit before it" if ahead == 1 else
                    f"queued: waiting for {ahead} fits before it" if ahead > 1 else "queued: starting")
        if self.state == "running":
            if self.step == 0:
                return "running: setting up the fit"
            if self.refining is not None:
                now = time.perf_counter()
                seconds = now - (self.refine_started or now)
                if self.refining == "sure":  # the SURE pick of a small noisy photo's stop (linr.sure)
                    return (f"running: the fit is done ({self.step} steps); choosing its stop by SURE of the "
                            f"refined image: the pilot fitted once more ({seconds:.0f} s so far)")
                return (f"running: the fit is done ({self.step} steps); refining its image with the "
                        f"{self.refining} filter{_refine_pace(self.refine_progress, now)} ({seconds:.0f} s of "
                        "refining so far)")
            budget = f"at most {self.budget}" if self.automatic_stop else f"{self.budget}"
            eta = self.eta_s
            left = "" if eta is None else (f", at most {eta:.0f} s left" if self.automatic_stop
                                           else f", about {eta:.0f} s left")
            text = f"running: step {self.step} of {budget} ({self.elapsed_s:.0f} s{left})"
            return f"{text}; {self.stop_state}" if self.stop_state else text
        if self.state == "done" and self.result is not None:
            r = self.result
            if r.tiles:
                return f"done: {r.steps_run} steps in all in {r.fit_s:.1f} s; {r.stop_reason}"
            returned = "" if r.returned is None else f"; returned {r.returned}"
            return f"done: {r.steps_run} steps in {r.fit_s:.1f} s; {r.stop_reason}{returned}"
        if self.state == "cancelled":
            return f"cancelled at step {self.step}"
        return f"error: {self.error}"


# --- checking uploads ---------------------------------------------------------------------------


def _format_suffix(data: bytes) -> str | None:
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    for magic, suffix in IMAGE_MAGIC:
        if data.startswith(magic):
            return suffix
    return None


def _pixel_count(path: Path, suffix: str) -> tuple[int, int]:
    """(width, height) from the file's header, without decoding its pixels."""
    if suffix == ".tif":
        import tifffile

        with tifffile.TiffFile(path) as tif:
            shape = tif.pages[0].shape
        if len(shape) < 2:
            raise ValueError("not an image")
        rgb_last = len(shape) == 3 and shape[2] in (1, 2, 3, 4)
        height, width = (shape[0], shape[1]) if rgb_last or len(shape) == 2 else (shape[-2], shape[-1])
        return int(width), int(height)
    if suffix == ".fits":  # its header, read by linr (Pillow's reader misreads the samples)
        from ..images import read_stored

        height, width = read_stored(path)[0].values.shape[:2]
        return int(width), int(height)
    from PIL import Image

    with Image.open(path) as img:
        return img.size


def check_upload(upload: Upload, folder: Path, stem: str, limits: UploadLimits) -> Path:
    """Store ``upload`` in ``folder`` as ``stem`` plus the suffix its bytes say, after checking its
    size, its format (by signature) and its pixel count from the header. Returns the path."""
    name = upload.display_name
    _check_bytes(upload, limits)
    suffix = _format_suffix(upload.data)
    if suffix is None:
        raise InputError(f"{name}: not an image ({FORMAT_NAMES})")
    path = _store(upload, folder / f"{stem}{suffix}")
    from PIL import Image

    try:
        width, height = _pixel_count(path, suffix)
    except Image.DecompressionBombError:
        raise InputError(f"{name}: image too large (more than {limits.max_pixels:,} pixels)") from None
    except InputError as exc:  # linr's own reader (FITS): its reason, the upload's name for the path
        raise InputError(f"{name}: {str(exc).split(': ', 1)[-1]}") from None
    except Exception as exc:
        raise InputError(f"{name}: not a readable image ({exc.__class__.__name__})") from None
    if width * height > limits.max_pixels:
        raise InputError(f"{name}: {width}x{height} is {width * height:,} pixels, more than this "
                         f"app restores ({limits.max_pixels:,})")
    return path


NPY_MAGIC = b"\x93NUMPY"


def check_kernel_upload(upload: Upload, folder: Path, limits: UploadLimits) -> Path:
    """Store an uploaded blur kernel (an image of the PSF, or a .npy array by its signature) in
    ``folder`` after checking that it reads as one of at most ``limits.max_kernel_side`` px a
    side (:func:`linr.kinds.parse_kernel`'s checks follow when the job is resolved)."""
    name = upload.display_name
    if upload.data.startswith(NPY_MAGIC):
        _check_bytes(upload, limits)
        path = _store(upload, folder / "kernel.npy")
        try:
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        except Exception as exc:
            raise InputError(f"{name}: not a readable .npy kernel ({exc.__class__.__name__})") from None
        if len(shape) != 2:
            raise InputError(f"{name}: a blur kernel must be a 2-D array, got shape {tuple(shape)}")
        height, width = shape
    elif _format_suffix(upload.data) is None:
        raise InputError(f"{name}: not a blur kernel (an image of the PSF, {FORMAT_NAMES}, or a .npy array)")
    else:
        path = check_upload(upload, folder, "kernel", limits)
        width, height = _pixel_count(path, path.suffix)
    if max(height, width) > limits.max_kernel_side:
        raise InputError(f"{name}: a blur kernel of {width}x{height} px; this app takes kernels of at most "
                         f"{limits.max_kernel_side} px a side (crop it to where the PSF is not zero)")
    return path


def _check_bytes(upload: Upload, limits: UploadLimits) -> None:
    """An upload's size: not empty, at most ``limits.max_bytes``."""
    if len(upload.data) == 0:
        raise InputError(f"{upload.display_name}: the file is empty")
    if len(upload.data) > limits.max_bytes:
        raise InputError(f"{upload.display_name}: {len(upload.data) / 2**20:.1f} MB is more than this app accepts "
                         f"({limits.max_bytes / 2**20:.0f} MB)")


def _store(upload: Upload, path: Path) -> Path:
    """Write an upload's bytes to a new private file ``path`` (never over an existing one)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(upload.data)
    return path


def _public(message: str, names: dict[str, str], folder: Path) -> str:
    """``message`` with every private file path replaced by the name the user uploaded."""
    for path, name in sorted(names.items(), key=lambda item: -len(item[0])):
        message = message.replace(path, name)
    return message.replace(str(folder), "upload")


def _download_name(upload: Upload, stored: str | os.PathLike) -> str:
    """The result's file name: the upload's name, ``_restored``, and ``.fits`` for a FITS upload
    (``stored``: where it was stored, under the suffix its bytes say), else ``.png``."""
    stem = Path(upload.display_name).stem
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "image"
    return f"{stem[:60]}_restored{'.fits' if Path(stored).suffix == '.fits' else '.png'}"


def _transparent_holes(path: str) -> bool:
    """Whether the stored image has holes of its own (:func:`linr.kinds.transparent_holes`), which
    ``linr restore --masked`` takes as the missing pixels without a mask."""
    from ..images import read_image
    from ..kinds import transparent_holes

    try:
        return transparent_holes(read_image(path)[1])
    except LinrError:
        return True  # unreadable: the scene's reader says why, naming the upload


def prepare(request: JobRequest, folder: Path, limits: UploadLimits, device: str) -> _Prepared:
    """Check every upload and option of ``request`` (files go to ``folder``) and resolve the fit.
    Raises :class:`InputError` with one line naming the upload."""
    from ..kinds import KINDS

    unknown = [kind for kind in request.images if kind not in KINDS]
    if unknown:
        raise InputError(f"unknown observation kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    images = {kind: up for kind, up in request.images.items() if up is not None}
    if not images:
        raise InputError("add at least one image (noisy, low-res, masked or blurred)")
    if request.preset not in PRESET_CHOICES:
        raise InputError(f"unknown preset {request.preset!r}; choose from {', '.join(PRESET_CHOICES)}")
    if request.steps is not None and not 1 <= request.steps <= limits.max_steps:
        raise InputError(f"steps must be between 1 and {limits.max_steps}, got {request.steps}")
    if "masked" not in images and request.mask is not None:
        raise InputError("a mask was given without a masked image")
    if "lowres" in images and not 1 <= int(request.factor) <= 16:
        raise InputError(f"the low-res factor must be between 1 and 16, got {request.factor}")
    kernel = (request.kernel or "").strip()
    if request.kernel_file is not None and "blurred" not in images:
        raise InputError("a blur kernel file was given without a blurred image")
    if "blurred" in images and request.kernel_file is None and not kernel.startswith("gaussian:"):
        raise InputError(f"blur kernel {kernel!r}: give it as gaussian:WIDTH:SIGMA, e.g. gaussian:25:1.6")

    names: dict[str, str] = {}
    files: dict[str, str] = {}
    for kind, upload in images.items():
        path = check_upload(upload, folder, kind, limits)
        files[kind], names[str(path)] = str(path), upload.display_name
    if "masked" in images and request.mask is None and not _transparent_holes(files["masked"]):
        raise InputError(f"{images['masked'].display_name}: an image with missing pixels needs its mask (white = "
                         "observed), or its holes transparent (alpha 0)")
    options: dict[str, Any] = {"factor": int(request.factor)}
    if request.mask is not None:
        path = check_upload(request.mask, folder, "mask", limits)
        options["mask"], names[str(path)] = str(path), request.mask.display_name
        if request.mask_white != "observed":
            options["mask_white"] = request.mask_white
    if request.kernel_file is not None:
        path = check_kernel_upload(request.kernel_file, folder, limits)
        options["kernel"], names[str(path)] = str(path), request.kernel_file.display_name
    elif "blurred" in images:
        options["kernel"] = kernel
    reference_path = None
    if request.reference is not None:
        reference_path = check_upload(request.reference, folder, "reference", limits)
        names[str(reference_path)] = request.reference.display_name
    try:
        return _resolve(request, files, options, reference_path, limits, device, images)
    except LinrError as exc:
        raise InputError(_public(str(exc), names, folder)) from None


def _resolve(request: JobRequest, files: dict[str, str], options: dict[str, Any],
             reference_path: Path | None, limits: UploadLimits, device: str,
             images: dict[str, Upload]) -> _Prepared:
    from ..images import read_image
    from ..problem import clean_shape
    from ..scene import load_scene
    from ..tasks import plan_restore

    observations, infos, _ = load_scene(files, options)
    if observations[0].channels not in (1, 3):
        raise InputError(f"the app restores grey and RGB images; this one has {observations[0].channels} "
                         "channels (restore it with linr restore ... -o OUT.tif)")
    height, width = clean_shape(observations)
    if height * width > limits.max_pixels:
        raise InputError(f"the restored image would be {width}x{height} = {height * width:,} "
                         f"pixels, more than this app restores ({limits.max_pixels:,})")
    preset = PRESET_CHOICES[request.preset]
    plan = plan_restore(observations, preset=preset, steps=request.steps, seed=request.seed, device=device,
                        model=request.model, progress=False)  # as the restore will resolve it (tiles included)
    obs, config, grid, stop = plan.obs, plan.config, plan.grid, plan.rule
    reference = None
    if reference_path is not None:
        reference, _ = read_image(reference_path)
        channels = observations[0].channels
        if reference.shape != (height, width, channels):
            raise InputError(f"{reference_path}: the reference is {reference.shape[1]}x"
                             f"{reference.shape[0]} with {reference.shape[2]} channel(s), the "
                             f"restored image will be {width}x{height} with {channels}")
    first = next(kind for kind in files)
    asked: dict[str, Any] = {
        "inputs": {kind: up.display_name for kind, up in images.items()},
        "preset": request.preset,
        "steps": request.steps,
        "seed": request.seed,
        "device": device,
    }
    if "lowres" in images:
        asked["factor"] = int(request.factor)
    if request.mask is not None:
        asked["mask"] = request.mask.display_name
        if request.mask_white != "observed":
            asked["mask_white"] = request.mask_white
    if request.kernel_file is not None:
        asked["kernel"] = request.kernel_file.display_name
    elif "blurred" in images:
        asked["kernel"] = options["kernel"]
    if request.reference is not None:
        asked["reference"] = request.reference.display_name
    options = {"preset": preset, "steps": request.steps, "seed": request.seed, "device": device,
               "model": request.model}
    prepared = _Prepared(obs, infos, reference, config, stop, _download_name(images[first], files[first]), asked,
                         grid, list(observations), options)
    prepared.measured = _measured_pixels(prepared)
    return prepared


# --- running ------------------------------------------------------------------------------------


RETRY_NOTE = "fitting again at the paper's learning rate (the first fit failed: FitConfig.retry_lr)"


def _measured_pixels(prepared: _Prepared) -> np.ndarray | None:
    """The pixels a job's metrics measure: an output keeping transparent pixels, its opaque ones
    (:func:`linr.images.opaque_pixels`, as ``linr restore`` measures them); None: every pixel."""
    from ..images import opaque_pixels, output_info

    if prepared.reference is None:
        return None
    return opaque_pixels(output_info(prepared.infos).alpha, prepared.reference.shape)


def _stop_state(rule: Any) -> str:
    """What an automatic stop rule has seen so far, in words (empty for a fixed step count)."""
    if rule is None:
        return ""
    rules = getattr(rule, "rules", [rule])
    parts = []
    for r in rules:
        tracker = getattr(r, "tracker", None)
        if tracker is not None and not getattr(r, "stops", True):  # looks, never stops (the pick)
            parts.append(f"{r.name} rule: best held-out so far at step {tracker.best_step + 1}; runs the whole budget"
                         if tracker.best_step >= 0 else f"{r.name} rule: watching; runs the whole budget")
        elif tracker is not None and tracker.best_step >= 0:
            parts.append(f"{r.name} rule: best so far at step {tracker.best_step + 1}, stops "
                         f"{tracker.patience} steps after its last new best")
        elif tracker is not None:
            parts.append(f"{r.name} rule: watching")
    return "; ".join(parts)


def _forecast(prepared: _Prepared) -> Any:
    """What this job will cost (:func:`linr.tasks.restore_cost`'s :class:`~linr.forecast.Forecast`, as
    the job restores: tiles chosen automatically, one at a time), or None when it cannot be said
    (only a message: the job runs regardless)."""
    from ..tasks import restore_cost

    try:
        return restore_cost(prepared.loaded, tile="auto", tile_stack=1, threads=None, detail=True, **prepared.options)
    except Exception:  # noqa: BLE001 - never stops the job; its own fit says what is wrong
        log.warning("the cost forecast failed", exc_info=True)
        return None


def _long_job_question(said: Any) -> str:
    """What the page says of a job forecast at :data:`ASKS_FROM_SECONDS` or more, before it starts."""
    from ..engine import format_duration

    return (f"this restoration is forecast to take about {format_duration(said.likely_seconds)} on this machine "
            f"({said.line.splitlines()[0]}): press Restore again to start it, or restore a smaller image")


def _refining(job: Job, name: str) -> None:
    """Say on the page that the fit is done and its image is being refined (a cancel is honoured
    at the refinement's next report of its progress, :func:`_refine_listener`)."""
    job.refining, job.refine_progress, job.refine_started = name, None, time.perf_counter()
    job.stop_state = ""


def _refine_listener(job: Job) -> Any:
    """The :mod:`linr.progress` listener of a job's refinement: it keeps how far the refinement has
    come for the page and ends it (:class:`JobCancelled`) once the job is cancelled: a tab closed
    during a refinement of minutes had kept the next user's job waiting."""

    def hear(phase: str, done: float) -> None:
        if job.cancel_requested:
            raise JobCancelled()
        now, last = time.perf_counter(), job.refine_progress
        began = now if last is None or last[0] != phase or done < last[1] else last[2]  # a new phase: its own pace
        job.refine_progress = (phase, done, began)

    return hear


def _refine_pace(progress: tuple[str, float, float] | None, now: float) -> str:
    """': 40% of PHASE, about N s left' from a refinement's progress, or nothing before its first report."""
    if progress is None:
        return ""
    phase, done, began = progress
    of = f" of {phase}" if phase else ""
    spent = now - began
    left = f", about {spent / done * (1.0 - done):.0f} s left" if done > 0.0 and spent >= 1.0 else ""
    return f": {int(done * 100)}%{of}{left}"


def _as_image(output: Any, scale: float = 1.0) -> np.ndarray:
    """A fit's output (1, C, H, W) on [-1, 1] as an (H, W, C) image on [0, 1] (clipped, to show), its
    values multiplied by ``scale`` first (a fit on a widened scale, :mod:`linr.headroom`: the photo's)."""
    from ..fit import output_image

    return np.clip(output_image(output) * np.float32(scale), 0.0, 1.0)


class _StepWatch:
    """What every step of a job's fit does besides its own progress: the elapsed time, a cancel
    (raised as :class:`JobCancelled`), and whether a preview is due (the first step, then every
    ``every_s`` seconds)."""

    def __init__(self, job: Job, every_s: float):
        self.job, self.every_s, self.last = job, every_s, 0.0

    def preview_due(self, step: int, output: Any) -> bool:
        job = self.job
        job.elapsed_s = time.perf_counter() - job.started
        if job.cancel_requested:
            raise JobCancelled()
        now = time.perf_counter()
        if output is None or (now - self.last < self.every_s and step != 0):
            return False
        self.last = now
        return True


class JobRunner:
    """Runs jobs one at a time on one device, in a worker thread, in submission order.

    ``submit`` checks a request at once (a bad upload raises :class:`InputError` there) and
    queues it. Each job has an unguessable id; the page keeps a user's own id in their session,
    so nobody sees another's job. ``discard`` cancels a job and deletes its files; ``close``
    does so for all and removes the private folder.
    """

    def __init__(self, *, device: str = "auto", limits: UploadLimits | None = None,
                 preview_every_s: float = 2.0, root: str | os.PathLike | None = None):
        from ..problem import resolve_device

        resolve_device(device)  # an unavailable device is an error now, not at the first job
        self.device = device
        self.limits = limits or UploadLimits()
        self.preview_every_s = preview_every_s
        self.root = Path(tempfile.mkdtemp(prefix="linr-app-", dir=root))  # mode 0700
        self._jobs: dict[str, Job] = {}
        self._pending: list[Job] = []
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._threads: int | None = None  # torch's threads in the fitting thread at its first job
        self._worker = threading.Thread(target=self._work, name="linr-app-fit", daemon=True)
        self._worker.start()
        self._closed = False

    def submit(self, request: JobRequest) -> Job:
        if self._closed:
            raise InputError("the app is shutting down")
        job_id = secrets.token_urlsafe(16)
        folder = self.root / job_id
        folder.mkdir(mode=0o700)
        job = Job(job_id, folder)
        try:
            job._prepared = prepare(request, folder, self.limits, self.device)
            job.forecast_said = _forecast(job._prepared)
            likely = None if job.forecast_said is None else job.forecast_said.likely_seconds
            if not request.confirmed and likely is not None and likely >= ASKS_FROM_SECONDS:
                raise LongJob(_long_job_question(job.forecast_said))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        job.before = np.clip(job._prepared.observations[0].image, 0.0, 1.0)
        job.tiles = 0 if job._prepared.grid is None else len(job._prepared.grid.windows)
        job.budget = job._prepared.config.steps * max(job.tiles, 1)
        job.automatic_stop = job._prepared.stop is not None and job._prepared.stop.stops
        with self._lock:
            self._jobs[job_id] = job
            self._pending.append(job)
            self._renumber()
        self._queue.put(job)
        return job

    def get(self, job_id: str | None) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id) if job_id else None

    def discard(self, job_id: str | None) -> None:
        """Cancel the job (if it runs) and delete its files once its fit has let go of them."""
        job = self.get(job_id)
        if job is None:
            return
        job.cancel()
        with self._lock:
            self._jobs.pop(job.id, None)
            released = job._released
        if released:
            shutil.rmtree(job.folder, ignore_errors=True)
        # else: the worker removes the folder when the cancelled fit lets go of it

    def close(self) -> None:
        """Cancel every job, stop the worker and remove the private folder."""
        self._closed = True
        with self._lock:
            jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        self._queue.put(None)
        self._worker.join(timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)

    def _renumber(self) -> None:
        for ahead, job in enumerate(self._pending):  # the first is running (or about to)
            job.queue_position = ahead

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            try:
                self._run(job)
            finally:
                job._prepared = None
                with self._lock:  # decided under the lock with discard(): one of them removes
                    self._pending.remove(job)
                    self._renumber()
                    job._released = True
                    discarded = job.id not in self._jobs
                if discarded:
                    shutil.rmtree(job.folder, ignore_errors=True)
                job._finished.set()

    def _settle_threads(self) -> str | None:
        """Before each job on the CPU: torch's threads as the first job found them, fewer where other
        work holds some of the cores now (:func:`linr.cores.fewer_threads`; not with
        ``OMP_NUM_THREADS`` set): the note that says so (shown with the forecast), or None."""
        import torch

        from ..cores import settle_threads
        from ..problem import resolve_device

        if resolve_device(self.device).type != "cpu":
            return None
        if self._threads is None:
            self._threads = torch.get_num_threads()
        chosen = settle_threads(self._threads)
        return None if chosen is None else chosen.note()

    def _run(self, job: Job) -> None:
        from ..errors import DivergenceError
        from ..tasks import restore

        prepared = job._prepared
        assert prepared is not None
        if job.cancel_requested:
            job.state = "cancelled"
            return
        job.state = "running"
        job.started = time.perf_counter()
        threads = self._settle_threads()
        said = job.forecast_said.line if job.forecast_said is not None else None  # forecast when submitted
        job.forecast = "\n".join(line for line in (said, threads) if line) or None  # the cost first
        watch = _StepWatch(job, self.preview_every_s)
        again, live = {"retry": False}, {"stop": prepared.stop, "headroom": 1.0}  # the rule the restore consults
        # (its plan's) and the scale its fit is on (linr.headroom, linr.defects)

        def each_step(step: int, output: Any, loss: float) -> None:
            again["retry"] |= step + 1 < job.step  # the fit starts over: a failed pilot fitted again
            job.step = step + 1
            if watch.preview_due(step, output):
                job.preview, job.preview_step = _as_image(output, live["headroom"]), step + 1
                job.stop_state = (RETRY_NOTE + "; " if again["retry"] else "") + _stop_state(live["stop"])

        try:
            if prepared.grid is None:  # the fit, then (a small noisy photo) its average chosen by SURE, refined
                # and mapped back as linr restore maps it (a photo clipped at black: linr.clipping)
                result = restore(prepared.loaded, reference=prepared.reference,
                                 measured_pixels=prepared.measured, tile="auto", progress=False,
                                 on_step=lambda step, output, loss, tile: each_step(step, output, loss),
                                 on_refine=lambda name: _refining(job, name), on_refine_progress=_refine_listener(job),
                                 on_plan=lambda plan: live.update(stop=plan.rule, headroom=plan.fit_scale),
                                 threads=None,  # settled above
                                 **prepared.options)
            else:
                result = self._run_tiles(job, prepared)
            if job.cancel_requested:  # asked for after the refinement's last report
                raise JobCancelled()
            job.result = self._finish(job, prepared, result)
            job.state = "done"
        except JobCancelled:
            job.state = "cancelled"
        except DivergenceError as exc:
            job.error, job.state = str(exc), "failed"
        except LinrError as exc:
            job.error, job.state = str(exc), "failed"
        except MemoryError:
            job.error, job.state = "out of memory: try a smaller image", "failed"
        except Exception as exc:  # a bug: one line on the page, the traceback in the server's log
            log.exception("job %s failed", job.id)
            job.error, job.state = f"internal error ({exc.__class__.__name__}); see the server's log", "failed"

    def _run_tiles(self, job: Job, prepared: _Prepared) -> Any:
        """Restore a tiled job with :func:`linr.tasks.restore` (tiles one at a time, each with its own
        stop, then blended and refined, as ``linr restore`` does), the preview showing the tiles
        fitted so far and the current one as it fits."""
        from ..tasks import restore

        budget = prepared.config.steps
        windows = prepared.grid.windows
        before = job.before
        canvas = before.copy() if before is not None and before.shape[:2] == prepared.grid.shape \
            else np.full((*prepared.grid.shape, prepared.observations[0].channels), 0.5, np.float32)
        watch = _StepWatch(job, self.preview_every_s)
        finished = {"tile": 0, "steps": 0, "last": 0, "retry": -1}  # steps of the tiles already done
        scale = {"headroom": 1.0}  # the scale the tiles' fits are on (linr.headroom, linr.defects)

        def each_step(step: int, output: Any, loss: float, tile: int | None) -> None:
            index = tile or 0
            if index != finished["tile"] or step + 1 < finished["last"]:  # a new tile, or one fitted again
                finished["steps"] += finished["last"]
                finished["retry"] = index if index == finished["tile"] else finished["retry"]
                finished["tile"] = index
            finished["last"] = step + 1
            job.step = finished["steps"] + step + 1
            job.left = (len(windows) - index - 1) * budget + budget - step - 1
            if watch.preview_due(step, output):
                rows, cols = windows[index].slices
                canvas[rows, cols] = _as_image(output, scale["headroom"])
                job.preview, job.preview_step = canvas.copy(), job.step
                each = "; each tile stops by itself" if job.automatic_stop else ""
                again = f"; {RETRY_NOTE}" if finished["retry"] == index else ""
                job.stop_state = f"tile {index + 1} of {len(windows)}, its step {step + 1}{each}{again}"

        return restore(prepared.loaded, reference=prepared.reference, measured_pixels=prepared.measured,
                       tile="auto", tile_stack=1,
                       progress=False, on_step=each_step, on_refine=lambda name: _refining(job, name),
                       on_refine_progress=_refine_listener(job), threads=None,
                       on_plan=lambda plan: scale.update(headroom=plan.fit_scale), **prepared.options)

    def _finish(self, job: Job, prepared: _Prepared, result: Any) -> JobResult:
        from ..defects import measured_scale
        from ..images import output_info, write_image
        from ..metrics import json_ready, named_opaque
        from ..tasks import input_psnrs, result_metrics

        image = np.clip(result.image, 0.0, 1.0)
        out = output_info(prepared.infos)  # stored like linr restore's output: its deepest input's profile
        units: dict[str, Any] = {}
        if prepared.download_name.endswith(".fits"):  # FITS as it came: its sample type, units and header
            bit_depth, units = out.bit_depth, {"value_range": out.value_range, "fits": out.fits}
            image = result.image  # written as linr restore writes it: a float one keeps what is brighter than
            # the photo (a deblurred star's peak: linr.headroom), an integer one clipped (linr.images.clips_above)
        else:
            bit_depth = 8 if out.bit_depth == 8 else 16  # a float input is written as a 16-bit PNG
        path = write_image(job.folder / prepared.download_name, image, bit_depth=bit_depth, alpha=out.alpha,
                           icc_profile=out.icc_profile, density=out.density, exif=out.exif, text=out.text, **units)
        rule = None if out.value_range is None else out.value_range.rule
        scale = measured_scale(result.settings, rule or "dtype")  # a hot pixel its white: the scene's range
        if result.metrics is not None and scale != measured_scale(result.settings):  # of the type's, or given
            task = "deblur" if {o.kind for o in prepared.loaded} == {"blurred"} else None
            result.metrics = result_metrics(prepared.reference, result, task, where=prepared.measured, scale=scale)
        metrics = result.metrics  # restore's, on the output's opaque pixels (prepared.measured)
        if metrics is not None and prepared.measured is not None:
            named_opaque(metrics)  # as linr restore's report names them
        run_report: dict[str, Any] = {"output": path.name, "bit_depth": bit_depth,
                                      "app": prepared.request, **result.to_dict()}  # metrics included
        if metrics is not None:
            if inputs := input_psnrs(prepared.loaded, prepared.reference, where=prepared.measured,
                                     scale=scale):  # each input's
                run_report["input_psnr"] = inputs
        run_report = json_ready(run_report)
        report_path = path.with_name(f"{path.stem.removesuffix('_restored')}_report.json")
        report_path.write_text(json.dumps(run_report, indent=2) + "\n", encoding="utf-8")
        tiles = result.settings.get("tiles", [])
        steps = sum(t["steps_run"] for t in tiles) if tiles else result.steps_run
        return JobResult(image, path, bit_depth, steps, result.stop_step, result.stop_reason,
                         result.timings["fit_s"], metrics, run_report, report_path, len(tiles), result.returned())
