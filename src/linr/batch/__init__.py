"""``linr batch``: restore every image of a folder, resumably, with local workers or on Ray.

    linr batch noisy/ -o restored/ --task noisy --workers 2
    linr batch --noisy 'noisy/*.png' --lowres 'lr/*.png' --factor 4 -o restored/
    linr batch holes/ --task masked --mask holes/ -o restored/ --reference-dir clean/
    linr batch noisy/ --task noisy -o restored/ --backend ray --ray-address auto
    linr batch tiles/ --task noisy -o restored/ --device cuda --stack 16

Files of a joint batch, masks, kernels and references pair by file stem; masks and kernels may
share the images' folder (``x.png`` beside ``x_mask.png``). Progress is recorded in
``OUTPUT_DIR/manifest.jsonl`` (see :mod:`linr.batch.manifest`); rerunning the same command
skips finished images and retries failed ones; a reference folder may be added or left out on a
resume (it only adds metrics). Exit status: 0 all done, 4 some images failed or the Ray cluster was
lost (rerun to resume), 130 interrupted (rerun to resume; a --force run without --force), 2 a usage
error or a full disk: every option is checked before the output folder is made,
and a run that fails before recording an image leaves no folder or manifest behind.
Torch threads per fit: ``--threads``, else ``OMP_NUM_THREADS``, else cores // workers, fewer
where other work holds cores (checked at the start and again before each fit on the local backend).

Every image is fitted with the same ``--seed``, so a batch's output for an image is the output
of ``linr restore`` on that image alone with the same options and thread count, and the local
and Ray backends write identical files.

Only argparse and linr's CLI helpers are imported here; the rest loads when the command runs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any, Sequence

from ..cli_common import (Once, sigterm_as_interrupt, add_fit_options, check_backend_options, check_pairs, model_config,
                          positive_float, positive_int, value_range_option)
from ..cores import omp_threads
from ..errors import InputError
from ..kinds import KINDS as KIND_REGISTRY

__all__ = ["register", "cmd_batch", "EXIT_SOME_FAILED", "EXIT_INTERRUPTED"]

EXIT_SOME_FAILED = 4
EXIT_INTERRUPTED = 130
KINDS = KIND_REGISTRY
"""The registered observation kinds (:data:`linr.kinds.KINDS`): one ``--KIND`` flag each."""
SPECIAL_OPTIONS = ("factor", "downsampler", "mask", "kernel", "boundary")
"""Kind options batch defines itself (masks and kernels pair by name; the others are recorded
under their own keys, as older manifests have them); any other kind's options are generic."""
FORMATS = ("png", "tif", "jpg", "bmp", "fits")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "batch",
        help="restore a folder of images (resumable; local workers or Ray)",
        description="Restore many images: INPUT with --task for one task, or one folder/glob per "
        "observation kind for joint restoration (files paired by name). Rerun the same command to "
        "resume: finished images are skipped, failed ones retried.",
        epilog="Exit status: 0 all done, 4 some images failed (listed in the summary and the "
        "manifest) or the Ray cluster was lost, 130 interrupted, 2 usage error or a full disk.",
    )
    # nargs='*': an unquoted glob that the shell expanded gets a clear error, not argparse's
    p.add_argument("input", nargs="*", metavar="INPUT_DIR_OR_GLOB",
                   help="a folder (its image files) or a quoted glob such as 'noisy/*.png'")
    p.add_argument("--task", choices=KINDS, help=f"what INPUT is: {', '.join(KINDS)}")
    p.add_argument("-o", "--output-dir", required=True, action=_Once,
                   help="folder for the outputs and manifest.jsonl")
    g = p.add_argument_group("observations (joint restoration: several, paired by file name)")
    for kind in KINDS:
        g.add_argument(f"--{kind}", metavar="DIR_OR_GLOB", action=_Once, help=f"{kind} images")
    for kind in KIND_REGISTRY.values():  # options of kinds batch has no special handling for
        for opt in kind.options:
            if opt.dest not in SPECIAL_OPTIONS:
                g.add_argument(opt.flag, dest=opt.dest, type=opt.type, choices=opt.choices,
                               metavar=opt.metavar, default=None, action=_Once, help=opt.help)
    g.add_argument("--factor", type=positive_int, help="super-resolution factor (default 4)")
    g.add_argument("--downsampler", default=None, choices=["lanczos2", "bicubic", "box"],
                   help="downsampling kernel of low-res observations (default lanczos2)")
    g.add_argument("--mask", metavar="MASK", action=_Once,
                   help="one keep-mask for all (white = observed), or a folder/glob of masks named "
                   "like the images (x.png or x_mask.png); it may be the images' own folder, as "
                   "linr degrade --keep writes it (x.png beside x_mask.png)")
    g.add_argument("--kernel", metavar="SPEC", action=_Once,
                   help="blur kernel: gaussian:WIDTH:SIGMA or a file for all, or a folder/glob of "
                   "kernels named like the images (x.* or x_kernel.*; x_kernel.* may lie beside x.png)")
    g.add_argument("--boundary", default=None, choices=["free", "circular", "reflect"],
                   help="blur boundary: free (the default for blurred images alone or beside noisy images of "
                   "them, whole or in tiles: nothing assumed beyond the image, the fit renders the frame, or each "
                   "tile's window, grown by the kernel's reach; chosen, also beside other photos, not measured "
                   "there), reflect (mirrored borders; the default beside other photos and with --preset fast) or "
                   "circular (images blurred periodically, as the paper's were; the default with --preset paper)")
    g.add_argument("--range", type=value_range_option, default=None, metavar="auto|LO:HI",
                   help="input values LO..HI (the inputs' units) map to the fit's [0, 1], as linr restore --range "
                   "(12-bit data: 0:4095; an integer input whose type cannot reach HI by its own type's range; auto: "
                   "from 0 to each image's maximum); default: uint8/uint16 by their "
                   "full range, floats as they are when on [0, 1], else by their data. A negative LO needs the "
                   "= form: --range=-100:3000")
    from ..registration import TRANSFORMS

    g.add_argument("--register", default=None, choices=list(TRANSFORMS),
                   help="frames of a scene that do not line up: fit a sub-pixel translation (or an "
                   "affine map) per frame after the first, jointly with the image, as linr restore "
                   "--register does; the fitted ones go into the manifest")
    g.add_argument("--frames", choices=("joint", "separate"), default=None,
                   help="the frames of a scene (a multi-image file's pages, a scene folder's files), as linr restore "
                   "--frames: joint (default) one output image of them; separate: each restored on its own and "
                   "written as a TIFF stack of as many frames (the default for a Z-stack: a TIFF whose ImageJ or "
                   "OME axes stack its planes along Z)")
    add_fit_options(p)
    r = p.add_argument_group("running")
    r.add_argument("--workers", type=positive_int,
                   help="local worker processes (default 1 on CPU, one per GPU with CUDA); each "
                   "fits with --threads torch threads")
    r.add_argument("--threads", type=positive_int,
                   help="torch threads per fit. Default: $OMP_NUM_THREADS when set, else the usable "
                   "cores // workers (local backend); with Ray, --ray-cpus-per-task (there "
                   "OMP_NUM_THREADS is not used)")
    r.add_argument("--stack", type=positive_int, default=1, metavar="K",
                   help="fit up to K consecutive images of the same size and kinds together in "
                   "each worker (stacked models, batched products: fills a GPU that one small image "
                   "leaves idle; no gain on a CPU); same results up to float rounding (default 1)")
    r.add_argument("--backend", choices=["local", "ray"], default="local",
                   help="local processes (default) or Ray tasks (pip install 'linr[ray]')")
    r.add_argument("--ray-address", metavar="ADDR", help="Ray cluster to join (e.g. auto or "
                   "ray://host:10001); default: start a local Ray instance")
    r.add_argument("--ray-cpus-per-task", type=positive_float, default=1.0, metavar="N",
                   help="CPUs each Ray task requests (default 1)")
    r.add_argument("--ray-gpus-per-task", type=positive_float, default=0.25, metavar="F",
                   help="GPU fraction each Ray task requests when the cluster has GPUs (default 0.25: "
                   "four fits share a GPU)")
    o = p.add_argument_group("output")
    o.add_argument("--format", choices=FORMATS, default=None,
                   help="output file type (default: tif for TIFF inputs, which keeps their values, "
                   "channels and metadata; fits for FITS inputs, which keeps their values and header; "
                   "png for the others)")
    o.add_argument("--reference-dir", metavar="DIR_OR_GLOB", action=_Once,
                   help="clean images named like the inputs: PSNR/SSIM per image and their means; "
                   "it may be added or left out when resuming (images already done keep the "
                   "metrics they have)")
    o.add_argument("--force", action="store_true",
                   help="redo every image and overwrite outputs (never an input)")
    o.add_argument("--quiet", action="store_true",
                   help="no progress display, no forecast of the first image's time")
    p.set_defaults(func=cmd_batch)


