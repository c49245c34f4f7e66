"""The fit: one loop that restores an image from any list of observations.

Each observation is an image ``y_i``, a forward operator ``A_i`` and a weight ``w_i``. The image
model ``f`` is rendered on the clean grid and trained with Adam on

    loss = sum_i  w_i * mean((A_i f - y_i)^2)          (values on the [-1, 1] scale)

A single task is a list of one; joint restoration is a longer list. Nothing else is special-cased.

Two loops run that mathematics: the plain autograd loop below (any model) and, for the SIREN, the
fast engine of :mod:`linr.fastfit` (same network function and Adam trajectory up to rounding,
fewer passes over memory, only observed pixels for inpainting, chunks for large images). Both
report through :class:`Monitor`, so stop rules, callbacks and histories behave the same.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .engine import PRECISIONS
from .errors import DivergenceError, InputError
from .images import as_float_image
from .models import ModelConfig, build_model, coordinate_grid
from .operators import Operator
from .stopping import StopRule

__all__ = ["Observation", "FitConfig", "FitResult", "fit", "fit_many", "resolve_device", "clock"]


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

    def __post_init__(self) -> None:
        image = as_float_image(self.image, f"{self.kind} image")
        if self.weight is not None and not (self.weight >= 0 and math.isfinite(self.weight)):
            raise InputError(f"{self.kind} weight must be a finite number >= 0, got {self.weight}")
        self.image = image

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]

    @property
    def channels(self) -> int:
        return self.image.shape[2]


MAX_STEPS = 1_000_000
"""Most steps a fit may ask for: the per-step history is allocated up front."""


@dataclass(frozen=True)
class FitConfig:
    """Settings of one fit (defaults: the paper's, for a 500-step task)."""

    steps: int = 500
    """Maximum number of Adam steps (a stop rule may end the fit earlier)."""
    lr: float = 1e-4
    """Adam learning rate."""
    seed: int = 0
    """Seeds the model initialisation; the same seed gives the same result on the same device."""
    device: str = "auto"
    """'cpu', 'cuda', 'cuda:N' or 'auto' (CUDA when available)."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """Architecture of the image model."""
    progress: bool | None = None
    """Show a progress bar; None shows one only when stderr is a terminal."""
    check_every: int = 25
    """Steps between checks for a diverged (non-finite) loss."""
    engine: str = "auto"
    """'auto': the fast SIREN engine (:mod:`linr.engine`, same mathematics) for SIREN models and
    the plain autograd loop otherwise; 'plain': always the plain loop."""
    schedule: str = "constant"
    """Learning-rate schedule: 'constant' (the paper's) or 'cosine' (lr * (1 + cos(pi t/T)) / 2)."""
    chunk_pixels: int = 2**17
    """Fast engine: most pixels rendered with gradients at once (bounds memory, see
    :func:`linr.engine.estimate`); larger images are fitted in chunks with identical gradients."""
    batch_pixels: int | None = None
    """Fast engine: a random batch of this many pixels per step instead of all of them; only
    when every operator acts pixel by pixel (noisy, masked), otherwise ignored."""
    precision: str = "float32"
    """Fast engine: matmul precision of the hidden layers. 'float32' (the paper's mathematics),
    'bf16' (bfloat16 inputs, float32 accumulation; fast on CPUs with AMX and on GPUs) or 'tf32'
    (CUDA only); the first layer, the head and Adam stay float32 (see :mod:`linr.engine`)."""
    eval_every: int = 1
    """With a reference, PSNR is recorded every this many steps (1: every step, the default)
    whenever the fast engine would have to render the whole image only for it."""

    def __post_init__(self) -> None:
        if int(self.steps) != self.steps or self.steps < 1:
            raise InputError(f"steps must be a positive integer, got {self.steps}")
        if self.steps > MAX_STEPS:
            raise InputError(f"steps must be at most {MAX_STEPS:,} (a paper fit takes 500 to 4000), "
                             f"got {self.steps:,}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"learning rate must be a positive number, got {self.lr}")
        if self.engine not in ("auto", "plain"):
            raise InputError(f"engine must be 'auto' or 'plain', got {self.engine!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule must be one of {', '.join(SCHEDULES)}, got {self.schedule!r}")
        for name in ("chunk_pixels", "eval_every"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise InputError(f"{name} must be a positive integer, got {value}")
        if self.batch_pixels is not None and (int(self.batch_pixels) != self.batch_pixels
                                              or self.batch_pixels < 1):
            raise InputError(f"batch_pixels must be a positive integer, got {self.batch_pixels}")


SCHEDULES = ("constant", "cosine")


def lr_factor(schedule: str, step: int, steps: int) -> float:
    """Multiplier of the base learning rate at ``step`` (0-based) of ``steps``."""
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * step / steps))
    return 1.0


@dataclass
class FitResult:
    """What a fit returns.

    ``image`` is (H, W, C) float32 on the [0, 1] scale, NOT clipped (clip before saving; the
    paper measures unclipped outputs). ``history`` holds one value per step: ``loss`` (the total
    data term) and, when a reference was given, ``psnr`` (RGB, data range 1, of the output the
    step started from).
    """

    image: np.ndarray
    history: dict[str, list[float]]
    steps_run: int
    stop_step: int
    stop_reason: str
    timings: dict[str, float]
    settings: dict[str, Any]

    def to_dict(self, *, history: bool = True) -> dict[str, Any]:
        out = {
            "steps_run": self.steps_run,
            "stop_step": self.stop_step,
            "stop_reason": self.stop_reason,
            "timings": self.timings,
            "settings": self.settings,
        }
        if history:
            out["history"] = self.history
        return out


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
    if device.type not in ("cpu", "cuda"):
        raise InputError(f"unsupported device {name!r} (use cpu, cuda, cuda:N or auto)")
    return device


def _clean_shape(observations: Sequence[Observation]) -> tuple[int, int]:
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
                         "height)")
    return shapes[0][1]


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

    def data_term(self, output: torch.Tensor) -> torch.Tensor:
        """sum_i w_i mean((A_i f - y_i)^2) of an output (1, C, H, W) on [-1, 1]."""
        return sum(
            w * torch.mean((obs.operator(output) - y) ** 2)
            for w, obs, y in zip(self.weights, self.observations, self.targets)
        )


class Monitor:
    """Per-step bookkeeping shared by the loops: loss and PSNR history, divergence checks,
    callback, progress bar and the stop rule. Keeps values on the device (no per-step sync)."""

    def __init__(self, problem: Problem, config: FitConfig, *, stop: StopRule | None,
                 callback: Callable[[int, torch.Tensor, float], None] | None) -> None:
        self.problem, self.config, self.stop, self.callback = problem, config, stop, callback
        self.losses = torch.empty(config.steps, device=problem.device)
        self.psnrs: list[torch.Tensor] = []
        self.psnr_steps: list[int] = []
        self.steps_run = 0
        self.stop_reason, self.stop_step = "fixed steps", config.steps
        self.eval_s = 0.0
        show = sys.stderr.isatty() if config.progress is None else config.progress
        self.bar = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=config.steps, desc="fitting", unit="step", leave=False)

    @property
    def needs_output(self) -> bool:
        """Whether every step's whole output must be seen (stop rule or callback)."""
        return self.stop is not None or self.callback is not None

    def wants_output(self, step: int) -> bool:
        """Whether ``step`` needs the whole output rendered (if the loop does not have it)."""
        if self.needs_output:
            return True
        return self.problem.reference is not None and step % self.config.eval_every == 0

    def record(self, step: int, output: torch.Tensor | None, loss: torch.Tensor) -> bool:
        """Book step ``step`` (0-based); ``output`` (1, C, H, W) detached, or None when the loop
        did not render it. Returns True when the stop rule ends the fit."""
        self.steps_run = step + 1
        loss = loss.detach()
        self.losses[step] = loss
        ref = self.problem.reference
        if output is not None and ref is not None:
            mse = torch.mean(((output + 1) / 2 - ref) ** 2)
            self.psnrs.append(-10 * torch.log10(mse))
            self.psnr_steps.append(step)
        if self.steps_run % self.config.check_every == 0 or self.steps_run == self.config.steps:
            finite = torch.isfinite(self.losses[: self.steps_run])
            if not finite.all():
                bad = int((~finite).nonzero()[0])
                raise DivergenceError(
                    f"fit diverged at step {bad + 1} (loss is not finite); try a lower learning rate"
                )
        if self.callback is not None:
            self.callback(step, output, float(loss))
        if self.bar is not None:
            self.bar.update(1)
            if self.steps_run % 25 == 0:
                self.bar.set_postfix(loss=f"{float(loss):.2e}")
        if self.stop is not None:
            reason = self.stop.observe(step, output, loss)
            if reason is not None:
                self.stop_reason, self.stop_step = reason, step + 1
                return True
        return False

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def history(self) -> dict[str, list[float]]:
        out = {"loss": self.losses[: self.steps_run].tolist()}
        if self.problem.reference is not None:
            out["psnr"] = torch.stack(self.psnrs).tolist() if self.psnrs else []
            if self.psnr_steps != list(range(self.steps_run)):
                out["psnr_step"] = list(self.psnr_steps)
        return out


