"""Large holes in a photo's mask of observed pixels, and what a blend chosen on held-out pixels
needs to know about them.

A refiner that blends inpaintings (:class:`linr.refine.GroupedFill`, :class:`linr.refine.BiharmonicBlend`)
chooses its weights on observed pixels the fit held out. Held out at random, those pixels sit a
pixel or two from pixels the fit did see, so the weights say how well each inpainting fills a gap
of that size, which is what a random mask (the paper's Table 3) asks of them. Deep inside a large
hole (a scratch, a removed object) the inpaintings behave differently (a fit extrapolates, a
biharmonic surface stays smooth), and weights chosen a pixel from the data cost up to 8 dB there
against scikit-image's biharmonic inpainting alone (BENCHMARKS.md, "A new user's trial", fifty-sixth
session).

So where the holes are large (:func:`has_large_holes`), the fit also holds out square blocks of
observed pixels (:func:`held_out_blocks`) about as deep as the holes, and the blend is chosen per
depth (:func:`depth_bands`, :func:`weights_at`): each missing pixel takes the weights chosen on
held-out pixels at about its own distance from what was seen, where such weights carry from one
block to another (:func:`held_out_blocks_found`; :class:`linr.refine.DepthBlend`). The depth of a
pixel is its Euclidean distance (px) to the nearest observed pixel (:func:`hole_depths`).
Measured: BENCHMARKS.md, "Inpainting large holes".
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

LARGE_HOLE_DEPTH = 4.0
"""Depth (px) from which a missing pixel counts as deep: a random mask keeping 10% of the pixels
has under 1.1% of its missing pixels this deep at 64-1024 px, a square hole 16 px wide 39%."""

LARGE_HOLE_SHARE = 0.25
"""Share of the missing pixels that must be deep (:data:`LARGE_HOLE_DEPTH`) for the holes to count
as large (:func:`has_large_holes`)."""

LEAST_BLOCK_SIDE = 2 * math.ceil(LARGE_HOLE_DEPTH) + 1
"""The narrowest block held out (px): its middle as deep as a large hole's (:data:`LARGE_HOLE_DEPTH`)."""

BLOCK_SHARE = 0.10
"""The observed pixels held out in blocks, as a share of all observed pixels (beside the stop
rule's scattered ones), where :data:`LEAST_BLOCKS` blocks as deep as the holes fit in it; else
up to :data:`MOST_BLOCK_SHARE`."""

MOST_BLOCK_SHARE = 0.25
"""The largest share of the observed pixels held out in blocks, taken only where
:data:`LEAST_BLOCKS` blocks as deep as the holes need it (a photo whose holes are large beside
it). On the six tune crops (set5, kate; 64 px, a 24-px hole) blocks limited to 10% reached 6 px
deep (the hole 12): 2.1 dB under biharmonic inpainting on average; limited to 25%, 0.8 (the
default before blocks: 3.6)."""

LEAST_BLOCKS = 2
"""Blocks are made small enough that at least this many fit in :data:`BLOCK_SHARE`."""

DEEPEST_QUANTILE = 0.9
"""A block is about twice as wide as this quantile of the missing pixels' depths (its centre then
about as deep), unless :data:`LEAST_BLOCKS` of that size would pass :data:`BLOCK_SHARE`."""

BAND_EDGES = (1.5, 3.0, 6.0, 12.0, 24.0, 48.0, 96.0)
"""Depths (px) at which one band of held-out pixels ends and the next begins (:func:`depth_bands`)."""


def _any_channel(observed: np.ndarray) -> np.ndarray:
    """(H, W) bool: observed in some channel of an (H, W) or (H, W, C) mask."""
    observed = np.asarray(observed, bool)
    return observed.any(-1) if observed.ndim == 3 else observed


def hole_depths(observed: np.ndarray) -> np.ndarray:
    """(H, W) float64: each pixel's Euclidean distance (px) to the nearest pixel observed in some
    channel of ``observed`` ((H, W), or (H, W, C) per channel); 0 where observed, inf everywhere
    when nothing is."""
    from scipy.ndimage import distance_transform_edt

    seen = _any_channel(observed)
    if not seen.any():
        return np.full(seen.shape, np.inf)
    return distance_transform_edt(~seen)


def has_large_holes(observed: np.ndarray) -> bool:
    """Whether at least :data:`LARGE_HOLE_SHARE` of the missing pixels of ``observed`` lie
    :data:`LARGE_HOLE_DEPTH` px or more from every observed pixel (and some pixel is observed)."""
    return holes_are_large(hole_depths(observed))


def holes_are_large(depths: np.ndarray) -> bool:
    """:func:`has_large_holes` of the mask whose :func:`hole_depths` are ``depths``."""
    missing = depths > 0
    if not missing.any() or np.isinf(depths).any():
        return False
    return bool((depths >= LARGE_HOLE_DEPTH).sum() >= LARGE_HOLE_SHARE * missing.sum())


