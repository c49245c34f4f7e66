"""Command-line interface: ``linr restore | render | degrade | metrics | demo``.

Every user error ends in one line on stderr (``linr: error: ...``) and exit status 2, with no
file written. Set ``LINR_DEBUG=1`` to see tracebacks.
"""

from __future__ import annotations

import argparse
import dataclasses
import errno
import importlib
import importlib.util
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Any, Sequence

from . import __version__
from .argtypes import fraction
from .cli_common import (add_fit_options, add_observation_options, check_backend_options, check_pairs,
                         load_observations, model_config, nonneg_float, positive_float, positive_int, size_option,
                         sigterm_as_interrupt, value_range_option)
from .errors import DivergenceError, ExistingFileError, InputError, LinrError
from .metrics import as_written, json_ready, named_opaque

EXIT_USAGE = 2
EXIT_DIVERGED = 3


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors in one line, like every other linr error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # main() prints "linr: error: "; the sub-command's name is enough after it
        command = self.prog.split(" ", 1)[1] if " " in self.prog else ""
        raise InputError(f"{command}: {message}" if command else message)

    def parse_args(self, args: Any = None, namespace: Any = None) -> Any:  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            command = getattr(parsed, "command", None)
            message = f"{command + ': ' if command else ''}unrecognized arguments: {' '.join(extras)}"
            files = [e for e in extras if not e.startswith("-")]
            if command == "restore" and files and not any(e.startswith("-") for e in extras):  # a photo given bare
                message += (f" (name each photo by what "
                           f"is wrong with it: --noisy {files[0]}, --lowres {files[0]} --factor F, --masked "
                           f"{files[0]}, or --blurred {files[0]} --kernel K)")
            self.error(message)
        return parsed


# --- restore -----------------------------------------------------------------------------------


def _build_restore(sub: Any) -> None:
    p = sub.add_parser(
        "restore",
        help="restore one scene from one or more corrupted images",
        description="Restore one scene. One observation flag is a single task; several are "
        "joint restoration of the same scene.",
    )
    p.add_argument("-o", "--output", help="restored image (.png .tif .jpg .bmp .fits); required (checked after "
                   "the observations, so that a bare 'linr restore' says what it needs first)")
    g = p.add_argument_group("observations (at least one; a flag given again, a quoted glob or a "
                             "multi-image TIFF adds frames of its kind, each its own observation)")
    add_observation_options(g)
    g.add_argument("--frames", choices=("joint", "separate"), default=None,
                   help="joint (default): every frame is an observation of one scene, one output "
                   "image; separate: each frame (a TIFF stack's page, a file) restored on its own, "
                   "written as a TIFF stack of as many frames (the default for a Z-stack: a TIFF whose "
                   "ImageJ or OME axes stack its planes along Z, each plane another depth)")
    _add_range_option(g, "input values LO..HI (the inputs' units) map to the fit's [0, 1] (an integer input or "
                      "--reference whose type cannot reach HI, such as an 8-bit PNG beside 12-bit counts, by its own "
                      "type's range); auto: "
                      "from 0 (or the minimum, when negative) to the maximum of the data; default: "
                      "uint8/uint16 by their full range, floats as they are when on [0, 1], else "
                      "auto. A TIFF output is written back in the inputs' units.")
    add_fit_options(p)
    from .registration import TRANSFORMS

    g.add_argument("--register", default=None, choices=list(TRANSFORMS),
                   help="shots that do not line up: fit a sub-pixel translation (or an affine map) "
                   "per observation after the first, which is the reference, jointly with the image; "
                   "started from a cross-correlation estimate and reported per frame")
    w = p.add_argument_group("tiles on several processes or machines (with tiles: --tile, or "
                             "automatic above 1024 px)")
    w.add_argument("--workers", type=positive_int, default=None, metavar="N",
                   help="fit the tiles in N local worker processes (each with cores / N threads); 1: "
                   "in this process. Default: a long restoration in tiles on the CPU fits them in 2 "
                   "processes where there are 2 cores or more (not with OMP_NUM_THREADS set), else in "
                   "this process")
    w.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local processes (default) or Ray tasks (pip install 'linr[ray]'); this "
                   "process alone reads and writes files")
    w.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (e.g. auto or "
                   "ray://host:10001); default: start a local Ray instance")
    w.add_argument("--ensemble", type=positive_int, default=1, metavar="K",
                   help="fit K networks from seeds SEED..SEED+K-1 (one stack) and return the mean of "
                   "their images: K times the work on a CPU (default 1; see --uncertainty)")
    o = p.add_argument_group("output")
    o.add_argument("--uncertainty", metavar="FILE",
                   help="with --ensemble K >= 2: write the members' per-pixel spread (sample standard "
                   "deviation; float32 in a .tif or .fits, in the input's units where it had its own "
                   "(FITS, 16-bit, floats mapped from their range), else on the 0-1 scale; 16-bit in a "
                   ".png, on the 0-1 scale), "
                   "large where the restoration depends on the network's random start (the spread of "
                   "the fits, before any --refine of their mean)")
    o.add_argument("--render-scale", type=positive_float, metavar="S",
                   help="write the restored image at S times its size (any S > 0, e.g. 2.5): the "
                   "fitted network evaluated on a denser grid over the same extent")
    o.add_argument("--render-size", type=size_option, metavar="WxH",
                   help="write the restored image at WxH pixels over the same extent")
    o.add_argument("--save-model", metavar="FILE.pt",
                   help="save the fitted model (weights, settings, size, value mapping) to render "
                   "again later at any size with linr render")
    o.add_argument("--reference", metavar="CLEAN", help="clean image: report PSNR/SSIM against it "
                   "(with --frames separate: a stack of as many frames)")
    o.add_argument("--report", metavar="FILE.json", help="write settings, stop, timings, metrics, history")
    o.add_argument("--force", action="store_true", help="overwrite existing output files (never an input), and discard finished tiles of another restoration kept beside the output")
    o.add_argument("--quiet", action="store_true",
                   help="no progress bar, no forecast of a long restore's time, no refining message "
                        "(notes and warnings are still said)")
    p.set_defaults(func=cmd_restore)


def _write_json(path: str | os.PathLike, data: dict[str, Any]) -> None:
    from .images import write_atomically

    text = json.dumps(json_ready(data), indent=2, allow_nan=False) + "\n"
    write_atomically(path, lambda tmp: Path(tmp).write_text(text))


def _check_report_path(path: str | None, force: bool, inputs: Sequence[str], *, output: str) -> None:
    if path is None:
        return
    from .images import check_name_length

    try:
        p = check_name_length(path)
    except InputError as exc:
        raise InputError(f"--report {exc}") from None
    if p.resolve() == Path(output).resolve():
        raise InputError("--report and --output name the same file")
    if any(p.resolve() == Path(i).resolve() for i in inputs):
        raise InputError(f"{p}: refusing to overwrite an input file")
    if p.is_dir():
        raise InputError(f"{p}: is a folder")
    if p.exists() and not force:
        raise ExistingFileError(p)
    if p.suffix.lower() != ".json":
        raise InputError(f"{p}: a report is JSON; name it FILE.json")
    from .images import check_writable_folder

    try:
        check_writable_folder(p)
    except InputError as exc:
        raise InputError(f"--report {exc}") from None


def _add_range_option(group: Any, what: str) -> None:
    """``--range auto|LO:HI`` (:func:`linr.argtypes.value_range_option`), ``what`` saying what it maps."""
    group.add_argument("--range", type=value_range_option, default=None, metavar="auto|LO:HI",
                       help=what + " A negative LO needs the = form: --range=-100:3000")


def dropped_refinement_note(dropped: str, *, model_named: bool) -> str:
    """The note of a restore that keeps the fit's own image (``--save-model``, ``--render-*``) where
    the defaults would have refined it by ``dropped`` (what the refiner ``does``, from
    :data:`linr.refine.REFINERS`); ``model_named``: a network was asked for (else a noisy photo's fit
    is the paper's network rather than the refinement's pilot)."""
    from .refine import REFINERS

    refiner = REFINERS[dropped]
    fixed = ", fitted for a fixed number of steps" if refiner.takes == "masked" else ""  # not the held-out pick
    note = (f"--save-model / --render-*: the image is not {getattr(refiner, 'verb', 'refined')} after the fit "
            f"(the model renders the fit's own image{fixed}; without them {refiner.does}, --refine)")
    if refiner.takes == "noisy":
        network = "" if model_named else (
            ", and the fit is the paper's SIREN 7x256 rather than the refinement's narrow 7x64 pilot (slower)")
        note += (f"{network}; the image is lower in PSNR (the refinement with its pilot added 1.1-1.3 dB on "
                 "the benchmark crops of 128 and 256 px, BENCHMARKS.md)")
    return note


def _note(lines: Sequence[str]) -> None:
    for line in lines:
        print(f"linr: note: {line}", file=sys.stderr)


def _settle_threads(device: str) -> str | None:
    """On the CPU, torch's threads fewer where other work holds cores (:func:`linr.cores.settle_threads`):
    the note that says so, or None."""
    from .cores import settle_threads
    from .problem import resolve_device

    if resolve_device(device).type != "cpu":
        return None
    chosen = settle_threads()
    return None if chosen is None else chosen.note()


