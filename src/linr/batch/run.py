"""The batch driver: decide what is left to do, keep a backend busy, record every result.

The driver reads inputs and writes outputs and the manifest; backends only fit (see
:mod:`linr.batch.work`). Exactly ``backend.slots`` groups (one image each, or up to ``--stack``
images fitted together) are in flight at any time, so a crash or Ctrl-C loses at most those:
every other image is either recorded in the manifest or not started.

Images restored in tiles (larger than the preset's whole-image limit, or ``--tile SIZE``) come
after the others, one at a time: the driver restores each with its tiles spread over the same
workers (the backend's :meth:`with_task` running :func:`linr.tiling.fit_tile_group`) and keeps
its finished tiles beside its output (:func:`linr.tiling.tile_store_path`) until the output is
written, so an interrupted batch loses at most the tiles in flight.
"""

from __future__ import annotations

import errno
import os

import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import InputError
from .manifest import Manifest
from .plan import BY_INPUT, Job, fingerprint, settings_diff
from .work import BackendLost, Prepared, failed_record, finish, in_tiles, one_line, prepare, restore_tiles, stack_key

__all__ = ["Outcome", "select", "run_jobs"]


@dataclass
class Outcome:
    """What one run did (the manifest holds the per-image details)."""

    skipped: list[str] = field(default_factory=list)
    """Already done in the manifest with the same inputs and settings, output present."""
    restored: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    interrupted: bool = False
    lost: str | None = None
    """Why the run stopped early where its workers were lost (a Ray cluster gone: :class:`BackendLost`),
    its unfinished images not recorded (redone on resume); None: not so."""
    wall_s: float = 0.0


def disk_full(exc: BaseException) -> bool:
    """Whether writing an output failed for want of space: every image after it would fail alike, so the
    batch stops with one line (:func:`linr.cli.main`), what is done kept (tiles too)."""
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT)


def made_as_now(job: Job, record: dict[str, Any], keys: dict[str, str], settings: dict[str, Any]) -> bool:
    """Whether a done record was made with this batch's settings (its key, or an older key's form of
    them: :func:`_older_key`)."""
    return record.get("key") == keys[job.name] or _older_key(job, record, settings)