class _Once(Once):
    """Store a folder/glob option, refusing a second one instead of keeping the last silently."""

    hint = "give one folder or quoted glob"


_EXPANDED = ("the shell expanded an unquoted glob into files? Quote it, e.g. 'noisy/*.png', or "
             "give the folder")


def _merge_task(args: argparse.Namespace) -> None:
    """``INPUT --task KIND`` is the same as ``--KIND INPUT``."""
    if len(args.input) > 1:
        raise InputError(f"INPUT is one folder or glob, got {len(args.input)} ({args.input[0]}, "
                         f"{args.input[1]}, ...): {_EXPANDED}")
    args.input = args.input[0] if args.input else None
    if args.input is None and args.task is not None:
        raise InputError("--task needs INPUT_DIR_OR_GLOB")
    if args.input is not None:
        if args.task is None:
            given = [f"--{k}" for k in KINDS if getattr(args, k) is not None]
            hint = f" ({given[0]} followed by more than one path: {_EXPANDED})" if given else ""
            raise InputError(f"INPUT needs --task {'|'.join(KINDS)} (or use --noisy INPUT etc.)"
                             + hint)
        if getattr(args, args.task) is not None:
            raise InputError(f"--task {args.task} with INPUT and --{args.task} name the same input twice")
        setattr(args, args.task, args.input)
    check_backend_options(args)
    for kind, _ in args.weight:
        if getattr(args, kind) is None:
            raise InputError(f"--weight {kind}=... given without --{kind} observations")
    if os.path.exists(args.output_dir) and not os.path.isdir(args.output_dir):
        raise InputError(f"-o {args.output_dir}: exists and is not a folder")
    if args.ray_gpus_per_task > 1:
        raise InputError("--ray-gpus-per-task is a fraction of one GPU, at most 1")


def _remove_stale_temporaries(jobs: list[Any]) -> None:
    """Delete the half-written temporaries a killed run left beside this batch's outputs."""
    from ..images import stale_temporaries

    stale = [t for job in jobs for t in stale_temporaries(job.output)]
    for t in stale:
        t.unlink(missing_ok=True)
    if stale:
        print(f"linr: note: removed {len(stale)} temporary file(s) left by an interrupted run",
              file=sys.stderr)


