"""One image's work, split so that workers only compute and the driver owns every file.

``prepare`` (driver) reads a job's files into observations; ``fit_group`` (a worker process
or a Ray task) fits them and measures; ``finish`` (driver) writes the output atomically and
builds the manifest record. An image restored in tiles goes another way (:func:`restore_tiles`):
the driver runs it, its tiles spread over the same workers and its finished tiles kept beside
its output until it is written, so that a killed batch resumes without refitting them. Because
workers never touch the file system, a Ray cluster needs no shared storage, and the local and Ray backends write their outputs with the same code.
"""

from __future__ import annotations

import datetime as _dt
import platform
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, LinrError
from .plan import Job

__all__ = ["Payload", "Prepared", "prepare", "fit_group", "stack_key", "finish", "failed_record",
           "init_worker", "in_tiles", "restore_tiles"]


@dataclass
class Payload:
    """What a worker needs to restore one image (picklable; no paths)."""

    name: str
    observations: list[Any]
    """:class:`linr.fit.Observation` s, read and checked by the driver."""
    reference: np.ndarray | None
    metric_task: str | None
    """'deblur' for a lone blurred observation (the paper measured it on Y), else None."""
    fit: dict[str, Any]
    """Keyword arguments of :func:`linr.tasks.restore`: preset, steps, lr, seed, device, model."""
    threads: int
    """torch threads for this fit: fixed so that results do not depend on the worker's machine
    (but see :attr:`fewer_where_late`)."""
    fewer_where_late: bool = False
    """The batch chose :attr:`threads` itself (no ``--threads``, no ``OMP_NUM_THREADS``, the local
    backend on a CPU): each fit takes fewer where other work holds cores when it starts
    (:func:`linr.cores.fewer_threads`; a new user's batch, checked once at its start on a quiet
    machine, ran a 64-px photo in 71 s on two late threads where one took 3.4 s)."""
    alpha: np.ndarray | None = None
    """The output's alpha (H, W; None: none): the metrics measure its opaque pixels where it keeps
    transparent ones, as ``linr restore`` measures them (:func:`linr.images.opaque_pixels`)."""
    range_rule: str | None = None
    """How the inputs' values were mapped (:attr:`linr.images.ValueRange.rule`; None: by their type):
    a defect that was a photo mapped by its own maximum ('data') moves the metrics to the scene's range
    (:func:`linr.defects.measured_scale`)."""
    scenes: list[list[Any]] | None = None
    """The scene's frames restored each on its own (``--frames separate``, a Z-stack's default;
    :func:`linr.scene.split_frames`), or None: :attr:`observations` restored as one scene.
    :attr:`reference` is then a list of as many frames (or None)."""

    def each_scene(self) -> list[list[Any]]:
        """The observations of each restoration this image takes: one, or one per frame."""
        return [self.observations] if self.scenes is None else self.scenes


@dataclass
class Prepared:
    """A job read by the driver: the payload plus how to write its output."""

    payload: Payload
    bit_depth: int
    alpha: np.ndarray | None
    started: float
    metrics_error: str | None = None
    """Why the job's reference cannot give metrics (unreadable); the image is restored anyway."""
    value_range: Any = None
    """The input's :class:`~linr.images.ValueRange` (the output is written in its units)."""
    tiff: Any = None
    """A TIFF input's layout and metadata (:class:`~linr.tiff.TiffLayout`)."""
    icc_profile: bytes | None = None
    """The input's colour profile, written into the output."""
    density: Any = None
    """The input's pixels per inch (:class:`~linr.images.Density`), written into the output."""
    input_stamps: dict[str, list[int]] | None = None
    """The input files' sizes and times as read (:meth:`linr.batch.plan.Job.input_stamps`), recorded
    with the image so that a resume notices an input replaced since."""
    fits: Any = None
    """A FITS input's header (:class:`~linr.fits.FitsHeader`), written into a FITS output."""
    frame_names: list[str] | None = None
    """The file name of each frame of the scene as read (a multi-image file's frames as FILE[k]),
    said beside a burst's frame numbers."""
    input_notes: list[str] = field(default_factory=list)
    """What reading the inputs had to say (:func:`linr.scene.load_scene`'s notes, as ``linr restore``
    says them: a noisy JPEG, a mask read from an alpha, values scaled), recorded with the image."""
    exif: bytes | None = None
    """A photo's EXIF (:attr:`linr.images.ImageInfo.exif`), written into a JPEG or PNG output."""
    read_s: float | None = None
    """Seconds the driver took to read and check the job (its share of an image's ``time_s``)."""
    text: dict[str, str] | None = None
    """The input's descriptive text (:attr:`linr.images.ImageInfo.text`), written into the output."""
    stored_type: str | None = None
    """The input's sample type where it was read as another (:attr:`linr.images.ImageInfo.stored_type`)."""


