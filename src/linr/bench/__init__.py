"""Benchmarks: ``linr bench`` (the paper's tables, the default), ``linr bench speed``,
``linr bench stopping``, ``linr bench presets``, ``linr bench tiles``, ``linr bench register``,
``linr bench photon``, ``linr bench averaging``, ``linr bench ensemble``, ``linr bench denoise``,
``linr bench default-stop``.

Each part is a module of this package with ``register(parser_or_subparsers)``; the tables module
adds its options to ``linr bench`` itself, the others add a sub-command. Modules import nothing
heavy at module level so that ``linr --help`` stays fast. The ``--help`` texts are the plain
user-facing ones of :data:`DESCRIPTIONS` (the module docstrings are for developers), and every
part runs with :func:`linr.batch.pipes.quiet_broken_pipe` (``linr bench ... | head``).
"""

from __future__ import annotations

import argparse
import functools
import os
import importlib
import importlib.util
from pathlib import Path
from typing import Any, Callable

PARTS = ("tables", "speed", "stopping", "presets", "tiles", "registration", "photon", "averaging", "ensemble",
         "denoise", "default_stop")
"""Modules of this package, each adding a part (the registration module adds `register`: a
sub-module named `register` would shadow this package's own register function)."""


def data_dir(option: str | os.PathLike | None = None) -> Path:
    """The test-image folder of every bench part, by one rule: the ``--data`` option, else the
    ``LINR_DATA`` environment variable, else ``../shared/data`` next to the working directory.
    A folder named but missing, or none found, is a one-line error."""
    from ..errors import InputError

    for source, value in (("--data", option), ("LINR_DATA", os.environ.get("LINR_DATA"))):
        if value:
            if not Path(value).is_dir():
                raise InputError(f"{source} {value}: not a folder")
            return Path(value)
    default = Path.cwd().parent / "shared" / "data"
    if default.is_dir():
        return default
    raise InputError("no test-image folder: pass --data DIR or set LINR_DATA (default: "
                     "../shared/data next to the working directory)")