def _settings(args: argparse.Namespace, model: Any) -> dict[str, Any]:
    """The batch settings that determine the outputs (stored in the manifest, fingerprinted)."""
    import dataclasses

    from ..defects import DEFECT_ROUNDS, DEFECT_SHARPNESS, DEFECT_SIGMAS, DEFECTS_UP_TO
    from ..headroom import HEADROOM, POINT_SOURCES_FROM, PSF_LIKE_FROM, SATURATED_FROM
    from ..refine import REFINERS, GroupedDeblur, GroupedFill
    from ..tasks import (DEFAULT_INPAINT_MODEL, DEFAULT_INPAINT_PILOT_LR, DEFAULT_INPAINT_PILOT_MODEL,
                         DEFAULT_INPAINT_PILOT_STEPS, DEFAULT_PRESET, DEFAULT_SR_MODEL, INPAINT_PILOT_ABOVE,
                         INPAINT_PILOT_MISSING_UP_TO, PRESETS, SR_NARROW_ABOVE, SR_NARROW_FACTORS,
                         sr_refine_for)

    paper_inpainting = _plain_inpainting(args) and model == PRESETS[DEFAULT_PRESET].model
    # the paper's network named for the defaults' super-resolution (--width 256): recorded as batches
    # made before its 7x128 above 1024 px (sixty-second session) recorded the default, so they resume
    paper_sr = _plain_super_resolution(args) and model == PRESETS[DEFAULT_PRESET].model
    pilot = _pilot_of(args, model)
    return {
        "preset": args.preset, "steps": args.steps, "lr": args.lr, "seed": args.seed,
        # a pilot's --precision float32 as unset: what a pilot got before its bf16 default
        # (forty-sixth session), so that batches made before resume with it
        "stop": args.stop, "precision": None if pilot and args.precision == "float32" else args.precision,
        # None: the preset's own (possibly per-kind) model, recorded by the preset's name; for the
        # defaults' inpainting also the paper's network named (--omega0 30), as batches made before its
        # own network (twenty-third session) recorded it, so that they resume with --omega0 30
        "model": None if model is None or paper_inpainting or paper_sr else dataclasses.asdict(model),
        "weights": dict(args.weight),
        # unset options as older manifests recorded them, so that those batches still resume;
        # a blur's boundary left unset (None) is the preset's
        "factor": args.factor or 4, "downsampler": args.downsampler or "lanczos2",
        "boundary": args.boundary if args.blurred is not None else "circular",
        "format": args.format,
        # tiles only when chosen (older manifests, made before tiling existed, have none)
        **({"tile": args.tile, "tile_stack": args.tile_stack} if args.tile or args.tile_stack else {}),
        # registration only when chosen (older manifests have none)
        **({"register": args.register} if args.register else {}),
        # the prior when given, or when the default adds one (Gaussian denoising since the
        # default tv:auto; older manifests of other tasks have none and still resume)
        **({"prior": prior} if (prior := _prior_of(args)) else {}),
        # the refinement likewise (Gaussian denoising since the default refinement (wiener, then grouped),
        # inpainting since the default biharmonic blend (grouped-fill since the twenty-first session), with the size up to which it blends)
        **({"refine": refine} if (refine := _refine_of(args)) else {}),
        # grouped-fill with the size above which it starts from the fit alone (since the twenty-second
        # session; since the sixty-first only with more than biharmonic_missing_up_to pixels missing; the
        # default's batches before it recorded blend_up_to: the size up to which they refined)
        **({"biharmonic_up_to": GroupedFill.BIHARMONIC_UP_TO} if refine == "grouped-fill" else {}),
        # grouped-deblur with its passes and levels (since the twenty-fourth session), so that a
        # change of its schedule is not resumed silently
        # (and grouped-pair's, the same passes)
        **({"deblur_schedule": [d.passes, d.start, d.end]} if refine in ("grouped-deblur", "grouped-pair")
           and (d := REFINERS[refine]()) else {}),
        # grouped-deblur's levels following the blurred photo's noise (since the sixty-fifth session: the
        # fixed 15 to 2 before, which noisy photos above 8/255 then got; grouped-pair keeps 15 to 2)
        **({"deblur_follows_noise": [GroupedDeblur.START_PER_SIGMA, GroupedDeblur.END_PER_SIGMA]}
           if refine == "grouped-deblur" else {}),
        # and, for a blur that is not circular, its data step's free edges (since the twenty-fifth
        # session; before, mirrored borders)
        **({"deblur_edges": "free"} if refine in ("grouped-deblur", "grouped-pair") and _blur_boundary(args) != "circular" else {}),
        # grouped-pair's blend chosen by held-out pixels in tiles too (since the thirty-second
        # session; before, tiled images got the pair without it: linr.tasks.blends_in_tiles)
        **({"pair_blend": "tiles"} if refine == "grouped-pair" else {}),
        # larger images with few pixels missing start grouped-fill from biharmonic inpainting too
        # (since the sixty-first session)
        **({"biharmonic_missing_up_to": GroupedFill.BIHARMONIC_MISSING_UP_TO} if refine == "grouped-fill" else {}),
        # the defaults' fit of a lone blurred photo: free edges, its own steps and schedule (since
        # the twenty-ninth session whole, the thirtieth in tiles; before, mirrored borders, 4000
        # steps at a constant rate); of a blurred photo beside a noisy one since the thirty-first
        **({"blur_fit": _free_blur_fit()} if (_plain_deblurring(args) or _noisy_with_blurred(args))
           and getattr(args, "boundary", None) in (None, "free") else {}),
        # (super-resolution's default grouped-views: in the twenty-second session's batches with
        # refine_up_to, the size up to which it refined; since the twenty-third at any size)
        # the network of a refined fit when the defaults choose it (since the 7x64 pilot; a batch
        # made before it has none, so a resume says that its settings differ)
        **({"pilot": pilot} if pilot else {}),
        # the network of the defaults' inpainting when no network is named (omega_0 15 since the
        # twenty-third session; a batch made before it has none: the paper's network)
        **({"inpaint_model": dataclasses.asdict(DEFAULT_INPAINT_MODEL)} if model is None and _plain_inpainting(args) else {}),
        # and, since the sixty-first session, its narrow pilot for photos with few pixels missing
        # (linr.tasks.inpainting_pilot; a batch made before has none and, fitted otherwise, does not resume)
        **({"inpaint_pilot": {"model": dataclasses.asdict(DEFAULT_INPAINT_PILOT_MODEL),
                              "steps": DEFAULT_INPAINT_PILOT_STEPS, "lr": DEFAULT_INPAINT_PILOT_LR,
                              "missing_up_to": INPAINT_PILOT_MISSING_UP_TO, "above": INPAINT_PILOT_ABOVE}}
           if model is None and _plain_inpainting(args) and args.stop in (None, "auto")
           and _refine_of(args) == "grouped-fill" else {}),
        # the network of the defaults' refined super-resolution (7x128 since the sixty-second session:
        # linr.tasks.narrow_super_resolution; a batch made before has none and, fitted otherwise, does not resume)
        **({"sr_model": {"model": dataclasses.asdict(DEFAULT_SR_MODEL), "above": SR_NARROW_ABOVE}}
           if model is None and _plain_super_resolution(args) and args.stop is None
           and (args.factor or 4) in SR_NARROW_FACTORS and _refine_of(args) == sr_refine_for(args.factor or 4)
           else {}),
        # Gaussian noisy photos alone, no preset: clipping undone, a burst averaged (since the
        # fifty-fifth session; batches before have none and, fitted otherwise, do not resume)
        **({"clipping": args.clipping} if _clipping_route(args) else {}),
        # a blurred photo of point sources fitted on a widened scale, its saturated pixels left out
        # (since the sixty-sixth session; batches before have none: their images come out as made with
        # --headroom off, and photos of no point sources the same either way)
        **({"headroom": [HEADROOM, POINT_SOURCES_FROM, PSF_LIKE_FROM, SATURATED_FROM] if args.headroom == "auto"
            else args.headroom}
           if args.preset is None and _kinds_given(args) == {"blurred"} and args.headroom not in ("off", 1.0) else {}),
        # a blurred photo's pixels sharper than its blur allows (hot pixels, cosmic rays) left out (since the
        # sixty-seventh session; batches before have none: their images come out as made with --defects off,
        # and photos with no such pixel the same either way)
        **({"defects": [DEFECT_SHARPNESS, DEFECT_SIGMAS, DEFECT_ROUNDS, DEFECTS_UP_TO]}
           if args.preset is None and _kinds_given(args) == {"blurred"} and args.defects == "auto" else {}),
        # a blurred photo clipped at white fitted with its data term censored there (since the sixty-eighth
        # session; batches before have none: their images come out as made with --clipping ignore, and
        # photos not clipped at white the same either way)
        **({"censored_at_white": SATURATED_FROM}
           if args.preset is None and _kinds_given(args) == {"blurred"} and args.clipping == "auto" else {}),
        # values of the other kinds' options, only when there are any (older manifests have none)
        **({"options": generic} if (generic := _generic_options(args)) else {}),
        # the inputs' value range, only when given (since the sixty-third session; older manifests have none)
        **({"range": args.range if isinstance(args.range, str) else list(args.range)} if args.range is not None else {}),
        # how a scene's frames are restored, only when given (since the sixty-fourth session; a Z-stack is
        # restored plane by plane without it: linr.scene.default_frames)
        **({"frames": args.frames} if args.frames is not None else {}),
    }


