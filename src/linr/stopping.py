"""Stop rules: decide during a fit when to stop, and which iterate to return.

The fit calls ``rule.reset()``, then ``observations = rule.prepare(observations)`` before the
first step, ``rule.observe(step, output, loss)`` after every step (a non-None return value ends
the fit and is reported as the stop reason) and ``rule.best()`` at the end: a rule may hand back
an earlier iterate (the one it judged best) instead of the last one.

Rules that need no clean image (usable on real data):

- :class:`FixedSteps`: the paper's behaviour, stop after ``steps``.
- :class:`OutputVariance`: running variance of the outputs over a window (ES-WMV, Wang et al.,
  "Early stopping for deep image prior"): it dips where the output is closest to the clean image,
  then rises as noise is fitted. Stop when it has made no new minimum for ``patience`` steps.
- :class:`HoldOut`: a random few percent of the observed pixels are left out of the data term
  (``prepare``); their loss against the observation tracks the error against the clean image up
  to a constant, because their noise never entered the fit (J-invariance, as in scikit-image's
  ``calibrate_denoiser``). Stop when it has made no new minimum for ``patience`` steps.
- :class:`HeldOutPick`: the same held-out pixels, looked at every few steps; never stops, returns
  the iterate of lowest held-out loss (noise-free fits that may pass their best, inpainting).
- :class:`Discrepancy`: Morozov's discrepancy principle: stop when the data term of the noisy
  observations falls to ``tau`` times the noise variance estimated from the image itself
  (wavelet median absolute deviation, ``skimage.restoration.estimate_sigma``).
- :class:`Plateau`: the data term has stopped improving (noise-free tasks).
- :class:`FirstToFire`: several rules at once; the first that fires ends the fit.

:class:`Oracle` needs the clean image: it is for benchmarks only (the best achievable stop).

All statistics stay on the fit's device; rules read them back to the host only every
``check_every`` steps, so on a GPU they add no per-step synchronisation. A rule may therefore
fire up to ``check_every - 1`` steps after its condition became true; the iterate it returns is
the same.
"""

from __future__ import annotations

import dataclasses
import math
from collections import deque
from typing import Any, Sequence

import numpy as np
import torch

from .averaging import parse_average
from .fidelity import SquaredError
from .holes import held_out_blocks
from .noise import estimate_noise_sigma

__all__ = [
    "StopRule",
    "FixedSteps",
    "OutputVariance",
    "HoldOut",
    "HeldOutPick",
    "SurePick",
    "Discrepancy",
    "Plateau",
    "FirstToFire",
    "Oracle",
    "MinTracker",
    "window_variance",
    "estimate_noise_sigma",
    "parse_stop",
    "AUTO_NOISY",
    "AUTO_BLENDED",
    "AUTO_NOISY_MODEL",
    "holdout_rule",
]


class StopRule:
    """Base class. Subclasses override :meth:`observe` (and usually keep a best iterate)."""

    name = "rule"
    keeps_state = False
    """Whether :meth:`observe` takes ``state`` (the parameters that made the output) and
    :meth:`best_state` returns those of the best iterate, so that the returned image comes with
    the model that renders it (:attr:`linr.fit.FitResult.model`)."""
    output_every = 1
    """Every how many steps the rule looks at the output: 1, every step; N > 1, only steps N, 2N,
    ... (1-based) and the budget's last step get the output (and the model state), the others
    ``None``. A fit that renders only some pixels per step (inpainting) then renders the whole
    image only on those steps."""
    stops = True
    """Whether the rule may end a fit early (``pick`` never does: it only chooses the iterate)."""
    budget: int | None = None
    """The fit's step budget, set by the fit before the first step (:class:`linr.monitor.Monitor`)."""

    def reset(self) -> None:
        """Forget everything seen; called at the start of each fit."""

    def prepare(self, observations: list[Any]) -> list[Any]:
        """Called once before the fit (after :meth:`reset`) with the observations; may return
        modified ones (e.g. with pixels held out of the data term). Default: unchanged."""
        return observations

    def observe(self, step: int, output: torch.Tensor, loss: torch.Tensor) -> str | None:
        """See the output (1, C, H, W, [-1, 1] scale, detached) and loss of ``step`` (0-based).

        Returns a short reason to stop now, or None to go on.
        """
        return None

    def best(self) -> tuple[torch.Tensor | None, int]:
        """The iterate to return (same layout as ``output``) and its 1-based step, or (None, 0)
        to return the final iterate."""
        return None, 0

    def best_state(self) -> list[torch.Tensor] | None:
        """The model parameters of the iterate :meth:`best` returns, when the rule keeps state."""
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}


