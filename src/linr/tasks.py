"""Tasks and presets: build observations by kind, resolve a preset, restore.

>>> import linr
>>> result = linr.restore([linr.noisy(y)], preset="paper")          # doctest: +SKIP
>>> result = linr.restore([linr.noisy(y1), linr.lowres(y2, 4)])     # joint, doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .engine import format_duration
from .ensemble import MAX_MEMBERS, fit_ensemble, member_rule
from .errors import InputError
from .fit import FitConfig, FitResult, Observation, fit, fit_many
from .defects import Defects, defects_of, restored_scale, without_defects
from .headroom import censored_at_white, headroom_for, lifted, lowered, saturated_pixels
from .kinds import KINDS as KIND_REGISTRY
from .kinds import blurred, lowres, masked, noisy, parse_kernel
from .models import ModelConfig
from .noise import LEVELS_EQUAL_WITHIN, MIN_MEASURED_SIGMA, MIN_SIDE, estimate_noise_sigma
from .operators import Blur, Downsample, Identity, LeftOut, Mask, inner_operator
from .problem import (build_prior, clean_shape, measures_gaussian_noise, noise_level_known, prior_noise_inputs,
                      resolve_device)
from .priors import NO_PRIOR, check_prior_spec, weight_is_auto
from . import progress as progress_of_work
from .refine import (MIN_REFINE_SIDE, NO_REFINE, REFINERS, GroupedFill, check_refine_spec, masked_beside_noisy,
                     refine_image, refine_input)
from .registration import register as register_observations
from .registration import registration_report
from .stabilise import NoiseRoute, aligned_burst, restore_route, stabilised, stabilised_reference, unstabilised
from .stopping import AUTO_BLENDED, AUTO_NOISY, AUTO_NOISY_MODEL, Discrepancy, HoldOut, StopRule, SurePick, holdout_rule, parse_stop
from .sure import noisy_enough, pick_by_sure, up_to_pixels, why_not
from .tiling import TileGrid, TileSetting, fit_tiled, grid_for, parse_tile, tiled_held_out

__all__ = [
    "plan_restore",
    "RestorePlan",
    "Preset",
    "PRESETS",
    "noisy",
    "retry_records",
    "lowres",
    "masked",
    "blurred",
    "parse_kernel",
    "restore",
    "restore_many",
    "restore_cost",
    "resolve",
    "resolve_stop",
    "plain_inpainting",
    "INPAINT_BLEND_UP_TO",
    "plain_super_resolution",
    "sr_refine_for",
    "DEFAULT_SR_REFINE",
    "DEFAULT_SR_X4_REFINE",
    "DEFAULT_SR_EXAMPLES_REFINE",
    "SR_EXAMPLES_FACTORS",
    "plain_deblurring",
    "open_blur_boundary",
    "free_edges_measured",
    "noisy_with_blurred",
    "noisy_blurred_with_views",
    "DEFAULT_PAIR_REFINE",
    "DEFAULT_OPEN_BOUNDARY",
    "DEFAULT_FREE_BLUR_STEPS",
    "DEFAULT_FREE_BLUR_SCHEDULE",
    "DEFAULT_DEBLUR_REFINE",
    "DEFAULT_INPAINT_MODEL",
    "DEFAULT_INPAINT_PILOT_MODEL",
    "DEFAULT_SR_MODEL",
    "narrow_super_resolution",
    "SR_NARROW_ABOVE",
    "SR_NARROW_FACTORS",
    "INPAINT_PILOT_MISSING_UP_TO",
    "INPAINT_PILOT_ABOVE",
    "inpainting_pilot",
    "default_model",
    "SR_REFINE_UP_TO",
    "default_refine",
    "tile_grid",
    "auto_whole_up_to",
    "DENOISE_WHOLE_UP_TO",
    "pilot_fit",
    "measured_noise",
    "describe_weights",
]

KINDS = KIND_REGISTRY
"""Names of the registered observation kinds (:data:`linr.kinds.KINDS`)."""


TILE_SIZE = 256
TILE_OVERLAP = 32
TILE_WHOLE_UP_TO = 1024
# What the measurements so far support (BENCHMARKS.md, "Tiles", `linr bench tiles`): on a 256 px
# photo, tiles of 96-128 px lost 0.7-1.5 dB to the whole-image fit, and tiles add the overlap's
# pixels to every step of a fixed-step fit (SR, inpainting), so images of the paper's sizes
# (up to 768 px) stay whole; above 1024 px a whole fit takes hours on a CPU and one network has
# too few parameters per pixel, and tiles of 256 px are the size at which whole fits are known
# to be good (the paper's own images are 256-512 px).

DENOISE_WHOLE_UP_TO = 384
"""``tile='auto'`` under the defaults restores an image whose fit is the defaults' pilot
(:func:`pilot_fit`: one noisy photo refined after the fit, no network, stop rule or model to
keep named, no ensemble) whole only up to this many px a side (everything else:
:data:`TILE_WHOLE_UP_TO`). The pilot is a narrow network (:data:`DEFAULT_PILOT_MODEL`) whose stop
comes later the larger the image: about step 900 at 256 px, 1345 at 288 and at the 2000-step
budget at 512 (peppers, sigma 25), where the whole fit was still improving; in 2x2 tiles of 272 px the same 512 px photo came out 0.22 dB better in a third
of the time (BENCHMARKS.md, "#14 and #15: whole 512-px photos"). Between 288 and 512 px nothing
was measured: 384 is where the stop step, growing as measured, would reach the budget. (All at
the pilot's learning rate of then, the paper's 1e-4. With :data:`DEFAULT_PILOT_LR` at 1e-3 the
whole fit of that 512 px photo stopped after 320 steps and the tiles were still 0.11 dB better
and 1.45x faster; between 288 and 512 px nothing was measured again: 384 is kept.)"""

DENOISE_TILE_SIZE = 128
"""The tile side of the defaults' pilot fit in tiles (``tile='auto'`` above
:data:`DENOISE_WHOLE_UP_TO` px; overlap :data:`TILE_OVERLAP`), since the forty-sixth session
(:data:`TILE_SIZE` before). Each tile's pilot stops sooner the smaller the tile (63-65 steps at
128 px against 150-154 at 272 px on the set9 tune photos), so the overlap's extra pixels cost less
than the steps saved: on the whole set9 tune photos (sigma 25, colour) the refined image came out
+0.29 to +0.56 dB (mean +0.39) over tiles of 256 in 0.61-0.81x the CPU time; on the report photos
and held-out baby -0.14 to +0.13 (mean -0.01) in 0.80-0.91x (BENCHMARKS.md, '#14 the pilot's
tiles of 128 px'). Level where it was not chosen, and faster: a 512-px colour photo restored in
56.0-61.2 s (three runs) on the idle 2-core machine with two tile workers."""


@dataclass(frozen=True)
class Preset:
    """Named settings; explicit arguments to :func:`restore` override them."""

    name: str
    description: str
    steps: dict[str, int]
    """Steps per observation kind; a joint fit uses the largest of its kinds."""
    lr: float = 1e-4
    joint_noisy_weight: float = 0.1
    """Weight of an observation that carries noise in a joint fit (1.0 when it is alone). Every
    frame of a burst gets it: N noisy frames alone share one factor, which changes nothing
    (Adam's steps do not depend on the loss's scale; tests/test_bursts.py checks it); beside
    other kinds, N noisy frames weigh 0.1 N together, as the log-likelihoods of independent
    frames add. Under a preset it is per kind; with no preset named, frames of measured
    different noise levels share it by inverse variance (:func:`measured_noise`). ``weight=``
    (``--weight``, every frame of a kind) overrides both."""
    model: ModelConfig = field(default_factory=ModelConfig)
    schedule: str = "constant"
    """Learning-rate schedule (see :class:`~linr.fit.FitConfig`)."""
    batch_pixels: int | None = None
    """Random pixels per step for pixel-wise tasks (None: all; see :class:`~linr.fit.FitConfig`)."""
    kind_models: dict[str, ModelConfig] = field(default_factory=dict)
    """Architecture per observation kind when all observations are of that kind (else ``model``)."""
    precision: str = "float32"
    """Matmul precision of the hidden layers (see :class:`~linr.fit.FitConfig`), or 'auto': the
    reduced precision the device runs fast (:func:`linr.engine.fast_precision`), else float32."""
    stop: str = "auto"
    """'auto' (an automatic stop rule when any observation is noisy, or before a blend chosen on
    held-out pixels: :func:`resolve_stop`), 'fixed', or a rule spec (see
    :func:`linr.stopping.parse_stop`)."""
    blur_boundary: str = "reflect"
    """Boundary of a blur whose boundary the user left open (see :func:`blurred`)."""
    tile_size: int = TILE_SIZE
    """Tiles of this many pixels (see :mod:`linr.tiling`) when tiling is asked for or automatic."""
    tile_overlap: int = TILE_OVERLAP
    """Pixels by which neighbouring tiles overlap (widened where the operators reach further)."""
    tile_whole_up_to: int | None = TILE_WHOLE_UP_TO
    """``tile='auto'`` restores images whose sides are all at most this whole, larger ones in
    tiles; None: 'auto' never tiles (the paper preset: its mathematics is one fit per image)."""


DEFAULT_PRESET = "paper"
"""Settings used when no preset is named; unlike ``preset="paper"`` they stop automatically and
a blur's boundary, unless chosen, is not circular (the paper's circular blur fits only images that
were blurred circularly: on a real photo it wraps each border around to the opposite one): free
edges for a blurred photo restored alone (whole or in tiles) or beside one noisy photo of it, else
'reflect' (:func:`open_blur_boundary`)."""

PRESETS: dict[str, Preset] = {
    "paper": Preset(
        name="paper",
        description="the LINR paper's settings: SIREN 7x256, omega_0 30, Adam 1e-4, 500 steps "
        "(4000 for deblurring), noisy weight 0.1 in joint fits",
        steps={"noisy": 500, "lowres": 500, "masked": 500, "blurred": 4000, "observation": 500},
        stop="fixed",
        blur_boundary="circular",
        tile_whole_up_to=None,
    ),
    # Chosen by time to the paper preset's PSNR on every test image (BENCHMARKS.md, "Speed";
    # `linr bench presets`): a higher learning rate (3e-4 to 1e-3, with or without cosine decay)
    # made every task worse; what pays is stopping denoising near its PSNR peak with a 7x128
    # SIREN (4x fewer FLOPs per step; 8/8 set9 images above the paper preset), and, for SR and
    # inpainting, the paper's network on the fast engine: SR peaks by step 64-198 on set5 at
    # 128 px and then sags, so 300 steps end above the paper's 500 on every image (a 7x128
    # SIREN was 5.6x faster but 1.4 dB under on baby and stayed 0.7 dB under at 1000 steps);
    # inpainting keeps the paper's 500 steps (400 missed kodim12 by 0.01 dB), its speed comes
    # from training on observed pixels only.
    "fast": Preset(
        name="fast",
        description="time to the paper's PSNR on CPU: SIREN 7x128 for noisy (automatic stop, "
        "budget 500 steps); the paper's 7x256 for lowres (300 steps) and masked (500 steps, on "
        "observed pixels); Adam 1e-4; joint and deblurring fits use 7x128, joint ones not benchmarked "
        "(deblurring at full size: 5.3 dB under the paper's LINR and 3.2 under Wiener on leaves; use "
        "the default for deblurring)",
        # noisy: a budget, not a count: the hold-out rule stops near the PSNR peak, whose step
        # grows with the image size (about 40 at 64 px, 150 at 256 px)
        steps={"noisy": 500, "lowres": 300, "masked": 500, "blurred": 4000, "observation": 300},
        model=ModelConfig(width=128),
        kind_models={"masked": ModelConfig(width=256), "lowres": ModelConfig(width=256)},
    ),
}


def measured_noise(observations: Sequence[Observation], *, preset: str | None = None) -> list[float | None]:
    """Per observation: the Gaussian noise level (std, 0-255 scale) measured on it when its
    weight follows that level, else None. Only the defaults (no ``preset`` named) weigh by
    measured noise; the presets keep the paper's weight per kind.

    Frames that carry noise, are compared by squared error and have no weight set are measured
    (:func:`linr.noise.estimate_noise_sigma`); when there are two or more and their levels
    differ by more than :data:`linr.noise.LEVELS_EQUAL_WITHIN`, :func:`resolve` gives each the joint noisy
    weight times its inverse variance over the frames' mean inverse variance: the maximum-
    likelihood weighting of Gaussian frames, equal to the paper's weights when the levels are
    equal, and still summing to the paper's total. Photon-noise frames are not measured: their
    Poisson likelihood already weighs each frame by its own photon level.
    """
    candidates = [k for k, o in enumerate(observations) if measures_gaussian_noise(o) and o.weight is None]
    if preset is not None or len(candidates) < 2:
        return [None] * len(observations)
    sigmas = {k: max(estimate_noise_sigma(observations[k].image) * 255.0, MIN_MEASURED_SIGMA)
              for k in candidates}
    if max(sigmas.values()) <= LEVELS_EQUAL_WITHIN * min(sigmas.values()):
        return [None] * len(observations)
    return [sigmas.get(k) for k in range(len(observations))]


def check_observations(observations: Any) -> list[Observation]:
    """The observations of one scene as a list, or a one-line error for what is not: an image
    passed bare (an array: wrap it in :func:`noisy`, :func:`lowres`, :func:`masked` or
    :func:`blurred`), anything else, none at all, or every one weighted 0 (nothing to fit)."""
    if isinstance(observations, Observation):
        return [observations]
    if isinstance(observations, np.ndarray) or not isinstance(observations, (list, tuple)):
        what = "an array" if isinstance(observations, np.ndarray) else type(observations).__name__
        raise InputError(f"restore takes a list of observations such as [linr.noisy(image)], got {what}")
    for k, o in enumerate(observations):
        if not isinstance(o, Observation):
            hint = " (wrap the image: linr.noisy(image), linr.lowres(image, factor), ...)" \
                if isinstance(o, np.ndarray) else ""
            raise InputError(f"observation {k} is {type(o).__name__}, not an observation{hint}")
    if observations and all(o.weight == 0 for o in observations):
        raise InputError("every observation has weight 0: nothing to fit")
    return list(observations)


def resolve(
    observations: Sequence[Observation],
    *,
    preset: str | None = None,
    steps: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    model: ModelConfig | None = None,
    progress: bool | None = None,
    precision: str | None = None,
    prior: str | None = None,
    refine: str | None = None,
    keep_model: bool = False,
    stop: Any = None,
    register: str | None = None,
) -> tuple[list[Observation], FitConfig]:
    """Apply a preset (None: :data:`DEFAULT_PRESET`): fill unset weights and blur boundaries
    and return the observations and the fit settings.

    ``refine``, ``keep_model`` and ``stop`` as given to :func:`restore`: the fit of a plain
    denoising (:func:`plain_denoising`: no preset) with no model named, the automatic stop
    (``stop`` None or 'auto') and an image that will be refined (:func:`resolve_refine`) is a
    pilot and gets :data:`DEFAULT_PILOT_MODEL` with a budget of :data:`DEFAULT_PILOT_STEPS` steps
    and the learning rate :data:`DEFAULT_PILOT_LR`, unless ``steps`` or ``lr`` say otherwise; with
    no ``lr`` named, a pilot that predicts its held-out pixels clearly worse than their neighbours' mean
    is fitted again at the paper's rate, 1e-4 (:attr:`FitConfig.retry_lr`; see :data:`DEFAULT_PILOT_LR`).
    Another stop rule keeps the paper's network, steps and learning rate (the pilot was measured
    with the automatic stop only; a hold-out spec with an average, such as the automatic rule
    written out, counts as it: :func:`pilot_stop`). Likewise the fit of a plain inpainting above
    :data:`INPAINT_PILOT_ABOVE` px with at most :data:`INPAINT_PILOT_MISSING_UP_TO` of its pixels missing, the automatic stop and
    ``grouped-fill`` to follow (:func:`inpainting_pilot`) gets :data:`DEFAULT_INPAINT_PILOT_MODEL`,
    :data:`DEFAULT_INPAINT_PILOT_STEPS` steps and :data:`DEFAULT_INPAINT_PILOT_LR` unless
    ``steps`` or ``lr`` say otherwise; another plain inpainting gets :data:`DEFAULT_INPAINT_MODEL`.

    With no preset named, a blur whose boundary was left open gets free edges when it is restored
    alone, whole or in tiles, or beside one noisy photo of it (:data:`DEFAULT_OPEN_BOUNDARY`; its fit :data:`DEFAULT_FREE_BLUR_STEPS` steps on a
    :data:`DEFAULT_FREE_BLUR_SCHEDULE` rate, unless ``steps`` says otherwise), else 'reflect',
    noisy frames of measured different noise levels share the joint noisy weight by inverse
    variance (:func:`measured_noise`), and one noisy photo gets the ``tv:auto`` prior (but a colour
    photo above :data:`DENOISE_PRIOR_UP_TO` px) unless ``prior`` says otherwise
    (:func:`default_prior`): with automatic stopping, the ways the
    defaults differ from ``preset="paper"``.
    """
    observations = check_observations(observations)
    if model is not None and not isinstance(model, ModelConfig):
        raise InputError(f"model must be a linr.ModelConfig (such as ModelConfig(name='siren', width=64)), "
                         f"got {model!r}")
    wanted = open_blur_boundary(preset, free=free_edges_measured(observations, register=register))
    sigmas = measured_noise(observations, preset=preset)
    if prior is None:
        prior = default_prior(observations, preset=preset)
    asked_preset, preset = preset, DEFAULT_PRESET if preset is None else preset
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose from {', '.join(PRESETS)}")
    if not observations:
        raise InputError("nothing to restore: give at least one observation")
    p = PRESETS[preset]
    joint = len(observations) > 1
    inverse = [1.0 / s**2 for s in sigmas if s is not None]
    resolved = []
    for obs, sigma in zip(observations, sigmas):
        weight = obs.weight
        if weight is None:
            weight = p.joint_noisy_weight if (joint and obs.carries_noise) else 1.0
            if sigma is not None:
                weight *= (1.0 / sigma**2) / (sum(inverse) / len(inverse))
        operator, inner = obs.operator, inner_operator(obs.operator)  # a photo's transparent pixels aside
        if isinstance(inner, Blur) and not inner.boundary_chosen and inner.boundary != wanted:
            blur = inner.with_boundary(wanted, chosen=False)
            operator = operator.with_inner(blur) if isinstance(operator, LeftOut) else blur
        resolved.append(dataclasses.replace(obs, weight=weight, operator=operator))
    pilot = pilot_fit(observations, preset=asked_preset, model=model, stop=stop, refine=refine, keep_model=keep_model)
    inpaint_pilot = inpainting_pilot(observations, preset=asked_preset, model=model, stop=stop, refine=refine,
                                     keep_model=keep_model)
    sr_narrow = narrow_super_resolution(observations, preset=asked_preset, model=model, stop=stop, refine=refine,
                                        keep_model=keep_model)
    free = free_blur_fit(resolved, preset=asked_preset)
    if steps is None:
        steps = DEFAULT_PILOT_STEPS if pilot else DEFAULT_INPAINT_PILOT_STEPS if inpaint_pilot else \
            DEFAULT_FREE_BLUR_STEPS if free else max(p.steps.get(o.kind, p.steps["observation"]) for o in observations)
    config = FitConfig(
        steps=steps,
        lr=(DEFAULT_PILOT_LR if pilot else DEFAULT_INPAINT_PILOT_LR if inpaint_pilot else p.lr) if lr is None else lr,
        retry_lr=p.lr if pilot and lr is None and DEFAULT_PILOT_LR != p.lr else None,
        seed=seed,
        device=device,
        model=model or default_model(observations, preset=asked_preset, pilot=pilot, inpaint_pilot=inpaint_pilot,
                                     sr_narrow=sr_narrow)
        or _preset_model(p, observations),
        progress=progress,
        schedule=DEFAULT_FREE_BLUR_SCHEDULE if free else p.schedule,
        batch_pixels=p.batch_pixels,
        precision=pilot_precision(device) if pilot and precision is None else
        _precision(p.precision if precision is None else precision, device),
        prior=resolve_prior(prior, resolved),
    )
    return resolved, config


DEFAULT_DENOISE_PRIOR = "tv:auto"
"""The image prior of the defaults (no preset named) when one noisy image compared by squared
error is restored (Gaussian denoising), except a colour photo larger than
:data:`DENOISE_PRIOR_UP_TO` px (:func:`default_prior`): total variation weighted by the measured
noise level. Measured in BENCHMARKS.md ('#15 quality: total variation weighted by the measured
noise'): the weight per unit of noise chosen on four set9 tune crops (sigma 25 and 50), then ahead
of no prior on 128-px crops it was not chosen on (set9 report images at sigma 15, 25, 50, RGB and
grey; four held-out set5 images). Joint fits, bursts, photon noise and the other kinds keep no
prior by default (not measured)."""

DENOISE_PRIOR_UP_TO = 128
"""The side (px, the longer one) up to which the defaults' denoising of one colour (RGB) photo adds
:data:`DEFAULT_DENOISE_PRIOR` (:func:`default_prior`); a larger colour photo, whole or in tiles,
is fitted without a prior since the forty-fifth session (grey photos and other channel counts keep
it at any size). With the refinement after the pilot fit, the prior's gain on colour photos fell
with the size: at 128 px `tv:auto` stayed ahead (+0.04 / +0.09 dB), at 256 px and whole it was
about level (all twelve 256-px crops -0.04; whole set9 photos at sigma 25 -0.10 on the tune
images, -0.01 on the report images; whole held-out set5 photos +0.00 / +0.03 / +0.04 at sigma 15
/ 25 / 50) while the restore without it took 0.50-0.71x the CPU time on the set9 photos and
0.51-1.08x (median 0.69) on the set5 ones (the automatic stop fires sooner). On grey whole
held-out set5 photos it kept +0.09 (sigma 25), so grey keeps it. BENCHMARKS.md, '#15 and #14: no
prior for colour photos above 128 px'."""


def default_prior_rule() -> str:
    """The defaults' denoising prior as a rule, for benchmark row keys and batch manifests:
    ``tv:auto-except-rgb-above128`` (:data:`DEFAULT_DENOISE_PRIOR` but for colour photos above
    :data:`DENOISE_PRIOR_UP_TO` px)."""
    return f"{DEFAULT_DENOISE_PRIOR}-except-rgb-above{DENOISE_PRIOR_UP_TO}"


def plain_denoising(observations: Sequence[Observation], *, preset: str | None) -> bool:
    """Whether a restore is the defaults' Gaussian denoising of one photo: no preset named, one
    noisy observation with the squared-error data term and no operator, large enough to measure
    its noise. It gets :data:`DEFAULT_DENOISE_REFINE` and :data:`DEFAULT_DENOISE_PRIOR` (but a colour
    photo above :data:`DENOISE_PRIOR_UP_TO` px: :func:`default_prior`)."""
    if preset is not None or len(observations) != 1:
        return False
    (obs,) = observations
    return measures_gaussian_noise(obs) and isinstance(obs.operator, Identity) and min(obs.shape) >= MIN_SIDE


def default_prior(observations: Sequence[Observation], *, preset: str | None) -> str | None:
    """The prior a restore gets when none is asked for: :data:`DEFAULT_DENOISE_PRIOR` for
    :func:`plain_denoising`, but None for a colour (3-channel) photo above
    :data:`DENOISE_PRIOR_UP_TO` px a side, and None otherwise (the presets keep the paper's fit)."""
    if not plain_denoising(observations, preset=preset):
        return None
    (obs,) = observations
    colour_above = obs.channels == 3 and max(obs.shape) > DENOISE_PRIOR_UP_TO
    return None if colour_above else DEFAULT_DENOISE_PRIOR


DEFAULT_DENOISE_REFINE = "grouped"
"""The refinement of the defaults' Gaussian denoising of one photo (:func:`plain_denoising`):
the noisy photo filtered once more with the fit's image as the pilot (:mod:`linr.refine`):
groups of similar patches filtered together (BM3D's second step; ``wiener``, the per-patch
filter, until the sixteenth session). Measured in BENCHMARKS.md ('#15 denoising: the grouped
refinement is the default'): its settings chosen on four set9 tune images, then ahead of
``wiener`` on every whole image it was not chosen on (set9 report images, held-out set5 images
at sigma 15, 25 and 50, RGB and grey). Not with a model to keep (the model renders the fit, not
the refined image)."""


DEFAULT_PILOT_MODEL = ModelConfig(width=64)
"""The network of a defaults' fit that is refined (:func:`resolve` with a refinement, no preset
and no model named): a SIREN 7x64 (the paper's is 7x256). A refinement needs a pilot, not the
best fit: on 128-px crops the 7x64 fit's refined image equalled or beat the 7x256 fit's on
average, in about half the time (median 1.7x less; BENCHMARKS.md, '#15 and #14: a narrow
network as the pilot'); alone, the narrow fit is not better, so without a refinement the
paper's network stays."""

DEFAULT_PILOT_STEPS = 2000
"""The step budget of a pilot fit (:data:`DEFAULT_PILOT_MODEL`): a narrow network learns more
slowly: at the paper's learning rate its stop came after 190-800 steps on 128-px crops, 900 on a
256 px photo and 1345 on a 288 px one (a budget of 500 cut bird's 128-px crop short). At
:data:`DEFAULT_PILOT_LR` (since the seventeenth session) it came after 105-415 steps per image or
tile (320 on a whole 512 px photo): the budget is far from binding, kept as measured."""

DEFAULT_PILOT_PRECISION = "bf16"
"""The hidden layers' products of a pilot fit (:data:`DEFAULT_PILOT_MODEL`) where the processor
multiplies bf16 in hardware (:func:`linr.engine.fast_precision` of the CPU; not the paper's
mathematics; since the forty-sixth session): bf16-rounded operands, float32 accumulation (with
AVX512-BF16 and no AMX each product's result rounded to bf16 too: :class:`linr.engine._HiddenMatmul`).
A pilot feeds a refinement that filters the noisy photo itself; on whole held-out Set5 photos
(sigma 25, colour and grey) the refined image came out as with float32 products (+0.006 dB on
average; BENCHMARKS.md, '#14 the pilot's products in bf16'), each step 1.24x faster here (0.191
against 0.237 s, chunks of 2**17; 0.155 against 0.205 in chunks of 16384). Measured on this
project's AMD EPYC (AVX512-BF16) only; AMX CPUs, whose products keep float32 results, take it too. Elsewhere (other CPUs, GPUs:
not measured), and for a pilot whose stop the SURE pick chooses (:func:`sure_in_float32`),
float32: :func:`pilot_precision`."""

PILOT_USUAL_STOPS = (105, 415)
"""The steps after which the pilot at :data:`DEFAULT_PILOT_LR` stopped, per image or tile, on the
benchmark photos (:data:`DEFAULT_PILOT_STEPS`): what :func:`restore_cost` scales its estimate by."""

PILOT_TILE_USUAL_STOPS = (70, 130)
"""The steps a tile of the pilot's own size (:data:`DENOISE_TILE_SIZE` px, up to the 1.125 times
an image's equal tiles may grow) ran before its stop ended it: 70-125 on the 349 tiles of
kodim01 mirror-tiled to 512 and 2048 px, and on the 1369 of it at 4096 px (sigma 25;
BENCHMARKS.md, '#14 the grouped refinement 2.1x faster'), at most 100-130 per photo on the whole
set9 photos (their rows in
``benchmarks/tile_size_*.jsonl``): what :func:`restore_cost` scales a tiled pilot's estimate by
(:data:`PILOT_USUAL_STOPS` before the forty-seventh session, which runs long for these tiles)."""

PAIR_USUAL_STOPS = (100, 570)
"""The steps the defaults' joint fit of a noisy and a blurred photo (:func:`noisy_with_blurred`; its
budget :data:`DEFAULT_FREE_BLUR_STEPS`) ran before the noisy photo's hold-out stop ended it, on the
96-px crops of BENCHMARKS.md ('#15 a short and a long exposure': 140-320 with a sigma-25 short
exposure on eleven crops, 100-135 with one of 20 or 100 photons on ten, 320-565 with one of sigma
10 on three: the cleaner the short exposure, the later): what :func:`restore_cost` scales its
estimate by."""

DEFAULT_PILOT_LR = 1e-3
"""The learning rate of a pilot fit (:data:`DEFAULT_PILOT_MODEL`; the paper's, kept by every other
fit, is 1e-4), since the seventeenth session: the pilot reaches its stop in about a quarter of
the steps (275-310 per image or tile against 1105-1365 on the whole set9 tune images), and the
refined image, which is what the default returns, loses little (BENCHMARKS.md, '#14 and #15: the
pilot at a learning rate of 1e-3'). Chosen on the set9 tune images (1e-3 against 3e-4 on their
256-px crops: 0.05 dB under on average at half the time), reported on images it was not chosen on.
Three times this rate (3e-3) failed on the tune images: the fit settled on a blur of 12-16 dB,
finite, so no :class:`~linr.errors.DivergenceError`. As insurance, since the eighteenth session a
pilot at this rate whose returned image predicts its held-out pixels more than 1.25x worse than
the mean of their four neighbours is fitted again at the paper's rate and the better of the two
kept (:attr:`linr.config.FitConfig.retry_lr`, :data:`linr.fit.RETRY_ABOVE_NEIGHBOURS`)."""


def pilot_tag(*, own_lr: bool = False, own_precision: bool = False) -> str:
    """``@pilotDxW`` (with ``-lrLR-retry`` when the pilot's learning rate is not the paper's, and a
    failed fit is fitted again at the paper's: :attr:`FitConfig.retry_lr`; then ``-bf16`` where a
    pilot on this machine's CPU multiplies in bf16: :func:`pilot_precision`): names the
    defaults' pilot fit in benchmark row keys (fitted on the CPU), so that rows of an earlier pilot
    are not taken for today's. ``own_lr``: the fit names its own learning rate (no ``-lr...``
    part: it is not the pilot's, and no failed fit is fitted again); ``own_precision``: its own
    precision (no precision part)."""
    lr = "" if own_lr or DEFAULT_PILOT_LR == PRESETS[DEFAULT_PRESET].lr else f"-lr{DEFAULT_PILOT_LR:g}-retry"
    on_cpu = pilot_precision("cpu")
    precision = "" if own_precision or on_cpu == "float32" else f"-{on_cpu}"
    return f"@pilot{DEFAULT_PILOT_MODEL.depth}x{DEFAULT_PILOT_MODEL.width}{lr}{precision}"


def denoise_defaults_tag(*, pilot: bool) -> str:
    """What the defaults do to one noisy photo, for benchmark row keys: the prior, the refinement
    and, for a fit that is the defaults' pilot (no network named), :func:`pilot_tag`."""
    return f"{default_prior_rule()}-{DEFAULT_DENOISE_REFINE}{pilot_tag() if pilot else ''}"


def fits_a_pilot(*, model: Any, stop: Any, plain: bool, refined: bool) -> bool:
    """Whether a fit is the defaults' pilot (:data:`DEFAULT_PILOT_MODEL`, :data:`DEFAULT_PILOT_STEPS`):
    no network named, the automatic stop or a spec of its kind (:func:`pilot_stop`), a
    :func:`plain_denoising` and a refinement to follow. The one rule :func:`resolve` and a batch's
    manifest (which decides from the command-line options before any image is read) both apply."""
    return model is None and pilot_stop(stop) and plain and refined


def pilot_stop(stop: Any) -> bool:
    """Whether a fit under ``stop`` may be the pilot: the automatic stop (None or 'auto'), or a spec
    of the hold-out rule that returns an average of iterates, as the automatic one does (such as
    :data:`AUTO_NOISY` written out, or with ``at``: ``holdout:0.05:40:window40:0.9``; ``sure``), which the
    pilot was measured with. Other rules (and rule objects) keep the paper's network."""
    if stop in (None, "auto"):
        return True
    if not isinstance(stop, str):
        return False
    try:
        rule = parse_stop(stop)
    except ValueError:
        return False  # refused with its own message when the rule is resolved
    return type(rule) in (HoldOut, SurePick) and rule.average is not None


INPAINT_BLEND_UP_TO = GroupedFill.BIHARMONIC_UP_TO
"""Kept for code that imported it: from the fourteenth to the twenty-first session the size (px a
side) up to which the defaults refined an inpainting; since the twenty-second they refine one at
any size, and this is the size up to which the fill always starts from the biharmonic blend
(since the sixty-first session larger images do too where few pixels are missing:
:attr:`linr.refine.GroupedFill.BIHARMONIC_MISSING_UP_TO`)."""

DEFAULT_INPAINT_REFINE = "grouped-fill"
"""The refinement of the defaults' inpainting of one photo (:func:`plain_inpainting`):
since the twenty-first session ``grouped-fill`` (:class:`linr.refine.GroupedFill`: the missing
pixels filled by repeated grouped filtering from the fit's image blended with scikit-image's
biharmonic inpainting, the observed pixels kept, then weighed against the fit and the biharmonic
inpainting on pixels the fit held out; its stop rule then is :data:`linr.stopping.AUTO_BLENDED`);
from the fourteenth to the twentieth session ``biharmonic``, the blend alone (up to 768 px).
Measured in BENCHMARKS.md ('#15 inpainting and SR'). Since the twenty-second session at any size
and in tiles too: above :attr:`linr.refine.GroupedFill.BIHARMONIC_UP_TO` px, with more than
:attr:`~linr.refine.GroupedFill.BIHARMONIC_MISSING_UP_TO` pixels missing, the fill starts from
the fit's image alone (and a blend weighs the fit and the fill only), and a tiled fit (each tile
fitted for fixed steps: no held-out pixels) is filled with no blend after it, from the tiles'
image (with more missing) or its half-and-half blend with biharmonic inpainting.
BENCHMARKS.md, '#14 and #15: inpainting at any size', 'Inpainting at real sizes'. Not with a
model to keep."""


DEFAULT_INPAINT_MODEL = ModelConfig(omega_0=15.0)
"""The network of the defaults' inpainting of one photo (:func:`plain_inpainting`, no network
named): since the twenty-third session the paper's SIREN 7x256 at half the paper's omega_0, 15
(first and hidden layers: a lower bandwidth, and, since each hidden layer's weights are scaled
by it, smaller steps, so the automatic stop comes later). It interpolates 10% of the pixels
better: on the set9 tune images (four 128-px crops, the whole house and peppers) ahead of the
paper's 30 on every one, and of 20 on average. Reported on Table 3's images, which it was not
chosen on: 27.68 dB against 27.47 at 30 (+0.22), ahead on the four of 256-344 px, behind on the
two of 512 px (-0.32, -0.10), whose fits were still improving at the 500-step budget
(BENCHMARKS.md, '#15 inpainting: omega_0 15'). omega_0 10 was ahead of 15 on the crops and the
whole house, but on the whole peppers (512 px) its fit was still improving at the 500-step
budget and came out below 30 (27.78 dB against 27.97; 15: 28.23): the slower the steps, the
sooner the budget binds on a large image. ``preset='paper'`` and a network named (``model=``, ``--omega0``, ``--width``...)
keep the paper's 30."""


INPAINT_PILOT_MISSING_UP_TO = 0.10
"""The largest share of a photo's pixels missing (in some channel) with which the defaults'
inpainting of a photo above :data:`INPAINT_PILOT_ABOVE` px fits a narrow pilot
(:func:`inpainting_pilot`) instead of :data:`DEFAULT_INPAINT_MODEL` (since the sixty-first
session): the fast engine trains an inpainting on its observed pixels only, so the wide fit costs
most where least is missing (a 1536 x 1024 scan with 2.7% missing in thin scratches: 6.7 hours
estimated on this project's CPU). BENCHMARKS.md, "Inpainting at real sizes"."""

INPAINT_PILOT_ABOVE = TILE_WHOLE_UP_TO
"""The side (px) above which :func:`inpainting_pilot` may apply: where the defaults tile (a photo
restored whole stays with the wide fit). On 128-px crops with thin scratches the pilot was +0.28 dB
over the wide fit on six tune crops but -0.32 on the 13 held-out ones (-3.25 on starfish's and
-2.84 on kodim12's, whose fill started better from the wide fit; +1.35 on vase's), in 38-60 s
against 169-653 s: a trade of quality for hours, made only where the wide fit takes them."""

DEFAULT_INPAINT_PILOT_MODEL = ModelConfig(width=64, omega_0=15.0)
"""The network of :func:`inpainting_pilot`: a SIREN 7x64 at :data:`DEFAULT_INPAINT_MODEL`'s omega_0."""

DEFAULT_INPAINT_PILOT_STEPS = 200
"""The step budget of :func:`inpainting_pilot` (under the blended fit's stop, :data:`AUTO_BLENDED`)."""

DEFAULT_INPAINT_PILOT_LR = 1e-3
"""The learning rate of :func:`inpainting_pilot` (the denoising pilot's, :data:`DEFAULT_PILOT_LR`)."""


def missing_share(observation: Observation) -> float:
    """The share of an observation's pixels its mask leaves out in some channel (0 without a mask)."""
    if not isinstance(observation.operator, Mask):
        return 0.0
    mask = observation.operator.mask.detach().cpu().numpy() > 0.5
    seen = mask.all(0) if mask.ndim == 3 else mask
    return float(1.0 - seen.mean())


def inpainting_pilot(observations: Sequence[Observation], *, preset: str | None, model: Any = None,
                     stop: Any = None, refine: str | None = None, keep_model: bool = False) -> bool:
    """Whether the fit of a restore is the defaults' inpainting pilot (:data:`DEFAULT_INPAINT_PILOT_MODEL`,
    :data:`DEFAULT_INPAINT_PILOT_STEPS`, :data:`DEFAULT_INPAINT_PILOT_LR`): a :func:`plain_inpainting`
    with no network named, the automatic stop, :data:`DEFAULT_INPAINT_REFINE` to follow
    (:func:`resolve_refine`), a side above :data:`INPAINT_PILOT_ABOVE` px and at most
    :data:`INPAINT_PILOT_MISSING_UP_TO` of its pixels missing."""
    if model is not None or stop not in (None, "auto") or not plain_inpainting(observations, preset=preset):
        return False
    if resolve_refine(refine, observations, preset=None, keep_model=keep_model) != DEFAULT_INPAINT_REFINE:
        return False  # measured before grouped-fill only (a biharmonic blend leans on the fit more)
    if max(observations[0].image.shape[:2]) <= INPAINT_PILOT_ABOVE:
        return False
    return missing_share(observations[0]) <= INPAINT_PILOT_MISSING_UP_TO


def default_model(observations: Sequence[Observation], *, preset: str | None, pilot: bool,
                  inpaint_pilot: bool = False, sr_narrow: bool = False) -> ModelConfig | None:
    """The network the defaults choose when none is named (None: the preset's own):
    :data:`DEFAULT_PILOT_MODEL` for a pilot fit (:func:`pilot_fit`, which a named network rules
    out), :data:`DEFAULT_INPAINT_PILOT_MODEL` for an inpainting pilot (:func:`inpainting_pilot`),
    :data:`DEFAULT_SR_MODEL` for a refined super-resolution (:func:`narrow_super_resolution`),
    :data:`DEFAULT_INPAINT_MODEL` for another :func:`plain_inpainting`."""
    if pilot:
        return DEFAULT_PILOT_MODEL
    if inpaint_pilot:
        return DEFAULT_INPAINT_PILOT_MODEL
    if sr_narrow:
        return DEFAULT_SR_MODEL
    return DEFAULT_INPAINT_MODEL if plain_inpainting(observations, preset=preset) else None


DEFAULT_SR_MODEL = ModelConfig(width=128)
"""The network of the defaults' super-resolution of one low-res photo refined after the fit
(:func:`narrow_super_resolution`): a SIREN 7x128 at the paper's omega_0 (30), its rate (1e-4) and
steps (500), a quarter of the paper's 7x256's products per step. Since the sixty-second session:
on 128-px crops at x4, refined, +0.17 dB over the 7x256 on six tune crops and +0.04 on 13 held-out
ones (-0.09 to +0.48), its fit a third of the time (BENCHMARKS.md, "Real sizes: super-resolution
with a narrower network")."""

SR_NARROW_ABOVE = TILE_WHOLE_UP_TO
"""The restored side (px) above which :func:`narrow_super_resolution` applies: where the defaults
tile, each tile of about 280 px (the size of the crops it was measured on, 128 px, and one of 256)
and the paper's network takes hours (a 1536 x 1024 result: 8.1 h estimated on this project's
loaded CPU). On the 128-px crops it was ahead of the paper's network (BENCHMARKS.md), but whole
images up to 1024 px (Table 2's) are not measured with it and keep the paper's."""

SR_NARROW_FACTORS = frozenset({4})
"""The factors at which :func:`narrow_super_resolution` applies: where it was measured (x4)."""


def narrow_super_resolution(observations: Sequence[Observation], *, preset: str | None, model: Any = None,
                            stop: Any = None, refine: str | None = None, keep_model: bool = False) -> bool:
    """Whether the fit of a restore is the defaults' super-resolution with :data:`DEFAULT_SR_MODEL`:
    a :func:`plain_super_resolution` with no network or stop rule named, its default refinement
    (:func:`sr_refine_for`) to follow (:func:`resolve_refine`: measured with it only; without it,
    the fast preset's 7x128 was 1.4 dB under the paper's network on baby), a factor of
    :data:`SR_NARROW_FACTORS` and a restored side above :data:`SR_NARROW_ABOVE` px."""
    if model is not None or stop is not None or not plain_super_resolution(observations, preset=preset):
        return False
    factor = getattr(inner_operator(observations[0].operator), "factor", None)
    if factor not in SR_NARROW_FACTORS:
        return False
    if resolve_refine(refine, observations, preset=None, keep_model=keep_model) != sr_refine_for(factor):
        return False
    return max(clean_shape(observations)) > SR_NARROW_ABOVE


SR_REFINE_UP_TO = None
"""Kept for code that imported it: in the twenty-second session the size (px a side, 768) up to
which the defaults refined a super-resolution restored whole; since the twenty-third they refine
one at any size and in tiles (None: no limit)."""

DEFAULT_SR_REFINE = "grouped-views"
"""The refinement of the defaults' super-resolution of one low-res photo (:func:`plain_super_resolution`)
at the factors not in :data:`SR_EXAMPLES_FACTORS` (there :data:`DEFAULT_SR_EXAMPLES_REFINE`), restored
whole: since the twenty-second session ``grouped-views`` (:class:`linr.refine.GroupedViews`:
the fit's image made to reproduce the low-res photo exactly, then 20 passes of grouped filtering
at a falling noise level, each projected again; the fit's image when the projection cannot meet
the photo). Measured in BENCHMARKS.md ('#15 inpainting and SR'): ahead of the fit on every image
it was tried on, the set9 tune crops and Table 2's five whole images (x4, the ``lanczos2``
downsampler: the one measured). The twenty-second session refined images restored whole up to
768 px only; since the twenty-third, at any size and in tiles (its cost is linear in the pixels,
and on a tiled fit of a tune crop it added +0.67 dB: BENCHMARKS.md, '#14 SR in tiles')."""


DEFAULT_SR_EXAMPLES_REFINE = "grouped-views-examples"
"""The refinement of the defaults' super-resolution of one low-res photo at the factors of
:data:`SR_EXAMPLES_FACTORS`: ``grouped-views-examples`` (:class:`linr.refine.GroupedViewsExamples`:
the mean of the fit's image, its ``grouped-views`` refinement and the photo upscaled by networks
learnt from its own smaller copies in x2 stages, :mod:`linr.internal`, made to reproduce the photo
exactly)."""

DEFAULT_SR_X4_REFINE = DEFAULT_SR_EXAMPLES_REFINE
"""The thirty-ninth session's name of :data:`DEFAULT_SR_EXAMPLES_REFINE` (then the default at x4 alone)."""

SR_EXAMPLES_FACTORS = frozenset({2, 3, 4})
"""The factors at which :data:`DEFAULT_SR_EXAMPLES_REFINE` is the default, each where it was measured
ahead of ``grouped-views`` on the same fits on average on the tune and the report images
(BENCHMARKS.md): x4 since the thirty-ninth session ('#15 SR x4: the examples learnt in x2 stages';
set9 256-px crops, Table 2 whole; behind on one image, baby, -0.07 dB), x2 since the fortieth ('#15
SR x2 and x8'; set9 and Set5 128-px crops, every crop ahead), x3 since the forty-first ('#15 SR x3';
set9 and Set5 129-px crops: +0.06 dB on the tune crops, +0.40 on the report crops, behind on
kodim01 -0.09 and head -0.04). x8 was level on its tune crops (+0.00) and its report crops
(-0.03), and keeps
:data:`DEFAULT_SR_REFINE`, as do the factors not measured."""


def sr_refine_for(factor: int) -> str:
    """The defaults' refinement of one low-res photo downsampled by ``factor``:
    :data:`DEFAULT_SR_EXAMPLES_REFINE` at the factors of :data:`SR_EXAMPLES_FACTORS`, else
    :data:`DEFAULT_SR_REFINE`."""
    return DEFAULT_SR_EXAMPLES_REFINE if factor in SR_EXAMPLES_FACTORS else DEFAULT_SR_REFINE


def plain_super_resolution(observations: Sequence[Observation], *, preset: str | None) -> bool:
    """Whether a restore is the defaults' super-resolution of one photo: no preset named and one
    observation alone, a low-res view without noise by the ``lanczos2`` downsampler (the one
    :data:`DEFAULT_SR_REFINE` was measured with) that the image can be made to reproduce
    (:func:`linr.projection.projectable`)."""
    from .projection import projectable

    if preset is not None or len(observations) != 1:
        return False
    (obs,) = observations
    return projectable(obs) and getattr(inner_operator(obs.operator), "kernel", None) == "lanczos2"


DEFAULT_DEBLUR_REFINE = "grouped-deblur"
"""The refinement of the defaults' deblurring of one blurred photo (:func:`plain_deblurring`),
since the twenty-fourth session (a circular blur) and the twenty-fifth (any blur): ``grouped-deblur``
(:class:`linr.refine.GroupedDeblur`: 10 passes of grouped filtering from the fit's image at a
falling noise level, since the sixty-fifth session following the noise measured on the photo,
each followed by the image that explains the blurred photo best near the
filtered one; for a photo blurred circularly exactly, otherwise with free edges, nothing assumed
beyond the frame). Measured in BENCHMARKS.md ('#15 deblurring', '#15 deblurring a real photo'):
chosen on set9 tune crops, reported on Table 4's images (96-px crops), blurred circularly and as
crops of a blurred scene."""


DEFAULT_OPEN_BOUNDARY = "free"
"""The boundary of a blur left open, with no preset named, for a blurred photo restored alone
(:func:`open_blur_boundary`), since the twenty-ninth session whole and since the thirtieth in tiles
too: free edges
(:class:`~linr.operators.Blur`): the fit renders the frame grown by the kernel's reach and nothing
is assumed beyond it, where the reflecting blur mirrored the border band of a photo whose scene went
on past the frame. Its fit gets :data:`DEFAULT_FREE_BLUR_STEPS` steps on a
:data:`DEFAULT_FREE_BLUR_SCHEDULE` learning rate, and ``grouped-deblur`` draws the pixels beyond the
frame to the fit's own (:attr:`linr.fit.FitResult.extended_image`). Measured on crops of blurred
scenes (BENCHMARKS.md, '#15 deblurring a real photo': eight crops restored whole, and one 160-px crop
in 2 x 2 tiles of 112 px, where free edges were +0.40 dB on the whole crop, level inside, in 0.79x
the time of mirrored ones). Since the thirty-first session also a blurred photo beside one noisy
photo of it (:func:`noisy_with_blurred`; BENCHMARKS.md, '#15 a short and a long exposure'); other
joint fits keep 'reflect' (free edges chosen there are built but not measured)."""

DEFAULT_FREE_BLUR_STEPS = 2000
"""Steps of the defaults' fit of a blur with free edges (the paper's deblurring: 4000)."""

DEFAULT_FREE_BLUR_SCHEDULE = "cosine"
"""The learning-rate schedule of that fit: at the paper's constant rate, free-edged fits of 96-px
scene crops collapsed between 1000 and 4000 steps (a loss spike, then an image of 3-10x the
high-frequency content the blur does not see: leaves and butterfly fell to 19-20 dB); falling to
zero over 2000 steps none did, and it ended 0.20 dB above cosine over 4000 on the tune crops
(BENCHMARKS.md, twenty-eighth session)."""


NOISY_BLUR_FROM = 3.0
"""Noise (std, 0-255, measured on the photo) from which a blurred photo's fit stops by its held-out
pixels (:data:`NOISY_BLUR_STOP`) instead of running its fixed budget: the budget was tuned on photos
blurred with Table 4's noise (sqrt(2)/255), and with more it fits the noise through the inverse blur
(a 40-px crop at 10/255 came back at 12.9 dB from a blurred photo at 28.1; BENCHMARKS.md, sixty-fourth
session)."""

NOISY_BLUR_STOP = "holdout"
"""The stop rule of a noisy blurred photo's fit (:data:`NOISY_BLUR_FROM`): the best iterate on 5% of
its pixels held out."""


def noisy_blur(observations: Sequence[Observation]) -> bool:
    """Whether a blurred photo among ``observations`` (none carrying noise of its own kind) has noise
    of at least :data:`NOISY_BLUR_FROM` measured on it (:func:`linr.noise.estimate_noise_sigma`:
    the blur leaves its finest wavelet band to the noise)."""
    return any(isinstance(inner_operator(o.operator), Blur) and min(o.image.shape[:2]) >= MIN_SIDE
               and estimate_noise_sigma(o.image) * 255.0 >= NOISY_BLUR_FROM for o in observations)


def open_blur_boundary(preset: str | None, *, free: bool = False) -> str:
    """The boundary a blur whose boundary was left open gets under ``preset`` (:func:`resolve`):
    the preset's (the paper's: circular); with none named, :data:`DEFAULT_OPEN_BOUNDARY` where
    ``free`` (a blurred photo restored alone, whole or in tiles, where each tile's fit renders its
    window grown by the kernel's reach, or beside a noisy photo of it, :func:`noisy_with_blurred`:
    :func:`free_edges_measured`), else 'reflect' (:attr:`linr.operators.Blur.DEFAULT_BOUNDARY`): a
    chosen 'free' works in other joint fits too (one rendering, :func:`linr.problem.frame_operators`),
    not measured there."""
    if preset in PRESETS:
        return PRESETS[preset].blur_boundary
    return DEFAULT_OPEN_BOUNDARY if preset is None and free else Blur.DEFAULT_BOUNDARY


def free_edges_measured(observations: Sequence[Observation], *, register: str | None = None) -> bool:
    """Whether an open blur among ``observations`` gets free edges with no preset named
    (:func:`open_blur_boundary`): a blurred photo alone, or beside one noisy photo of it
    (:func:`noisy_with_blurred`; not with ``register``: registration warps the rendering, which free
    edges grow); other joint fits with a blur are not measured with them."""
    return len(observations) == 1 or noisy_with_blurred(observations, preset=None, register=register)


def free_blur_fit(observations: Sequence[Observation], *, preset: str | None) -> bool:
    """Whether a fit is the defaults' fit of a blur with free edges (no preset named, a blurred
    photo whose blur has free edges, open or chosen, alone or, chosen, beside other observations):
    it gets :data:`DEFAULT_FREE_BLUR_STEPS` (a budget when another observation carries noise) and
    :data:`DEFAULT_FREE_BLUR_SCHEDULE`. Beside other observations than one noisy photo of it
    (:func:`noisy_with_blurred`) this is not measured."""
    return preset is None and any(isinstance(blur := inner_operator(o.operator), Blur) and blur.boundary == "free"
                                  for o in observations)


def chosen_boundary_fit_note(observations: Sequence[Observation], *, preset: str | None,
                             steps: int | None) -> str | None:
    """A note where a blur's boundary chosen other than free (``--boundary reflect|circular``)
    also changes its fit: with no preset and no ``steps``, a blur with free edges gets
    :data:`DEFAULT_FREE_BLUR_STEPS` steps on a :data:`DEFAULT_FREE_BLUR_SCHEDULE` rate, other
    boundaries the preset's steps at its rate; None otherwise."""
    blurs = [op for o in observations if isinstance(op := inner_operator(o.operator), Blur)]
    chosen = sorted({b.boundary for b in blurs if b.boundary_chosen and b.boundary != "free"})
    if preset is not None or steps is not None or not chosen or free_blur_fit(observations, preset=preset):
        return None
    p = PRESETS[DEFAULT_PRESET]
    paper = max(p.steps.get(o.kind, p.steps["observation"]) for o in observations)
    return (f"--boundary {', '.join(chosen)}: the blur's fit runs {paper} steps at a {p.schedule} rate, as the "
            f"paper's; free edges (the default) get {DEFAULT_FREE_BLUR_STEPS} steps on a {DEFAULT_FREE_BLUR_SCHEDULE} "
            "rate, measured for them (--steps sets either)")


def plain_deblurring(observations: Sequence[Observation], *, preset: str | None) -> bool:
    """Whether a restore is the defaults' deblurring of one photo that gets
    :data:`DEFAULT_DEBLUR_REFINE`: no preset named and one observation alone, blurred (a
    :class:`~linr.operators.Blur`, any boundary: a circular blur's data step is exact, a
    reflecting or free one's has free edges, drawn to the fit's extension for a free one) and compared by squared
    error. Until the twenty-fifth session a reflecting blur was not refined by default: its data
    step then mirrored the borders, and on photos blurred otherwise near their borders it made a
    band about a kernel's radius wide worse (BENCHMARKS.md '#15 deblurring')."""
    from .deconvolution import deblurrable

    if preset is not None or len(observations) != 1:
        return False
    return deblurrable(observations[0])


def plain_inpainting(observations: Sequence[Observation], *, preset: str | None) -> bool:
    """Whether a restore is the defaults' inpainting of one photo: no preset named and one
    observation alone, with missing pixels (a mask) and no noise. Restored whole, it gets
    :data:`DEFAULT_INPAINT_REFINE` and the stop rule that goes with it (in tiles the refinement
    and fixed steps; with few pixels missing, :func:`inpainting_pilot`)."""
    if preset is not None or len(observations) != 1:
        return False
    (obs,) = observations
    return isinstance(obs.operator, Mask) and not obs.carries_noise


DEFAULT_JOINT_REFINE = "grouped-project"
"""The refinement of the defaults' joint fit of one noisy photo and a low-res view without noise
(:func:`noisy_with_lowres`): the noisy photo filtered by ``grouped`` with the joint fit as the
pilot, then made to reproduce the low-res view exactly (:mod:`linr.projection`), and (since the
twentieth session, when the fit held pixels out: one whole fit with the automatic stop) the
blend of the fit's, the filtered and the projected images that predicts the held-out pixels best
(:class:`linr.refine.GroupedProjected`). Measured in BENCHMARKS.md ('#15 joint fits'): the
projection alone (nineteenth session) gave +0.39 to +1.66 dB over the joint fit on set5's 128-px
crops (sigma 25 + x4) and 32.40 dB on the five whole images against the paper's LINR 30.98, but
lost to the photo alone where the view aliases sharp edges (butterfly's crop at sigma 15: -1.49
dB), which the blend repairs (see BENCHMARKS.md for its rows)."""


def noisy_with_lowres(observations: Sequence[Observation], *, preset: str | None,
                      register: str | None = None) -> bool:
    """Whether a restore is the defaults' joint fit of one noisy photo and one low-res view
    without noise (Table 5's case): no preset named, no registration (a registered view is shifted
    by the fit), two observations: one with Gaussian noise, a squared-error data term and no
    operator, the other a view :func:`linr.projection.projectable` accepts (of the photo's
    channels). It gets :data:`DEFAULT_JOINT_REFINE`. (Two or more views: not measured, and views
    that disagree cannot all be reproduced exactly.)"""
    from .projection import projectable

    if preset is not None or register is not None or len(observations) != 2:
        return False
    photos = [o for o in observations if measures_gaussian_noise(o) and isinstance(o.operator, Identity)]
    if len(photos) != 1 or min(photos[0].shape) < MIN_SIDE:
        return False
    return all(projectable(o, photos[0].channels) for o in observations if o is not photos[0])


DEFAULT_PAIR_REFINE = "grouped-pair"
"""The refinement of the defaults' joint fit of a noisy and a blurred photo of one scene
(:func:`noisy_with_blurred`, a short and a long exposure; since the thirty-first session):
``grouped-deblur``'s passes from the joint fit's image, each data step weighing in the noisy photo
by its measured noise (:class:`linr.refine.GroupedPair`), the pixels beyond the frame drawn to the
fit's own (the blur's edges are free). Measured in BENCHMARKS.md ('#15 a short and a long
exposure'): crops of blurred scenes with a noisy photo of the same framing."""


def noisy_with_blurred(observations: Sequence[Observation], *, preset: str | None,
                       register: str | None = None) -> bool:
    """Whether a restore is the defaults' joint fit of a noisy and a blurred photo of one scene:
    no preset named, no registration (a registered photo's operator is the fit's), two observations of one size, one with Gaussian or photon noise
    (:func:`linr.problem.noise_level_known`; photon noise since the thirty-second session) and no
    operator, the other a blurred photo compared by squared error
    (:func:`linr.deconvolution.deblurrable`). Its blur gets free edges when its boundary is left
    open (:func:`open_blur_boundary`) and the fit :data:`DEFAULT_PAIR_REFINE`."""
    from .deconvolution import deblurrable

    if preset is not None or register is not None or len(observations) != 2 or \
            len({tuple(o.shape) for o in observations}) != 1 or any(o.weight == 0 for o in observations):
        return False
    photos = [o for o in observations if noise_level_known(o) and isinstance(o.operator, Identity)]
    return len(photos) == 1 and min(photos[0].shape) >= MIN_SIDE and \
        all(deblurrable(o) for o in observations if o is not photos[0])


def noisy_blurred_with_views(observations: Sequence[Observation], *, preset: str | None,
                             register: str | None = None) -> bool:
    """Whether a restore is the defaults' joint fit of a noisy and a blurred photo of one scene beside
    low-res views of it (since the sixty-ninth session): no preset named, no registration, none
    weighted 0, the two photos of one size (one with Gaussian or photon noise and no operator, one
    blurred and compared by squared error: the pair of :func:`noisy_with_blurred`), every other
    observation a low-res view of another size. Its refinement is the pair's,
    :data:`DEFAULT_PAIR_REFINE`, from the joint fit of all of them (the views inform the fit, its
    pilot); the fit itself is any joint fit's (the blur's open edges mirrored). Measured in
    BENCHMARKS.md ('A noisy, a low-res and a blurred photo of one scene')."""
    views = [o for o in observations if isinstance(inner_operator(o.operator), Downsample)]
    pair = [o for o in observations if all(o is not v for v in views)]
    return bool(views) and noisy_with_blurred(pair, preset=preset, register=register) and \
        all(v.weight != 0 and tuple(v.shape) != tuple(pair[0].shape) for v in views)


DEFAULT_NOISY_MASKED_REFINE = "grouped-fill"
"""The refinement of the defaults' joint fit of noisy photos and one photo with missing pixels of one
scene (:func:`noisy_with_masked`; since the sixty-eighth session): the masked photo's missing pixels
filled by grouped filtering with the joint fit's image as the pilot, its observed pixels kept, blended
with the fit's image and the biharmonic inpainting by the held-out pixels (:class:`linr.refine.GroupedFill`,
as a masked photo alone gets). Measured in BENCHMARKS.md ('A noisy photo beside a photo with missing
pixels'): ahead of the joint fit alone on 16 of 18 crops (the two with 20% observed -0.49 and -0.57 dB),
and of both photos restored alone on 16."""


def noisy_with_masked(observations: Sequence[Observation], *, preset: str | None,
                      register: str | None = None) -> bool:
    """Whether a restore is the defaults' joint fit of noisy photos (Gaussian or photon noise, no
    operator) and one photo with missing pixels (a mask) of one size: no preset named, no
    registration (a registered photo's pixels move), none weighted 0; its refinement
    :data:`DEFAULT_NOISY_MASKED_REFINE`."""
    if preset is not None or register is not None or len(observations) < 2 or \
            len({tuple(o.shape) for o in observations}) != 1 or any(o.weight == 0 for o in observations):
        return False
    return masked_beside_noisy(observations, tuple(observations[0].shape)) is not None


PAIR_LEVEL_RATIO = 1.25
"""A noisy and a blurred photo of one scene whose mean levels differ by more than this factor either
way are named (:func:`pair_level_note`): the pair is fitted and refined as one brightness scale."""


def pair_level_note(observations: Sequence[Observation], names: Sequence[str] | None = None) -> str | None:
    """A note when one noisy photo (no operator) and one blurred photo of one size among
    ``observations`` differ in mean level by more than :data:`PAIR_LEVEL_RATIO` either way (a
    short exposure not scaled to the long one's brightness: the pair's fit and refinement take both
    as one scale, and a darker short exposure mostly adds error); None otherwise. The blur keeps the
    mean, so the two means differ by the noise's clipping only (a few percent on dark scenes)."""
    from .deconvolution import deblurrable

    noisy = [k for k, o in enumerate(observations) if o.carries_noise and isinstance(o.operator, Identity)]
    blurred = [k for k, o in enumerate(observations) if deblurrable(o)]
    if len(noisy) != 1 or len(blurred) != 1 or observations[noisy[0]].shape != observations[blurred[0]].shape:
        return None
    short, long = (float(np.mean(observations[k].image, dtype=np.float64)) for k in (noisy[0], blurred[0]))
    if long <= 0 or 1 / PAIR_LEVEL_RATIO <= short / long <= PAIR_LEVEL_RATIO:
        return None
    name = (lambda k: f"{names[k]} ({observations[k].kind})") if names else (lambda k: f"the {observations[k].kind} photo")
    return (f"{name(noisy[0])} is {short / long:.2f}x as bright as {name(blurred[0])} on average: the two are fitted "
            "as one brightness scale, so scale the short exposure to the long one's (e.g. by the ratio of their "
            "exposure times) for it to help")


def input_psnrs(observations: Sequence[Observation], reference: np.ndarray,
                names: Sequence[str] | None = None, *, where: np.ndarray | None = None,
                scale: float = 1.0) -> list[dict[str, Any]]:
    """The standard-convention PSNR against ``reference`` (H, W, C) of each input that is a photo of
    the restored image's size and channels with no operator that moves or drops pixels (a noisy
    photo, a blurred one): what the restoration gained over each, as given (before any
    registration); masked and low-res inputs are left out. Each entry: ``kind``, ``psnr`` and, with
    ``names`` (one per observation: its file), ``path`` (a stack's frames, one file, by number).
    ``where``: the pixels measured (:func:`linr.metrics.evaluate`); ``scale``: what each input and the
    reference are divided by first (:func:`linr.defects.measured_scale`, as the result was)."""
    from .images import as_float_image
    from .metrics import evaluate

    found: list[dict[str, Any]] = []
    for k, obs in enumerate(observations):
        image = as_float_image(obs.image, obs.kind)
        image = image if image.ndim == 3 else image[..., None]
        if not (isinstance(obs.operator, (Identity, Blur)) and image.shape == np.shape(reference)):
            continue
        entry: dict[str, Any] = {"kind": obs.kind}
        if names is not None:
            path = str(names[k])
            entry["path"] = path if list(names).count(path) == 1 else f"{path} frame {list(names)[:k].count(path)}"
        divided = np.float32(scale)
        entry["psnr"] = round(float(evaluate(np.asarray(reference, np.float32) / divided, image / divided,
                                             convention="standard", where=where)["psnr"]), 4)
        found.append(entry)
    return found


def default_refine(observations: Sequence[Observation], *, preset: str | None, keep_model: bool = False,
                   register: str | None = None) -> str | None:
    """The refinement a restore gets when none is asked for: :data:`DEFAULT_DENOISE_REFINE` for
    :func:`plain_denoising` (images of at least :data:`~linr.refine.MIN_REFINE_SIDE` px),
    :data:`DEFAULT_JOINT_REFINE` for :func:`noisy_with_lowres` (the same sizes),
    :data:`DEFAULT_INPAINT_REFINE` for :func:`plain_inpainting` (whole or in tiles, any size),
    :func:`sr_refine_for` its factor for :func:`plain_super_resolution` (whole or in tiles, any size),
    :data:`DEFAULT_DEBLUR_REFINE` for :func:`plain_deblurring` (the same),
    :data:`DEFAULT_PAIR_REFINE` for :func:`noisy_with_blurred` and :func:`noisy_blurred_with_views` (the same),
    :data:`DEFAULT_NOISY_MASKED_REFINE` for :func:`noisy_with_masked` (any size); none when the model is kept (it renders the fit's image, not a refined one)."""
    return _default_refine_or_why_not(observations, preset=preset, keep_model=keep_model, register=register)[0]


def default_refine_left_out(observations: Sequence[Observation], *, preset: str | None, keep_model: bool = False,
                            register: str | None = None) -> dict[str, str] | None:
    """What ``settings['refine']`` says where the task's default refinement is left out because the
    image is smaller than its patches (a new user's 5 x 5 photo came back unrefined unsaid), else None."""
    return _default_refine_or_why_not(observations, preset=preset, keep_model=keep_model, register=register)[1]


def _default_refine_or_why_not(observations: Sequence[Observation], *, preset: str | None, keep_model: bool,
                               register: str | None) -> tuple[str | None, dict[str, str] | None]:
    """:func:`default_refine` and :func:`default_refine_left_out`, decided once: the task's default
    refinement (:func:`_task_refine`), left out, and said so, on images under its patches' side."""
    if keep_model:
        return None, None
    name, patches = _task_refine(observations, preset=preset, register=register)
    if name is None or not patches:
        return name, None
    h, w = clean_shape(observations)
    if min(h, w) >= MIN_REFINE_SIDE:
        return name, None
    return None, {"name": name, "skipped": f"it filters {MIN_REFINE_SIDE} x {MIN_REFINE_SIDE} patches, and the "
                                           f"image is {w}x{h} (width x height): the fit's image is returned"}


def _task_refine(observations: Sequence[Observation], *, preset: str | None,
                 register: str | None = None) -> tuple[str | None, bool]:
    """The default refinement of these observations' task at any size (:func:`default_refine`),
    and whether it needs images of at least :data:`~linr.refine.MIN_REFINE_SIDE` px."""
    if plain_denoising(observations, preset=preset):
        return DEFAULT_DENOISE_REFINE, True
    if noisy_with_lowres(observations, preset=preset, register=register):
        return DEFAULT_JOINT_REFINE, True
    if plain_inpainting(observations, preset=preset):
        return DEFAULT_INPAINT_REFINE, False
    if plain_super_resolution(observations, preset=preset):
        return sr_refine_for(inner_operator(observations[0].operator).factor), True
    if plain_deblurring(observations, preset=preset):
        return DEFAULT_DEBLUR_REFINE, True
    if noisy_with_blurred(observations, preset=preset, register=register) or \
            noisy_blurred_with_views(observations, preset=preset, register=register):
        return DEFAULT_PAIR_REFINE, True
    if noisy_with_masked(observations, preset=preset, register=register):
        return DEFAULT_NOISY_MASKED_REFINE, False
    return None, False


def pilot_fit(observations: Sequence[Observation], *, preset: str | None, model: Any = None, stop: Any = None,
              refine: str | None = None, keep_model: bool = False) -> bool:
    """Whether a restore with these options fits the defaults' pilot (:func:`fits_a_pilot` with
    the photo's :func:`plain_denoising` and its refinement, :func:`resolve_refine`)."""
    return fits_a_pilot(model=model, stop=stop, plain=plain_denoising(observations, preset=preset),
                        refined=resolve_refine(refine, observations, preset=None, keep_model=keep_model) is not None)


def resolve_refine(refine: str | None, observations: Sequence[Observation], *, preset: str | None,
                   keep_model: bool = False, register: str | None = None) -> str | None:
    """The refinement a restore gets (None: none), checked before any fit: ``refine`` if given
    (``'none'``: none), else :func:`default_refine` (``register``: its views are registered). One-line errors for an unknown name, for observations the refiner
    cannot take, for a kept model (it would not render the refined image) and for a projection
    onto views the fit will shift (``register``)."""
    if refine is None:
        return default_refine(observations, preset=preset, keep_model=keep_model, register=register)
    if check_refine_spec(refine) == NO_REFINE:
        return None
    if keep_model:
        raise InputError(f"refinement {refine!r} changes the image after the fit, so no model renders "
                         "it, and --save-model, --render-scale and --render-size (keep_model=True in Python) need one: "
                         "leave out the refinement (--refine none; refine='none' in Python) or those")
    if register is not None and REFINERS[refine].takes in ("views", "noisy+views"):
        raise InputError(f"refinement {refine!r} makes the image reproduce its low-res views exactly, and "
                         f"registration ({register}) shifts them by what the fit finds: leave out one of them")
    if register is not None and REFINERS[refine].takes == "noisy+blurred":
        raise InputError(f"refinement {refine!r} explains the blurred photo as taken, and registration "
                         f"({register}) shifts the photos by what the fit finds: leave out one of them")
    refine_input(observations, clean_shape(observations), refine)
    return refine


def resolve_prior(prior: str | None, observations: Sequence[Observation]) -> str | None:
    """The prior spec a fit gets (None: none), checked. A weight ``auto`` (such as ``tv:auto``)
    stays in the spec and is set when each fit is built, from the noise measured on that fit's
    observations (:func:`linr.problem.build_prior`; the result's ``settings['prior_used']`` has
    the number; a tiled restore measures once, on the whole image); here it is checked that
    some observation has Gaussian noise to measure."""
    if prior is None or prior == NO_PRIOR:
        return None
    spec = check_prior_spec(prior)
    if weight_is_auto(spec):
        prior_noise_inputs(observations, spec)  # one-line errors now, before any fit
    return spec


PILOT_PRECISION_RULE = f"{DEFAULT_PILOT_PRECISION}-on-cpus-with-bf16-units-but-sure-picks"
""":func:`pilot_precision` as a batch's manifest records it (the products of a pilot fit with no
``--precision``, whichever machine fits it)."""


def pilot_precision(device: Any) -> str:
    """The precision of a pilot fit on ``device`` with none asked for: :data:`DEFAULT_PILOT_PRECISION`
    where the device is a CPU that multiplies it in hardware (:func:`linr.engine.fast_precision`),
    else float32 (a GPU's pilot is not measured in bf16)."""
    from .engine import fast_precision
    from .fit import resolve_device

    resolved = resolve_device(device)
    return DEFAULT_PILOT_PRECISION if resolved.type == "cpu" and fast_precision(resolved) == DEFAULT_PILOT_PRECISION \
        else "float32"


def _precision(precision: str, device: str) -> str:
    if precision != "auto":
        return precision
    from .engine import fast_precision
    from .fit import resolve_device

    return fast_precision(resolve_device(device))


def _preset_model(p: Preset, observations: Sequence[Observation]) -> ModelConfig:
    kinds = {o.kind for o in observations}
    return p.kind_models.get(next(iter(kinds)), p.model) if len(kinds) == 1 else p.model


def resolve_stop(
    observations: Sequence[Observation],
    *,
    preset: str | None = None,
    steps: int | None = None,
    stop: StopRule | str | None = None,
    keep_model: bool = False,
    refine: str | None = None,
    blur_noisy: bool | None = None,
) -> StopRule | None:
    """The stop rule of a fit; None means exactly ``steps`` steps.

    ``stop`` is a rule, 'auto', 'fixed' or a spec such as ``variance:10:40,discrepancy:1``.
    Unset, it is the preset's policy; with no preset named it is 'auto'. 'auto' applies
    :data:`AUTO_NOISY` when any observation is noisy (held-out pixels are drawn from every
    observation; it returns an average of iterates); with
    ``keep_model`` (the result must keep a model to render or save) it applies
    :data:`AUTO_NOISY_MODEL`, which returns the best single iterate. Without noise, 'auto' is
    :data:`AUTO_BLENDED` when the fit's image is to be blended by a refiner that takes a masked
    photo (``refine``, the resolved refinement of this one fit, such as
    :data:`DEFAULT_INPAINT_REFINE`: the blend's weight is chosen on the pixels it holds out),
    else :data:`NOISY_BLUR_STOP` for a blurred photo with noise (:func:`noisy_blur`; ``blur_noisy``:
    that decided by the caller, as a tiled restoration decides it once on the whole photo for every
    tile; None: measured here), else 'fixed'. ``steps`` never changes
    the rule: under an automatic rule it is the budget (the most steps run), and exactly that
    many run only with ``stop='fixed'`` (or a preset whose policy is fixed, such as 'paper').
    """
    del steps  # a budget, not a policy (it once turned automatic stopping off, silently)
    if isinstance(stop, StopRule):
        return stop
    if stop is None:
        stop = "auto" if preset is None else PRESETS[preset].stop
    if stop == "fixed":
        return None
    if stop == "auto":
        if any(o.carries_noise for o in observations):
            return parse_stop(AUTO_NOISY_MODEL if keep_model else AUTO_NOISY)
        blended = refine is not None and refine != NO_REFINE and REFINERS[refine].takes == "masked"
        if blended:
            return parse_stop(AUTO_BLENDED)
        noisy = noisy_blur(observations) if blur_noisy is None else blur_noisy
        return parse_stop(NOISY_BLUR_STOP) if noisy else None
    try:
        rule = parse_stop(stop)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    _refuse_a_rule_that_cannot_fire(rule, observations)
    return rule


def _refuse_a_rule_that_cannot_fire(rule: StopRule | None, observations: Sequence[Observation]) -> None:
    """A discrepancy rule (alone) where no observation carries noise of its own never fires (its
    threshold is the noise's energy): a new user's ``--stop discrepancy`` on a blurred photo ran
    the whole 2000 steps and came back at 7.2 dB, 11 under the blurred photo. One line instead."""
    if isinstance(rule, Discrepancy) and not any(o.carries_noise for o in observations):
        raise InputError("the discrepancy rule stops where the fit reaches a noisy photo's noise, and no observation "
                         "here is one (--noisy): it would never fire; a blurred photo's fit stops by held-out pixels "
                         "(--stop holdout), or give --stop fixed")


def restore(
    observations: Sequence[Observation] | Observation,
    *,
    preset: str | None = None,
    steps: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    model: ModelConfig | None = None,
    reference: np.ndarray | None = None,
    measured_pixels: np.ndarray | None = None,
    stop: StopRule | str | None = None,
    progress: bool | None = None,
    precision: str | None = None,
    eval_every: int = 1,
    tile: "str | int | TileSetting | None" = "auto",
    tile_stack: int | None = None,
    tile_store: str | None = None,
    tile_store_owned: bool = False,
    tile_store_replace: bool = False,
    tile_store_kept: bool = False,
    register: str | None = None,
    tile_executor: Any = None,
    tile_threads: int | None = None,
    keep_model: bool = False,
    ensemble: int = 1,
    prior: str | None = None,
    refine: str | None = None,
    on_step: Callable[[int, Any, float, int | None], None] | None = None,
    on_refine: Callable[[str], None] | None = None,
    on_refine_progress: Callable[[str, float], None] | None = None,
    on_plan: Callable[["RestorePlan"], None] | None = None,
    announce: bool | None = None,
    clipping: str = "auto",
    threads: int | str | None = "auto",
    headroom: Any = "auto",
    defects: Any = "auto",
) -> FitResult:
    """Restore one scene from one or more observations with a preset's settings.

    With no preset named, the paper's settings are used with automatic stopping for noisy
    inputs (see :func:`resolve_stop`), and, with no ``model`` named, the network of
    :func:`default_model` (the denoising pilot, the inpainting network; see :func:`resolve`);
    ``preset="paper"`` keeps the paper's fixed step count and network.
    ``eval_every``: with a reference, PSNR every this many steps (see :class:`~linr.fit.FitConfig`).
    ``result.metrics``: the image against ``reference`` (:func:`measured_against`), on the pixels
    ``measured_pixels`` (H, W bool, the reference's size; None: every pixel) holds, such as an
    output's opaque ones (:func:`linr.images.opaque_pixels`).
    ``tile``: 'auto' (the preset's choice by image size: the defaults restore images larger
    than :data:`TILE_WHOLE_UP_TO` px in tiles, the defaults' pilot fit of a noisy photo
    (:func:`pilot_fit`) above :data:`DENOISE_WHOLE_UP_TO` px, the paper preset never tiles), 'off', ``SIZE`` or
    'SIZE:OVERLAP' (:mod:`linr.tiling`); ``tile_stack`` tiles are fitted at once as one stack
    (None: 8 on a GPU, 1 on the CPU); ``tile_store``: a folder that keeps finished tiles, so
    that a killed run resumes (removed once the image is assembled, unless ``tile_store_owned``
    or ``tile_store_kept``: then kept through the refinement, for the caller to remove once its
    output is written, as ``linr restore`` does: see :func:`linr.tiling.fit_tiled`;
    ``tile_store_replace``: a folder holding finished tiles of another restoration is emptied and
    reused, not refused); ``tile_executor``: local
    worker processes or Ray tasks that fit the tiles (:func:`linr.tiling.fit_tiled`; None: this
    process), each fit with ``tile_threads`` torch threads.
    ``register``: 'translation' or 'affine' (:data:`linr.registration.TRANSFORMS`) fits a
    transform per observation after the first, which is the reference (shots that do not line
    up, :mod:`linr.registration`); ``settings['registration']`` then lists the fitted ones. A
    burst of noisy photos alone with Gaussian noise and 'translation' (no preset) is instead moved
    onto its first frame's grid before the fit and restored as their mean
    (:func:`linr.stabilise.aligned_burst`; each frame's record then has a ``method``).
    ``keep_model``: the result keeps its model (``result.render``, ``result.save_model``): the
    automatic stop then returns the best single iterate, not an average of iterates (see
    :func:`resolve_stop`).
    ``ensemble``: fit that many members from seeds ``seed, seed + 1, ...`` (one stack on the fast
    engine) and return their mean image, with ``result.uncertainty`` their per-pixel spread
    (:mod:`linr.ensemble`); whole images only, no model to keep.
    ``prior``: an explicit image prior added to the data term (:mod:`linr.priors`, such as
    ``'tv:0.05'``, or ``'tv:auto'``: its weight set from the measured noise level, see
    :func:`resolve_prior`); ``'none'``: no prior (the paper's fit); None: the default's
    (:func:`default_prior`: ``tv:auto`` when one noisy image is denoised with no preset named, but
    a colour photo above :data:`DENOISE_PRIOR_UP_TO` px a side).
    ``refine``: filter the noisy photo once more with the fit's image as the pilot
    (:mod:`linr.refine`: ``'grouped'``, ``'wiener'``; ``'none'``: the fit's image); None: the default's
    (:func:`resolve_refine`: ``'grouped'`` when one noisy image is denoised with no preset named
    and no model is kept, ``'grouped-fill'`` for one photo with missing pixels, its stop then
    the ``pick`` rule when restored whole, ``'grouped-views-examples'`` for one low-res photo without
    noise at the factors of :data:`SR_EXAMPLES_FACTORS` (``'grouped-views'`` at others:
    :func:`sr_refine_for`), ``'grouped-project'`` for one noisy photo with a low-res view,
    ``'grouped-deblur'`` for one blurred photo, ``'grouped-pair'`` for a noisy and a blurred photo
    of one scene). ``result.fitted_image`` then keeps the fit's image and
    ``settings['refine']`` says what was done.
    Photon noise (``noise='poisson'``...) is restored through its Anscombe transform where that
    route is taken (:mod:`linr.stabilise`: one photo), and the result mapped back; the per-step
    values (``history``, ``on_step``'s output) are then the transformed photo's.
    ``clipping``: with no preset named, noisy photos with Gaussian noise alone whose values pile
    up at black or white (a file's: clipped there) are restored as they are and the result is
    mapped back through the inverse of their expected clipped value, at the measured noise level
    with clipping's lowering of it undone (:mod:`linr.clipping`;
    ``settings['clipping']`` says so); an aligned burst of them is restored as its frames' mean
    weighted by their measured inverse noise variance (:func:`linr.stabilise.clipping_route`).
    'ignore': no mapping back (a burst is still averaged). The per-step values (``history``,
    ``on_step``'s output) are then of the fit before the mapping back. One blurred photo alone
    clipped at white, with no preset named and fitted on its own scale: its data term censored
    there ('auto'; :func:`linr.headroom.censored_at_white`, ``settings['clipped_at_white']``),
    'ignore': its pixels at white fitted as values.
    ``headroom``: one blurred photo of point sources (stars, beads: :func:`linr.headroom.point_sources`)
    is fitted on a scale :data:`linr.headroom.HEADROOM` times its value range ('auto', with no preset named
    and no model kept; ``settings['headroom']`` says so), 'off' on its own, or a factor >= 1 given
    (:mod:`linr.headroom`): its deblurred stars are several times brighter than its blurred peak; where
    automatic, its touching pixels at its maximum (a saturated star) are left out of the data term. The
    per-step values are then of the widened scale; a model kept by the way (no ``keep_model``) is dropped.
    ``defects``: 'auto' (no preset named) leaves a blurred photo alone's pixels sharper than its
    blur allows (hot pixels, cosmic rays: :func:`linr.defects.impossible_pixels`) out of its data
    term, and where one was its maximum fits it on the scale of the brightest pixel left
    (``settings['defects']`` says so; the metrics against ``reference`` are then on that scale, as
    the photo without them would be mapped); 'off': every pixel fitted as data (:mod:`linr.defects`).
    ``on_step(step, output, loss, tile)``: called after each step of the fit (of each tile's, one
    tile at a time, ``tile`` its index in the grid of ``result.settings['tiling']``; None for one
    fit of the whole image) with the fit's ``callback`` arguments (:func:`linr.fit.fit`); what it
    raises stops the restoration. Not with an ensemble or a ``tile_executor``; not during the SURE
    pick's second fit (announced by ``on_refine('sure')``; its progress bar shows as the first's). ``on_refine(name)``:
    called once the fit is done, before a refinement (which may take a minute or more) starts, and
    with ``'sure'`` before the SURE pick of a small noisy photo (a second fit, then refinements).
    ``on_refine_progress(phase, done)``: called as that refinement goes (a :mod:`linr.progress`
    listener: the name of its current phase, '' for the whole, and the share of it done, 0 to 1);
    what it raises stops the restoration there (the web app's cancel).
    ``on_plan(plan)``: called once with the :class:`RestorePlan` before any fit (its ``rule`` is the
    stop rule the fit of a whole image consults: the web app shows its state as the fit goes).
    Returns a :class:`~linr.fit.FitResult`; ``result.image`` is (H, W, C) on [0, 1], unclipped.
    A tiled result has no per-step history; ``settings['tiles']`` lists each tile's steps.
    ``announce``: say on stderr what a long restoration will cost before it starts
    (:func:`restore_cost`); None: when progress is shown (``progress``; None: on a terminal).
    ``progress`` False also silences the lines a long refinement says on stderr every
    :data:`REFINE_PROGRESS_EVERY` seconds (:func:`_refine_progress`: on a terminal or not, as the
    tile counter's lines in a log).
    ``threads``: torch's threads on the CPU for this call (set back after it): 'auto' as many as
    torch has, but fewer where other work holds some of the cores and they answer late
    (:func:`linr.cores.threads_of_call`: a fit then takes several times longer on two threads than on
    one; ``settings['threads']`` then says what was found, and where ``announce`` it is said on
    stderr; not where ``OMP_NUM_THREADS`` is set), a count, or None: as they are.
    """
    with _threads_of_call(threads, device, progress if announce is None else announce) as said_threads:
        observations = check_observations(observations)
        reference = _on_unit_scale(reference)
        _check_measured_pixels(measured_pixels, reference)
        plan = plan_restore(observations, preset=preset, steps=steps, lr=lr, seed=seed, device=device, model=model,
                     progress=progress, precision=precision, prior=prior, refine=refine, keep_model=keep_model,
                     stop=stop, register=register, tile=tile, ensemble=ensemble, clipping=clipping, headroom=headroom,
                     defects=defects)
        obs, config, grid, refine, rule = plan.obs, plan.config, plan.grid, plan.refine, plan.rule
        if on_plan is not None:
            on_plan(plan)
        if plan.aligned is not None:
            register = None  # the burst was moved onto its first frame's grid before the fit
        if plan.route is not None and plan.route.transform is not None:
            observations = obs  # the transformed photos stand for the photos from here on
        reference_given, given = reference is not None, reference
        reference = stabilised_reference(reference, plan.route)
        if reference is not None and plan.fit_scale != 1.0:  # per-step PSNRs on the fit's scale
            reference = (reference / np.float32(plan.fit_scale)).astype(np.float32)
        if keep_model and grid is not None:
            raise InputError(f"keep_model needs one network of the whole image, but this restoration is tiled "
                             f"({len(grid)} tiles, one network each); pass tile='off'")
        if eval_every != 1:
            config = dataclasses.replace(config, eval_every=eval_every)
        blended = refine is not None and REFINERS[refine].takes == "masked"
        if tile_executor is not None and grid is None and plan.fits:  # none fitted at all: nothing for them
            raise InputError("workers fit the tiles of an image, and this one is restored whole "
                             "(ask for tiles: tile='SIZE')")
        if on_step is not None and (ensemble > 1 or tile_executor is not None):
            raise InputError("a per-step callback follows one fit in this process: not an ensemble's "
                             "members nor tiles fitted by workers")
        if grid is not None and tile_store is not None:
            from .tiling import check_store_folder

            check_store_folder(tile_store)
        if grid is not None and isinstance(stop, StopRule):
            raise InputError("a tiled restoration needs the stop rule as a spec (such as 'auto'), "
                             "not one rule object: each tile gets its own")
        if _shows(progress if announce is None else announce):
            line = _forecast(plan, steps=steps, lr=lr, tile_stack=tile_stack, ensemble=ensemble,
                             tiles_done=_resumable_tiles(plan, config, tile_store, tile_store_replace or tile_store_owned)).line
            if line is not None:
                print(line, file=sys.stderr, flush=True)
        if register is not None:
            obs = register_observations(obs, register, shape=clean_shape(obs))
        nothing = not plan.fits
        if nothing:  # the photo is the result: no fit (an archive's batch of scans whose masks mark no damage)
            result = the_photo_itself(obs, config, refine)
        elif ensemble > 1:  # each member's rule as one fit's (the SURE pick where it serves), its own held-out pixels
            stops = [member_rule(_sure_rule(resolve_stop(obs, preset=preset, steps=steps, stop=stop, refine=refine,
                                                         blur_noisy=plan.blur_noisy), obs,
                                            stop=stop, preset=preset, refine=refine, whole=True, keep_model=keep_model,
                                            averaged_level=_averaged_level(plan.route)),
                                 k, shared_held_out=blended) for k in range(ensemble)]
            result = fit_ensemble(obs, config, stops, reference=reference, on_pick=on_refine)
            rule = stops[0]  # its held-out pixels are every member's when blended
        elif grid is None:
            whole_step = None if on_step is None else (lambda step, output, loss: on_step(step, output, loss, None))
            result = fit_whole(obs, config, rule, reference=reference, callback=whole_step, on_pick=on_refine)
        else:
            asked_prior = config.prior
            config = _tiled_config(config, obs)
            whole_noisy = noisy_blur(obs) if plan.blur_noisy is None else plan.blur_noisy  # once, on the whole photo

            def tile_stop(part: list[Observation]) -> StopRule | None:
                return resolve_stop(part, preset=preset, steps=steps, stop=stop, blur_noisy=whole_noisy)

            result = fit_tiled(
                obs, config, grid, stack=_tile_stack(tile_stack, config), store=tile_store,
                store_owned=tile_store_owned, store_replace=tile_store_replace, store_kept=tile_store_kept,
                make_stop=tile_stop,
                progress=_tile_progress(config.progress), stop_name=_stop_name(rule),
                executor=tile_executor, threads=tile_threads,
                on_step=on_step,
            )
            if config.prior is not None:
                result.settings.update(prior=asked_prior, prior_used=config.prior)
        result.settings["preset"] = "default" if preset is None else preset  # the defaults are not the paper preset
        if register is not None:
            result.settings["registration"] = registration_report([o.operator for o in obs])
        elif plan.aligned is not None:
            result.settings["registration"] = plan.aligned
        _record_measured_noise(result.settings, observations, preset)
        if refine is not None and not nothing:
            if on_refine is not None:
                on_refine(refine)
            shared = ensemble == 1 or blended  # an ensemble's members draw their own held-out pixels otherwise
            held = held_out_pixels(rule) if grid is None and shared else None
            if grid is not None and blends_in_tiles(refine):  # the pixels no tile trained on
                held = tiled_held_out(obs, grid, tile_stop)
            with progress_of_work.listening(_both(_refine_progress(config.progress), on_refine_progress)):
                apply_refine(result, refine, obs, held_out=held)
        elif plan.refine_left_out is not None:
            result.settings["refine"] = dict(plan.refine_left_out)
        said_censored(result, obs)
        result = lowered(result, plan.headroom, asked=headroom, saturated=plan.saturated)
        result = restored_scale(result, plan.defects, plan.defect_scale)
        result = measured_against(unstabilised(result, plan.route, reference_given=reference_given), given,
                                  observations, where=measured_pixels)
        if said_threads is not None:
            result.settings["threads"] = said_threads
        return result


@contextmanager
def _threads_of_call(threads: int | str | None, device: str, shown: bool | None) -> Iterator[dict[str, Any] | None]:
    """:func:`linr.cores.threads_of_call` for a restoration on ``device`` (on a GPU only a count is
    set; 'auto' leaves torch's threads as they are, as the command line does): yields
    ``settings['threads']`` where fewer threads were chosen (their note said on stderr where
    ``shown``: :func:`_shows`), else None."""
    from .cores import threads_of_call

    if threads == "auto" and resolve_device(device).type != "cpu":
        threads = None
    with threads_of_call(threads) as chosen:
        if chosen is None:
            yield None
            return
        said = {"torch": chosen.before, "used": chosen.threads, "note": chosen.note("threads=N")}
        if _shows(shown):
            print(f"linr: note: {said['note']}", file=sys.stderr, flush=True)
        yield said


def _on_unit_scale(reference: np.ndarray | None) -> np.ndarray | None:
    """A reference that is not of floats (a uint8 or uint16 image as PIL or tifffile read it) on
    the 0-1 scale of the restored image, as :func:`linr.images.as_float_image` puts a photo there
    (a uint8 one was measured as it was: PSNR -42 dB; other integer types are refused in one line,
    as a photo's are); a float one as it is."""
    if reference is None or np.asarray(reference).dtype.kind == "f":
        return reference
    from .images import as_float_image

    return as_float_image(reference, "reference")


def _check_measured_pixels(where: np.ndarray | None, reference: np.ndarray | None) -> None:
    """A one-line error, before any fit, for pixels to measure that do not fit the reference."""
    if where is None:
        return
    if reference is None:
        raise InputError("measured_pixels says which pixels of the reference to measure: give the reference too")
    if np.asarray(where).dtype != bool:
        raise InputError(f"measured_pixels must be a boolean mask (H, W), not of {np.asarray(where).dtype}: "
                         "True where a pixel is measured")
    shape, wanted = np.shape(where), tuple(np.shape(reference)[:2])
    if shape != wanted:
        size = f"{shape[1]}x{shape[0]}" if len(shape) == 2 else f"of shape {shape}"
        raise InputError(f"measured_pixels is {size} but the reference is {wanted[1]}x{wanted[0]} (width x height): "
                         "give one flag per reference pixel")
    if not np.any(where):
        raise InputError("measured_pixels holds no pixel to measure")


def measured_against(result: FitResult, reference: np.ndarray | None, observations: Sequence[Observation],
                     *, where: np.ndarray | None = None) -> FitResult:
    """``result`` with :attr:`~linr.fit.FitResult.metrics`: its image against ``reference`` (None:
    unchanged) in both conventions, the paper's for a blurred photo alone being its Y-channel PSNR,
    on the pixels ``where`` holds (None: every pixel; :func:`linr.metrics.report`)."""
    if reference is not None:
        task = "deblur" if {o.kind for o in observations} == {"blurred"} else None
        result.metrics = result_metrics(reference, result, task, where=where)
    return result


def result_metrics(reference: np.ndarray, result: FitResult, task: str | None, *,
                   where: np.ndarray | None = None, scale: float | None = None) -> dict[str, Any]:
    """:func:`linr.metrics.report` of ``result``'s image against ``reference``, both divided first by
    ``scale`` (None: :func:`linr.defects.measured_scale`, where a defect was the photo's maximum: measured
    on the scene's range, each convention's ``scale_note`` says so)."""
    from .defects import SCALE_NOTE, measured_scale
    from .metrics import report

    scale = np.float32(measured_scale(result.settings) if scale is None else scale)
    metrics = report(np.asarray(reference, np.float32) / scale, result.image / scale, task, where=where)
    if scale != 1.0:
        for measured in metrics.values():
            measured["scale_note"] = SCALE_NOTE.format(scale=scale)
    return metrics


def fit_whole(obs: Sequence[Observation], config: FitConfig, rule: StopRule | None, *,
              reference: np.ndarray | None = None, callback: Callable[..., None] | None = None,
              on_pick: Callable[[str], None] | None = None) -> FitResult:
    """One fit of the whole image under ``rule`` (:func:`linr.fit.fit`), then, under a
    :class:`~linr.stopping.SurePick`, its returned average chosen by SURE (:func:`linr.sure.pick_by_sure`;
    ``on_pick('sure')`` called before it starts): what :func:`restore` and the web app run for an
    image restored whole by one network."""
    result = fit(obs, config, reference=reference, stop=rule, callback=callback)
    if isinstance(rule, SurePick):
        if on_pick is not None:
            on_pick("sure")
        pick_by_sure(result, obs, config, rule)
    return result


def _tiled_config(config: FitConfig, obs: Sequence[Observation]) -> FitConfig:
    """The settings every tile of a tiled restoration is fitted with: a prior weighted by the
    measured noise gets one weight for the whole image (the noise measured on the whole image,
    not on each tile, whose texture the wavelet estimate partly takes for noise)."""
    if config.prior is not None and weight_is_auto(config.prior):
        return dataclasses.replace(config, prior=build_prior(config.prior, obs).spec)
    return config


def _resumable_tiles(plan: "RestorePlan", config: FitConfig, store: str | None, replace: bool = False) -> int:
    """How many of a planned tiled restoration's tiles ``store`` holds finished for these very
    inputs and settings (resumed, not fitted again); 0 when it is whole or there is no store. A
    store holding finished tiles of another restoration is refused in one line unless ``replace``
    (as :class:`linr.tiling.TileStore` refuses it, but before anything starts)."""
    from .tiling import check_store, finished_tiles, store_fingerprint, stored_fingerprint

    if plan.grid is None or not store or stored_fingerprint(store) is None:
        return 0  # no store yet: nothing to hash the inputs (and measure their noise) for
    fingerprint = store_fingerprint(plan.obs, _tiled_config(config, plan.obs), plan.grid, _stop_name(plan.rule))
    check_store(store, fingerprint, replace=replace)
    return finished_tiles(store, fingerprint)


def retry_records(settings: dict[str, Any]) -> list[dict[str, Any] | None]:
    """Per fit of a result's ``settings`` (one fit, each tile's, each ensemble member's): its
    ``retry`` record (:attr:`FitConfig.retry_lr`), or None where the fit was not fitted again."""
    ensemble = settings.get("ensemble") or {}
    if ensemble.get("members"):
        return list(ensemble.get("retries") or [None] * ensemble["members"])
    if settings.get("tiles"):
        return [(tile or {}).get("retry") for tile in settings["tiles"]]
    return [settings.get("retry")]


def blends_in_tiles(refine: str | None) -> bool:
    """Whether refiner ``refine`` chooses its blend by held-out pixels in a tiled restoration too
    (those no tile trained on, :func:`linr.tiling.tiled_held_out`): ``grouped-pair`` since the
    thirty-second session; the others blend by them on whole images only. (The inpainting
    refiners in tiles, each tile stopped by :data:`AUTO_BLENDED`, were measured in the sixty-first
    session: +0.14 dB on six tune crops, -0.02 on four held-out ones, for 0.96-1.22x the time: not
    adopted; BENCHMARKS.md, "Inpainting at real sizes".)"""
    return refine is not None and REFINERS[refine].takes == "noisy+blurred"


def held_out_pixels(rule: StopRule | None) -> list[np.ndarray | None] | None:
    """Per observation of the fit (in its order), the (h, w) bool pixels its stop rule held out of
    the data term (``holdout``, ``pick``; the first such rule of several), or None where none were;
    None without such a rule."""
    held = holdout_rule(rule)
    if held is None:
        return None
    masks = held.held_out_masks()
    return masks if any(m is not None for m in masks) else None


def apply_refine(result: FitResult, refine: str, observations: Sequence[Observation],
                 held_out: np.ndarray | None = None) -> None:
    """Refine ``result.image`` in place (:func:`linr.refine.refine_image`; ``held_out``: pixels the
    fit did not train on, :func:`held_out_pixels`), keeping the fit's own
    image as ``result.fitted_image`` and recording the refinement in ``settings['refine']``; the result then has no model (none
    renders the refined image)."""
    started = time.perf_counter()
    try:
        refined, done = refine_image(refine, result.image, observations, held_out, extension=result.extended_image)
    except MemoryError:  # the fit is done: keep its image rather than lose it
        result.settings["refine"] = {"name": refine, "skipped": "out of memory: the fit's image is returned"}
        return
    result.fitted_image, result.image = result.image, refined
    result.settings["refine"] = done
    result.timings["refine_s"] = time.perf_counter() - started
    result.timings["total_s"] = result.timings.get("total_s", 0.0) + result.timings["refine_s"]
    result.model = None  # it renders the fit's image, not this one


NOTHING_MISSING = "every pixel is observed: the photo itself is the result, with no fit"
"""The stop reason (and the refinement's ``skipped``) of a restoration that needs no fit (:func:`nothing_missing`)."""


def nothing_missing(observations: Sequence[Observation], refine: str | None, *, ensemble: int = 1,
                    keep_model: bool = False) -> bool:
    """Whether a restoration's result is its photo as it is, with no fit: one photo with missing
    pixels whose mask leaves none out, refined by a refinement that puts the observed pixels back
    (``takes == 'masked'``: every pixel then the photo's), one member, no model kept. The whole fit
    ran before (a note said its result was the photo): at a scan's size, minutes to hours."""
    return len(observations) == 1 and observations[0].kind == "masked" and missing_share(observations[0]) == 0.0 \
        and refine is not None and REFINERS[refine].takes == "masked" and ensemble == 1 and not keep_model


def the_photo_itself(observations: Sequence[Observation], config: FitConfig, refine: str) -> FitResult:
    """The result of a restoration that needs no fit (:func:`nothing_missing`): the photo, its
    settings those a fit would report (no stop rule consulted; the refinement skipped)."""
    import torch

    from .fit import describe_fit

    (photo,) = observations
    image = np.array(photo.image, dtype=np.float32)
    weights = [1.0 if photo.weight is None else float(photo.weight)]
    settings = {**describe_fit(config, torch.device("cpu"), image.shape[:2], image.shape[2], observations, weights),
                "stop": {"name": "none", "why": NOTHING_MISSING}, "refine": {"name": refine, "skipped": NOTHING_MISSING}}
    timings = {"setup_s": 0.0, "fit_s": 0.0, "per_step_s": 0.0, "eval_s": 0.0, "train_s": 0.0, "total_s": 0.0}
    return FitResult(image, {"loss": []}, 0, 0, NOTHING_MISSING, timings, settings)


def check_ensemble(ensemble: int, *, tiled: bool, register: str | None = None, keep_model: bool = False,
                   stop_object: bool = False) -> None:
    """One-line errors for an ensemble that cannot be fitted, before any work."""
    if isinstance(ensemble, bool) or not isinstance(ensemble, int) or not 1 <= ensemble <= MAX_MEMBERS:
        raise InputError(f"ensemble must be a whole number of members from 1 to {MAX_MEMBERS}, got {ensemble!r}")
    if ensemble == 1:
        return
    if tiled:
        raise InputError("an ensemble fits the whole image several times; tiled restorations cannot "
                         "(tile='off', --tile off)")
    if register is not None:
        raise InputError("an ensemble cannot register frames yet; leave out register (--register)")
    if keep_model:
        raise InputError("an ensemble's image is the mean of several networks: no single model to "
                         "render or save (--save-model, --render-*)")
    if stop_object:
        raise InputError("an ensemble needs the stop rule as a spec (such as 'auto'), not one rule "
                         "object: each member gets its own")


def _record_measured_noise(settings: dict[str, Any], observations: Sequence[Observation],
                           preset: str | None) -> None:
    """Beside each observation's weight in the report, the measured noise level that set it."""
    for entry, sigma in zip(settings.get("observations", []), measured_noise(observations, preset=preset)):
        if sigma is not None:
            entry["weight_from_sigma"] = round(sigma, 3)


def describe_weights(resolved: Sequence[Observation], sigmas: Sequence[float | None],
                     names: Sequence[str] | None = None) -> str | None:
    """One line on weights set by measured noise (``sigmas`` from :func:`measured_noise`), or None;
    ``names``: the observations' files, named beside their levels (a glob that also caught an
    earlier output, nearly noise-free, shows which file takes the weight)."""
    named = names if names is not None and len(names) == len(resolved) else [None] * len(resolved)
    pairs = [(n, s, o.weight) for o, s, n in zip(resolved, sigmas, named) if s is not None]
    if not pairs:
        return None
    shown = ", ".join(f"{'' if n is None else f'{n} '}sigma {s:.1f} -> {w:.3g}" for n, s, w in pairs)
    return (f"noisy frames weighed by their measured noise (inverse variance; equal levels would "
            f"keep the kind's weight): {shown}")


def check_register_tiles(tile: "str | int | TileSetting | None", register: str | None) -> TileSetting:
    """The tile setting, parsed; a one-line error when frames are to be registered and tiles of a
    given size are asked for (registration fits one network of the whole image)."""
    setting = parse_tile(tile)
    if register is not None and setting.mode not in ("auto", "off"):
        raise InputError("registration (--register) needs one fit of the whole image; tiles cannot be "
                         "registered yet (tile 'auto' or 'off': leave out --tile, or --tile off)")
    return setting


def auto_whole_up_to(preset: str | None, *, pilot: bool) -> int | None:
    """The side (px) up to which ``tile='auto'`` restores an image whole (None: always whole): the
    preset's when one is named, else :data:`DENOISE_WHOLE_UP_TO` for the defaults' pilot
    (:func:`pilot_fit`) and :data:`TILE_WHOLE_UP_TO` for other fits."""
    if preset is not None:
        return PRESETS[preset].tile_whole_up_to
    return DENOISE_WHOLE_UP_TO if pilot else TILE_WHOLE_UP_TO


def tile_grid(observations: Sequence[Observation], *, preset: str | None = None,
              tile: "str | int | TileSetting | None" = "auto", register: str | None = None,
              pilot: bool = False) -> TileGrid | None:
    """The tiles :func:`restore` will fit for resolved observations, or None for one fit of the
    whole image (always with ``register`` unless tiles are asked for: registration needs one
    network of the whole image). ``pilot``: the fit is the defaults' pilot of one image
    (:func:`pilot_fit`, no ensemble), whose 'auto' tiles above :data:`DENOISE_WHOLE_UP_TO` px
    are :data:`DENOISE_TILE_SIZE` px."""
    setting = check_register_tiles(tile, register)
    p = PRESETS[DEFAULT_PRESET if preset is None else preset]
    whole_up_to = auto_whole_up_to(preset, pilot=pilot)
    if setting.mode == "auto" and (whole_up_to is None or register is not None):
        return None
    size = DENOISE_TILE_SIZE if pilot and preset is None else p.tile_size
    return grid_for(observations, setting, size=size, overlap=p.tile_overlap, whole_up_to=whole_up_to or 0)


def small_pilot_tiles_note(size: int | None, *, pilot: bool) -> str | None:
    """What tiles smaller than the pilot's own (:data:`DENOISE_TILE_SIZE`) cost the defaults'
    denoising, said before such a fit (None for other sizes and fits): each tile's pilot then
    holds out and stops on fewer pixels, and the tiles overlap over more of the image."""
    if not pilot or size is None or size >= DENOISE_TILE_SIZE:
        return None
    return (f"--tile {size}: tiles smaller than the {DENOISE_TILE_SIZE} px the defaults use for denoising lost "
            "quality and time on the photos measured (13 held-out 128-px RGB photos at sigma 25, against the "
            "default: tiles of 32 / 48 / 64 px -1.32 / -0.69 / -0.39 dB on average, in 2.4 / 1.5 / 1.9 times "
            "its time; BENCHMARKS.md, 'Options a user adds'); leave out --tile unless memory needs them")


def _tile_stack(stack: int | None, config: FitConfig) -> int:
    if stack is not None:
        if isinstance(stack, bool) or not isinstance(stack, numbers.Integral) or stack < 1:
            raise InputError(f"tile_stack must be a whole number of tiles, at least 1, got {stack!r}")
        return stack
    from .problem import resolve_device

    return 8 if resolve_device(config.device).type == "cuda" else 1


def restore_cost(observations: Sequence[Observation] | Observation, *, preset: str | None = None,
             steps: int | None = None, lr: float | None = None, seed: int = 0, device: str = "auto",
             model: ModelConfig | None = None, stop: StopRule | str | None = None, precision: str | None = None,
             prior: str | None = None, refine: str | None = None, keep_model: bool = False,
             register: str | None = None, tile: "str | int | TileSetting | None" = "auto",
             tile_stack: int | None = None, ensemble: int = 1, frames: int = 1,
             tile_store: str | None = None, tile_store_replace: bool = False,
             clipping: str = "auto", threads: int | str | None = "auto", detail: bool = False,
             headroom: Any = "auto", defects: Any = "auto") -> Any:
    """What :func:`restore` with these options will cost, as the line it says before a long
    restoration (:func:`linr.forecast.forecast_line`: the fit's time and memory, its tiles, the
    refinement after it, a warning where that will not fit in memory); for a short one only the
    warning, or None. The same checks as :func:`restore`'s before its fit (one-line errors).
    ``frames``: restorations of this size one after the other (``linr restore``'s frames);
    ``tile_store``: the folder of :func:`restore`'s; tiles it holds finished for these inputs
    and settings are resumed, not counted (finished tiles of another restoration: refused in one
    line, unless ``tile_store_replace``, as :func:`restore` refuses them). ``threads``: as
    :func:`restore`'s (the time is measured on the threads its restoration would use; the line
    does not repeat their note). ``detail``: the :class:`linr.forecast.Forecast` (the line and the
    estimated seconds) instead of the line."""
    observations = check_observations(observations)
    plan = plan_restore(observations, preset=preset, steps=steps, lr=lr, seed=seed, device=device, model=model,
                 progress=False, precision=precision, prior=prior, refine=refine, keep_model=keep_model,
                 stop=stop, register=register, tile=tile, ensemble=ensemble, clipping=clipping, headroom=headroom,
                     defects=defects)
    with _threads_of_call(threads, device, False):
        said = _forecast(plan, steps=steps, lr=lr, tile_stack=tile_stack, ensemble=ensemble, frames=frames,
                         tiles_done=_resumable_tiles(plan, plan.config, tile_store, tile_store_replace))
    return said if detail else said.line


@dataclass
class RestorePlan:
    """What :func:`restore` resolves and checks before any fit (:func:`plan_restore`)."""

    obs: list[Observation]
    config: FitConfig
    grid: TileGrid | None
    refine: str | None
    rule: StopRule | None
    pilot: bool
    """Whether the fit is the defaults' pilot (:func:`pilot_fit`; an ensemble's members too)."""
    refine_left_out: dict[str, str] | None = None
    """``settings['refine']`` where the default refinement is left out for the image's size
    (:func:`default_refine_left_out`)."""
    route: NoiseRoute | None = None
    """How photon noise or a clipped Gaussian photo is restored (:func:`linr.stabilise.restore_route`):
    through a transform (``obs`` are then the transformed photos; a burst averaged, one photo) or
    by photon noise's likelihood; None: as the photos are."""
    aligned: list[dict[str, Any] | None] | None = None
    """The shifts a registered burst's frames were moved by onto the first's grid (per frame, the
    first None), or None: not aligned before the fit (which then learns the registration asked
    for, if any)."""
    fits: bool = True
    """False where no fit is needed: the photo is the result (:func:`nothing_missing`; no tiles then)."""
    headroom: float = 1.0
    """How many times the photo's scale the fit's covers (:func:`linr.headroom.headroom_for`: a blurred
    photo of point sources; ``obs`` are then the photo divided by it, the result multiplied back)."""
    blur_noisy: bool | None = None
    """Whether the blurred photo is noisy (:func:`noisy_blur`), decided on its own scale where the
    fit's is widened; None: measured on ``obs``."""
    saturated: int = 0
    """The blurred photo's pixels at its maximum left out of its data term where its scale is widened
    automatically (:func:`linr.headroom.saturated_plateau`); 0: none."""
    defects: Defects = dataclasses.field(default_factory=Defects)
    """The blurred photo's pixels sharper than its blur allows, left out of its data term
    (:mod:`linr.defects`)."""
    defect_scale: float = 1.0
    """What the photo was divided by where a defect was its maximum (:func:`linr.defects.defect_scale`);
    1.0: not."""

    @property
    def fit_scale(self) -> float:
        """How many times the photo's scale the fit's covers: ``obs`` are the photo divided by it, the
        result is multiplied back (:attr:`headroom` and :attr:`defect_scale` together)."""
        return self.headroom * self.defect_scale


def plan_restore(observations: Sequence[Observation], *, preset: str | None = None, steps: int | None = None,
                 lr: float | None = None, seed: int = 0, device: str = "auto", model: ModelConfig | None = None,
                 progress: bool | None = None, precision: str | None = None, prior: str | None = None,
                 refine: str | None = None, keep_model: bool = False, stop: StopRule | str | None = None,
                 register: str | None = None, tile: Any = "auto", ensemble: int = 1,
                 clipping: str = "auto", headroom: Any = "auto", defects: Any = "auto") -> RestorePlan:
    """The observations and settings :func:`restore` with these options fits, its tiles,
    refinement and stop rule, with the checks that need no fit (one-line errors): what a caller
    that runs the restore itself (the web app) shows beforehand. Photos with photon noise are
    planned as their Anscombe transforms where that route applies, an aligned Gaussian burst as
    its frames' weighted mean (:mod:`linr.stabilise`), and a registered burst of noisy photos
    aligned first, then as such a burst (:func:`linr.stabilise.aligned_burst`)."""
    observations, aligned = aligned_burst(observations, register=register, preset=preset)
    if aligned is not None:
        register = None  # moved onto the first frame's grid: nothing left for the fit to learn
    route = restore_route(observations, register=register, preset=preset, clipping=clipping)
    observations = stabilised(observations, route)
    observations, factor, blur_noisy, saturated, found, scale = _widened(
        observations, preset=preset, keep_model=keep_model, headroom=headroom, defects=defects, clipping=clipping)
    obs, config = resolve(
        observations, preset=preset, steps=steps, lr=lr, seed=seed, device=device,
        model=model, progress=progress, precision=precision, prior=prior, refine=refine, keep_model=keep_model,
        stop=stop, register=register,
    )
    pilot = pilot_fit(observations, preset=preset, model=model, stop=stop, refine=refine, keep_model=keep_model)
    grid = tile_grid(obs, preset=preset, tile=tile, register=register, pilot=pilot and ensemble == 1)
    if register is not None and any(any(o.operator.margins) for o in obs):
        raise InputError("registration (--register) warps the rendered image, and a blur with free edges reads "
                         "beyond the frame: not built together yet; give the blur --boundary reflect")
    left_out = None if refine is not None else \
        default_refine_left_out(obs, preset=preset, keep_model=keep_model, register=register)
    refine = resolve_refine(refine, obs, preset=preset, keep_model=keep_model, register=register)
    fits = not nothing_missing(obs, refine, ensemble=ensemble, keep_model=keep_model)
    grid = grid if fits else None
    rule = resolve_stop(obs, preset=preset, steps=steps, stop=stop, keep_model=keep_model,
                        refine=refine if grid is None else None, blur_noisy=blur_noisy)  # tiles: each its own
    check_ensemble(ensemble, tiled=grid is not None, register=register, keep_model=keep_model,
                   stop_object=isinstance(stop, StopRule))
    rule = _sure_rule(rule, obs, stop=stop, preset=preset, refine=refine, whole=grid is None, keep_model=keep_model,
                      averaged_level=_averaged_level(route))
    return RestorePlan(obs, sure_in_float32(config, [rule], precision), grid, refine, rule, pilot, left_out, route,
                       aligned, fits, factor, blur_noisy, saturated, found, scale)


def _widened(observations: Sequence[Observation], *, preset: str | None, keep_model: bool,
             headroom: Any, defects: Any = "auto", clipping: str = "auto"
             ) -> tuple[list[Observation], float, bool | None, int, Defects, float]:
    """The observations a restore fits where the fit's scale differs from the photo's, with: the
    headroom's factor (:mod:`linr.headroom`: :func:`~linr.headroom.headroom_for`; where automatic, a
    saturated plateau left out); whether the blurred photo is noisy as measured on its own scale
    without defects (:func:`noisy_blur`; None where the scale is the photo's: measured on the fitted
    ones); the count of saturated pixels left out; the photo's defects (:mod:`linr.defects`: left
    out of its data term) and the factor they divided it by (a hot pixel its white). On the photo's
    own scale, a blurred photo clipped at white gets its data term censored there
    (:func:`linr.headroom.censored_at_white`, ``clipping`` 'auto')."""
    found = defects_of(observations, preset=preset, defects=defects)
    observations, scale = without_defects(observations, found, rescale=not keep_model)
    factor = headroom_for(observations, preset=preset, keep_model=keep_model, headroom=headroom)
    if factor == 1.0:
        if scale == 1.0:  # on the photo's own scale: its pixels at white are white or beyond
            observations = censored_at_white(observations, preset=preset, clipping=clipping)
        return list(observations), factor, None, 0, found, scale
    saturated = saturated_pixels(observations[0]) if headroom == "auto" else None
    return (lifted(observations, factor, saturated=saturated), factor, noisy_blur(observations),
            0 if saturated is None else int(saturated.sum()), found, scale)


def said_censored(result: FitResult, observations: Sequence[Observation]) -> None:
    """``settings['clipped_at_white']`` where the blurred photo's data term was censored at white
    (:func:`linr.headroom.censored_at_white`): how many of its pixels, and how."""
    from .fidelity import SquaredErrorCensoredAtWhite
    from .headroom import clipped_at_white

    if len(observations) == 1 and isinstance(observations[0].fidelity, SquaredErrorCensoredAtWhite):
        result.settings["clipped_at_white"] = {
            "pixels": clipped_at_white(observations[0]), "data_term": observations[0].fidelity.name,
            "note": "the pixels at white say only that the blurred scene is at least white there (the data term "
                    "censored), not that it is white"}


def sure_in_float32(config: FitConfig, rules: Sequence[StopRule | None], precision: str | None) -> FitConfig:
    """``config`` with float32 products where a rule is the SURE pick and no precision was asked
    for: the pick differentiates the pilot by a second fit to a slightly perturbed photo
    (:mod:`linr.sure`), and bf16's rounding would enter that difference. (On 64-px crops, sigma 25,
    the pick with the bf16 pilot returned -0.13 dB on average against float32 on nine colour crops,
    -1.12 on one; grey +0.06: BENCHMARKS.md, '#14 the pilot's products in bf16'.)"""
    if precision is None and config.precision != "float32" and any(isinstance(r, SurePick) for r in rules):
        return dataclasses.replace(config, precision="float32")
    return config


def _sure_by_default(obs: Sequence[Observation], *, stop: Any, preset: str | None, refine: str | None,
                     keep_model: bool, averaged_level: float | None = None) -> bool:
    """Whether the automatic stop of one fit of the whole image is the SURE pick: ``stop`` automatic,
    no preset, a photo it can serve (:func:`linr.sure.why_not`) of at most
    :func:`linr.sure.up_to_pixels` pixels (:data:`~linr.sure.UP_TO_PIXELS` in grey,
    :data:`~linr.sure.UP_TO_PIXELS_COLOUR` in colour) and noise enough (:func:`linr.sure.noisy_enough`:
    at least :data:`linr.sure.MIN_SIGMA`, or an aligned burst's mean measured as its frames say,
    ``averaged_level``: :func:`_averaged_level`)."""
    h, w = clean_shape(obs)
    return stop in (None, "auto") and preset is None and h * w <= up_to_pixels(obs[0].channels) and \
        why_not(obs, refine, whole=True, keep_model=keep_model) is None and noisy_enough(obs, averaged_level)


def _averaged_level(route: Any) -> float | None:
    """The noise level (0-1 scale) that the measured levels of the frames an aligned burst's
    ``route`` (:func:`linr.stabilise.restore_route`'s, or None) averages give their weighted mean
    (``sqrt(sum w_k^2 sigma_k^2)``), or None: the route averages fewer than two frames' worth (its
    squared weights summing to more than :data:`linr.sure.AVERAGED_WEIGHT_MOST`)."""
    from .sure import AVERAGED_WEIGHT_MOST

    if route is None or route.averaged < 2 or route.frames_used < 2 or route.transform is None:
        return None
    transform = route.transform
    levels = getattr(transform, "measured", None) or getattr(transform, "sigmas", None)
    weights = route.weights or getattr(transform, "weights", None)
    if levels is None or weights is None or float(np.sum(np.square(weights))) > AVERAGED_WEIGHT_MOST + 1e-9:
        return None
    return float(np.sqrt(np.sum(np.square(weights) * np.square(levels))))


def _sure_rule(rule: StopRule | None, obs: Sequence[Observation], *, stop: Any, preset: str | None,
               refine: str | None, whole: bool, keep_model: bool, averaged_level: float | None = None
               ) -> StopRule | None:
    """The stop rule with the SURE pick (:mod:`linr.sure`): the automatic stop of the defaults
    becomes :class:`~linr.stopping.SurePick` for one noisy photo of at most
    :func:`linr.sure.up_to_pixels` that the pick can serve, noisy enough (:func:`_sure_by_default`);
    a ``sure`` rule asked for where it cannot is refused in one line."""
    if isinstance(rule, SurePick):
        reason = why_not(obs, refine, whole=whole, keep_model=keep_model)
        if reason is not None:
            raise InputError(f"stop rule 'sure': {reason}")
        return rule
    if isinstance(holdout_rule(rule), SurePick):
        raise InputError("stop rule 'sure' stands alone: it chooses among its own checkpoints after the fit, "
                         "and another rule ending the fit first would leave it none to choose from")
    if whole and _sure_by_default(obs, stop=stop, preset=preset, refine=refine, keep_model=keep_model,
                                  averaged_level=averaged_level) and \
            type(rule) is HoldOut and rule.average is not None:
        return SurePick(fraction=rule.fraction, patience=rule.tracker.patience, seed=rule.seed,
                        check_every=rule.tracker.check_every, average=rule.average.spec)
    return rule


def _forecast(plan: RestorePlan, *, steps: int | None, lr: float | None, tile_stack: int | None, ensemble: int,
              frames: int = 1, tiles_done: int = 0) -> Any:
    """:func:`linr.forecast.forecast` of a planned restoration (:func:`restore_cost`)."""
    from .forecast import Forecast, Usual, forecast

    if not plan.fits:
        return Forecast(None)
    masked = plan.refine is not None and REFINERS[plan.refine].takes == "masked"  # an ensemble's members share them
    chooses = (plan.grid is None and (ensemble == 1 or masked) or plan.grid is not None and blends_in_tiles(plan.refine)) \
        and holdout_rule(plan.rule) is not None
    usual = None
    if plan.rule is not None and plan.pilot and steps is None:  # its budget is far from binding (DEFAULT_PILOT_STEPS)
        own_tiles = plan.grid is not None and max(plan.grid.size) <= DENOISE_TILE_SIZE * 9 // 8
        usual = Usual(PILOT_TILE_USUAL_STOPS if own_tiles else PILOT_USUAL_STOPS,
                      "per tile on the benchmark photos" if own_tiles else "per image or tile on the benchmark photos",
                      "one that fails is fitted once more at the paper's learning rate") if lr is None else \
            Usual(None)  # measured at the pilot's own rate only
    elif plan.rule is not None and plan.grid is None and steps is None and lr is None and plan.refine is not None and \
            REFINERS[plan.refine].takes == "noisy+blurred" and holdout_rule(plan.rule) is not None and \
            (plan.config.steps, plan.config.schedule) == (DEFAULT_FREE_BLUR_STEPS, DEFAULT_FREE_BLUR_SCHEDULE):
        usual = Usual(PAIR_USUAL_STOPS, "on 96-px benchmark crops", "larger images stop later")
    stack = 1 if plan.grid is None else _tile_stack(tile_stack, plan.config)
    return forecast(plan.obs, plan.config, refine=plan.refine, stop=plan.rule, grid=plan.grid, stack=stack,
                    frames=frames, members=ensemble, chooses=chooses, usual=usual, tiles_done=tiles_done)


def _stop_name(rule: StopRule | None) -> str:
    return "fixed" if rule is None else json.dumps(rule.describe(), sort_keys=True)


def _shows(progress: bool | None) -> bool:
    """Whether to show progress on stderr: as asked, by default only on a terminal."""
    return sys.stderr.isatty() if progress is None else progress


REFINE_PROGRESS_EVERY = 30.0
"""Seconds between the lines that say how far a refinement has come (:func:`_refine_progress`)."""


def _refine_progress(progress: bool | None) -> Callable[[str, float], None] | None:
    """A :mod:`linr.progress` listener that says on stderr how far the refinement after the fit
    has come, a line every :data:`REFINE_PROGRESS_EVERY` seconds with the time left at its pace so
    far (a terminal, a log file or ``progress`` True alike; nothing with ``progress`` False): the
    grouped refinement of an 8192-px photo took 53 minutes without a word."""
    if progress is False:
        return None
    started = time.perf_counter()
    said: dict[str, Any] = {"at": started, "phase": "", "since": started, "done": 0.0, "broken": False}

    def say(phase: str, done: float) -> None:
        now = time.perf_counter()
        if phase != said["phase"] or done < said["done"]:  # a new phase (or a piece begun again): its own pace
            said["phase"], said["since"] = phase, now
        said["done"] = done
        if said["broken"] or now - said["at"] < REFINE_PROGRESS_EVERY or done <= 0.0:
            return
        spent = now - said["since"]
        if spent < 1.0:
            return
        said["at"] = now
        rest = spent / done * (1.0 - done)
        left = f", about {format_duration(rest)} left" if rest >= 1.0 else ""
        of = f"{phase}, " if phase else ""
        try:
            print(f"refining: {of}{int(done * 100)}% after {format_duration(spent)}{left}", file=sys.stderr,
                  flush=True)
        except (OSError, ValueError):  # stderr gone (a closed pipe): the refinement goes on unsaid
            said["broken"] = True

    return say


def _both(first: Callable[[str, float], None] | None,
          second: Callable[[str, float], None] | None) -> Callable[[str, float], None] | None:
    """One :mod:`linr.progress` listener that tells ``first`` then ``second`` (either may be None)."""
    if first is None or second is None:
        return first or second

    def say(phase: str, done: float) -> None:
        first(phase, done)
        second(phase, done)

    return say


def _tile_progress(progress: bool | None):
    """A tile counter with an ETA on stderr: a bar like the fit's on a terminal (or when asked), by
    default elsewhere (a log file) one line per batch of tiles; nothing with ``progress`` False."""
    if progress is None and not sys.stderr.isatty():
        first: list[int] = []  # the tiles finished before this run (resumed from a store): not timed

        def say(done: int, total: int, seconds: float) -> None:
            if not first:
                first.append(done)
                resumed = f" ({done} resumed from the tile store)" if done else ""
                print(f"tiles: {total - done} of {total} to fit{resumed}", file=sys.stderr, flush=True)
                return
            left = "" if done >= total else \
                f", about {format_duration(seconds / (done - first[0]) * (total - done))} left"
            print(f"tiles: {done}/{total} done after {format_duration(seconds)}{left}", file=sys.stderr, flush=True)

        return say
    if not _shows(progress):
        return None
    from tqdm import tqdm

    bar: dict[str, Any] = {}

    def update(done: int, total: int, seconds: float) -> None:
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, initial=done, unit="tile", desc="tiles", leave=False)
            return
        bar["bar"].update(done - bar["bar"].n)
        if done >= total:
            bar["bar"].close()

    return update


