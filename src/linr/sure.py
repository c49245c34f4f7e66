"""Choosing the denoising pilot's returned average by Stein's unbiased risk estimate (SURE) of the
refined image.

The defaults denoise one photo by fitting a pilot network (held-out stop, a 40-iterate average)
and refining the photo with it (``grouped``, :class:`linr.refine.GroupedWiener`). The held-out
loss measures the *pilot*; on small photos the refined image peaked well before the pilot's
held-out minimum (64-px crops: 1.6 dB below its best checkpoint on average; BENCHMARKS.md, "#15
the denoising stop"). This step measures the refined image itself: for each kept checkpoint
``a`` of the pilot's average, the refined image ``x = R(y, a)`` of the photo ``y`` has, for
Gaussian noise of std ``sigma``, the mean squared error estimate

    SURE = mean((y - x)^2 - s^2 + 2 s^2 d),

``d`` each pixel's derivative of the whole chain photo -> pilot -> refined image by its photo
value (Stein 1981). The derivatives' sum is estimated by Monte Carlo (Ramani, Blu and Unser 2008):
the pilot is fitted once more to ``y + e b`` (``b`` standard normal from a stream of its own,
``e`` = :data:`PROBE_SCALE` times the measured level; same seed, same held-out pixels, its steps
bounded as under "Cost"), and ``d ~ b (R(y + e b, a') - R(y, a)) / e`` with ``a'`` that fit's average at the same
step, the groups of the refinement matched once on ``y``. (Averaging four probes on six 64-px
crops, or a control variate for the part that does not go through the pilot on one 128-px crop,
chose no better: the estimate's spread is the photo's own noise, not the probe's. ``e`` 0.2 chose
better than 0.5 on the 64-px tune crops, 0.5 better on 128-px report crops; 0.3 as 0.2 on the
three 64-px tune crops measured with both.) ``s`` is the photo's noise per pixel: Gaussian
clipped at black and white (:func:`clipped_noise_sigma`), its level such that the root mean
variance is the level the refinement measures (:func:`linr.noise.floored_noise_sigma`; clipping
lowers it). With the pilot held instead of fitted again, the estimate missed the pilot's own share
of the derivatives and chose the latest checkpoint; on the held-out pixels alone (which the pilot
never saw, so that it is exact there) it was unbiased but too noisy on 64-px crops. The checkpoint
of least SURE is returned, then refined as usual.

Cost: one more pilot fit (the steps the first ran, up to :data:`PAST_HELD_OUT` past the held-out
minimum; :data:`SCORE_PATIENCE` can end it earlier, which the default no longer does) and two refinements per candidate (every other checkpoint up to there, each
scored as the second fit reaches it, then the two beside the best; :data:`MAX_CANDIDATES`) by a
filter whose references are :data:`SCORE_STEP` px apart, the photo's and the probe's transformed
groups kept from one candidate to the next (BENCHMARKS.md, "#15 the SURE pick's cost: a sparser
scoring filter" for the times against the held-out stop alone). So the default applies it only
to photos of at most :data:`UP_TO_PIXELS` in grey and :data:`UP_TO_PIXELS_COLOUR` in colour, where
the held-out stop fell short and all this takes seconds; ``--stop sure`` asks for it at any size
restored whole.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Sequence

import numpy as np

from .clipping import clipped_variance, unclipped_level
from .fidelity import SquaredError
from .fit import fit, output_image
from .images import FLOAT_VALUES
from .noise import floored_noise_sigma
from .refine import GroupedWiener
from .stopping import HoldOut

__all__ = ["PROBE_SCALE", "MIN_SIGMA", "AVERAGED_AGREE", "AVERAGED_FROM", "AVERAGED_WEIGHT_MOST", "noisy_enough", "risk", "row_tag", "pick_tag", "probe_for", "clipped_variance", "clipped_noise_sigma", "MAX_CANDIDATES", "PAST_HELD_OUT", "first_candidates", "candidates_for", "UP_TO_PIXELS", "UP_TO_PIXELS_COLOUR", "up_to_pixels", "SCORE_STEP", "SCORE_PATIENCE", "why_not", "pick_by_sure", "pick_settings"]

PROBE_SCALE = 0.3
"""The probe's size ``e`` in units of the measured noise std."""