def _clipping_route(args: argparse.Namespace) -> bool:
    """Whether the batch's images take the clipping route (:func:`linr.stabilise.clipping_route`):
    noisy images with Gaussian noise alone, no preset, not registered, or registered by a
    translation (bursts aligned first: :func:`_aligned_bursts`)."""
    return args.preset is None and _kinds_given(args) == {"noisy"} and \
        getattr(args, "register", None) in (None, "translation") and getattr(args, "noise", "gaussian") in (None, "gaussian")


def _aligned_bursts(args: argparse.Namespace) -> bool:
    """Whether the batch's bursts are moved onto their first frame's grid before they are restored
    (:func:`linr.stabilise.aligns_burst`, read off the options) rather than registered by the fit."""
    return getattr(args, "register", None) == "translation" and _clipping_route(args)


def _has_gaussian_noisy(args: argparse.Namespace) -> bool:
    """Whether the batch has noisy images with Gaussian noise (compared by squared error), or
    photon noise restored as such: through its Anscombe transform, noisy images alone, a burst's
    frames averaged after it, not registered (:mod:`linr.stabilise`)."""
    if getattr(args, "noisy", None) is None:
        return False
    if getattr(args, "noise", "gaussian") in (None, "gaussian"):
        return True
    return getattr(args, "photon_method", None) != "likelihood" and _kinds_given(args) == {"noisy"} and \
        not getattr(args, "register", None)


def _gaussian_noisy_only(args: argparse.Namespace) -> bool:
    """Whether the batch restores noisy images alone, with Gaussian noise."""
    return _kinds_given(args) == {"noisy"} and _has_gaussian_noisy(args)


def _plain_denoising(args: argparse.Namespace) -> bool:
    """Whether the batch is the defaults' Gaussian denoising (:func:`linr.tasks.plain_denoising`,
    read off the options: the images are not read yet), which gets the default prior and
    refinement."""
    return args.preset is None and _gaussian_noisy_only(args)


def _asked_or_default(asked: str | None, default: str, args: argparse.Namespace) -> str | None:
    """What every image gets of an option with a denoising default: ``asked`` (``none``: None),
    else ``default`` for the defaults' Gaussian denoising (:func:`_plain_denoising`)."""
    if asked is not None:
        return None if asked == "none" else asked
    return default if _plain_denoising(args) else None