def restore_many(
    scenes: Sequence[Sequence[Observation]],
    *,
    preset: str | None = None,
    steps: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    device: str = "auto",
    model: ModelConfig | None = None,
    references: Sequence[np.ndarray | None] | None = None,
    measured_pixels: Sequence[np.ndarray | None] | None = None,
    stop: str | None = None,
    progress: bool | None = None,
    precision: str | None = None,
    prior: str | None = None,
    refine: str | None = None,
    clipping: str = "auto",
    threads: int | str | None = "auto",
    headroom: Any = "auto",
    defects: Any = "auto",
) -> list[FitResult]:
    """:func:`restore` for several scenes at once, their models stacked (:func:`linr.fit.fit_many`)
    (each refined as :func:`restore` would refine it, through its route as :func:`restore` takes
    it: :mod:`linr.stabilise`):
    the same results up to rounding, in one loop of batched products, which fills a GPU that
    one small image leaves mostly idle. The scenes must resolve to the same settings (same
    observation kinds, so the same preset steps and model) and the same restored size; ``stop``
    is a spec, from which each scene gets its own rule. ``measured_pixels``: each scene's pixels
    that its ``result.metrics`` measure (:func:`restore`'s; None: every pixel of every scene).
    ``threads``: torch's threads for the call, as :func:`restore`'s (each result's
    ``settings['threads']`` says where fewer were chosen).
    """
    with _threads_of_call(threads, device, progress) as said_threads:
        if isinstance(stop, StopRule):
            raise InputError("restore_many: give the stop rule as a spec such as 'auto', not one "
                             "rule object for every scene")
        scenes = [check_observations(obs) for obs in scenes]  # one bare observation: a scene of its own
        originals = list(scenes)
        asked = [_on_unit_scale(r) for r in references] if references is not None else [None] * len(scenes)
        measured = list(measured_pixels) if measured_pixels is not None else [None] * len(scenes)
        if len(measured) != len(scenes):
            raise InputError(f"restore_many: {len(measured)} measured_pixels for {len(scenes)} scenes")
        for where, reference in zip(measured, asked):
            _check_measured_pixels(where, reference)
        routes = [restore_route(obs, preset=preset, clipping=clipping) for obs in scenes]
        scenes = [stabilised(obs, route) for obs, route in zip(scenes, routes)]
        widened = [_widened(obs, preset=preset, keep_model=False, headroom=headroom, defects=defects, clipping=clipping)
                   for obs in scenes]
        unlifted, scenes, factors = scenes, [w[0] for w in widened], [w[1] * w[5] for w in widened]
        given = [references is not None and references[k] is not None for k in range(len(scenes))]
        if references is not None:  # on the transformed photos' scale, as restore() compares them
            references = [None if r is None else stabilised_reference(r, route) / np.float32(f)
                          for r, route, f in zip(asked, routes, factors)]
        resolved = [resolve(obs, preset=preset, steps=steps, lr=lr, seed=seed, device=device,
                            model=model, progress=progress, precision=precision, prior=prior, refine=refine,
                            stop=stop)
                    for obs in scenes]
        if not resolved:
            raise InputError("restore_many: nothing to restore")
        config = resolved[0][1]
        for k, (_, other) in enumerate(resolved[1:], start=1):
            if other != config:
                differ = [f.name for f in dataclasses.fields(config)
                          if getattr(config, f.name) != getattr(other, f.name)]
                raise InputError(f"restore_many: scene {k} resolves to other settings than scene 0 "
                                 f"({', '.join(differ)}); restore them separately")
        refines = [resolve_refine(refine, obs, preset=preset) for obs, _ in resolved]
        rules = [_sure_rule(resolve_stop(obs, preset=preset, steps=steps, stop=stop, refine=spec, blur_noisy=noisy), obs,
                            stop=stop, preset=preset, refine=spec, whole=True, keep_model=False,
                            averaged_level=_averaged_level(route))
                 for (obs, _), spec, route, (_, _, noisy, *_) in zip(resolved, refines, routes, widened)]
        config = sure_in_float32(config, rules, precision)
        results = fit_many([obs for obs, _ in resolved], config, references=references, stops=rules)
        for result, obs, (fitted, _), spec, rule in zip(results, unlifted, resolved, refines, rules):
            if isinstance(rule, SurePick):  # as restore() chooses (its second fit one scene at a time)
                pick_by_sure(result, fitted, config, rule)
            result.settings["preset"] = "default" if preset is None else preset  # the defaults are not the paper preset
            _record_measured_noise(result.settings, obs, preset)
            said_censored(result, fitted)
            if spec is not None:
                apply_refine(result, spec, fitted, held_out=held_out_pixels(rule))
            elif refine is None and (left_out := default_refine_left_out(fitted, preset=preset)) is not None:
                result.settings["refine"] = left_out
        results = [restored_scale(lowered(result, f, asked=headroom, saturated=n), found, scale)
                   for result, (_, f, _, n, found, scale) in zip(results, widened)]
        results = [measured_against(unstabilised(result, route, reference_given=known), reference, obs, where=where)
                   for result, route, known, reference, obs, where in zip(results, routes, given, asked, originals,
                                                                          measured)]
        for result in results if said_threads is not None else ():
            result.settings["threads"] = said_threads
        return results


def describe_presets() -> dict[str, Any]:
    return {name: p.description for name, p in PRESETS.items()}
