"""The fit: one loop that restores an image from any list of observations.

Each observation is an image ``y_i``, a forward operator ``A_i`` and a weight ``w_i``. The image
model ``f`` is rendered on the clean grid and trained with Adam on

    loss = sum_i  w_i * mean((A_i f - y_i)^2)          (values on the [-1, 1] scale)

A single task is a list of one; joint restoration is a longer list. Nothing else is special-cased.

Two loops run that mathematics: the plain autograd loop below (any model) and, for the SIREN, the
fast engine of :mod:`linr.fastfit` (same network function and Adam trajectory up to rounding,
fewer passes over memory, only observed pixels for inpainting, chunks for large images). Both
report through :class:`~linr.monitor.Monitor`, so stop rules, callbacks and histories behave the
same. Layers, each importing only those below it::

    fit            set-up, the plain loop, the result          (this module)
    fastfit        the loop on the fast engine
    monitor        per-step history, stop rule, progress
    problem        observations, targets on the device         config: FitConfig
    engine, cost   the SIREN kernel; time and memory estimates
    operators, models, stopping, images, metrics, errors
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .adam import adam
from .config import MAX_STEPS, SCHEDULES, FitConfig, lr_factor
from .errors import DivergenceError, InputError
from .fitted import FittedModel
from .models import MODEL_FAMILIES, build_model, coordinate_grid
from .monitor import Monitor
from .problem import (Observation, OperatorSteps, Problem, build_problem, clean_shape, clock, frame_operators,
                      resolve_device)
from .stopping import StopRule, holdout_rule

# What a fit is made of lives in the modules below it (config, problem, monitor); the names are
# also importable from here, where the fit's users have always found them.
__all__ = ["Observation", "FitConfig", "FitResult", "fit", "fit_many", "resolve_device", "clock",
           "Problem", "Monitor", "build_problem", "clean_shape", "lr_factor", "MAX_STEPS",
           "SCHEDULES", "describe_fit", "output_image"]


def output_image(output: torch.Tensor) -> np.ndarray:
    """A fit's output (1, C, h, w) on [-1, 1] as a float32 (h, w, C) image on [0, 1], unclipped."""
    return ((output[0].permute(1, 2, 0) + 1) / 2).float().cpu().numpy()