def _prior_of(args: argparse.Namespace) -> str | None:
    """The prior the images get, as the manifest records it: the one asked for, or the defaults'
    rule (:func:`linr.tasks.default_prior_rule`: ``tv:auto`` but for colour photos above a size;
    a batch made before the rule recorded ``tv:auto``, which it gave to every photo)."""
    from ..tasks import default_prior_rule

    return _asked_or_default(args.prior, default_prior_rule(), args)


def _kinds_given(args: argparse.Namespace) -> set[str]:
    """The observation kinds the batch's options name (``--KIND``)."""
    return {k for k in KINDS if getattr(args, k) is not None}


def _plain_inpainting(args: argparse.Namespace) -> bool:
    """Whether the batch is the defaults' inpainting (:func:`linr.tasks.plain_inpainting`, read
    off the options): images with missing pixels alone, no preset named."""
    return args.preset is None and _kinds_given(args) == {"masked"}


def _noisy_with_lowres(args: argparse.Namespace) -> bool:
    """Whether the batch is the defaults' joint restore of a noisy photo and a low-res view
    (:func:`linr.tasks.noisy_with_lowres`, read off the options): no preset, no registration,
    Gaussian noise."""
    return args.preset is None and not getattr(args, "register", None) and \
        _kinds_given(args) == {"noisy", "lowres"} and _has_gaussian_noisy(args)


def _defaults_joint(args: argparse.Namespace, kinds: set[str]) -> bool:
    """Whether the batch is the defaults' joint restore of exactly these ``kinds`` of each scene: no
    preset, no registration, no zero weight."""
    return args.preset is None and not getattr(args, "register", None) and _kinds_given(args) == kinds \
        and all(w != 0 for _, w in getattr(args, "weight", []))


def _noisy_with_blurred(args: argparse.Namespace) -> bool:
    """Whether the batch is the defaults' joint restore of a noisy and a blurred photo of each scene
    (:func:`linr.tasks.noisy_with_blurred`, read off the options); Gaussian or (since the thirty-second
    session) photon noise, every ``--noise``."""
    return _defaults_joint(args, {"noisy", "blurred"})


def _noisy_blurred_with_views(args: argparse.Namespace) -> bool:
    """Whether the batch is the defaults' joint restore of a noisy, a blurred and a low-res photo of each
    scene (:func:`linr.tasks.noisy_blurred_with_views`, read off the options; since the sixty-ninth session)."""
    return _defaults_joint(args, {"noisy", "blurred", "lowres"})


def _noisy_with_masked(args: argparse.Namespace) -> bool:
    """Whether the batch is the defaults' joint restore of noisy photos and a photo with missing pixels
    of each scene (:func:`linr.tasks.noisy_with_masked`, read off the options)."""
    return _defaults_joint(args, {"noisy", "masked"})


def _plain_super_resolution(args: argparse.Namespace) -> bool:
    """Whether the batch is the defaults' super-resolution (:func:`linr.tasks.plain_super_resolution`,
    read off the options): low-res images alone by the ``lanczos2`` downsampler, no preset named,
    their weight not zero."""
    return args.preset is None and _kinds_given(args) == {"lowres"} and \
        (args.downsampler or "lanczos2") == "lanczos2" and dict(args.weight).get("lowres", 1.0) > 0


SUPERSEDED = "superseded"
"""A record's status where a --force run with other settings is replacing the image (its output is
still the old one until then): restored by the next run, with or without --force."""


def _supersede(todo: Sequence[Any], manifest: Any, keys: dict[str, str], settings: dict[str, Any]) -> None:
    """Mark the done images of ``todo`` made with other settings than ``keys`` as being replaced
    (:data:`SUPERSEDED`): a --force run interrupted after some images could not be resumed (without
    --force the rest were 'made with other settings', with it every image started over)."""
    from .run import made_as_now

    for job in todo:
        record = manifest.records.get(job.name)
        if record is not None and record.get("status") == "done" and not made_as_now(job, record, keys, settings):
            manifest.add({**record, "status": SUPERSEDED,
                          "superseded": "made with other settings; a --force run is restoring it again"})


def _blur_boundary(args: argparse.Namespace) -> str:
    """The boundary of the batch's blur as the fits resolve it: the one asked for, else
    :func:`linr.tasks.open_blur_boundary`'s."""
    from ..tasks import open_blur_boundary

    return getattr(args, "boundary", None) or open_blur_boundary(
        args.preset, free=_plain_deblurring(args) or _noisy_with_blurred(args))


def _free_blur_fit() -> dict[str, Any]:
    """The defaults' fit of a blur with free edges (:func:`linr.tasks.free_blur_fit`), as a
    manifest records it."""
    from ..tasks import DEFAULT_FREE_BLUR_SCHEDULE, DEFAULT_FREE_BLUR_STEPS, DEFAULT_OPEN_BOUNDARY

    return {"boundary": DEFAULT_OPEN_BOUNDARY, "steps": DEFAULT_FREE_BLUR_STEPS, "schedule": DEFAULT_FREE_BLUR_SCHEDULE,
            "tiled": DEFAULT_OPEN_BOUNDARY}  # since the thirtieth session (before: 'reflect' in tiles)


def _plain_deblurring(args: argparse.Namespace) -> bool:
    """Whether the batch is the defaults' refined deblurring (:func:`linr.tasks.plain_deblurring`,
    read off the options): blurred images alone, no preset named."""
    return args.preset is None and _kinds_given(args) == {"blurred"}