def cmd_restore(args: argparse.Namespace) -> int:
    from .defects import measured_scale
    from .fitted import check_model_path, render_size
    from .images import (WRITE_FORMATS, ValueRange, beyond_range_note, check_output_path, opaque_pixels, output_info,
                         output_notes, write_frames)
    from .problem import clean_shape
    from .registration import register
    from .scene import read_references, split_frames
    from .stabilise import moved_before_mean
    from .stopping import FixedSteps
    from .headroom import headroom_for
    from .refine import NO_REFINE
    from .tasks import (NOISY_BLUR_FROM, NOISY_BLUR_STOP, NOTHING_MISSING, check_ensemble, default_refine, describe_weights, input_psnrs, measured_noise, noisy_with_blurred, nothing_missing, pair_level_note, pilot_fit, resolve, resolve_refine, resolve_stop, restore,
                        small_pilot_tiles_note, tile_grid, chosen_boundary_fit_note)

    check_pairs(args)
    if args.output is None:
        raise InputError("give -o/--output FILE: where to write the restored image (.png .tif .jpg .bmp .fits)")
    if args.render_scale is not None and args.render_size is not None:
        raise InputError("give --render-scale or --render-size, not both")
    model = model_config(args, args.preset)
    notes: list[str] = []
    _refuse_output_in_a_glob(args, [args.output, args.report, args.uncertainty, args.save_model])
    observations, infos, inputs = load_observations(args, notes)
    if args.frames is None:
        args.frames = _frames_of(infos, notes)
    scenes = [(observations, infos)] if args.frames == "joint" else split_frames(observations, infos)
    if not getattr(args, "register", None) and args.frames == "joint":
        from .registration import shifted_shots_said

        notes += shifted_shots_said(observations, [str(info.path) for info in infos])
    if getattr(args, "register", None) and args.frames == "separate" and all(len(obs) == 1 for obs, _ in scenes):
        raise InputError(f"--register {args.register} registers frames against the first one, and --frames separate "
                         "restores each frame on its own (nothing to register it against): leave out one of them")
    out = output_info(infos, joint=args.frames == "joint")
    protect = list(inputs) + ([args.reference] if args.reference else [])
    new_folder = _missing_folder(args.output)
    check_output_path(args.output, force=args.force, protect=protect, channels=out.channels,
                      frames=len(scenes))
    notes += output_notes(args.output, out)
    _check_report_path(args.report, args.force, protect, output=args.output)
    if args.uncertainty is not None:
        if args.ensemble < 2:
            raise InputError("--uncertainty is the spread of an ensemble's members: add --ensemble K "
                             "(K >= 2)")
        others = [args.output] + [p for p in (args.report, args.save_model) if p]
        if any(Path(args.uncertainty).resolve() == Path(t).resolve() for t in others):
            raise InputError(f"--uncertainty {args.uncertainty}: names another output of this run")
        if WRITE_FORMATS.get(Path(args.uncertainty).suffix.lower()) not in ("tiff", "png", "fits"):
            raise InputError(f"--uncertainty {args.uncertainty}: write it as .tif or .fits (float32) or .png "
                             "(16-bit); JPEG and BMP round a spread of a few hundredths to 8 bits")
        check_output_path(args.uncertainty, force=args.force, protect=protect, channels=out.channels,
                          frames=len(scenes))
    if args.save_model:
        if len(scenes) > 1:
            raise InputError(f"--save-model saves one model; --frames separate fits {len(scenes)} "
                             "(one per frame)")
        check_model_path(args.save_model, force=args.force,
                         protect=tuple(protect + [args.output] + ([args.report] if args.report else [])))
    references = read_references(args.reference, out, len(scenes), notes)
    # Every setting is resolved (and checked) before the fit, so that a bad one is an error now.
    keep_model = keeps_model(args)
    from .stabilise import aligns_burst, as_fitted

    # photon noise through its Anscombe transform, a Gaussian burst averaged, as the restore fits them
    fitted = as_fitted(scenes[0][0], register=getattr(args, "register", None), preset=args.preset,
                       clipping=args.clipping)
    aligned = aligns_burst(scenes[0][0], register=getattr(args, "register", None), preset=args.preset)
    learned = None if aligned else getattr(args, "register", None)  # what the fit registers
    obs, fit_config = resolve(fitted, preset=args.preset, steps=args.steps, lr=args.lr, seed=args.seed,
                              device=args.device, model=model, precision=args.precision, prior=args.prior,
                              refine=args.refine, keep_model=keep_model, stop=args.stop, register=learned)
    rule = resolve_stop(obs, preset=args.preset, steps=args.steps, stop=args.stop, keep_model=keep_model)
    if isinstance(rule, FixedSteps) and args.steps is not None and rule.steps != args.steps:
        first, then = (f"--stop fixed:{rule.steps}", f"--steps {args.steps}") if rule.steps < args.steps \
            else (f"--steps {args.steps}", f"--stop fixed:{rule.steps}")
        notes.append(f"{first} ends the fit before {then} would: {min(rule.steps, args.steps)} steps")
    refined = resolve_refine(args.refine, obs, preset=args.preset, keep_model=keep_model, register=learned)  # a bad one: now
    dropped = resolve_refine(None, obs, preset=args.preset, register=learned) \
        if keep_model and args.refine is None else None
    if dropped:
        notes.append(dropped_refinement_note(dropped, model_named=model is not None))
    if keep_model and args.preset is None and getattr(args, "headroom", "auto") == "auto" and \
            headroom_for(obs, preset=None, keep_model=False) != 1.0:
        notes.append("--save-model / --render-*: this blurred photo of point sources is fitted on its own value range, "
                     "which the model renders (without them on a range 4x wider, as its deblurred stars are brighter "
                     "than their blurred peaks: 0.8-3.7 dB better on the star fields measured, BENCHMARKS.md)")
    elif args.refine == NO_REFINE and not keep_model and \
            pilot_fit(fitted, preset=args.preset, model=model, stop=args.stop, refine=None):  # the pilot's, refined
        notes.append(f"--refine none: the fit's own image, and the fit is the paper's SIREN {fit_config.model.depth}x"
                     f"{fit_config.model.width} (learning rate {fit_config.lr:g}, up to {fit_config.steps} steps) rather than the "
                     f"refinement's narrow pilot (slower; the refinement with its pilot added 1.1-1.3 dB on the "
                     "benchmark crops of 128 and 256 px, BENCHMARKS.md)")
    if getattr(rule, "average", None) is not None and keep_model:
        raise InputError(f"stop rule '{rule.name}' returns an average of iterates, which no single model renders: "
                         "--save-model, --render-scale and --render-size need a rule without one, such as "
                         "holdout:0.05:40 (or the automatic stop, which then returns one iterate)")
    if keep_model and rule is not None and rule.describe() != resolve_stop(
            obs, preset=args.preset, steps=args.steps, stop=args.stop).describe():
        sure = ", and on a noisy photo of at most 128x128 pixels (64x64 in colour) chooses that mean's step by SURE " \
            "of the refined image, often 0.5-2 dB better" if len(obs) == 1 and obs[0].kind == "noisy" else ""
        notes.append("--save-model / --render-*: the automatic stop returns the model's best single "
                     "iterate (without them it returns the mean of the last 40 iterates, about "
                     f"0.25 dB better on the crops measured{sure})")
    names = [str(info.path) for info in scenes[0][1]]
    weights = describe_weights(obs, measured_noise(fitted, preset=args.preset), names=names)
    if weights:
        notes.append(weights)
    if level := pair_level_note(scenes[0][0], names=names):
        notes.append(level)
    shape = clean_shape(obs)
    for reference in references:  # named now, not by the fit's own check after its set-up
        if reference is not None and reference.shape != (*shape, obs[0].channels):
            raise InputError(f"{args.reference}: the reference is {reference.shape[1]}x{reference.shape[0]} with "
                             f"{reference.shape[2]} channel(s); the restored image will be {shape[1]}x{shape[0]} "
                             f"with {obs[0].channels} channel(s)")
    out_shape = render_size(shape, scale=args.render_scale, size=args.render_size)
    fits_pilot = pilot_fit(fitted, preset=args.preset, model=model, stop=args.stop, refine=args.refine,
                           keep_model=keep_model)  # one fit's; an ensemble's members are not tiled
    # no fit at all where no frame has a pixel missing (frames that have are fitted, tiled and resumed as one is)
    fitted_at_all = not all(nothing_missing(scene, refined, ensemble=args.ensemble, keep_model=keep_model)
                            for scene, _ in scenes)
    grid = tile_grid(obs, preset=args.preset, tile=args.tile or "auto", register=learned,
                     pilot=fits_pilot and args.ensemble == 1) if fitted_at_all else None
    if grid is not None and (args.save_model or out_shape != shape):
        what = "--save-model" if args.save_model else "--render-scale / --render-size"
        raise InputError(f"{what} needs one network of the whole image, but this restoration is "
                         f"tiled ({len(grid)} tiles, one network each); add --tile off")
    check_ensemble(args.ensemble, tiled=grid is not None, register=learned, keep_model=keep_model)
    if args.ensemble > 1 and grid is None and (args.tile or "auto") == "auto":  # what one fit would have been
        single = tile_grid(obs, preset=args.preset, tile="auto", register=learned, pilot=fits_pilot)
        if single is not None:
            notes.append(f"--ensemble: each member fits the whole image (ensembles are not tiled; one fit would use "
                         f"{len(single)} tiles here), which takes more time and memory per step")
    if boundary_note := chosen_boundary_fit_note(obs, preset=args.preset, steps=args.steps):
        notes.append(boundary_note)
    if args.stop in (None, "auto") and rule is not None and rule.name == NOISY_BLUR_STOP and \
            not any(o.carries_noise for o in obs):  # under 'auto' only a noisy blurred photo's rule (tasks.resolve_stop)
        notes.append(f"the blurred photo's noise measures {NOISY_BLUR_FROM:g}/255 or more: its fit stops where its "
                     "held-out pixels say (a fixed budget, tuned on photos with little noise, fits the noise through "
                     "the inverse blur: a 40-px crop at 10/255 came back at 12.9 dB from 28.1); --stop fixed runs it "
                     "all")
    if args.preset == "fast" and any(o.kind == "blurred" for o in obs):
        notes.append("--preset fast deblurs with a SIREN 7x128, mirrored edges (reflect) and no refinement after the "
                     "fit: 5.3 dB under the paper's LINR on the whole leaves image, and a new user's 64-px crop came back "
                     "under the blurred photo (ringing along the borders); the defaults (no --preset: free edges, then "
                     "grouped-deblur, or grouped-pair beside a noisy photo) are the setting for deblurring")
    if aligned:
        notes.append(f"--register translation: the {len(scenes[0][0])} frames are moved onto the first's grid by "
                     "the shifts found (listed after the fit) and restored as their mean, as an aligned burst is")
    if learned is not None:
        register(obs, learned, shape=shape, notes=notes)  # checks, notes
        if args.refine is None and getattr(args, "boundary", None) is None and \
                noisy_with_blurred(scenes[0][0], preset=args.preset):
            notes.append("--register: the noisy and the blurred photo are fitted jointly with mirrored edges and not "
                         "refined; free edges and grouped-pair, the default for a noisy and a blurred photo of one "
                         "framing, are not built with a registration (without --register when they are aligned)")
        elif args.refine is None and (aligned_refine := default_refine(scenes[0][0], preset=args.preset)):
            notes.append(f"--register: the fit's image is not refined: {aligned_refine}, the default for these photos "
                         "when they line up, takes them on the fit's grid and is not built with a registration "
                         "(without --register when they are aligned)")
    spread = (args.workers or 1) > 1 or args.backend == "ray"
    check_backend_options(args)
    if spread and grid is None and fitted_at_all:
        raise InputError("--workers and --backend ray spread the tiles of one image, and this image "
                         "is restored whole (ask for tiles with --tile SIZE)")
    stores: list[Path | None] = [None] * len(scenes)
    if grid is not None:
        from .tiling import tile_store_paths

        stores = tile_store_paths(args.output, len(scenes))
        h, w = grid.shape
        from .tiling import parse_tile

        asked = parse_tile(args.tile).overlap
        raised = (f", raised from the {asked} px asked: the least these observations need"
                  if asked is not None and grid.overlap > asked else "")
        notes.append(f"restoring {w}x{h} in {len(grid)} tiles of {grid.size[1]}x{grid.size[0]} "
                     f"(overlap {grid.overlap} px{raised}); finished tiles are kept in {stores[0]} until the "
                     "image is written: rerun the same command to resume")
        if small := small_pilot_tiles_note(parse_tile(args.tile).size, pilot=fits_pilot and args.preset is None):
            notes.append(small)
    if args.backend != "ray" and (settled := _settle_threads(args.device)):  # before the forecast, which
        notes.append(settled)  # times this CPU as the fit will run (Ray's fits run elsewhere)
    # planned (and a refused plan said in one line) before the notes, so that no note precedes a refusal
    cost = _cost_line(scenes[0][0], args, model, frames=len(scenes), members=args.ensemble,
                      tile_store=str(stores[0]) if len(scenes) == 1 and stores[0] is not None else None)
    if len(scenes) > 1:  # each frame's store: another restoration's finished tiles refused before any frame is fitted
        from .tiling import stored_fingerprint

        for (scene, _), store in zip(scenes, stores):
            if store is not None and stored_fingerprint(store) is not None:
                _cost_line(scene, args, model, tile_store=str(store))
    _note(notes)
    workers = args.workers or _automatic_workers(args, grid, cost)  # before --quiet leaves the forecast unsaid
    if cost is not None and args.quiet:  # --quiet: the forecast unsaid, its warnings still said
        cost = "\n".join(line for line in cost.splitlines() if line.startswith("warning:")) or None
    if cost is not None:
        print(cost, file=sys.stderr)
    # an output that keeps transparent pixels is measured on its opaque ones (a noisy photo's
    # transparent pixels were filled with mirrored values: linr.transparent)
    measured = [None if reference is None else opaque_pixels(out.alpha, reference.shape) for reference in references]
    results, images = [], []
    executor, threads = _tile_executor(args, workers) if (spread or workers > 1) and grid is not None else (None, None)
    try:
        for i, (scene, _) in enumerate(scenes):
            result = restore(
                scene, preset=args.preset, steps=args.steps, lr=args.lr, seed=args.seed,
                device=args.device, model=model, reference=references[i], measured_pixels=measured[i], stop=args.stop,
                progress=False if args.quiet else None, precision=args.precision,
                tile=args.tile or "auto", tile_stack=args.tile_stack,
                tile_store=None if stores[i] is None else str(stores[i]), tile_store_replace=args.force,
                tile_store_kept=True,  # through the refinement: removed once the output is written
                register=args.register,
                tile_executor=executor, tile_threads=threads, keep_model=keep_model and grid is None, ensemble=args.ensemble,
                prior=args.prior, refine=args.refine, on_refine=None if args.quiet else _say_refining,
                announce=False,  # said once above, for every frame
                clipping=args.clipping, headroom=args.headroom, defects=args.defects,
                threads=None,  # settled for the process above (_settle_threads), or set by the user
            )
            results.append(result)
            images.append(result.image if out_shape == shape else result.render(size=out_shape, device=args.device))
            if len(scenes) > 1:
                print(f"frame {i + 1}/{len(scenes)}: not fitted: {result.stop_reason}"
                      if result.stop_reason == NOTHING_MISSING else f"frame {i + 1}/{len(scenes)}: {result.steps_run} "
                      f"steps, {result.timings['fit_s']:.1f} s; {result.stop_reason}{_returned(result)}")
    except BaseException as exc:
        if executor is not None:
            executor.close(abort=True)
        if not isinstance(exc, InputError):  # interrupted, or failed in a fit or the refinement after it
            _say_kept_tiles(stores)
        raise
    if executor is not None:
        executor.close(abort=False)
    write_frames(args.output, images, bit_depth=out.bit_depth, alpha=out.alpha,
                 value_range=out.value_range, tiff=out.tiff, icc_profile=out.icc_profile, density=out.density,
                 fits=None if out.fits is None else out.fits.with_history(*_restore_history(infos, results)),
                 force=args.force, protect=protect, exif=out.exif, text=out.text)
    _remove_tile_stores(stores)
    if beyond := beyond_range_note(args.output, images, out):
        _note([beyond])
    counts = sorted({r.steps_run for r in results})
    steps = f"{counts[0]} steps" if len(results) == 1 else \
        f"{counts[0]} steps per frame" if len(counts) == 1 else f"{counts[0]}-{counts[-1]} steps per frame"
    fit_s = sum(r.timings["fit_s"] for r in results)
    sure_s = sum(r.timings.get("sure_s", 0.0) for r in results)  # the SURE pick's second fit and scoring
    choosing = f", {sure_s:.1f} s choosing the stop by SURE" if sure_s else ""
    render = "" if out_shape == shape else f"rendered from the fit's {shape[1]}x{shape[0]}, "
    print(f"wrote {args.output} ({_describe_output(args.output, out, out_shape, len(scenes))}, {render}"
          f"{steps}, {fit_s:.1f} s fitting{choosing}{'' if len(results) == 1 else ' in all'})")
    _made_folder(new_folder)
    if len(scenes) == 1:
        result = results[0]
        print(f"stopped at step {result.steps_run}: {result.stop_reason}{_returned(result)}"
              if result.stop_reason != NOTHING_MISSING else f"not fitted: {result.stop_reason}")
        for line in _registration_lines(result.settings.get("registration"), observations, infos):
            print(line)
    for line in _blur_lines(results[0].settings, chosen=getattr(args, "boundary", None), preset=args.preset):
        print(line)
    for line in _frames_lines([_network_line(r.settings, named=model is not None)
                               if r.stop_reason != NOTHING_MISSING else None for r in results]):
        print(line)
    # a burst's frames named by their files in its lines (one scene: separate frames are no burst)
    names = [Path(str(info.path)).name for info in scenes[0][1]] if len(scenes) == 1 else None
    for line in _frames_lines([_photon_line(r.settings, names=names) for r in results]):
        print(line)
    mapped = [r for r in results if r.settings.get("clipping")]
    clipping_line = _clipping_line(mapped[0].settings, names=names) if mapped else None
    if clipping_line:  # separate frames: the first one's, and how many took the route
        print(clipping_line + (f" ({len(mapped)} of {len(results)} frames)" if len(results) > 1 else ""))
    prior_line = _prior_line([r.settings for r in results], asked=args.prior is not None)
    if prior_line:
        print(prior_line)
    retry_line = _retry_line([r.settings for r in results])
    if retry_line:
        print(retry_line)
    refine_line = _refine_line([r.settings for r in results], asked=args.refine is not None)
    if refine_line:
        print(refine_line)
    if args.uncertainty is not None:
        spreads = [r.uncertainty for r in results]
        fmt = WRITE_FORMATS[Path(args.uncertainty).suffix.lower()]
        span = spread_units(out.value_range, fmt)
        write_frames(args.uncertainty, spreads, bit_depth=16 if fmt == "png" else 32, density=out.density,
                     tiff=out.tiff,  # an ImageJ or OME input's axes, pixel size and channel names: the map lies on it
                     value_range=None if span is None else ValueRange(0.0, span, "given"),
                     fits=out.fits if span is not None or out.fits is None else out.fits.without("BUNIT"),
                     force=args.force, protect=protect + [args.output])
        mean = sum(float(u.mean()) for u in spreads) / len(spreads)
        largest = max(float(u.max()) for u in spreads)
        scale = "0-1" if span is None else f"the input's units (the 0-1 scale times {span:.6g})"
        uncertainty = {"file": str(args.uncertainty), "members": args.ensemble, "scale": scale,
                       "statistic": "sample standard deviation of the members' images, per pixel",
                       "mean": mean, "largest": largest}
        print(f"wrote {args.uncertainty} (the {args.ensemble} members' spread per pixel, 0-1 scale: "
              f"mean {mean:.4f}, largest {largest:.4f}" + ("" if span is None else
                                                          f"; written in the input's units, times {span:.6g}") + ")")
    if args.save_model:
        results[0].save_model(args.save_model, out, force=args.force)
        print(f"wrote {args.save_model} (the fitted model: linr render {args.save_model} --scale S -o OUT)")
    reports = []
    for k, ((scene, scene_infos), result, reference, where, image) in enumerate(
            zip(scenes, results, references, measured, images)):
        frame = f"frame {k + 1}/{len(scenes)}: " if len(scenes) > 1 else ""  # each frame's lines named
        report: dict[str, Any] = result.to_dict()  # with result.metrics, restore's (on the pixels measured)
        if where is not None:
            named_opaque(report["metrics"])
        if reference is not None:
            std = report["metrics"]["standard"]
            c = result.image.shape[2]
            on = "RGB" if c == 3 else "grey" if c == 1 else f"{c} channels"
            on += "" if where is None else f", on the {where.mean():.1%} of pixels that are opaque"
            similarity = f"SSIM {std['ssim']:.4f}" if std["ssim"] is not None else f"SSIM {std['ssim_note']}"
            rule = None if out.value_range is None else out.value_range.rule
            scale = measured_scale(result.settings, rule or "dtype")  # a hot pixel its white: the scene's range
            if scale != measured_scale(result.settings):  # restore measured on the scene's range: this photo's is
                from .tasks import result_metrics        # its type's or given, which a hot pixel did not set

                task = "deblur" if {o.kind for o in scene} == {"blurred"} else None
                report["metrics"] = result.metrics = result_metrics(reference, result, task, where=where, scale=scale)
                if where is not None:
                    named_opaque(report["metrics"])
                std = report["metrics"]["standard"]
                similarity = f"SSIM {std['ssim']:.4f}" if std["ssim"] is not None else f"SSIM {std['ssim_note']}"
            written = None if render else as_written(args.output, image, reference, bit_depth=out.bit_depth,
                                                      value_range=out.value_range, where=where, scale=scale)
            if written is not None:
                report["metrics_as_written"] = written
            span = std.get("data_range")
            clipped = "clipped" if span is None else \
                f"clipped to the reference's range {_reference_range(reference, where, scale)} (the photo's{' without its defects' if scale != 1.0 else ''} is 0..1), data range {span:.4g}"
            print(f"{frame}PSNR {_decibels(std['psnr'])}, {similarity} (standard convention: {clipped}, "
                  f"{on}{', SSIM data range 1' if span is None else ''}{', of the fit at its own size' if render else ''}"
                  f"{_written_note(std, written)}{_range_hint(out.value_range, reference, result.image, scale)})")
            if inputs_psnr := input_psnrs(scene, reference, [str(info.path) for info in scene_infos], where=where,
                                          scale=scale):
                report["input_psnr"] = inputs_psnr
                moved = moved_before_mean(result.settings.get("registration"))
                print(f"{frame}the inputs against it: " + ", ".join(f"{d['path']} ({d['kind']}) PSNR {_decibels(d['psnr'])}"
                                                          for d in inputs_psnr) + " (the same convention"
                      + ("; the frames as given, before they were moved onto the first's grid)" if moved else ")"))
        reports.append(report)
    if args.report:
        output = {"output": str(args.output), "inputs": inputs}
        if out_shape != shape:
            output["render_size"] = list(out_shape)
        if args.uncertainty is not None:
            output["uncertainty"] = uncertainty
        report_folder = _missing_folder(args.report)  # None where the output's write made it already
        _write_json(args.report, {**output, **reports[0]} if len(scenes) == 1 else
                    {**output, "frames": reports})
        print(f"wrote {args.report}")
        _made_folder(report_folder)
    return 0