def fit(
    observations: Sequence[Observation],
    config: FitConfig | None = None,
    *,
    reference: np.ndarray | None = None,
    stop: StopRule | None = None,
    callback: Callable[[int, torch.Tensor, float], None] | None = None,
) -> FitResult:
    """Fit an image model to ``observations`` and return the restored image.

    Args:
        observations: one or more :class:`Observation` of the same scene.
        config: steps, learning rate, seed, device, model.
        reference: optional clean image (H, W, C) in [0, 1]; PSNR is then tracked every step
            (every ``config.eval_every`` steps when the fast engine would render only for it;
            ``history['psnr_step']`` then lists the steps).
        stop: optional rule that may end the fit before ``config.steps`` (and may return the best
            iterate it saw instead of the last one).
        callback: called as ``callback(step, output, loss)`` after each step's forward pass, with
            ``output`` of shape (1, C, H, W) on the [-1, 1] scale (detached).
    """
    config = config or FitConfig()
    run = _start(observations, config, reference, stop, callback)
    try:
        if run.fast:
            from .fastfit import run_fast

            render, info = run_fast(run.model, run.problem, config, run.monitor)
        else:
            render, info = _run_plain(run.model, run.problem, config, run.monitor)
    finally:
        run.monitor.close()
    return run.finish(render, info)


