"""What a fit is made of: the observations of one scene and, on the device, the :class:`Problem`
that every loop trains on (targets, weights, restored size, optional reference)."""

from __future__ import annotations

import dataclasses
import math
import numbers
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from .errors import DivergenceError, InputError
from .fidelity import DataTerm, SquaredError
from .images import as_float_image
from .noise import MIN_SIDE, floored_noise_sigma
from .priors import NO_PRIOR, ImagePrior, parse_prior, weight_is_auto
from .operators import Operator

__all__ = ["Observation", "Problem", "OperatorSteps", "build_problem", "build_prior", "prior_noise_level",
           "prior_noise_inputs", "measures_gaussian_noise", "noise_level_known", "clean_shape", "blurred_alone", "margins_of", "frame_operators", "resolve_device",
           "clock"]


@dataclass
class Observation:
    """One corrupted view of the scene.

    ``image`` is (h, w, C) or (h, w): floats on [0, 1], or uint8 / uint16 scaled by their range
    (see :func:`linr.images.as_float_image`); ``operator`` maps the clean image to
    this observation's space; ``weight`` scales its data term; ``kind`` names it in reports
    (noisy, lowres, masked, blurred, or anything).
    """

    image: np.ndarray
    operator: Operator
    weight: float | None = None
    """None lets the preset decide (1.0 in a bare :func:`fit`)."""
    kind: str = "observation"
    fidelity: DataTerm = field(default_factory=SquaredError)
    """How ``A f`` is compared with the image (:mod:`linr.fidelity`; the paper's squared error)."""
    carries_noise: bool | None = None
    """Whether the image carries noise the fit must not reproduce (automatic stopping, the joint
    noisy weight and the discrepancy rule read it). Set by the kind's constructor
    (:mod:`linr.kinds`); None: True for an observation named 'noisy', else False."""

    def __post_init__(self) -> None:
        image = as_float_image(self.image, f"{self.kind} image")
        if self.carries_noise is None:
            self.carries_noise = self.kind == "noisy"  # built by hand with the kind's name
        if self.weight is not None and (isinstance(self.weight, bool) or not isinstance(self.weight, numbers.Real)
                                        or not (self.weight >= 0 and math.isfinite(self.weight))):
            raise InputError(f"{self.kind} weight must be a finite number >= 0, got {self.weight}")
        self.image = image

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]

    @property
    def channels(self) -> int:
        return self.image.shape[2]


def resolve_device(name: str) -> torch.device:
    """Turn 'auto' / 'cpu' / 'cuda[:N]' into a device, with a clear error when unavailable."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise InputError(f"unknown device {name!r} (use cpu, cuda, cuda:N or auto)") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' requested but no CUDA GPU is available")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise InputError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                         "numbered from 0")
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"unsupported device {name!r} (use cpu, cuda, cuda:N or auto)")
    return device


def clean_shape(observations: Sequence[Observation]) -> tuple[int, int]:
    """The restored image size (H, W) that every observation's operator agrees on."""
    shapes: list[tuple[str, tuple[int, int]]] = []  # a list: two observations may share a kind
    for obs in observations:
        try:
            shape = tuple(obs.operator.input_shape(obs.shape))
            obs.operator.output_shape(shape)
        except ValueError as exc:
            raise InputError(f"{obs.kind} observation: {exc}") from exc
        shapes.append((obs.kind, shape))
    if len({shape for _, shape in shapes}) > 1:
        listed = ", ".join(f"{k} -> {w}x{h}" for k, (h, w) in shapes)
        raise InputError(f"observations disagree on the restored image size ({listed}; width x "
                         f"height){_multiple_hint(observations, shapes)}")
    return shapes[0][1]