class BackendLost(BaseException):
    """Raised by a backend's ``wait`` when its workers are gone (a Ray cluster that died or was
    stopped): no image's failure, so the run stops and records none (a lost cluster had marked
    every image still to do as failed, those never started too). A BaseException, as KeyboardInterrupt
    is, so that what fails one image (``except Exception``: a tiled image's tiles too) lets it through."""


def one_line(exc: BaseException) -> str:
    """An exception as one line: linr's own messages as they are, others with their class."""
    text = str(exc) if isinstance(exc, LinrError) else f"{exc.__class__.__name__}: {exc}"
    return " ".join(text.split())


def _utc_now() -> str:
    # milliseconds: two runs of one image within a second (a quick failure retried) differ
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def prepare(job: Job, settings: dict[str, Any], *, fit: dict[str, Any], threads: int,
            fewer_where_late: bool = False) -> Prepared:
    """Read a job's observations, mask, kernel and reference (raises on a bad input file)."""
    from ..images import check_output_path, output_info
    from ..scene import default_frames, load_scene, read_references, split_frames

    obs = job.observations
    # The same reader as `linr restore` (linr.scene.load_scene), given this job's files.
    options = {"mask": job.mask, "kernel": job.kernel, "factor": settings["factor"],
               "downsampler": settings["downsampler"], "boundary": settings["boundary"],
               **settings.get("options", {})}  # other kinds' options (linr.batch.SPECIAL_OPTIONS)
    started = time.perf_counter()
    stamps = job.input_stamps()  # before reading: an input replaced during the fit is noticed on resume
    notes: list[str] = []
    given = settings.get("range")  # --range: 'auto' or [LO, HI]
    observations, infos, _ = load_scene(obs, options, weights=settings["weights"], notes=notes,
                                        value_range=tuple(given) if isinstance(given, list) else given)
    frames = settings.get("frames")
    if frames is None:
        frames, said = default_frames(infos)
        notes += [said] if said else []
    scenes = [scene for scene, _ in split_frames(observations, infos)] \
        if frames == "separate" and len(observations) > 1 else None
    if scenes is not None and fit.get("register"):
        raise InputError(f"--register {fit['register']} registers frames against the first one, and these frames are "
                         "restored each on its own (a Z-stack's planes; --frames joint restores them as one scene)")
    if scenes is None and not fit.get("register"):  # as linr restore says it: a shot that looks shifted
        from ..registration import shifted_shots_said

        notes += shifted_shots_said(observations, [str(info.path) for info in infos])
    # a format that cannot hold the result fails now, not after the fit
    check_output_path(job.output, force=True, protect=job.inputs, channels=observations[0].image.shape[2],
                      frames=1 if scenes is None else len(scenes))
    out = output_info(infos, joint=scenes is None)
    reference, metrics_error = None, None
    if job.reference is not None:
        try:  # a reference only adds metrics: a bad one must not cost the restoration
            # read as linr restore reads it (in the inputs' units where their range is not their type's)
            read = read_references(job.reference, out, 1 if scenes is None else len(scenes), notes)
            reference = read[0] if scenes is None else read
        except Exception as exc:  # noqa: BLE001
            metrics_error = f"reference {job.reference}: {one_line(exc)}"
    payload = Payload(
        name=job.name,
        observations=observations,
        reference=reference,
        metric_task="deblur" if list(obs) == ["blurred"] else None,
        fit=fit,
        threads=threads,
        fewer_where_late=fewer_where_late,
        alpha=out.alpha,
        range_rule=None if out.value_range is None else out.value_range.rule,
        scenes=scenes,
    )
    return Prepared(payload, out.bit_depth, out.alpha, started, metrics_error, out.value_range, out.tiff,
                    out.icc_profile, out.density, stamps, out.fits, [Path(str(i.path)).name for i in infos], notes,
                    out.exif, read_s=time.perf_counter() - started, text=out.text, stored_type=out.stored_type)