class MinTracker:
    """Minimum of a scalar series with patience, kept on the series' device.

    ``update(step, value, iterate, state)`` keeps the iterate (and the model parameters ``state``
    that made it) at the smallest value seen (a new minimum must beat the old one by the relative
    margin ``min_delta``). Every ``check_every`` steps it
    reads the step of the minimum back to the host and returns True when that minimum is at
    least ``patience`` steps old. Steps before ``start`` are ignored. The benchmark replays
    recorded series through this same class, so offline results match online ones.
    """

    def __init__(self, *, patience: int, check_every: int = 5, min_delta: float = 0.0, start: int = 0):
        for what, value, least in (("patience", patience, 1), ("check_every", check_every, 1), ("start", start, 0),
                                   ("the relative margin", min_delta, 0)):
            if not value >= least:
                raise ValueError(f"{what} must be at least {least}, got {value:g}")
        self.patience, self.check_every, self.min_delta, self.start = patience, check_every, min_delta, start
        self.reset()

    def reset(self) -> None:
        self.value: torch.Tensor | None = None
        self.step: torch.Tensor | None = None
        self.iterate: torch.Tensor | None = None
        self.state: list[torch.Tensor] | None = None

    def update(self, step: int, value: torch.Tensor, iterate: torch.Tensor | None = None,
               state: list[torch.Tensor] | None = None) -> bool:
        if step < self.start:
            return False
        value = value.detach().reshape(())
        step_t = torch.full((), step, dtype=torch.long, device=value.device)
        if self.value is None:
            self.value, self.step = value.clone(), step_t
            self.iterate = None if iterate is None else iterate.clone()
            self.state = None if state is None else [t.clone() for t in state]
        else:
            better = value < self.value * (1.0 - self.min_delta)
            self.value = torch.where(better, value, self.value)
            self.step = torch.where(better, step_t, self.step)
            if iterate is not None:
                self.iterate = torch.where(better, iterate, self.iterate)
            if state is not None and self.state is not None:
                self.state = [torch.where(better, new, old) for new, old in zip(state, self.state)]
        if (step + 1) % self.check_every:
            return False
        return step - int(self.step) >= self.patience

    @property
    def best_step(self) -> int:
        """0-based step of the minimum (-1 before any update)."""
        return -1 if self.step is None else int(self.step)


class _TrackedRule(StopRule):
    """A rule whose best iterate is the one its :class:`MinTracker` kept."""

    tracker: MinTracker
    keeps_state = True

    def best(self) -> tuple[torch.Tensor | None, int]:
        return self.tracker.iterate, self.tracker.best_step + 1

    def best_state(self) -> list[torch.Tensor] | None:
        return self.tracker.state


class FixedSteps(StopRule):
    """Stop after ``steps`` steps and return the last iterate (the paper's protocol)."""

    name = "fixed"

    def __init__(self, steps: int = 500):
        if int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        self.steps = int(steps)

    def observe(self, step: int, output: torch.Tensor, loss: torch.Tensor) -> str | None:
        return f"fixed: {self.steps} steps" if step + 1 >= self.steps else None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "steps": self.steps}


