"""Per-step bookkeeping shared by the loops (:class:`Monitor`)."""

from __future__ import annotations

import sys
from typing import Callable

import torch

from .config import FitConfig
from .errors import DivergenceError
from .problem import Problem
from .stopping import StopRule

__all__ = ["Monitor"]


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
        if stop is not None:  # the budget ran out before the rule fired
            stop.budget = config.steps
            if stop.stops:
                self.stop_reason = f"step budget ({config.steps}) reached before the {stop.name} rule fired"
            elif config.steps <= stop.output_every:  # its only look is at the last step
                self.stop_reason = (f"step budget ({config.steps}) run; the {stop.name} rule looks every "
                                    f"{stop.output_every} steps and at the last, so it had only the last iterate "
                                    "to return")
            else:
                self.stop_reason = (f"step budget ({config.steps}) run; the {stop.name} rule chose the iterate "
                                    f"(it looks every {stop.output_every} steps and at the last, and never stops)")
        self.eval_s = 0.0
        show = sys.stderr.isatty() if config.progress is None else config.progress
        self.bar = None
        if show:
            from tqdm import tqdm

            self.bar = tqdm(total=config.steps, desc="fitting", unit="step", leave=False)

    @property
    def needs_output(self) -> bool:
        """Whether every step's whole output must be seen (a callback, or a stop rule that looks
        at every step: :attr:`linr.stopping.StopRule.output_every` 1)."""
        return self.callback is not None or (self.stop is not None and self.stop.output_every == 1)

    def wants_output(self, step: int) -> bool:
        """Whether ``step`` needs the whole output rendered (if the loop does not have it)."""
        if self.needs_output:
            return True
        if self.stop is not None and ((step + 1) % self.stop.output_every == 0 or step + 1 == self.config.steps):
            return True
        return self.problem.reference is not None and step % self.config.eval_every == 0

    @property
    def wants_state(self) -> bool:
        """Whether :meth:`record` needs the parameters that made each step's output (a stop rule
        that may return an earlier iterate keeps its model with it)."""
        return self.stop is not None and self.stop.keeps_state

    def record(self, step: int, output: torch.Tensor | None, loss: torch.Tensor,
               state: list[torch.Tensor] | None = None) -> bool:
        """Book step ``step`` (0-based); ``output`` (1, C, H, W) detached, or None when the loop
        did not render it; ``state``: the parameters that made it (copies, when
        :attr:`wants_state`). Returns True when the stop rule ends the fit."""
        self.steps_run = step + 1
        loss = loss.detach()
        self.losses[step] = loss
        ref = self.problem.reference
        if output is not None and ref is not None:
            mse = torch.mean(((self.problem.framed(output) + 1) / 2 - ref) ** 2)
            self.psnrs.append(-10 * torch.log10(mse))
            self.psnr_steps.append(step)
        if self.steps_run % self.config.check_every == 0 or self.steps_run == self.config.steps:
            finite = torch.isfinite(self.losses[: self.steps_run])
            if not finite.all():
                bad = int((~finite).nonzero()[0])
                raise DivergenceError(
                    f"fit diverged at step {bad + 1} (loss is not finite); try a lower learning rate"
                )
        if self.callback is not None:  # the restored frame (not what a fit renders beyond it)
            self.callback(step, None if output is None else self.problem.framed(output), float(loss))
        if self.bar is not None:
            self.bar.update(1)
            if self.steps_run % 25 == 0:
                self.bar.set_postfix(loss=f"{float(loss):.2e}")
        if self.stop is not None:
            reason = (self.stop.observe(step, output, loss, state) if self.stop.keeps_state
                      else self.stop.observe(step, output, loss))
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