@dataclass
class FitResult:
    """What a fit returns.

    ``image`` is (H, W, C) float32 on the [0, 1] scale, NOT clipped (clip before saving; the
    paper measures unclipped outputs). ``history`` holds one value per step: ``loss`` (the total
    data term) and, when a reference was given, ``psnr`` (RGB, data range 1, of the output the
    step started from). ``model`` is the fitted model that renders ``image``
    (:class:`~linr.fitted.FittedModel`; :meth:`render` at other sizes, :meth:`save_model`), None
    for a tiled restoration (one model per tile) or when a stop rule returned an iterate whose
    parameters it did not keep.
    """

    image: np.ndarray
    history: dict[str, list[float]]
    steps_run: int
    stop_step: int
    stop_reason: str
    timings: dict[str, float]
    settings: dict[str, Any]
    model: FittedModel | None = None
    uncertainty: np.ndarray | None = None
    """An ensemble's per-pixel spread (:mod:`linr.ensemble`), (H, W, C) on [0, 1]; else None."""
    fitted_image: np.ndarray | None = None
    """The fit's own image when ``image`` was refined after the fit (:mod:`linr.refine`,
    ``settings['refine']``); else None (``image`` is the fit's)."""
    extended_image: np.ndarray | None = None
    """When the fit rendered beyond the frame (a blur with free edges: ``settings['rendered_margins']``,
    top, bottom, left, right), the fit's image of the frame grown by those margins, (H + top +
    bottom, W + left + right, C) on [0, 1], of which ``image`` (or the fit's image it was refined
    from) is the frame; else None."""
    metrics: dict[str, Any] | None = None
    """With a reference given to :func:`linr.tasks.restore`, ``image``'s PSNR and SSIM against it
    in both conventions (:func:`linr.metrics.report`, as ``linr restore`` prints them): the
    returned image's, where ``history['psnr']`` follows the fit's iterates before any refinement;
    else None."""

    def scaled(self, factor: float) -> "FitResult":
        """This result with its images (``image``, ``fitted_image``, ``extended_image``) and an
        ensemble's spread multiplied by ``factor`` (a fit on another scale than the photo's,
        :mod:`linr.headroom`, :mod:`linr.defects`, brought back to the photo's) and its model
        dropped, as it renders the fit's scale; in place, returned. The per-step values stay the
        fit's."""
        scale = np.float32(factor)
        self.image = self.image * scale
        self.model = None
        for name in ("extended_image", "fitted_image", "uncertainty"):
            if getattr(self, name) is not None:
                setattr(self, name, getattr(self, name) * scale)
        return self

    def fitted_model(self) -> FittedModel:
        """:attr:`model`, or a one-line error saying why there is none."""
        if self.model is None:
            if "ensemble" in self.settings:
                raise InputError("an ensemble's image is the mean of several networks' and no single "
                                 "model renders it; no model to render or save (ensemble=1)")
            if "tiling" in self.settings:
                raise InputError("a tiled restoration has one network per tile and no single model "
                                 "to render or save; restore with tile='off' (--tile off)")
            if "refine" in self.settings and "skipped" not in self.settings["refine"]:
                raise InputError("this image was refined after the fit (settings['refine']) and no model "
                                 "renders it; restore with keep_model=True (--save-model) or refine='none'")
            if self.settings.get("stop", {}).get("returned") == "average":
                raise InputError("this fit returned an average of iterates, which no single model "
                                 "renders; no model to render or save (restore with keep_model=True, "
                                 "or a stop rule without an average)")
            raise InputError("this fit's stop rule returned an iterate without its parameters; "
                             "no model to render or save")
        return self.model

    def render(self, *, scale: float | None = None, size: tuple[int, int] | None = None,
               device: str = "cpu") -> np.ndarray:
        """The restored image at ``scale`` times its size, or at ``size`` = (height, width),
        over the same extent: (H', W', C) float32 on [0, 1], unclipped; scale 1 is ``image``
        (:meth:`linr.fitted.FittedModel.render`)."""
        return self.fitted_model().render(scale=scale, size=size, device=device)

    def save_model(self, path: str, info: Any = None, *, force: bool = False) -> Any:
        """Save the model to render later (``linr render``, :func:`linr.fitted.load_model`);
        ``info``: the input's :class:`~linr.images.ImageInfo` (bit depth, value range, TIFF
        layout) for later renders to be stored like it."""
        from .fitted import save_model

        return save_model(path, self.fitted_model(), info, force=force, settings=self.settings)

    def returned(self) -> str | None:
        """What image of its fit this result is, in words ('the last iterate, after all 500
        updates', 'the mean of up to 40 iterates ending at step 108', 'the iterate of step 60'),
        as ``linr restore`` and the web app say it; None for an ensemble or tiles, whose stop
        reason says it."""
        if "ensemble" in self.settings or "tiling" in self.settings:
            return None
        stop = self.settings.get("stop") if isinstance(self.settings.get("stop"), dict) else {}
        if stop.get("name") == "fixed":  # the stop rules' "step k" is the iterate step k started from
            return f"the last iterate, after all {self.steps_run} updates"
        average = stop.get("average")
        if stop.get("returned") == "average" and isinstance(average, str):
            if average.startswith("window"):
                return f"the mean of up to {average[6:]} iterates ending at step {self.stop_step}"
            if average.startswith("ema"):
                return f"an exponential average (decay {average[3:]}) of the iterates up to step {self.stop_step}"
        return f"the iterate of step {self.stop_step}"

    def to_dict(self, *, history: bool = True) -> dict[str, Any]:
        out = {
            "steps_run": self.steps_run,
            "stop_step": self.stop_step,
            "stop_reason": self.stop_reason,
            "timings": self.timings,
            "settings": self.settings,
        }
        if self.metrics is not None:
            out["metrics"] = self.metrics
        if history:
            out["history"] = self.history
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
    started = time.perf_counter()
    try:
        result = _fit_once(observations, config, reference, stop, callback)
    except DivergenceError as exc:
        if config.retry_lr is None:
            raise
        spent = dict.fromkeys(("fit_s", "total_s"), time.perf_counter() - started)
        return _retry(None, spent, observations, config, reference, stop, callback,
                      why=f"the fit diverged ({exc})", first_loss=None, neighbours=None)
    return _retry_if_failed(result, observations, config, reference, stop, callback)