def fit_many(
    problems: Sequence[Sequence[Observation]],
    config: FitConfig | None = None,
    *,
    references: Sequence[np.ndarray | None] | None = None,
    stops: Sequence[StopRule | None] | None = None,
) -> list[FitResult]:
    """Fit several scenes at once, one model each, with the same settings: the fast engine's
    models are stacked and every step runs batched products for all of them, which fills a GPU
    that one small image leaves mostly idle.

    Each result is what ``fit(problems[k], config, reference=references[k], stop=stops[k])``
    returns, up to the rounding of batched products: every model starts from ``config.seed``,
    Adam is elementwise, and a model whose stop rule fires leaves the stack with its state
    (the others carry on unchanged). Needs the SIREN on the fast engine and the same restored
    image size and channels for every scene; timings are those of the shared loop until each
    model finished.
    """
    config = config or FitConfig()
    problems = [list(p) for p in problems]
    if not problems:
        raise InputError("fit_many needs at least one problem")
    count = len(problems)
    references = [None] * count if references is None else list(references)
    stops = [None] * count if stops is None else list(stops)
    if len(references) != count or len(stops) != count:
        raise InputError(f"fit_many: {count} problems but {len(references)} references and "
                         f"{len(stops)} stop rules")
    given = [id(s) for s in stops if s is not None]
    if len(set(given)) < len(given):
        raise InputError("fit_many: each problem needs its own stop rule object (they keep state)")
    if not _uses_engine(config):
        raise InputError("fit_many needs a SIREN model on the fast engine (engine 'auto')")
    runs = [_start(obs, config, ref, stop, None) for obs, ref, stop in zip(problems, references, stops)]
    shapes = {(r.problem.height, r.problem.width, r.problem.channels) for r in runs}
    if len(shapes) > 1:
        listed = ", ".join(f"{h}x{w}x{c}" for h, w, c in sorted(shapes))
        raise InputError(f"fit_many: scenes must share the restored size and channels, got {listed}")
    from .fastfit import run_fast_many

    try:
        finished = run_fast_many([r.model for r in runs], [r.problem for r in runs], config,
                                 [r.monitor for r in runs])
    finally:
        for r in runs:
            r.monitor.close()
    return [r.finish(render, info, t_loop) for r, (render, info, t_loop) in zip(runs, finished)]


