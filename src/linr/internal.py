"""Super-resolution learnt from the photo's own smaller copies (internal examples).

A photo's small structures recur at other scales within it; a network trained to undo the
photo's own downsampling on smaller copies of the photo can then be applied to the photo
itself (the idea of "zero-shot" super-resolution, Shocher, Cohen and Irani, CVPR 2018). No data
beyond the one low-res view is used, and nothing is pretrained.

Here, for one low-res view whose operator is a :class:`~linr.operators.Downsample` (factor ``s``,
its kernel), in stages (:func:`stage_factors`: x2 at a time where ``s`` is a power of two, as the
paper's "gradual" setting does; one stage otherwise): the "fathers" of a stage are the images so
far (the view, then each stage's result) and their copies shrunk by 0.95 down to 0.5 (PIL's
Lanczos); each step takes a random crop of a father (drawn by area), makes its "son" with the
view's kernel at the stage's factor, upscales the son bicubically to the crop's size and trains a
small residual CNN (:class:`ExampleNet`: 8 convolutions of 3x3, 64 channels, ReLU, added to its
input) to give the crop back (L1, Adam from 1e-3 on a cosine schedule, one of the eight
rotations and mirrors at random). The stage's input, upscaled the same way, then goes through the
network under all eight rotations and mirrors (median); a stage before the last is made to
reproduce the view (:func:`linr.projection.project_onto_views`, the view's kernel at the factor
reached) before the next learns from it. The last stage's image is what
:func:`learn_from_own_copies` returns; it is not yet made to reproduce the view (the refiner
that uses it projects, :mod:`linr.refine`).

Its cost does not depend on the size of the restored image but on the crops (at most
:data:`CROP` px a side): about a minute on one core of this project's CPU for each stage's 1000 steps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.nn import functional as F

from . import progress
from .adam import adam
from .operators import Downsample
from .simulate import pil_resize

STEPS = 1000
"""Training steps of each stage (each one crop)."""

CROP = 96
"""Largest side of a training crop (of a father: the view or a shrunk copy), in low-res pixels."""

SHRINKS = tuple(np.linspace(1.0, 0.5, 11))
"""The fathers: the view (1.0) and its copies shrunk by these factors."""

LEARNING_RATE = 1e-3


class ExampleNet(nn.Module):
    """A residual CNN: ``x + body(x)``, ``body`` 8 convolutions of 3x3 (64 channels, ReLU between)."""

    WIDTH = 64
    """Channels of its hidden convolutions."""

    def __init__(self, channels: int, width: int = WIDTH, depth: int = 8) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1), nn.ReLU()]
        layers.append(nn.Conv2d(width, channels, 3, padding=1))
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _turn(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the eight rotations and mirrors of (..., H, W): ``k`` 0-3 rotations, 4-7 transposed first."""
    if k >= 4:
        x = x.transpose(-1, -2)
    return torch.rot90(x, k % 4, (-2, -1))


def _unturn(x: torch.Tensor, k: int) -> torch.Tensor:
    x = torch.rot90(x, -(k % 4), (-2, -1))
    return x.transpose(-1, -2) if k >= 4 else x