def _network_line(settings: dict[str, Any], *, named: bool) -> str | None:
    """One line when the defaults chose a network other than the paper's for this task
    (:func:`linr.tasks.default_model`; the denoising pilot says so in its refinement line), or None."""
    import dataclasses

    from .tasks import (DEFAULT_INPAINT_MODEL, DEFAULT_INPAINT_PILOT_MODEL, DEFAULT_SR_MODEL, INPAINT_PILOT_ABOVE,
                        INPAINT_PILOT_MISSING_UP_TO, SR_NARROW_ABOVE)

    if named:
        return None
    kinds = {o.get("kind") for o in settings.get("observations", [])}
    if kinds == {"lowres"} and settings.get("model") == dataclasses.asdict(DEFAULT_SR_MODEL):
        m = DEFAULT_SR_MODEL
        return (f"network: {m.name} {m.depth}x{m.width} at omega_0 {m.omega_0:g} (the default for a low-res photo "
                f"refined after the fit at x4 above {SR_NARROW_ABOVE} px, where the paper's 7x256 takes hours on a CPU: "
                "a quarter of its work per step, as good once refined on the benchmark crops; --width 256 for the "
                "paper's; not in the paper)")
    if settings.get("model") == dataclasses.asdict(DEFAULT_INPAINT_PILOT_MODEL):
        m = DEFAULT_INPAINT_PILOT_MODEL
        return (f"network: {m.name} {m.depth}x{m.width} at omega_0 {m.omega_0:g}, {settings.get('steps')} steps at "
                f"learning rate {settings.get('lr'):g} (the default for a photo above {INPAINT_PILOT_ABOVE} px with at "
                f"most {INPAINT_PILOT_MISSING_UP_TO:.0%} of its pixels missing, where the wider network's fit takes hours "
                "on a CPU; on small crops it was 0.3 dB under the wider one on average: --width 256 --omega0 15 for it; "
                "not in the paper)")
    if settings.get("model") != dataclasses.asdict(DEFAULT_INPAINT_MODEL):
        return None
    m = DEFAULT_INPAINT_MODEL
    return (f"network: {m.name} {m.depth}x{m.width} at omega_0 {m.omega_0:g} (the default for a photo with missing "
            "pixels; not in the paper, whose omega_0 is 30: --omega0 30 or --preset paper)")


def _reference_range(reference: Any, where: Any, scale: float = 1.0) -> str:
    """'LO..HI' of the range a reference beyond [0, 1] is measured on, in the photo's scale (1 its white;
    divided by ``scale``, :func:`linr.defects.measured_scale`)."""
    import numpy as np

    from .metrics import measured_range

    low, high = measured_range(np.asarray(reference, np.float32) / np.float32(scale), where)
    return f"{low:.4g}..{high:.4g}"


def _written_note(std: dict[str, Any], written: dict[str, Any] | None) -> str:
    """'; 29.10 dB as written (8-bit PNG)' where the written file measures other than the restored
    image's values by 0.005 dB or more, else ''."""
    if written is None or std["psnr"] is None or written["psnr"] is None:
        return ""
    if math.isfinite(std["psnr"]) and math.isfinite(written["psnr"]) and abs(std["psnr"] - written["psnr"]) < 0.005:
        return ""
    if written["bit_depth"] == 32:
        return (f"; {_decibels(written['psnr'])} as written (float32 {written['format'].upper()}: its values above "
                "the input's range kept)")
    return f"; {_decibels(written['psnr'])} as written ({written['bit_depth']}-bit {written['format'].upper()})"