def _fit_once(observations: Sequence[Observation], config: FitConfig, reference: np.ndarray | None,
              stop: StopRule | None, callback: Callable[[int, torch.Tensor, float], None] | None) -> FitResult:
    run = _start(observations, config, reference, stop, callback)
    try:
        if run.fast:
            from .fastfit import run_fast

            render, info, state = run_fast(run.model, run.problem, config, run.monitor)
        else:
            render, info, state = _run_plain(run.model, run.problem, config, run.monitor)
    finally:
        run.monitor.close()
    return run.finish(render, info, state)


RETRY_ABOVE_NEIGHBOURS = 1.25
"""``config.retry_lr`` fits again when the fit's held-out loss is above this many times that of
the 4-neighbour mean (:meth:`linr.stopping.HoldOut.neighbour_loss`). Between the ratios seen
(eighteenth session, the defaults' pilot on set9 crops of 128 and 256 px): fits that failed at
3e-3 and 1e-2 were at 1.57 (baboon) to 27.5 (house, sigma 5); sound ones at 1e-3 up to 1.13
(baboon at sigma 5, whose fit alone is far below the noisy photo and still the pilot the
refinement needs); 1.25 sits between them."""

RETRY_FLOOR = (0.5 / 255) ** 2
"""A held-out loss (mean squared error on the fit's [-1, 1] scale) at or below this is never a
failed fit: the held-out pixels predicted to within a quarter of an 8-bit level (RMS), whatever
their neighbours' mean does (on a constant photo it predicts them exactly, and a fit within
3e-9 of it was fitted again for nothing: 111 s of a 155-s restore of a 64-px grey photo)."""

_SUMMED_TIMINGS = ("setup_s", "fit_s", "train_s", "eval_s", "total_s")


def _retry_if_failed(result: FitResult, observations: Sequence[Observation], config: FitConfig,
                     reference: np.ndarray | None, stop: StopRule | None,
                     callback: Callable[[int, torch.Tensor, float], None] | None) -> FitResult:
    """``config.retry_lr``: when the fit's stop rule ended it before its step budget and its
    returned image predicts its held-out pixels worse than the mean of their four neighbours does
    (by :data:`RETRY_ABOVE_NEIGHBOURS`, and above :data:`RETRY_FLOOR`), fit again at that rate
    (same seed, same held-out pixels)
    and return the result of lower held-out loss, with ``settings['retry']``."""
    rule = holdout_rule(stop)
    if config.retry_lr is None or rule is None or result.steps_run >= config.steps:
        return result  # a fit cut short by its budget may be poor for want of steps, not of a lower rate
    first, neighbours = rule.returned_loss(), rule.neighbour_loss()
    if first is None or neighbours is None or first <= max(RETRY_ABOVE_NEIGHBOURS * neighbours, RETRY_FLOOR):
        return result
    return _retry(result, result.timings, observations, config, reference, stop, callback,
                  why=f"the fit's held-out loss was above {RETRY_ABOVE_NEIGHBOURS:g}x the 4-neighbour mean's",
                  first_loss=first, neighbours=neighbours)


def _retry(result: FitResult | None, spent: dict[str, float], observations: Sequence[Observation],
           config: FitConfig, reference: np.ndarray | None, stop: StopRule | None,
           callback: Callable[[int, torch.Tensor, float], None] | None, *, why: str,
           first_loss: float | None, neighbours: float | None) -> FitResult:
    """Fit again at ``config.retry_lr`` after a failed fit (``result``; None: it diverged, having
    taken ``spent`` seconds) and return the better of the two on the held-out pixels, with
    ``settings['retry']`` and the timings of both fits. When the second fit diverges, the first
    result is returned (or the error raised when there is none).
    After it, ``stop`` holds the second fit's state even when the first result is returned."""
    record: dict[str, Any] = {"why": why, "lr": config.lr, "held_out_loss": first_loss,
                              "neighbour_loss": neighbours, "retry_lr": config.retry_lr}
    if result is not None:
        record.update(first_steps_run=result.steps_run, first_stop_step=result.stop_step)
    try:
        second = _fit_once(observations, dataclasses.replace(config, lr=config.retry_lr, retry_lr=None),
                           reference, stop, callback)
    except DivergenceError as exc:
        if result is None:
            raise
        result.settings["retry"] = {**record, "returned": "first", "retry_failed": str(exc)}
        return result
    rule = holdout_rule(stop)
    retried = None if rule is None else rule.returned_loss()
    keep = second if result is None or (retried is not None and retried < first_loss) else result
    record.update(retry_held_out_loss=retried, retry_steps_run=second.steps_run, retry_stop_step=second.stop_step,
                  returned="retry" if keep is second else "first")
    keep.settings["retry"] = record
    first_timings, second_timings = dict(spent), dict(second.timings)  # before keep's are summed
    keep.timings.update({k: first_timings.get(k, 0.0) + second_timings.get(k, 0.0) for k in _SUMMED_TIMINGS})
    keep.timings.update(first_fit_s=first_timings["fit_s"], retry_fit_s=second_timings["fit_s"])
    return keep