MAX_CANDIDATES = 40
"""At most this many checkpoints, 10 steps apart (thinned evenly beyond), are refined and scored
first; then the two beside the best of them (checkpoints are every 5 steps)."""

PAST_HELD_OUT = 10
"""Checkpoints at most this many steps after the held-out minimum are scored, and the second fit
runs no further (at a constant learning rate, its steps up to there are those of a longer fit).
On the 39 tune rows of the SURE pick (64-128 px, grey and colour) the pick went past the held-out
minimum by more than this once (0.05 dB lost there, 0.001 on average), on the 43 report and 10
unseen rows never; the second fit is 14-24% shorter (BENCHMARKS.md, "#15 the SURE pick's cost")."""

CLIPPED_NOISE = True
"""The estimate's noise is clipped at black and white (:func:`clipped_noise_sigma`), not one level
everywhere."""

PROBE_STREAM = 0x53555245
"""The probe's random stream is ``default_rng([PROBE_STREAM, seed])``: not that of ``default_rng(seed)``,
which a photo's simulated noise may be drawn from (a probe along the noise itself measured a
divergence three times too large on a crop whose noise came from seed 0)."""

UP_TO_PIXELS = 128 * 128
"""The default applies the SURE pick to one noisy grey photo of at most this many pixels (a colour
one: :data:`UP_TO_PIXELS_COLOUR`), the largest crops measured: on 64- to 128-px crops it came within 0.23 dB of the best refined checkpoint on
average (grey and colour, tune and report splits; 0.29 as scored since the forty-first session) where the held-out stop was up to 1.6 dB below,
for 2-3 times the held-out stop's time in grey and 4 in colour as first measured (at 128 px: 14 s
and 26-31 s on an Intel Xeon; BENCHMARKS.md, "#15 the denoising stop by SURE"; 1.5-2.1 times since
the pick's second fit was bounded and its scoring filter made sparser, :data:`SCORE_STEP`, and
1.35-1.91 while the second fit ended once its estimates had risen, :data:`SCORE_PATIENCE`, as it
no longer does: 1.54-1.84 with it run to its budget, grey up to 128 px and colour up to 64).
Larger photos, whose held-out stop was measured
0.11 dB below on one 256-px crop, keep it."""

UP_TO_PIXELS_COLOUR = 64 * 64
"""The default applies the SURE pick to one noisy colour photo of at most this many pixels. Against
the held-out stop with its average (the gap to the refined oracle replayed from the same fits, rows
``benchmarks/default_stop_score8p2_rgb*``, tune / report splits, sigma 25): at 64 px -0.07 / +0.79 dB
(the held-out stop 2.08 below the oracle on one report crop, the pick 0.22 at worst), at 96 px
-0.03 / +0.09, at 128 px +0.03 / +0.12, for 1.64-1.82x the held-out stop's time at 64 px (the second
fit run to its budget), 1.65-1.92x at 96 and 1.76-2.58x at 128 (ended early, as then) (over #15's "at most 2x" on five of nine 128-px crops). Above 64 x 64
colour pixels its gain did not pay for its time (BENCHMARKS.md, "#15 the SURE pick in colour")."""


def up_to_pixels(channels: int) -> int:
    """The most pixels of a photo of ``channels`` channels that the default's stop picks by SURE."""
    return UP_TO_PIXELS if channels == 1 else UP_TO_PIXELS_COLOUR

MIN_SIGMA = 14.0
"""The automatic stop uses the pick only on a photo whose measured noise (0-255 scale) is at
least this: the estimate weighs the refinement's derivatives by the noise level, and the level
measured on a textured photo reads its texture as noise too (set9 RGB 64-px tune crops: 5.7-9.8
measured at sigma 5, 10.2-13.6 at sigma 10), which made the pick come early (sigma 5: 1.22 dB below
the refined oracle on average against 0.10 for the held-out stop; sigma 10: 0.66 against 0.14).
At sigma 25 (tune crops measured 24.0-26.3) it did better; the threshold lies between the tune
crops' sigma-10 and sigma-15 levels (14.9-17.5 at sigma 15, where the pick was measured on report
crops only: better than the held-out stop, 0.23 against 0.39 dB below the oracle; there set5 bird,
measured 13.1, now keeps the held-out stop, 0.94 below). The held-out stop needs no noise level."""