def window_variance(window: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean squared deviation of the iterates in ``window`` from their mean (a 0-d tensor).

    ``window``: W tensors of one shape. This is ES-WMV's VAR(t) divided by the pixel count.
    """
    stack = torch.stack(list(window))
    return torch.mean((stack - stack.mean(dim=0, keepdim=True)) ** 2)


class OutputVariance(_TrackedRule):
    """ES-WMV: stop when the windowed output variance makes no new minimum for ``patience`` steps.

    Returns the iterate at the end of the window of smallest variance. ``window`` and
    ``patience`` are in steps; the defaults suit SIREN with Adam at lr 1e-4, whose denoising
    peak comes within a few hundred steps (DIP's defaults, window 100, patience 1000, are for a
    curve ten times slower).
    """

    name = "variance"

    def __init__(self, *, window: int = 10, patience: int = 40, check_every: int = 5):
        if window < 2:
            raise ValueError(f"variance window must be >= 2, got {window}")
        self.window = int(window)
        self.tracker = MinTracker(patience=patience, check_every=check_every, start=window - 1)
        self._buffer: deque[torch.Tensor] = deque(maxlen=self.window)

    def reset(self) -> None:
        self.tracker.reset()
        self._buffer.clear()

    def observe(self, step: int, output: torch.Tensor, loss: torch.Tensor,
                state: list[torch.Tensor] | None = None) -> str | None:
        self._buffer.append(output)
        if len(self._buffer) < self.window:
            return None
        if self.tracker.update(step, window_variance(self._buffer), output, state):
            return (f"variance: no new minimum of the {self.window}-step output variance for "
                    f"{self.tracker.patience} steps")
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "window": self.window, "patience": self.tracker.patience}


def _observed(obs: Any) -> torch.Tensor:
    """(h, w) bool: pixels of an observation that its operator can produce (mask = True) in some
    channel (a per-channel mask, such as a colour filter array's, keeps each channel's own)."""
    h, w = obs.shape
    return obs.operator.project(torch.ones(1, 1, h, w))[0].amax(0) > 0


class HoldOut(_TrackedRule):
    """Self-supervised hold-out: fit without a random ``fraction`` of the observed pixels and
    stop when their loss makes no new minimum for ``patience`` steps.

    ``prepare`` wraps each observation's operator in ``Compose([operator, Mask(kept)])``, so the
    held-out pixels leave the data term (the fit projects its target through the same mask).
    The held-out loss is ``sum_i w_i * mean over held-out pixels of d_i(A_i f, y_i)`` with each
    observation's data term ``d_i`` (the squared error in the paper's setting).

    ``average`` (a spec of :func:`linr.averaging.parse_average`, such as ``window40``): the rule
    also keeps that average of the iterates and its hold-out loss (the average never trained on
    the held-out pixels either, so its loss is as fair a measure). The fit still stops on the
    raw iterates' loss (no extra steps); :meth:`best` returns the average at its own held-out
    minimum up to the stop (unless the raw iterate's held-out loss is clearly lower:
    :attr:`AVERAGE_GUARD`). (Returning it only when its minimum was below the raw one gained
    less on every split measured: BENCHMARKS.md, "#15 quality: iterate averaging".)

    ``keep_checkpoints`` (with an average): keep the average at every ``check_every``-th step
    (:meth:`checkpoints`; a copy of the image each, on the fit's device), for a choice made after
    the fit (:mod:`linr.sure`); what the rule returns is unchanged.

    ``at`` (with an average, below 1): return the average not at its held-out minimum's step
    ``s`` but at the ``check_every``-step checkpoint nearest ``at * s`` (the rule keeps the
    average at every checkpoint from about ``at * s`` on, so no extra steps are run; that is
    about ``((1 - at) s + patience) / check_every`` copies of the image on the fit's device, e.g. 48
    for ``at`` 0.9, a minimum at step 2000 and the default patience). Opt-in:
    what the default's refinement makes of the average peaked before the held-out minimum on the
    smooth held-out crops measured, but not on the textured tune crops, where 0.9 lost 0.03 dB
    on average (BENCHMARKS.md, "#15 the denoising stop: returning the average earlier", thirty-fourth
    session; ``linr bench default-stop``).
    """

    name = "holdout"
    holds_blocks = False
    """Whether observed pixels are held out in blocks too where the holes are large
    (:func:`linr.holes.held_out_blocks`): :class:`HeldOutPick`'s."""

    def __init__(self, *, fraction: float = 0.05, patience: int = 40, seed: int = 0, check_every: int = 5,
                 average: str | None = None, at: float = 1.0, keep_checkpoints: bool = False):
        if not 0.0 < fraction < 0.5:
            raise ValueError(f"hold-out fraction must be in (0, 0.5), got {fraction}")
        if not 0.0 < at <= 1.0:
            raise ValueError(f"holdout: the fraction of the minimum's step to return the average at must be in (0, 1], got {at}")
        if at < 1.0 and average in (None, "none"):
            raise ValueError("holdout: returning the average before its minimum ('at' below 1) needs an average, "
                             "such as holdout:0.05:40:window40:0.9")
        if keep_checkpoints and average in (None, "none"):
            raise ValueError("holdout: keeping the checkpoints' averages needs an average, such as holdout:0.05:40:window40")
        self.fraction, self.seed, self.at = float(fraction), int(seed), float(at)
        self.keep_checkpoints = bool(keep_checkpoints)
        self.tracker = MinTracker(patience=patience, check_every=check_every)
        self.average = None if average in (None, "none") else parse_average(average)
        # keeps the average's iterate of lowest hold-out loss; never ends the fit by itself
        self.average_tracker = MinTracker(patience=1 << 30, check_every=check_every)
        self.returned: str | None = None  # 'raw' or 'average', once best() has chosen
        self._returned_value: float | None = None
        # (1-based step, average) at each checkpoint from about at * (the average's minimum's step) on
        self._checkpoints: list[tuple[int, torch.Tensor]] = []
        self._held: list[tuple[Any, torch.Tensor, torch.Tensor, float, Any]] = []
        self._held_masks: list[np.ndarray | None] = []
        self._on_device: dict[str, list[tuple[Any, torch.Tensor, torch.Tensor, float, Any]]] = {}
        self._neighbours: list[torch.Tensor | None] = []
        self.blocks_held = 0  # observed pixels held out in blocks (linr.holes)

    def reset(self) -> None:
        self.blocks_held = 0
        self.tracker.reset()
        self.average_tracker.reset()
        if self.average is not None:
            self.average.reset()
        self.returned = None
        self._returned_value = None
        self._checkpoints = []
        self._held = []
        self._held_masks: list[np.ndarray | None] = []
        self._on_device = {}
        self._neighbours = []

    def prepare(self, observations: list[Any]) -> list[Any]:
        from .operators import Compose, Identity, Mask

        gen = torch.Generator().manual_seed(self.seed)
        prepared = []
        for obs in observations:
            observed = _observed(obs)
            held = observed & (torch.rand(observed.shape, generator=gen) < self.fraction)
            if self.holds_blocks:  # blocks as deep as the holes, where they are large (linr.holes)
                blocks = torch.from_numpy(held_out_blocks(observed.numpy(), np.random.default_rng(self.seed)))
                self.blocks_held += int(blocks.sum())
                held |= blocks
            if not held.any() or held.sum() == observed.sum():
                prepared.append(obs)  # too few pixels to hold any out
                self._held_masks.append(None)
                continue
            self._held_masks.append(held.numpy())
            y = torch.from_numpy(obs.image).permute(2, 0, 1)[None] * 2 - 1  # (1, C, h, w), [-1, 1]
            weight = 1.0 if obs.weight is None else float(obs.weight)
            # Flat pixel indices rather than a boolean mask: index_select needs no host sync.
            index = held.flatten().nonzero().squeeze(1)
            self._held.append((obs.operator, index, y.flatten(2)[:, :, index], weight,
                               obs.fidelity.holdout_term()))
            self._neighbours.append(_neighbour_mean(y, observed & ~held).flatten(2)[:, :, index]
                                    if isinstance(obs.operator, Identity) else None)
            op = Compose([obs.operator, Mask((observed & ~held).float())])
            prepared.append(dataclasses.replace(obs, operator=op))
        return prepared

    def held_out_masks(self) -> list[np.ndarray | None]:
        """Per observation :meth:`prepare` got (in its order), :meth:`held_out_mask`; empty before."""
        return list(self._held_masks)

    def held_out_mask(self, observation: int = 0) -> np.ndarray | None:
        """(h, w) bool: the pixels of an observation (by its place in the list :meth:`prepare`
        got) held out of the data term; None before :meth:`prepare` or when none could be."""
        masks = self._held_masks
        return masks[observation] if observation < len(masks) else None

    def holdout_loss(self, output: torch.Tensor) -> torch.Tensor:
        """Weighted mean squared error on the held-out pixels (0-d tensor, [-1, 1] scale)."""
        key = str(output.device)
        if key not in self._on_device:
            self._on_device[key] = [(op, i.to(output.device), y.to(output.device), w, d)
                                    for op, i, y, w, d in self._held]
        total = output.new_zeros(())
        for op, index, y, weight, term in self._on_device[key]:
            pred = op(output).flatten(2).index_select(2, index)  # (1, C, n held)
            total = total + weight * term.value(pred, y)
        return total

    def observe(self, step: int, output: torch.Tensor, loss: torch.Tensor,
                state: list[torch.Tensor] | None = None) -> str | None:
        if not self._held:
            return None
        if self.average is not None:
            mean = self.average.update(output)
            self.average_tracker.update(step, self.holdout_loss(mean), mean)
            if (self.at < 1.0 or self.keep_checkpoints) and (step + 1) % self.average_tracker.check_every == 0:
                self._keep_checkpoint(step + 1, mean)
        if self.tracker.update(step, self.holdout_loss(output), output, state):
            return (f"holdout: no new minimum of the loss on {self.fraction:.0%} held-out pixels "
                    f"for {self.tracker.patience} steps")
        return None

    def _keep_checkpoint(self, step: int, mean: torch.Tensor) -> None:
        """Keep the average of this checkpoint (1-based ``step``) and drop those that can no longer
        be the nearest to ``at`` times the minimum's step (the minimum only moves later)."""
        self._checkpoints.append((step, mean.clone()))
        if self.keep_checkpoints:
            return
        target = self.at * (self.average_tracker.best_step + 1)  # a host read, at checkpoints only
        while len(self._checkpoints) > 1 and self._checkpoints[1][0] <= target:
            self._checkpoints.pop(0)

    def checkpoints(self) -> list[tuple[int, torch.Tensor]]:
        """With ``keep_checkpoints``: (1-based step, the average then) at every ``check_every``-th
        step of the fit, in order (the average on the fit's device, (1, C, h, w) on [-1, 1]); with
        ``at`` below 1, those it still keeps; else empty."""
        return list(self._checkpoints)

    def neighbour_loss(self) -> float | None:
        """The held-out loss (as :meth:`holdout_loss`) of a predictor with no model at all: each
        held-out pixel the mean of its kept 4-neighbours in the observation. A fit that predicts
        its held-out pixels clearly worse than this has failed (e.g. a learning rate too high for the
        image: a SIREN that settles on a blur of a few dB). None unless every observation with
        held-out pixels is a plain photo of the image (the identity operator: not a low-res or
        blurred one, nor one with a mask) compared by squared error (a likelihood of photon
        counts is known only up to a constant, so a ratio of two of them means nothing), or
        when none were held out."""
        if not self._held or any(n is None for n in self._neighbours) or \
                any(type(term) is not SquaredError for _, _, _, _, term in self._held):
            return None
        return float(sum(weight * term.value(pred, y) for (_, _, y, weight, term), pred
                         in zip(self._held, self._neighbours)))

    def returned_loss(self) -> float | None:
        """The held-out loss of the iterate :meth:`best` returned (the average's or the raw
        iterate's); None before :meth:`best` or when nothing was tracked."""
        return self._returned_value

    AVERAGE_GUARD = 0.05
    """The average is returned unless the best raw iterate's held-out loss is lower than the
    average's by more than this fraction: a guard for fits too short for the window (a small step
    budget, a fit that peaks within the window's first iterates), where the average still holds
    the first, blurry iterates. On every recorded row of ``linr bench averaging`` (21 denoising,
    3 joint) the two losses were within 3.7% of each other, so the guard changes none of them."""

    def best(self) -> tuple[torch.Tensor | None, int]:
        chosen = self.average_tracker if self.average_tracker.value is not None else self.tracker
        raw = self.tracker.value
        if chosen is self.average_tracker and raw is not None and \
                float(raw) < (1.0 - self.AVERAGE_GUARD) * float(chosen.value):
            chosen = self.tracker
        self.returned = None if chosen.value is None else "average" if chosen is self.average_tracker else "raw"
        self._returned_value = None if chosen.value is None else float(chosen.value)
        if self.returned == "average" and self.at < 1.0:
            target = self.at * (chosen.best_step + 1)
            earlier = [(abs(step - target), step, mean) for step, mean in self._checkpoints
                       if step <= chosen.best_step + 1]
            if earlier:
                _, step, mean = min(earlier, key=lambda c: c[:2])  # the nearest; the earlier on a tie
                self._returned_value = float(self.holdout_loss(mean))
                return mean, step
        return chosen.iterate, chosen.best_step + 1

    def best_state(self) -> list[torch.Tensor] | None:
        # an average of iterates is no one model's output: nothing renders it again
        return None if self.returned == "average" else self.tracker.state

    def describe(self) -> dict[str, Any]:
        out = {"name": self.name, "fraction": self.fraction, "patience": self.tracker.patience,
               "seed": self.seed}
        if self.average is not None:
            out.update(average=self.average.spec, returned=self.returned)
        if self.at < 1.0:
            out.update(at=self.at)
            if self.returned == "average":  # the step the fraction was taken of
                out.update(minimum_step=self.average_tracker.best_step + 1)
        return out


class Discrepancy(StopRule):
    """Discrepancy principle: stop when the data term reaches ``tau`` times the expected noise
    energy, ``sum_i w_i * kept_i * e_i(sigma_i)`` with each observation's data term's expected
    value at the truth (squared error: ``(2 sigma_i)^2``, the [-1, 1] scale doubling sigma).

    ``sigma_i`` is estimated from each observation that carries noise (``carries_noise``) unless
    ``sigma`` (0-255 scale) is given; the others count as noise-free. ``kept_i`` is the fraction of the
    observation's entries in its data term (below 1 with masks or a hold-out). Returns the
    iterate at which it fired; without a noisy observation it never fires.
    """

    name = "discrepancy"
    keeps_state = True

    def __init__(self, *, tau: float = 1.0, sigma: float | None = None, check_every: int = 5):
        if not tau > 0:
            raise ValueError(f"discrepancy tau must be > 0, got {tau}")
        self.tau, self.sigma, self.check_every = float(tau), sigma, int(check_every)
        self.reset()

    def reset(self) -> None:
        self.threshold: float | None = None
        self.sigmas: list[float] = []
        self._hit: torch.Tensor | None = None  # 0-based step at which the loss first fell below
        self._iterate: torch.Tensor | None = None
        self._state: list[torch.Tensor] | None = None

    def prepare(self, observations: list[Any]) -> list[Any]:
        energy = 0.0
        for obs in observations:
            if not obs.carries_noise:
                continue
            sigma = estimate_noise_sigma(obs.image) if self.sigma is None else self.sigma / 255.0
            self.sigmas.append(sigma * 255.0)
            kept = float(_observed(obs).float().mean())
            weight = 1.0 if obs.weight is None else float(obs.weight)
            expected = obs.fidelity.expected(sigma)
            if expected is None:
                continue  # a data term with no expected value at the truth: no threshold from it
            energy += weight * kept * expected
        self.threshold = self.tau * energy if energy > 0 else None
        return observations

    def update(self, step: int, loss: torch.Tensor, output: torch.Tensor | None,
               state: list[torch.Tensor] | None = None) -> bool:
        """Record one step; True when the threshold has been reached (checked every few steps)."""
        if self.threshold is None:
            return False
        loss = loss.detach().reshape(())
        step_t = torch.full((), step, dtype=torch.long, device=loss.device)
        if self._hit is None:
            self._hit = torch.full((), -1, dtype=torch.long, device=loss.device)
            self._iterate = None if output is None else output.clone()
            self._state = None if state is None else [t.clone() for t in state]
        first = (self._hit < 0) & (loss <= self.threshold)
        self._hit = torch.where(first, step_t, self._hit)
        if output is not None:
            self._iterate = torch.where(first, output, self._iterate)
        if state is not None and self._state is not None:
            self._state = [torch.where(first, new, old) for new, old in zip(state, self._state)]
        return (step + 1) % self.check_every == 0 and int(self._hit) >= 0

    def observe(self, step: int, output: torch.Tensor, loss: torch.Tensor,
                state: list[torch.Tensor] | None = None) -> str | None:
        if self.update(step, loss, output, state):
            sig = ", ".join(f"{s:.1f}" for s in self.sigmas)
            how = "estimated" if self.sigma is None else "given"
            return f"discrepancy: data term reached {self.tau:g} x the noise level (sigma {sig}/255, {how})"
        return None

    def best(self) -> tuple[torch.Tensor | None, int]:
        if self._hit is None or int(self._hit) < 0:
            return None, 0
        return self._iterate, int(self._hit) + 1

    def best_state(self) -> list[torch.Tensor] | None:
        return None if self.best()[0] is None else self._state

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "tau": self.tau, "sigma_estimated": self.sigma is None,
                "sigmas": [round(s, 3) for s in self.sigmas]}