def select(
    jobs: Sequence[Job], manifest: Manifest, settings: dict[str, Any], *, force: bool, existed: bool,
    replaced: list[str] | None = None,
) -> tuple[list[Job], list[str], dict[str, str]]:
    """Split jobs into (to run, names to skip) and return each job's fingerprint.

    A done image whose input files differ in size or time from those recorded when it was made
    (``input_stamps``; records made before have none) is restored again, its name appended to
    ``replaced`` when given.

    Raises when finished images were made with other settings (unless ``force``), or when a
    folder without a manifest already holds files this batch would replace. A reference folder
    added or left out is no change: references only add metrics (a skipped image keeps the
    metrics it has, or has none).
    """
    keys = {job.name: fingerprint(job, settings) for job in jobs}
    todo, skip, changed = [], [], []
    for job in jobs:
        record = manifest.records.get(job.name)
        if force or record is None or record.get("status") != "done":
            todo.append(job)
        elif record.get("key") != keys[job.name] and not _older_key(job, record, settings):
            changed.append(job.name)
        elif not Path(job.output).is_file():
            todo.append(job)  # recorded as done but the output was removed: redo it
        elif _inputs_replaced(job, record):
            todo.append(job)  # an input file replaced since: its output is of the old one
            if replaced is not None:
                replaced.append(job.name)
        else:
            skip.append(job.name)
    if changed:
        first = manifest.records[changed[0]]
        job = next(j for j in jobs if j.name == changed[0])
        inputs = {**job.observations, "mask": job.mask, "kernel": job.kernel}
        recorded = {k: v for k, v in (first.get("inputs") or {}).items() if k != "reference"}
        differ = settings_diff(first.get("batch") or {}, settings) + settings_diff(recorded, inputs)
        what = ", ".join(differ) or "input files"
        # a default added or changed since (the prior, the refinement): name what the images got
        # ('none' where they got none)
        made = first.get("batch") or {}
        sized = made.get("blend_up_to") is not None and ("refine" in differ or "blend_up_to" in differ)
        # grouped-fill asked for before it filled images above a size from the fit alone (twenty-second session)
        old_fill = made.get("refine") == "grouped-fill" and "biharmonic_up_to" not in made and not sized \
            and ("refine" in differ or "biharmonic_up_to" in differ)
        # the defaults' super-resolution refined up to a size (twenty-second session)
        old_views = made.get("refine_up_to") is not None and "refine_up_to" in differ
        # a blur fitted with mirrored edges before free ones became its default: no option gives that fit now
        mirrored_fit = "blur_fit" in differ and "blur_fit" not in made
        hint = "".join(_resume_as_made(name, made.get(name)) for name in ("prior", "refine")
                       if name in differ and not (name == "refine" and (sized or old_fill or old_views or mirrored_fit)))
        made_pilot, pilot_now = made.get("pilot") or {}, settings.get("pilot") or {}
        # made before the pilot's defaults of the forty-sixth session: float32 products (with no
        # --precision) and, in tiles, tiles of 256 px
        added = [k for k in ("precision", "tile_size") if k in pilot_now and k not in made_pilot]
        if "pilot" in differ and made_pilot and added and \
                {k: v for k, v in pilot_now.items() if k not in added} == made_pilot:
            if "precision" in added:
                what += ("; the images' pilot fits multiplied in float32, the default until the forty-sixth session "
                         "(bf16 since, on CPUs with bf16 units)")
            if "tile_size" in added:
                what += (f"; the images above {made_pilot.get('whole_up_to')} px were fitted in tiles of 256 px, the "
                         f"default until the forty-sixth session ({pilot_now['tile_size']} since), which no option gives "
                         "beside the pilot's other defaults")
            else:
                hint += ", --precision float32 to resume as made"
        # made before the clipping route (not: made otherwise, e.g. registered, which takes no such route)
        if "clipping" in differ and "clipping" not in made and \
                not set(differ) & {"register", "preset", "options", "noise", "task", "kinds"}:
            what += ("; the images were restored before the fifty-fifth session: a photo's clipping at black and "
                     "white not undone and a burst fitted jointly, which no option gives now (--clipping ignore "
                     "leaves the clipping as fitted, but a burst is averaged)")
        if "inpaint_model" in differ and "inpaint_model" not in made and made.get("model") is None:
            # made before the defaults' inpainting network, or with the paper's named
            from ..tasks import DEFAULT_INPAINT_MODEL

            what += (f"; the images were fitted by the paper's network (omega_0 30), the defaults' for inpainting "
                     f"until the twenty-third session (now omega_0 {DEFAULT_INPAINT_MODEL.omega_0:g})")
            if not (sized or old_fill):  # else the refinement of then is an obstacle too
                hint += ", --omega0 30 to resume as made"
        if "sr_model" in differ and "sr_model" not in made and made.get("model") is None:
            # made before the defaults' narrower network for large low-res photos, or with the paper's named
            what += ("; the images were fitted by the paper's network, the defaults' for every low-res photo until "
                     "the sixty-second session (since, a SIREN 7x128 at x4 above "
                     f"{settings['sr_model'].get('above')} px; smaller images come out the same)")
            hint += ", --width 256 to resume as made"
        if "refine" in differ and made.get("refine") is None and settings.get("refine") == "grouped-deblur":
            what += ("; the images were not refined: the defaults refine one blurred photo by grouped-deblur "
                     "(a circularly blurred one since the twenty-fourth session, any since the twenty-fifth)")
        if "deblur_edges" in differ and made.get("refine") == "grouped-deblur" and "deblur_edges" not in made:
            what += ("; the images were refined by grouped-deblur with mirrored borders, which no option gives now "
                     "(since the twenty-fifth session a blur that is not circular is refined with free edges)")
        if "deblur_follows_noise" in differ and made.get("refine") == "grouped-deblur" and \
                "deblur_follows_noise" not in made:
            what += ("; the images were refined by grouped-deblur at levels from 15 to 2 of 255 whatever their noise, "
                     "which no option gives now (since the sixty-fifth session the levels follow the noise measured "
                     "on a blurred photo: photos with up to 8/255 of noise come out the same)")
        if "headroom" in differ and "headroom" not in made:
            what += ("; the blurred photos were fitted on their own scale, the default until the sixty-sixth session "
                     "(since, a photo of point sources on a scale 4x its value range, its saturated pixels left out; "
                     "photos of no point sources come out the same)")
            hint += ", --headroom off to resume as made"
        if "defects" in differ and "defects" not in made:
            what += ("; the blurred photos were fitted with every pixel as data, the default until the sixty-seventh "
                     "session (since, pixels sharper than the blur allows, hot pixels and cosmic rays, are left out; "
                     "photos with none come out the same)")
            hint += ", --defects off to resume as made"
        if "censored_at_white" in differ and "censored_at_white" not in made:
            what += ("; the blurred photos' pixels at white were fitted as values, the default until the sixty-eighth "
                     "session (since, as 'at least white' where the photo is clipped; photos not clipped at white "
                     "come out the same)")
            hint += ", --clipping ignore to resume as made"
        if "pair_blend" in differ and made.get("refine") == "grouped-pair" and "pair_blend" not in made:
            what += ("; the images were refined by grouped-pair without its blend with grouped-deblur where they "
                     "were restored in tiles, which no option gives now (since the thirty-second session tiles "
                     "blend by the pixels no tile trained on; images restored whole come out the same)")
        if old_views:
            what += (f"; the images got the default refinement of then, {made.get('refine')} of images restored whole "
                     f"up to {made['refine_up_to']} px, which no option gives now (such images come out the same)")
        if mirrored_fit:
            what += ("; the blur was fitted with mirrored edges and the paper's 4000 constant steps, the default of "
                     "then, which no option gives now beside the defaults of now (free edges are the default for a "
                     "blurred photo alone since the twenty-ninth session, beside a noisy one since the thirty-first)")
        if sized:  # a default no option asks for (an inpainting refined up to a size)
            what += (f"; the images got the default refinement of then, {made.get('refine')} up to "
                     f"{made['blend_up_to']} px, which no option gives now")
        elif old_fill:
            from ..refine import GroupedFill

            what += (f"; the images got grouped-fill as it was before it filled images above "
                     f"{GroupedFill.BIHARMONIC_UP_TO} px from the fit's image alone (twenty-second session), which "
                     "no option gives now (images up to that size come out the same)")
        raise InputError(f"{manifest.path}: {len(changed)} finished image(s) were made with other settings "
                         f"({what}); use another -o folder{hint}, or --force to redo them")
    if not existed and not force:
        present = [job.output for job in todo if Path(job.output).exists()]
        if present:
            raise InputError(f"{present[0]}: exists and is not from a linr batch in this folder "
                             f"({len(present)} such file(s)); use --force to overwrite")
    return todo, skip, keys