def _upscale(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """(N, C, h, w) to (N, C, *size), bicubic."""
    return F.interpolate(x, size=size, mode="bicubic", align_corners=False)


def _fathers(images: list[np.ndarray], factor: int) -> list[np.ndarray]:
    """``images`` and their shrunk copies, each cropped to a multiple of ``factor`` (at least 2 factors a side)."""
    out = []
    for image in images:
        h, w = image.shape[:2]
        for shrink in SHRINKS:
            fh, fw = int(round(h * shrink)), int(round(w * shrink))
            fh, fw = fh - fh % factor, fw - fw % factor
            if min(fh, fw) < 2 * factor:
                continue
            copy = image if shrink == 1.0 else pil_resize(image, (fw, fh), Image.LANCZOS)
            out.append(np.ascontiguousarray(copy[:fh, :fw], dtype=np.float32))
    return out


def learnable(height: int, width: int, factor: int) -> bool:
    """Whether a ``height`` x ``width`` view is large enough to learn its x``factor`` from its own
    copies: at least two factors a side (its smallest son a 2 x 2 image)."""
    return min(height, width) >= 2 * factor


def stage_factors(factor: int) -> list[int]:
    """The factors of the stages a x``factor`` upscaling is learnt in: x2 at a time while what is
    left is even and above 2, then the rest in one stage (4: [2, 2]; 8: [2, 2, 2]; 6: [2, 3]; 3: [3])."""
    stages = []
    while factor % 2 == 0 and factor > 2:
        stages.append(2)
        factor //= 2
    return stages + ([factor] if factor > 1 else [])


STRIP_ROWS = 256
"""Rows of the upscaled view the trained network is applied to at once (with :data:`HALO` more
each side), so that its activations stay a few hundred MB at any width."""

HALO = 8
"""Rows beyond a strip that reach its pixels: one per 3x3 convolution of :class:`ExampleNet`."""


LIVE_ACTIVATIONS = 4
"""Activations of 64 channels alive at once while the trained network goes over one strip: the
peak resident memory of :func:`_apply_turned` grew by 292 and 520 MB over its input on
512 x 1024 and 512 x 2048 px (RGB, one thread), 3.7-4.1 such arrays of (:data:`STRIP_ROWS` + 2
:data:`HALO`) rows x the width; on 64 x 1024 px by 108 MB, 6.4 arrays of its 64 rows (a fixed
part of about 40 MB, within :data:`TRAINING_BYTES`)."""

TRAINING_BYTES = 64 * 2**20
"""The training's own memory (a crop of at most :data:`CROP` px, its activations and gradients,
the fathers) and the fixed part of the strips': tens of MB; rounded up."""


def estimate_bytes(height: int, width: int, channels: int) -> int:
    """The estimated peak memory of :func:`learn_from_own_copies` for a restored image of
    ``height`` x ``width`` (``channels``): the strips' activations (:data:`LIVE_ACTIVATIONS`), four
    float32 arrays of the image (the upscaled input, the strips' results, the result and its
    copy) and :data:`TRAINING_BYTES`."""
    rows = min(height, STRIP_ROWS + 2 * HALO)
    return LIVE_ACTIVATIONS * ExampleNet.WIDTH * rows * width * 4 + 4 * height * width * channels * 4 + TRAINING_BYTES


def _apply_turned(net: ExampleNet, up: torch.Tensor) -> torch.Tensor:
    """The median over the eight rotations and mirrors of ``net`` applied to ``up`` (1, C, H, W):
    (C, H, W), computed in strips of :data:`STRIP_ROWS` rows (each with :data:`HALO` rows of its
    neighbours, so that every strip is what the whole image gives)."""
    height = up.shape[-2]
    strips = []
    for top in range(0, height, STRIP_ROWS):
        lo, hi = max(0, top - HALO), min(height, top + STRIP_ROWS + HALO)
        part = up[..., lo:hi, :]
        outs = torch.stack([_unturn(net(_turn(part, k)), k) for k in range(8)])
        strips.append(outs.median(dim=0).values[0, :, top - lo : top - lo + min(STRIP_ROWS, height - top)])
    return torch.cat(strips, dim=-2)


def _train_step(net: ExampleNet, optimizer: Any, son: torch.Tensor, target: torch.Tensor) -> float:
    """One Adam step of ``net`` toward giving ``target`` back from ``son`` (L1); the loss (grad enabled by the caller)."""
    loss = (net(son) - target).abs().mean()
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _learn_stage(fathers: list[np.ndarray], operator: Downsample, steps: int, seed: int) -> tuple[ExampleNet, list[float]]:
    """A network trained ``steps`` steps to undo ``operator`` on crops of ``fathers`` (module
    docstring), seeded by ``seed``; and its training losses."""
    factor = operator.factor
    areas = np.array([f.shape[0] * f.shape[1] for f in fathers], float)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ExampleNet(fathers[0].shape[2])
    optimizer = adam(net.parameters(), lr=LEARNING_RATE)
    losses = []
    with torch.enable_grad():
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * step / steps))
            father = fathers[int(rng.choice(len(fathers), p=areas / areas.sum()))]
            ch, cw = min(CROP, father.shape[0]), min(CROP, father.shape[1])
            ch, cw = ch - ch % factor, cw - cw % factor
            top = int(rng.integers(0, father.shape[0] - ch + 1))
            left = int(rng.integers(0, father.shape[1] - cw + 1))
            k = int(rng.integers(8))
            target = _turn(torch.from_numpy(father[top : top + ch, left : left + cw]).permute(2, 0, 1)[None], k)
            with torch.no_grad():
                son = operator.forward(target.double()).float()
                son = _upscale(son, (target.shape[-2], target.shape[-1]))
            losses.append(_train_step(net, optimizer, son, target))
            if step % 10 == 9:
                progress.report((step + 1) / steps)
    return net, losses


