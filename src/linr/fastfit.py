"""The fit loop on the fast SIREN engine (:mod:`linr.engine`): same loss, same Adam trajectory,
less work.

How a step renders, by the kind of data term:

- **Pixel-wise operators only** (identity, masks: denoising, inpainting and their joint fits):
  the loss is a sum over pixels, so only pixels some observation sees are rendered (10% of the
  image for 10% inpainting), chunk by chunk, each chunk's gradient computed in closed form
  (``2 w m (f - y) / numel``) and pushed straight into the engine's backward. With
  ``batch_pixels`` a random subset of those pixels is used each step, scaled so the gradient is
  an unbiased estimate of the full one.
- **Operators that mix pixels** (downsampling, blur): the whole image is rendered, the data term
  and its gradient with respect to the image come from autograd through the operators only, and
  the engine backpropagates that image gradient through the network. When the image is larger
  than ``chunk_pixels`` this takes two passes: render everything without saving activations,
  then re-render chunk by chunk with saving and backpropagate each chunk's slice of the image
  gradient (exact; one extra forward pass).

A whole-image output is handed to the stop rule and callback every step, and used for PSNR every
``eval_every`` steps: free when the step rendered the whole image anyway, otherwise one extra
forward pass without saved activations, before the Adam update so it shows the same iterate as
the plain loop. Its time is reported as ``timings['eval_s']``.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch

from .engine import FastSiren, adam_for
from .fit import FitConfig, Monitor, Problem, lr_factor
from .models import coordinate_grid
from .operators import Identity, Mask

__all__ = ["run_fast", "PixelTerms", "pixel_terms"]


class PixelTerms:
    """A data term that is a sum over pixels: ``sum_i w_i / numel_i sum_p m_ip (f_p - y_ip)^2``.

    ``targets[i]`` is (H*W, C); ``masks[i]`` is (H*W, 1 or C) or None (all pixels);
    ``scales[i]`` = ``w_i / numel_i``. ``seen`` is the sorted index of pixels any term sees.
    """

    def __init__(self, targets: list[torch.Tensor], masks: list[torch.Tensor | None],
                 scales: list[float]) -> None:
        self.targets, self.masks, self.scales = targets, masks, scales
        if any(m is None for m in masks):
            self.seen = None
        else:
            union = torch.zeros(targets[0].shape[0], dtype=torch.bool, device=targets[0].device)
            for m in masks:
                union |= m.amax(dim=1) > 0
            self.seen = union.nonzero().squeeze(1)

    def loss_and_grad(self, out: torch.Tensor, pixels: torch.Tensor | None,
                      factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Loss and d loss / d out for ``out`` (n, C) rendered at ``pixels`` (n,) (None: all)."""
        loss = out.new_zeros(())
        grad = torch.zeros_like(out)
        for y, m, scale in zip(self.targets, self.masks, self.scales):
            y = y if pixels is None else y[pixels]
            diff = out - y
            if m is not None:
                diff = diff * (m if pixels is None else m[pixels])  # masks are 0/1: m^2 = m
            loss = loss + (scale * factor) * torch.sum(diff * diff)
            grad.add_(diff, alpha=2 * scale * factor)
        return loss, grad


def pixel_terms(problem: Problem) -> PixelTerms | None:
    """The data term as :class:`PixelTerms` when every operator is pixel-wise, else None."""
    h, w, c = problem.height, problem.width, problem.channels
    targets, masks, scales = [], [], []
    for obs, y, weight in zip(problem.observations, problem.targets, problem.weights):
        op = obs.operator
        if type(op) is Identity:
            masks.append(None)
        elif type(op) is Mask:
            m = op.mask.to(device=problem.device, dtype=torch.float32)
            m = m[None] if m.ndim == 2 else m
            masks.append(m.reshape(m.shape[0], h * w).t().contiguous())
        else:
            return None
        targets.append(y[0].reshape(c, h * w).t().contiguous())
        scales.append(weight / (c * h * w))
    return PixelTerms(targets, masks, scales)