class Plateau(_TrackedRule):
    """Stop when the data term has not improved by a relative ``rel_tol`` for ``patience``
    steps (noise-free tasks, where more steps only help until the fit saturates). Returns the
    iterate of lowest data term."""

    name = "plateau"

    def __init__(self, *, rel_tol: float = 1e-3, patience: int = 100, check_every: int = 5):
        if not rel_tol >= 0 or patience < 1:
            raise ValueError(f"REL_TOL must be at least 0 and PATIENCE at least 1 step, got {rel_tol:g} and {patience}")
        self.rel_tol = float(rel_tol)
        self.tracker = MinTracker(patience=patience, check_every=check_every, min_delta=rel_tol)

    def reset(self) -> None:
        self.tracker.reset()

    def observe(self, step: int, output: torch.Tensor, loss: torch.Tensor,
                state: list[torch.Tensor] | None = None) -> str | None:
        if self.tracker.update(step, loss, output, state):
            return (f"plateau: data term improved less than {self.rel_tol:g} (relative) in "
                    f"{self.tracker.patience} steps")
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "rel_tol": self.rel_tol, "patience": self.tracker.patience}


def _neighbour_mean(y: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """(1, C, h, w): each pixel's mean over its kept 4-neighbours in ``y`` (the image's edges
    count only the neighbours inside it); 0 where none is kept."""
    cross = torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=y.dtype)
    weights = kept.to(y.dtype)[None, None]
    channels = y.shape[1]
    total = torch.nn.functional.conv2d(y * weights, cross.expand(channels, 1, 3, 3), padding=1,
                                       groups=channels)
    count = torch.nn.functional.conv2d(weights, cross[None, None], padding=1)
    return total / count.clamp_min(1.0)