def _range_hint(value_range: Any, reference: Any, image: Any, scale: float = 1.0) -> str:
    """'; on the inputs' range LO..HI (...)' where the scale PSNR is measured on is a range of the
    inputs' own (their data's, a given one, dim counts' low bits), which ``linr metrics`` maps only when
    told (it maps two float files by the larger of their maxima): an astronomer's 48.32 dB printed was
    47.91 by ``linr metrics``; else '' (also where the reference reaches beyond the range, which the
    standard convention then measures on the reference's own: :func:`linr.metrics.measured_range`).
    ``scale``: the range's share measured on (:func:`linr.defects.measured_scale`)."""
    import numpy as np

    if value_range is None or value_range.rule not in ("data", "given", "bits") or \
            float(np.max(reference)) > scale or min(float(np.min(reference)), 0.0) < 0.0:
        return ""  # a reference beyond the range: measured on its own (linr.metrics.measured_range)
    low, high = value_range.low, value_range.low + scale * (value_range.high - value_range.low)
    return (f"; on the inputs' range {low:g}..{high:g}" + (" (its defects left out)" if scale != 1.0 else "")
            + f", as linr metrics --range={low:g}:{high:g} measures")


def _decibels(psnr: float | None) -> str:
    """A PSNR as printed: 'NN.NN dB', or 'infinite (identical to the reference)' (an input given as
    its own reference; the report's JSON holds null there)."""
    return "infinite (identical to the reference)" if psnr is None or math.isinf(psnr) else f"{psnr:.2f} dB"


def _restore_history(infos: list[Any], results: list[Any]) -> list[str]:
    """What a FITS output's HISTORY cards say was done (beside 'written by linr'): the inputs by kind
    and file, the noise model where photon noise was restored, the steps and the refinement."""
    from collections import Counter

    kinds = Counter(str(o.get("kind")) for o in results[0].settings.get("observations", []))
    files = ", ".join(dict.fromkeys(re.sub(r"\[\d+\]$", "", Path(str(i.path)).name) for i in infos))
    steps = sorted({r.steps_run for r in results})
    refined = sorted({r.settings["refine"]["name"] for r in results
                      if isinstance(r.settings.get("refine"), dict) and "skipped" not in r.settings["refine"]})
    photon = results[0].settings.get("photon") or {}
    return [f"linr restore: {', '.join(f'{n} {k}' for k, n in kinds.items())} ({files})",
            f"linr restore: {steps[0] if len(steps) == 1 else f'{steps[0]}-{steps[-1]}'} steps"
            + (f" per frame ({len(results)} frames)" if len(results) > 1 else "")
            + (f"; photon noise by {photon['method']}" if photon.get("method") else "")
            + (f"; refined by {', '.join(refined)}" if refined else "; not refined")]


def _refuse_output_in_a_glob(args: argparse.Namespace, outputs: list[str | None]) -> None:
    """An output that a quoted glob of the inputs matches (an earlier run's, written beside its
    frames) is refused naming the glob: a rerun otherwise said only that it would overwrite an
    input file, and its frames had taken the earlier output in as one more."""
    import glob as globbing

    from .kinds import KINDS
    from .scene import expand_paths

    for name in KINDS:
        for spec in getattr(args, name, None) or []:
            if not (globbing.has_magic(spec) and not os.path.exists(spec)):
                continue
            matched = {Path(p).resolve() for p in expand_paths(spec)}
            for output in outputs:
                if output is not None and Path(output).resolve() in matched:
                    raise InputError(f"{output}: the glob --{name} '{spec}' matches it (an earlier run's output?), so "
                                     "it would be read as a frame and overwritten: write the output elsewhere or "
                                     "narrow the glob")


def _frames_of(infos: list[Any], notes: list[str]) -> str:
    """``--frames`` left out: :func:`linr.scene.default_frames`, its note added to ``notes``."""
    from .scene import default_frames

    frames, note = default_frames(infos)
    if note:
        notes.append(note)
    return frames


def _frames_lines(lines: list[str | None]) -> list[str]:
    """One line said of each frame restored (``--frames separate``; one frame: one line) as the
    lines to print: the line once where every frame has it, else each different line with the
    frames it holds for before it (``frames 1, 3 of 4: ...``); frames without one (None) say nothing."""
    if len(set(lines)) == 1:
        return [] if lines[0] is None else [lines[0]]
    said = []
    for line in dict.fromkeys(x for x in lines if x is not None):
        frames = [str(k + 1) for k, x in enumerate(lines) if x == line]
        said.append(f"frame{'s' if len(frames) > 1 else ''} {', '.join(frames)} of {len(lines)}: {line}")
    return said


def _photon_line(settings: dict[str, Any], *, names: list[str] | None = None) -> str | None:
    """One line on how photon noise was restored (:mod:`linr.stabilise`), or None: no photon noise.
    ``names``: a burst's frames' file names."""
    from .stabilise import left_out_said

    route = settings.get("photon")
    if not route:
        return None
    if route["method"] == "anscombe":
        read = route["read_noise_photons"]
        left = left_out_said(route, names=names)
        return ("" if left is None else left + "; ") + (f"photon noise: restored through its Anscombe transform ({route['peak']:.3g} photons at white"
                + (f", read noise {read / route['peak'] * 255:.3g}/255 ({read:.3g} photons)" if read else "")
                + "; noise levels in the lines below are the transformed photo's; --photon-method likelihood "
                  "fits the photon likelihood instead)")
    if "why" in route:
        return f"photon noise: its likelihood fitted, not the Anscombe transform: {route['why']}"
    return None


def _clipping_line(settings: dict[str, Any], *, names: list[str] | None = None) -> str | None:
    """One line on a Gaussian burst averaged and a photo's clipping undone (:mod:`linr.stabilise`),
    or None: neither. ``names``: the burst's frames' file names."""
    from .stabilise import dominant_frame_said, left_out_said, moved_before_mean

    route = settings.get("clipping")
    if not route:
        return None
    said = []
    if (left := left_out_said(route, aligned=moved_before_mean(settings.get("registration")), names=names)) is not None:
        said.append(left)
    if route.get("frames_averaged", 0) > 1:
        levels = ", ".join(f"{s:.1f}" for s in route.get("measured_sigmas", route["sigmas"]))
        weights = ", ".join(f"{w:.2f}" for w in route["weights"])
        said.append(f"{route['frames_averaged']} aligned frames averaged and restored as one photo (measured "
                    f"noise sigma {levels} of 255; weights {weights})")
        if (heavy := dominant_frame_said(route, names=names)) is not None:
            said.append(heavy)
    ends = [end for end, on in (("black", route["clipped_at_black"]), ("white", route["clipped_at_white"])) if on]
    if ends:
        levels = ", ".join(f"{s:.1f}" for s in route["sigmas"])
        said.append(f"clipped at {' and '.join(ends)}: the restored values mapped back through the clipped "
                    f"noise's expected value (noise sigma {levels} of 255, the measure's lowering by the clipping "
                    "undone; --clipping ignore: as fitted)")
    return "; ".join(said) or None


def _prior_line(settings: list[dict[str, Any]], *, asked: bool) -> str | None:
    """One line on the image prior the fits (one per frame with --frames separate) used (the
    default's is not in the paper), or None."""
    spec = settings[0].get("prior")
    if not spec:
        return None
    from .priors import parse_prior, weight_is_auto

    line = f"image prior: {spec}"
    weights = sorted(parse_prior(s["prior_used"]).weight for s in settings if s.get("prior_used"))
    if weight_is_auto(spec) and weights:  # the weight each fit measured
        shown = _span(weights, ".3g")
        each = " of each frame" if len(weights) > 1 else ""
        line += f", weight {shown} (set from the noise measured on the input{each})"
    return line + ("" if asked else "; the default for a noisy photo, --prior none fits without it")


def _span(values: list[float], spec: str) -> str:
    """Sorted ``values`` as one number, or LOW-HIGH where they differ when formatted with ``spec``."""
    low, high = format(values[0], spec), format(values[-1], spec)
    return low if low == high else f"{low}-{high}"


def _retry_line(settings: list[dict[str, Any]]) -> str | None:
    """One line on fits that failed the neighbour check and were fitted again
    (:attr:`linr.config.FitConfig.retry_lr`; each tile's fit of a tiled restoration), or None."""
    from .tasks import retry_records

    fits = [record for s in settings for record in retry_records(s)]
    retried = [r for r in fits if r]
    if not retried:
        return None
    kept = sum(r["returned"] == "retry" for r in retried)
    where = f"{len(retried)} of {len(fits)} fits" if len(fits) > 1 else "the fit"
    diverged = sum(r.get("held_out_loss") is None for r in retried)
    how = ("diverged" if diverged == len(retried) else
           "predicted the pixels held out of it clearly worse than their neighbours' mean" +
           (f" ({diverged} diverged)" if diverged else ""))
    return (f"retried: {where} at learning rate {retried[0]['lr']:g} {how}, and fitted again at "
            f"{retried[0]['retry_lr']:g}; the retry was kept for {kept} of {len(retried)}")


