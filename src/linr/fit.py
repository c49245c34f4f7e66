"""The fit: one loop that restores an image from any list of observations.

Each observation is an image ``y_i``, a forward operator ``A_i`` and a weight ``w_i``. The image
model ``f`` is rendered on the clean grid and trained with Adam on

    loss = sum_i  w_i * mean((A_i f - y_i)^2)          (values on the [-1, 1] scale)

A single task is a list of one; joint restoration is a longer list. Nothing else is special-cased.
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

from .errors import DivergenceError, InputError
from .models import ModelConfig, build_model, coordinate_grid
from .operators import Operator
from .stopping import StopRule

__all__ = ["Observation", "FitConfig", "FitResult", "fit", "resolve_device"]


@dataclass
class Observation:
    """One corrupted view of the scene.

    ``image`` is (h, w, C) or (h, w) with values in [0, 1]; ``operator`` maps the clean image to
    this observation's space; ``weight`` scales its data term; ``kind`` names it in reports
    (noisy, lowres, masked, blurred, or anything).
    """

    image: np.ndarray
    operator: Operator
    weight: float | None = None
    """None lets the preset decide (1.0 in a bare :func:`fit`)."""
    kind: str = "observation"

    def __post_init__(self) -> None:
        image = np.asarray(self.image, dtype=np.float32)
        if image.ndim == 2:
            image = image[..., None]
        if image.ndim != 3 or image.shape[0] == 0 or image.shape[1] == 0 or image.shape[2] == 0:
            raise InputError(f"{self.kind} image must be a non-empty (H, W[, C]) array, "
                             f"got shape {np.shape(self.image)}")
        if not np.isfinite(image).all():
            raise InputError(f"{self.kind} image contains non-finite values")
        if self.weight is not None and not (self.weight >= 0 and math.isfinite(self.weight)):
            raise InputError(f"{self.kind} weight must be a finite number >= 0, got {self.weight}")
        self.image = image

    @property
    def shape(self) -> tuple[int, int]:
        return self.image.shape[0], self.image.shape[1]

    @property
    def channels(self) -> int:
        return self.image.shape[2]


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

    def __post_init__(self) -> None:
        if int(self.steps) != self.steps or self.steps < 1:
            raise InputError(f"steps must be a positive integer, got {self.steps}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise InputError(f"learning rate must be a positive number, got {self.lr}")


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
    shapes = {}
    for obs in observations:
        try:
            shapes[obs.kind] = tuple(obs.operator.input_shape(obs.shape))
            obs.operator.output_shape(shapes[obs.kind])
        except ValueError as exc:
            raise InputError(f"{obs.kind} observation: {exc}") from exc
    if len(set(shapes.values())) > 1:
        listed = ", ".join(f"{k} -> {h}x{w}" for k, (h, w) in shapes.items())
        raise InputError(f"observations disagree on the restored image size ({listed})")
    return next(iter(shapes.values()))


def _to_chw(image: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))[None].to(device)


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
        reference: optional clean image (H, W, C) in [0, 1]; PSNR is then tracked every step.
        stop: optional rule that may end the fit before ``config.steps`` (and may return the best
            iterate it saw instead of the last one).
        callback: called as ``callback(step, output, loss)`` after each step's forward pass, with
            ``output`` of shape (1, C, H, W) on the [-1, 1] scale (detached).
    """
    config = config or FitConfig()
    t_start = time.perf_counter()
    if not observations:
        raise InputError("at least one observation is needed")
    observations = list(observations)
    if stop is not None:
        stop.reset()
        observations = stop.prepare(observations)
    channels = {obs.channels for obs in observations}
    if len(channels) > 1:
        raise InputError(f"observations have different channel counts: {sorted(channels)}")
    (c,) = channels
    height, width = _clean_shape(observations)
    ref_t = None
    if reference is not None:
        ref = np.asarray(reference, dtype=np.float32)
        ref = ref[..., None] if ref.ndim == 2 else ref
        if ref.shape != (height, width, c):
            raise InputError(f"reference has shape {ref.shape}, expected {(height, width, c)}")
    device = resolve_device(config.device)

    # Model initialisation draws from a private RNG state so results depend only on the seed.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = build_model(config.model, out_channels=c)
    model.to(device)
    coords = coordinate_grid(height, width, device=device)
    targets = [obs.operator.project(_to_chw(obs.image, device) * 2 - 1) for obs in observations]
    weights = [1.0 if obs.weight is None else float(obs.weight) for obs in observations]
    if reference is not None:
        ref_t = _to_chw(ref, device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)

    def render() -> torch.Tensor:
        # (H*W, C) -> (1, C, H, W)
        return model(coords).view(height, width, c).permute(2, 0, 1)[None]

    show = sys.stderr.isatty() if config.progress is None else config.progress
    losses = torch.empty(config.steps, device=device)
    psnrs = torch.empty(config.steps, device=device) if ref_t is not None else None
    stop_reason = "fixed steps"
    stop_step = config.steps
    steps_run = 0
    t_fit = time.perf_counter()
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=config.steps, desc="fitting", unit="step", leave=False)
    try:
        for step in range(config.steps):
            output = render()
            loss = sum(
                w * torch.mean((obs.operator(output) - y) ** 2)
                for w, obs, y in zip(weights, observations, targets)
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            steps_run = step + 1
            losses[step] = loss.detach()
            out = output.detach()
            if psnrs is not None:
                mse = torch.mean(((out + 1) / 2 - ref_t) ** 2)
                psnrs[step] = -10 * torch.log10(mse)
            if steps_run % config.check_every == 0 or steps_run == config.steps:
                if not torch.isfinite(losses[:steps_run]).all():
                    bad = int((~torch.isfinite(losses[:steps_run])).nonzero()[0])
                    raise DivergenceError(
                        f"fit diverged at step {bad + 1} (loss is not finite); try a lower learning rate"
                    )
            if callback is not None:
                callback(step, out, float(loss))
            if bar is not None:
                bar.update(1)
                if steps_run % 25 == 0:
                    bar.set_postfix(loss=f"{float(loss):.2e}")
            if stop is not None:
                reason = stop.observe(step, out, loss.detach())
                if reason is not None:
                    stop_reason, stop_step = reason, step + 1
                    break
    finally:
        if bar is not None:
            bar.close()
    with torch.no_grad():
        final = None
        if stop is not None:
            final, best_step = stop.best()
            if final is not None:
                stop_step = best_step
        if final is None:
            final = render()
        image = ((final[0].permute(1, 2, 0) + 1) / 2).float().cpu().numpy()
    if not np.isfinite(image).all():
        raise DivergenceError("fit produced a non-finite image; try a lower learning rate")
    t_end = time.perf_counter()
    history = {"loss": losses[:steps_run].tolist()}
    if psnrs is not None:
        history["psnr"] = psnrs[:steps_run].tolist()
    settings = {
        **{k: v for k, v in dataclasses.asdict(config).items() if k not in ("progress", "model")},
        "device": str(device),
        "model": dataclasses.asdict(config.model),
        "image_size": [height, width],
        "channels": c,
        "observations": [
            {"kind": o.kind, "size": list(o.shape), "weight": w, "operator": o.operator.describe()}
            for o, w in zip(observations, weights)
        ],
        "stop": stop.describe() if stop is not None else {"name": "fixed", "steps": config.steps},
        "torch": torch.__version__,
    }
    timings = {
        "setup_s": t_fit - t_start,
        "fit_s": t_end - t_fit,
        "per_step_s": (t_end - t_fit) / max(steps_run, 1),
        "total_s": t_end - t_start,
    }
    return FitResult(image, history, steps_run, stop_step, stop_reason, timings, settings)