def _resume_as_made(name: str, made: str | None) -> str:
    """The hint that resumes a batch whose ``--prior`` or ``--refine`` (``name``) differs: the value
    it was made with (``none`` where it had none), or no option where it had the defaults' prior
    rule (:func:`linr.tasks.default_prior_rule`), which no ``--prior`` value names; none for an
    earlier default's rule (no option gives it now)."""
    if name == "prior" and made is not None:
        from ..tasks import DEFAULT_DENOISE_PRIOR, default_prior_rule

        if made == default_prior_rule():
            return ", no --prior to resume as made"
        if made.startswith(f"{DEFAULT_DENOISE_PRIOR}-except-"):
            return ""  # an earlier default's rule, which no --prior value gives
    return f", --{name} {made or 'none'} to resume as made"


def _inputs_replaced(job: Job, record: dict[str, Any]) -> bool:
    """Whether an input file the record's stamps name differs now (another size or time, or gone)."""
    recorded = record.get("input_stamps")
    if not recorded:
        return False
    now = job.input_stamps()
    return any(now.get(os.path.abspath(path)) != list(stamp) for path, stamp in recorded.items())


def _older_key(job: Job, record: dict[str, Any], settings: dict[str, Any]) -> bool:
    """Whether ``record`` was made for ``job`` by a linr whose fingerprint included the reference,
    or keyed a PNG output by the batch's format (``by input``: a folder holding a TIFF, until
    the fifty-second session)."""
    reference = (record.get("inputs") or {}).get("reference")
    if reference is not None and record.get("key") == fingerprint(job, settings, reference=reference):
        return True
    return settings.get("format") == BY_INPUT and record.get("key") == fingerprint(job, settings, batch_format=True)