def _refine_line(settings: list[dict[str, Any]], *, asked: bool) -> str | None:
    """One line on the refinement after the fits (not in the paper), or None."""
    from .tasks import NOTHING_MISSING

    done = [s["refine"] for s in settings if s.get("refine") and s["refine"].get("skipped") != NOTHING_MISSING]
    if not done:  # none, or a photo with nothing missing returned as it is (said by its 'not fitted' line)
        return None
    skipped = [d for d in done if "skipped" in d]
    if skipped:
        frames = f" for {len(skipped)} of {len(done)} frames" if len(done) > 1 else ""
        if skipped[0]["skipped"].startswith("out of memory"):
            return f"not refined{frames}: {skipped[0]['name']} ran out of memory; the fit's image was written"
        reason = skipped[0]["skipped"].replace("the fit's image is returned", "the fit's image was written")
        return f"not refined{frames}: the default refinement ({skipped[0]['name']}): {reason}"
    projected = [d["projected"] for d in done if d.get("projected")]  # refiners ending in a projection
    if any(not p.get("converged", True) for p in projected):
        return (f"not refined: {done[0]['name']}'s projection onto the low-res views did not converge (they "
                "cannot all be reproduced exactly); the fit's image was written")
    if projected:
        count, worst = projected[0]["views"], max(p["residual"] for p in projected)
        views = "low-res view" if count == 1 else f"{count} low-res views"
    if done[0]["name"] == "grouped-views-examples":  # linr.refine.GroupedViewsExamples
        learnt = done[0]["learnt"]
        if "skipped" in learnt or not learnt.get("projected", {}).get("converged", True):
            why = learnt.get("skipped") or "their mean could not be made to reproduce the photo"
            return (f"refined: grouped-views only (the fit's image made to reproduce the {views} exactly, then "
                    f"{done[0]['passes']} passes of grouped filtering); the network of the photo's own copies "
                    f"was left out: {why}; not in the paper")
        stages = learnt.get("stages", [])
        networks = (f"a network trained {learnt['steps']} steps" if len(stages) <= 1 else
                    f"{len(stages)} networks in turn ({', then '.join(f'x{s}' for s in stages)}) trained "
                    f"{learnt['steps']} steps each")
        return (f"refined: grouped-views-examples (the mean of the fit's image, grouped-views' "
                f"({done[0]['passes']} passes) and the photo upscaled by {networks} "
                f"on its own smaller copies, made to reproduce the {views} exactly, relative residual "
                f"{learnt['projected']['residual']:.1g}; not in the paper)") + ("" if asked else "; the default for one "
                                                                 f"low-res photo at x{math.prod(stages)}, --refine none returns the fit's image")
    if done[0]["name"] == "grouped-views":  # linr.refine.GroupedViews
        return (f"refined: grouped-views (the fit's image made to reproduce the {views} exactly, then "
                f"{done[0]['passes']} passes of grouped filtering, each made to reproduce {'it' if count == 1 else 'them'} again, relative "
                f"residual {worst:.1g}; not in the paper)") + ("" if asked else "; the default for one low-res "
                                                                 "photo, --refine none returns the fit's image")
    if done[0]["name"] in ("grouped-deblur", "grouped-pair"):  # linr.refine.GroupedDeblur, GroupedPair
        sigmas = _span(sorted(d["sigma"] for d in done), ".1f")
        short = [d["solved"] for d in done if d["solved"].get("converged") is False]
        unsolved = "" if not short else (
            f"; its data steps stopped after {short[0]['iterations']} iterations short of their tolerance, "
            f"relative residual up to {max(d['residual'] for d in short):.1g}")
        free = "" if done[0].get("edges") != "free" else \
            " (nothing assumed beyond its frame, the pixels beyond it drawn to the fit's own)" \
            if done[0].get("extension") else " (nothing assumed beyond its frame)"
        noise = f"noise sigma {sigmas} of 255 measured"
        rescaled = settings[0].get("defects", {}).get("rescaled")  # linr.defects: a hot pixel was the photo's maximum
        if widened := settings[0].get("headroom"):  # measured and refined on the fit's widened scale
            noise += f" on the fit's scale ({widened['factor']:g}x the photo's{' without its defects' if rescaled else ''})"
        elif rescaled:
            noise += " on the fit's scale (the photo's without its defects)"
        levels = [tuple(d["sigmas"]) for d in done]
        if done[0]["name"] == "grouped-deblur" and any(d.get("raised_by_noise") for d in done):
            from .refine import GroupedDeblur

            noise += (f", the filter's level falling from {_span(sorted(lv[0] for lv in levels), '.3g')} to "
                      f"{_span(sorted(lv[1] for lv in levels), '.3g')} (at least {GroupedDeblur.START_PER_SIGMA:g}x and "
                      f"{GroupedDeblur.END_PER_SIGMA:g}x the noise)")
        pair = blend = ""
        if done[0]["name"] == "grouped-pair":
            pair = " and near the noisy photo"
            noisy = _span(sorted(d['noisy_sigma'] for d in done), '.1f')
            noise = (f"noise sigma {noisy} of 255 measured on the noisy photo and {sigmas} on the blurred one"
                     if "noisy_noise" not in done[0] else
                     f"the noisy photo's photon noise read off the fit's brightness (rms sigma {noisy} of 255, "
                     f"{_span(sorted(d['noisy_noise']['peak'] for d in done), '.3g')} photons at white"
                     + ("" if not done[0]["noisy_noise"].get("read_sigma") else
                        f", read noise {_span(sorted(d['noisy_noise']['read_sigma'] * 255 for d in done), '.2f')} of 255")
                     + f"), noise sigma {sigmas} of 255 measured on the blurred photo")
            weights = [d["weights"] for d in done if d.get("weights")]
            few = [d["not_blended_held_out_values"] for d in done if "not_blended_held_out_values" in d]
            if weights:
                blend = ("; then blended with grouped-deblur's passes (levels 15 to 2) of the blurred photo alone by the noisy photo's held-out "
                         f"pixels, weight {_span(sorted(w['grouped-pair'] for w in weights), '.2f')} on the pair")
            if few:
                from .refine import GroupedPair

                blend += (f"; {'some frames' if weights else 'the pair'} not blended with grouped-deblur of the blurred "
                          f"photo alone: {_span(sorted(few), 'd')} of the noisy photo's held-out values away from the "
                          f"clip, fewer than the {GroupedPair.MIN_PIXELS} it needs")
        return (f"refined: {done[0]['name']} ({done[0]['passes']} passes of grouped filtering from the fit's image, "
                f"each followed by the image that explains the blurred photo{free} best near it{pair}, {noise}"
                f"{unsolved}{blend}; not in the paper)") + ("" if asked else (
                    "; the default for one blurred photo" if not pair else "; the default for a noisy and a blurred "
                    "photo of one scene") + ", --refine none returns the fit's image")
    if done[0]["name"] == "project":  # the projection alone (linr.refine.Projected)
        return (f"refined: project (the fit's image made to reproduce the {views} exactly, relative residual "
                f"{worst:.1g}; not in the paper)")
    if done[0]["name"] == "grouped-fill":  # linr.refine.GroupedFill
        return _fill_line(done) + ("" if asked else "; the default for a photo with missing pixels (beside noisy "
                                   "photos too: the joint fit the pilot), --refine none returns the fit's image")
    if "sigma" not in done[0]:  # a blend with a classical inpainting (linr.refine.BiharmonicBlend)
        chosen = [d["chosen_on_held_out_pixels"] for d in done if d.get("chosen_on_held_out_pixels")]
        how = (f"chosen on {_span(sorted(chosen), 'd')} held-out pixels" if len(chosen) == len(done) else
               "half and half: too few or no pixels held out of one whole-image fit to choose it on")
        weights = _span(sorted(d["weight"] for d in done), ".2f")
        line = (f"refined: {done[0]['name']} (the fit's image averaged with biharmonic inpainting of the "
                f"observed pixels, weight {weights} for the fit, {how}{_by_depth_clause(done)}; not in the paper)")
        return line + ("" if asked else "; the default for a photo with missing pixels, --refine none "
                       "returns the fit's image")
    sigmas = sorted(d["sigma"] for d in done)
    shown = _span(sigmas, ".1f")
    model = settings[0].get("model") or {}
    network = f" ({model['name']} {model['depth']}x{model['width']})" if {"name", "depth", "width"} <= model.keys() else ""
    then = f", then made to reproduce the {views} exactly (relative residual {worst:.1g})" if projected else ""
    blend = _blend_phrase(done, views) if projected else ""
    line = (f"refined: {done[0]['name']} (the noisy photo filtered with the fit's image{network} as the "
            f"pilot, noise sigma {shown} of 255 measured{then}{blend})")
    whose = "a noisy photo with low-res views" if projected else "a noisy photo"
    return line + ("" if asked else f"; the default for {whose}, --refine none returns the fit's image")


def _fill_line(done: list[dict[str, Any]]) -> str:
    """The ``refined:`` line of :class:`linr.refine.GroupedFill` (one report per frame)."""
    done = [d for d in done if not d.get("nothing_missing")]  # frames with holes say how they were filled
    if not done:
        return "refined: grouped-fill (no pixel is missing: the photo itself; not in the paper)"
    first = done[0]
    start = "the fit's image" if first.get("biharmonic") is False else \
        "the fit's image blended with biharmonic inpainting"
    line = (f"refined: grouped-fill (the missing pixels filled by {first['passes']} passes of grouped "
            f"filtering, the observed pixels kept, from {start}")
    if all(d.get("weights") for d in done):
        names = list(first["weights"])
        spans = " / ".join(_span(sorted(d["weights"][n] for d in done), ".2f") for n in names)
        counts = _span(sorted(d["chosen_on_held_out_pixels"] for d in done), "d")
        line += f"; the result weighs {' / '.join(names)} {spans}, chosen on {counts} held-out pixels"
        line += _by_depth_clause(done)
    else:
        line += ("; the fill alone: too few or no pixels held out to weigh it on (tiles and fits of fixed steps "
                 "hold none)")
    return line + "; not in the paper)"


def _by_depth_clause(done: list[dict[str, Any]]) -> str:
    """What an inpainting blend chosen by depth (:class:`linr.refine.DepthBlend`: the photo's holes
    were large) says: its weights are their mean over the missing pixels; empty otherwise."""
    bands = [d["by_depth"] for d in done if d.get("by_depth")]
    if not bands:
        if any(d.get("by_depth_left") for d in done):
            return (" (the holes are large, so blocks of observed pixels were held out too; one set of weights, since "
                    "weights by each pixel's depth in the holes predicted the blocks worse)")
        return ""
    deepest = max(b[-1]["depth"] for b in bands)
    return (f" (their mean over the missing pixels: the holes are large, so each missing pixel takes the weights "
            f"chosen on held-out pixels at its own distance from the observed ones, held out in blocks too, "
            f"measured down to {deepest:.1f} px deep)")


def _blend_phrase(done: list[dict[str, Any]], views: str) -> str:
    """How a refinement blended the fit's, the filtered and the projected images
    (:class:`linr.refine.GroupedProjected`; '' when none did)."""
    from .refine import GroupedProjected

    chosen = [d for d in done if d.get("weights")]
    few = [d["not_blended_held_out_pixels"] for d in done if "not_blended_held_out_pixels" in d]
    if not chosen and few:
        pixels = _span(sorted(few), "d")
        if any("gain_z" in d for d in done):  # a blend was weighed and found no clear gain
            z = _span(sorted(d["gain_z"] for d in done if "gain_z" in d), ".1f")
            return (f"; not blended with the fit's image: on {pixels} held-out pixels the best blend beat the "
                    f"projected image by {z} standard errors (more than {GroupedProjected.SIGNIFICANCE:g} needed)")
        return (f"; not blended with the fit's image: {pixels} held-out pixels, fewer than "
                f"the {GroupedProjected.MIN_PIXELS} a choice needs")
    if not chosen:
        return ""
    names = {"fit": "the fit's image", "grouped": "the filtered one",
             "grouped-project": f"the filtered one made to reproduce the {views} exactly"}
    parts = [f"{names.get(k, k)} {_span(sorted(d['weights'][k] for d in chosen), '.2f')}" for k in chosen[0]["weights"]]
    held = _span(sorted(d["chosen_on_held_out_pixels"] for d in chosen), "d")
    off = max(d["blend_residual"] for d in chosen)
    frames = f" (on {len(chosen)} of {len(done)} frames; the others are the projected image)" \
        if len(chosen) < len(done) else ""
    return (f"; then blended by weights chosen on {held} held-out pixels: {', '.join(parts)}{frames}; the "
            f"result misses the {views} by a relative residual of {off:.2g}")


AUTO_WORKERS = 2
"""``linr restore`` with no ``--workers``: a long restoration in tiles on the CPU fits its tiles in
this many local worker processes (fewer where there are fewer usable cores or tiles; none on one
core) when run as the ``linr`` command (:func:`_automatic_workers`). On this project's idle 2-core
CPU two one-thread workers restored a 512-px RGB photo in 88.0-91.0 s against 107.9-119.1 s for
one process with two torch threads (1.20-1.34x, the same image; forty-fifth session, BENCHMARKS.md
'#15 and #14: no prior for colour photos above 128 px'): a tile's small products keep two threads
less busy than two processes. More workers were not measured (each process holds its own torch
and tile), so more cores are shared among these two."""


def _automatic_workers(args: argparse.Namespace, grid: Any, cost: str | None) -> int:
    """The worker processes a restoration gets when ``--workers`` is left out: :data:`AUTO_WORKERS`
    (at most the usable cores and the tiles) for a restoration in tiles on the CPU whose forecast
    says it is long (``cost``: :func:`_cost_line`, with more than its warnings), run as the
    ``linr`` command (:func:`_started_as_command`: spawned workers import the main module again);
    1 (this process) otherwise, and where the user set ``OMP_NUM_THREADS`` (the threads they
    allow) or asked for Ray."""
    from .batch import usable_cores
    from .cores import omp_threads
    from .problem import resolve_device

    long = cost is not None and any(not line.startswith("warning:") for line in cost.splitlines())
    if args.backend != "local" or grid is None or len(grid) < 2 or not long or omp_threads() is not None:
        return 1
    if not _started_as_command() or resolve_device(args.device).type != "cpu":
        return 1
    return max(1, min(AUTO_WORKERS, usable_cores(), len(grid)))


def _started_as_command() -> bool:
    """Whether this process runs the ``linr`` command (its console script, or ``python -m linr``),
    whose main module a spawned worker can import again without restoring anything; a script that
    calls :func:`main` itself may not guard its work under ``if __name__ == "__main__":``."""
    main_module = sys.modules.get("__main__")
    spec = getattr(main_module, "__spec__", None)
    if spec is not None and spec.name == "linr.__main__":
        return True
    path = getattr(main_module, "__file__", None)
    return spec is None and path is not None and Path(path).stem == "linr"


def _tile_executor(args: argparse.Namespace, workers: int) -> tuple[Any, int]:
    """Local worker processes (``workers``) or a Ray backend running
    :func:`linr.tiling.fit_tile_group`, and the torch threads of each tile's fit."""
    from .tiling import fit_tile_group

    if args.backend == "ray":
        from .batch.ray_backend import RayBackend

        ray = RayBackend(address=args.ray_address, device=args.device, cpus_per_task=1.0,
                         gpus_per_task=0.25, task=fit_tile_group)
        print(f"fitting tiles on Ray ({ray.device}, {ray.slots} batches in flight)", file=sys.stderr)
        return ray, ray.threads
    from .batch import local_threads
    from .batch.local import PoolBackend

    import torch

    threads = min(local_threads(None, workers), torch.get_num_threads())  # no more than the late-threads check left
    chosen = "" if args.workers else " (chosen for a long restoration on this CPU's cores; --workers 1: in this process)"
    print(f"fitting tiles in {workers} worker processes, {threads} thread{'' if threads == 1 else 's'} each{chosen}", file=sys.stderr)
    return PoolBackend(workers, task=fit_tile_group), threads


