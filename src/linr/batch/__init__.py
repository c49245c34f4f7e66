"""``linr batch``: restore every image of a folder, resumably, with local workers or on Ray.

    linr batch noisy/ -o restored/ --task noisy --workers 2
    linr batch --noisy 'noisy/*.png' --lowres 'lr/*.png' --factor 4 -o restored/
    linr batch holes/ --task masked --mask masks/ -o restored/ --reference-dir clean/
    linr batch noisy/ --task noisy -o restored/ --backend ray --ray-address auto
    linr batch tiles/ --task noisy -o restored/ --device cuda --stack 16

Files of a joint batch, masks, kernels and references pair by file stem. Progress is recorded
in ``OUTPUT_DIR/manifest.jsonl`` (see :mod:`linr.batch.manifest`); rerunning the same command
skips finished images and retries failed ones. Exit status: 0 all done, 4 some images failed,
130 interrupted (rerun to resume), 2 a usage error (nothing started).

Every image is fitted with the same ``--seed``, so a batch's output for an image is the output
of ``linr restore`` on that image alone with the same options and thread count, and the local
and Ray backends write identical files.

Only argparse and linr's CLI helpers are imported here; the rest loads when the command runs.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from typing import Any, Iterator

from ..cli_common import add_fit_options, check_pairs, model_config, positive_float, positive_int
from ..errors import InputError

__all__ = ["register", "cmd_batch", "EXIT_SOME_FAILED", "EXIT_INTERRUPTED"]

EXIT_SOME_FAILED = 4
EXIT_INTERRUPTED = 130
KINDS = ("noisy", "lowres", "masked", "blurred")
FORMATS = ("png", "tif", "jpg", "bmp")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "batch",
        help="restore a folder of images (resumable; local workers or Ray)",
        description="Restore many images: INPUT with --task for one task, or one folder/glob per "
        "observation kind for joint restoration (files paired by name). Rerun the same command to "
        "resume: finished images are skipped, failed ones retried.",
        epilog="Exit status: 0 all done, 4 some images failed (listed in the summary and the "
        "manifest), 130 interrupted, 2 usage error.",
    )
    p.add_argument("input", nargs="?", metavar="INPUT_DIR_OR_GLOB",
                   help="a folder (its image files) or a quoted glob such as 'noisy/*.png'")
    p.add_argument("--task", choices=KINDS, help="what INPUT is: noisy, lowres, masked or blurred")
    p.add_argument("-o", "--output-dir", required=True, help="folder for the outputs and manifest.jsonl")
    g = p.add_argument_group("observations (joint restoration: several, paired by file name)")
    for kind in KINDS:
        g.add_argument(f"--{kind}", metavar="DIR_OR_GLOB", help=f"{kind} images")
    g.add_argument("--factor", type=positive_int, help="super-resolution factor (default 4)")
    g.add_argument("--downsampler", default=None, choices=["lanczos2", "bicubic", "box"],
                   help="downsampling kernel of low-res observations (default lanczos2)")
    g.add_argument("--mask", metavar="MASK", help="one keep-mask for all (white = observed), or a "
                   "folder/glob of masks named like the images (x.png or x_mask.png)")
    g.add_argument("--kernel", metavar="SPEC", help="blur kernel: gaussian:WIDTH:SIGMA or a file for all, "
                   "or a folder/glob of kernels named like the images (x.* or x_kernel.*)")
    g.add_argument("--boundary", default=None, choices=["circular", "reflect"],
                   help="blur boundary: reflect (default; real photos) or circular (images blurred "
                   "periodically, as the paper's were; the default with --preset paper)")
    add_fit_options(p)
    r = p.add_argument_group("running")
    r.add_argument("--workers", type=positive_int,
                   help="local worker processes (default 1 on CPU, one per GPU with CUDA)")
    r.add_argument("--threads", type=positive_int,
                   help="torch threads per fit (default: cores // workers; with Ray, --ray-cpus-per-task)")
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
    o.add_argument("--format", choices=FORMATS, default="png", help="output file type (default png)")
    o.add_argument("--reference-dir", metavar="DIR_OR_GLOB",
                   help="clean images named like the inputs: PSNR/SSIM per image and their means")
    o.add_argument("--force", action="store_true",
                   help="redo every image and overwrite outputs (never an input)")
    o.add_argument("--quiet", action="store_true", help="no progress display")
    p.set_defaults(func=cmd_batch)


def _merge_task(args: argparse.Namespace) -> None:
    """``INPUT --task KIND`` is the same as ``--KIND INPUT``."""
    if args.input is None and args.task is not None:
        raise InputError("--task needs INPUT_DIR_OR_GLOB")
    if args.input is not None:
        if args.task is None:
            raise InputError("INPUT needs --task noisy|lowres|masked|blurred (or use --noisy INPUT etc.)")
        if getattr(args, args.task) is not None:
            raise InputError(f"--task {args.task} with INPUT and --{args.task} name the same input twice")
        setattr(args, args.task, args.input)
    if args.ray_address is not None and args.backend != "ray":
        raise InputError("--ray-address needs --backend ray")
    if args.backend == "ray" and args.device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device {args.device} with Ray: use auto, cpu or cuda (Ray assigns the GPUs)")
    if args.backend == "ray" and args.workers is not None:
        raise InputError("--workers applies to the local backend; Ray sizes itself by the cluster")
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

    return {
        "preset": args.preset, "steps": args.steps, "lr": args.lr, "seed": args.seed,
        "stop": args.stop, "precision": args.precision,
        # None: the preset's own (possibly per-kind) model, recorded by the preset's name
        "model": None if model is None else dataclasses.asdict(model), "weights": dict(args.weight),
        # unset options as older manifests recorded them, so that those batches still resume;
        # a blur's boundary left unset (None) is the preset's
        "factor": args.factor or 4, "downsampler": args.downsampler or "lanczos2",
        "boundary": args.boundary if args.blurred is not None else "circular",
        "format": args.format,
    }


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _backend(args: argparse.Namespace) -> tuple[Any, str, int, str]:
    """Start the backend; returns (backend, device for payloads, torch threads per fit, label)."""
    if args.backend == "ray":
        from .ray_backend import RayBackend

        ray = RayBackend(address=args.ray_address, device=args.device,
                         cpus_per_task=args.ray_cpus_per_task, gpus_per_task=args.ray_gpus_per_task)
        threads = args.threads or ray.threads
        return ray, ray.device, threads, f"Ray ({ray.device}, {ray.slots} in flight, {threads} threads/fit)"
    import torch

    from ..fit import resolve_device
    from .local import InlineBackend, PoolBackend

    device = resolve_device(args.device)
    gpus: list[str] = []
    if device.type == "cuda":
        gpus = [str(device)] if device.index is not None else [
            f"cuda:{i}" for i in range(torch.cuda.device_count())]
    workers = args.workers or max(1, len(gpus))
    threads = args.threads or max(1, _cores() // workers)
    label = f"{workers} local worker(s), {device.type}, {threads} threads/fit"
    if workers == 1:
        return InlineBackend(), gpus[0] if gpus else "cpu", threads, label
    return PoolBackend(workers, devices=gpus), "cuda" if gpus else "cpu", threads, label


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (schedulers, ``kill``) like Ctrl-C: stop cleanly, keep what is recorded."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def cmd_batch(args: argparse.Namespace) -> int:
    from .manifest import Manifest
    from .plan import plan_jobs
    from .run import Outcome, Progress, run_jobs, select
    from .summary import summary_table

    _merge_task(args)
    check_pairs(args)
    model = model_config(args, args.preset)
    if args.stack > 1 and model is not None and model.name != "siren":
        raise InputError(f"--stack needs the SIREN model (the fast engine), not {model.name!r}")
    settings = _settings(args, model)
    if args.kernel is not None and args.kernel.startswith(("gaussian:", "gauss:")):
        from ..tasks import parse_kernel

        parse_kernel(args.kernel)  # a malformed spec is a usage error, not one failure per image
    inputs = {k: getattr(args, k) for k in KINDS if getattr(args, k) is not None}
    notes: list[str] = []
    jobs = plan_jobs(inputs, output_dir=args.output_dir, suffix=f".{args.format}", mask=args.mask,
                     kernel=args.kernel, reference_dir=args.reference_dir, notes=notes)
    for note in notes:
        print(f"linr: note: {note}", file=sys.stderr)
    with Manifest(args.output_dir) as manifest:
        _remove_stale_temporaries(jobs)  # safe: the manifest's lock keeps other batches out
        todo, skipped, keys = select(jobs, manifest, settings, force=args.force, existed=manifest.existed)
        print(f"{len(jobs)} images: {len(todo)} to restore, {len(skipped)} already done "
              f"(manifest {manifest.path})", flush=True)
        outcome, engine = Outcome(), "nothing to run"
        if todo:
            backend, device, threads, engine = _backend(args)
            if args.stack > 1:
                engine += f", up to {args.stack} images stacked per fit"
            fit = {"preset": args.preset, "steps": args.steps, "lr": args.lr, "seed": args.seed,
                   "device": device, "model": model, "stop": args.stop, "precision": args.precision}
            progress = Progress(len(todo), enabled=not args.quiet)
            try:
                with _sigterm_as_interrupt():
                    outcome = run_jobs(todo, backend=backend, manifest=manifest, settings=settings,
                                       keys=keys, fit=fit, threads=threads, on_record=progress,
                                       stack=args.stack)
            finally:
                progress.close()
        outcome.skipped = skipped
        records = [manifest.records[j.name] for j in jobs if j.name in manifest.records]
    print(summary_table(records, outcome, where=str(manifest.path), engine=engine))
    if outcome.interrupted:
        print("linr: interrupted; rerun the same command to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return EXIT_SOME_FAILED if any(r["status"] == "failed" for r in records) else 0
