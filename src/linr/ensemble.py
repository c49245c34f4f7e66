"""Ensembles: one scene fitted from several random starts at once, the mean of the members'
images returned and their spread per pixel kept as an uncertainty map.

Each member is the same fit with its own model seed (``seed + k``) and its own stop rule; a
hold-out rule also draws its own held-out pixels per member (seed ``k``), so every pixel is
trained on by most members, except before a blend chosen on held-out pixels (``biharmonic``),
where all members hold out the same pixels. On the fast engine the members run as one stack of models
(:func:`linr.fit.fit_many`: batched products, nearly free on a GPU that one image leaves idle,
``members`` times the work on a CPU); other models run one after the other.

The spread is the sample standard deviation over the members (``ddof=1``) per pixel and
channel, on the image's [0, 1] scale: how much the restoration depends on the network's random
start, large where the data leave the image undetermined (noise fitted differently, holes,
detail beyond the observations' resolution). It is not a calibrated error bar: members share the
observations and their noise, so an error they all make is not in it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import numpy as np

from .config import FitConfig
from .errors import InputError
from .fit import FitResult, Observation, _uses_engine, fit, fit_many
from .stopping import FirstToFire, HoldOut, StopRule, SurePick
from .sure import pick_by_sure

__all__ = ["MAX_MEMBERS", "member_rule", "fit_ensemble"]

MAX_MEMBERS = 64
"""Most members of one ensemble."""


def member_rule(rule: StopRule | None, member: int, *, shared_held_out: bool = False) -> StopRule | None:
    """``rule`` for member ``member``: its hold-out rules draw their own held-out pixels, or, with
    ``shared_held_out``, the same ones as every member's (no member trains on them, so the
    members' mean can be judged on them, as a blend's weight is: :mod:`linr.refine`)."""
    parts = rule.rules if isinstance(rule, FirstToFire) else [rule]
    for part in parts:
        if isinstance(part, HoldOut) and not shared_held_out:
            part.seed = member
    return rule


def _how_members_stopped(results: Sequence[FitResult], budget: int) -> str:
    """How the members' fits ended, as the ensemble's stop reason says it: by their own rule, or
    some or all at the step budget (a rule that never fired, a rule that never stops, fixed steps)."""
    ran_out = sum(r.stop_reason == "fixed steps" or r.stop_reason.startswith("step budget") for r in results)
    if ran_out == 0:
        return "each stopped by its own rule"
    if ran_out == len(results):
        return f"each ran its step budget ({budget})"
    return f"{ran_out} of {len(results)} ran the step budget ({budget}), the others stopped by their own rule"


def _picked(records: Sequence[dict[str, Any] | None]) -> str:
    """What the members' SURE picks (their ``settings['stop']['sure']`` records) chose, as a clause
    of the ensemble's stop reason ('' for members with no pick)."""
    skipped = [record["skipped"] for record in records if "skipped" in (record or {})]
    why = "; ".join(sorted(set(skipped)))
    if not records:
        return ""
    if not skipped:
        return "; each member's average chosen by SURE of its refined image"
    if len(skipped) == len(records):
        return f"; no SURE pick: {why}"
    return (f"; {len(records) - len(skipped)} of {len(records)} members' averages chosen by SURE of the refined "
            f"image (no SURE pick for the others: {why})")


def fit_ensemble(observations: Sequence[Observation], config: FitConfig, stops: Sequence[StopRule | None],
                 *, reference: np.ndarray | None = None, on_pick: Callable[[str], None] | None = None) -> FitResult:
    """Fit ``len(stops)`` members (stop rule objects, one per member, see :func:`member_rule`)
    and return their mean image with :attr:`~linr.fit.FitResult.uncertainty` set; the result's
    history and stop step are the first member's, ``settings['ensemble']`` lists every member.
    A member under a :class:`~linr.stopping.SurePick` returns the checkpoint its own SURE pick
    chooses (:func:`linr.sure.pick_by_sure`, with its own seed; ``on_pick('sure')`` called once
    before the first), as one fit of the photo would."""
    members = len(stops)
    if not 2 <= members <= MAX_MEMBERS:
        raise InputError(f"an ensemble has 2 to {MAX_MEMBERS} members, got {members}")
    seeds = [config.seed + k for k in range(members)]
    observations = list(observations)
    if _uses_engine(config):
        results = fit_many([observations] * members, config, references=[reference] * members,
                           stops=list(stops), seeds=seeds)
    else:
        results = [fit(observations, dataclasses.replace(config, seed=seed), reference=reference, stop=stop)
                   for seed, stop in zip(seeds, stops)]
    picks = [k for k, stop in enumerate(stops) if isinstance(stop, SurePick)]
    if picks and on_pick is not None:
        on_pick("sure")
    for k in picks:
        pick_by_sure(results[k], observations, dataclasses.replace(config, seed=seeds[k]), stops[k])
    images = np.stack([r.image for r in results])
    first = results[0]
    described: dict[str, Any] = {
        "members": members, "seeds": seeds,
        "steps_run": [r.steps_run for r in results], "stop_steps": [r.stop_step for r in results],
    }
    if picks:  # each member's pick as one fit records it (its held-out step, the steps scored, or why skipped)
        described["sure"] = [results[k].settings.get("stop", {}).get("sure") for k in picks]
    if reference is not None:
        from .metrics import psnr

        described["member_psnr"] = [round(psnr(reference, np.clip(r.image, 0, 1)), 3) for r in results]
    retries = [r.settings.get("retry") for r in results]
    if any(retries):  # members fitted again (FitConfig.retry_lr): each member's record, in order
        described["retries"] = retries
    settings = {**{k: v for k, v in first.settings.items() if k != "retry"}, "ensemble": described}
    timings = dict(first.timings)
    timings["fit_s"] = max(r.timings["fit_s"] for r in results)
    if picks:
        timings["sure_s"] = sum(results[k].timings.get("sure_s", 0.0) for k in picks)
    steps = described["stop_steps"]
    reason = (f"ensemble of {members}: the mean of {members} fits from seeds {seeds[0]}-{seeds[-1]}, "
              f"{_how_members_stopped(results, config.steps)}{_picked(described.get('sure', []))} "
              f"(returned steps {min(steps)}-{max(steps)})")
    return FitResult(image=images.mean(axis=0), history=first.history, steps_run=max(r.steps_run for r in results),
                     stop_step=first.stop_step, stop_reason=reason, timings=timings, settings=settings,
                     model=None, uncertainty=images.std(axis=0, ddof=1),
                     extended_image=None if first.extended_image is None else
                     np.mean([r.extended_image for r in results], axis=0))