_WORKER_DEVICE: str | None = None
"""Set in a local worker process that owns one GPU; overrides the payload's device."""


def init_worker(devices: Any, parent: int | None = None) -> None:
    """Initialiser of a local worker process: leave Ctrl-C to the driver, take a GPU if any, and end
    when the driver (``parent``) is gone (:func:`linr.parallel.end_with_parent`: a driver killed by
    SIGKILL left its two workers waiting on their pipes, 290 MB each, for good)."""
    global _WORKER_DEVICE
    if parent is not None:
        from ..parallel import end_with_parent

        end_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if devices is not None:
        _WORKER_DEVICE = devices.get()
        if str(_WORKER_DEVICE).startswith("cuda"):
            import torch

            # tasks that name plain 'cuda' (the tiles of an image: linr.tiling.fit_tile_group)
            # then use this worker's GPU too
            torch.cuda.set_device(_WORKER_DEVICE)


def stack_key(payload: Payload) -> tuple[Any, ...]:
    """Payloads with equal keys can be fitted together (:func:`fit_group`): the same observation
    kinds, sizes and channels give the same preset settings and restored size; an image whose
    frames are restored each on its own is fitted alone."""
    if payload.scenes is not None:
        return ("frames restored each on its own", payload.name)
    return tuple((o.kind, o.shape, o.channels) for o in payload.observations)


def fit_group(payloads: list[Payload]) -> list[dict[str, Any]]:
    """Restore images of one :func:`stack_key`: one alone, several with their models stacked
    (:func:`linr.tasks.restore_many`). Never raises for a failed fit: when a stacked fit fails,
    each image is fitted alone, so that a bad image fails only itself. Each result's ``worker_s``:
    the seconds the worker spent on it (a stack's time shared; a queue's wait before it not counted)."""
    start = time.perf_counter()
    results = _fit_group(payloads)
    each = (time.perf_counter() - start) / len(payloads)  # a stack's images share its time
    return [r if "worker_s" in r else {**r, "worker_s": each} for r in results]


def _fit_group(payloads: list[Payload]) -> list[dict[str, Any]]:
    """:func:`fit_group` without the worker's time per image."""
    import torch

    from ..tasks import restore, restore_many

    first = payloads[0]
    fit = dict(first.fit)
    if _WORKER_DEVICE is not None:
        fit["device"] = _WORKER_DEVICE
    out: dict[str, Any] = {"host": platform.node(), "threads": first.threads, "device": fit["device"]}
    threads = _threads_now(first, fit["device"], out)
    # The thread count changes float summation order, so it is part of what makes outputs
    # reproducible; restored afterwards for the in-process backend.
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if len(payloads) > 1 and fit.get("register"):
            # registered images are not stacked: one by one (images restored in tiles never
            # come here: the driver restores them, linr.batch.run)
            return [r for p in payloads for r in fit_group([p])]  # each its own time
        if len(payloads) > 1:
            try:
                whole = {k: v for k, v in fit.items() if k not in ("tile", "tile_stack", "register")}
                results = restore_many([p.observations for p in payloads], **whole, progress=False, threads=None)
            except Exception:  # noqa: BLE001 - retried one by one below
                return [fit_group([p])[0] for p in payloads]
            # the loop is shared: each image is charged its share of it
            stacked = {**out, "stacked": len(payloads)}
            return [_result(stacked, p, [r], share=len(payloads)) for p, r in zip(payloads, results)]
        try:
            return [_result(out, first, [restore(scene, **fit, progress=False, threads=None)
                                         for scene in first.each_scene()])]
        except Exception as exc:  # noqa: BLE001 - one image's failure must not stop the batch
            return [{**out, "error": one_line(exc)}]
    finally:
        torch.set_num_threads(previous)