def _multiple_hint(observations: Sequence[Observation], shapes: list[tuple[str, tuple[int, int]]]) -> str:
    """Where the sizes disagree only because a low-res view's factor does not divide the other photos'
    (each side within the factor of its view's times the factor): which crop of them lines up (a 50x37
    photo beside an x3 view of 17x12: 48x36, its view 16x12); empty where sizes disagree otherwise (a
    factor given wrong)."""
    from math import lcm

    from .operators import Downsample, inner_operator

    views = [(int(inner_operator(o.operator).factor), shape) for o, (_, shape) in zip(observations, shapes)
             if isinstance(inner_operator(o.operator), Downsample)]
    photos = [shape for o, (_, shape) in zip(observations, shapes) if not isinstance(inner_operator(o.operator), Downsample)]
    if not views or not photos:
        return ""
    near = all(abs(h - vh) < f and abs(w - vw) < f for f, (vh, vw) in views for h, w in photos)
    if not near or all(h % f == 0 and w % f == 0 for f, _ in views for h, w in photos):
        return ""
    f = lcm(*(f for f, _ in views))
    h, w = min(p[0] for p in photos), min(p[1] for p in photos)
    h, w = h - h % f, w - w % f
    if h == 0 or w == 0:
        return ""
    return (f"; a low-res view at x{f} covers {f} times its size: crop every shot to a multiple of {f} a side "
            f"(such as {w}x{h}, its low-res view {w // f}x{h // f})")


def blurred_alone(observations: Sequence[Observation]) -> bool:
    """Whether ``observations`` are one blurred photo alone (its transparent pixels left out or
    not) fitted by squared error: what :mod:`linr.headroom` and :mod:`linr.defects` serve."""
    from .operators import Blur, inner_operator

    return len(observations) == 1 and isinstance(inner_operator(observations[0].operator), Blur) and \
        isinstance(observations[0].fidelity, SquaredError)


def margins_of(observations: Sequence[Observation]) -> tuple[int, int, int, int]:
    """The pixels a fit of these observations renders beyond the restored frame (top, bottom,
    left, right): the most any operator reads beyond it on each side (a blur with free edges,
    :attr:`linr.operators.Operator.margins`); none when none does."""
    margins = [tuple(o.operator.margins) for o in observations]
    return tuple(max((m[k] for m in margins), default=0) for k in range(4))  # type: ignore[return-value]


def frame_operators(observations: Sequence[Observation]) -> list[Observation]:
    """The observations with every operator reading the one rendering of a fit of them all (the
    frame grown by :func:`margins_of`): an operator that reads less beyond the frame than that
    is wrapped in :class:`~linr.operators.Cropped` (a photo beside a blur with free edges); the
    observations unchanged when they all read the same."""
    from .operators import Cropped

    union = margins_of(observations)
    return [o if tuple(o.operator.margins) == union else
            dataclasses.replace(o, operator=Cropped(o.operator, union)) for o in observations]


def _to_chw(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)