def _refine_of(args: argparse.Namespace) -> str | None:
    """The refinement every image gets (:func:`linr.tasks.resolve_refine`); for the defaults'
    inpainting, super-resolution and deblurring, every image (whole or tiled, any size)."""
    from ..tasks import (DEFAULT_DEBLUR_REFINE, DEFAULT_DENOISE_REFINE, DEFAULT_INPAINT_REFINE, DEFAULT_JOINT_REFINE,
                         DEFAULT_PAIR_REFINE, sr_refine_for)

    if args.refine is None and _plain_inpainting(args):
        return DEFAULT_INPAINT_REFINE
    if args.refine is None and _plain_super_resolution(args):
        return sr_refine_for(args.factor or 4)
    if args.refine is None and _noisy_with_lowres(args):
        return DEFAULT_JOINT_REFINE
    if args.refine is None and _plain_deblurring(args):
        return DEFAULT_DEBLUR_REFINE
    if args.refine is None and (_noisy_with_blurred(args) or _noisy_blurred_with_views(args)):
        return DEFAULT_PAIR_REFINE  # beside low-res views since the sixty-ninth session (before: none)
    if args.refine is None and _noisy_with_masked(args):  # since the sixty-eighth session (before: none)
        return DEFAULT_INPAINT_REFINE
    return _asked_or_default(args.refine, DEFAULT_DENOISE_REFINE, args)


def _pilot_of(args: argparse.Namespace, model: Any) -> dict[str, Any] | None:
    """The pilot network and its default step budget every image's fit gets (:func:`linr.tasks.resolve`:
    refined Gaussian denoising with no network named and the automatic stop), else None."""
    import dataclasses

    from ..tasks import (DEFAULT_PILOT_LR, DEFAULT_PILOT_MODEL, DEFAULT_PILOT_STEPS, DEFAULT_PRESET, DENOISE_TILE_SIZE,
                         DENOISE_WHOLE_UP_TO, PILOT_PRECISION_RULE, PRESETS, fits_a_pilot)

    if not fits_a_pilot(model=model, stop=args.stop, plain=_plain_denoising(args), refined=_refine_of(args) is not None):
        return None
    pilot = {"model": dataclasses.asdict(DEFAULT_PILOT_MODEL), "budget": DEFAULT_PILOT_STEPS}  # --steps: under 'steps'
    if args.lr is None and DEFAULT_PILOT_LR != PRESETS[DEFAULT_PRESET].lr:  # since the seventeenth session (earlier: the paper's; --lr: under 'lr')
        pilot["lr"] = DEFAULT_PILOT_LR
        pilot["retry_lr"] = PRESETS[DEFAULT_PRESET].lr  # a failed pilot is fitted again (eighteenth session)
    if (args.tile or "auto") == "auto":  # 'auto' tiles a pilot's images above this size (fourteenth session; earlier batches: 1024)
        pilot["whole_up_to"] = DENOISE_WHOLE_UP_TO
        pilot["tile_size"] = DENOISE_TILE_SIZE  # in tiles of this size (forty-sixth session; earlier batches: 256)
    if args.precision is None:  # bf16 products where the CPU has bf16 units (forty-sixth session; earlier: float32)
        pilot["precision"] = PILOT_PRECISION_RULE
    return pilot


def _generic_options(args: argparse.Namespace) -> dict[str, Any]:
    return {opt.dest: getattr(args, opt.dest) for kind in KIND_REGISTRY.values()
            for opt in kind.options
            if opt.dest not in SPECIAL_OPTIONS and getattr(args, opt.dest, None) is not None}


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def local_threads(threads: int | None, workers: int) -> int:
    """torch threads per fit of the local backend: ``--threads``, else ``OMP_NUM_THREADS``, else
    the usable cores shared among the workers."""
    return threads or omp_threads() or max(1, usable_cores() // workers)


def _one_photo(job: Any) -> bool:
    """Whether a job surely restores a single photo (one file of one image: no scene folder, no
    second kind, no animation; a TIFF may hold a stack, so it never counts as surely one), read
    from the file's header, not its pixels."""
    files = [f for v in job.observations.values() for f in ([v] if isinstance(v, str) else v)]
    if len(files) != 1:
        return False
    from ..images import is_animation, is_tiff

    try:  # read_stored's own rule for a file of several images
        return not (is_tiff(Path(files[0])) or is_animation(Path(files[0])))
    except Exception:  # noqa: BLE001 - unreadable: its own read fails in one line later
        return False


def _check_fit_options(args: argparse.Namespace, model: Any) -> None:
    """Options that would fail every image alike: a usage error now, before anything is created."""
    from ..models import MODEL_FAMILIES

    if args.stack > 1 and model is not None and not MODEL_FAMILIES[model.name].engine:
        raise InputError(f"--stack needs the SIREN or another model of the fast engine (siren, gauss), "
                         f"not {model.name!r}")
    if args.precision in ("bf16", "tf32") and model is not None and not MODEL_FAMILIES[model.name].engine:
        raise InputError(f"--precision {args.precision} needs the SIREN model or another of the "
                         "fast engine (siren, gauss), "
                         f"not {model.name!r}")
    from ..tasks import check_register_tiles

    check_register_tiles(args.tile or "auto", None if _aligned_bursts(args) else args.register)
    from ..priors import weight_is_auto

    if weight_is_auto(args.prior) and not _has_gaussian_noisy(args):
        raise InputError(f"--prior {args.prior} sets its weight from the Gaussian noise of the noisy images, "
                         "and this batch has none (photon noise fitted by its likelihood is not measured); "
                         "give a weight (tv:0.05)")
    if args.refine not in (None, "none"):
        from ..refine import REFINERS

        takes = REFINERS[args.refine].takes
        if takes == "masked":
            if _kinds_given(args) != {"masked"}:
                raise InputError(f"--refine {args.refine} blends an inpainting fit and needs images with missing "
                                 "pixels alone (--task masked); leave out --refine")
        elif takes == "noisy+blurred" and getattr(args, "register", None):
            raise InputError(f"--refine {args.refine} explains the blurred photos as taken, and --register shifts "
                             "them by what the fit finds: leave out one of them")
        elif takes == "noisy+blurred" and _kinds_given(args) != {"noisy", "blurred"}:
            raise InputError(f"--refine {args.refine} needs a noisy and a blurred photo of each scene (--noisy and "
                             "--blurred) and nothing else; leave out --refine")
        elif takes == "blurred" and _kinds_given(args) != {"blurred"}:
            raise InputError(f"--refine {args.refine} deblurs and needs blurred images alone (--task blurred); "
                             "leave out --refine")
        elif takes in ("views", "noisy+views") and "lowres" not in _kinds_given(args):
            raise InputError(f"--refine {args.refine} makes the image reproduce its low-res views exactly, and "
                             "this batch has none (--lowres); leave out --refine")
        elif takes in ("views", "noisy+views") and getattr(args, "register", None):
            raise InputError(f"--refine {args.refine} makes the image reproduce its low-res views exactly, and "
                             "--register shifts them by what the fit finds: leave out one of them")
        if takes in ("noisy", "noisy+views") and not _has_gaussian_noisy(args):
            raise InputError(f"--refine {args.refine} filters noisy photos with Gaussian noise (--task noisy, "
                             "--noise gaussian), and this batch has none; leave out --refine")
    if args.stop is not None and args.stop not in ("auto", "fixed"):
        from ..stopping import parse_stop

        try:
            parse_stop(args.stop)
        except ValueError as exc:
            raise InputError(f"--stop {args.stop}: {exc}") from None
    kernel = args.kernel
    if kernel is not None and (kernel.startswith(("gaussian:", "gauss:")) or Path(kernel).is_file()):
        from ..tasks import parse_kernel

        parse_kernel(args.kernel)  # one spec or file for every image: check it once
    if args.mask is not None and Path(args.mask).is_file():
        from ..images import read_image

        read_image(args.mask)  # one mask for every image: readable (its size is checked per image)


def _check_device(args: argparse.Namespace) -> Any:
    """The local backend's torch device (None with Ray), checked with --precision against it."""
    if args.backend == "ray":
        from .ray_backend import ray_unavailable

        reason = ray_unavailable()
        if reason is not None:
            raise InputError(reason)
        return None  # Ray's device is known once connected to the cluster
    import torch

    from ..fit import resolve_device

    device = resolve_device(args.device)
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"--device {args.device}: this machine has {torch.cuda.device_count()} CUDA "
                         f"GPU(s), numbered from 0")
    if args.precision in ("bf16", "tf32"):
        from ..engine import check_precision

        try:
            check_precision(args.precision, device)
        except ValueError as exc:
            raise InputError(f"--precision {args.precision}: {exc}") from None
    return device