def learn_from_own_copies(view: np.ndarray, operator: Downsample, *, steps: int | None = None, seed: int = 0,
                          threads: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The view (h, w, C) upscaled by ``operator``'s factor by networks trained on its own smaller
    copies, in stages (module docstring): float32 (h s, w s, C), unclipped, and what was done
    (the stages' factors, steps per stage, fathers per stage, the last stage's mean L1 loss over
    its last 50 steps). ``steps``: per stage, None for :data:`STEPS`. CPU, ``threads`` torch
    threads for its duration (None: as set)."""
    from .problem import Observation
    from .projection import project_onto_views

    steps = STEPS if steps is None else int(steps)
    if not isinstance(operator, Downsample):
        raise ValueError(f"learning from the photo's own copies needs a downsampled view, got {operator.name}")
    view = np.asarray(view, np.float32)
    if view.ndim == 2:
        view = view[..., None]
    h, w, c = view.shape
    stages = stage_factors(operator.factor)
    if not stages:
        raise ValueError("a view downsampled by 1 has nothing to learn from its own copies")
    if not learnable(h, w, operator.factor):
        raise ValueError(f"a {h}x{w} view is too small to learn from its own copies at x{operator.factor}")
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    images, fathers_used, losses, reached = [view], [], [], 1
    try:
        for index, factor in enumerate(stages):
            stage_operator = Downsample(factor, operator.kernel)
            fathers = _fathers(images, factor)
            fathers_used.append(len(fathers))
            with progress.span(index / len(stages), (index + 1) / len(stages)):
                net, losses = _learn_stage(fathers, stage_operator, steps, seed + index)
            current = images[-1]
            with torch.no_grad():
                up = _upscale(torch.from_numpy(current).permute(2, 0, 1)[None],
                              (current.shape[0] * factor, current.shape[1] * factor))
                image = _apply_turned(net, up).permute(1, 2, 0).numpy().astype(np.float32)
            reached *= factor
            if index < len(stages) - 1:  # made to reproduce the view before the next stage learns from it
                image, _ = project_onto_views(image, [Observation(view, Downsample(reached, operator.kernel), kind="lowres")])
            images.append(image)
    finally:
        torch.set_num_threads(before)
    return images[-1], {"stages": stages, "steps": steps, "fathers": fathers_used, "crop": CROP,
                        "loss": round(float(np.mean(losses[-50:])), 5) if losses else None}


def estimate_seconds(height: int, width: int, channels: int, factor: int) -> float:
    """The estimated seconds of :func:`learn_from_own_copies` for a view whose restored image is
    ``height`` x ``width`` (``channels``) at x``factor``, with torch's threads as set: for each
    stage (:func:`stage_factors`), the median of five training steps, each timed alone, on a crop
    of the size that stage will use (after an untimed first step) scaled to :data:`STEPS` (the
    median: on a busy machine one step in a few can take many times the others, and three steps'
    mean put a 64-px x4 result's learning at 33 minutes where it took under 4); and one pass over
    a 64 x 64 image, scaled to eight passes over each stage's result."""
    import statistics
    import time

    net = ExampleNet(channels)
    optimizer = adam(net.parameters(), lr=LEARNING_RATE)
    seconds, reached, passed = 0.0, 1, 0.0
    for stage in stage_factors(factor):
        largest = min(height, width) * reached // factor  # the largest father's side at this stage
        side = max(2 * stage, min(CROP, largest))
        side -= side % stage
        crop = torch.rand(1, channels, side, side)
        with torch.enable_grad():
            _train_step(net, optimizer, crop, crop)
            steps = []
            for _ in range(5):
                started = time.perf_counter()
                _train_step(net, optimizer, crop, crop)
                steps.append(time.perf_counter() - started)
            seconds += STEPS * statistics.median(steps)
        reached *= stage
        passed += height * width / (factor // reached) ** 2  # this stage's result, in pixels
    with torch.no_grad():
        sample = torch.rand(1, channels, 64, 64)
        started = time.perf_counter()
        net(sample)
        per_pixel = (time.perf_counter() - started) / (64 * 64)
    return seconds + 8 * per_pixel * passed