def fit_many(
    problems: Sequence[Sequence[Observation]],
    config: FitConfig | None = None,
    *,
    references: Sequence[np.ndarray | None] | None = None,
    stops: Sequence[StopRule | None] | None = None,
    seeds: Sequence[int] | None = None,
) -> list[FitResult]:
    """Fit several scenes at once, one model each, with the same settings: the fast engine's
    models are stacked and every step runs batched products for all of them, which fills a GPU
    that one small image leaves mostly idle.

    Each result is what ``fit(problems[k], config, reference=references[k], stop=stops[k])``
    returns, up to the rounding of batched products: every model starts from ``config.seed``
    (or ``seeds[k]``: e.g. one scene fitted from several starts, an ensemble),
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
    seeds = [config.seed] * count if seeds is None else [int(s) for s in seeds]
    if len(references) != count or len(stops) != count or len(seeds) != count:
        raise InputError(f"fit_many: {count} problems but {len(references)} references, "
                         f"{len(stops)} stop rules and {len(seeds)} seeds")
    given = [id(s) for s in stops if s is not None]
    if len(set(given)) < len(given):
        raise InputError("fit_many: each problem needs its own stop rule object (they keep state)")
    if not _uses_engine(config):
        raise InputError("fit_many needs a SIREN model on the fast engine (engine 'auto')")
    runs = [_start(obs, config if seed == config.seed else dataclasses.replace(config, seed=seed), ref, stop, None)
            for obs, ref, stop, seed in zip(problems, references, stops, seeds)]
    shapes = {(r.problem.height, r.problem.width, r.problem.channels, r.problem.margins) for r in runs}
    if len(shapes) > 1:
        listed = ", ".join(f"{h}x{w}x{c}" + (f" (rendered {m[0]}, {m[1]}, {m[2]}, {m[3]} px beyond it)" if any(m) else "")
                           for h, w, c, m in sorted(shapes))
        grown = any(any(m) for *_, m in shapes)
        raise InputError("fit_many: scenes must share the restored size and channels"
                         + (" and what is rendered beyond the frame (blurs with free edges and kernels of different "
                            "sizes: restore them separately, or give boundary 'reflect')" if grown else "")
                         + f", got {listed}")
    from .fastfit import run_fast_many

    try:
        finished = run_fast_many([r.model for r in runs], [r.problem for r in runs], config,
                                 [r.monitor for r in runs])
    finally:
        for r in runs:
            r.monitor.close()
    return [_retry_if_failed(r.finish(render, info, state, t_loop), obs, r.config, ref, stop, None)
            for r, (render, info, t_loop, state), obs, ref, stop
            in zip(runs, finished, problems, references, stops)]


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
               final_state: list[torch.Tensor], t_loop: float | None = None) -> FitResult:
        """The result: final image (the stop rule's pick or ``render()``) and the model that
        renders it, history, timings, settings. ``final_state``: the parameters at the end of
        the loop (``params`` of the engine, else ``parameters()`` of the model); ``t_loop``: when
        this fit's loop ended (default: now)."""
        config, problem, stop, monitor = self.config, self.problem, self.stop, self.monitor
        t_loop = clock(problem.device) if t_loop is None else t_loop
        t_final = time.perf_counter()
        with torch.no_grad():
            final, state = None, None
            stop_step = monitor.stop_step
            if stop is not None:
                final, best_step = stop.best()
                if final is not None:
                    stop_step = best_step
                    state = stop.best_state() if stop.keeps_state else None
            if final is None:
                final, state = render(), final_state
            rendered = output_image(final)
        if not np.isfinite(rendered).all():
            raise DivergenceError("fit produced a non-finite image; try a lower learning rate")
        top, _, left, _ = problem.margins
        image = rendered[top:top + problem.height, left:left + problem.width]  # the restored frame
        t_end = t_loop + (time.perf_counter() - t_final)
        steps_run = monitor.steps_run
        settings = {
            **describe_fit(config, problem.device, (problem.height, problem.width), problem.channels,
                           problem.observations, problem.weights),
            **({"prior_used": problem.prior.spec} if problem.prior is not None else {}),
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
        if any(problem.margins):
            settings["rendered_margins"] = list(problem.margins)
        return FitResult(image, monitor.history(), steps_run, stop_step, monitor.stop_reason,
                         timings, settings, None if state is None else self.fitted_model(state),
                         extended_image=rendered if any(problem.margins) else None)

    def fitted_model(self, state: list[torch.Tensor]) -> FittedModel:
        """The fitted model with parameters ``state`` (in the loop's order)."""
        config, problem = self.config, self.problem
        shape = (problem.height, problem.width)
        if self.fast:
            from .engine import folded_names

            names = folded_names((len(state) - 2) // 2)
            return FittedModel.from_engine(config.model, dict(zip(names, state)), shape,
                                           problem.channels, config.precision, config.chunk_pixels)
        return FittedModel.from_module(config.model, self.model, shape, problem.channels, state,
                                       config.chunk_pixels)


def describe_fit(config: FitConfig, device: torch.device, shape: tuple[int, int], channels: int,
                 observations: Sequence[Observation], weights: Sequence[float]) -> dict[str, Any]:
    """The settings part of a result's report: the fit settings, the device, the restored size
    and each observation (kind, size, weight, operator, data term)."""
    return {
        **{k: v for k, v in dataclasses.asdict(config).items() if k not in ("progress", "model")},
        "device": str(device),
        "model": dataclasses.asdict(config.model),
        "image_size": list(shape),
        "channels": channels,
        "observations": [
            {"kind": o.kind, "size": list(o.shape), "weight": w, "operator": o.operator.describe(),
             "data_term": o.fidelity.describe()}
            for o, w in zip(observations, weights)
        ],
    }


def _start(observations: Sequence[Observation], config: FitConfig, reference: np.ndarray | None,
           stop: StopRule | None, callback: Callable[[int, torch.Tensor, float], None] | None) -> _Run:
    """Check and set up one fit: problem on the device, model from the seed, monitor."""
    t_start = time.perf_counter()
    observations = frame_operators(observations)  # one rendering for all (a blur with free edges beside others)
    if stop is not None:
        stop.reset()
        observations = stop.prepare(observations)
    problem = build_problem(observations, config.device, reference, prior=config.prior)
    # what the model sets from the image (relu_pe's octaves) is resolved here, and recorded so
    config = dataclasses.replace(config, model=config.model.for_image(problem.height, problem.width))

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
    """Whether the fit runs on the fast engine (:mod:`linr.fastfit`): a model family of scaled
    layers (SIREN, Gauss) and engine 'auto'."""
    family = MODEL_FAMILIES.get(config.model.name)
    return config.engine == "auto" and family is not None and family.engine


def _run_plain(model: torch.nn.Module, problem: Problem, config: FitConfig, monitor: Monitor
               ) -> tuple[Callable[[], torch.Tensor], dict[str, Any], list[torch.Tensor]]:
    """The plain loop: autograd through the whole model, the whole image every step. Returns a
    renderer of the final model, a description and its final parameters."""
    model.to(problem.device)
    (h, w), c = problem.rendered_shape, problem.channels
    coords = coordinate_grid(problem.height, problem.width, device=problem.device, margins=problem.margins)
    optimizer = adam(model.parameters(), lr=config.lr)
    operator_steps = OperatorSteps(problem)

    def render() -> torch.Tensor:
        # (H*W, C) -> (1, C, H, W)
        return model(coords).view(h, w, c).permute(2, 0, 1)[None]

    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = config.lr * lr_factor(config.schedule, step, config.steps)
        output = render()
        total, loss = problem.objective(output)  # loss: the data term, without the prior
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        # the parameters that made this output, before the update (a stop rule may pick them)
        state = [p.detach().clone() for p in model.parameters()] \
            if monitor.wants_state and monitor.wants_output(step) else None
        optimizer.step()
        operator_steps.step(step)
        if monitor.record(step, output.detach(), loss.detach(), state):
            break
    operator_steps.check()
    return render, {"name": "plain"}, [p.detach() for p in model.parameters()]
