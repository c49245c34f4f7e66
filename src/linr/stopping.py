"""Stop rules: decide during a fit when to stop, and which iterate to return.

The fit calls ``rule.observe(step, output, loss)`` after every step; a non-None return value ends
the fit and is reported as the stop reason. ``rule.best()`` may hand back an earlier iterate (the
one the rule judged best) instead of the last one. Without a rule the fit runs its fixed number
of steps, as the paper does.
"""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["StopRule"]


class StopRule:
    """Base class. Subclasses override :meth:`observe` (and usually keep a best iterate)."""

    name = "rule"

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

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}
