"""What the commands that restore share: argument types, the fit options, reading the
observations named on a command line, and the metrics report (``linr restore`` and ``linr batch``).
"""

from __future__ import annotations

import argparse
import contextlib
import signal
from typing import Any, Iterator

from .argtypes import nonneg_float, positive_float, positive_int
from .errors import InputError

__all__ = [
    "Once", "add_observation_options", "positive_int", "positive_float", "nonneg_float", "weight_option", "add_fit_options",
    "check_pairs", "check_backend_options", "model_config", "load_observations", "value_range_option", "size_option",
    "sigterm_as_interrupt",
]


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Treat SIGTERM (schedulers, ``kill``) like Ctrl-C: stop cleanly, keep what is recorded and
    say so (``linr restore``'s finished tiles, ``linr batch``'s finished images)."""

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


def weight_option(text: str) -> tuple[str, float]:
    from .kinds import KINDS

    kind, sep, value = text.partition("=")
    if not sep or kind not in KINDS:
        raise argparse.ArgumentTypeError(f"expected KIND=W with KIND one of {', '.join(KINDS)}, "
                                         f"got {text!r}")
    return kind, nonneg_float(value)


def add_observation_options(group: Any) -> None:
    """``--KIND FILE`` for every registered kind (:data:`linr.kinds.KINDS`), repeatable (each
    file, each match of a quoted glob and each image of a multi-image TIFF is one frame: its own
    observation), and the options that belong to a kind, each accepted once (they apply to every
    frame of the kind)."""
    from .kinds import KINDS

    for kind in KINDS.values():
        group.add_argument(f"--{kind.name}", metavar="FILE", action="append",
                           help=f"{kind.help}; repeat it, or give a quoted glob or a multi-image "
                           "TIFF, for several frames")
        for opt in kind.options:
            group.add_argument(opt.flag, dest=opt.dest, type=opt.type, choices=opt.choices,
                               metavar=opt.metavar, default=None, action=Once, help=opt.help)


class Once(argparse.Action):
    """Store an option's value, refusing a second occurrence instead of silently keeping the last
    (an option of an observation kind applies to every frame of that kind). ``hint`` ends the
    message; a command may subclass it with its own."""

    hint = "give it once (it applies to every frame of its observation kind)"

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if getattr(namespace, self.dest, None) is not None:
            raise InputError(f"{option_string} given twice ({getattr(namespace, self.dest)} "
                             f"and {values}); {self.hint}")
        setattr(namespace, self.dest, values)


class OncePerKind(argparse.Action):
    """Append a ``(kind, value)`` pair, refusing a second one of the same kind instead of silently
    keeping the last (``--weight noisy=1 --weight noisy=2``)."""

    def __call__(self, parser: Any, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        kind, value = values
        pairs = list(getattr(namespace, self.dest, None) or [])
        earlier = dict(pairs)
        if kind in earlier:
            raise InputError(f"{option_string} {kind}= given twice ({earlier[kind]:g} and {value:g}); give each "
                             "kind's weight once")
        setattr(namespace, self.dest, [*pairs, values])


PRESET_NAMES = ("paper", "fast")
"""The names of :data:`linr.tasks.PRESETS`, here so that building the parser imports no torch
(a test keeps the two equal)."""


def preset_name(text: str) -> str:
    if text not in PRESET_NAMES:
        raise argparse.ArgumentTypeError(f"unknown preset {text!r}; choose from {', '.join(PRESET_NAMES)}")
    return text


def add_fit_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("fit settings (default: the preset's)")
    g.add_argument("--preset", default=None, type=preset_name, metavar="{" + ",".join(PRESET_NAMES) + "}",
                   help="named settings: paper (the LINR paper's: SIREN 7x256, Adam 1e-4, a fixed "
                   "500 steps, 4000 for deblurring, circular blur boundary) or fast (the paper preset's quality "
                   "sooner on a CPU; the default is usually as quick and better, and it is no setting for "
                   "deblurring); default: the paper's network with automatic stopping "
                   "on noisy input, free blur edges for a blurred photo alone or beside one noisy photo of it (2000 steps "
                   "on a cosine learning rate; a reflecting boundary in other joint fits) and, for one noisy photo, a "
                   "total-variation prior weighted by its noise (--prior; not for a colour photo whose longer side exceeds 128 px), and a grouped Wiener filter of the photo "
                   "with the fit's image as the pilot (--refine), that fit then a SIREN 7x64 with a "
                   "budget of 2000 steps at a learning rate of 1e-3 (the paper's: 1e-4); for one photo with missing pixels the paper's "
                   "network at omega_0 15 (--omega0; the paper's: 30; above 1024 px with at most 10%% of the pixels missing a "
                   "SIREN 7x64, 200 steps at 1e-3) and grouped-fill: the missing pixels filled again "
                   "by grouped filtering (--refine), after the pick stop when restored whole; for one low-res photo (lanczos2) "
                   "grouped-views-examples at x2, x3 and x4, grouped-views at other factors, for one "
                   "blurred photo grouped-deblur, for a noisy and a blurred photo of one scene (beside low-res views "
                   "too) grouped-pair (--refine)")
    g.add_argument("--steps", type=positive_int,
                   help="most Adam steps of the image model's fit: the budget of an automatic stop "
                   "(noisy input by default), exactly this many with --stop fixed or --preset paper; "
                   "a --refine stage after the fit keeps its own work (--refine none: the fit alone)")
    g.add_argument("--stop", default=None, metavar="RULE",
                   help="auto, fixed, or rules that end the fit early, first to fire: "
                   "variance[:WINDOW:PATIENCE], holdout[:FRACTION:PATIENCE[:AVERAGE[:AT]]] (AVERAGE: "
                   "windowN or emaDECAY, an average of the iterates the rule may return, or none; AT in "
                   "(0, 1]: return that average at AT times its held-out minimum's step), "
                   "discrepancy[:TAU], plateau[:REL_TOL:PATIENCE], fixed:STEPS, joined by commas; "
                   "pick[:FRACTION:EVERY] never stops and returns the held-out best of every EVERY-th "
                   "step (inpainting; at most one of holdout and pick); sure[:FRACTION:PATIENCE[:AVERAGE]] "
                   "(one noisy photo refined by grouped, restored whole): holdout's average at the "
                   "checkpoint whose refined image has the least SURE, for one more fit. auto: sure on such a "
                   "photo up to 128x128 pixels (64x64 in colour) with noise above 14/255 (an aligned burst's mean also "
                   "where it is measured as its frames' levels say), holdout with an average on other noisy input, pick:0.05:25 "
                   "before an inpainting refinement (biharmonic, grouped-fill), else fixed")
    g.add_argument("--lr", type=positive_float, help="Adam learning rate (default: the paper's 1e-4; 1e-3 for the "
                   "pilot fit of one noisy photo, and of one photo above 1024 px with at most 10%% of its pixels missing, under the "
                   "defaults)")
    g.add_argument("--seed", type=int, default=0, help="seed of the model initialisation (default 0)")
    g.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    g.add_argument("--model", default=None,
                   help="siren (default), gauss (Gaussian activation; fast engine too), finer (FINER's "
                   "variable-periodic sine; fast engine too), wire (WIRE's complex Gabor wavelet; plain loop, "
                   "its Gabor omega and scale through Python's ModelConfig), or the paper's ablation MLPs relu, "
                   "relu_pe, tanh, sigmoid, selu (plain loop)")
    g.add_argument("--width", type=positive_int, help="hidden features per layer (default 256; 64 for the pilot of a refined noisy "
                   "photo and of a photo above 1024 px with at most 10%% of its pixels missing; any network option gives the paper's "
                   "network with that change)")
    g.add_argument("--depth", type=positive_int, help="hidden layers (default 7)")
    g.add_argument("--omega0", type=positive_float, help="SIREN frequency omega_0 (default 30, the paper's; 15 for one photo with "
                   "missing pixels under the defaults)")
    g.add_argument("--precision", default=None, choices=["float32", "bf16", "tf32", "auto"],
                   help="matmul precision of the hidden layers: float32 (the paper's), bf16 "
                   "(fast on CPUs with AMX or AVX512-BF16 and on GPUs; slightly different results), tf32 (CUDA) "
                   "or auto (what this device runs fast); on a CPU without bf16 units bf16 is emulated (slow). "
                   "Default: float32, but bf16 for the pilot fit of a refined noisy photo on a CPU with bf16 units "
                   "(not where its stop is chosen by SURE)")
    g.add_argument("--prior", default=None, type=prior_option, metavar="tv:WEIGHT|tv:auto|none",
                   help="an explicit image prior added to the data term: tv:WEIGHT, total "
                   "variation of the rendered image (such as tv:0.05; tv:auto sets the weight from "
                   "the noise measured on the noisy input; not in the paper); none: no prior. "
                   "Default: tv:auto for one noisy photo with no --preset (none for a colour photo whose longer side exceeds 128 px), else none")
    g.add_argument("--refine", default=None, type=refine_option, metavar="grouped|grouped-project|project|grouped-views|grouped-views-examples|grouped-deblur|grouped-pair|wiener|biharmonic|grouped-fill|none",
                   help="after the fit, filter the noisy photo once more with the fit's image as "
                   "the pilot: grouped (groups of 16 similar 8x8 patches filtered together with "
                   "Wiener gains, BM3D's second step with the fit as its pilot, the noise level measured "
                   "on the photo; not in the paper); wiener (an empirical Wiener filter of each 8x8 DCT "
                   "patch alone: faster, 0.2-0.8 dB less on the images measured; not in the paper); grouped-project "
                   "(a joint fit of a noisy photo and low-res views without noise: grouped, then the nearest "
                   "image that reproduces the low-res views exactly, and the fit's, the filtered and the "
                   "projected images blended by least squares on the pixels the fit held out; not in the "
                   "paper); project (super-resolution: "
                   "the fit's image made to reproduce its noise-free low-res views exactly; not in the paper); "
                   "grouped-views (super-resolution: project, then 20 passes of the grouped filter at a falling "
                   "noise level, each made to reproduce the views again; not in the paper); "
                   "grouped-views-examples (one low-res photo: the mean of the fit's image, grouped-views' and "
                   "the photo upscaled by a small network trained on the photo's own smaller copies, made to "
                   "reproduce the photo; up to about a minute more at x2, two to three at x4; not in the paper); "
                   "grouped-deblur (deblurring: 10 passes of the grouped filter at a falling noise level, each "
                   "followed by the image that explains the blurred photo best near the filtered one, its noise "
                   "measured on it; not in the paper); "
                   "grouped-pair (a noisy and a blurred photo of one scene, a short and a long exposure: "
                   "grouped-deblur whose data steps also weigh in the noisy photo, by its measured noise; not in "
                   "the paper); "
                   "biharmonic (inpainting: the "
                   "fit's image blended with a biharmonic inpainting, weighted on the pixels its stop rule "
                   "held out (pick, the default's, or holdout), else half and half; not in the paper); "
                   "grouped-fill (inpainting of a photo without noise: the missing pixels filled by 20 passes of the "
                   "grouped filter at a falling noise level from the biharmonic blend (above 768 px with more than 768x768 "
                   "pixels missing: from the fit's image), "
                   "the observed pixels kept, then blended with the fit's image and the biharmonic inpainting by least "
                   "squares on the held-out pixels; where the holes are large, blocks of observed pixels are held out "
                   "too and each missing pixel is blended by the weights chosen at its own depth in the hole; "
                   "not in the paper); none: "
                   "the fit's image. "
                   "Default with no --preset and no model to keep: grouped for one noisy photo, "
                   "grouped-project for one noisy photo with low-res views, "
                   "grouped-fill for one photo with missing pixels (above 768 px with more than 768x768 missing from the fit alone), "
                   "grouped-views-examples for one low-res photo (the lanczos2 downsampler) at x2, x3 and x4, "
                   "grouped-views at other factors, grouped-deblur for one "
                   "blurred photo (its data step exact for --boundary circular, else with free edges: nothing "
                   "assumed beyond the frame), grouped-pair for a noisy and a blurred photo of one scene (beside "
                   "low-res views too), grouped-fill "
                   "also for noisy photos beside one photo with missing pixels (the joint fit its pilot), else none")
    g.add_argument("--clipping", choices=("auto", "ignore"), default="auto",
                   help="noisy photos with Gaussian noise alone, no --preset: auto (default) undoes the bias "
                   "that clipping at black and white leaves (where a photo's values pile up at 0 or at the "
                   "maximum: the restored values mapped back through the clipped noise's expected value; "
                   "not in the paper); ignore: restored values as fitted. Either way an aligned burst of "
                   "such photos is restored as its frames' mean weighted by their measured noise. One blurred "
                   "photo alone clipped at white (three or more touching pixels there): auto fits its pixels at "
                   "white as 'at least white' (the data term censored; not in the paper), ignore as values")
    g.add_argument("--headroom", type=headroom_option, default="auto", metavar="auto|off|FACTOR",
                   help="one blurred photo alone, no --preset: auto (default) fits a photo of point sources (stars, "
                   "beads: its brightest pixel far above the spread of the rest and shaped as the blur of a point) "
                   "on a scale 4x its value range (its maximum for floats), since its deblurred sources are several "
                   "times brighter than their blurred peaks, and leaves its pixels at its maximum, where three or "
                   "more touch (a saturated star), out of the data term (not in the paper); off: on the photo's own scale; "
                   "FACTOR (>= 1): on a scale that many times its range, any blurred photo")
    g.add_argument("--defects", choices=("auto", "off"), default="auto",
                   help="one blurred photo alone, no --preset: auto (default) leaves its pixels sharper than the "
                   "kernel allows (hot pixels, cosmic rays: no scene blurred by it gives them) out of the data term "
                   "and, where one was the photo's maximum, fits it on the scale of the brightest pixel left "
                   "(not in the paper); off: every pixel fitted as data")
    g.add_argument("--weight", type=weight_option, action=OncePerKind, default=[], metavar="KIND=W",
                   help="data-term weight of one observation kind, e.g. noisy=0.1 (repeat it for other kinds, once each)")
    g.add_argument("--tile", default=None, type=tile_option, metavar="auto|off|SIZE[:OVERLAP]",
                   help="restore in overlapping tiles of SIZE pixels, each with its own network "
                   "and stop (auto, the default: images larger than 1024 px in tiles of 256, one noisy "
                   "photo larger than 384 px in tiles of 128, except with --preset paper; off: one fit of the whole image; "
                   "OVERLAP: 32 px, or a quarter of tiles under 64 px, widened to what the operators need)")
    g.add_argument("--tile-stack", type=positive_int, default=None, metavar="N",
                   help="tiles fitted at once as one stack of networks (default 8 on a GPU, 1 on the CPU)")


def prior_option(text: str) -> str:
    """An image prior spec (:func:`linr.priors.check_prior_spec`), checked without importing torch."""
    from .priors import check_prior_spec

    try:
        return check_prior_spec(text.strip().lower())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def refine_option(text: str) -> str:
    """A refinement name (:func:`linr.refine.check_refine_spec`)."""
    from .refine import check_refine_spec

    try:
        return check_refine_spec(text.strip().lower())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def headroom_option(text: str) -> "str | float":
    """``--headroom``: auto, off or a factor >= 1 (:func:`linr.headroom.check_headroom`)."""
    from .headroom import check_headroom

    try:
        return check_headroom(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def tile_option(text: str) -> str:
    """``auto``, ``off``, ``SIZE`` or ``SIZE:OVERLAP``, checked here without importing torch
    (:func:`linr.tiling.parse_tile` checks the same, and the sizes)."""
    import re

    text = text.strip().lower()
    if text in ("auto", "off") or re.fullmatch(r"\d+(:\d+)?", text):
        return text
    raise argparse.ArgumentTypeError(f"expected auto, off, SIZE or SIZE:OVERLAP (pixels), got {text!r}")


def check_pairs(args: argparse.Namespace) -> None:
    """Options that belong to an observation kind need its flag; at least one observation."""
    from .kinds import KINDS

    def given(kind: str, *, alternative: bool = True) -> str:  # as the user named it (linr batch: --task KIND too)
        if getattr(args, "task", None) == kind:
            return f"--task {kind}"
        return f"--{kind}" + (f" (or --task {kind})" if alternative and hasattr(args, "task") else "")

    for kind in KINDS.values():
        for opt in kind.options:
            if getattr(args, opt.dest, None) is not None and getattr(args, kind.name, None) is None:
                others = kind.name == "noisy" and any(getattr(args, name, None) for name in KINDS if name != "noisy")
                raise InputError(f"{opt.flag} needs {given(kind.name)}" + (
                    ": the noise model is a noisy photo's; a blurred, low-res or masked photo is fitted by squared "
                    "error whatever its noise (photon counts too: a blurred photo's noise level is measured on it)"
                    if others else ""))
    if args.blurred and not args.kernel:
        raise InputError(f"{given('blurred', alternative=False)} needs --kernel SPEC (gaussian:WIDTH:SIGMA or a file)")
    if not any(getattr(args, name, None) for name in KINDS):
        raise InputError("give at least one of " + ", ".join(f"--{name}" for name in KINDS))


def check_backend_options(args: argparse.Namespace) -> None:
    """The options of where fits run (``--backend``, ``--ray-address``, ``--workers``,
    ``--device``) agree with each other (``linr batch`` and ``linr restore``)."""
    if args.ray_address is not None and args.backend != "ray":
        raise InputError("--ray-address needs --backend ray")
    if args.backend == "ray" and args.device not in ("auto", "cpu", "cuda"):
        raise InputError(f"--device {args.device} with Ray: use auto, cpu or cuda (Ray assigns the GPUs)")
    if args.backend == "ray" and args.workers is not None:
        raise InputError("--workers applies to the local backend; Ray sizes itself by the cluster")


def model_config(args: argparse.Namespace, preset: str) -> Any:
    import dataclasses

    from .tasks import DEFAULT_PRESET, PRESETS

    preset = DEFAULT_PRESET if preset is None else preset
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    base = PRESETS[preset].model
    name = args.model if args.model is not None else base.name
    if args.omega0 is not None and name not in ("siren", "finer"):
        raise InputError(f"--omega0 applies to the siren and finer models only, not {name!r}")
    changes = {}
    if args.model is not None:  # an unknown name: ModelConfig's one-line error
        changes["name"] = args.model
        if args.model == "relu_pe":  # its octaves from the image, not the count the preset's model holds
            changes["pe_frequencies"] = None
    for field_name, value in (("width", args.width), ("depth", args.depth), ("omega_0", args.omega0)):
        if value is not None:
            changes[field_name] = value
    if not changes:
        return None  # the preset's own choice (which may depend on the observation kind)
    return dataclasses.replace(base, **changes)


def load_observations(args: argparse.Namespace, notes: list[str] | None = None
                      ) -> tuple[list[Any], list[Any], list[str]]:
    """:func:`linr.scene.load_scene` for the files and options named on a command line."""
    from .kinds import KINDS
    from .scene import load_scene

    files = {name: getattr(args, name, None) for name in KINDS}
    options = {opt.dest: getattr(args, opt.dest, None) for kind in KINDS.values() for opt in kind.options}
    return load_scene(files, options, weights=dict(getattr(args, "weight", None) or []), notes=notes,
                      value_range=getattr(args, "range", None))


def value_range_option(text: str) -> Any:
    """``--range``: ``auto`` or ``LO:HI`` in the inputs' units (:func:`linr.images.parse_value_range`)."""
    from .images import parse_value_range

    try:
        return parse_value_range(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def size_option(text: str) -> tuple[int, int]:
    """``WxH`` in pixels -> (height, width)."""
    width, sep, height = text.lower().partition("x")
    try:
        if not sep:
            raise ValueError
        w, h = int(width), int(height)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT in pixels, e.g. 1024x768, got {text!r}") from None
    if w < 1 or h < 1:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT of at least 1x1, got {text!r}")
    return h, w