def holdout_rule(rule: StopRule | None) -> HoldOut | None:
    """The rule that holds pixels out of a fit (``rule`` itself, or the first such rule of a
    :class:`FirstToFire`), else None."""
    for candidate in (rule.rules if isinstance(rule, FirstToFire) else [rule]):
        if isinstance(candidate, HoldOut):
            return candidate
    return None


class SurePick(HoldOut):
    """The automatic hold-out rule (:data:`AUTO_NOISY`'s stop and average) keeping the average at
    every checkpoint, so that :func:`linr.restore` can return, instead of the average at its
    held-out minimum, the checkpoint whose refined image has the least Stein's unbiased risk
    estimate (:mod:`linr.sure`; one noisy photo refined by ``grouped``, fitted whole). Spec
    ``sure[:FRACTION[:PATIENCE[:AVERAGE]]]``; the automatic stop is this rule for such photos of at
    most :func:`linr.sure.up_to_pixels` (128 x 128 in grey, 64 x 64 in colour) noisy enough
    (:func:`linr.sure.noisy_enough`: measured noise at least :data:`linr.sure.MIN_SIGMA`, or an
    aligned burst's mean measured as its frames' levels say)."""

    name = "sure"

    def __init__(self, *, fraction: float = 0.05, patience: int = 40, seed: int = 0, check_every: int = 5,
                 average: str = "window40"):
        if average in (None, "none"):
            raise ValueError("sure: it chooses among averages of iterates; give one, such as sure:0.05:40:window40")
        super().__init__(fraction=fraction, patience=patience, seed=seed, check_every=check_every,
                         average=average, keep_checkpoints=True)


