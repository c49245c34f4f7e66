"""What a restoration will cost before it runs, said in one line: the fit's time and peak memory
(:func:`linr.cost.plan`; tiles through :func:`linr.tiling.plan_tiles`), then the refinement's
(:func:`refine_cost`), which runs on the whole image on the CPU wherever the fit ran.

``linr restore`` prints :func:`forecast_line`'s line before a long fit, and so does
:func:`linr.restore` when it shows progress, so that an hour's fit or a refinement too large for
the machine's memory is known before it starts, not after.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from .config import FitConfig
from .engine import format_duration
from .operators import Blur, inner_operator
from .problem import Observation, clean_shape

__all__ = ["RefineCost", "Usual", "Forecast", "refine_cost", "refine_memory", "forecast", "forecast_line",
           "available_memory"]

REFINE_BLOCK_BYTES = 128 * 2**20
"""Memory of one thread's share of the grouped filter (a block of reference patches, their
planes, groups and distances; one pass of the pilot's Wiener filter over one channel, up to its
PASS_VALUES coefficients a plane), whatever the image: since the forty-eighth session (the
filter a row of blocks at a time, the Wiener filter's passes of 2^20 values) the peak resident
memory of one :class:`linr.refine.GroupedWiener` call grew by 80 MB at 512 x 512 RGB, 137 MB at
1024 x 1024 and 145 MB at 2048 x 1024 on one thread, 245 MB at 1024 x 1024 on two (that session's
Intel Xeon, random float32 images, after a first call on a 64-px image), each with its float32
output and prefiltered pilot: rounded up to this, with :data:`REFINE_BYTES_PER_VALUE` above each
of those measurements (137, 166, 203 and 294 MB). (Before it, with the planes and sums of the
whole image in float64 and passes of 2^22 values: 289, 329 and 500 MB at 1024 x 1024, 2048 x
1024 and two threads.)"""

REFINE_BYTES_PER_VALUE = {"noisy": 12, "views": 80, "noisy+views": 80, "blurred": 60, "blurred-free": 100}
"""Peak memory of a refinement per pixel and channel, besides :data:`REFINE_BLOCK_BYTES`, by what
the refiner takes (``blurred-free``: ``grouped-deblur`` with free edges, whose data step solves for
the image extended by the kernel). The grouped filter alone (``noisy``): its float32 output and
prefiltered pilot, 8 bytes per value, and the rows of sums later blocks still add to (the peak of
its traced allocations grew by 8.6-13.7 bytes per value from 64 to 128-640 rows of a narrow image
in the forty-eighth session), rounded up. The others were measured before that session, as the
growth of the peak resident memory of one pass on random RGB images on one thread (after a first
call on a 64-px image, so that what a first call loads is not counted), when the grouped filter
took 30 bytes per value (91 per RGB pixel): at 1024 x 1024 RGB one pass of ``grouped-views``
372 MB, of ``grouped-deblur`` 308 MB (a circular blur, FFT) and 429 MB (free edges), against
about 250 MB for the filter alone then; rounded up. Not measured since: they now over-estimate by
up to about 22 bytes per value. Refiners without the grouped filter (``wiener``, a projection
alone) and those with biharmonic solves (``biharmonic``, ``grouped-fill``) are not estimated."""

DATA_STEP_MEAN = 0.4
"""``grouped-deblur``'s data steps by conjugate gradients (a reflecting blur; free edges took
about as many iterations on 96-px crops) take on average about this fraction of
the first one's time (its conjugate gradients need the most iterations at the highest level): 0.41
at the noise floor (0.5/255, the estimate's case: 129 iterations down to 17) and 0.20 at
sqrt(2)/255 (55 down to 7), on set9/house's 128-px crop with the default 10 passes from 15 to 2."""

SAMPLE_SCALE = 1.2
"""The grouped filter's time per pixel on a real image over its time on the 64 x 64 sample the
estimate times (after a first call on a 16-px image, whose set-up is not counted): on one thread
of the forty-seventh session's 2-core Intel Xeon (AMX; RGB, random pixels, the default ``grouped``) 50-58 us per pixel on
64 x 64, 58 on 128, 61 on 256, 58 on 512, 61 on 1024 x 1024: 1.0-1.22 times the sample's, 1.2
their high end (a 512-px photo: 57 us per pixel, as random pixels). (Before that session's
speed-up: 49 on 64 x 64 and 74-92 above 256, a scale of 1.7.)"""

THROUGHPUT_PIXELS = 16384
"""Pixels of the training step the fit's throughput is measured on: a 7x64 SIREN ran at 80-82
GFLOP/s on 4096 pixels, 65 on 16384 and 60 on 65536 here (one thread); a 284-px tile of the
default pilot took 0.25 s per step where 4096 pixels predicted 0.15-0.16."""

LONG_FIT_SECONDS = 30.0
"""A restoration (its fits and refinements; on another device its refinement) estimated at least
this long is announced."""

REFINE_TIMED_FROM_PIXELS = 256 * 256
"""After a short fit, the refinement is timed (:func:`refine_cost`: a sample run, up to seconds for
``grouped-deblur``'s solve at the noise floor) for the announcement only on images of at least
this many pixels; there a grouped refinement takes about half a minute or more on one thread
(SR x3 to 300 x 300 by grouped-views, the default at x3 until the forty-first session:
73 s estimated). Smaller ones are not announced for their refinement, except by a refiner whose
``slow_at_any_size`` is true (``grouped-views-examples``: it learns networks, minutes whatever
the size; a new user's trial found a 64-px x4 restore refining for 205 s unannounced)."""


@dataclass(frozen=True)
class Usual:
    """Where an automatic stop usually comes, far from its step budget: ``steps`` (fewest, most)
    ``where`` measured (e.g. 'per tile on the benchmark photos'), and what else to say of it."""

    steps: tuple[int, int] | None
    """None: not measured for these settings (only that the stop comes far sooner)."""
    where: str = ""
    also: str = ""

    def describe(self, seconds: float, budget: int) -> str:
        """'; the fit usually stops far sooner[ (after A-B steps WHERE: about T1 to T2 of
        fitting)][; ALSO]' for a fit estimated at ``seconds`` over ``budget`` steps."""
        also = f"; {self.also}" if self.also else ""
        if self.steps is None:
            return f"; the fit usually stops far sooner{also}"
        low, high = (format_duration(seconds * s / budget) for s in self.steps)
        return (f"; the fit usually stops far sooner (after {self.steps[0]}-{self.steps[1]} steps {self.where}: "
                f"about {low} to {high} of fitting){also}")


@dataclass(frozen=True)
class RefineCost:
    """The estimated cost of a refinement: seconds of its filtering on one CPU thread, the workers
    that divide it (the grouped filter's forked processes, one per thread torch is given, where it
    can fork them; else one: its threads gained little), its peak memory in bytes (None: not estimated) and the seconds of
    work timed on the threads it will run on (``learning_seconds``: ``grouped-views-examples``'
    networks, trained on torch's threads), which the filter's workers do not divide."""

    seconds: float
    workers: int
    memory_bytes: int | None
    learning_seconds: float = 0.0

    @property
    def wall_seconds(self) -> float:
        """The estimated wall time: the filtering on its workers, then the learning."""
        return self.seconds / self.workers + self.learning_seconds

    def describe(self, name: str) -> str:
        """'about T [and M GiB] to refine the fit's image (NAME on one CPU thread[; up to Nx less
        on the N cores it uses])', or with learning 'about T [and M GiB] to refine the fit's image
        (NAME: about F of filtering on one CPU thread[; ...], and about L of learning from the
        photo's own copies on T threads)'."""
        more = "" if self.workers == 1 else f"; up to {self.workers}x less on the {self.workers} cores it uses"
        memory = "" if self.memory_bytes is None else f" and {self.memory_bytes / 2**30:.2f} GiB"
        if not self.learning_seconds:
            return (f"about {format_duration(self.seconds)}{memory} to refine the fit's image ({name} on one CPU "
                    f"thread{more})")
        import torch

        threads = torch.get_num_threads()
        return (f"about {format_duration(self.seconds + self.learning_seconds)}{memory} to refine the fit's image "
                f"({name}: about {format_duration(self.seconds)} of filtering on one CPU thread{more}, and about "
                f"{format_duration(self.learning_seconds)} of learning from the photo's own copies on "
                f"{threads} thread{'' if threads == 1 else 's'})")


def _grouped_filter(refiner: Any) -> Any:
    """The grouped filter (:class:`linr.refine.GroupedWiener`) a refiner runs, or None."""
    from .refine import GroupedWiener

    inner = getattr(refiner, "grouped", None) or getattr(refiner, "filter", None) or refiner
    return inner if isinstance(inner, GroupedWiener) else None


def refine_memory(name: str, height: int, width: int, channels: int, *, operator: Any = None) -> int | None:
    """The estimated peak memory (bytes) of refiner ``name`` on a ``height`` x ``width`` image of
    ``channels`` (:data:`REFINE_BYTES_PER_VALUE`, :data:`REFINE_BLOCK_BYTES` per thread of its
    grouped filter), without running anything; None where not estimated. ``operator``: the
    blurred photo's blur (free edges solve for a larger image)."""
    from .refine import REFINERS, GroupedDeblur

    refiner = REFINERS[name]()
    grouped = _grouped_filter(refiner)
    if grouped is None:
        return None
    takes = refiner.takes
    if isinstance(refiner, GroupedDeblur):  # grouped-pair's noisy photo and blend: a few more arrays (not measured)
        takes = "blurred-free" if operator is not None and refiner.edges_for(operator) == "free" else "blurred"
    per_value = REFINE_BYTES_PER_VALUE.get(takes)
    if per_value is None:
        return None
    memory = grouped.workers(height, width) * REFINE_BLOCK_BYTES + per_value * height * width * channels
    if name == "grouped-views-examples":  # its network runs after grouped-views has let go of its arrays
        from .internal import estimate_bytes

        memory = max(memory, estimate_bytes(height, width, channels) + 2 * height * width * channels * 4)
    return memory


def refine_cost(name: str, height: int, width: int, channels: int, *, chooses: bool = True,
                operator: Any = None) -> RefineCost | None:
    """The estimated cost of refiner ``name`` on a ``height`` x ``width`` image of ``channels``:
    its time per pixel measured just now on one thread on a 64 x 64 image, times
    :data:`SAMPLE_SCALE` for the grouped filter (its cost is about linear in the pixels), the
    workers its filter will use (torch's threads, at most one per block of references) and its
    memory (:func:`refine_memory`); None for a biharmonic solve or a projection alone.
    ``chooses``: the fit holds pixels out for the refiner to choose by (a blend filters twice;
    ``grouped-pair`` then runs ``grouped-deblur`` beside itself).
    ``operator``: the blurred photo's blur, for ``grouped-deblur``'s data steps
    (:func:`deblur_data_seconds`)."""
    from .refine import REFINERS, GroupedDeblur, GroupedViews, GroupedWiener, PilotWiener

    refiner = REFINERS[name]()
    passes, data = 1, 0.0
    runs = 2 if refiner.takes == "noisy+blurred" and chooses else 1  # grouped-pair's blend: grouped-deblur beside it
    if isinstance(refiner, GroupedDeblur) and operator is not None:
        data = runs * deblur_data_seconds(refiner, operator, height, width, channels)
    if name == "grouped-fill":  # its filter passes (the biharmonic solves beside them: seconds at 512 px)
        refiner, passes = refiner.filter, refiner.passes + (refiner.finish if chooses else 0)
    elif isinstance(refiner, (GroupedDeblur, GroupedViews)):  # its filter passes (and the data steps after them; the
        refiner, passes = refiner.filter, runs * refiner.passes  # projections: about a second each at 512 px)
    elif refiner.takes in ("masked", "views"):  # the biharmonic solve is not linear in the pixels;
        return None  # a projection alone takes about a second
    if refiner.takes == "noisy+views":  # the projections after it: about a second each
        refiner, passes = refiner.grouped, refiner.FILTER_PASSES if chooses else 1
    workers, scale = 1, 1.0
    if isinstance(refiner, GroupedWiener):
        from .parallel import will_fork

        forked = will_fork(refiner.blocks(height, width))
        workers, scale = refiner.workers(height, width) if forked else 1, SAMPLE_SCALE
        refiner.threads = 1
    elif isinstance(refiner, PilotWiener):  # its colour planes side by side
        workers = refiner.workers(channels)
        refiner.threads = 1
    rng = np.random.default_rng(0)
    first = rng.random((16, 16, channels))
    refiner(first, first * 0.9, 0.1)  # a first call's set-up is not the filter's time
    sample = rng.random((64, 64, channels))
    started = time.perf_counter()
    refiner(sample, sample * 0.9, 0.1)
    seconds = passes * scale * (time.perf_counter() - started) / (64 * 64) * height * width + data
    learning = 0.0
    if name == "grouped-views-examples" and getattr(operator, "factor", None):  # the network learnt from the view's copies
        from .internal import estimate_seconds

        learning = estimate_seconds(height, width, channels, operator.factor)  # on torch's threads, as it will run
    return RefineCost(seconds, workers, refine_memory(name, height, width, channels, operator=operator), learning)


def deblur_data_seconds(deblur: Any, operator: Any, height: int, width: int, channels: int) -> float:
    """The estimated seconds of ``grouped-deblur``'s data steps for ``operator``: none for a circular
    blur (an FFT each); for conjugate gradients (a reflecting blur, free edges), its first solve (at the noise floor, the most
    iterations) timed on a random image of at least 64 px and the kernel's size (after an untimed
    first solve on a smaller one: a cold first call took 3x as long), scaled to the pixels, times
    the passes and :data:`DATA_STEP_MEAN`."""
    from .deconvolution import explain_blurred, solver_for
    from .noise import MIN_MEASURED_SIGMA

    edges = deblur.edges_for(operator)
    if solver_for(operator, edges) == "fft":
        return 0.0
    side, small = max(64, *operator.kernel.shape), max(16, *operator.kernel.shape)
    rng = np.random.default_rng(0)
    first = rng.random((small, small, channels))
    explain_blurred(first, first, operator, deblur.start / 255.0, deblur.start / 255.0, edges)  # set-up, untimed
    sample = rng.random((side, side, channels))
    started = time.perf_counter()
    explain_blurred(sample, sample, operator, MIN_MEASURED_SIGMA / 255.0, deblur.start / 255.0, edges)
    kh, kw = operator.kernel.shape
    grow = (kh - 1, kw - 1) if edges == "free" else (0, 0)  # free edges solve for the extended image
    first = (time.perf_counter() - started) / ((side + grow[0]) * (side + grow[1])) * \
        (height + grow[0]) * (width + grow[1])
    return deblur.passes * DATA_STEP_MEAN * first


def available_memory() -> int | None:
    """Bytes of memory available to a new allocation now (Linux: MemAvailable of /proc/meminfo),
    or None where that cannot be read."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


@dataclass(frozen=True)
class Forecast:
    """What a restoration is expected to cost (:func:`forecast`): the line said before it (None for a
    short one without a warning) and its estimated wall seconds, fits (all their steps: an upper bound
    under an automatic stop) and refinements, or None where they were not estimated (a short one, whose
    fit at a fast throughput is estimated under a few seconds; the fit on another device than the CPU)."""

    line: str | None
    seconds: float | None = None
    likely_seconds: float | None = None
    """The wall seconds it will likely take: ``seconds`` for a fit of a fixed step count, with its
    fit at the most steps where its automatic stop usually comes (:class:`Usual`) where that was
    measured; None otherwise (an automatic stop whose usual steps were not measured: only the bound)."""


def forecast_line(observations: Sequence[Observation], config: FitConfig, **options: Any) -> str | None:
    """:func:`forecast`'s line."""
    return forecast(observations, config, **options).line


def forecast(observations: Sequence[Observation], config: FitConfig, *, refine: str | None,
             stop: Any, grid: Any = None, stack: int = 1, frames: int = 1, members: int = 1,
             chooses: bool = True, usual: Usual | None = None, tiles_done: int = 0) -> Forecast:
    """The line said before a restoration that will take at least :data:`LONG_FIT_SECONDS` (a
    shorter one: only the memory warning, or None): the fit's step count, size and tiles (``grid``: :func:`linr.tiling.TileGrid`, None:
    whole; ``stack`` tiles fitted at once), its estimated peak memory and time (throughput
    measured on this CPU just now; on another device only the refinement is estimated), for each
    of ``frames`` fits of ``members`` networks, then the refinement's (:func:`refine_cost`;
    ``chooses``: the fit holds pixels out for it), where its stop usually comes (``usual``); and
    a warning when the refinement's memory is more than :func:`available_memory`; ``tiles_done``
    of the grid's tiles are finished already (resumed from a store: not counted). ``observations`` and ``config``
    are resolved (:func:`linr.tasks.resolve`), ``stop`` the rule the restore applies."""
    from .cost import plan
    from .engine import measure_throughput
    from .models import MODEL_FAMILIES
    from .problem import resolve_device
    from .refine import REFINERS
    from .tiling import plan_tiles

    h, w = clean_shape(observations)
    channels = observations[0].channels
    operators = [inner_operator(o.operator) for o in observations]  # what reads the image (transparent pixels aside)
    operator = next((op for op in operators if isinstance(op, Blur)), operators[0])
    warning = None if refine is None else _memory_warning(refine_memory(refine, h, w, channels, operator=operator))

    @functools.cache
    def refining() -> RefineCost | None:  # timed only where a line may be said, once
        return None if refine is None else refine_cost(refine, h, w, channels, chooses=chooses, operator=operator)

    def refine_wall() -> float:  # the refinement's estimated wall seconds (0 when not worth timing)
        if refine is None or h * w < REFINE_TIMED_FROM_PIXELS and not getattr(REFINERS[refine], "slow_at_any_size", False):
            return 0.0
        after = refining()
        return 0.0 if after is None else after.wall_seconds

    if not MODEL_FAMILIES[config.model.name].engine or resolve_device(config.device).type != "cpu":
        # the fit's throughput is measured on the CPU; the refinement runs on the CPU wherever the fit does
        after = refining()
        if after is None or after.wall_seconds < LONG_FIT_SECONDS:
            return Forecast(warning)
        return Forecast(f"after the fit{'' if frames == 1 else f' (each of {frames} frames)'}: {after.describe(refine)}; "
                        f"the fit's own time is not estimated on this device" + ("" if warning is None else f"\n{warning}"))
    watched = stop is not None and stop.output_every == 1  # a rule that looks every N steps adds 1/N renders

    def estimate(flops_per_second: float) -> Any:
        if grid is None:
            return plan(observations, config, whole_output_every_step=watched, flops_per_second=flops_per_second)
        return plan_tiles(observations, config, grid, stack=stack, whole_output_every_step=watched,
                          flops_per_second=flops_per_second, done=tiles_done)

    if estimate(5e10).seconds * frames * members < LONG_FIT_SECONDS / 3 and \
            refine_wall() * frames < LONG_FIT_SECONDS:
        return Forecast(warning)  # short fits and a short refinement
    try:
        throughput = measure_throughput(net_width=config.model.width, depth=config.model.depth,
                                        precision=config.precision, pixels=THROUGHPUT_PIXELS)
    except ValueError:
        return Forecast(warning)  # an unavailable precision: the fit itself says so in one line
    est = estimate(throughput)
    from .stopping import SurePick

    sure = isinstance(stop, SurePick)  # the SURE pick (linr.sure): the pilot fitted twice
    fits = members * (2 if sure else 1)
    seconds = est.seconds * frames * fits + refine_wall() * frames
    if seconds < LONG_FIT_SECONDS:
        return Forecast(warning, seconds, seconds)
    count = f"{config.steps} steps" if stop is None else f"up to {config.steps} steps (automatic stop)"
    where = "" if grid is None else f" in {len(grid)} tiles of {grid.size[1]}x{grid.size[0]} (steps per tile" + (
        f"; {tiles_done} finished before, resumed, not counted)" if tiles_done else ")")
    each = {(False, False): "", (True, False): f" (each of {frames} frames)",
            (False, True): f" (each of {members} ensemble members)",
            (True, True): f" (each of {frames} frames x {members} ensemble members)"}[frames > 1, members > 1]
    if sure:
        each += " (for one fit; the SURE pick fits the pilot twice)"
    after = refining()
    then = "" if after is None else f", then {after.describe(refine)}"
    note = "" if usual is None else usual.describe(est.seconds, config.steps)
    if sure:
        note += _sure_total(est.seconds, config.steps, None if usual is None else usual.steps,
                            None if after is None else after.wall_seconds)
    line = (f"{count} restoring {w}x{h}{where}: {est.describe(bound=stop is not None)}{each}{then}{note} (throughput measured on "
            "this CPU just now)")
    refined = (0.0 if after is None else after.wall_seconds) * frames  # the refinement the line says
    seconds = est.seconds * frames * fits + refined
    likely = seconds if stop is None else None if usual is None or usual.steps is None else \
        est.seconds * usual.steps[1] / config.steps * frames * fits + refined
    return Forecast(line if warning is None else f"{line}\n{warning}", seconds, likely)


def _sure_total(fit_seconds: float, budget: int, steps: tuple[int, int] | None, refine_seconds: float | None) -> str:
    """'; with the SURE pick at most about T1 to T2 in all (...)': its two fits and its refinements (two
    per scored checkpoint, :func:`linr.sure.candidates_for`, and the final one), for a stop after
    ``steps`` (fewest, most; None: the ``budget``) of a fit estimated at ``fit_seconds`` over
    ``budget`` steps, each refinement ``refine_seconds`` (None: not estimated, not counted)."""
    from .sure import candidates_for

    low, high = steps if steps is not None else (budget, budget)

    def total(stop: int) -> float:
        refinements = 2 * candidates_for(stop) + 1
        return 2 * fit_seconds * stop / budget + (refine_seconds or 0.0) * refinements

    counted = "its two fits" + (", and two refinements for each checkpoint it scores, each timed as the "
                                "restoration's (its filter's references are sparser and reuse the first's groups: "
                                "they take less)" if refine_seconds else "")
    if low == high:
        span, checkpoints = format_duration(total(high)), f"up to {candidates_for(high)}"
    else:
        span = f"{format_duration(total(low))} to {format_duration(total(high))}"
        checkpoints = f"{candidates_for(low)}-{candidates_for(high)}"
    return f"; with the SURE pick at most about {span} in all ({counted}; {checkpoints} checkpoints)"


def _memory_warning(memory: int | None) -> str | None:
    """A warning line when the refinement's estimated ``memory`` is more than is available now."""
    if memory is None:
        return None
    free = available_memory()
    if free is None or memory <= free:
        return None
    return (f"warning: the refinement after the fit needs about {memory / 2**30:.1f} GiB and "
            f"{free / 2**30:.1f} GiB of memory is available now: if it runs out, the fit's image is "
            "returned unrefined (--refine none, refine='none' in Python, skips it)")