DESCRIPTIONS = {
    "bench": (
        "Benchmark linr. Without a PART, rerun the tables of the LINR paper (Tables 1-13, and 14 "
        "when real-noise photo pairs are given): every test image is corrupted as in the paper and "
        "restored by linr and the baselines, and the report puts our PSNR/SSIM beside the paper's. "
        "--profile quick (the default) is sized for a CPU (64-pixel crops, fewer steps); "
        "--profile paper is the paper's full protocol, meant for a GPU. Results go to --out: "
        "report.md, results.csv, summary.json, images/ and plots/. Rerun the same command to "
        "resume: finished fits are kept. The other PARTs, each with its own --help: speed (how "
        "fast linr fits), stopping (how well the automatic stop picks the step), presets (whether "
        "the fast preset keeps the paper's quality)."
    ),
    "speed": (
        "Time linr's fitting. For each task (denoising, 4x super-resolution, inpainting) on a "
        "crop of one test image, compare the training loop as the paper's code writes it with "
        "linr's fast engine (the same mathematics), reduced-precision runs and the fast presets. "
        "Prints the time per step, the final PSNR, the time to reach the paper loop's PSNR, peak "
        "memory and the speed-up ratios. Runs are interleaved and repeated (--repeats) so that a "
        "busy machine slows every side alike."
    ),
    "stopping": (
        "Judge the automatic stopping rules on noisy crops of test images: the PSNR of the image "
        "each rule returns, against a fixed 500 steps and against the best step in hindsight (an "
        "oracle that looks at the clean image, so only a benchmark can know it). Fits are cached "
        "in --cache, so a rerun, or one with more rules to compare, is quick."
    ),
    "presets": (
        "Check that a fast preset keeps the paper preset's quality: on every test image of each "
        "task (centre crops of --size), fit with the paper preset and with each named preset, and "
        "print both PSNRs, the margin and how many times faster the preset was."
    ),
    "tiles": (
        "Compare restoring whole images with restoring them in tiles, on the full-size test "
        "images: PSNR, time, steps per tile, and whether the tiles' seams show (PSNR where tiles "
        "overlap against the rest). Rows go to --jobs as they finish; a rerun resumes."
    ),
    "register": (
        "Multi-frame super-resolution from low-res frames that do not line up: random sub-pixel "
        "shifts of a test image's centre crop, each frame downsampled, then restored from frame 0 "
        "alone, from all frames as if aligned, with registration, and with the true shifts given. "
        "Rows go to --jobs as they finish; a rerun resumes."
    ),
    "photon": (
        "Denoise photon (Poisson) noise at a few photon levels with each data term (Poisson, the "
        "paper's squared error, ...) on crops of test images: the PSNR of the automatically stopped "
        "fit, the best PSNR along the same fit (an oracle that looks at the clean image), the steps "
        "and the time, beside a classical reference (Anscombe transform and non-local means, or BM3D "
        "when installed). Rows go to --jobs as they finish; a rerun resumes."
    ),
    "averaging": (
        "Judge averages of a denoising fit's iterates (exponential moving averages and window "
        "means of the restored images it passes through) against the iterate the automatic stop "
        "returns today: one fit per test image records every average's PSNR and hold-out loss at "
        "every step, and the report replays the stop rule on them, beside the best step in "
        "hindsight (an oracle that looks at the clean image). Rows go to --rows as they finish; "
        "a rerun resumes."
    ),
    "ensemble": (
        "Judge ensembles: restore noisy crops of test images with K networks from different random "
        "starts (--ensemble K) and compare the mean with the single default fit (the first member) "
        "and with the other members, beside the time; and check the members' spread per pixel "
        "(--uncertainty) against the actual error. Rows go to --rows as they finish; a rerun resumes."
    ),
    "denoise": (
        "Judge variants of the default denoising restore (an image prior such as tv:auto or none, "
        "the SIREN's bandwidth) on noisy crops of test images, split into images settings were "
        "tuned on and images they were not; --table prints the recorded rows side by side. Rows go "
        "to --rows as they finish; a rerun resumes."
    ),
    "default-stop": (
        "Judge the denoising default's automatic stop against the best image the same fit could "
        "have returned: restore noisy crops of test images with the defaults, then run the same fit "
        "for a fixed number of steps and refine its iterates every few steps as the default does; "
        "the best of those (an oracle that looks at the clean image) against what the default "
        "returned. --table prints the gaps, and those of rules that return the average earlier "
        "(--at: a fraction of the held-out minimum's step), replayed from the recorded curves. Rows "
        "go to --rows as they finish; a rerun resumes."
    ),
}
"""The ``--help`` description of ``linr bench`` and of each part."""


def register(sub: Any) -> None:
    parser = sub.add_parser("bench", help="benchmarks: paper tables (default), speed, stopping, presets, tiles, register, photon, "
                            "averaging, ensemble, denoise, default-stop",
                            description=DESCRIPTIONS["bench"])
    subs = parser.add_subparsers(dest="bench_command", metavar="PART", parser_class=type(parser))
    subs.required = False
    parser.set_defaults(func=_no_part)
    for name in PARTS:
        module_name = f"{__name__}.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        module.register(parser if name == "tables" else subs)
    for name, part in [("bench", parser), *subs.choices.items()]:
        if name in DESCRIPTIONS:
            part.description = DESCRIPTIONS[name]
            part.formatter_class = argparse.HelpFormatter  # plain paragraphs, wrapped to the terminal
        func = part.get_default("func")
        if func is not None:
            part.set_defaults(func=_guarded(func))


def _guarded(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """``func`` with a closed output pipe (``linr bench ... | head``) silencing it, not ending it."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        from ..batch.pipes import quiet_broken_pipe

        with quiet_broken_pipe():
            return func(args)

    return run


def _no_part(args: argparse.Namespace) -> int:
    from ..errors import InputError

    raise InputError("no benchmark part is installed")