def _backend(args: argparse.Namespace, device: Any) -> tuple[Any, str, int, str]:
    """Start the backend; returns (backend, device for payloads, torch threads per fit, label)."""
    if args.backend == "ray":
        from .ray_backend import RayBackend

        ray = RayBackend(address=args.ray_address, device=args.device,
                         cpus_per_task=args.ray_cpus_per_task, gpus_per_task=args.ray_gpus_per_task)
        if args.precision in ("bf16", "tf32"):
            from ..engine import check_precision

            try:
                check_precision(args.precision, ray.device)
            except ValueError as exc:
                ray.close(abort=True)
                raise InputError(f"--precision {args.precision} on this Ray cluster: {exc}") from None
        threads = args.threads or ray.threads
        return ray, ray.device, threads, f"Ray ({ray.device}, {ray.slots} in flight, {threads} threads/fit)"
    import torch

    from .local import InlineBackend, PoolBackend

    gpus: list[str] = []
    if device.type == "cuda":
        gpus = [str(device)] if device.index is not None else [
            f"cuda:{i}" for i in range(torch.cuda.device_count())]
    workers = args.workers or max(1, len(gpus))
    threads = local_threads(args.threads, workers)
    if device.type == "cpu" and args.threads is None and omp_threads() is None:
        from ..cores import fewer_threads

        if (chosen := fewer_threads(threads)) is not None:  # other work holds some of the cores
            threads = chosen.threads
            print(f"linr: note: {chosen.note()}", file=sys.stderr)
    label = f"{workers} local worker(s), {device.type}, {threads} threads/fit"
    if workers == 1:
        return InlineBackend(), gpus[0] if gpus else "cpu", threads, label
    return PoolBackend(workers, devices=gpus), "cuda" if gpus else "cpu", threads, label


def _say_first_cost(job: Any, settings: dict[str, Any], fit: dict[str, Any], threads: int, *, count: int,
                    at_once: int = 1) -> None:
    """Say on stderr what the first image to restore will cost when that is long
    (:func:`linr.tasks.restore_cost`, with ``threads`` torch threads as its worker will fit, the
    tiles a previous run finished not counted): read by the driver once more, as its worker will
    read it; an image that cannot be read says nothing here (its own record says why).
    ``at_once``: images restored at the same time (the backend's slots times the stack), so that
    another may finish first."""
    import torch

    from ..tasks import restore_cost
    from .work import prepare

    previous = torch.get_num_threads()
    try:
        payload = prepare(job, settings, fit=fit, threads=threads).payload
        torch.set_num_threads(threads)  # as its worker will fit: the throughput, the filter's threads
        from ..tiling import tile_store_paths

        # the tiles a previous run of this batch finished are resumed, not counted (its own store; a stack
        # restored frame by frame: its first frame's, the cost of each frame times their count)
        scenes = payload.each_scene()
        line = restore_cost(scenes[0], **fit, frames=len(scenes), tile_store_replace=True, threads=None,
                            tile_store=str(tile_store_paths(job.output, len(scenes))[0]))
    except Exception:  # noqa: BLE001 - only a message: the image's own run says what is wrong
        return
    finally:
        torch.set_num_threads(previous)
    if line is not None:
        others = "" if count == 1 else f" ({count - 1} more after it)" if at_once == 1 else \
            f" ({count - 1} more; {min(at_once, count)} restored at a time, so others may finish first)"
        print(f"linr: the first image, {job.name}{others}: {line}", file=sys.stderr, flush=True)