TAKEN_SAID_FROM = 0.01
"""The share of a moved frame's values given way to the first frame's
(:func:`linr.registration.kept_where_agreeing`) from which its registration line says so."""


def _registration_lines(found: Sequence[Any] | None, observations: Sequence[Any],
                        infos: Sequence[Any]) -> list[str]:
    """One line per registered frame: its fitted shift (and matrix) against the reference."""
    from .stabilise import moved_before_mean

    if not found:
        return []
    lines = [f"registration against {infos[0].path} ({observations[0].kind}); "
             + ("frames moved onto its grid before their mean; " if moved_before_mean(found) else "")
             + "shifts in restored-image pixels (x right, y down):"]
    for k, (obs, info, t) in enumerate(zip(observations, infos, found)):
        if t is None:
            continue
        matrix = t.get("matrix")
        extra = "" if matrix is None else f", matrix [[{matrix[0][0]:.4f} {matrix[0][1]:.4f}] " \
            f"[{matrix[1][0]:.4f} {matrix[1][1]:.4f}]] (rows, columns)"
        if t.get("turn_degrees"):  # turned back about the frame's centre before the shift
            extra += f", turned back by {t['turn_degrees']:+.2f} degrees first"
        if t.get("tiles_moved"):  # what one shift and turn left, undone tile by tile
            extra += (f"; {t['tiles_moved']} tile(s) of 32 px moved further, by up to "
                      f"{t['tile_shift_largest']:.2f} px (parallax or local motion)")
        taken = t.get("first_frame_taken") or 0.0
        if taken >= TAKEN_SAID_FROM:  # a moved frame that disagreed with the first there
            extra += (f"; where it disagreed with the first frame beyond its noise ({taken:.0%} of its values) the "
                      "first frame's were taken" + (": does it show the same scene?" if taken >= 0.25 else ""))
        lines.append(f"  frame {k}, {info.path} ({obs.kind}): x {t['shift_x']:+.3f}, y {t['shift_y']:+.3f}{extra}")
    return lines


def _blur_lines(settings: dict[str, Any], *, chosen: str | None, preset: str | None) -> list[str]:
    """What a restoration's blur assumed at the image's edges, when free edges were used or an open
    boundary got mirrored edges (``chosen``: the ``--boundary`` given, None when left open)."""
    boundaries = _blur_boundaries(settings.get("observations", []))
    default = "" if chosen == "free" else ("; the default for a blurred photo alone or beside one noisy photo of it "
                                           "(--boundary reflect mirrors the borders instead)")
    lines = []
    if settings.get("tiles") and "free" in boundaries:
        lines.append("blur with free edges: each tile's fit rendered its window grown by the kernel's reach and "
                     "nothing was assumed beyond the image" + default)
    if margins := settings.get("rendered_margins"):  # a whole fit with free edges (linr.operators.Blur)
        grown = f"{margins[0]} px on every side" if len(set(margins)) == 1 else \
            f"{margins[0]} px above, {margins[1]} below, {margins[2]} left, {margins[3]} right"
        lines.append(f"blur with free edges: the fit rendered the frame grown by the kernel's reach ({grown}) and "
                     "nothing was assumed beyond it" + default)
    if widened := settings.get("headroom"):  # linr.headroom
        lines.append(f"fitted on a scale {widened['factor']:g}x the blurred photo's value range: "
                     + ("as given" if widened["why"] == "given" else
                        f"{widened['why']} (its deblurred sources are brighter than their blurred peaks; "
                        "--headroom off fits it on its own scale; not in the paper)")
                     + (f"; its {widened['saturated_left_out']} touching pixels at its maximum (saturated: the blur does not "
                        "explain a clipped value) left out of the data term" if widened.get("saturated_left_out") else ""))
    if clipped := settings.get("clipped_at_white"):  # linr.headroom.censored_at_white
        lines.append(f"{clipped['pixels']} pixel(s) at white, where the blurred photo was clipped: fitted as "
                     "'at least white' (the data term censored there), not as white (--clipping ignore fits them as "
                     "values; not in the paper)")
    if found := settings.get("defects"):  # linr.defects
        lines.append(f"{found['left_out']} pixel(s) sharper than the blur allows (a hot pixel, a cosmic ray's track: "
                     "no scene blurred by the kernel gives them) left out of the data term"
                     + ("" if "maximum" not in found else
                        f", one of them the photo's maximum: fitted on the scale of the brightest pixel left, "
                        f"{found['maximum']:.3g} of it" if found["rescaled"] else
                        ", one of them the photo's maximum: fitted on the photo's own scale all the same, as a kept "
                        "model renders it")
                     + " (--defects off fits every pixel; not in the paper)"
                     if found["left_out"] else
                     f"{found['sharper_than_kernel']} pixels are sharper than the kernel allows, too many to be hot "
                     "pixels or cosmic rays: the kernel may be wider than the photo's blur (none left out)")
    if chosen is None and preset is None and "reflect" in boundaries and settings.get("registration"):
        lines.append("blur with mirrored edges (reflect), the default with --register: free edges are not built "
                     "with a registration")
    elif chosen is None and preset is None and "reflect" in boundaries:  # the open boundary beside other photos
        lines.append("blur with mirrored edges (reflect), the default beside photos other than one noisy photo of it: "
                     "free edges, the default for a blurred photo alone or beside such a noisy one, are not measured "
                     "there (--boundary free chooses them)")
    return lines


def _blur_boundaries(described: Any) -> set[str]:
    """The boundary rules of the blurs in a fit's described observations (``settings['observations']``),
    wrapped operators (a hold-out mask, a registration) included."""
    if isinstance(described, list):
        return set().union(*(_blur_boundaries(d) for d in described))
    if not isinstance(described, dict):
        return set()
    found = {described["boundary"]} if described.get("name") == "blur" and "boundary" in described else set()
    return found.union(*(_blur_boundaries(v) for v in described.values() if isinstance(v, (dict, list))))


def _missing_folder(path: str) -> tuple[Path, Path] | None:
    """The outermost folder above ``path`` that does not exist yet and ``path``'s own folder
    (writing makes both and those between), or None."""
    missing = None
    for parent in Path(os.path.abspath(path)).parents:
        if parent.exists():
            break
        missing = parent
    if missing is None:
        return None
    own = Path(os.path.abspath(path)).parent
    if not os.path.isabs(path):  # said as the user named the output (out/, not /home/.../out/)
        missing, own = Path(os.path.relpath(missing)), Path(os.path.relpath(own))
    return missing, own


def _made_folder(folders: tuple[Path, Path] | None) -> None:
    if folders is None:
        return
    outermost, own = folders
    if outermost == own:
        print(f"made the folder {own} for it (it did not exist)")
        return
    made = [own] + [p for p in own.parents if p == outermost or outermost in p.parents]  # own up to outermost
    listed = ", ".join(str(p) for p in reversed(made[1:]))  # a new user's -o a/b/c/x.png was told of a alone, then not of a/b
    print(f"made the folder {own} for it, and {listed} above it (they did not exist)")


def _describe_output(path: str, info: Any, shape: tuple[int, int], frames: int) -> str:
    """'WxH[, N frames][, C channels], DEPTH[, how values were written]' for an output line."""
    from .images import keeps_units, written_bit_depth

    depth = written_bit_depth(path, info.bit_depth)
    parts = [f"{shape[1]}x{shape[0]}"]
    if frames > 1:
        parts.append(f"{frames} frames")
    if info.channels not in (1, 3):
        parts.append(f"{info.channels} channels")
    parts.append("float32" if depth == 32 else f"{depth}-bit")
    vr = info.value_range
    if vr is not None and vr.rule in ("data", "given", "bits"):
        if keeps_units(path, info.bit_depth):
            parts.append(f"values in the input's units, {vr.low:g}..{vr.high:g}")
        else:
            parts.append(f"input values {vr.low:g}..{vr.high:g} scaled to the {depth}-bit range "
                         "(a .tif keeps the units)")
    return ", ".join(parts)


def keeps_model(args: argparse.Namespace) -> bool:
    """Whether a restore must keep a model to save or render (which turns the refinement off)."""
    return bool(args.save_model) or args.render_scale is not None or args.render_size is not None


def spread_units(value_range: Any, fmt: str) -> float | None:
    """The factor from the 0-1 scale to the input's units of an ensemble's spread map written as
    ``fmt``, or None for a map on the 0-1 scale: a float32 map (FITS, TIFF) of an input whose
    values had units of their own (FITS; 16-bit integers; floats mapped from their own or a given
    range) is in those units, as the restored image is; a 16-bit PNG map, and maps of 8-bit inputs
    and of floats taken as they are, on the 0-1 scale."""
    if fmt not in ("fits", "tiff") or value_range is None:
        return None
    span = value_range.high - value_range.low
    if fmt == "tiff" and (value_range.rule == "unit" or (value_range.rule == "dtype" and span <= 255)):
        return None
    return span


def _returned(result: Any) -> str:
    """'; returned ...' (:meth:`linr.fit.FitResult.returned`), or nothing for an ensemble or tiles."""
    what = result.returned()
    return "" if what is None else f"; returned {what}"


def _cost_line(observations: list[Any], args: argparse.Namespace, model: Any,
               frames: int = 1, members: int = 1, tile_store: str | None = None) -> str | None:
    """What the restoration will cost when it is long (:func:`linr.tasks.restore_cost`, which plans
    it and so refuses what cannot be done in one line): ``frames`` restorations of this size one
    after the other, each of ``members`` networks (an ensemble); None when short."""
    from .tasks import restore_cost

    return restore_cost(observations, preset=args.preset, steps=args.steps, lr=args.lr, seed=args.seed,
                        device=args.device, model=model, stop=args.stop, precision=args.precision, prior=args.prior,
                        refine=args.refine, keep_model=keeps_model(args), register=getattr(args, "register", None),
                        tile=getattr(args, "tile", None) or "auto", tile_stack=getattr(args, "tile_stack", None),
                        ensemble=members, frames=frames, tile_store=tile_store, threads=None,
                        tile_store_replace=bool(getattr(args, "force", False)),
                        clipping=getattr(args, "clipping", "auto"), headroom=getattr(args, "headroom", "auto"),
                        defects=getattr(args, "defects", "auto"))


def _remove_tile_stores(stores: list[Path | None]) -> None:
    """Once the output is written: remove the tile stores kept beside it (:func:`linr.tiling.remove_tile_store`)."""
    from .tiling import remove_tile_store

    for store in stores:
        if store is not None:
            remove_tile_store(store)  # a folder already gone is fine


def _say_kept_tiles(stores: list[Path | None]) -> None:
    """After an interrupt or a failure: say on stderr where finished tiles were kept for a rerun to resume."""
    from .tiling import count_finished

    for store in stores:
        count = 0 if store is None else count_finished(store)
        if count:
            print(f"{_after_bar()}linr: {count} finished tile(s) kept in {store}: rerun the same command to resume",
                  file=sys.stderr, flush=True)


_BAR_ENDED: list[bool] = []
"""Set once :func:`_after_bar` has ended the line of an interrupted progress bar (or from the start
under ``--quiet``, which draws none)."""


def _after_bar() -> str:
    """What starts the first line said on stderr after an interrupt: a line break on a terminal,
    where a progress bar may have been left without one; nothing in a log or after the first."""
    try:
        terminal = sys.stderr.isatty()
    except (AttributeError, ValueError):  # a closed or replaced stream
        terminal = False
    if not terminal or _BAR_ENDED:
        return ""
    _BAR_ENDED.append(True)
    return "\n"


def _say_refining(name: str) -> None:
    """Say on stderr that the fit is done and its refinement (which may take minutes) begins, or
    (``name`` 'sure') that the SURE pick of its stop does."""
    if name == "sure":
        print("choosing the stop by SURE of the refined image (the pilot fitted once more, its "
              "checkpoints refined and scored as it goes; not in the paper)...", file=sys.stderr, flush=True)
        return
    print(f"refining the fit's image ({name}; not in the paper)...", file=sys.stderr, flush=True)


# --- render ------------------------------------------------------------------------------------