def _threads_now(payload: Payload, device: str, out: dict[str, Any]) -> int:
    """The payload's threads, or fewer where the batch chose them and they answer late now
    (:attr:`Payload.fewer_where_late`): then ``out`` (the record's run) gets the count used and
    ``threads_note``, what was found."""
    if not payload.fewer_where_late or payload.threads <= 1 or not str(device).startswith("cpu"):
        return payload.threads
    from ..cores import fewer_threads

    chosen = fewer_threads(payload.threads)
    if chosen is None:
        return payload.threads
    out.update(threads=chosen.threads, threads_note=(f"{chosen.threads} of {payload.threads} threads: an operation took "
                                                     f"{chosen.many_s * 1e3:.1f} ms on {payload.threads} against "
                                                     f"{chosen.one_s * 1e3:.2f} ms on one (other work held cores)"))
    return chosen.threads


def restore_tiles(payload: Payload, *, executor: Any, stores: list[str], where: str) -> dict[str, Any]:
    """Restore an image in tiles from the driver: :func:`linr.tasks.restore` with its tiles
    fitted by ``executor`` (a backend running :func:`linr.tiling.fit_tile_group`) with the
    payload's torch threads, finished tiles kept in the folders ``stores``, one per restoration
    (:meth:`Payload.each_scene`; this batch's: tiles of other settings there are discarded; the
    caller removes them once the output is written).
    Returns a result like :func:`fit_group`'s (``where`` says where the tiles ran); never raises
    for a failed fit."""
    out: dict[str, Any] = {"host": platform.node(), "threads": payload.threads, "device": payload.fit["device"],
                           "tiles_on": where}
    threads = _threads_now(payload, payload.fit["device"], out)
    try:
        from ..tasks import restore

        results = [restore(scene, **payload.fit, progress=False, tile_executor=executor, tile_threads=threads,
                           tile_store=store, tile_store_owned=True, threads=None)
                   for scene, store in zip(payload.each_scene(), stores, strict=True)]
    except Exception as exc:  # noqa: BLE001 - one image's failure must not stop the batch
        return {**out, "error": one_line(exc)}
    return _result(out, payload, results)


def in_tiles(observations: Any, fit: dict[str, Any]) -> bool:
    """Whether :func:`linr.tasks.restore` restores these observations in tiles (as it fits them:
    a burst averaged, photon noise through its transform: :func:`linr.stabilise.as_fitted`)."""
    from ..stabilise import as_fitted
    from ..tasks import nothing_missing, pilot_fit, resolve, resolve_refine, tile_grid

    try:
        observations = as_fitted(observations, register=fit.get("register"), preset=fit.get("preset"),
                                 clipping=fit.get("clipping", "auto"))
        obs, _ = resolve(observations, preset=fit.get("preset"))
        if nothing_missing(obs, resolve_refine(fit.get("refine"), obs, preset=fit.get("preset"),
                                               register=fit.get("register")),
                           ensemble=fit.get("ensemble", 1)):
            return False  # the photo is the result, with no fit (linr.tasks.nothing_missing)
        pilot = pilot_fit(observations, preset=fit.get("preset"), model=fit.get("model"), stop=fit.get("stop"),
                          refine=fit.get("refine"))
        return tile_grid(obs, preset=fit.get("preset"), tile=fit.get("tile", "auto"),
                         register=fit.get("register"), pilot=pilot) is not None
    except Exception:  # noqa: BLE001 - the fit itself reports a bad setting
        return False