@dataclass
class _Run:
    """One fit between its set-up and its result (shared by :func:`fit` and :func:`fit_many`)."""

    config: FitConfig
    problem: Problem
    stop: StopRule | None
    model: torch.nn.Module
    fast: bool
    monitor: Monitor
    t_start: float
    t_fit: float

    def finish(self, render: Callable[[], torch.Tensor], info: dict[str, Any],
               t_loop: float | None = None) -> FitResult:
        """The result: final image (the stop rule's pick or ``render()``), history, timings,
        settings. ``t_loop``: when this fit's loop ended (default: now)."""
        config, problem, stop, monitor = self.config, self.problem, self.stop, self.monitor
        t_loop = clock(problem.device) if t_loop is None else t_loop
        t_final = time.perf_counter()
        with torch.no_grad():
            final = None
            stop_step = monitor.stop_step
            if stop is not None:
                final, best_step = stop.best()
                if final is not None:
                    stop_step = best_step
            if final is None:
                final = render()
            image = ((final[0].permute(1, 2, 0) + 1) / 2).float().cpu().numpy()
        if not np.isfinite(image).all():
            raise DivergenceError("fit produced a non-finite image; try a lower learning rate")
        t_end = t_loop + (time.perf_counter() - t_final)
        steps_run = monitor.steps_run
        settings = {
            **{k: v for k, v in dataclasses.asdict(config).items() if k not in ("progress", "model")},
            "device": str(problem.device),
            "model": dataclasses.asdict(config.model),
            "image_size": [problem.height, problem.width],
            "channels": problem.channels,
            "observations": [
                {"kind": o.kind, "size": list(o.shape), "weight": w, "operator": o.operator.describe()}
                for o, w in zip(problem.observations, problem.weights)
            ],
            "stop": stop.describe() if stop is not None else {"name": "fixed", "steps": config.steps},
            "torch": torch.__version__,
            "engine_used": info,
        }
        timings = {
            "setup_s": self.t_fit - self.t_start,
            "fit_s": t_end - self.t_fit,
            "per_step_s": (t_end - self.t_fit) / max(steps_run, 1),
            "eval_s": monitor.eval_s,
            "train_s": t_loop - self.t_fit - monitor.eval_s,
            "total_s": t_end - self.t_start,
        }
        return FitResult(image, monitor.history(), steps_run, stop_step, monitor.stop_reason,
                         timings, settings)


def _start(observations: Sequence[Observation], config: FitConfig, reference: np.ndarray | None,
           stop: StopRule | None, callback: Callable[[int, torch.Tensor, float], None] | None) -> _Run:
    """Check and set up one fit: problem on the device, model from the seed, monitor."""
    t_start = time.perf_counter()
    observations = list(observations)
    if stop is not None:
        stop.reset()
        observations = stop.prepare(observations)
    problem = build_problem(observations, config.device, reference)

    # Model initialisation draws from a private RNG state so results depend only on the seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model, out_channels=problem.channels)
    fast = _uses_engine(config)
    if config.precision != "float32":
        if not fast:
            raise InputError(f"precision {config.precision!r} needs the fast engine and a SIREN "
                             "model (engine 'auto'); the plain loop runs in float32 only")
        from .engine import check_precision

        try:
            check_precision(config.precision, problem.device)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    monitor = Monitor(problem, config, stop=stop, callback=callback)
    return _Run(config, problem, stop, model, fast, monitor, t_start, clock(problem.device))


def _uses_engine(config: FitConfig) -> bool:
    """Whether the fit runs on the fast SIREN engine (:mod:`linr.fastfit`)."""
    return config.engine == "auto" and config.model.name == "siren"


def clock(device: torch.device) -> float:
    """``time.perf_counter()`` once the work queued on ``device`` has finished (CUDA runs
    asynchronously: without the wait, a loop's time would only be the time to queue it)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter()


def build_problem(observations: Sequence[Observation], device: str,
                  reference: np.ndarray | None, *, signed: bool = True) -> Problem:
    """Check the observations (and reference) agree and put their targets on ``device``.

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
    height, width = _clean_shape(observations)
    dev = resolve_device(device)
    ref_t = None
    if reference is not None:
        ref = as_float_image(reference, "reference")
        if ref.shape != (height, width, c):
            raise InputError(f"reference has shape {ref.shape}, expected {(height, width, c)}")
        ref_t = _to_chw(ref, dev)
    targets = [obs.operator.project(_to_chw(obs.image, dev) * 2 - 1 if signed else _to_chw(obs.image, dev))
               for obs in observations]
    weights = [1.0 if obs.weight is None else float(obs.weight) for obs in observations]
    return Problem(observations, weights, targets, height, width, c, dev, ref_t)


def _run_plain(model: torch.nn.Module, problem: Problem, config: FitConfig,
               monitor: Monitor) -> tuple[Callable[[], torch.Tensor], dict[str, Any]]:
    """The plain loop: autograd through the whole model, the whole image every step."""
    model.to(problem.device)
    h, w, c = problem.height, problem.width, problem.channels
    coords = coordinate_grid(h, w, device=problem.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    def render() -> torch.Tensor:
        # (H*W, C) -> (1, C, H, W)
        return model(coords).view(h, w, c).permute(2, 0, 1)[None]

    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_factor(config.schedule, step, config.steps)
        output = render()
        loss = problem.data_term(output)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if monitor.record(step, output.detach(), loss.detach()):
            break
    return render, {"name": "plain"}
