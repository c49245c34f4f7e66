"""Refining a fitted image with the photo it was fitted to (a noisy one, or one with missing pixels).

A fit returns a smooth estimate of the scene; its texture is partly lost with the noise. A
refiner takes that estimate as a *pilot* and filters the noisy photo once more with it, the way
BM3D's second step uses its first step's result. It runs after the fit, on the whole image (also
after a tiled or an ensemble fit), and the result records it (``settings['refine']``, with the
noise level used); ``result.fitted_image`` keeps the fit's own image.

- ``wiener`` (:class:`PilotWiener`): an empirical Wiener filter in the 2-D DCT of the 8 x 8
  patches of the noisy photo (one at every pixel); each coefficient is kept in the proportion
  ``p^2 / (p^2 + tau sigma^2)`` (``tau`` = 0.7), ``p`` the pilot's coefficient and ``sigma`` the
  noise level measured on the photo (:func:`linr.noise.estimate_noise_sigma`), except the patch
  mean (the DC coefficient), which is kept whole: its Wiener gain would pull dim patches toward
  black (a flat 2.6/255 at sigma 25 came back at 2.0/255), for no gain measured; the filtered patches are
  averaged, each weighted by the inverse of its filter's noise gain. A colour image is filtered
  in an orthonormal opponent colour space (a luminance and two colour differences), where the
  noise of the three channels stays white and of the same level.
- ``grouped`` (:class:`GroupedWiener`): BM3D's second step (Dabov et al. 2007) with the fit as
  its pilot: for every third patch, the 16 patches of the noisy photo most like it (in the noisy
  photo's luminance, within 19 px each way; matching in the pilot was worse on the tune images)
  are stacked and filtered together by a 3-D transform (8 x 8 DCT, Haar across the group) with
  the Wiener gains of the pilot's same group, and put back with weights, in the same opponent
  colour space. Similar patches elsewhere in the photo average their noise away, which one patch
  alone (``wiener``) cannot; the pilot still sets what is kept.
- ``biharmonic`` (:class:`BiharmonicBlend`): for a photo with missing pixels (inpainting), the
  fit's image blended with scikit-image's biharmonic inpainting of the same observed pixels,
  weighted by least squares on the pixels the fit's stop rule held out (``pick``), else half and
  half. The two interpolate the missing pixels differently and their errors partly cancel: on
  the six Table 3 images (10% of the pixels kept) the best weight (read off the clean image) was
  0.4-0.8 (BENCHMARKS.md, "#15 inpainting").
- ``grouped-fill`` (:class:`GroupedFill`): for a photo with missing pixels and no noise, the
  ``biharmonic`` blend filtered again and again by ``grouped`` (the image its own pilot) at a
  falling noise level, the observed pixels put back after every pass (plug-and-play inpainting),
  so that the missing pixels take the texture of similar patches elsewhere in the image; then
  blended with the fit's image and the biharmonic inpainting by least squares on the held-out
  pixels (all of it made blind to them first). Above :attr:`GroupedFill.BIHARMONIC_UP_TO` px, with
  more than :attr:`GroupedFill.BIHARMONIC_MISSING_UP_TO` pixels missing, it starts from the fit's
  image alone and weighs only the fit and the fill.
- ``grouped-project`` (:class:`GroupedProjected`): for a joint fit of a noisy photo and low-res
  views without noise (Table 5's case), ``grouped`` and then the nearest image that reproduces
  the low-res views exactly (:func:`linr.projection.project_onto_views`): ``grouped`` alone
  filters the noisy photo and loses what the low-res view knew (-3.7 dB on baby's 128-px
  crop), the projection puts it back (BENCHMARKS.md, "#15 joint fits"). When the fit held some
  of the photo's pixels out of its data term, the result is the blend of the fit's image,
  ``grouped``'s and the projection's (weights >= 0 summing to 1) that predicts those pixels best
  (least squares, away from black and white where a clipped photo is biased; the filter and the
  projection rerun on a copy of the photo whose held-out pixels hold the fit's values, so none of
  the three saw those pixels' noise): a low-res view whose downsampling differs
  from the fit's operator (aliasing) can make the projection, or the fit, worse than ``grouped``.
- ``project`` (:class:`Projected`): the fit's image made to reproduce its low-res views without
  noise exactly (the projection alone, no filter): for super-resolution.
- ``grouped-views`` (:class:`GroupedViews`): ``project``, then filtered again and again by
  ``grouped`` (the image its own pilot) at a falling noise level, projected after every pass
  (plug-and-play super-resolution): for super-resolution from views without noise; the default
  for one low-res photo at the factors not in :data:`linr.tasks.SR_EXAMPLES_FACTORS`
  (:data:`linr.tasks.DEFAULT_SR_REFINE`).
- ``grouped-views-examples`` (:class:`GroupedViewsExamples`): for one low-res view, the mean of
  the fit's image, ``grouped-views``' and the view upscaled by a small network learnt from the
  view's own smaller copies in x2 stages (:mod:`linr.internal`), projected onto the view: the
  default for one low-res photo at x2, x3 and x4 (:data:`linr.tasks.SR_EXAMPLES_FACTORS`).
- ``grouped-deblur`` (:class:`GroupedDeblur`): for one blurred photo, the fit's image filtered
  again and again by ``grouped`` (the image its own pilot) at a falling noise level, each pass
  followed by the image that explains the blurred photo best near the filtered one
  (:func:`linr.deconvolution.explain_blurred`, the photo's noise level measured on it):
  plug-and-play deblurring; the default for one blurred photo
  (:data:`linr.tasks.DEFAULT_DEBLUR_REFINE`). A circular blur's data step is exact; any other's
  has free edges, nothing assumed beyond the photo's frame (a real photo's scene went on past it).
- ``grouped-pair`` (:class:`GroupedPair`): for a noisy photo and a blurred photo of one scene (a
  short and a long exposure), ``grouped-deblur``'s passes with the noisy photo weighed into every
  data step beside the filtered image (each believed to within its own noise level).
- ``none``: the fit's image as it is.

``wiener`` and ``grouped`` need one observation with Gaussian noise (squared-error data term) of the restored
size with no operator (a photo, not a low-res, masked or blurred one); ``grouped-project`` that
photo and at least one low-res view without noise (:func:`linr.projection.projectable`),
``project`` and ``grouped-views`` such a view (``grouped-views-examples`` exactly one, downsampled);
``biharmonic`` and ``grouped-fill`` one observation masked, of the restored size, alone or beside
noisy photos of that size (a joint fit's image then the pilot);
``grouped-deblur`` one observation alone, blurred (:class:`~linr.operators.Blur`, squared error),
of the restored size; ``grouped-pair`` a noisy photo (as ``grouped``'s) and a blurred photo (as
``grouped-deblur``'s), nothing else: :func:`refine_input` says which, or why not.
Adding a refiner is a class here (with ``takes``, the observation it filters) plus one line in
:data:`REFINERS`.
"""

from __future__ import annotations

import hashlib
import threading
from itertools import combinations
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from . import progress
from .errors import InputError
from .holes import depth_bands, held_out_blocks_found, hole_depths, holes_are_large, weights_at
from .noise import floored_noise_sigma
from .parallel import mapped_in_order

if TYPE_CHECKING:
    from .problem import Observation

__all__ = ["PilotWiener", "GroupedWiener", "GroupedProjected", "Projected", "BiharmonicBlend", "GroupedFill", "GroupedViews", "GroupedViewsExamples", "GroupedDeblur", "GroupedPair", "REFINERS", "NO_REFINE", "MIN_REFINE_SIDE", "check_refine_spec", "refine_input",
           "refine_image", "simplex_weights"]

MIN_REFINE_SIDE = 8
"""The smallest side (pixels) a refinement filters: one patch (and more than the noise
measurement's :data:`linr.noise.MIN_SIDE`)."""

NO_REFINE = "none"
"""The spec of no refinement (the fit's image), which turns off a default one."""

# Orthonormal opponent colour transform: luminance, red - blue, red - 2 green + blue.
_OPPONENT = np.array([[1 / np.sqrt(3)] * 3,
                      [1 / np.sqrt(2), 0.0, -1 / np.sqrt(2)],
                      [1 / np.sqrt(6), -2 / np.sqrt(6), 1 / np.sqrt(6)]])