class HeldOutPick(HoldOut):
    """Never stops: holds a random ``fraction`` of the observed pixels out of the data term (as
    :class:`HoldOut` does), looks at the output every ``every`` steps only, and returns the
    iterate of lowest loss on the held-out pixels among those (with its model).

    For noise-free fits whose best step the budget does not know, such as inpainting, where a
    SIREN can pass its best and then overfit the observed pixels (the paper preset's head in
    Table 3: 27.7 dB at step 150, 26.1 at 500). Looking only every ``every`` steps keeps an
    inpainting fit rendering only the pixels it trains on, plus one whole image every ``every``
    steps.

    Where the photo's holes are large (:func:`linr.holes.has_large_holes`) it also holds out
    square blocks of observed pixels about as deep as the holes (:func:`linr.holes.held_out_blocks`,
    seeded by ``seed``), so that a blend chosen on the held-out pixels can be chosen per depth in
    the holes (:class:`linr.refine.DepthBlend`); ``describe()`` counts them."""

    name = "pick"
    stops = False
    holds_blocks = True

    def __init__(self, *, fraction: float = 0.05, every: int = 25, seed: int = 0):
        if every < 1:
            raise ValueError(f"pick: every must be at least 1 step, got {every}")
        super().__init__(fraction=fraction, patience=1 << 30, seed=seed, check_every=1)
        self.output_every = int(every)

    def observe(self, step: int, output: torch.Tensor | None, loss: torch.Tensor,
                state: list[torch.Tensor] | None = None) -> str | None:
        last = self.budget is not None and step + 1 == self.budget
        if output is None or ((step + 1) % self.output_every and not last) or not self._held:
            return None
        self.tracker.update(step, self.holdout_loss(output), output, state)
        return None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "fraction": self.fraction, "every": self.output_every, "seed": self.seed,
                **({"blocks_held_out": self.blocks_held} if self.blocks_held else {})}


