"""The fit loop on the fast SIREN engine (:mod:`linr.engine`): same loss, same Adam trajectory,
less work.

How a step renders, by the kind of data term:

- **Pixel-wise operators only** (every operator gives a 0/1 map from ``pixel_weights``:
  identity, masks, and the hold-out rule's compositions of them; denoising, inpainting and their
  joint fits): the loss is a sum over pixels, each chunk's gradient computed in closed form
  (``2 w m (f - y) / numel``) and pushed straight into the engine's backward. Either only the
  pixels some observation sees are rendered (10% of the image for 10% inpainting), or every
  pixel is, the unseen ones with a zero gradient, when a stop rule needs the whole output each
  step anyway (the default noisy fit: one render per step serves the training, the held-out
  loss and the rule); :func:`linr.cost.render_all_pixels` decides. With ``batch_pixels`` a
  random subset of the seen pixels is used each step, scaled so the gradient is an unbiased
  estimate of the full one. A local image prior (:mod:`linr.priors` with ``halo_rows``, such
  as total variation) stays on this path with every pixel rendered: each chunk's prior gradient
  comes from autograd of the prior's terms over the band of rows around the chunk (the few rows
  outside it rendered without saved activations), so images larger than a chunk need no second
  pass.
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

**Stacks** (:func:`run_fast_many`, behind :func:`linr.fit.fit_many`): several problems of one
image size run in one loop, their models stacked on a leading axis of the engine's parameters, so
each layer is one batched product for all of them. Pixel-wise problems that train on different
pixel sets (different masks) are padded to the longest set with zero gradients; a model leaves
the stack when its stop rule fires. A single problem is a stack of one: the same loop, the same
batched products (they cost what plain ones do on one model here: BENCHMARKS.md).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from .config import FitConfig, lr_factor
from .cost import pixel_weight_maps, render_all_pixels
from .engine import FastSiren, adam_for, chunk_pixels_for, select_members, step_chunk_pixels
from .fidelity import DataTerm, SquaredError
from .priors import ImagePrior
from .monitor import Monitor
from .problem import OperatorSteps, Problem, clock
from .models import coordinate_grid

__all__ = ["run_fast", "run_fast_many", "PixelTerms", "pixel_terms"]


class PixelTerms:
    """A data term that is a sum over pixels: ``sum_i w_i / numel_i sum_p m_ip d_i(f_p, y_ip)``
    (squared error ``d = (f - y)^2`` in the paper; any :mod:`linr.fidelity` data term).

    ``targets[i]`` is (H*W, C); ``masks[i]`` is (H*W, 1 or C) or None (all pixels);
    ``scales[i]`` = ``w_i / numel_i``. ``seen`` is the sorted index of pixels any term sees.
    """

    def __init__(self, targets: list[torch.Tensor], masks: list[torch.Tensor | None],
                 scales: list[float], fidelities: list[DataTerm] | None = None,
                 prior: ImagePrior | None = None) -> None:
        self.targets, self.masks, self.scales = targets, masks, scales
        self.fidelities = fidelities or [SquaredError()] * len(targets)
        self.prior = prior
        """A local image prior (``halo_rows`` set), whose gradient :func:`_pixel_step` adds chunk by
        chunk from bands of rows (every pixel is then rendered each step)."""
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
        for y, m, scale, term in zip(self.targets, self.masks, self.scales, self.fidelities):
            y = y if pixels is None else y[pixels]
            m = m if m is None or pixels is None else m[pixels]
            if type(term) is SquaredError:  # the paper's term, in its closed form (not a subclass)
                diff = out - y
                if m is not None:
                    diff = diff * m  # masks are 0/1: m^2 = m
                loss = loss + (scale * factor) * torch.sum(diff * diff)
                grad.add_(diff, alpha=2 * scale * factor)
                continue
            # any other data term: d(m f, y) over the entries m keeps, slope through m
            pred = out if m is None else out * m
            values, slope = term.elementwise(pred, y), term.slope(pred, y)
            if m is not None:
                values, slope = values * m, slope * m
            loss = loss + (scale * factor) * torch.sum(values)
            grad.add_(slope, alpha=scale * factor)
        return loss, grad


def pixel_terms(problem: Problem) -> PixelTerms | None:
    """The data term as :class:`PixelTerms` when every operator says it is pixel-wise with a 0/1
    map (:meth:`~linr.operators.Operator.pixel_weights`: identity, masks, the hold-out rule's
    compositions of them), else None."""
    h, w, c = problem.height, problem.width, problem.channels
    if problem.prior is not None and problem.prior.halo_rows is None:  # needs the whole image at once
        return None
    if any(problem.margins):  # an operator that reads beyond the frame mixes pixels
        return None
    maps = pixel_weight_maps(problem.observations, (h, w))
    if maps is None:
        return None
    targets, masks, scales = [], [], []
    for m, y, weight in zip(maps, problem.targets, problem.weights):
        if bool((m == 1).all()):
            masks.append(None)  # every pixel, as it is: no map to apply
        else:
            m = m.to(device=problem.device, dtype=torch.float32)
            masks.append(m.reshape(m.shape[0], h * w).t().contiguous())
        targets.append(y[0].reshape(c, h * w).t().contiguous())
        scales.append(weight / (c * h * w))
    return PixelTerms(targets, masks, scales, [obs.fidelity for obs in problem.observations], problem.prior)


def run_fast(model: torch.nn.Module, problem: Problem, config: FitConfig, monitor: Monitor
             ) -> tuple[Callable[[], torch.Tensor], dict[str, Any], list[torch.Tensor]]:
    """Run the fit on the fast engine; returns a whole-image renderer, a description and the
    final parameters (the engine's, :attr:`~linr.engine.FastSiren.params` order)."""
    render, info, _, state = run_fast_many([model], [problem], config, [monitor])[0]
    return render, info, state


def run_fast_many(models: list[torch.nn.Module], problems: list[Problem], config: FitConfig,
                  monitors: list[Monitor]
                  ) -> list[tuple[Callable[[], torch.Tensor], dict[str, Any], float, list[torch.Tensor]]]:
    """Fit one model per problem (same image size) in one loop: one model runs unstacked,
    several run as a stack (:class:`~linr.engine.FastSiren` with a model axis, batched products).

    A model whose monitor stops it leaves the stack after that step's update (its Adam state
    goes with the others, see :func:`~linr.engine.select_members`). Returns per problem a
    whole-image renderer of its final model, a description, when its loop ended and the final
    parameters. A monitor that :attr:`~linr.monitor.Monitor.wants_state` gets each step's
    parameters from before the update (those that made the step's output).
    """
    device = problems[0].device
    (h, w), c = problems[0].rendered_shape, problems[0].channels
    count = len(models)
    # One code path for one model and many: a single fit is a stack of one (batched products on
    # one model cost the same as plain ones on this project's CPU: BENCHMARKS.md).
    net = FastSiren(list(models), precision=config.precision).to(device)
    optimizer = adam_for(net, lr=config.lr)
    base_lrs = [g["lr"] for g in optimizer.param_groups]
    coords = coordinate_grid(problems[0].height, problems[0].width, device=device, margins=problems[0].margins)
    terms = [pixel_terms(p) for p in problems]
    operator_steps = [OperatorSteps(p) for p in problems]
    pixel_wise = all(t is not None for t in terms)
    with_prior = pixel_wise and any(t.prior is not None for t in terms)
    if with_prior and config.batch_pixels is not None:  # a prior's gradient needs every pixel
        pixel_wise = False
    generators, batches, trained = [], [], []
    for t in terms:
        generator = torch.Generator(device=device)
        generator.manual_seed(config.seed)
        generators.append(generator)
        seen = h * w if not pixel_wise or t.seen is None else int(t.seen.numel())
        trained.append(seen)
        use = pixel_wise and config.batch_pixels is not None and config.batch_pixels < seen
        batches.append(config.batch_pixels if use else None)
    # Render every pixel (unseen ones with a zero gradient) or only the seen ones: one rule
    # (linr.cost.render_all_pixels) for the loop and the cost estimate.
    watched = any(m.needs_output for m in monitors)
    render_all = pixel_wise and all(b is None for b in batches) and (with_prior or all(
        render_all_pixels(n, h * w, whole_output_every_step=watched) for n in trained))
    rendered = [h * w if render_all or not pixel_wise else (b or n) for n, b in zip(trained, batches)]
    chunk_pixels = chunk_pixels_for(config.chunk_pixels, device, net_width=net.width, depth=len(net.weights),
                                    pixels=sum(rendered))  # the final renders'
    step_chunk = step_chunk_pixels(config.chunk_pixels, device, chunk_pixels, pixel_wise=pixel_wise)  # the steps'
    infos = [{"name": "fast", "pixel_wise": pixel_wise, "trained_pixels": n, "batch_pixels": b,
              "rendered_pixels": r, "chunk_pixels": step_chunk, "precision": config.precision,
              **({"stacked": count} if count > 1 else {})} for n, b, r in zip(trained, batches, rendered)]
    finished: dict[int, tuple[Callable[[], torch.Tensor], dict[str, Any], float, list[torch.Tensor]]] = {}
    active = list(range(count))  # problem index of each model in the stack, in stack order

    def finish(net_k: FastSiren, k: int) -> None:
        def render() -> torch.Tensor:
            return _as_image(_render_flat(net_k, coords, chunk_pixels), (h, w, c))

        finished[k] = (render, infos[k], clock(device), [p.detach() for p in net_k.params])

    for step in range(config.steps):
        factor = lr_factor(config.schedule, step, config.steps)
        for group, lr in zip(optimizer.param_groups, base_lrs):
            group["lr"] = lr * factor
        chunk = max(1, step_chunk // len(active))  # pixels of all models together
        if pixel_wise:
            losses, outputs = _pixel_step(net, coords, (h, w, c), [terms[k] for k in active], chunk,
                                          [batches[k] for k in active],
                                          [generators[k] for k in active], render_all)
        else:
            losses, outputs = _image_step(net, coords, (h, w, c), [problems[k] for k in active], chunk,
                                          [operator_steps[k].params for k in active])
        wanted = [monitors[k].wants_output(step) for k in active]
        if outputs is None and any(wanted):
            t0 = clock(device)
            flat = _render_flat(net, coords, chunk)
            outputs = [_as_image(f, (h, w, c)) if want else None for f, want in zip(flat, wanted)]
            spent = clock(device) - t0
            for k, want in zip(active, wanted):
                monitors[k].eval_s += spent if want else 0.0
        states = [[p[pos].detach().clone() for p in net.params] if monitors[k].wants_state and want else None
                  for pos, (k, want) in enumerate(zip(active, wanted))]
        optimizer.step()
        for k in active:
            operator_steps[k].step(step)
        stopped = [pos for pos, k in enumerate(active)
                   if monitors[k].record(step, None if outputs is None else outputs[pos], losses[pos],
                                         states[pos])]
        if not stopped:
            continue
        for pos in stopped:
            finish(net.member(pos), active[pos])
        keep = [pos for pos in range(len(active)) if pos not in stopped]
        active = [active[pos] for pos in keep]
        if not active:
            break
        net, optimizer = select_members(net, optimizer, keep)
    for pos, k in enumerate(active):
        finish(net.member(pos), k)
    for steps in operator_steps:
        steps.check()
    return [finished[k] for k in range(count)]


def _render_flat(net: FastSiren, coords: torch.Tensor, chunk: int) -> torch.Tensor:
    """Values at every coordinate, chunked, no saved activations: (n, C), or (K, n, C)."""
    n = coords.shape[0]
    parts = [net.forward(coords[i : i + chunk], save=False) for i in range(0, n, chunk)]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-2)


def _pixel_step(net: FastSiren, coords: torch.Tensor, shape: tuple[int, int, int],
                terms: list[PixelTerms], chunk: int, batches: list[int | None],
                generators: list[torch.Generator], render_all: bool
                ) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """One step's gradients for pixel-wise data terms (one per model); the whole outputs when
    the step rendered them (``render_all``: every pixel rendered, maps applied to the gradient)."""
    picks, factors = [], []
    for t, batch, generator in zip(terms, batches, generators):
        pixels, factor = (None if render_all else t.seen), 1.0
        if batch is not None:
            pool = coords.shape[0] if pixels is None else pixels.numel()
            pick = torch.randperm(pool, generator=generator, device=coords.device)[:batch]
            pixels = pick if pixels is None else pixels[pick]
            factor = pool / batch  # unbiased estimate of the sum over all trained pixels
        picks.append(pixels)
        factors.append(factor)
    losses = [coords.new_zeros(()) for _ in terms]
    if all(p is None for p in picks):  # every model sees every pixel: shared coordinates
        n = coords.shape[0]
        whole = n <= chunk
        halo = max((t.prior.halo_rows for t in terms if t.prior is not None), default=None)
        outputs = []
        for i in range(0, n, chunk):
            m = min(chunk, n - i)
            if halo is not None:  # the rows around the chunk a local prior's terms reach (no saving,
                band = _band_rows(net, coords, shape, i, m, halo)  # before the chunk's saved forward)
            out = net.forward(coords if whole else coords[i : i + chunk], save=True)
            sel = None if whole else torch.arange(i, i + m, device=coords.device)
            grad = torch.empty_like(out)
            for k, t in enumerate(terms):
                part, grad[k] = t.loss_and_grad(out[k], sel, factors[k])
                losses[k] = losses[k] + part
            if halo is not None:
                _add_prior_grad(grad, out, band, terms, shape, i, m)
            net.backward(grad, accumulate=i > 0)
            outputs.append(out)
        flat = outputs[0] if len(outputs) == 1 else torch.cat(outputs, dim=1)
        return losses, [_as_image(f, shape) for f in flat]
    n = coords.shape[0]
    picks = [torch.arange(n, device=coords.device) if p is None else p for p in picks]
    longest = max(p.numel() for p in picks)
    for i in range(0, longest, chunk):
        m = min(chunk, longest - i)
        # models with fewer pixels are padded with pixel 0 and a zero gradient there
        sels = [p[i : i + m] for p in picks]
        index = torch.stack([torch.cat([s, s.new_zeros(m - s.numel())]) if s.numel() < m else s
                             for s in sels])
        out = net.forward(coords[index], save=True)
        grad = torch.zeros_like(out)
        for k, (t, sel) in enumerate(zip(terms, sels)):
            if sel.numel():
                part, grad[k, : sel.numel()] = t.loss_and_grad(out[k, : sel.numel()], sel, factors[k])
                losses[k] = losses[k] + part
        net.backward(grad, accumulate=i > 0)
    return losses, None


def _band_rows(net: FastSiren, coords: torch.Tensor, shape: tuple[int, int, int], start: int, count: int,
               halo: int) -> tuple[int, torch.Tensor | None, torch.Tensor | None]:
    """The whole rows around pixels ``start .. start+count-1`` (row-major) widened by ``halo`` rows
    each side: their first pixel, and the values before and after the chunk (rendered without
    saved activations; None where there are none)."""
    w = shape[1]
    n = coords.shape[0]
    lo = max(0, (start // w - halo) * w)
    hi = min(n, ((start + count - 1) // w + halo + 1) * w)
    before = net.forward(coords[lo:start], save=False) if lo < start else None
    after = net.forward(coords[start + count : hi], save=False) if hi > start + count else None
    return lo, before, after


def _add_prior_grad(grad: torch.Tensor, out: torch.Tensor, band: tuple[int, torch.Tensor | None,
                    torch.Tensor | None], terms: list[PixelTerms], shape: tuple[int, int, int],
                    start: int, count: int) -> None:
    """Add each model's local prior gradient at the chunk's pixels to ``grad`` (K, count, C):
    autograd of the prior's terms over the band of rows around the chunk (exact: every term that
    touches a chunk pixel lies within the band)."""
    _, w, c = shape
    lo, before, after = band
    values = torch.cat([p for p in (before, out.detach(), after) if p is not None], dim=-2)  # (K, band, C)
    rows = values.shape[1] // w
    for k, t in enumerate(terms):
        if t.prior is None:
            continue
        image = values[k].view(rows, w, c).permute(2, 0, 1)[None].detach().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(t.prior.band_value(image, shape), [image])
        flat = g[0].permute(1, 2, 0).reshape(rows * w, c)
        grad[k] += flat[start - lo : start - lo + count].to(grad.dtype)


def _image_step(net: FastSiren, coords: torch.Tensor, shape: tuple[int, int, int],
                problems: list[Problem], chunk: int, operator_params: list[list[torch.Tensor]]
                ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """One step's gradients when operators mix pixels: autograd through the operators only (and
    into the operators' own trained parameters, ``operator_params`` per problem, whose ``.grad``
    it sets)."""
    n = coords.shape[0]
    if n <= chunk:
        flat = net.forward(coords, save=True)
    else:  # pass 1: the whole image without saved activations
        flat = _render_flat(net, coords, chunk)
    grad_flat = torch.empty_like(flat)
    losses, outputs = [], []
    for k, (problem, params) in enumerate(zip(problems, operator_params)):
        image = _as_image(flat[k], shape).requires_grad_(True)
        with torch.enable_grad():
            total, loss = problem.objective(image)  # loss: the data term, without the prior
            grad, *param_grads = torch.autograd.grad(total, [image, *params])
        for p, g in zip(params, param_grads):
            p.grad = g
        grad_flat[k] = grad[0].permute(1, 2, 0).reshape(n, problem.channels)
        losses.append(loss.detach())
        outputs.append(image.detach())
    if n <= chunk:
        net.backward(grad_flat)
    else:  # pass 2: re-render each chunk with saved activations and backpropagate its slice
        for i in range(0, n, chunk):
            net.forward(coords[i : i + chunk], save=True)
            net.backward(grad_flat[:, i : i + chunk], accumulate=i > 0)
    return losses, outputs


def _as_image(flat: torch.Tensor, shape: tuple[int, int, int]) -> torch.Tensor:
    """(H*W, C) values in row-major pixel order -> (1, C, H, W)."""
    h, w, c = shape
    return flat.view(h, w, c).permute(2, 0, 1)[None]
