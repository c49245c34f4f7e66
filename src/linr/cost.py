"""What a fit will cost before it runs, and which way the fast engine renders a pixel-wise step.

:func:`render_all_pixels` is the one rule for the second question, used by the loop
(:mod:`linr.fastfit`) and by the estimate (:func:`plan`) alike, so the estimate describes the fit
that will run.
"""

from __future__ import annotations

from typing import Sequence

import torch

from .config import FitConfig
from .engine import Estimate, estimate, step_chunk_pixels
from .priors import is_local
from .problem import Observation, clean_shape, margins_of, resolve_device

__all__ = ["render_all_pixels", "pixel_weight_maps", "plan"]


def render_all_pixels(seen: int, total: int, *, whole_output_every_step: bool) -> bool:
    """Whether a pixel-wise step renders every pixel (those no data term sees get a zero
    gradient) rather than only the ``seen`` ones.

    A training pass costs about three forward passes (forward, then backward at twice that), so
    rendering only the seen pixels costs ``3 seen``, plus a whole forward pass (``total``) when a
    stop rule or callback needs the whole output every step; rendering all costs ``3 total`` and
    yields the output as it goes. The default noisy fit (hold-out stop, 95% of pixels seen)
    therefore renders once per step; inpainting with fixed steps renders only what it observes.
    """
    if seen >= total:
        return True
    return whole_output_every_step and 3 * total <= 3 * seen + total


def pixel_weight_maps(observations: Sequence[Observation], shape: tuple[int, int]
                      ) -> list[torch.Tensor] | None:
    """Each observation's map (1 or C, H, W) when every operator is pixel-wise with a 0/1 map
    (the fast engine's pixel path), else None."""
    maps = []
    for obs in observations:
        m = obs.operator.pixel_weights(shape)
        if m is None or not bool(((m == 0) | (m == 1)).all()):
            return None
        maps.append(m)
    return maps


def plan(observations: Sequence[Observation], config: FitConfig, *, whole_output_every_step: bool = False,
         flops_per_second: float = 5e10) -> Estimate:
    """:func:`~linr.engine.estimate` for a resolved fit: image size, the pixels a step renders
    and trains (only observed ones where :func:`render_all_pixels` says so), pixel batches, and
    whether the loss needs two passes. ``whole_output_every_step``: a stop rule will watch the
    output (it does for every automatic stop). The hold-out rule's held-out pixels (5%) are
    counted as trained: where only the seen pixels are rendered, the estimate errs that much high."""
    height, width = clean_shape(observations)
    top, bottom, left, right = margins_of(observations)  # rendered beyond the frame (a blur with free edges)
    height, width = height + top + bottom, width + left + right
    channels = observations[0].channels
    # a prior of the whole image takes the image step (every pixel, autograd), as operators
    # that mix pixels do; a local prior keeps the pixel path but renders every pixel
    # (linr.fastfit.pixel_terms, run_fast_many)
    local = config.prior is None or (is_local(config.prior) and config.batch_pixels is None)
    # a rendering beyond the frame takes the image step too (linr.fastfit.pixel_terms)
    maps = pixel_weight_maps(observations, (height, width)) if local and not (top or bottom or left or right) else None
    total = height * width
    trained, extra_pass = total, False
    if maps is None:  # the image step: two passes when the image is more than one chunk
        extra_pass = total > config.chunk_pixels
    elif config.prior is None:
        seen = torch.zeros(height, width, dtype=torch.bool)
        for m in maps:
            seen |= m.amax(0) > 0
        trained = int(seen.sum())
        if config.batch_pixels is not None:
            trained = min(trained, config.batch_pixels)
        elif render_all_pixels(trained, total, whole_output_every_step=whole_output_every_step):
            trained = total
        extra_pass = trained < total and whole_output_every_step
    # else a local prior on the pixel path: every pixel rendered and trained, one pass
    m = config.model
    chunk = config.chunk_pixels
    if maps is not None:  # the pixel path: the CPU's smaller chunk (linr.engine.step_chunk_pixels)
        chunk = step_chunk_pixels(config.chunk_pixels, resolve_device(config.device), chunk, pixel_wise=True)
    return estimate(
        height, width, steps=config.steps, net_width=m.width, depth=m.depth, channels=channels,
        chunk_pixels=chunk, trained_pixels=trained, two_pass=extra_pass,
        flops_per_second=flops_per_second,
    )