class FirstToFire(StopRule):
    """Run several rules together; the first to fire ends the fit and chooses the iterate.

    When none fires before the step budget, the first rule (in order) that has a best iterate
    chooses; otherwise the last iterate is returned.
    """

    name = "first"
    keeps_state = True  # hands state to the rules that keep it; best_state() is the chosen one's

    def __init__(self, rules: Sequence[StopRule]):
        if not rules:
            raise ValueError("FirstToFire needs at least one rule")
        self.rules = list(rules)
        if sum(isinstance(rule, HoldOut) for rule in self.rules) > 1:
            raise ValueError("give at most one rule that holds pixels out (holdout or pick): "
                             "they would draw the same pixels")
        self.fired: StopRule | None = None
        self.output_every = math.gcd(*(rule.output_every for rule in self.rules))
        self.stops = any(rule.stops for rule in self.rules)

    @property
    def budget(self) -> int | None:  # type: ignore[override]
        return self.rules[0].budget

    @budget.setter
    def budget(self, steps: int | None) -> None:
        for rule in self.rules:
            rule.budget = steps

    def reset(self) -> None:
        self.fired = None
        for rule in self.rules:
            rule.reset()

    def prepare(self, observations: list[Any]) -> list[Any]:
        for rule in self.rules:
            observations = rule.prepare(observations)
        return observations

    def observe(self, step: int, output: torch.Tensor, loss: torch.Tensor,
                state: list[torch.Tensor] | None = None) -> str | None:
        for rule in self.rules:
            reason = (rule.observe(step, output, loss, state) if rule.keeps_state
                      else rule.observe(step, output, loss))
            if reason is not None:
                self.fired = rule
                return reason
        return None

    def _choice(self) -> StopRule | None:
        """The rule whose best iterate is returned (None: the final iterate)."""
        # the rule that fired (when it keeps no iterate, as 'fixed' does, a rule that never stops and
        # only chooses, 'pick'), else the first that has one
        candidates = self.rules if self.fired is None else \
            [self.fired] + [rule for rule in self.rules if not rule.stops]
        for rule in candidates:
            if rule.best()[0] is not None:
                return rule
        return None

    def best(self) -> tuple[torch.Tensor | None, int]:
        rule = self._choice()
        return (None, 0) if rule is None else rule.best()

    def best_state(self) -> list[torch.Tensor] | None:
        rule = self._choice()
        return None if rule is None else rule.best_state()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "rules": [r.describe() for r in self.rules],
                "fired": None if self.fired is None else self.fired.name}