def run_fast(model: torch.nn.Module, problem: Problem, config: FitConfig,
             monitor: Monitor) -> tuple[Callable[[], torch.Tensor], dict[str, Any]]:
    """Run the fit on the fast engine; returns a whole-image renderer and a description."""
    device = problem.device
    h, w, c = problem.height, problem.width, problem.channels
    net = FastSiren(model, precision=config.precision).to(device)
    optimizer = adam_for(net, lr=config.lr)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    coords = coordinate_grid(h, w, device=device)
    chunk = config.chunk_pixels
    terms = pixel_terms(problem)

    def render() -> torch.Tensor:
        """The whole image (1, C, H, W), chunked, no saved activations."""
        parts = [net.forward(coords[i : i + chunk], save=False) for i in range(0, h * w, chunk)]
        return _as_image(torch.cat(parts), (h, w, c))

    generator = torch.Generator(device=device)
    generator.manual_seed(config.seed)
    trained = h * w if terms is None or terms.seen is None else int(terms.seen.numel())
    batch = None
    if terms is not None and config.batch_pixels is not None and config.batch_pixels < trained:
        batch = config.batch_pixels
    info = {"name": "fast", "pixel_wise": terms is not None, "trained_pixels": trained,
            "batch_pixels": batch, "chunk_pixels": chunk, "precision": config.precision}

    for step in range(config.steps):
        factor = lr_factor(config.schedule, step, config.steps)
        for group, lr in zip(optimizer.param_groups, base_lrs):
            group["lr"] = lr * factor
        if terms is not None:
            loss, output = _pixel_step(net, coords, (h, w, c), terms, chunk, batch, generator)
        else:
            loss, output = _image_step(net, coords, (h, w, c), problem, chunk)
        if output is None and monitor.wants_output(step):
            t0 = time.perf_counter()
            output = render()
            monitor.eval_s += time.perf_counter() - t0
        optimizer.step()
        if monitor.record(step, output, loss):
            break
    return render, info


def _pixel_step(net: FastSiren, coords: torch.Tensor, shape: tuple[int, int, int],
                terms: PixelTerms, chunk: int,
                batch: int | None, generator: torch.Generator
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One step's gradients for a pixel-wise data term; the whole output when it was rendered."""
    pixels = terms.seen
    factor = 1.0
    if batch is not None:
        pool = coords.shape[0] if pixels is None else pixels.numel()
        pick = torch.randperm(pool, generator=generator, device=coords.device)[:batch]
        pixels = pick if pixels is None else pixels[pick]
        factor = pool / batch  # unbiased estimate of the sum over all trained pixels
    n = coords.shape[0] if pixels is None else pixels.numel()
    loss = coords.new_zeros(())
    outputs = []
    for i in range(0, n, chunk):
        sel = None if pixels is None else pixels[i : i + chunk]
        if sel is None and n <= chunk:
            out = net.forward(coords, save=True)
        else:
            sel = torch.arange(i, min(i + chunk, n), device=coords.device) if sel is None else sel
            out = net.forward(coords[sel], save=True)
        part, grad = terms.loss_and_grad(out, sel, factor)
        net.backward(grad, accumulate=i > 0)
        loss = loss + part
        if pixels is None:
            outputs.append(out)
    if pixels is None:
        return loss, _as_image(torch.cat(outputs) if len(outputs) > 1 else outputs[0], shape)
    return loss, None


def _image_step(net: FastSiren, coords: torch.Tensor, shape: tuple[int, int, int],
                problem: Problem, chunk: int
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """One step's gradients when operators mix pixels: autograd through the operators only."""
    n = coords.shape[0]
    if n <= chunk:
        flat = net.forward(coords, save=True)
    else:  # pass 1: the whole image without saved activations
        flat = torch.cat([net.forward(coords[i : i + chunk], save=False) for i in range(0, n, chunk)])
    image = _as_image(flat, shape).requires_grad_(True)
    with torch.enable_grad():
        loss = problem.data_term(image)
        (grad,) = torch.autograd.grad(loss, image)
    grad_flat = grad[0].permute(1, 2, 0).reshape(n, problem.channels)
    if n <= chunk:
        net.backward(grad_flat)
    else:  # pass 2: re-render each chunk with saved activations and backpropagate its slice
        for i in range(0, n, chunk):
            net.forward(coords[i : i + chunk], save=True)
            net.backward(grad_flat[i : i + chunk], accumulate=i > 0)
    return loss.detach(), image.detach()


def _as_image(flat: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """(H*W, C) values in row-major pixel order -> (1, C, H, W)."""
    h, w, c = shape
    return flat.view(h, w, c).permute(2, 0, 1)[None]