def run_jobs(
    todo: Sequence[Job],
    *,
    backend: Any,
    manifest: Manifest,
    settings: dict[str, Any],
    keys: dict[str, str],
    fit: dict[str, Any],
    threads: int,
    on_record: Callable[[dict[str, Any]], None] | None = None,
    stack: int = 1,
    fewer_where_late: bool = False,
) -> Outcome:
    """Run ``todo`` on ``backend``, recording each result in ``manifest`` as soon as it arrives.

    ``on_record`` is called after each record is stored (progress display). ``stack``: up to this
    many consecutive jobs of one :func:`~linr.batch.work.stack_key` go to the backend as one
    group and are fitted together (stacked models). KeyboardInterrupt
    (Ctrl-C, or SIGTERM turned into it) aborts the fits in flight and is re-raised.
    """
    outcome = Outcome()
    queue = deque(todo)
    held: list[tuple[Job, Prepared]] = []  # prepared, but not stackable with the last group
    in_flight: dict[Any, list[tuple[Job, Prepared]]] = {}
    tiled: list[Job] = []  # restored in tiles after the others (read again then: no arrays held)
    tile_backend: list[Any] = []  # the backend's sibling that fits tiles, once needed
    start = time.perf_counter()

    def record(rec: dict[str, Any]) -> None:
        manifest.add(rec)
        (outcome.restored if rec["status"] == "done" else outcome.failed).append(rec["image"])
        if on_record is not None:
            on_record(rec)

    def next_group() -> list[tuple[Job, Prepared]]:
        """Up to ``stack`` consecutive jobs that can be fitted together."""
        group: list[tuple[Job, Prepared]] = []
        while len(group) < stack and (held or queue):
            if held:
                job, prep = held.pop()
            else:
                job = queue.popleft()
                t0 = time.perf_counter()
                try:
                    prep = prepare(job, settings, fit=fit, threads=threads, fewer_where_late=fewer_where_late)
                except Exception as exc:  # noqa: BLE001 - a bad input fails its image only
                    run = {"backend": backend.name, "time_s": round(time.perf_counter() - t0, 3)}
                    record(failed_record(job, one_line(exc), key=keys[job.name], settings=settings, run=run))
                    continue
                if in_tiles(prep.payload.each_scene()[0], fit):
                    tiled.append(job)
                    continue
            if group and stack_key(prep.payload) != stack_key(group[0][1].payload):
                held.append((job, prep))
                break
            group.append((job, prep))
        return group

    try:
        while queue or held or in_flight:
            while (queue or held) and len(in_flight) < backend.slots:
                group = next_group()
                if group:
                    in_flight[backend.submit([prep.payload for _, prep in group])] = group
            if not in_flight:
                continue
            for handle, results in backend.wait(list(in_flight)):
                group = in_flight.pop(handle)
                if isinstance(results, dict):  # the worker was lost: every image of the group
                    results = [results] * len(group)
                for (job, prep), result in zip(group, results):
                    try:
                        rec = finish(job, prep, result, key=keys[job.name], settings=settings,
                                     backend=backend.name)
                    except Exception as exc:  # noqa: BLE001 - e.g. the output could not be written
                        if disk_full(exc):
                            raise
                        rec = failed_record(job, one_line(exc), key=keys[job.name], settings=settings,
                                            run={"backend": backend.name})
                    record(rec)
        for job in tiled:
            record(_restore_in_tiles(job, backend, tile_backend, settings=settings, key=keys[job.name],
                                     fit=fit, threads=threads, fewer_where_late=fewer_where_late))
    except (KeyboardInterrupt, BackendLost) as exc:
        outcome.interrupted = True
        outcome.lost = str(exc) if isinstance(exc, BackendLost) else None
        for tiles in tile_backend:
            tiles.close(abort=True)
        backend.close(abort=True)
    except BaseException:  # a full disk, a bug: the workers stopped before it is said
        for tiles in tile_backend:
            tiles.close(abort=True)
        backend.close(abort=True)
        raise
    else:
        for tiles in tile_backend:
            tiles.close(abort=False)
        backend.close(abort=False)
    outcome.wall_s = time.perf_counter() - start
    return outcome