def _result(out: dict[str, Any], payload: Payload, results: list[Any], *, share: int = 1) -> dict[str, Any]:
    """A worker's result of an image's restorations (one, or one per frame restored on its own:
    then its image a list of frames, its steps, stops and metrics lists of each frame's, its
    metrics also their mean, its settings the first frame's with ``frames_separate``)."""
    from ..defects import measured_scale
    from ..images import opaque_pixels
    from ..metrics import named_opaque
    from ..tasks import input_psnrs, result_metrics

    metrics, metrics_error, inputs = None, None, None
    references = [payload.reference] if payload.scenes is None else payload.reference
    if references is not None and references[0] is not None:
        try:
            where = opaque_pixels(payload.alpha, references[0].shape)
            scales = [measured_scale(result.settings, payload.range_rule or "dtype") for result in results]
            each = [named_opaque(result_metrics(reference, result, payload.metric_task, where=where, scale=scale))
                    for reference, result, scale in zip(references, results, scales, strict=True)]
            inputs = [input_psnrs(scene, reference, where=where, scale=scale) or None
                      for scene, reference, scale in zip(payload.each_scene(), references, scales)]
            metrics, inputs = (each[0], inputs[0]) if len(each) == 1 else (_mean_metrics(each), None)
            out = {**out, "measured_scales": scales}  # for the metrics of the file as written (finish)
        except Exception as exc:  # noqa: BLE001 - e.g. a reference of another size: keep the image
            metrics_error = f"reference: {one_line(exc)}"
    first = results[0]
    one = len(results) == 1
    settings = first.settings if one else {**first.settings, "frames_separate": len(results)}
    return {
        **out,
        "error": None,
        "metrics_error": metrics_error,
        "image": first.image if one else [r.image for r in results],
        "steps_run": first.steps_run if one else [r.steps_run for r in results],
        "stop_step": first.stop_step if one else [r.stop_step for r in results],
        "stop_reason": first.stop_reason if one else [r.stop_reason for r in results],
        "fit_s": sum(r.timings["fit_s"] for r in results) / share,
        "settings": settings,
        "metrics": metrics,
        "input_psnr": inputs,
        "device": first.settings["device"],
    }


def _mean_metrics(each: list[dict[str, Any]]) -> dict[str, Any]:
    """The frames' metrics (one report per frame: each convention's values) as one report: each
    convention's numbers their mean over the frames (its other entries the first frame's), and
    ``frames``, the list."""
    mean: dict[str, Any] = {}
    for convention, first in each[0].items():
        if isinstance(first, dict):
            mean[convention] = {k: float(np.mean([m[convention][k] for m in each]))
                                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "crop" else v
                                for k, v in first.items()}
    return {**mean, "frames": each}