def held_out_blocks(observed: np.ndarray, generator: np.random.Generator) -> np.ndarray:
    """(H, W) bool: square blocks of pixels observed (in some channel) to hold out of a fit whose
    ``observed`` mask has large holes (:func:`has_large_holes`; none are made otherwise): as many
    as fit in :data:`BLOCK_SHARE` of the observed pixels (up to :data:`MOST_BLOCK_SHARE` where
    :data:`LEAST_BLOCKS` blocks as deep as the holes need more), placed at random (``generator``)
    where every pixel of the block is observed and no two overlap or touch, each about twice as
    wide as the holes' :data:`DEEPEST_QUANTILE` depth (narrower where :data:`LEAST_BLOCKS` would not
    fit in the most share, or where no block that wide fits; none narrower than
    :data:`LEAST_BLOCK_SIDE`)."""
    seen = _any_channel(observed)
    blocks = np.zeros(seen.shape, bool)
    depths = hole_depths(seen)
    if not holes_are_large(depths):
        return blocks
    deep = 2 * math.ceil(np.quantile(depths[depths > 0], DEEPEST_QUANTILE)) + 1  # a block as deep as the holes
    budget = min(MOST_BLOCK_SHARE * seen.sum(), max(BLOCK_SHARE * seen.sum(), LEAST_BLOCKS * deep * deep))
    side = min(deep, int(math.isqrt(int(budget // LEAST_BLOCKS))), *seen.shape)
    while side >= LEAST_BLOCK_SIDE:
        free = _whole_windows(seen, side)
        if free.any():
            break
        side -= 2
    else:
        return blocks
    while blocks.sum() + side * side <= budget and free.any():
        choices = np.flatnonzero(free)
        top, left = np.unravel_index(choices[generator.integers(len(choices))], free.shape)
        blocks[top:top + side, left:left + side] = True
        free[max(0, top - side):top + side + 1, max(0, left - side):left + side + 1] = False  # nor touch
    return blocks


def _whole_windows(seen: np.ndarray, side: int) -> np.ndarray:
    """(H - side + 1, W - side + 1) bool: the top-left corners of the ``side`` x ``side`` windows
    of ``seen`` that are wholly True (a summed-area table)."""
    table = np.zeros((seen.shape[0] + 1, seen.shape[1] + 1), np.int64)
    table[1:, 1:] = seen.cumsum(0).cumsum(1)
    sums = table[side:, side:] - table[:-side, side:] - table[side:, :-side] + table[:-side, :-side]
    return sums == side * side


def held_out_blocks_found(held: np.ndarray) -> np.ndarray:
    """(n,) int for the n held-out pixels of ``held`` (H, W; in its row-major order): the block
    (1, 2, ...) each belongs to, 0 for the others: a block is a group of held-out pixels side by
    side (4-connected) at least as large as the least block (:data:`LEAST_BLOCK_SIDE` squared);
    scattered ones seldom group so."""
    from scipy.ndimage import label

    held = np.asarray(held, bool)
    labels, _ = label(held)
    index = labels[held]
    sizes = np.bincount(index)
    large = np.flatnonzero(sizes >= LEAST_BLOCK_SIDE * LEAST_BLOCK_SIDE)
    large = large[large > 0]
    renumber = np.zeros(len(sizes), np.int64)
    renumber[large] = np.arange(1, len(large) + 1)
    return renumber[index]


def depth_bands(depths: np.ndarray, least: int) -> list[np.ndarray]:
    """The held-out pixels grouped by depth: ``depths`` (n,) of each pixel from what the fit saw
    (px); index arrays into it, shallowest first, cut at :data:`BAND_EDGES`, a band with fewer than
    ``least`` pixels merged into the one before it (the first into the next); one band when fewer
    than ``least`` are held out in all."""
    depths = np.asarray(depths, np.float64)
    order = np.argsort(depths, kind="stable")
    cuts = np.searchsorted(depths[order], BAND_EDGES)
    bands = [b for b in np.split(order, cuts) if len(b)]
    merged: list[np.ndarray] = []
    for band in bands:
        if merged and (len(band) < least or len(merged[-1]) < least):
            merged[-1] = np.concatenate([merged[-1], band])
        else:
            merged.append(band)
    return merged


def weights_at(depths: np.ndarray, band_depths: Sequence[float], band_weights: np.ndarray) -> np.ndarray:
    """(..., K) float64: each pixel's blend weights at its ``depths`` (...), interpolated linearly
    between the bands' weights ``band_weights`` (B, K) at their depths ``band_depths`` (B,
    increasing; each band's mean depth), the first band's below its depth and the last's beyond;
    each row stays >= 0 and sums to 1 when the bands' do."""
    depths = np.asarray(depths, np.float64)
    band_weights = np.asarray(band_weights, np.float64)
    return np.stack([np.interp(depths, band_depths, band_weights[:, k]) for k in range(band_weights.shape[1])], -1)