def cmd_batch(args: argparse.Namespace) -> int:
    from .pipes import quiet_broken_pipe

    with quiet_broken_pipe():  # `linr batch ... | head`: the batch finishes, quietly
        return _batch(args)


def _batch(args: argparse.Namespace) -> int:
    from .manifest import Manifest
    from .plan import BY_INPUT, plan_jobs
    from .run import Outcome, Progress, run_jobs, select
    from .summary import summary_table

    # Every check that can fail comes before the output folder is created.
    _merge_task(args)
    check_pairs(args)
    if not isinstance(args.headroom, str) and args.headroom != 1.0 and \
            (args.preset is not None or _kinds_given(args) != {"blurred"}):  # each image would refuse it
        raise InputError(f"--headroom {args.headroom:g} widens the scale of one blurred photo restored alone with no "
                         "--preset: not for this batch's images")
    model = model_config(args, args.preset)
    _check_fit_options(args, model)
    settings = _settings(args, model)
    inputs = {k: getattr(args, k) for k in KINDS if getattr(args, k) is not None}
    notes: list[str] = []
    labels = {args.task: "INPUT"} if args.input is not None else {}
    jobs = plan_jobs(inputs, output_dir=args.output_dir, suffix=args.format and f".{args.format}",
                     mask=args.mask, kernel=args.kernel, reference_dir=args.reference_dir, notes=notes,
                     labels=labels)
    if args.format is None:  # by input: each image keyed by its own output's format (plan.fingerprint)
        settings["format"] = BY_INPUT
    if args.register and args.frames == "separate":
        raise InputError(f"--register {args.register} registers a scene's frames against its first, and --frames "
                         "separate restores each frame on its own (nothing to register it against): leave out one")
    if args.register and jobs and all(_one_photo(job) for job in jobs):
        raise InputError(f"--register {args.register} fits each frame's shift against a scene's first, and every "
                         "image of this batch is one photo: give scene folders of frames, multi-image files or "
                         "joint kinds, or leave out --register")
    device = _check_device(args)
    if "lowres" in _kinds_given(args) and args.factor is None:  # the outputs' size depends on it
        from ..kinds import DEFAULT_FACTOR

        notes.append(f"--factor not given: the low-res images are taken as x{DEFAULT_FACTOR} (restored at "
                     f"{DEFAULT_FACTOR} times their size); --factor N for another")
    for note in notes:
        print(f"linr: note: {note}", file=sys.stderr)
    with Manifest(args.output_dir) as manifest:
        _remove_stale_temporaries(jobs)  # safe: the manifest's lock keeps other batches out
        replaced: list[str] = []
        todo, skipped, keys = select(jobs, manifest, settings, force=args.force, existed=manifest.existed,
                                     replaced=replaced)
        print(f"{len(jobs)} images: {len(todo)} to restore, {len(skipped)} already done "
              f"(manifest {manifest.path})", flush=True)
        if replaced:
            print(f"linr: note: {len(replaced)} done image(s) restored again: an input file changed since "
                  f"(its size or time), e.g. {replaced[0]}", file=sys.stderr)
        outcome, engine = Outcome(), "nothing to run"
        if todo:
            backend, device, threads, engine = _backend(args, device)
            if args.stack > 1 and not args.register:
                engine += f", up to {args.stack} images stacked per fit"
            fit = {"preset": args.preset, "steps": args.steps, "lr": args.lr, "seed": args.seed,
                   "device": device, "model": model, "stop": args.stop, "precision": args.precision,
                   "tile": args.tile or "auto", "tile_stack": args.tile_stack, "register": args.register,
                   "prior": args.prior, "refine": args.refine, "clipping": args.clipping, "headroom": args.headroom,
                   "defects": args.defects}
            if args.force:  # images made with other settings are being replaced (the backend is up: nothing
                _supersede(todo, manifest, keys, settings)  # fails before the fits): an interrupted run resumes
                # without --force, those not yet redone then no longer 'made with other settings'
            if not args.quiet:
                _say_first_cost(todo[0], settings, fit, threads, count=len(todo),
                                at_once=backend.slots * max(1, args.stack))
            progress = Progress(len(todo), enabled=not args.quiet)
            try:
                with sigterm_as_interrupt():
                    outcome = run_jobs(todo, backend=backend, manifest=manifest, settings=settings,
                                       keys=keys, fit=fit, threads=threads, on_record=progress,
                                       stack=args.stack, fewer_where_late=args.backend == "local" and device == "cpu"
                                       and args.threads is None and omp_threads() is None)
            finally:
                progress.close()
        outcome.skipped = skipped
        records = [manifest.records[j.name] for j in jobs if j.name in manifest.records]
    print(summary_table(records, outcome, where=str(manifest.path), engine=engine))
    unmeasured = [j.name for j in jobs if j.reference is not None and j.name in outcome.skipped
                  and not (manifest.records.get(j.name) or {}).get("metrics")
                  and ((manifest.records.get(j.name) or {}).get("inputs") or {}).get("reference") is None]
    if unmeasured:  # a reference folder added on resume measures only the images restored now
        print(f"linr: note: {len(unmeasured)} image(s) done before have a reference now but no metrics (references "
              f"measure the images restored in a run; `linr metrics REFERENCE OUTPUT` measures a done one, "
              f"--force restores them again), e.g. {unmeasured[0]}", file=sys.stderr)
    if outcome.lost is not None:
        print(f"linr: error: {outcome.lost}" + (" (without --force: with it, every image starts over)"
                                               if args.force else ""), file=sys.stderr)
        return EXIT_SOME_FAILED
    if outcome.interrupted:
        print("linr: interrupted; rerun the same command " + ("without --force to resume (with it, every image "
                                                              "starts over)" if args.force else "to resume"),
              file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if any(r["status"] == "failed" for r in records) else 0