def _metrics_as_written(path: str, images: list[np.ndarray], prep: Prepared,
                        result: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
    """The PSNR of the output file as written (:func:`linr.metrics.as_written`, what ``linr restore``
    reports as ``metrics_as_written``) where the image has metrics: one frame's, or the frames'
    mean with ``frames`` (None where the file holds the restored values as they are), and why it
    could not be measured (None: measured or nothing to measure)."""
    from ..images import opaque_pixels
    from ..metrics import as_written

    payload = prep.payload
    references = [payload.reference] if payload.scenes is None else payload.reference
    if result.get("metrics") is None or references is None or references[0] is None:
        return None, None
    try:
        where = opaque_pixels(payload.alpha, references[0].shape)
        each = [as_written(path, image, reference, bit_depth=prep.bit_depth, value_range=prep.value_range,
                           where=where, scale=scale)
                for image, reference, scale in zip(images, references, result["measured_scales"], strict=True)]
    except Exception as exc:  # noqa: BLE001 - the image is written: a failed measure must not cost it
        return None, f"as written: {one_line(exc)}"
    if any(w is None for w in each):
        return None, None
    if len(each) == 1:
        return each[0], None
    return {**each[0], "psnr": float(np.mean([w["psnr"] for w in each])), "frames": each}, None


def _inputs(job: Job) -> dict[str, str | None]:
    return {**job.observations, "mask": job.mask, "kernel": job.kernel, "reference": job.reference}


def failed_record(job: Job, error: str, *, key: str, settings: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The manifest record of an image that could not be restored."""
    return {
        "image": job.name, "status": "failed", "inputs": _inputs(job), "output": None, "key": key,
        "batch": settings, "settings": None, "steps_run": None, "stop_step": None, "stop_reason": None,
        "metrics": None, "metrics_error": None, "error": error, "run": {"finished": _utc_now(), **run},
    }


def _own_time(elapsed: float, run: dict[str, Any]) -> float:
    """An image's seconds as its record keeps them: the time since its inputs were read, less,
    for an image fitted in a stack of K (``run['stacked']``), the other images' shares of the
    stack's fit (``run['fit_s']`` is this image's share), so that no image is charged the whole
    stack (K images then counted K times its fit); the stack's whole time is kept in
    ``run['stack_time_s']``."""
    stacked = run.get("stacked")
    if not stacked or run.get("fit_s") is None:
        return round(elapsed, 3)
    run["stack_time_s"] = round(elapsed, 3)
    return round(max(elapsed - run["fit_s"] * (stacked - 1), 0.0), 3)


def finish(
    job: Job, prep: Prepared, result: dict[str, Any], *, key: str, settings: dict[str, Any], backend: str
) -> dict[str, Any]:
    """Write a worker's result (atomically) and return the image's manifest record."""
    from ..images import ImageInfo, beyond_range_note, output_notes, write_frames
    from ..stabilise import burst_said

    run = {"backend": backend, "host": result.get("host"), "threads": result.get("threads"),
           "device": result.get("device"), "fit_s": result.get("fit_s"),
           "time_s": round(time.perf_counter() - prep.started, 3)}
    if result.get("stacked"):
        run["stacked"] = result["stacked"]  # fitted with others; fit_s is its share of the loop
    if result.get("tiles_on"):
        run["tiles_on"] = result["tiles_on"]  # restored in tiles, spread over these workers
    if result.get("threads_note"):
        run["threads_note"] = result["threads_note"]  # fewer threads than the batch's: others held cores
    if result.get("error") is not None:
        return failed_record(job, result["error"], key=key, settings=settings, run=run)
    # The output is ours (planned, checked not to be an input): replace a leftover from a run
    # that was killed between writing it and recording it.
    images = result["image"] if isinstance(result["image"], list) else [result["image"]]
    written_from = time.perf_counter()
    write_frames(job.output, images, bit_depth=prep.bit_depth, alpha=prep.alpha,
                 value_range=prep.value_range, tiff=prep.tiff, icc_profile=prep.icc_profile,
                 density=prep.density, fits=prep.fits, force=True,
                 protect=job.inputs, exif=prep.exif, text=prep.text)
    elapsed = time.perf_counter() - prep.started
    if result.get("worker_s") is not None and prep.read_s is not None:  # its own: read, fitted, written
        wrote = time.perf_counter() - written_from  # (no wait in a queue for a worker, nor a stack's others')
        run["time_s"] = round(prep.read_s + result["worker_s"] + wrote, 3)
        if run.get("stacked"):
            run["stack_time_s"] = round(elapsed, 3)
    else:
        run["time_s"] = _own_time(elapsed, run)
    written, written_error = _metrics_as_written(job.output, images, prep, result)  # not in its time_s
    return {
        "image": job.name, "status": "done", "inputs": _inputs(job), "input_stamps": prep.input_stamps,
        "output": job.output, "key": key,
        "batch": settings, "settings": result["settings"], "steps_run": result["steps_run"],
        "stop_step": result["stop_step"], "stop_reason": result["stop_reason"],
        "metrics": result["metrics"], "metrics_error": prep.metrics_error or result.get("metrics_error"),
        **({"metrics_as_written": written} if written is not None else {}),
        **({"metrics_as_written_error": written_error} if written_error else {}),
        **({"input_psnr": result["input_psnr"]} if result.get("input_psnr") else {}),  # each input photo's (kind)
        "error": None, "run": {"finished": _utc_now(), **run},
        **({"input_notes": list(prep.input_notes)} if prep.input_notes else {}),
        **({"burst_note": said} if (said := burst_said(result["settings"], names=prep.frame_names)) else {}),
        **({"output_note": "; ".join(notes)} if (notes := output_notes(
            job.output, ImageInfo(job.name, prep.bit_depth, 0, prep.alpha, icc_profile=prep.icc_profile,
                                  exif=prep.exif, text=prep.text, stored_type=prep.stored_type))) else {}),
        # values above a float photo's range, and what the output made of them (linr.images.beyond_range_note)
        **({"range_note": above} if (above := beyond_range_note(
            job.output, images, ImageInfo(job.name, prep.bit_depth, 0, value_range=prep.value_range)))
           else {}),
    }