class Oracle(_TrackedRule):
    """BENCHMARK ONLY: needs the clean image. Keeps the iterate of highest PSNR; never fires."""

    name = "oracle"

    def __init__(self, reference: np.ndarray):
        ref = np.asarray(reference, dtype=np.float32)
        ref = ref[..., None] if ref.ndim == 2 else ref
        self.reference = torch.from_numpy(ref).permute(2, 0, 1)[None] * 2 - 1  # [-1, 1]
        self.tracker = MinTracker(patience=1 << 30)
        self.corner = (0, 0)

    def reset(self) -> None:
        self.tracker.reset()

    def prepare(self, observations: list[Any]) -> list[Any]:
        """Where the restored frame starts in the rendered output (a fit that renders beyond it,
        :func:`linr.problem.margins_of`)."""
        from .problem import margins_of

        top, _, left, _ = margins_of(observations)
        self.corner = (top, left)
        return observations

    def observe(self, step: int, output: torch.Tensor, loss: torch.Tensor,
                state: list[torch.Tensor] | None = None) -> str | None:
        (top, left), (h, w) = self.corner, self.reference.shape[-2:]
        frame = output[..., top:top + h, left:left + w]
        mse = torch.mean((frame - self.reference.to(output.device)) ** 2)
        self.tracker.update(step, mse, output, state)
        return None


# --- specs: "variance:10:40,discrepancy:1" ------------------------------------------------------

RULE_PARAMS: dict[str, tuple[type[StopRule], tuple[tuple[str, type], ...]]] = {
    "fixed": (FixedSteps, (("steps", int),)),
    "variance": (OutputVariance, (("window", int), ("patience", int))),
    "holdout": (HoldOut, (("fraction", float), ("patience", int), ("average", str), ("at", float))),
    "pick": (HeldOutPick, (("fraction", float), ("every", int))),
    "sure": (SurePick, (("fraction", float), ("patience", int), ("average", str))),
    "discrepancy": (Discrepancy, (("tau", float),)),
    "plateau": (Plateau, (("rel_tol", float), ("patience", int))),
}
"""Rule name -> (class, positional parameters of its spec, in order; omitted ones keep defaults)."""

AUTO_NOISY_MODEL = "holdout:0.05:40"
"""The automatic rule for denoising fits that must keep a model (to render at another size or
save), chosen with ``linr bench stopping`` (BENCHMARKS.md): on 64x64 set9 crops at sigma 25 it
came within 0.33 dB of the oracle on average, and it needs no noise model, unlike the
discrepancy rule whose best ``tau`` moved with the noise level."""

AUTO_NOISY = AUTO_NOISY_MODEL + ":window40"
"""The automatic rule for denoising fits: :data:`AUTO_NOISY_MODEL`'s stop, returning the mean
of the last 40 rendered iterates at its held-out minimum (``linr bench averaging``,
BENCHMARKS.md "#15 quality: iterate averaging": +0.25 dB on the report crops, +0.36 on the
tune crops, no row of 19 worse by more than 0.02 dB, no extra steps). An average is no single
model's output, so fits that must keep a model use :data:`AUTO_NOISY_MODEL`."""


AUTO_BLENDED = "pick:0.05:25"
"""The automatic rule for a fit without noise whose image a refiner blends with another
inpainting (a refiner that takes a masked photo, such as :data:`linr.tasks.DEFAULT_INPAINT_REFINE`): holds 5% of the observed pixels out,
looks every 25 steps, never stops early and returns the iterate of lowest held-out loss; the
blend's weight is then chosen on the same held-out pixels (BENCHMARKS.md, '#15 inpainting')."""


def parse_stop(spec: str) -> StopRule:
    """Build a rule from ``NAME[:P1[:P2]][,NAME...]`` (several: first to fire), e.g.
    ``variance:10:40``, ``discrepancy:1.05``, ``holdout:0.05:40,fixed:300``, ``holdout:0.05:40:window10``
    (with an iterate average, see :class:`HoldOut`), ``holdout:0.05:40:window40:0.9`` (that average
    at 0.9 of its held-out minimum's step). ValueError if bad."""
    if not isinstance(spec, str):
        raise ValueError(f"a stop rule is a spec such as 'auto' or 'fixed:300' (or a StopRule), got {spec!r}")
    rules = []
    for part in spec.split(","):
        name, *values = part.strip().split(":")
        if name not in RULE_PARAMS:
            raise ValueError(f"unknown stop rule {name!r}; choose from auto, {', '.join(RULE_PARAMS)}")
        cls, params = RULE_PARAMS[name]
        if len(values) > len(params):
            usage = ":".join([name, *(p.upper() for p, _ in params)])
            raise ValueError(f"stop rule {part!r} has too many parameters (use {usage})")
        try:
            kwargs = {p: t(v) for (p, t), v in zip(params, values)}
        except ValueError:
            raise ValueError(f"bad parameter in stop rule {part!r}") from None
        try:
            rules.append(cls(**kwargs))
        except ValueError as exc:  # a value out of range: the rule's own words, with the spec it came from
            raise ValueError(f"stop rule {part!r}: {exc}") from None
    return rules[0] if len(rules) == 1 else FirstToFire(rules)