def _restore_in_tiles(job: Job, backend: Any, tile_backend: list[Any], *, settings: dict[str, Any], key: str,
                      fit: dict[str, Any], threads: int, fewer_where_late: bool = False) -> dict[str, Any]:
    """Read, restore (its tiles on ``backend``'s workers) and write one image; its record."""
    from ..tiling import fit_tile_group, remove_tile_store, tile_store_paths

    t0 = time.perf_counter()
    try:
        prep = prepare(job, settings, fit=fit, threads=threads, fewer_where_late=fewer_where_late)
    except Exception as exc:  # noqa: BLE001 - a bad input fails its image only
        run = {"backend": backend.name, "time_s": round(time.perf_counter() - t0, 3)}
        return failed_record(job, one_line(exc), key=key, settings=settings, run=run)
    if not tile_backend:
        backend.idle()  # every whole image is done: its workers make way for the tiles' ones
        tile_backend.append(backend.with_task(fit_tile_group))
    where = f"{backend.name}, {backend.slots} tile batches in flight"
    scenes = prep.payload.each_scene()
    stores = tile_store_paths(job.output, len(scenes))
    result = restore_tiles(prep.payload, executor=tile_backend[0], stores=[str(store) for store in stores], where=where)
    try:
        record = finish(job, prep, result, key=key, settings=settings, backend=backend.name)
    except Exception as exc:  # noqa: BLE001 - e.g. the output could not be written: tiles kept
        if disk_full(exc):
            raise
        return failed_record(job, one_line(exc), key=key, settings=settings, run={"backend": backend.name})
    if record["status"] == "done":
        for store in stores:
            remove_tile_store(store)  # written: the tiles are no longer needed
    return record


def _columns(stream: Any) -> int:
    """The width a terminal reports for ``stream`` (0 where it reports none, as a pseudo-terminal
    with no size does), or 80 where it cannot be asked."""
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError, AttributeError):
        return 80


class Progress:
    """Overall progress: a bar with done/failed and an ETA on a terminal, else one line per image."""

    def __init__(self, total: int, *, enabled: bool, stream: Any = None):
        self.stream = stream or sys.stderr
        self.total = total
        self.done = self.failed = 0
        self.said: set[str] = set()  # input notes said, their file names left out
        self.bar = None
        self.start = time.perf_counter()
        bar = self.stream.isatty() and _columns(self.stream) > 0  # a terminal of 0 columns drew nothing
        self.lines = enabled and not bar
        if enabled and bar and total:
            from tqdm import tqdm

            self.bar = tqdm(total=total, unit="img", desc="batch", file=self.stream, dynamic_ncols=True)
            self.bar.set_postfix(done=0, failed=0)

    def __call__(self, rec: dict[str, Any]) -> None:
        ok = rec["status"] == "done"
        self.done += ok
        self.failed += not ok
        n = self.done + self.failed
        what = f"done in {rec['run'].get('time_s', 0):.1f} s" if ok else f"FAILED: {rec['error']}"
        if ok and rec.get("metrics_error"):
            what += f" (no metrics: {rec['metrics_error']})"
        if ok and (said := self._new_input_note(rec)):  # what reading it said (a noisy JPEG, ...), once a kind
            what += f" ({said})"
        if ok and rec.get("burst_note"):  # frames of a burst left out of its mean
            what += f" ({rec['burst_note']})"
        if ok and rec.get("output_note"):  # e.g. an alpha channel its output's format cannot hold
            what += f" ({rec['output_note']})"
        if ok and rec["run"].get("threads_note"):  # fewer threads than the batch's (the manifest says why)
            what += f" (on {rec['run']['threads']} thread(s): other work held cores)"
        if self.bar is not None:
            if not ok or rec.get("metrics_error") or said or rec.get("burst_note") or rec.get("output_note") \
                    or rec["run"].get("threads_note"):
                self.bar.write(f"{rec['image']}: {what}")
            self.bar.set_postfix(done=self.done, failed=self.failed, refresh=False)
            self.bar.update(1)
        elif self.lines:
            left = (time.perf_counter() - self.start) / n * (self.total - n)
            print(f"[{n}/{self.total}, {self.failed} failed, ETA {_duration(left)}] {rec['image']}: {what}",
                  file=self.stream, flush=True)

    def _new_input_note(self, rec: dict[str, Any]) -> str:
        """The image's input notes that no earlier image's line said (the same note naming another
        file is not said again: every JPEG of a batch gets one; the manifest keeps each image's)."""
        paths = sorted(_input_paths(rec.get("inputs") or {}), key=len, reverse=True)
        new = []
        for note in rec.get("input_notes") or []:
            body = note
            for path in paths:
                body = body.replace(path, "FILE")
            if body not in self.said:
                self.said.add(body)
                new.append(note)
        return "; ".join(new)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _input_paths(inputs: dict[str, Any]) -> list[str]:
    """Every file named in a record's ``inputs`` (a kind's frames are a list)."""
    named = []
    for value in inputs.values():
        named += [str(v) for v in (value if isinstance(value, (list, tuple)) else [value]) if v is not None]
    return named


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m"