def _build_render(sub: Any) -> None:
    p = sub.add_parser("render", help="render a saved model (restore --save-model) at any size",
                       description="Render a fitted model saved by linr restore --save-model: the "
                       "network evaluated on a grid over the restored image's extent, at any scale, "
                       "mapped as the restoration was (through the Anscombe transform's inverse for photon "
                       "noise, through the clipped noise's expected value for a clipped Gaussian photo).")
    p.add_argument("model", metavar="MODEL.pt")
    p.add_argument("-o", "--output", required=True, help="image to write (.png .tif .jpg .bmp .fits)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--scale", type=positive_float, metavar="S",
                      help="S times the restored size (default 1: the restored image itself)")
    size.add_argument("--size", type=size_option, metavar="WxH", help="WxH pixels")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    p.add_argument("--force", action="store_true", help="overwrite an existing output (never the model)")
    p.add_argument("--quiet", action="store_true",
                   help="as restore's: no progress bar (rendering shows none; taken so that scripts may pass it)")
    p.set_defaults(func=cmd_render)


def cmd_render(args: argparse.Namespace) -> int:
    from .fitted import load_model, render_size
    from .images import beyond_range_note, check_output_path, output_notes, write_image
    from .problem import resolve_device

    fitted, info = load_model(args.model)
    new_folder = _missing_folder(args.output)
    check_output_path(args.output, force=args.force, protect=[args.model], channels=fitted.channels)
    if lost := output_notes(args.output, info):
        _note(lost)
    shape = render_size(fitted.shape, scale=args.scale, size=args.size)
    resolve_device(args.device)
    image = fitted.render(size=shape, device=args.device)
    write_image(args.output, image, bit_depth=info.bit_depth, alpha=info.alpha, value_range=info.value_range,
                tiff=info.tiff, icc_profile=info.icc_profile, density=info.density, fits=info.fits,
                force=args.force, protect=[args.model])
    if beyond := beyond_range_note(args.output, [image], info):
        _note([beyond])
    h, w = fitted.shape
    print(f"wrote {args.output} ({_describe_output(args.output, info, shape, 1)}, rendered from a model "
          f"fitted at {w}x{h})")
    _made_folder(new_folder)
    return 0


# --- degrade -----------------------------------------------------------------------------------