REFINE = "grouped"
"""The refinement the estimate is made for (its groups held across the probes)."""

SCORE_STEP = 8
"""The reference step (pixels between reference patches, one patch's side) of the ``grouped``
filter that scores the checkpoints; the returned checkpoint is then refined by the restoration's
own filter (references every 3 px). Against scoring with that filter, on the default-stop crops
(64-128 px, grey and colour, sigma 25; the oracle the best refined checkpoint): the same gap to
the oracle on the 20 tune crops (-0.004 dB on average; step 6: -0.016), -0.024 on the 25 report
crops and +0.002 on 10 unseen ones, for 2-25% less CPU time on the restore, the most in colour (BENCHMARKS.md, "#15
the SURE pick's cost: a sparser scoring filter")."""


SCORE_PATIENCE = MAX_CANDIDATES
"""The second fit ends once this many checkpoints in a row among those scored first (10 steps apart)
have not lowered the least estimate so far (scored as the fit reaches them); the two beside the
least are scored after. At :data:`MAX_CANDIDATES` it never ends early: it runs its budget (up to
:data:`PAST_HELD_OUT` past the held-out minimum). From the forty-first session to the forty-third
it was 2: replayed on the 55 rows of the default-stop splits it changed no pick and ran the second
fit 0.73 of its budget on average, but on a 64-px colour crop of kodim03 (``linr bench``'s quick
profile) the estimates were flat for 30 steps before falling (the least at step 10, the pick with
the full second fit at step 70): it ended at step 30 and returned step 10, 1.87 dB below the full
second fit's pick (29.15 against 31.02). A wait of 4 would have passed that plateau (0.86 of the
budget on the 55 rows), but a longer one would defeat it again; with colour photos above
:data:`UP_TO_PIXELS_COLOUR` left to the held-out stop, the full second fit kept the pick within
1.54-1.84x the held-out stop's time on the crops measured (BENCHMARKS.md, "#15 the SURE pick in
colour")."""