@dataclass
class Problem:
    """Everything a loop needs, on the device: the resolved observations and their targets."""

    observations: list[Observation]
    weights: list[float]
    targets: list[torch.Tensor]
    """Per observation (1, C, h, w) on the [-1, 1] scale, unobservable entries zeroed."""
    height: int
    width: int
    channels: int
    device: torch.device
    reference: torch.Tensor | None
    """(1, C, H, W) on [0, 1], or None."""
    keeps: list[torch.Tensor | None] = field(default_factory=list)
    """Per observation, 0/1 over its entries (0 where its operator cannot produce the entry, as
    outside a mask), for data terms that are not 0 at (0, 0); None where not needed."""
    prior: ImagePrior | None = None
    """An explicit prior of the rendered image (:mod:`linr.priors`) added by :meth:`objective`."""
    margins: tuple[int, int, int, int] = (0, 0, 0, 0)
    """Pixels the fit renders beyond the restored frame (top, bottom, left, right;
    :func:`margins_of`): the operators read them, the result is the frame (:meth:`framed`)."""

    def __post_init__(self) -> None:
        if not self.keeps:
            self.keeps = [None] * len(self.observations)

    @property
    def rendered_shape(self) -> tuple[int, int]:
        """(rows, columns) the fit renders: the restored ``height`` x ``width`` and the margins."""
        top, bottom, left, right = self.margins
        return self.height + top + bottom, self.width + left + right

    def framed(self, output: torch.Tensor) -> torch.Tensor:
        """The restored frame (..., H, W) of a rendered output (..., rendered rows, columns)."""
        top, _, left, _ = self.margins
        if not any(self.margins):
            return output
        return output[..., top:top + self.height, left:left + self.width]

    def data_term(self, output: torch.Tensor) -> torch.Tensor:
        """sum_i w_i mean(d_i(A_i f, y_i)) of an output (1, C, H, W) on [-1, 1], with each
        observation's data term d_i (squared error: the paper's sum_i w_i mean((A_i f - y_i)^2))."""
        return sum(
            w * obs.fidelity.value(obs.operator(output), y, keep)
            for w, obs, y, keep in zip(self.weights, self.observations, self.targets, self.keeps)
        )

    def objective(self, output: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(what a fit minimises, its data term): :meth:`data_term` plus the prior's value, if
        any, and the data term alone, which is what the fit records as its loss and what stop
        rules that watch the loss (discrepancy, plateau) compare with the noise."""
        data = self.data_term(output)
        return (data if self.prior is None else data + self.prior.value(output)), data


class OperatorSteps:
    """Adam over what a problem's operators train besides the image (registration transforms,
    :mod:`linr.registration`), stepped after each step of the image model; nothing to do for
    fixed operators. Every ``check_every`` steps each operator checks its parameters are still in
    range (a registration that diverged ends the fit with :class:`DivergenceError`)."""

    def __init__(self, problem: Problem, *, check_every: int = 25) -> None:
        shape = (problem.height, problem.width)
        self.problem = problem
        self.groups = [g for obs in problem.observations for g in obs.operator.parameter_groups(shape)]
        self.params = [t for g in self.groups for t in g["params"]]
        from .adam import adam

        self.optimizer = adam(self.groups) if self.groups else None
        self.check_every = check_every

    def __bool__(self) -> bool:
        return self.optimizer is not None

    def step(self, step: int) -> None:
        if self.optimizer is None:
            return
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        if (step + 1) % self.check_every == 0:
            self.check()

    def check(self) -> None:
        shape = (self.problem.height, self.problem.width)
        for obs in self.problem.observations:
            try:
                obs.operator.check(shape)
            except ValueError as exc:
                raise DivergenceError(f"{obs.kind} observation: {exc}") from None


def measures_gaussian_noise(obs: Observation) -> bool:
    """Whether an observation carries noise that the defaults measure as Gaussian (compared by
    squared error): the noise level sets ``auto`` prior weights and the weights of frames."""
    return bool(obs.carries_noise) and isinstance(obs.fidelity, SquaredError)


def noise_level_known(obs: Observation) -> bool:
    """Whether an observation carries noise whose level a refinement can weigh it by: Gaussian
    (:func:`measures_gaussian_noise`, measured on it) or photon counts (its data term gives the
    variance from the image, :attr:`linr.fidelity.DataTerm.variance_known`)."""
    return measures_gaussian_noise(obs) or bool(obs.carries_noise) and bool(getattr(obs.fidelity, "variance_known", False))


def prior_noise_inputs(observations: Sequence[Observation], spec: str) -> list[Observation]:
    """The observations an ``auto`` weight of prior ``spec`` is measured on (those with Gaussian
    noise, :func:`measures_gaussian_noise`); a one-line InputError when there are none or one is
    too small to measure (cheap: nothing is measured here)."""
    noisy = [o for o in observations if measures_gaussian_noise(o)]
    if not noisy:
        parse_prior(spec)  # the prior's own one-line error: nothing to measure the noise on
    for o in noisy:
        if min(o.shape) < MIN_SIDE:
            raise InputError(f"prior {spec!r}: the {o.kind} image ({o.shape[0]}x{o.shape[1]}) is too small "
                             f"to measure its noise; give a weight, such as {spec.split(':')[0]}:0.05")
    return noisy


def prior_noise_level(noisy: Sequence[Observation]) -> float:
    """The noise level (data range 1) that sets an ``auto`` prior weight, ``sqrt(sum_i (w_i
    sigma_i)^2)`` over the observations with Gaussian noise (:func:`prior_noise_inputs`):
    ``sigma_i`` measured on each (:func:`linr.noise.estimate_noise_sigma`, floored at
    :data:`~linr.noise.MIN_MEASURED_SIGMA`), ``w_i`` its data-term weight. Their data terms
    together equal one term of weight ``W = sum_i w_i`` on their weighted mean, whose noise is
    ``sqrt(sum_i w_i^2 sigma_i^2) / W``; a prior tuned against one frame of weight 1 keeps the
    same balance at ``W`` times that noise. One frame of weight 1: its sigma."""
    total = 0.0
    for o in noisy:
        sigma = floored_noise_sigma(o.image)
        weight = 1.0 if o.weight is None else float(o.weight)
        total += (weight * sigma) ** 2
    return math.sqrt(total)


def build_prior(prior: str | None, observations: Sequence[Observation]) -> ImagePrior | None:
    """The prior of a spec (None: none); an ``auto`` weight is set from
    :func:`prior_noise_level` of these observations (InputError naming the problem when they
    carry none), so each image of a batch gets its own."""
    if prior is None or prior == NO_PRIOR:
        return None
    sigma = prior_noise_level(prior_noise_inputs(observations, prior)) if weight_is_auto(prior) else None
    return parse_prior(prior, noise_sigma=sigma)


def build_problem(observations: Sequence[Observation], device: str,
                  reference: np.ndarray | None, *, signed: bool = True,
                  prior: str | None = None) -> Problem:
    """Check the observations (and reference) agree and put their targets on ``device``;
    ``prior``: a spec of :func:`linr.priors.parse_prior` added to the loss (:func:`build_prior`).

    ``signed`` puts targets on the [-1, 1] scale the INR fits; False keeps [0, 1] (for models
    with a sigmoid output, such as DIP).
    """
    observations = list(observations)
    if not observations:
        raise InputError("at least one observation is needed")
    channels = {obs.channels for obs in observations}
    if len(channels) > 1:
        raise InputError(f"observations have different channel counts: {sorted(channels)}")
    (c,) = channels
    height, width = clean_shape(observations)
    observations = frame_operators(observations)  # (done already by a fit, before its stop rule's set-up)
    margins = margins_of(observations)
    dev = resolve_device(device)
    ref_t = None
    if reference is not None:
        ref = as_float_image(reference, "reference", any_values=True)  # measured against only: any units
        if ref.shape != (height, width, c):
            raise InputError(f"the reference is {ref.shape[1]}x{ref.shape[0]} with {ref.shape[2]} channel(s); "
                             f"the restored image is {width}x{height} with {c} channel(s)")
        ref_t = _to_chw(ref, dev)
    targets = [obs.operator.project(_to_chw(obs.image, dev) * 2 - 1 if signed else _to_chw(obs.image, dev))
               for obs in observations]
    weights = [1.0 if obs.weight is None else float(obs.weight) for obs in observations]
    keeps = [None if isinstance(obs.fidelity, SquaredError) else obs.operator.project(torch.ones_like(y))
             for obs, y in zip(observations, targets)]
    image_prior = build_prior(prior, observations)
    return Problem(observations, weights, targets, height, width, c, dev, ref_t, keeps, image_prior, margins)


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the work queued on ``device`` has finished (CUDA runs
    asynchronously: without the wait, a loop's time would only be the time to queue it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()