def _build_degrade(sub: Any) -> None:
    p = sub.add_parser("degrade", help="make the paper's corrupted inputs from a clean image")
    p.add_argument("clean", metavar="CLEAN")
    p.add_argument("-o", "--output", required=True)
    what = p.add_mutually_exclusive_group()  # one of them; --poisson alone or after --blur (cmd_degrade checks)
    what.add_argument("--noise", type=nonneg_float, metavar="SIGMA",
                      help="add Gaussian noise of std SIGMA on the 0-255 scale, clip")
    what.add_argument("--downscale", type=positive_int, metavar="S",
                      help="PIL Lanczos downscaling by S (sides must be divisible by S)")
    what.add_argument("--keep", type=fraction, metavar="FRACTION",
                      help="Bernoulli keep-mask: keep this fraction of pixels (writes the mask too)")
    what.add_argument("--blur", metavar="SPEC", help="circular blur with kernel SPEC plus noise (the whole image wraps around, as "
                      "no real photo does); restore it with --kernel SPEC --boundary circular: the default's "
                      "free edges do not know its border wrapped around and lose there")
    p.add_argument("--poisson", type=positive_float, metavar="PEAK",
                   help="photon noise: PEAK photons at white (counts ~ Poisson(PEAK x), written "
                   "as counts / PEAK), clip; restore it with --noise poisson --peak PEAK. With --blur: the "
                   "blurred image's noise instead of --blur-noise (a microscope's or telescope's photo)")
    p.add_argument("--read-noise", type=nonneg_float, default=None, metavar="SIGMA",
                   help="Gaussian read noise added after --poisson, 0-255 scale (default 0; restore "
                   "with --noise poisson-gaussian)")
    p.add_argument("--blur-noise", type=nonneg_float, default=None, metavar="SIGMA",
                   help="noise after --blur, 0-255 scale (default sqrt(2), the paper's)")
    p.add_argument("--mask-output", metavar="FILE", help="where --keep writes its mask (default OUTPUT_mask.png)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_degrade)


def cmd_degrade(args: argparse.Namespace) -> int:
    import numpy as np

    from . import simulate
    from .images import (WRITE_FORMATS, check_output_path, dropped_alpha, output_notes, read_image, refuse_undefined,
                         undefined_pixels, write_image)
    from .tasks import parse_kernel

    protect = [args.clean]
    chosen = [flag for flag, value in (("--noise", args.noise), ("--downscale", args.downscale), ("--keep", args.keep),
                                       ("--blur", args.blur)) if value is not None]
    if args.poisson is not None and chosen not in ([], ["--blur"]):
        raise InputError(f"--poisson goes alone or after --blur, not with {chosen[0]}")
    if not chosen and args.poisson is None:
        raise InputError("give one of --noise, --downscale, --keep, --blur or --poisson (or --blur with --poisson)")
    new_folder = _missing_folder(args.output)
    check_output_path(args.output, force=args.force, protect=protect)
    if args.blur_noise is not None and args.blur is None:
        raise InputError("--blur-noise needs --blur")
    if args.blur_noise is not None and args.poisson is not None:
        raise InputError("--blur-noise and --poisson both give the blurred image's noise: give one")
    if args.read_noise is not None and args.poisson is None:
        raise InputError("--read-noise needs --poisson")
    if args.mask_output is not None and args.keep is None:
        raise InputError("--mask-output needs --keep")
    if args.mask_output is not None and Path(args.mask_output).resolve() == Path(args.output).resolve():
        raise InputError("--mask-output and -o name the same file")
    mask_path = None
    if args.keep is not None:
        out = Path(args.output)
        mask_path = Path(args.mask_output) if args.mask_output else out.with_name(f"{out.stem}_mask.png")
        if WRITE_FORMATS.get(mask_path.suffix.lower()) == "jpeg":
            raise InputError(f"--mask-output {mask_path}: JPEG's compression would blur the mask's edges; name a "
                             ".png or .tif")
        check_output_path(mask_path, force=args.force, protect=protect + [args.output])
    kernel = parse_kernel(args.blur) if args.blur is not None else None
    image, info = read_image(args.clean)
    check_output_path(args.output, force=args.force, protect=protect, channels=image.shape[2])  # before any note
    undefined = undefined_pixels(info)  # a FITS file's holes
    if args.downscale is not None or args.blur is not None:
        refuse_undefined(info, args.clean, f"{'--downscale' if args.downscale is not None else '--blur'} would mix "
                                           "them into their neighbours: fill them first")
    if lost := output_notes(args.output, info):
        _note(lost)
    if WRITE_FORMATS.get(Path(args.output).suffix.lower()) == "jpeg":
        _note([f"{args.output}: JPEG's compression changes what is simulated (it smooths part of the noise and adds "
               "8 x 8 blocks; holes and detail too): write a .png or .tif for an input exactly as simulated"])
    if args.noise is not None:
        out_img = simulate.add_gaussian_noise(image, args.noise, seed=args.seed)
        what = f"Gaussian noise sigma {args.noise:g}/255"
    elif args.downscale is not None:
        h, w = image.shape[:2]
        if h % args.downscale or w % args.downscale:
            sides = [f"{name} {n}" for name, n in (("width", w), ("height", h)) if n % args.downscale]
            raise InputError(f"{args.clean}: size {w}x{h}: its {' and '.join(sides)} "
                             f"{'is' if len(sides) == 1 else 'are'} not divisible by {args.downscale}; crop it first")
        if h // args.downscale < 1 or w // args.downscale < 1:
            raise InputError(f"{args.clean}: {w}x{h} is too small to downscale by {args.downscale}")
        out_img = simulate.lanczos_downscale(image, args.downscale)
        what = f"PIL Lanczos downscale x{args.downscale}"
    elif args.poisson is not None and args.blur is None:
        read = args.read_noise or 0.0
        out_img = simulate.add_photon_noise(image, args.poisson, read_sigma=read, seed=args.seed)
        what = f"photon noise, peak {args.poisson:g} photons" + (f", read noise {read:g}/255" if read else "")
        clipped = float(np.mean(out_img >= 1.0))
        if clipped > 0.01:
            what += f"; {clipped:.1%} of values clipped at white"
    elif args.keep is not None:
        mask = simulate.bernoulli_mask(image.shape[:2], args.keep, seed=args.seed)
        if undefined is not None:  # an undefined pixel is never observed
            mask &= ~undefined
        if not mask.any():
            h, w = image.shape[:2]
            raise InputError(f"--keep {args.keep:g} keeps no pixel of this {w}x{h} image (seed "
                             f"{args.seed}); use a larger fraction")
        out_img = image * mask[..., None]
        what = f"Bernoulli mask keeping {mask.mean():.1%}"
        if info.alpha is not None and dropped_alpha(args.output, info.alpha) is None:
            # the holes transparent too, as --masked reads an image's holes (JPEG and BMP hold no alpha)
            info = dataclasses.replace(info, alpha=info.alpha * mask.astype(np.float32))
            what += "; its holes are transparent in the output's alpha"
    else:
        photons = args.poisson is not None
        sigma = 0.0 if photons else simulate.DEBLUR_NOISE_SIGMA if args.blur_noise is None else args.blur_noise
        try:
            out_img = simulate.blur_image(image, kernel, noise_sigma=sigma, seed=args.seed)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        if photons:  # the blurred image's photons, as a microscope or telescope counts them
            read = args.read_noise or 0.0
            out_img = simulate.add_photon_noise(out_img, args.poisson, read_sigma=read, seed=args.seed)
            what = (f"circular blur {args.blur} plus photon noise, peak {args.poisson:g} photons"
                    + (f", read noise {read:g}/255" if read else ""))
        else:
            what = f"circular blur {args.blur} plus noise sigma {sigma:.3g}/255"
    fits = info.fits
    if fits is not None and args.downscale is None and args.keep is None:  # noise added: not the camera's now
        from .kinds import GAIN_KEYWORDS, READ_NOISE_KEYWORDS

        dropped = [k for k in (*GAIN_KEYWORDS, *READ_NOISE_KEYWORDS) if fits.number(k) is not None]
        if dropped:  # an astronomer's simulated 20 photons kept GAIN 2.0: restored at 846 photons, flux 27% low
            fits = fits.without(*dropped)
            what += f"; its header's {'/'.join(dropped)} left out (the camera's noise, not this simulation's)"
    write_image(args.output, out_img, bit_depth=info.bit_depth, alpha=info.alpha,
                value_range=info.value_range, tiff=info.tiff, icc_profile=info.icc_profile, density=info.density,
                fits=None if fits is None else fits.with_history(f"linr degrade: {what}, seed {args.seed}"),
                force=args.force, protect=protect, exif=info.exif, text=info.text)
    print(f"wrote {args.output} ({what}, seed {args.seed})")
    if args.blur is not None:  # linr restore's default takes a blurred photo for a camera's (free edges)
        print(f"its blur wraps around at the borders: restore it with --blurred {args.output} --kernel {args.blur} "
              "--boundary circular (the default's free edges would leave stripes along them)")
    _made_folder(new_folder)
    if mask_path is not None:
        write_image(mask_path, mask.astype(np.float32), density=info.density, force=args.force, protect=protect)
        print(f"wrote {mask_path} (white = observed)")
    return 0


# --- metrics -----------------------------------------------------------------------------------


def _build_metrics(sub: Any) -> None:
    p = sub.add_parser("metrics", help="PSNR and SSIM of an image against a reference (JSON)")
    p.add_argument("reference", metavar="REFERENCE")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("--y", action="store_true", help="on the BT.601 Y channel (standard convention; a grey "
                   "image is measured on its one channel, as super-resolution tables do)")
    p.add_argument("--crop", type=int, default=0, help="border pixels to ignore (standard convention)")
    p.add_argument("--convention", choices=["standard", "paper"], default="standard")
    p.add_argument("--task", choices=["denoise", "sr", "inpaint", "deblur", "joint"], default=None,
                   help="with --convention paper: deblur measures PSNR on Y as the paper did")
    p.add_argument("--all-pixels", action="store_true", help="measure every pixel; by default a file with "
                   "transparent pixels (alpha) is measured on the pixels opaque in both, as linr restore measures "
                   "a restoration that keeps them")
    _add_range_option(p, "values LO..HI of both files map to [0, 1] (their units, e.g. 0:4000 photon counts; an "
                      "integer file whose type cannot reach HI, an 8-bit PNG beside 12-bit counts, by its own type's "
                      "range, as linr restore reads it); "
                      "default as linr restore reads its inputs: uint8/uint16 by their full range, floats as "
                      "they are when on [0, 1], else from 0 (or their minimum when negative) to the larger "
                      "maximum of the two; auto: every file that way, integers too.")
    p.set_defaults(func=cmd_metrics)


def cmd_metrics(args: argparse.Namespace) -> int:
    from .images import (check_one_image, choose_value_ranges, opaque_pixels, own_units_note, partial_range_note,
                         read_stored, refuse_undefined, to_unit)
    from .metrics import evaluate

    stacks = [read_stored(path) for path in (args.reference, args.image)]
    if len(stacks[0]) > 1 or len(stacks[1]) > 1:
        return _stack_metrics(args, stacks)
    stored = []
    for path, images in zip((args.reference, args.image), stacks):
        check_one_image(path, images)
        stored += images
    # one value range for both (floats outside [0, 1]: the same units, mapped alike)
    ranges = choose_value_ranges(stored, args.range)
    (ref, ref_info), (img, img_info) = (to_unit(im, vr) for im, vr in zip(stored, ranges))
    notes: list[str] = []  # said once the files are known to be comparable
    # a given range a file's type cannot reach: said, or refused for both (as linr restore reads them)
    if own := own_units_note(list(zip((args.reference, args.image), stored)), ranges, args.range,
                             "both files' sample types hold"):
        notes.append(own)
    files = list(zip((args.reference, args.image), stored, ranges))
    if args.reference == args.image:
        files = files[:1]
    for path, image, value_range in files:
        if value_range.rule in ("data", "given"):  # a mapping the file's type does not say by itself
            notes.append(f"values of {path} ({image.type_name}) mapped {value_range.describe()}")
        elif partial := partial_range_note(path, [image]):
            notes.append(partial)
    if {r.rule for r in ranges} == {"data", "dtype"}:
        notes.append("one file holds floats in their own units and the other integers, mapped by their type's "
                     "range: they are compared on [0, 1] as such (to compare them in one unit, write both alike, "
                     "e.g. both as TIFF)")
    for path, image, _ in files:
        refuse_undefined(image, path, "PSNR and SSIM need a value at every pixel")
    if ref.shape != img.shape:
        what = "sizes" if ref.shape[:2] != img.shape[:2] else "channel counts"
        raise InputError(f"{what} differ: {args.reference} is {ref.shape[1]}x{ref.shape[0]} with "
                         f"{ref.shape[2]} channel(s), {args.image} is {img.shape[1]}x{img.shape[0]} "
                         f"with {img.shape[2]} channel(s)")
    _check_metrics_options(args)
    if args.y and ref.shape[2] not in (1, 3):
        raise InputError(f"--y needs RGB or grey images, these have {ref.shape[2]} channels")
    where = None  # the pixels opaque in every file that has transparent ones (None: all)
    for (path, _, _), info in zip(files, (ref_info, img_info)):  # one file compared with itself: read once
        if info.alpha is None:
            continue
        opaque = None if args.all_pixels else opaque_pixels(info.alpha, ref.shape)
        where = opaque if where is None else where if opaque is None else where & opaque
        notes.append(f"{path} has an alpha channel; it is not measured itself (the "
                     f"{'grey' if ref.shape[2] == 1 else 'colour'} values are)"
                     + ("" if opaque is None else f", and its {1 - opaque.mean():.1%} transparent pixels (alpha "
                        "below one half) are left out, as linr restore measures a restoration that keeps them "
                        "(--all-pixels: every pixel)"))
    if where is not None and not where.any():  # each file's opaque pixels are the other's transparent ones
        where = None
        notes.append("no pixel is opaque in both files: every pixel is measured")
    _note(notes)
    try:
        result = evaluate(ref, img, convention=args.convention, y_channel=args.y, crop=args.crop,
                          task=args.task, where=where)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    # the stored values each file's [0, 1] was mapped from (a microscopist's pair of 16-bit TIFFs gave
    # 51.7 dB by their type's range and 41.8 with --range 0:21000, and the JSON did not say which)
    result["value_ranges"] = {str(path): vr.to_dict()
                              for path, _, vr in files}
    print(json.dumps(json_ready(named_opaque(result)), indent=2, allow_nan=False))
    return 0


def _check_metrics_options(args: argparse.Namespace) -> None:
    """``linr metrics``' options that do not go together: one-line errors."""
    if args.convention == "paper" and (args.y or args.crop):
        raise InputError("--y and --crop apply to the standard convention only")
    if args.task is not None and args.convention != "paper":
        raise InputError(f"--task {args.task} applies to --convention paper only (the standard convention "
                         "measures every task alike; --y for PSNR on Y)")


def _stack_metrics(args: argparse.Namespace, stacks: list[list[Any]]) -> int:
    """``linr metrics`` of two stacks of as many frames (a ``--frames separate`` output against a
    reference stack): each frame against its own, on one value range for every frame of both (as
    the pair's), and their mean, as JSON (``frames``: each frame's). Frames with transparent pixels
    are refused (measure them one by one)."""
    import numpy as np

    from .images import choose_value_ranges, refuse_undefined, to_unit
    from .metrics import evaluate

    _check_metrics_options(args)
    counts = [len(frames) for frames in stacks]
    if counts[0] != counts[1]:
        raise InputError(f"frame counts differ: {args.reference} holds {counts[0]}, {args.image} {counts[1]} "
                         "(stacks are measured frame by frame)")
    ranges = choose_value_ranges(stacks[0] + stacks[1], args.range)
    pairs, notes = [], []
    for k, (ref_frame, img_frame) in enumerate(zip(*stacks)):
        (ref, ref_info), (img, img_info) = (to_unit(im, vr) for im, vr in
                                            zip((ref_frame, img_frame), (ranges[k], ranges[counts[0] + k])))
        for path, frame, info in ((args.reference, ref_frame, ref_info), (args.image, img_frame, img_info)):
            refuse_undefined(frame, path, "PSNR and SSIM need a value at every pixel")
            if info.alpha is not None:
                raise InputError(f"{frame.name}: a stack's frame with an alpha channel: measure its frames one by one")
        if ref.shape != img.shape:
            raise InputError(f"frame {k + 1} differs: {ref_frame.name} is {ref.shape[1]}x{ref.shape[0]} with "
                             f"{ref.shape[2]} channel(s), {img_frame.name} {img.shape[1]}x{img.shape[0]} with "
                             f"{img.shape[2]} channel(s)")
        pairs.append((ref, img))
    for path, vr in ((args.reference, ranges[0]), (args.image, ranges[counts[0]])):
        if vr.rule in ("data", "given"):
            notes.append(f"values of {path} mapped {vr.describe()}")
    notes.append(f"{counts[0]} frames measured one by one against the reference's; psnr and ssim are their means")
    _note(notes)
    try:
        frames = [evaluate(ref, img, convention=args.convention, y_channel=args.y, crop=args.crop, task=args.task)
                  for ref, img in pairs]
    except ValueError as exc:
        raise InputError(str(exc)) from None
    result: dict[str, Any] = {k: v for k, v in frames[0].items() if k not in ("psnr", "ssim")}
    for key in ("psnr", "ssim"):
        values = [f[key] for f in frames]
        result[key] = None if any(v is None for v in values) else float(np.mean(values))
    result["frames"] = [{"psnr": f["psnr"], "ssim": f["ssim"]} for f in frames]
    result["value_ranges"] = {str(args.reference): ranges[0].to_dict(), str(args.image): ranges[counts[0]].to_dict()}
    print(json.dumps(json_ready(result), indent=2, allow_nan=False))
    return 0


# --- demo --------------------------------------------------------------------------------------


def _build_demo(sub: Any) -> None:
    p = sub.add_parser("demo", help="degrade a bundled photo, restore it, and print PSNR before/after")
    p.add_argument("-o", "--output-dir", default="linr-demo", help="where to write (default ./linr-demo)")
    p.add_argument("--steps", type=positive_int, default=None, help="override the demo's step count")
    p.add_argument("--device", default="auto")
    p.add_argument("--force", action="store_true", help="overwrite the demo's files in an existing folder")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    from .fit import resolve_device
    from .images import check_writable_folder

    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder (-o names the folder the demo writes)")
    check_writable_folder(out / "restored.png")
    from .demo import DEMO_FILES

    existing = [name for name in DEMO_FILES if (out / name).exists()]
    if existing and not args.force:
        raise InputError(f"{out}: already holds {', '.join(existing)} (use --force to overwrite, "
                         "or another -o)")
    resolve_device(args.device)
    if settled := _settle_threads(args.device):
        _note([settled])
    run_demo(out, steps=args.steps, device=args.device)
    return 0


# --- entry point -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="linr", description="Zero-shot image restoration with implicit neural "
                     "representations (LINR).")
    parser.add_argument("--version", action="version", version=f"linr {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    _build_restore(sub)
    _build_render(sub)
    _build_degrade(sub)
    _build_metrics(sub)
    _build_demo(sub)
    for name in COMMAND_MODULES:
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(sub)
    return parser


COMMAND_MODULES = ("linr.bench", "linr.batch", "linr.app")
"""Modules that add further commands: each has ``register(subparsers)``, imports nothing heavy at
module level, and sets ``func`` on its parser like the commands above."""


def _ignore_further_interrupts() -> None:
    """After an interrupt has been said: a second Ctrl-C while the interpreter shuts down would
    print a traceback of torch's exit handlers (a new user's trial); the run is ending anyway.
    Registered to run at exit, before those handlers (the last registered runs first), so that a
    caller of :func:`main` in a longer-lived process (the tests) keeps its Ctrl-C meanwhile."""
    import atexit
    import signal

    def ignore() -> None:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread
            pass

    if not _INTERRUPT_IGNORED_AT_EXIT:
        atexit.register(ignore)
        _INTERRUPT_IGNORED_AT_EXIT.append(True)


_INTERRUPT_IGNORED_AT_EXIT: list[bool] = []


def main(argv: Sequence[str] | None = None) -> int:
    debug = bool(os.environ.get("LINR_DEBUG"))
    _BAR_ENDED.clear()
    try:
        args = build_parser().parse_args(argv)
        if getattr(args, "quiet", False):  # no progress bar will be drawn: no line of one to end
            _BAR_ENDED.append(True)
        with sigterm_as_interrupt():  # a kill says what it kept, as Ctrl-C does
            code = int(args.func(args) or 0)
        if code == 130:  # interrupted (linr batch says what it kept)
            _ignore_further_interrupts()
        sys.stdout.flush()  # here, so that a closed pipe is caught below, not at exit
        return code
    except DivergenceError as exc:
        print(f"linr: error: {exc.command_line_text()}", file=sys.stderr)
        if debug:
            raise
        return EXIT_DIVERGED
    except LinrError as exc:
        print(f"linr: error: {exc.command_line_text()}", file=sys.stderr)
        if debug:
            raise
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{_after_bar()}linr: interrupted", file=sys.stderr)
        _ignore_further_interrupts()
        return 130
    except BrokenPipeError:
        # The reader went away (``linr metrics ... | head``): stop quietly, as Python's docs
        # advise, pointing stdout at devnull so that the interpreter's final flush cannot fail.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except MemoryError:
        print("linr: error: out of memory (try a smaller image or --device cuda)", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, with the way to see more
        if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG and not debug:
            where = "" if exc.filename is None else f"{exc.filename}: "
            print(f"linr: error: {where}{exc.strerror}", file=sys.stderr)  # the user's name, no bug
            return EXIT_USAGE
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT) and not debug:
            where = "" if exc.filename is None else f"{exc.filename}: "  # a full disk is no bug either
            print(f"linr: error: {where}{exc.strerror}: free some space and rerun the same command (a batch or a "
                  "tiled restore resumes: what was finished is kept)", file=sys.stderr)
            return EXIT_USAGE
        if debug:
            raise
        print(f"linr: internal error: {exc.__class__.__name__}: {exc} (set LINR_DEBUG=1 for a traceback)",
              file=sys.stderr)
        return 1