class _ScoredAsFitted(HoldOut):
    """The second fit's rule: a :class:`~linr.stopping.HoldOut` that keeps every checkpoint, calls
    ``score(step, average)`` at each of ``candidates`` (1-based steps) as the fit reaches it, and
    ends the fit once ``wait`` of them in a row have not lowered the least score so far (its
    own ``patience``, the held-out rule's, is set too long to end it)."""

    def __init__(self, score: Any, candidates: Sequence[int], wait: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._score, self._candidates, self._wait = score, frozenset(candidates), wait
        self._least: float | None = None
        self._since = 0

    def reset(self) -> None:
        super().reset()
        self._least, self._since = None, 0

    def observe(self, step: int, output: Any, loss: Any, state: Any = None) -> str | None:
        reason = super().observe(step, output, loss, state)
        done = step + 1
        if done not in self._candidates or not self._checkpoints or self._checkpoints[-1][0] != done:
            return reason
        value = self._score(done, self._checkpoints[-1][1])
        if self._least is None or value < self._least:
            self._least, self._since = value, 0
        else:
            self._since += 1
        if self._since >= self._wait:
            return f"sure: {self._wait} checkpoints in a row scored above the least"
        return reason


def why_not(observations: Sequence[Any], refine: str | None, *, whole: bool, keep_model: bool) -> str | None:
    """Why the SURE pick cannot serve this restoration (a phrase), or None when it can: one photo
    with Gaussian noise (the squared-error data term), refined by ``grouped``, fitted whole (by one
    network, or by each member of an ensemble for itself) with no model kept."""
    if len(observations) != 1 or not observations[0].carries_noise:
        return "it chooses among the fits of one noisy photo"
    obs = observations[0]
    if type(obs.fidelity) is not SquaredError:
        return "it estimates the error under Gaussian noise (the squared-error data term)"
    if refine != REFINE:
        return (f"it scores the '{REFINE}' refinement, which this restoration does not run (its refinement: "
                f"{refine or 'none: --refine none, or a photo thinner than the refinement needs'})")
    if not whole:
        return "it needs the photo fitted whole, and this one is tiled (ask for --tile off; Python: tile='off')"
    if keep_model:
        return "it returns an average of iterates, which no kept model renders"
    return None


AVERAGED_AGREE = 1.05
"""The mean of an aligned burst takes the pick whatever its level where its measured noise is at
most this times the level its frames' measured levels give it (``sqrt(sum w_k^2 sigma_k^2)``):
texture, which the measure reads as noise, does not average out across frames as noise does, so a
mean measured much above its frames' level is textured, where the pick at low levels came early.
On 3-frame bursts of the tune crops (set5 + kate, 64 px; ``benchmarks/burst_sure_probe.py``) the
pick lost only where that ratio was 1.07-1.54 (butterfly, head: up to -1.19 dB at sigma 5) and
gained up to 2.65 dB where it was 0.99-1.05 (the frames at sigma 5-25, their means at 2.8-13.7,
under :data:`MIN_SIGMA`)."""


AVERAGED_FROM = 4.0
"""The lowest level (0-255 scale) the frames' levels may give a burst's mean for
:data:`AVERAGED_AGREE` to apply: at light noise the pick came early on single photos (sigma 5:
1.22 dB below the refined oracle, :data:`MIN_SIGMA`), and the agreement test tells texture from
noise less well where the noise is faint."""
AVERAGED_WEIGHT_MOST = 0.5
"""The largest sum of the squared weights of a burst's mean for :data:`AVERAGED_AGREE` to apply
(two equal frames: 0.5): where one frame takes nearly all the weight the mean is that frame, its
texture as much as its noise, and the test cannot tell them apart."""


def noisy_enough(observations: Sequence[Any], averaged_level: float | None = None) -> bool:
    """Whether the photo's measured noise is at least :data:`MIN_SIGMA` (its first observation's),
    or, for the mean of an aligned burst whose frames' measured levels give it ``averaged_level``
    (0-1 scale, at least :data:`AVERAGED_FROM`; None: not such a mean, :func:`linr.tasks._averaged_level`),
    at most :data:`AVERAGED_AGREE` times that level."""
    measured = floored_noise_sigma(np.asarray(observations[0].image, np.float32))
    return measured * 255.0 >= MIN_SIGMA or (averaged_level is not None and averaged_level * 255.0 >= AVERAGED_FROM
                                             and measured <= AVERAGED_AGREE * averaged_level)


def _thinned(steps: list[int], most: int) -> list[int]:
    if len(steps) <= most:
        return steps
    keep = np.unique(np.round(np.linspace(0, len(steps) - 1, most)).astype(int))
    return [steps[i] for i in keep]


def first_candidates(steps: list[int]) -> list[int]:
    """The checkpoints (sorted steps) scored first: every other one (10 steps apart), thinned
    evenly to :data:`MAX_CANDIDATES`; then the two beside the best of them are scored."""
    return _thinned(steps[1::2] or steps, MAX_CANDIDATES)


def candidates_for(steps_run: int, every: int = 5) -> int:
    """At most how many checkpoints the pick scores after a fit of ``steps_run`` steps that kept
    one every ``every`` steps (:func:`first_candidates`, then the two beside the best)."""
    steps = list(range(every, steps_run + 1, every))
    return min(len(steps), len(first_candidates(steps)) + 2)


def risk(photo: np.ndarray, estimate: np.ndarray, moved: np.ndarray, probe: np.ndarray, scale: float,
         sigma: float | np.ndarray) -> float:
    """Stein's unbiased estimate of ``mean((estimate - clean)^2)`` for a ``photo`` with Gaussian
    noise of std ``sigma`` (a number, or one per pixel: the same shape; for noise clipped at black
    and white, whose variance :func:`clipped_variance` gives, an approximation, not unbiased): ``mean((photo -
    estimate)^2 - sigma^2 + 2 sigma^2 d)``, ``d`` each pixel's derivative of the estimate by its
    photo value, by one Monte-Carlo probe (``probe * (moved - estimate) / scale``, ``moved`` the
    estimate made from ``photo + scale * probe``; ``probe`` standard normal, independent of the
    noise). Arrays of one shape; float64 sums."""
    photo, estimate, moved, probe = (np.asarray(a, np.float64) for a in (photo, estimate, moved, probe))
    variance = np.broadcast_to(np.asarray(sigma, np.float64) ** 2, photo.shape)
    derivative = probe * (moved - estimate) / scale
    return float(np.mean((photo - estimate) ** 2 - variance + 2.0 * variance * derivative))


def clipped_noise_sigma(value: np.ndarray, measured: float) -> np.ndarray:
    """Per pixel, the std of clipped noise (:func:`linr.clipping.clipped_variance`) whose root mean
    variance over ``value`` (the clean image's estimate) is ``measured`` (the level measured on the
    photo, which clipping lowers): the unclipped level of :func:`linr.clipping.unclipped_level`.
    Without values near black or white it is ``measured`` everywhere."""
    return np.sqrt(clipped_variance(value, unclipped_level(value, measured)))


def pick_tag() -> str:
    """What benchmark row keys call the SURE pick with this module's settings: ``sureE`` (``E``
    :data:`PROBE_SCALE`, ``c`` for :data:`CLIPPED_NOISE`, ``rS`` for a :data:`SCORE_STEP` ``S`` other
    than the refinement's, ``pN`` for a :data:`SCORE_PATIENCE` ``N`` that can end the second fit)."""
    scored = "" if SCORE_STEP == GroupedWiener().step else f"r{SCORE_STEP}"
    ended = f"p{SCORE_PATIENCE}" if SCORE_PATIENCE < MAX_CANDIDATES else ""
    return f"sure{PROBE_SCALE:g}{'c' if CLIPPED_NOISE else ''}{scored}{ended}"


def row_tag(pixels: int, sigma: float, channels: int) -> str:
    """What benchmark row keys call the default's stop of one photo of ``pixels`` pixels of
    ``channels`` channels with noise of std ``sigma`` (0-255; the benchmark's, standing for the
    measured one): :func:`pick_tag` where the automatic stop is the SURE pick, else '' (so that
    rows of another default are not taken for this one's)."""
    if pixels > up_to_pixels(channels) or sigma < MIN_SIGMA:
        return ""
    return pick_tag()


def pick_settings() -> dict[str, Any]:
    """This module's settings that change what the pick returns (benchmark keys name them, so that
    a fit made under other ones is not taken for today's)."""
    return {"probe_scale": PROBE_SCALE, "clipped_noise": CLIPPED_NOISE, "score_step": SCORE_STEP,
            "score_patience": SCORE_PATIENCE, "past_held_out": PAST_HELD_OUT, "max_candidates": MAX_CANDIDATES}


def probe_for(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """The Monte-Carlo probe of a fit of ``seed``: standard normal, from a stream of its own
    (:data:`PROBE_STREAM`), since it must be independent of the photo's noise, and noise
    simulated with NumPy's generator of a small seed (as the benchmarks draw it) is that seed's stream."""
    return np.random.default_rng([PROBE_STREAM, seed]).standard_normal(shape)


def pick_by_sure(result: Any, observations: Sequence[Any], config: Any, rule: Any) -> None:
    """Replace ``result.image`` (the pilot's returned average) by the kept checkpoint of least SURE
    of its refined image, in place (``result.stop_step`` that checkpoint's step), and record the
    choice in ``result.settings['stop']['sure']`` and its time in ``result.timings`` (``sure_s``,
    of which ``sure_fit_s`` the second fit with the scoring done as it ran). ``rule``: the
    fit's :class:`linr.stopping.HoldOut`, made with ``keep_checkpoints``; ``observations`` and
    ``config`` those of the fit. A fit that was fitted again at another rate (``settings['retry']``),
    whose rule returned a single iterate (the average guard), that kept no checkpoint or whose
    photo's measured noise is so large that the probed photo leaves the values a photo may hold
    (:data:`linr.images.FLOAT_VALUES`: a dithered black-and-white photo) keeps its image (the
    record and the stop line say why)."""
    started = time.perf_counter()
    record: dict[str, Any] = {"probe_scale": PROBE_SCALE,
                              "held_out_step": int(result.stop_step)}
    stop = result.settings.setdefault("stop", {})
    kept = {step: average for step, average in rule.checkpoints() if step <= result.steps_run}
    if result.settings.get("retry"):
        record["skipped"] = "the pilot was fitted again at another rate"
    elif stop.get("returned") == "raw":
        record["skipped"] = "the rule returned a single iterate (its average was clearly worse on the held-out pixels)"
    elif not kept:
        record["skipped"] = "no checkpoint was kept"
    else:
        photo = observations[0]
        pixels = photo.image if photo.image.ndim == 3 else photo.image[..., None]
        y = np.asarray(pixels, np.float64)
        sigma = floored_noise_sigma(np.asarray(pixels, np.float32))  # the level the refinement uses
        scale = PROBE_SCALE * sigma
        probe = probe_for(y.shape, config.seed)
        moved_photo = (y + scale * probe).astype(np.float32)
        if moved_photo.min() < FLOAT_VALUES[0] or moved_photo.max() > FLOAT_VALUES[1]:
            # noise measured near the whole range (a dithered black-and-white photo): the probed
            # photo leaves the values a photo may hold, and a score at that level would say nothing
            record["skipped"] = (f"the noise measured on the photo (sigma {sigma * 255:.0f} of 255) is too large "
                                 "for its probe")
    if "skipped" in record:
        stop["sure"] = record
        result.stop_reason = f"{result.stop_reason}; no SURE pick: {record['skipped']}"
        return
    moved = [dataclasses.replace(photo, image=moved_photo if photo.image.ndim == 3 else moved_photo[..., 0])]
    # checkpoints past the held-out minimum by more than PAST_HELD_OUT are not scored, so the
    # second fit runs no further (at a constant rate its steps are those of a longer fit)
    last = result.stop_step + PAST_HELD_OUT
    second_steps = min(result.steps_run, last) if config.schedule == "constant" else result.steps_run

    # the noise per pixel: clipped at black and white, its level such that its mean is the measured one
    spread = clipped_noise_sigma(result.image if result.image.ndim == 3 else result.image[..., None], sigma) \
        if CLIPPED_NOISE else sigma
    # the groups matched on the photo, held for every probe; references every SCORE_STEP pixels
    refiner = GroupedWiener(step=SCORE_STEP, keep_groups=True)
    scores: dict[int, float] = {}

    def score(step: int, moved_average: Any) -> float:
        average = output_image(kept[step])
        refined = np.asarray(refiner(pixels, average, sigma), np.float64)
        moved_refined = np.asarray(refiner(y + scale * probe, output_image(moved_average), sigma), np.float64)
        scores[step] = risk(y, refined, moved_refined, probe, scale, spread)
        return scores[step]

    # every other checkpoint first (10 steps apart), each scored as the second fit reaches it, the
    # fit ended once SCORE_PATIENCE of them in a row have not lowered the least; then the two
    # checkpoints beside the least
    steps = [s for s in sorted(kept) if s <= min(last, second_steps)] or sorted(kept)
    moved_rule = _ScoredAsFitted(score, first_candidates(steps), SCORE_PATIENCE, fraction=rule.fraction,
                                 patience=1 << 30, seed=rule.seed, check_every=rule.tracker.check_every,
                                 average=rule.average.spec, keep_checkpoints=True)
    fit_started = time.perf_counter()
    second = fit(moved, dataclasses.replace(config, steps=second_steps, retry_lr=None), stop=moved_rule)  # its progress shown as the first's
    result.timings["sure_fit_s"] = time.perf_counter() - fit_started
    moved_kept = dict(moved_rule.checkpoints())
    steps = [s for s in steps if s in moved_kept]  # those the second fit reached (all it scored among them)
    best = steps.index(min(scores, key=lambda s: (scores[s], s)))
    for step in steps[max(best - 1, 0):best + 2]:
        if step not in scores:
            score(step, moved_kept[step])
    chosen = min(scores, key=lambda s: (scores[s], s))
    result.image = output_image(kept[chosen])
    result.stop_step = chosen
    result.model = None  # an average of iterates: no model renders it
    # the estimates rank the checkpoints; as error estimates they are biased where the noise is
    # clipped or its level misread (they may be negative), so they are kept under a name that says so
    record.update(step=chosen, candidates=len(scores), score_step=SCORE_STEP, second_fit_budget=int(second_steps),
                  second_fit_steps=int(second.steps_run), sigma=round(sigma * 255, 3),
                  ranking_estimates={str(step): float(f"{value:.6g}") for step, value in sorted(scores.items())})
    stop["sure"] = record
    result.stop_reason = (f"{result.stop_reason}; the average's step chosen by SURE of the refined image "
                          f"({len(scores)} checkpoints scored)")
    seconds = time.perf_counter() - started
    result.timings["sure_s"] = seconds
    result.timings["total_s"] = result.timings.get("total_s", 0.0) + seconds