def _dct_matrix(n: int) -> np.ndarray:
    """The orthonormal DCT-II matrix (rows: frequencies), float64."""
    k = np.arange(n)[:, None]
    m = np.cos(np.pi * (2 * np.arange(n)[None, :] + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0] /= np.sqrt(2.0)
    return m


class PilotWiener:
    """The ``wiener`` refiner (module docstring): ``patch`` px square patches at every pixel;
    ``tau`` scales the noise power in the gain (0.7 chosen on the tune crops: BENCHMARKS.md).

    Every number is made by elementwise float64 products and sums in a fixed order over whole
    planes (the DCT of all patches at once, one coefficient plane at a time, no BLAS), so the
    result does not depend on threads, memory alignment or the process it runs in.
    ``rows_per_pass`` rows of patches are filtered at a time (None: as many as keep the
    coefficient planes of one pass near :data:`PASS_VALUES` values), and the rows no later pass
    adds to are written to the output after each pass, which bounds memory on any image.
    ``threads``: the channels of a pass filtered on this many threads (None: torch's); one by
    default, since the many NumPy calls of a pass on its small planes hold the GIL between them:
    on two threads a 512 x 512 RGB photo took 2.14-2.18 s, on one 1.98-2.02 s (fifty-first
    session, idle 2-core Intel Xeon)."""

    PASS_VALUES = 1 << 20
    """Coefficients per plane of one pass (8 MB in float64): 2^20 took 0.70-0.80x the time of 2^22
    on RGB photos of 512 x 512 to 256 x 4096 on one thread (cache-sized planes; 2^19 and 2^21 in
    between, 2^18 slower), and a fifth of the memory (forty-eighth session, Intel Xeon)."""

    name = "wiener"
    takes = "noisy"
    does = "the noisy photo is filtered again with the fit as the pilot"

    def __init__(self, patch: int = 8, tau: float = 0.7, rows_per_pass: int | None = None,
                 threads: int | None = 1) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads {threads}: at least 1 (None: torch's)")
        if rows_per_pass is not None and rows_per_pass < 1:
            raise ValueError(f"rows_per_pass {rows_per_pass}: at least 1 (None: by PASS_VALUES)")
        self.patch, self.tau, self.rows_per_pass, self.threads = patch, tau, rows_per_pass, threads

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "patch": self.patch, "tau": self.tau}

    def __call__(self, noisy: np.ndarray, pilot: np.ndarray, sigma: float) -> np.ndarray:
        """Filter ``noisy`` (H, W, C) with ``pilot`` (same shape) for noise std ``sigma`` (both on
        one scale); float32 (H, W, C). Images smaller than a patch come back as the pilot. The
        image is filtered a pass of :attr:`rows_per_pass` rows of patches at a time, top to
        bottom; in each pass the channels on :attr:`threads` threads (None: torch's), added in
        channel order. Memory besides the inputs: the output and, per thread, one pass's planes
        (its rows of one channel, in float64) and coefficient planes."""
        noisy, pilot = _pilot_pair(noisy, pilot)
        h, w, c = noisy.shape
        p = self.patch
        if h < p or w < p:
            return pilot.astype(np.float32)
        out = np.zeros(noisy.shape, dtype=np.float32)
        transform = _colour_transform(c)
        starts_y, starts_x = h - p + 1, w - p + 1  # patches at every pixel
        per_pass = self.rows_per_pass or max(1, self.PASS_VALUES // (starts_x * p * p))
        carried: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(transform)
        with mapped_in_order(self.workers(c)) as mapped:
            for y0 in range(0, starts_y, per_pass):
                rows = min(per_pass, starts_y - y0)
                window = slice(y0, y0 + rows + p - 1)  # the pixels of this pass's patches
                last = y0 + rows == starts_y

                def channel(index: int) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
                    row = transform[index]
                    return self._pass(_mix(noisy[window], row), _mix(pilot[window], row), float(sigma), rows,
                                      carried[index], last)

                done = slice(y0, window.stop if last else y0 + rows)  # the rows no later pass adds to
                for index, (plane, carry) in enumerate(mapped(channel, range(len(transform)))):
                    carried[index] = carry  # added in channel order, whatever the threads
                    _add_plane(out[done], transform[index], plane)
                progress.report((y0 + rows) / starts_y)
        return out

    def workers(self, channels: int) -> int:
        """Threads a call on an image of ``channels`` uses: :attr:`threads` (None: torch's), at
        most one per channel."""
        return min(_threads(self.threads), channels)

    def _pass(self, noisy: np.ndarray, pilot: np.ndarray, sigma: float, rows: int,
              carried: tuple[np.ndarray, np.ndarray] | None, last: bool
              ) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
        """One pass over one channel: ``noisy`` and ``pilot`` are the pass's ``rows + p - 1`` rows
        of pixels (its ``rows`` rows of patches, one at every pixel), ``carried`` the weighted sums
        and weights the passes before left on its first ``p - 1`` rows (None: the first pass).
        Returns the filtered rows no later pass adds to (all of them when ``last``) and the sums
        and weights of the rows after them, for the next pass."""
        p = self.patch
        d = _dct_matrix(p)
        starts_x = noisy.shape[1] - p + 1
        noise_power = self.tau * sigma * sigma
        num = np.zeros(noisy.shape)
        den = np.zeros(noisy.shape)
        if carried is not None:
            num[:p - 1], den[:p - 1] = carried
        coef = _patch_dct(noisy, d, rows, starts_x)      # (p, p, rows, starts_x)
        power = _patch_dct(pilot, d, rows, starts_x)
        power *= power
        gain = power / (power + noise_power) if noise_power > 0 else np.ones_like(power)
        gain[0, 0] = 1.0  # the patch mean is kept: shrinking it would darken dim areas
        coef *= gain
        weight = np.zeros((rows, starts_x))  # 1 / the filter's noise gain, per patch
        for k in range(p):
            for m in range(p):
                weight += gain[k, m] * gain[k, m]
        weight = 1.0 / weight
        # the filtered patches back in pixels (inverse DCT), each added at its place
        half = np.zeros((p, p, rows, starts_x))  # half[k, b]: inverse along x of row k
        term = np.empty((rows, starts_x))
        for k in range(p):
            for b in range(p):
                for m in range(p):
                    _add_scaled(half[k, b], coef[k, m], d[m, b], term)
        for a in range(p):
            for b in range(p):
                pixel = np.zeros((rows, starts_x))
                for k in range(p):
                    _add_scaled(pixel, half[k, b], d[k, a], term)
                num[a:a + rows, b:b + starts_x] += weight * pixel
                den[a:a + rows, b:b + starts_x] += weight
        done = num.shape[0] if last else rows
        return num[:done] / den[:done], (num[done:], den[done:])


def _threads(threads: int | None) -> int:
    """Threads a refiner works on: ``threads``, or None for as many as torch is given
    (``torch.get_num_threads()``: one under ``linr bench``, a batch worker's share under ``linr
    batch``)."""
    if threads is None:
        import torch

        threads = torch.get_num_threads()
    return max(1, threads)


def _pilot_pair(noisy: Any, pilot: Any) -> tuple[np.ndarray, np.ndarray]:
    """A refiner's photo and pilot as arrays; ValueError unless both are (H, W, C) of one shape."""
    noisy, pilot = np.asarray(noisy), np.asarray(pilot)
    if noisy.shape != pilot.shape or noisy.ndim != 3:
        raise ValueError(f"noisy {noisy.shape} and pilot {pilot.shape} must both be (H, W, C)")
    return noisy, pilot


def _colour_transform(channels: int) -> np.ndarray:
    """The orthonormal transform a refiner filters in: opponent colours for RGB, else none."""
    return _OPPONENT if channels == 3 else np.eye(channels)


def _add_plane(out: np.ndarray, row: np.ndarray, plane: np.ndarray) -> None:
    """Add the filtered ``plane`` of the transformed channel ``row`` back into ``out`` (H, W, C):
    the transform is orthonormal, its inverse its transpose."""
    for j, coefficient in enumerate(row):
        if coefficient != 0.0:
            out[..., j] += (coefficient * plane).astype(np.float32)


def _mix(image: np.ndarray, row: np.ndarray) -> np.ndarray:
    """``sum_j row[j] * image[..., j]`` as a float64 plane, summed in channel order."""
    plane = np.zeros(image.shape[:2])
    for j, coefficient in enumerate(row):
        if coefficient != 0.0:
            plane += coefficient * image[..., j].astype(np.float64)
    return plane


def _patch_dct(block: np.ndarray, d: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """The 2-D DCT (matrix ``d``) of every ``p x p`` patch of ``block`` ((rows + p - 1) x (cols +
    p - 1)): out[k, m, y, x] = sum_i sum_j d[k, i] d[m, j] block[y + i, x + j]."""
    p = d.shape[0]
    along_x = np.zeros((p, rows + p - 1, cols))
    term = np.empty((rows + p - 1, cols))
    for m in range(p):
        for j in range(p):
            _add_scaled(along_x[m], block[:, j:j + cols], d[m, j], term)
    out = np.zeros((p, p, rows, cols))
    term = term[:rows]
    for k in range(p):
        for m in range(p):
            for i in range(p):
                _add_scaled(out[k, m], along_x[m, i:i + rows], d[k, i], term)
    return out


def _add_scaled(out: np.ndarray, x: np.ndarray, c: float, term: np.ndarray) -> None:
    """``out += c * x`` with the product written into ``term`` (of out's shape), not a fresh
    array: the same numbers, about 0.8x the time on a refiner's slabs."""
    np.add(out, np.multiply(x, c, out=term), out=out)


def _starts(n: int, patch: int, step: int) -> np.ndarray:
    """Patch starts every ``step`` pixels along a side of ``n``, the last one flush with the end."""
    starts = list(range(0, n - patch + 1, step))
    if starts[-1] != n - patch:
        starts.append(n - patch)
    return np.array(starts)


def _along(x: np.ndarray, m: np.ndarray, axis: int) -> np.ndarray:
    """``m`` (n x n) applied along ``axis`` of ``x``: out[.., a, ..] = sum_i m[a, i] x[.., i, ..],
    summed in order i = 0, 1, ... (elementwise products, no BLAS)."""
    x = np.moveaxis(x, axis, 0)
    out = np.empty((m.shape[0], *x.shape[1:]))
    term = np.empty(x.shape[1:])  # each product written here (:func:`_add_scaled`; 0.76x the time)
    for a in range(m.shape[0]):
        started = False
        for i in range(m.shape[1]):
            if m[a, i] != 0.0:
                if started:
                    _add_scaled(out[a], x[i], m[a, i], term)
                else:  # the first term itself: as 0 + it (but for the sign of a zero)
                    np.multiply(x[i], m[a, i], out=out[a])
                    started = True
        if not started:
            out[a] = 0.0
    return np.moveaxis(out, 0, axis)


def _even_runs(starts: np.ndarray) -> list[tuple[int, int, int]]:
    """``starts`` (increasing) as runs of evenly spaced ones, in order: (first, spacing, count)."""
    runs, i, n = [], 0, len(starts)
    while i < n:
        step, k = (int(starts[i + 1] - starts[i]), i + 1) if i + 1 < n else (1, i)
        while k + 1 < n and starts[k + 1] - starts[k] == step:
            k += 1
        runs.append((int(starts[i]), step, k - i + 1))
        i = k + 1
    return runs


def _window_sums(x: np.ndarray, runs: list[tuple[int, int, int]], p: int, axis: int, out: np.ndarray) -> None:
    """``out[.., k, ..] = x[.., s_k, ..] + x[.., s_k + 1, ..] + ... + x[.., s_k + p - 1, ..]`` along
    ``axis``, added in that order, for the starts ``s_k`` given as :func:`_even_runs`: each term
    a strided slice of ``x`` over a run's starts (three times fewer sums than at every start at
    the grouped filter's step of 3, and no gathers)."""
    at = (slice(None),) * axis
    done = 0
    for first, step, count in runs:
        into = out[at + (slice(done, done + count),)]
        for j in range(p):
            term = x[at + (slice(first + j, first + j + step * (count - 1) + 1, step),)]
            if j:
                np.add(into, term, out=into)
            else:
                np.copyto(into, term)
        done += count


def _haar_matrix(n: int) -> np.ndarray:
    """The orthonormal Haar transform of size ``n`` (a power of 2): rows are the overall mean,
    then the differences from the coarsest to the finest."""
    if n == 1:
        return np.ones((1, 1))
    coarse = _haar_matrix(n // 2)
    return np.vstack([np.kron(coarse, [1.0, 1.0]), np.kron(np.eye(n // 2), [1.0, -1.0])]) / np.sqrt(2.0)


class GroupedWiener:
    """The ``grouped`` refiner (module docstring): BM3D's second step with the fit as its pilot.

    With ``prefilter`` (the default) the pilot is first sharpened by the ``wiener`` refiner (the
    fit's image as its pilot); this made the grouped result better on three of the four whole
    tune images (+0.27 to +0.57 dB, house -0.03; BENCHMARKS.md, "#15 denoising: a grouped Wiener refinement"). Reference patches (``patch``
    px square) every ``step`` pixels (``step`` at most ``patch``; the last row and column of
    patches included); for each, the ``group`` patches nearest to it in the luminance (RGB: the
    first opponent plane; grey: the image; other channel counts: the channels' mean) of the noisy photo (``match='noisy'``, the default) or of the
    pilot (``'pilot'``), by squared distance over the patch, among those within ``window // 2`` px
    each way, the reference itself first, then by distance (ties: the earlier offset, rows then
    columns, first); fewer when the image is too small (the largest power of 2 every reference
    can find). The group of the noisy photo and of the pilot go through the same 3-D transform
    (the 2-D DCT of each patch, then the Haar transform across the group); each noisy
    coefficient is kept in the proportion ``q^2 / (q^2 + tau sigma^2)``, ``q`` the pilot's, except
    the group's mean (kept whole, as the ``wiener`` refiner keeps a patch's); back in pixels,
    every patch of the group is added at its place with the group's weight, the inverse of its
    filter's noise gain (summed over the planes). A colour image is filtered in the opponent
    colour space of ``wiener``, every plane with the groups found in the luminance.

    Every number is made by elementwise float64 products and sums in a fixed order (no BLAS);
    the references are taken in blocks of :attr:`BLOCK` (rows, columns of references) whatever
    the image, and the blocks' sums added in block order, so the result does not depend on
    threads, memory layout or the process it runs in. ``threads`` blocks are matched and filtered
    at a time (None: as many as torch is given, ``torch.get_num_threads()``: one under ``linr
    bench``, a batch worker's share under ``linr batch``), each in a process forked from this one
    (:func:`linr.parallel.mapped_in_order`; on threads where forking is not possible, and with
    ``keep_groups``, whose groups are kept in this process): on threads the blocks' many small
    NumPy calls wait on each other for the GIL. ``keep_groups``: the groups matched by
    the first call on an image of a shape serve every later call on that shape, whatever its photo
    (:mod:`linr.sure` differentiates the filter with its groups held). The image is filtered a row
    of blocks at a time, top to bottom: each block reads only the pixels its groups can reach (its
    references and ``window // 2`` px around them), and the rows no later block reaches are
    divided out and written to the output as soon as a row of blocks is done. Memory besides the
    photo and the pilot, whatever the image's size: two float32 images (the prefiltered pilot, the
    output), the sums of the rows later blocks still add to, and per worker one block's planes,
    groups and distances or one pass of the prefilter (a peak of 80-145 MB over the inputs on one
    thread from 512 x 512 to 2048 x 1024 RGB, forty-eighth session; 289-329 MB at 1024 x 1024 to
    2048 x 1024 before, when the planes and sums were the whole image's in float64). Time: about 15 s for a 512 x 512 RGB photo on one core
    of a 2-core Intel Xeon (AMX; forty-seventh session), 11 s on two (the ``wiener`` refiner takes seconds);
    in the fiftieth session, on that machine then slower, 13.0-13.3 s on one core against 17.2-18.4 s for
    the code before that session's matching, gathering and transforms, and 12.9-13.2 s on two
    threads; in the fifty-first session 13.6-13.7 s on one core, 11.2-12.5 s on two threads and
    8.2-8.5 s on two forked processes."""

    BLOCK = (8, 256)

    PIECE = 512
    """References whose groups are transformed and filtered at a time within a block (a cache's
    worth; the same numbers for any piece)."""

    PREFILTER_SHARE = 0.15
    """The share of a call's time on one core its prefilter takes, for :mod:`linr.progress` (about
    2.0 of 13.6 s on a 512-px RGB photo; fifty-first session): :meth:`prefilter_share` for more."""

    KEPT_BYTES = 256 * 2**20
    """With ``keep_groups``, at most this many bytes of a photo's transformed groups are kept for
    later calls on the same photo (a 128 x 128 RGB photo and its SURE probe: about 90 MB)."""

    name = "grouped"
    takes = "noisy"
    does = "the noisy photo is filtered again with the fit as the pilot"

    def __init__(self, patch: int = 8, group: int = 16, step: int = 3, window: int = 39, tau: float = 1.0,
                 match: str = "noisy", prefilter: bool = True, threads: int | None = None,
                 keep_groups: bool = False) -> None:
        if threads is not None and threads < 1:
            raise ValueError(f"threads {threads}: at least 1 (None: torch's)")
        self.threads = threads
        if patch < 1 or not 1 <= step <= patch or window < 0:
            raise ValueError(f"patch {patch}, step {step}, window {window}: need 1 <= step <= patch, window >= 0")
        if group < 1 or group & (group - 1):
            raise ValueError(f"group {group}: a power of 2")
        if match not in ("noisy", "pilot"):
            raise ValueError(f"match {match!r}: 'noisy' or 'pilot'")
        self.patch, self.group, self.step, self.window, self.tau = patch, group, step, window, tau
        self.match, self.prefilter = match, prefilter
        # keep_groups: the groups matched by the first call on an image of a shape are used by every
        # later call on that shape, whatever its photo (Stein's estimate differentiates the filter
        # with its groups held: :mod:`linr.sure`); off, each call matches its own
        self._kept_groups: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray]] | None = {} if keep_groups else None
        # with the groups held, a photo's transformed groups are the same at every call on that photo
        # (the SURE pick filters one photo and its probe with many pilots): kept, up to KEPT_BYTES
        self._kept_coefs: dict[tuple[Any, ...], np.ndarray] | None = {} if keep_groups else None
        self._kept_bytes = 0
        self._kept_lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "patch": self.patch, "group": self.group, "step": self.step,
                "window": self.window, "tau": self.tau, "match": self.match, "prefilter": self.prefilter}

    def blocks(self, h: int, w: int) -> int:
        """Blocks of references on an h x w image (:attr:`BLOCK`): at most this many threads work."""
        rows, cols = self.BLOCK
        count = lambda n, per: -(-len(_starts(n, self.patch, self.step)) // per) if n >= self.patch else 0
        return count(h, rows) * count(w, cols)

    def workers(self, h: int, w: int) -> int:
        """Threads a call on an h x w image uses: :attr:`threads` (None: torch's,
        ``torch.get_num_threads()``), at most one per block (:meth:`blocks`), at least one."""
        return max(1, min(_threads(self.threads), self.blocks(h, w)))

    def prefilter_share(self, h: int, w: int) -> float:
        """The share of a call's time on an h x w image its prefilter takes (0 without one): on
        one thread, while the blocks after it are spread over :meth:`workers`."""
        if not self.prefilter:
            return 0.0
        share = self.PREFILTER_SHARE
        return share / (share + (1.0 - share) / self.workers(h, w))

    def group_size(self, h: int, w: int) -> int:
        """Patches per group on an h x w image: :attr:`group`, or the largest power of 2 that a
        reference in a corner finds within the window."""
        reach = self.window // 2
        found = (min(reach, h - self.patch) + 1) * (min(reach, w - self.patch) + 1)
        size = 1
        while size * 2 <= min(self.group, found):
            size *= 2
        return size

    def __call__(self, noisy: np.ndarray, pilot: np.ndarray, sigma: float) -> np.ndarray:
        """Filter ``noisy`` (H, W, C) with ``pilot`` (same shape) for noise std ``sigma`` (both on
        one scale); float32 (H, W, C). Images smaller than a patch come back as the pilot."""
        noisy, pilot = _pilot_pair(noisy, pilot)
        h, w, c = noisy.shape
        p, reach = self.patch, self.window // 2
        if h < p or w < p:
            return pilot.astype(np.float32)
        if self.prefilter:
            with progress.span(0.0, self.prefilter_share(h, w)):
                pilot = PilotWiener()(noisy, pilot, sigma)  # on one thread: PilotWiener's docstring
        transform = _colour_transform(c)
        ys, xs = _starts(h, p, self.step), _starts(w, p, self.step)
        rows, cols = self.BLOCK
        size = self.group_size(h, w)
        blocks = [(y0, x0) for y0 in range(0, len(ys), rows) for x0 in range(0, len(xs), cols)]
        photo = None if self._kept_coefs is None else hashlib.blake2b(
            np.ascontiguousarray(noisy).tobytes(), digest_size=16).digest()  # which photo, for the kept transforms

        def block_sums(block: tuple[int, int]) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
            y0, x0 = block
            by, bx = ys[y0:y0 + rows], xs[x0:x0 + cols]
            # the pixels the block's groups can cover: its references' patches and reach around them
            top, left = max(int(by[0]) - reach, 0), max(int(bx[0]) - reach, 0)
            window = slice(top, min(int(by[-1]) + p + reach, h)), slice(left, min(int(bx[-1]) + p + reach, w))
            noisy_planes = [_mix(noisy[window], row) for row in transform]
            pilot_planes = [_mix(pilot[window], row) for row in transform]
            kept, key = self._kept_groups, (h, w, y0, x0)
            if kept is not None and key in kept:
                gy, gx = kept[key]
            else:
                # matched on the luminance (RGB: the first opponent plane), else on the channels' mean
                guide = (noisy_planes if self.match == "noisy" else pilot_planes)[0] if c in (1, 3) else \
                    _mix((noisy if self.match == "noisy" else pilot)[window], np.full(c, 1.0 / c))
                # the guide around the references, reading 0 outside the image (such candidates are ruled out in _match)
                around = np.zeros((int(by[-1] - by[0]) + p + 2 * reach, int(bx[-1] - bx[0]) + p + 2 * reach))
                oy, ox = top - (int(by[0]) - reach), left - (int(bx[0]) - reach)
                around[oy:oy + guide.shape[0], ox:ox + guide.shape[1]] = guide
                gy, gx = self._match(around, (h, w), by, bx, size)
                if kept is not None:
                    kept[key] = gy, gx
            return self._filter(noisy_planes, pilot_planes, (top, left), gy, gx, float(sigma),
                                None if photo is None else (photo, h, w, y0, x0))

        out = np.zeros(noisy.shape, dtype=np.float32)
        # the weighted sums and weights of the rows from `settled` on, the only ones later blocks add to
        settled, num, den = 0, np.zeros((c, 0, w)), np.zeros((0, w))
        last_x0 = blocks[-1][1]
        with mapped_in_order(self.workers(h, w), processes=self._kept_groups is None) as mapped:
            start = self.prefilter_share(h, w)
            for count, ((y0, x0), (window, block_den, block_num)) in enumerate(zip(blocks, mapped(block_sums, blocks))):
                progress.report(start + (1.0 - start) * (count + 1) / len(blocks))
                if window[0].stop > settled + den.shape[0]:  # more rows
                    grown = window[0].stop - settled
                    num = np.concatenate([num, np.zeros((c, grown - den.shape[0], w))], axis=1)
                    den = np.concatenate([den, np.zeros((grown - den.shape[0], w))])
                band = slice(window[0].start - settled, window[0].stop - settled), window[1]
                den[band] += block_den  # added in block order: the same sums for any threads
                num[(slice(None), *band)] += block_num
                if x0 == last_x0:  # a row of blocks done: no later block reaches above its next references' reach
                    below = min(int(ys[y0 + rows]) - reach, h) if y0 + rows < len(ys) else h
                    if below > settled:
                        done = below - settled
                        planes = np.divide(num[:, :done], den[:done])
                        for plane, row in zip(planes, transform):
                            _add_plane(out[settled:below], row, plane)
                        settled, num, den = below, num[:, done:], den[done:]
        return out

    def _match(self, around: np.ndarray, shape: tuple[int, int], ys: np.ndarray, xs: np.ndarray,
               size: int) -> tuple[np.ndarray, np.ndarray]:
        """The patch starts (rows, columns; each (R, size), R = len(ys) * len(xs), references in
        row order) of the groups of the references at ``ys`` x ``xs`` in an image of ``shape``,
        matched in ``around``: the guide over the references' patches and ``window // 2`` px around
        them (0 outside the image)."""
        p, reach = self.patch, self.window // 2
        h, w = shape
        span = np.arange(-reach, reach + 1)
        top, left = ys[0], xs[0]
        ref = around[reach:reach + ys[-1] - top + p, reach:reach + xs[-1] - left + p]  # the references' pixels
        ry, rx = ys - top, xs - left
        valid_x = ((xs[None, :] + span[:, None] >= 0) & (xs[None, :] + span[:, None] <= w - p))  # (dx, x)
        dist = np.empty((len(ys), len(xs), len(span), len(span)))
        x_runs, y_runs = _even_runs(rx), _even_runs(ry)
        apart = np.empty((ref.shape[0], len(span), ref.shape[1]))
        across = np.empty((ref.shape[0], len(span), len(xs)))  # a row's sums at the references' columns
        total = np.empty((len(ys), len(span), len(xs)))
        for a, dy in enumerate(span):
            band = around[reach + dy:reach + dy + ys[-1] - top + p, :xs[-1] - left + p + 2 * reach]
            cand = np.lib.stride_tricks.sliding_window_view(band, ref.shape[1], axis=1)  # (rows, dx, cols)
            np.subtract(ref[:, None, :], cand, out=apart)
            np.multiply(apart, apart, out=apart)
            # the sums over each patch's columns, then its rows, at the references' starts only, in
            # the order j = 0, 1, ... (:func:`_window_sums`; the sums at every column, then
            # gathered at the starts, took 1.4x the time at the step of 3)
            _window_sums(apart, x_runs, p, 2, across)
            _window_sums(across, y_runs, p, 0, total)
            inside = ((ys + dy >= 0) & (ys + dy <= h - p))[:, None, None] & valid_x[None]
            dist[:, :, a, :] = np.where(inside, total, np.inf).transpose(0, 2, 1)
        dist = dist.reshape(len(ys) * len(xs), -1)
        dist[:, dist.shape[1] // 2] = -1.0  # the reference itself comes first
        order = _smallest_in_order(dist, size)
        dy, dx = np.divmod(order, len(span))
        return np.repeat(ys, len(xs))[:, None] + dy - reach, np.tile(xs, len(ys))[:, None] + dx - reach

    def _filter(self, noisy_planes: list[np.ndarray], pilot_planes: list[np.ndarray], origin: tuple[int, int],
                gy: np.ndarray, gx: np.ndarray, sigma: float, kept_key: tuple[Any, ...] | None = None
                ) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray]:
        """Filter the groups at ``gy``, ``gx`` (in the image) of the planes, which hold the pixels
        of the image from ``origin`` (row, column) on: the window of the image the groups cover
        (rows, columns) and their sums there, the weights' (h, w) and the weighted planes' (C, h, w). Groups are
        held as (p, p, K, R) arrays: every step of a transform is a product-sum of contiguous
        slabs. ``kept_key`` (the photo and the block, with ``keep_groups``): the noisy photo's
        transformed groups are taken from, or kept for, later calls with that key."""
        p = self.patch
        d = _dct_matrix(p)
        haar = _haar_matrix(gy.shape[1])
        noise_power = self.tau * sigma * sigma
        energy = np.zeros(gy.shape[0])
        filtered = [np.empty((p, p, *gy.shape[::-1])) for _ in noisy_planes]
        # the references in pieces of PIECE: a piece's groups and transforms stay in the CPU's
        # cache (a block's whole did not); every number is made as for the whole block
        for start in range(0, gy.shape[0], self.PIECE):
            piece = slice(start, start + self.PIECE)
            py, px = gy[piece] - origin[0], gx[piece] - origin[1]
            for index, (noisy, pilot) in enumerate(zip(noisy_planes, pilot_planes)):
                q = _along(_along(_along(_groups(pilot, py, px, p), d, 0), d, 1), haar, 2)
                coef = self._noisy_coefficients(noisy, py, px, d, haar,
                                                None if kept_key is None else (*kept_key, start, piece.stop, index))
                q *= q
                gain = q / (q + noise_power) if noise_power > 0 else np.ones_like(q)
                gain[0, 0, 0] = 1.0  # the group's mean is kept
                for g in gain.reshape(-1, gain.shape[-1]):
                    energy[piece] += g * g
                filtered[index][..., piece] = _along(_along(_along(coef * gain, haar.T, 2), d.T, 0), d.T, 1)
        weight = np.broadcast_to(1.0 / energy, filtered[0].shape)
        top, left = int(gy.min()), int(gx.min())  # the pixels the groups cover: a window around the block
        bottom, right = int(gy.max()) + p, int(gx.max()) + p
        span = right - left
        offsets = np.arange(p)[:, None] * span + np.arange(p)[None, :]
        where = (((gy - top) * span + gx - left).T[None, None] + offsets[:, :, None, None]).ravel()
        size = (bottom - top) * span
        block_den = np.bincount(where, weights=weight.ravel(), minlength=size).reshape(-1, span)
        block_num = np.stack([np.bincount(where, weights=(weight * plane).ravel(), minlength=size).reshape(-1, span)
                              for plane in filtered])
        return (slice(top, bottom), slice(left, right)), block_den, block_num

    def _noisy_coefficients(self, noisy: np.ndarray, gy: np.ndarray, gx: np.ndarray, d: np.ndarray,
                            haar: np.ndarray, key: tuple[Any, ...] | None) -> np.ndarray:
        """The 3-D transform of the noisy plane's groups at ``gy``, ``gx``: kept under ``key``
        (None: not kept) while the kept ones stay within :attr:`KEPT_BYTES`. Read-only when kept."""
        kept = self._kept_coefs
        if kept is not None and key is not None and key in kept:
            return kept[key]
        coef = _along(_along(_along(_groups(noisy, gy, gx, self.patch), d, 0), d, 1), haar, 2)
        if kept is not None and key is not None:
            with self._kept_lock:  # blocks are filtered on several threads
                if self._kept_bytes + coef.nbytes <= self.KEPT_BYTES:
                    coef.setflags(write=False)
                    kept[key] = coef
                    self._kept_bytes += coef.nbytes
        return coef


def _smallest_in_order(values: np.ndarray, size: int) -> np.ndarray:
    """The columns of the ``size`` smallest of each row of ``values`` (R, N; no NaN), by value,
    ties by column: ``np.argsort(values, axis=1, kind='stable')[:, :size]``, found by a partial
    selection (each row's ``size``-th value; of the values equal to it only the first columns
    needed) and a sort of those ``size`` (the full sort of a match's 1521 candidates per reference
    was a tenth of a refinement's time). Rows with NaN: the full sort."""
    if size >= values.shape[1]:
        return np.argsort(values, axis=1, kind="stable")[:, :size]
    bound = np.partition(values, size - 1, axis=1)[:, size - 1:size]
    if np.isnan(bound).any():
        return np.argsort(values, axis=1, kind="stable")[:, :size]
    below = values < bound
    at = values == bound  # a flat patch's candidates can all tie: only as many as are needed
    needed = size - below.sum(axis=1, keepdims=True)
    take = below | at & (np.cumsum(at, axis=1, dtype=np.int32) <= needed)
    rows, cols = np.nonzero(take)  # row by row, columns rising: size per row
    order = np.lexsort((cols, values[rows, cols], rows))
    return cols[order].reshape(values.shape[0], size)


def _groups(plane: np.ndarray, gy: np.ndarray, gx: np.ndarray, p: int) -> np.ndarray:
    """The ``p x p`` patches of ``plane`` starting at ``gy``, ``gx`` ((R, K) each): (p, p, K, R),
    taken a patch pixel at a time straight into that layout (a fifth of the time of gathering
    whole patches and transposing them)."""
    flat, width = plane.ravel(), plane.shape[1]
    first = gy.T * width + gx.T  # (K, R): where each patch starts in the flat plane
    out = np.empty((p, p, *first.shape), dtype=plane.dtype)
    for i in range(p):
        for j in range(p):
            np.take(flat, first + (i * width + j), out=out[i, j])
    return out


MIN_HELD_OUT = 20
"""Fewest held-out pixels a blend's weight is chosen on; with fewer it stays at its fixed weight.
A guard against single-digit counts (a tiny photo), where the least-squares weight jumped to 0 or
1; with 19-23 pixels on a 64-px crop it was still near the best weight (not measured beyond)."""


def plug_and_play(denoiser: Callable[[np.ndarray, np.ndarray, float], np.ndarray], image: np.ndarray,
                  levels: Sequence[float],
                  constrain: Callable[[np.ndarray, float], np.ndarray | None]) -> np.ndarray | None:
    """``image`` denoised once per noise level of ``levels`` (0-255 scale) by ``denoiser(x, x,
    sigma)`` (the image its own pilot and its own noisy photo) and brought back to the data by
    ``constrain(x, sigma)`` after each pass (``sigma`` that pass's level, 0-1 scale): the
    plug-and-play loop of ``grouped-fill`` (the observed pixels restored), ``grouped-views`` (the
    projection onto the low-res views) and ``grouped-deblur`` (the data step of a blurred photo).
    None as soon as ``constrain`` returns None (the data cannot be met)."""
    x: np.ndarray | None = image
    sigmas = np.asarray(levels, np.float64) / 255.0
    for index, sigma in enumerate(sigmas):
        with progress.span(index / len(sigmas), (index + 1) / len(sigmas)):
            x = constrain(denoiser(x, x, float(sigma)), float(sigma))
        if x is None:
            return None
    return x


def blend_gain_z(target: np.ndarray, alone: np.ndarray, blend: np.ndarray) -> float:
    """How clearly a blend chosen on held-out values predicts them better than one image alone:
    the mean gain in squared error per value (``target``, ``alone`` and ``blend`` there, of one
    shape) over the gains' standard error, to 2 decimals; 0 when the gains do not spread."""
    gain = ((target - alone) ** 2 - (target - blend) ** 2).ravel()
    spread = float(gain.std()) / np.sqrt(gain.size)
    return round(float(gain.mean() / spread), 2) if spread > 0 else 0.0


def simplex_weights(target: np.ndarray, candidates: Sequence[np.ndarray]) -> np.ndarray:
    """The weights ``w`` (K,), each >= 0 and summing to 1, of the blend ``sum_k w_k candidates[k]``
    closest to ``target`` in least squares (float64; the arrays of one shape). Exact: the best
    blend is the affine least-squares blend of some subset of the candidates with every weight
    >= 0, and every subset is tried (K is small). Ties go to the earlier subset (one candidate
    before pairs, in the candidates' order)."""
    t = np.asarray(target, np.float64).ravel()
    c = np.stack([np.asarray(k, np.float64).ravel() for k in candidates], 1)  # (n, K)
    best, best_loss = None, np.inf
    for size in range(1, c.shape[1] + 1):
        for subset in combinations(range(c.shape[1]), size):
            first, rest = subset[0], list(subset[1:])
            w = np.zeros(c.shape[1])
            if rest:  # t - c_first ~ sum_j w_j (c_j - c_first), w_first = 1 - sum_j w_j
                w[rest] = np.linalg.lstsq(c[:, rest] - c[:, [first]], t - c[:, first], rcond=None)[0]
            w[first] = 1.0 - w[rest].sum()
            if (w < 0).any():
                continue
            loss = float(np.sum((t - c @ w) ** 2))
            if best is None or loss < best_loss * (1 - 1e-12):
                best, best_loss = w, loss
    return best


def observed_channels(observed: np.ndarray, channels: int) -> np.ndarray:
    """An observed-pixel mask as (H, W, C) bool: an (H, W) mask shared by the ``channels``
    channels (a read-only broadcast), or an (H, W, C) one as it is (a per-channel mask, such as a
    colour filter array's)."""
    observed = np.asarray(observed, bool)
    if observed.ndim == 3 and observed.shape[-1] == 1:  # a (1, H, W) mask: shared by the channels
        observed = observed[..., 0]
    if observed.ndim == 2:
        return np.broadcast_to(observed[..., None], (*observed.shape, channels))
    if observed.shape[-1] != channels:
        raise ValueError(f"observed mask of shape {observed.shape} for {channels} channels")
    return observed


class DepthBlend:
    """The blend of inpaintings chosen on held-out pixels (:func:`simplex_weights`): one set of
    weights for the whole photo, or, where its holes are large (:func:`linr.holes.has_large_holes`;
    the fit's stop rule then held out blocks of pixels as deep as the holes), a set per depth from
    the observed pixels (:func:`linr.holes.depth_bands`), each missing pixel taking the weights of
    its own depth (interpolated between the bands' mean depths, :func:`linr.holes.weights_at`),
    unless weights by depth chosen without each block predict it worse than one set of weights
    (:meth:`_by_depth_transfers`): then one set, chosen on every held-out pixel, blocks included.

    ``photo`` (H, W, C), ``observed`` (H, W, C) (:func:`observed_channels`), ``held`` (H, W) the
    held-out pixels (observed in every channel), ``blind`` the candidates made without them (each
    (H, W, C)), ``names`` theirs."""

    def __init__(self, photo: np.ndarray, observed: np.ndarray, held: np.ndarray,
                 blind: Sequence[np.ndarray], names: Sequence[str]) -> None:
        self.names = tuple(names)
        target = photo[held]
        picked = [c[held] for c in blind]
        self.bands: list[tuple[float, int, np.ndarray]] = []  # (mean depth, pixels, weights)
        self.transfers: bool | None = None  # whether weights by depth predicted each block best
        observed_depths = hole_depths(observed)
        if holes_are_large(observed_depths):
            depths = hole_depths(observed & ~held[..., None])[held]
            self.bands = self._bands(depths, target, picked)
            if len(self.bands) > 1:
                self.transfers = self._by_depth_transfers(held, depths, target, picked)
                if not self.transfers:
                    self.bands = []
        if len(self.bands) < 2:  # one set of weights for every pixel
            self.bands = [(1.0, int(held.sum()), simplex_weights(target, picked))]
        self.depths = observed_depths if len(self.bands) > 1 else None

    @staticmethod
    def _bands(depths: np.ndarray, target: np.ndarray, picked: Sequence[np.ndarray]) -> list[tuple[float, int, np.ndarray]]:
        """(mean depth, pixels, weights) of each band of held-out pixels (:func:`linr.holes.depth_bands`)."""
        return [(float(depths[band].mean()), len(band), simplex_weights(target[band], [c[band] for c in picked]))
                for band in depth_bands(depths, MIN_HELD_OUT)]

    @classmethod
    def _by_depth_transfers(cls, held: np.ndarray, depths: np.ndarray, target: np.ndarray,
                            picked: Sequence[np.ndarray]) -> bool:
        """Whether weights by depth chosen without one held-out block predict it better than one
        set of weights chosen without it, summed over the blocks (leave one block out;
        :func:`linr.holes.held_out_blocks_found`): blocks in other parts of the scene than the
        holes can teach weights that hold there only. True with fewer than two blocks."""
        blocks = held_out_blocks_found(held)
        if blocks.max(initial=0) < 2:
            return True
        by_depth = one = 0.0
        for k in range(1, blocks.max() + 1):
            left, rest = blocks == k, blocks != k
            bands = cls._bands(depths[rest], target[rest], [c[rest] for c in picked])
            candidates = np.stack([c[left] for c in picked], -1)  # (n, C, K)
            w = weights_at(depths[left], [b[0] for b in bands], np.stack([b[2] for b in bands]))  # (n, K)
            by_depth += float(np.sum((target[left] - np.einsum("nck,nk->nc", candidates, w)) ** 2))
            single = simplex_weights(target[rest], [c[rest] for c in picked])
            one += float(np.sum((target[left] - candidates @ single) ** 2))
        return by_depth < one

    def weights(self, depths: np.ndarray | None = None) -> np.ndarray:
        """(K,) the weights of every pixel, or (H, W, K) each pixel's by its depth from the observed
        pixels (``depths``: from others, such as those a blind candidate saw, :func:`hole_depths`)."""
        if self.depths is None:
            return self.bands[0][2]
        return weights_at(self.depths if depths is None else depths, [b[0] for b in self.bands],
                          np.stack([b[2] for b in self.bands]))

    def mean_weights(self) -> np.ndarray:
        """(K,) the weights, or their mean over the missing pixels when they go by depth."""
        w = self.weights()
        return w if w.ndim == 1 else w[self.depths > 0].mean(0)

    def blend(self, candidates: Sequence[np.ndarray | None], seen: np.ndarray | None = None) -> np.ndarray:
        """The blend of ``candidates`` ((H, W, C) each, in :attr:`names`' order; None for one whose
        weight is 0 everywhere), float64; by the pixels' depths from ``seen`` where given (a blend of
        blind candidates: a held-out pixel as deep as the candidates saw it), else from the observed."""
        w = self.weights(None if seen is None or self.depths is None else hole_depths(seen))
        out = 0.0
        for k, image in enumerate(candidates):
            if image is not None:
                out = out + (w[k] if w.ndim == 1 else w[..., k, None]) * np.asarray(image, np.float64)
        return out

    def used(self, name: str) -> bool:
        """Whether candidate ``name`` has a weight above 0 at some pixel."""
        k = self.names.index(name)
        return any(b[2][k] > 0 for b in self.bands)

    def describe(self) -> dict[str, Any]:
        """The weights (their mean over the missing pixels when by depth) and, by depth, each band's."""
        said: dict[str, Any] = {"weights": {n: round(float(v), 4) for n, v in zip(self.names, self.mean_weights())}}
        if self.transfers is False:
            said["by_depth_left"] = "weights by depth predicted the held-out blocks worse than one set of weights"
        if len(self.bands) > 1:
            said["by_depth"] = [{"depth": round(d, 2), "held_out_pixels": n,
                                 "weights": {k: round(float(v), 4) for k, v in zip(self.names, w)}}
                                for d, n, w in self.bands]
        return said


class BiharmonicBlend:
    """The ``biharmonic`` refiner (module docstring): ``weight * fit + (1 - weight) * biharmonic``,
    the biharmonic inpainting (scikit-image, per channel) of the observed pixels; the observed
    pixels' values are blended like the others (the fit reproduces them closely).

    When the fit held some observed pixels out of its data term (``held_out``: the ``pick`` or
    ``holdout`` stop rule's), the weight is chosen on them: the least-squares weight, clipped to
    [0, 1], of the fit against a biharmonic inpainting of the other observed pixels (neither saw
    the held-out ones; at least :data:`MIN_HELD_OUT` of them); else :attr:`weight`. ``describe()`` after a call says which."""

    name = "biharmonic"
    takes = "masked"
    verb = "blended"
    does = "the held-out best iterate is blended with a biharmonic inpainting"

    def __init__(self, weight: float = 0.5) -> None:
        self.weight = weight
        self.used = weight  # the weight of the last call (its mean over the missing pixels when by depth)
        self.chosen_on: int | None = None  # held-out pixels the last call chose its weight on
        self.by_depth: list[dict[str, Any]] | None = None  # the weights by depth (DepthBlend), when so
        self.by_depth_left: str | None = None  # why not by depth, where the holes were large

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "weight": round(self.used, 4),
                **({"chosen_on_held_out_pixels": self.chosen_on} if self.chosen_on else {}),
                **({"by_depth": self.by_depth} if self.by_depth else {}),
                **({"by_depth_left": self.by_depth_left} if self.by_depth_left else {})}

    @staticmethod
    def _fill(photo: np.ndarray, observed: np.ndarray, fallback: np.ndarray) -> np.ndarray:
        """The biharmonic inpainting of ``photo`` (H, W, C) where ``observed`` ((H, W) or (H, W, C),
        :func:`observed_channels`) is False: one solve for every channel when they share the mask,
        else one per channel; a channel with nothing observed takes ``fallback``'s values."""
        from skimage.restoration import inpaint_biharmonic

        observed = observed_channels(observed, photo.shape[-1])
        if observed.all():
            return photo
        if (observed == observed[..., :1]).all() and observed.any():  # one mask for every channel
            return inpaint_biharmonic(photo, ~observed[..., 0], channel_axis=-1)
        out = np.array(photo, np.float64)
        for c in range(photo.shape[-1]):
            seen = observed[..., c]
            if not seen.any():
                out[..., c] = fallback[..., c]
            elif not seen.all():
                out[..., c] = inpaint_biharmonic(photo[..., c], ~seen)
        return out

    def __call__(self, photo: np.ndarray, observed: np.ndarray, fit: np.ndarray,
                 held_out: np.ndarray | None = None) -> np.ndarray:
        """Blend ``fit`` (H, W, C) with the biharmonic inpainting of ``photo`` (H, W, C) where
        ``observed`` ((H, W), or (H, W, C) per channel) is False, the weight chosen on ``held_out``
        (H, W; pixels the fit did not train on, of those observed in every channel) when given;
        float32 (H, W, C)."""
        photo = np.asarray(photo, np.float64)
        observed = observed_channels(observed, photo.shape[-1])
        fit = np.asarray(fit, np.float64)
        self.chosen_on, weight = None, self.weight
        self.by_depth = self.by_depth_left = None
        if held_out is not None and (held := np.asarray(held_out, bool) & observed.all(-1)).sum() >= MIN_HELD_OUT \
                and (seen := observed & ~held[..., None]).any():
            blind = self._fill(photo, seen, fit)
            if np.any(fit[held] != blind[held]):
                chosen = DepthBlend(photo, observed, held, [fit, blind], ("fit", "biharmonic"))
                weight, self.chosen_on = float(chosen.mean_weights()[0]), int(held.sum())
                said = chosen.describe()
                self.by_depth_left = said.get("by_depth_left")
                if len(chosen.bands) > 1:
                    self.by_depth = said["by_depth"]
                    self.used = weight
                    return chosen.blend([fit, self._fill(photo, observed, fit)]).astype(np.float32)
        self.used = weight
        return (weight * fit + (1.0 - weight) * self._fill(photo, observed, fit)).astype(np.float32)


class GroupedFill:
    """The ``grouped-fill`` refiner (module docstring): the missing pixels filled by filtering the
    image again and again with :class:`GroupedWiener` (the image its own pilot and its own noisy
    photo, no prefilter) at a falling noise level, the observed pixels put back after every pass:
    a plug-and-play inpainting (Venkatakrishnan et al. 2013; with BM3D-style filters, Danielyan et
    al. 2012) that starts from the ``biharmonic`` blend of the fit, so the fit's picture of the
    scene sets the groups the filter finds. :attr:`passes` passes from :attr:`start` to :attr:`end`
    (0-255 scale, geometric), which the observed pixels must survive unchanged: they are taken as
    noise-free (the defaults apply it to a photo without noise only).

    When the fit held observed pixels out (``held_out``, at least :data:`MIN_HELD_OUT`), the fill
    is made blind to them first (their values neither in the biharmonic inpainting nor put back),
    and the blend ``w1 fit + w2 biharmonic + w3 filled`` (weights >= 0, sum 1,
    :func:`simplex_weights`) that predicts them best is kept; the fill then takes them in with
    :attr:`finish` more passes from :attr:`finish_start` down to :attr:`end` (close to a fill of
    every observed pixel from the start, at a quarter of its cost); the observed pixels of the blend
    are the photo's. Without them the result is the fill of every observed pixel (weights 0, 0, 1).
    A per-channel mask (a colour filter array's, say) keeps each channel's observed values and
    fills the others (a biharmonic inpainting per channel); held-out pixels count where every
    channel was observed.

    Above :attr:`BIHARMONIC_UP_TO` px a side, with more than :attr:`BIHARMONIC_MISSING_UP_TO`
    pixels missing, there is no biharmonic inpainting: the fill starts from the fit's image alone, and a blend weighs the fit and the fill only (``biharmonic``
    False in :meth:`describe`): every step is then linear in the pixels."""

    name = "grouped-fill"
    takes = "masked"
    does = ("the missing pixels are filled again by grouped filtering from the "
            "held-out best iterate")
    BLENDED = ("fit", "biharmonic", "filled")
    STEP = 4
    """Reference patches every 4 px in the fill's filter (``grouped``'s 3): 0.65x the time of 3 for
    0.00-0.04 dB less on the four tune crops (set9 128 px, 10% kept; BENCHMARKS.md)."""
    BIHARMONIC_UP_TO = 768
    """The largest side (px) at which the fill always starts from the blend with biharmonic
    inpainting, whatever is missing: its sparse solve grows faster than the missing pixels (per
    channel about 3 s at 512 px, 75 s and 6 GB at 1024 px with 90% of the pixels missing, on this
    project's CPU), and it was measured on images of 228-512 px. Without it (and without held-out
    pixels) the fill of the fit's image alone came within -0.06 to +0.12 dB of the default's on
    the four tune crops and 0.02-0.27 dB under it on the six Table 3 images, 0.26 dB or more above
    the fit alone on every one (BENCHMARKS.md, '#14 and #15: inpainting at any size'). Larger
    images get it too where few of their pixels are missing (:attr:`BIHARMONIC_MISSING_UP_TO`)."""
    BIHARMONIC_MISSING_UP_TO = BIHARMONIC_UP_TO * BIHARMONIC_UP_TO
    """The most missing pixels (missing in some channel) with which an image larger than
    :attr:`BIHARMONIC_UP_TO` px still starts from the blend with biharmonic inpainting: the solve's
    unknowns are the missing pixels (and, blind to them, the held-out ones: scattered ones cost
    little, blocks held out beside large holes up to a quarter of the observed pixels more), so
    this is the most an image of that side could miss (since the sixty-first session; before, no
    image above that side had it: a 1536 x 1024 scan with 2.7% of its pixels missing in thin
    scratches took 0.54 s for all three channels)."""

    def __init__(self, passes: int = 20, start: float = 30.0, end: float = 2.0, finish: int = 5,
                 finish_start: float = 5.0) -> None:
        if passes < 1 or finish < 0 or not start >= end > 0 or not finish_start >= end:
            raise ValueError(f"passes {passes}, finish {finish}, start {start}, finish_start {finish_start}, "
                             f"end {end}: need passes >= 1, finish >= 0, start >= end > 0, finish_start >= end")
        self.passes, self.start, self.end, self.finish, self.finish_start = passes, start, end, finish, finish_start
        self.filter = GroupedWiener(step=self.STEP, prefilter=False)
        self.choice: dict[str, Any] = {}
        self.significance: float | None = None
        """With held-out pixels, the blend is used only where it predicts their values better than
        the fit alone by more than this many standard errors (:func:`blend_gain_z`); else the fit, the
        observed pixels put back. None (the default): the blend always. At 3 for a masked photo beside
        a noisy one it lost -1.23 to +0.00 dB on eight tune crops and -0.65 to +0.71 on ten report
        crops (sixty-ninth session, ``benchmarks/noisy_masked_significance_probe.py``; not adopted)."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "passes": self.passes, "sigmas": [self.start, self.end],
                "finish": self.finish, "step": self.STEP, **self.choice}

    def uses_biharmonic(self, observed: np.ndarray) -> bool:
        """Whether a photo whose ``observed`` mask ((H, W), or (H, W, C) per channel) this is gets
        filled from the blend with biharmonic inpainting: at most :attr:`BIHARMONIC_UP_TO` px a
        side, or at most :attr:`BIHARMONIC_MISSING_UP_TO` pixels missing (in some channel)."""
        observed = np.asarray(observed, bool)
        if max(observed.shape[:2]) <= self.BIHARMONIC_UP_TO:
            return True
        seen = observed.all(-1) if observed.ndim == 3 else observed
        return int(seen.size - np.count_nonzero(seen)) <= self.BIHARMONIC_MISSING_UP_TO

    def fill(self, photo: np.ndarray, observed: np.ndarray, image: np.ndarray, passes: int,
             start: float) -> np.ndarray:
        """``image`` filtered ``passes`` times at levels from ``start`` down to :attr:`end` (0-255),
        ``photo``'s ``observed`` values ((H, W), or (H, W, C) per channel) put back after each
        pass; float64."""
        observed = observed_channels(observed, photo.shape[-1])
        return plug_and_play(self.filter, np.where(observed, photo, image), np.geomspace(start, self.end, passes),
                             lambda x, _: np.where(observed, photo, x))

    def __call__(self, photo: np.ndarray, observed: np.ndarray, fit: np.ndarray,
                 held_out: np.ndarray | None = None) -> np.ndarray:
        """The filled image (float32 (H, W, C)) of ``photo`` (H, W, C) where ``observed`` ((H, W), or
        (H, W, C) per channel) is False, from ``fit`` (H, W, C), chosen on ``held_out`` (H, W; of
        the pixels observed in every channel) when given (see the class)."""
        photo = np.asarray(photo, np.float64)
        observed = observed_channels(observed, photo.shape[-1])
        fit = np.asarray(fit, np.float64)
        if observed.all():  # nothing to fill: the photo, which is taken as noise-free
            self.choice = {"nothing_missing": True}
            return photo.astype(np.float32)
        held = None if held_out is None else np.asarray(held_out, bool) & observed.all(-1)
        biharmonic = self.uses_biharmonic(observed)
        if held is None or held.sum() < MIN_HELD_OUT or not (observed & ~held[..., None]).any():
            if not biharmonic:
                self.choice = {"biharmonic": False}
                return self.fill(photo, observed, fit, self.passes, self.start).astype(np.float32)
            blend = BiharmonicBlend()
            start = blend(photo, observed, fit)
            self.choice = {"start_weight": round(blend.used, 4)}
            return self.fill(photo, observed, start, self.passes, self.start).astype(np.float32)
        seen = observed & ~held[..., None]  # everything below is blind to the held-out pixels
        if biharmonic:
            blind_biharmonic = BiharmonicBlend._fill(photo, seen, fit)
            begun = DepthBlend(photo, observed, held, [fit, blind_biharmonic], ("fit", "biharmonic"))
            start = begun.blend([fit, blind_biharmonic], seen)  # by depth too where the holes are large
            self.choice = {"start_weight": round(float(begun.mean_weights()[0]), 4)}
        else:
            start, self.choice = fit, {"biharmonic": False}
        share = self.passes / (self.passes + self.finish)  # of the passes, for linr.progress
        with progress.span(0.0, share):
            blind_fill = self.fill(photo, seen, start, self.passes, self.start)
        names = self.BLENDED if biharmonic else ("fit", "filled")
        candidates = [fit, blind_biharmonic, blind_fill] if biharmonic else [fit, blind_fill]
        chosen = DepthBlend(photo, observed, held, candidates, names)
        self.choice.update({"chosen_on_held_out_pixels": int(held.sum()), **chosen.describe()})
        if self.significance is not None:  # a blend of the whole image, for its z on the held-out pixels
            self.choice["gain_z"] = blend_gain_z(photo[held], fit[held], chosen.blend(candidates, seen)[held])
            if self.choice["gain_z"] <= self.significance:  # no clear gain over the fit
                self.choice["blend_weights_not_used"] = self.choice.pop("weights")
                return np.where(observed, photo, fit).astype(np.float32)
        final = {"fit": fit}
        if biharmonic and chosen.used("biharmonic"):
            final["biharmonic"] = BiharmonicBlend._fill(photo, observed, fit)
        if chosen.used("filled"):
            with progress.span(share, 1.0):
                final["filled"] = self.fill(photo, observed, blind_fill, self.finish, self.finish_start)
        out = chosen.blend([final.get(name) for name in names])
        return np.where(observed, photo, out).astype(np.float32)  # the observed values as they are


class Projected:
    """The ``project`` refiner (module docstring): the fit's image made to reproduce the
    noise-free low-res ``views`` exactly (:func:`linr.projection.project_onto_views`; unchanged
    when they cannot all be met)."""

    name = "project"
    takes = "views"
    does = "it is made to reproduce the low-res photo exactly"

    def __init__(self) -> None:
        self.projected: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "projected": self.projected}

    def __call__(self, image: np.ndarray, views: Sequence["Observation"]) -> np.ndarray:
        from .projection import project_onto_views

        projected, self.projected = project_onto_views(image, views)
        return projected


class _FallingLevels:
    """What ``grouped-views`` and ``grouped-deblur`` share: :attr:`passes` passes of
    :class:`GroupedWiener` (the image its own pilot and its own noisy photo, no prefilter,
    references every :attr:`STEP` px) at a noise level falling from :attr:`start` to :attr:`end`
    (0-255 scale, geometric), each brought back to the data (:func:`plug_and_play`)."""

    name: str
    STEP = GroupedFill.STEP

    def __init__(self, passes: int = 20, start: float = 30.0, end: float = 2.0) -> None:
        if passes < 1 or not start >= end > 0:
            raise ValueError(f"passes {passes}, start {start}, end {end}: need passes >= 1, start >= end > 0")
        self.passes, self.start, self.end = passes, start, end
        self.filter = GroupedWiener(step=self.STEP, prefilter=False)

    def levels(self) -> np.ndarray:
        """The passes' noise levels (0-255 scale)."""
        return np.geomspace(self.start, self.end, self.passes)

    def schedule(self) -> dict[str, Any]:
        """The refiner's name and passes, for :meth:`describe`."""
        return {"name": self.name, "passes": self.passes, "sigmas": [self.start, self.end], "step": self.STEP}


class GroupedViews(_FallingLevels):
    """The ``grouped-views`` refiner (module docstring): the fit's image made to reproduce its
    noise-free low-res ``views`` exactly (:func:`linr.projection.project_onto_views`), then
    :attr:`passes` times filtered by :class:`GroupedWiener` (the image its own pilot and its own
    noisy photo, no prefilter, references every :attr:`STEP` px) at a noise level falling from
    :attr:`start` to :attr:`end` (0-255, geometric) and projected again: plug-and-play
    super-resolution, whose filter lends each patch the detail of similar patches elsewhere and
    whose projection keeps what the views say. Unchanged (the fit's image) when the views cannot
    all be met (a projection that does not converge)."""

    name = "grouped-views"
    takes = "views"
    leaves_out_a_noisy_photo = True
    """It filters toward the views alone: refused beside one photo with Gaussian noise of the
    restored size (:func:`refine_input`), whose fit it lost 2.80 dB on (forty-third session, two
    64-px crops), where ``grouped-project`` uses both (other noise, or several noisy frames: not
    measured, and no grouped refinement of both exists: allowed)."""
    does = ("it is made to reproduce the low-res photo exactly and filtered again "
            "by grouped filtering")

    def __init__(self, passes: int = 20, start: float = 30.0, end: float = 2.0) -> None:
        super().__init__(passes, start, end)
        self.projected: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {**self.schedule(), "projected": self.projected}

    def __call__(self, image: np.ndarray, views: Sequence["Observation"]) -> np.ndarray:
        from .projection import project_onto_views

        def project(x: np.ndarray, _: float = 0.0) -> np.ndarray | None:
            x, self.projected = project_onto_views(x, views)
            return x if self.projected.get("converged", True) else None

        x = project(image)
        if x is None:  # the views cannot be met: the fit's image
            return np.asarray(image, np.float32)
        x = plug_and_play(self.filter, x, self.levels(), project)
        return np.asarray(image, np.float32) if x is None else x


class GroupedViewsExamples(GroupedViews):
    """The ``grouped-views-examples`` refiner (module docstring): the mean of three estimates of
    one low-res view's scene, made to reproduce the view exactly: the fit's image, its
    ``grouped-views`` refinement (:class:`GroupedViews`) and the view upscaled by a network
    learnt from the view's own smaller copies (:func:`linr.internal.learn_from_own_copies`).
    The three priors differ (a smooth network of coordinates, similar patches at one scale, the
    photo's structure across scales), so their errors partly cancel. ``grouped-views``' image
    alone when there is not exactly one view, or its operator is not a downsampling, or the
    views cannot be met."""

    name = "grouped-views-examples"
    takes = "views"
    slow_at_any_size = True
    """It learns networks from the view's copies: minutes whatever the image's size, so the cost
    said before a restore times it on small images too (:mod:`linr.forecast`)."""
    does = ("it is averaged with its grouped-views refinement and the photo "
            "upscaled by networks learnt from its own smaller copies, then made to reproduce the low-res "
            "photo exactly")

    def __init__(self, passes: int = 20, start: float = 30.0, end: float = 2.0) -> None:
        super().__init__(passes, start, end)
        self.learnt: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "learnt": self.learnt}  # its name from schedule()

    def __call__(self, image: np.ndarray, views: Sequence["Observation"]) -> np.ndarray:
        from .internal import learn_from_own_copies, learnable
        from .operators import Downsample, inner_operator
        from .projection import project_onto_views

        with progress.phase("grouped filtering"):
            refined = super().__call__(image, views)
        downsample = inner_operator(views[0].operator)  # a photo's transparent pixels are filled in its image
        if len(views) != 1 or not isinstance(downsample, Downsample) or not self.projected.get("converged", True):
            self.learnt = {"skipped": "needs one low-res view that can be met"}
            return refined
        (h, w), factor = views[0].shape, downsample.factor
        if not learnable(h, w, factor):
            self.learnt = {"skipped": f"a {h}x{w} photo is too small to learn from its own copies at x{factor}"}
            return refined
        with progress.phase("learning from the photo's own copies"):
            learnt, self.learnt = learn_from_own_copies(views[0].image, downsample)
        mean = (np.asarray(image, np.float32) + refined + learnt) / 3
        x, projected = project_onto_views(mean, views)
        self.learnt["projected"] = projected
        return x if projected.get("converged", True) else refined


class GroupedDeblur(_FallingLevels):
    """The ``grouped-deblur`` refiner (module docstring): plug-and-play deblurring (half-quadratic
    splitting; Zhang et al. 2017) from the fit's image: :attr:`passes` times filtered by
    :class:`GroupedWiener` (the image its own pilot and its own noisy photo, no prefilter,
    references every :attr:`STEP` px) at a noise level falling from :attr:`start` to :attr:`end`
    (0-255, geometric), each pass followed by the data step
    (:func:`linr.deconvolution.explain_blurred`): the image that explains the blurred photo, whose
    noise level ``sigma`` is measured on it, best near the filtered one, believed to within that
    pass's level. The filter lends each patch the detail of similar patches elsewhere; the data
    step puts back what the photo says, through the observation's own blur: by its boundary rule
    when that is circular, else with free edges (:meth:`edges_for`)."""

    name = "grouped-deblur"
    takes = "blurred"
    does = "it is filtered again by grouped filtering, each pass brought back to the blurred photo"
    START_PER_SIGMA = 1.25
    END_PER_SIGMA = 0.25
    """With :attr:`follow_noise`, the passes' levels start at no less than 1.25 times the noise
    measured on the blurred photo and end at no less than a quarter of it (0-255): chosen on a grid
    of schedules on 64-px crops of the five Set5 images blurred by Table 4's kernel at Gaussian noise
    3-25/255 and photon noise of 10-200 photons, then measured on 13 held-out crops (sixty-fifth
    session, BENCHMARKS.md, 'A noisy blurred photo's refinement follows its noise'): the same as 15
    to 2 up to 8/255 of noise; at 25/255 +0.31 dB, at 50 and 10 photons +0.70 and +0.96 (64 px);
    15 to 2 came from photos with Table 4's noise, sqrt(2)/255."""
    follow_noise = True

    def __init__(self, passes: int = 10, start: float = 15.0, end: float = 2.0, edges: str | None = None) -> None:
        """10 passes from 15 to 2 (``grouped-views``' 20 from 30; raised for a noisier photo by
        :attr:`follow_noise`, whatever ``start`` and ``end`` are given): chosen on two set9 tune crops
        (house, kodim03, 128 px, Table 4's blur), where starting from the fit at 10-15 was 0.2-0.3
        dB ahead of 30 on average, as good with 10 passes as with 15-20, and ending at 1-3 made no
        difference (BENCHMARKS.md, '#15 deblurring'). ``edges``: what the data step assumes beyond
        the photo's frame (:data:`linr.deconvolution.EDGES`); None: by the blur, :meth:`edges_for`."""
        from .deconvolution import check_edges

        super().__init__(passes, start, end)
        self.edges = None if edges is None else check_edges(edges)
        self.used_edges: str | None = None
        self.used_levels: tuple[float, float] | None = None
        self.solved: dict[str, Any] = {}

    def edges_for(self, operator: Any) -> str:
        """The data step's edges for a photo blurred by ``operator``: free for a blur with free
        edges (its own rule, whatever was asked), else those asked for, else the blur's own rule
        when it is circular (a photo known to wrap around: the exact FFT solve),
        else free (a reflecting blur is what the fit assumes of a real photo, whose scene went on
        past the frame: on crops of blurred scenes the mirrored data step made the border band
        worse and the free one did not; BENCHMARKS.md, '#15 deblurring a real photo')."""
        from .operators import inner_operator

        boundary = getattr(inner_operator(operator), "boundary", None)  # a photo's transparent pixels aside
        if boundary == "free":  # its own rule is free edges
            return "free"
        if self.edges is not None:
            return self.edges
        return "operator" if boundary == "circular" else "free"

    def describe(self) -> dict[str, Any]:
        schedule = self.schedule()
        if self.used_levels is not None:
            schedule["sigmas"] = [round(v, 3) for v in self.used_levels]
            schedule["raised_by_noise"] = self.used_levels != (self.start, self.end)
        return {**schedule, "edges": self.used_edges, "solved": self.solved}

    def __call__(self, image: np.ndarray, photo: np.ndarray, operator: Any, sigma: float,
                 extension: np.ndarray | None = None, *,
                 second_estimate: tuple[np.ndarray, float | np.ndarray, np.ndarray | None] | None = None) -> np.ndarray:
        """The refined image (float32 (H, W, C)) of the fit's ``image`` (H, W, C) for the ``photo``
        (H, W, C) blurred by ``operator`` with noise std ``sigma`` (0-1 scale). ``extension``: with
        free edges, the fit's image of the frame extended by the kernel's reach, what every data
        step draws the pixels beyond the frame to (:func:`linr.deconvolution.explain_blurred`).
        ``second_estimate``: a noisy photo of the scene, its noise std (a number, or one per entry,
        (H, W, C) or (H, W, 1)) and the (H, W) pixels of it to leave out (or None), a second estimate
        each data step weighs in (:class:`GroupedPair`)."""
        from .deconvolution import combined_solves, explain_blurred

        photo = np.asarray(photo, np.float64)
        reports: list[dict[str, Any]] = []
        self.used_edges = edges = self.edges_for(operator)
        if extension is not None and edges != "free":
            raise ValueError(f"an extension goes with free edges; this photo's data step uses {edges!r}")

        if second_estimate is not None:
            pixels, spread, unseen = second_estimate
            spread2 = np.square(spread)  # a number, or one per entry

        def explain(x: np.ndarray, level: float) -> np.ndarray:
            if second_estimate is not None:  # two estimates of the image: their precision-weighted mean
                share = np.broadcast_to(level ** 2 / (level ** 2 + spread2), x.shape).copy()
                if unseen is not None:  # pixels left out: the filtered image alone there
                    share[unseen] = 0.0
                x = x + share * (pixels - x)
                if np.ndim(spread) == 0:
                    level = level * spread / float(np.hypot(level, spread))
                else:  # a spread per entry (photon noise): the mean precision of the entries weighed in
                    seen = share > 0
                    level = float(1.0 / np.sqrt(np.mean(1.0 / level ** 2 + 1.0 / np.broadcast_to(
                        spread2, x.shape)[seen]))) if seen.any() else level
            x, done = explain_blurred(x, photo, operator, sigma, level, edges, extension)
            reports.append(done)
            self.solved = combined_solves(reports)  # over the passes so far
            return x

        levels = self.levels_for(sigma)
        self.used_levels = (float(levels[0]), float(levels[-1]))  # for describe()
        x = plug_and_play(self.filter, np.asarray(image, np.float64), levels, explain)
        assert x is not None  # the data step always has a solution
        return np.asarray(x, np.float32)

    def levels_for(self, sigma: float) -> np.ndarray:
        """The passes' noise levels (0-255, geometric) for a blurred photo with noise std ``sigma``
        (0-1 scale): from :attr:`start` to :attr:`end`, raised with :attr:`follow_noise` to
        :attr:`START_PER_SIGMA` and :attr:`END_PER_SIGMA` times the noise (a noisier photo's
        fit needs a stronger filter first, and its last pass must not believe the photo beyond
        its noise)."""
        start, end = self.start, self.end
        if self.follow_noise:
            level = float(sigma) * 255.0
            start, end = max(start, self.START_PER_SIGMA * level), max(end, self.END_PER_SIGMA * level)
        return np.geomspace(start, end, self.passes)


class GroupedPair(GroupedDeblur):
    """The ``grouped-pair`` refiner (module docstring): for a noisy photo and a blurred photo of one
    scene (a short and a long exposure), :class:`GroupedDeblur`'s passes from the fit's image, each
    data step explaining both photos: the filtered image, believed to within the pass's level, and
    the noisy photo, believed to within its noise, are two estimates of the image itself, whose
    precision-weighted mean, believed to within their combined level, is the estimate the blurred
    photo's data step (:func:`linr.deconvolution.explain_blurred`) draws the image to. The early
    passes (a high level) take the noisy photo's detail, the late ones the filter's.

    The pass's level is a schedule, not the filtered image's error: where the fit is already much
    better than the level says (a smooth scene, whose blurred photo alone restores it well), the
    noisy photo is let in too much and the result is worse than ``grouped-deblur`` of the blurred
    photo alone (BENCHMARKS.md, '#15 a short and a long exposure'). So with ``held_out`` (H, W;
    the noisy photo's pixels the fit did not train on) the result is the blend of the two,
    ``grouped-deblur`` and this refiner with the held-out pixels left out of its data steps (the
    filtered image alone there), whose weights (>= 0, summing to 1; :func:`simplex_weights`) predict the
    held-out values best (those away from the clip, :attr:`GroupedProjected.CLIP_MARGIN`; at least
    :attr:`MIN_PIXELS`, else this refiner alone). ``describe()`` then gives the weights."""

    name = "grouped-pair"
    takes = "noisy+blurred"
    does = ("it is filtered again by grouped filtering, each pass brought back to the "
            "blurred photo and the noisy one")
    BLENDED = ("grouped-deblur", "grouped-pair")
    """The images blended, in the order of ``describe()['weights']``."""
    MIN_PIXELS = 100
    """Fewest held-out values (away from the clip) a blend is chosen on; with fewer, the pair alone."""
    follow_noise = False
    """The fixed 15 to 2 (a long exposure's blurred photo beside a short one: the levels that follow
    a noisy blurred photo's noise were measured on one photo alone)."""

    def __init__(self, passes: int = 10, start: float = 15.0, end: float = 2.0, edges: str | None = None) -> None:
        super().__init__(passes, start, end, edges)
        self.choice: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "name": self.name, **self.choice}

    def __call__(self, image: np.ndarray, photo: np.ndarray, operator: Any, sigma: float,  # type: ignore[override]
                 extension: np.ndarray | None = None, *, noisy: np.ndarray, noise_sigma: float | np.ndarray,
                 held_out: np.ndarray | None = None, clipped: tuple[bool, bool] = (True, True),
                 censored: np.ndarray | None = None) -> np.ndarray:
        """The refined image (float32 (H, W, C)) of the fit's ``image`` for the blurred ``photo``
        (``operator``, noise std ``sigma``) and the ``noisy`` photo (H, W, C; noise std
        ``noise_sigma``: a number, or one per entry, (H, W, C) or (H, W, 1), for noise whose level
        follows the brightness, as photon noise's), all 0-1 scale; ``extension`` as
        :class:`GroupedDeblur`'s; ``held_out``: the noisy photo's pixels the fit did not train on
        (class docstring); ``clipped``: whether the noisy photo's noise was clipped at black and at
        white (a file of Gaussian noise is at both; photon counts only at black with read noise,
        only at white when saturated): the blend is chosen on the held-out values whose *fit* lies
        away from a clipped end (chosen by the fit, not by the values, which would select the
        low draws near white); ``censored`` (the noisy photo's shape, bool): entries that say
        nothing of their value (a count at white in a saturated photo), weighed in by no data step
        (still chosen on where the fit is away from white, as a Gaussian photo's clipped values
        are)."""
        noisy = np.asarray(noisy, np.float64)
        if noisy.shape != np.shape(photo):
            raise ValueError(f"the noisy photo is {noisy.shape}, the blurred one {np.shape(photo)}: one size is needed")
        if np.ndim(noise_sigma) == 0:
            noise_sigma = float(noise_sigma)
        else:
            noise_sigma = np.asarray(noise_sigma, np.float64)
            np.broadcast_to(noise_sigma, noisy.shape)  # a ValueError if it does not fit the photo
        if not np.all(np.asarray(noise_sigma) > 0):
            raise ValueError("noise_sigma: must be positive")
        self.choice = {}
        deblur = super().__call__
        weighed = noise_sigma if censored is None else \
            np.where(np.asarray(censored, bool), np.inf, np.broadcast_to(noise_sigma, noisy.shape))
        if held_out is None:
            return deblur(image, photo, operator, sigma, extension, second_estimate=(noisy, weighed, None))
        fit = np.asarray(image, np.float64)
        held = np.asarray(held_out, bool)
        margin = GroupedProjected.CLIP_MARGIN * np.asarray(noise_sigma)
        values = np.broadcast_to(held[..., None], fit.shape) & (fit > margin if clipped[0] else True) & \
            (fit < 1.0 - margin if clipped[1] else True)  # (H, W, C)
        # neither image below sees the held-out pixels' noise (the pair leaves them out of its data steps)
        with progress.span(0.0, 0.5):  # of the two runs, for linr.progress
            paired = deblur(image, photo, operator, sigma, extension, second_estimate=(noisy, weighed, held))
        if (count := int(values.sum())) < self.MIN_PIXELS:
            self.choice = {"not_blended_held_out_values": count}
            return paired
        with progress.span(0.5, 1.0):
            alone = deblur(image, photo, operator, sigma, extension)
        w = simplex_weights(noisy[values], [alone[values].astype(np.float64), paired[values].astype(np.float64)])
        self.choice = {"weights": {name: round(float(v), 4) for name, v in zip(self.BLENDED, w)},
                       "chosen_on_held_out_values": count}
        return (w[0] * alone + w[1] * paired).astype(np.float32)


class GroupedProjected:
    """The ``grouped-project`` refiner (module docstring): :class:`GroupedWiener` with the fit as
    its pilot, then the nearest image that the noise-free low-res ``views`` reproduce exactly
    (:func:`linr.projection.project_onto_views`). When the views cannot all be met (the
    projection does not converge) the fit's image comes back unchanged.

    With ``held_out`` (H, W; the photo's pixels the fit did not train on), the result is the blend
    of the fit's image, the filtered one and the projected one whose weights (:data:`BLENDED`;
    :func:`simplex_weights`) predict the photo's held-out values best (those away from the clip,
    :attr:`CLIP_MARGIN`; at least :attr:`MIN_PIXELS` pixels, else the projected image; used only
    when clearly better than the projected image there, :attr:`SIGNIFICANCE`), the
    filter and the projection rerun for the choice on a copy of the photo whose held-out pixels
    hold the fit's values. ``describe()`` then gives the weights, the held-out pixels used and
    how far the blend is from reproducing the views (``blend_residual``, relative; 0 when the
    projected image has all the weight). The fit's stop rule chose its iterate on the same pixels,
    which flatters the fit a little (not measured)."""

    name = "grouped-project"
    takes = "noisy+views"
    does = ("the noisy photo is filtered again with the fit as the pilot and made to "
            "reproduce the low-res view exactly, and the fit's image, the filtered one and the projected one "
            "blended by the pixels the fit held out")
    BLENDED = ("fit", "grouped", "grouped-project")
    """The images blended, in the order of ``describe()['weights']``."""
    FILTER_PASSES = 2
    """Runs of :class:`GroupedWiener` when the blend is chosen (the photo, and the copy blind to
    the held-out pixels): what a cost estimate counts."""
    MIN_PIXELS = 100
    """Fewest held-out pixels (those with a value inside the clip margin) a blend is chosen on; with
    fewer, the projected image."""
    SIGNIFICANCE = 3.0
    """The blend is used only when it predicts the held-out values better than the projected image
    alone by more than this many standard errors (its mean gain per value over the gains' standard
    error); else the projected image. The held-out estimate is biased where the filter leans on a
    pixel's own noisy value (the blind rerun does not): unguarded, woman's 128-px crop at sigma 50
    put 0.88 on ``grouped`` and lost 3.87 dB (its z: 1.5), and with 100, 200 or 400 of a crop's
    held-out pixels chosen at random single draws lost up to 0.84-1.03 dB; above 3 no draw lost
    (BENCHMARKS.md, "#15 joint fits, second look")."""
    CLIP_MARGIN = 2.0
    """The blend is chosen on the held-out values whose fit lies at least this many noise sigmas
    inside [0, 1]: a photo clipped to [0, 1] is biased there (its noise cannot go below black), the
    filtered image follows that bias and the projection (onto a view without it) does not, which
    weighed the blend toward ``grouped`` (bird, Table 5: 0.69 against 0.14 read off the clean image;
    0.33 with this margin). At 2 sigmas a clipped pixel's bias is under 0.01 sigma."""

    def __init__(self) -> None:
        self.grouped = GroupedWiener()
        self.project = Projected()
        self.choice: dict[str, Any] = {}  # what the last call's held-out pixels decided, for describe()

    def describe(self) -> dict[str, Any]:
        return {**self.grouped.describe(), "name": self.name, "projected": self.project.projected, **self.choice}

    def __call__(self, noisy: np.ndarray, pilot: np.ndarray, sigma: float,
                 views: Sequence["Observation"], held_out: np.ndarray | None = None) -> np.ndarray:
        self.choice = {}
        with progress.span(0.0, 0.5 if held_out is not None else 1.0):  # of the filter's runs, for linr.progress
            grouped = self.grouped(noisy, pilot, sigma)
        image = self.project(grouped, views)
        if not self.project.projected["converged"]:  # the views cannot all be met: grouped alone would
            return np.asarray(pilot, np.float32)  # lose what they knew (BENCHMARKS.md): keep the fit's image
        if held_out is None:
            return image
        noisy, pilot = _pilot_pair(noisy, pilot)
        held = np.asarray(held_out, bool)
        margin = self.CLIP_MARGIN * sigma
        values = held[..., None] & (pilot > margin) & (pilot < 1.0 - margin)  # (H, W, C)
        if (count := int(values.any(-1).sum())) < self.MIN_PIXELS:
            self.choice = {"not_blended_held_out_pixels": count}
            return image
        blind = noisy.copy()
        blind[held] = pilot[held]  # none of the three below sees the held-out pixels' noise
        with progress.span(0.5, 1.0):
            blind_grouped = self.grouped(blind, pilot, sigma)
        blind_projected = Projected()(blind_grouped, views)
        target = noisy[values].astype(np.float64)
        candidates = np.stack([pilot[values], blind_grouped[values], blind_projected[values]], 1).astype(np.float64)
        w = simplex_weights(target, list(candidates.T))
        weights = {name: round(float(v), 4) for name, v in zip(self.BLENDED, w)}
        gain_z = blend_gain_z(target, candidates[:, 2], candidates @ w)  # over the projected image
        if gain_z <= self.SIGNIFICANCE:  # not clearly better than the projected image: not used
            self.choice = {"not_blended_held_out_pixels": count, "blend_weights_not_used": weights, "gain_z": gain_z}
            return image
        from .projection import view_residual

        blend = (w[0] * pilot + w[1] * grouped + w[2] * image).astype(np.float32)
        self.choice = {"weights": weights, "chosen_on_held_out_pixels": count,
                       "blend_residual": float(f"{view_residual(blend, views):.3g}"), "gain_z": gain_z}
        return blend


REFINERS: dict[str, Any] = {
    "wiener": PilotWiener,
    "grouped": GroupedWiener,
    "grouped-project": GroupedProjected,
    "project": Projected,
    "biharmonic": BiharmonicBlend,
    "grouped-fill": GroupedFill,
    "grouped-views": GroupedViews,
    "grouped-views-examples": GroupedViewsExamples,
    "grouped-deblur": GroupedDeblur,
    "grouped-pair": GroupedPair,
}
"""Refiners by name (module docstring): classes whose instances (default settings) give
``describe()`` and are called by what they take: ``noisy`` as ``refiner(noisy, pilot, sigma)``,
``noisy+views`` as ``refiner(noisy, pilot, sigma, views, held_out)``, ``views`` as ``refiner(image, views)``,
``masked`` as ``refiner(photo, observed, fit, held_out)``, ``blurred`` as ``refiner(image, photo,
operator, sigma)``, ``noisy+blurred`` as ``refiner(image, photo, operator, sigma, noisy=...,
noise_sigma=...)``; ``none`` names no refinement. Each class also says in ``does`` what it does to the
fit's image (a clause; the note of a run that keeps the fit's own image, ``--save-model``), and in ``verb``
(if not "refined") what it is. Optional flags: ``slow_at_any_size`` (its cost is announced before a
restore of any size, :mod:`linr.forecast`) and ``leaves_out_a_noisy_photo`` (a ``views`` refiner
refused beside one photo with Gaussian noise, :func:`refine_input`)."""


def check_refine_spec(spec: str) -> str:
    """``spec`` if it names a refiner or ``none``, else a one-line InputError listing them."""
    if spec == NO_REFINE or spec in REFINERS:
        return spec
    raise InputError(f"unknown refinement {spec!r}: choose {', '.join([*REFINERS, NO_REFINE])}")


def refine_input(observations: Sequence[Observation], shape: tuple[int, int], spec: str = "grouped") -> Observation:
    """The observation refiner ``spec`` filters: for ``grouped``, ``wiener`` and
    ``grouped-project`` the one with Gaussian noise (squared-error data term) at the restored size
    ``shape`` with no operator (``grouped-project`` also needs a low-res view without noise), for
    ``project`` the first low-res view without noise, for ``biharmonic`` the only observation,
    masked, at that size, for ``grouped-deblur`` the only observation, blurred, at that size, for
    ``grouped-pair`` the blurred one of a noisy and a blurred photo at that size (:func:`_pair`); a
    one-line InputError when there is none or more than one (cheap: nothing is measured)."""
    from .deconvolution import deblurrable
    from .operators import Identity
    from .problem import measures_gaussian_noise

    if REFINERS[check_refine_spec(spec)].takes == "masked":
        if (photo := masked_beside_noisy(observations, shape)) is None:
            raise InputError(f"refinement {spec!r} blends an inpainting fit and needs one photo with missing pixels (a "
                             f"mask) of the restored size, alone or beside noisy photos of that size (--refine none; "
                             f"refine='none' in Python)")
        return photo
    if REFINERS[spec].takes == "noisy+blurred":
        return _pair(observations, shape, spec)[0]
    if REFINERS[spec].takes == "blurred":
        if len(observations) != 1 or not deblurrable(observations[0]) or tuple(observations[0].shape) != tuple(shape):
            raise InputError(f"refinement {spec!r} deblurs and needs one observation alone: a blurred photo "
                             f"(a blur kernel) of the restored size, compared by squared error (--refine none; "
                             f"refine='none' in Python)")
        _check_patch_side(shape)
        return observations[0]
    photos = [o for o in observations if measures_gaussian_noise(o) and isinstance(o.operator, Identity)
              and tuple(o.shape) == tuple(shape)]
    if REFINERS[spec].takes in ("noisy+views", "views"):
        from .projection import projectable_views

        channels = {o.channels for o in observations if isinstance(o.operator, Identity)}
        views = projectable_views(observations, channels.pop() if len(channels) == 1 else None)
        if not views:
            raise InputError(f"refinement {spec!r} makes the image reproduce a low-res view without noise, and "
                             "no observation is one (--lowres, of the photo's channels; refine='grouped' "
                             "filters a noisy photo alone)")
        if REFINERS[spec].takes == "views":
            if getattr(REFINERS[spec], "leaves_out_a_noisy_photo", False) and len(photos) == 1:  # grouped-project's case
                raise InputError(f"refinement {spec!r} filters toward the low-res views alone and would leave out "
                                 "the noisy photo: leave the refinement out (the default for a noisy photo with a "
                                 "low-res view, grouped-project, uses both) or choose project")
            return views[0]
    if len(photos) != 1:
        raise InputError(f"refinement needs exactly one noisy photo of the restored size ({shape[0]}x{shape[1]}) "
                         f"with Gaussian noise and no operator, and {len(photos)} of the observations are one "
                         f"(--refine none; refine='none' in Python)")
    _check_patch_side(shape)
    return photos[0]


def masked_beside_noisy(observations: Sequence[Observation], shape: tuple[int, int]) -> Observation | None:
    """The one photo with missing pixels (a mask) of the restored ``shape`` among ``observations`` where
    every other one is a noisy photo of that size (Gaussian or photon noise, no operator): what a
    ``masked`` refiner filters (beside noisy photos, the joint fit's image its pilot); None else."""
    from .operators import Identity, Mask
    from .problem import noise_level_known

    masked = [o for o in observations if isinstance(o.operator, Mask) and tuple(o.shape) == tuple(shape)]
    others = [o for o in observations if all(o is not m for m in masked)]
    if len(masked) != 1 or not all(noise_level_known(o) and isinstance(o.operator, Identity)
                                   and tuple(o.shape) == tuple(shape) for o in others):
        return None
    return masked[0]


def _pair(observations: Sequence[Observation], shape: tuple[int, int], spec: str) -> tuple[Observation, Observation]:
    """The blurred photo and the noisy photo (both of the restored ``shape``) that refiner ``spec``
    (``takes == 'noisy+blurred'``) refines by, or a one-line InputError."""
    from .deconvolution import deblurrable
    from .operators import Identity
    from .problem import noise_level_known

    sized = [o for o in observations if tuple(o.shape) == tuple(shape)]
    blurred = [o for o in sized if deblurrable(o)]
    noisy = [o for o in sized if noise_level_known(o) and isinstance(o.operator, Identity)]
    if len(sized) != 2 or len(blurred) != 1 or len(noisy) != 1:  # beside them, low-res views inform the fit only
        raise InputError(f"refinement {spec!r} needs two photos of one scene, both of the restored size: a noisy "
                         f"one (Gaussian or photon noise, no operator) and a blurred one (a blur kernel), and nothing else "
                         f"of that size (--refine none; refine='none' in Python)")
    _check_patch_side(shape)
    return blurred[0], noisy[0]


def _check_patch_side(shape: tuple[int, int]) -> None:
    """A one-line InputError when an image of ``shape`` is smaller than the filter's patches."""
    if min(shape) < MIN_REFINE_SIDE:
        raise InputError(f"refinement filters {MIN_REFINE_SIDE} x {MIN_REFINE_SIDE} patches, and this image is "
                         f"{shape[1]}x{shape[0]} (width x height; --refine none; refine='none' in Python)")


def refine_image(spec: str, image: np.ndarray, observations: Sequence[Observation],
                 held_out: Sequence[np.ndarray | None] | None = None,
                 extension: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """The refined image (float32 (H, W, C), unclipped) of a fit's ``image`` and what was done
    (the refiner's settings and the noise level measured, 0-255 scale). ``held_out``: per
    observation, its pixels (an (h, w) bool array, or None) the fit did not train on, by which a
    ``masked`` or ``noisy+views`` refiner may choose (those of the photo it refines).
    ``extension``: the fit's image of the frame grown beyond it (:attr:`linr.fit.FitResult.extended_image`,
    a blur with free edges), to which a ``blurred`` refiner's free-edged data steps draw the pixels
    beyond the frame (:class:`GroupedDeblur`); ignored by the others."""
    refiner = REFINERS[check_refine_spec(spec)]()
    photo = refine_input(observations, image.shape[:2], spec)
    held = None
    if held_out is not None:
        held = next((h for o, h in zip(observations, held_out) if o is photo), None)
    views = None
    if refiner.takes in ("views", "noisy+views"):
        from .projection import projectable_views

        views = projectable_views(observations, image.shape[2])
    if refiner.takes == "views":
        return refiner(image, views), refiner.describe()
    pixels = photo.image if photo.image.ndim == 3 else photo.image[..., None]  # (H, W, C)
    if refiner.takes == "masked":
        mask = photo.operator.mask.cpu().numpy() > 0.5  # (H, W), or (C, H, W) per channel
        observed = mask if mask.ndim == 2 else mask.transpose(1, 2, 0)
        refined = refiner(pixels, observed, image, held)
        return refined, refiner.describe()
    sigma = floored_noise_sigma(pixels)
    if refiner.takes in ("blurred", "noisy+blurred"):
        extended = extension if extension is not None and refiner.edges_for(photo.operator) == "free" else None
        pair, said = {}, {}
        if refiner.takes == "noisy+blurred":
            noisy_photo = _pair(observations, image.shape[:2], spec)[1]
            noisy = noisy_photo.image if noisy_photo.image.ndim == 3 else noisy_photo.image[..., None]
            held_noisy = None if held_out is None else \
                next((h for o, h in zip(observations, held_out) if o is noisy_photo), None)
            term = noisy_photo.fidelity
            clipped = term.clipped_ends()
            if term.variance_known:  # photon noise: its level follows the fit's brightness
                spread = np.sqrt(term.variance(np.clip(image, 0.0, 1.0)))
                said = {"noisy_noise": term.describe(),
                        "noisy_sigma": round(float(np.sqrt(np.mean(spread ** 2))) * 255, 3)}
                if clipped[1]:  # a count at white says only that at least that many came: nothing to weigh in
                    pair["censored"] = np.asarray(noisy) >= 1.0
            else:
                spread = floored_noise_sigma(noisy)
                said = {"noisy_sigma": round(spread * 255, 3)}
            pair.update(noisy=noisy, noise_sigma=spread, held_out=held_noisy, clipped=clipped)
        refined = refiner(image, pixels, photo.operator, sigma, extension=extended, **pair)
        return refined, {**refiner.describe(), "sigma": round(sigma * 255, 3), **said,
                         **({"extension": "the fit's"} if extended is not None else {})}
    refined = refiner(pixels, image, sigma) if views is None else refiner(pixels, image, sigma, views, held)
    return refined, {**refiner.describe(), "sigma": round(sigma * 255, 3)}
