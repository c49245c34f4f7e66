"""Stop rules: each piece against an independent reference, then short real fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import linr
from linr.errors import InputError
from linr.operators import Compose, Identity
from linr.simulate import add_gaussian_noise
from linr.stopping import (
    AUTO_NOISY,
    Discrepancy,
    FirstToFire,
    FixedSteps,
    HoldOut,
    MinTracker,
    Oracle,
    OutputVariance,
    Plateau,
    StopRule,
    estimate_noise_sigma,
    parse_stop,
    window_variance,
)
from linr.tasks import resolve_stop


def _smooth(size: int = 96) -> np.ndarray:
    t = np.linspace(0, 1, size)
    base = 0.5 + 0.3 * np.sin(3 * t)[:, None] * np.cos(2 * t)[None, :]
    return np.stack([base, base * 0.8 + 0.1, 1 - base], axis=-1)


@pytest.mark.parametrize("sigma", [5.0, 15.0, 25.0])
def test_noise_sigma_estimate_recovers_known_noise(sigma):
    noisy = add_gaussian_noise(_smooth(), sigma, seed=3, clip=False)
    assert estimate_noise_sigma(noisy) * 255 == pytest.approx(sigma, rel=0.1)
    assert estimate_noise_sigma(_smooth()) * 255 < 0.5  # clean and smooth: next to no noise


def _noise_sigma_whole(image):
    """The estimator over whole float64 images: every detail coefficient, then every other one."""
    image = np.asarray(image, dtype=np.float64)
    image = image[..., None] if image.ndim == 2 else image
    g = np.array([-0.48296291314469025, 0.836516303737469, -0.22414386804185735, -0.12940952255092145])[::-1]
    sigmas = []
    for ch in np.moveaxis(image, -1, 0):
        rows = sum(g[k] * ch[k : ch.shape[0] - 3 + k] for k in range(4))[::2]
        dd = sum(g[k] * rows[:, k : rows.shape[1] - 3 + k] for k in range(4))[:, ::2]
        sigmas.append(np.median(np.abs(dd)) / 0.6745)
    return float(np.mean(sigmas))


@pytest.mark.parametrize("shape", [(4, 4), (5, 7, 3), (9, 4, 2), (97, 130), (300, 257, 3)])
def test_noise_sigma_in_bands_equals_the_whole_image_estimate(shape, monkeypatch):
    import linr.noise

    x = np.random.default_rng(1).random(shape).astype(np.float32)
    expected = _noise_sigma_whole(x)
    assert estimate_noise_sigma(x) == expected
    assert estimate_noise_sigma(x.astype(np.float64)) == expected
    monkeypatch.setattr(linr.noise, "ROWS_AT_ONCE_SAMPLES", 1)  # a band of one kept row
    assert estimate_noise_sigma(x) == expected


def test_noise_sigma_of_a_large_image_stays_in_bounded_memory(monkeypatch):
    import tracemalloc

    import linr.noise

    monkeypatch.setattr(linr.noise, "ROWS_AT_ONCE_SAMPLES", 2**16)  # bands of 32 kept rows here
    x = np.random.default_rng(2).random((1024, 1024, 3), dtype=np.float32)  # 12 MiB
    tracemalloc.start()
    try:
        estimate_noise_sigma(x)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # a quarter of one channel's coefficients in float64 (2 MiB), the median's copy of them and a
    # band's sums (5.8 MiB measured); the whole image's float64 copy and its full-size detail
    # rows alone were 24 + 8 MiB
    assert peak < 8 * 2**20


def test_window_variance_matches_numpy():
    rng = np.random.default_rng(0)
    xs = rng.normal(size=(7, 1, 3, 5, 4))
    expected = np.var(xs, axis=0).mean()  # population variance over the window, mean over pixels
    got = window_variance([torch.from_numpy(x) for x in xs])
    assert float(got) == pytest.approx(expected, rel=1e-12)


def _reference_tracker(values, patience, check_every, start=0):
    """Brute force: (0-based fire step or None, 0-based step of the strict minimum so far)."""
    best = None
    for t, v in enumerate(values):
        if t < start:
            continue
        if best is None or v < values[best]:
            best = t
        if (t + 1) % check_every == 0 and t - best >= patience:
            return t, best
    return None, best


@pytest.mark.parametrize("patience,check_every", [(1, 1), (3, 1), (4, 5), (10, 3), (50, 5)])
def test_min_tracker_matches_brute_force(patience, check_every):
    values = list(np.random.default_rng(patience).normal(size=60).cumsum())
    tracker = MinTracker(patience=patience, check_every=check_every, start=2)
    fired = None
    for t, v in enumerate(values):
        if tracker.update(t, torch.tensor(v), torch.full((2,), float(t))):
            fired = t
            break
    want_fire, want_best = _reference_tracker(values, patience, check_every, start=2)
    assert fired == want_fire
    assert tracker.best_step == want_best and float(tracker.iterate[0]) == want_best


def test_output_variance_returns_iterate_at_the_dip():
    # Outputs jitter with an amplitude that falls until step 30, then rises (noise being fitted).
    gen = torch.Generator().manual_seed(0)
    rule = OutputVariance(window=4, patience=10, check_every=1)
    outputs = []
    for step in range(80):
        amp = 1.0 + abs(step - 30)
        outputs.append(amp * torch.randn(1, 3, 8, 8, generator=gen))
        reason = rule.observe(step, outputs[-1], torch.tensor(0.0))
        if reason is not None:
            break
    assert reason is not None and "variance" in reason
    iterate, best = rule.best()
    assert 28 <= best <= 35 and step == best - 1 + 10  # fired exactly `patience` steps after its minimum
    assert torch.equal(iterate, outputs[best - 1])


def _obs(image, op=None):
    return linr.Observation(image, op or Identity(), None, "noisy")


def test_holdout_leaves_pixels_out_of_the_data_term():
    rng = np.random.default_rng(1)
    y = rng.random((40, 40, 3)).astype(np.float32)
    keep = rng.random((40, 40)) < 0.5
    masked = linr.masked(y * keep[..., None], keep)
    rule = HoldOut(fraction=0.1, seed=5)
    rule.reset()
    ho_noisy, ho_masked = rule.prepare([_obs(y), masked])
    for obs, observed in ((ho_noisy, np.ones((40, 40), bool)), (ho_masked, keep)):
        assert isinstance(obs.operator, Compose)
        kept = obs.operator.project(torch.ones(1, 1, 40, 40))[0, 0].numpy() > 0
        held = observed & ~kept
        assert not (kept & ~observed).any()  # never adds pixels the observation lacks
        assert 0.06 < held.sum() / observed.sum() < 0.14
        x = torch.rand(1, 3, 40, 40)
        assert torch.all(obs.operator(x)[..., torch.from_numpy(held)] == 0)
    # The held-out loss is the weighted MSE on exactly those pixels.
    out = torch.rand(1, 3, 40, 40) * 2 - 1
    held_noisy = ~(ho_noisy.operator.project(torch.ones(1, 1, 40, 40))[0, 0] > 0)
    held_masked = keep & ~(ho_masked.operator.project(torch.ones(1, 1, 40, 40))[0, 0].numpy() > 0)
    yt = torch.from_numpy(y).permute(2, 0, 1)[None] * 2 - 1
    ym = torch.from_numpy(y * keep[..., None]).permute(2, 0, 1)[None] * 2 - 1
    want = ((out - yt)[..., held_noisy] ** 2).mean() + ((out - ym)[..., torch.from_numpy(held_masked)] ** 2).mean()
    assert float(rule.holdout_loss(out)) == pytest.approx(float(want), rel=1e-5)


def test_discrepancy_threshold_and_first_crossing():
    y = add_gaussian_noise(_smooth(64), 20, seed=0, clip=False)
    rule = Discrepancy(tau=1.1, sigma=20.0, check_every=4)
    rule.reset()
    rule.prepare([_obs(y)])
    assert rule.threshold == pytest.approx(1.1 * (2 * 20 / 255) ** 2)
    losses = np.geomspace(0.5, 1e-4, 60)
    cross = int(np.argmax(losses <= rule.threshold))
    outs = [torch.full((1, 1, 2, 2), float(t)) for t in range(60)]
    for t in range(60):
        if rule.observe(t, outs[t], torch.tensor(losses[t], dtype=torch.float32)):
            break
    assert t == cross + (-(cross + 1)) % 4  # the next check after the crossing
    iterate, step = rule.best()
    assert step == cross + 1 and float(iterate[0, 0, 0, 0]) == cross
    # Estimated sigma; a noise-free observation contributes nothing.
    auto = Discrepancy()
    auto.reset()
    auto.prepare([_obs(y), linr.lowres(_smooth(16), 4)])
    assert auto.sigmas[0] == pytest.approx(20, rel=0.1) and len(auto.sigmas) == 1
    none = Discrepancy()
    none.reset()
    none.prepare([linr.lowres(_smooth(16), 4)])
    assert none.observe(4, outs[0], torch.tensor(0.0)) is None and none.best() == (None, 0)


def test_plateau_fires_once_the_loss_flattens():
    rule = Plateau(rel_tol=1e-2, patience=10, check_every=1)
    losses = [1.0 / (1 + t) if t < 30 else 1.0 / 31 for t in range(100)]
    fired = next(t for t in range(100) if rule.observe(t, torch.zeros(1), torch.tensor(losses[t])))
    assert 30 <= fired <= 42


class _Never(StopRule):
    name = "never"


def test_first_to_fire_uses_the_rule_that_fired():
    rule = FirstToFire([_Never(), FixedSteps(7), OutputVariance(window=2, patience=1000)])
    rule.reset()
    for t in range(20):
        if rule.observe(t, torch.full((1,), float(t)), torch.tensor(1.0)):
            break
    assert t == 6 and rule.fired.name == "fixed"
    assert rule.best() == (None, 0)  # fixed returns the last iterate
    assert rule.describe()["fired"] == "fixed"


def test_oracle_keeps_the_closest_iterate():
    ref = np.full((4, 4, 3), 0.5, np.float32)
    rule = Oracle(ref)
    for t, v in enumerate([0.9, 0.3, 0.05, 0.4]):
        rule.observe(t, torch.full((1, 3, 4, 4), v), torch.tensor(0.0))
    iterate, step = rule.best()
    assert step == 3 and float(iterate.mean()) == pytest.approx(0.05)


def _feed_holdout_with_average(iterates: np.ndarray, y: np.ndarray, window: int, at: float = 1.0):
    """Feed (T, 1, C, H, W) iterates on the [-1, 1] scale to a hold-out rule with a window average
    of ``window``; returns the rule and the NumPy reference: (loss, 0-based step) of the first
    strict minimum of the raw and of the averaged held-out loss, and every average."""
    rule = HoldOut(fraction=0.2, patience=10_000, seed=3, average=f"window{window}", at=at)
    rule.reset()
    (prepared,) = rule.prepare([_obs(y)])
    held = ~(prepared.operator.project(torch.ones(1, 1, *y.shape[:2]))[0, 0].numpy() > 0)
    target = (y * 2 - 1).transpose(2, 0, 1).astype(np.float64)
    averages = np.array([iterates[max(0, t - window + 1) : t + 1].mean(axis=0) for t in range(len(iterates))])

    def first_minimum(images):
        losses = [float(((img[0] - target)[:, held] ** 2).mean()) for img in images]
        best = min(range(len(losses)), key=lambda t: (losses[t], t))
        return losses[best], best

    for step, x in enumerate(iterates):
        assert rule.observe(step, torch.from_numpy(x).float(), torch.zeros(())) is None
    return rule, first_minimum(iterates), first_minimum(averages), averages


@pytest.mark.parametrize("scatter", [True, False], ids=["iterates-scatter", "iterates-walk"])
def test_holdout_returns_the_average_at_its_held_out_minimum(scatter):
    rng = np.random.default_rng(2)
    clean = rng.random((12, 12, 3))
    y = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    target = (clean * 2 - 1).transpose(2, 0, 1)[None]
    if scatter:  # iterates scattered around the clean image: their average is closer than any one
        iterates = target[None] + rng.normal(0, 0.3, (30, 1, 3, 12, 12))
    else:  # iterates walking straight to the clean image: the average trails the last one
        start = rng.normal(0, 0.5, (1, 3, 12, 12))
        iterates = np.array([target + (1 - t / 29) * start for t in range(30)])
    rule, (raw_loss, _), (avg_loss, avg_step), averages = _feed_holdout_with_average(iterates, y, 4)
    assert (avg_loss < raw_loss) == scatter  # both cases occur
    image, step = rule.best()
    assert rule.returned == "average" and step == avg_step + 1
    np.testing.assert_allclose(image.double().numpy(), averages[avg_step], atol=1e-5)
    assert rule.describe()["average"] == "window4" and rule.describe()["returned"] == "average"


@pytest.mark.parametrize("at", [0.9, 0.6, 0.3])
@pytest.mark.parametrize("scatter", [True, False], ids=["iterates-scatter", "iterates-walk"])
def test_holdout_at_a_fraction_returns_the_average_of_the_checkpoint_nearest_that_step(scatter, at):
    """``at`` below 1: the average of the 5-step checkpoint (1-based steps 5, 10, ...) nearest
    ``at`` times the 1-based step of the average's held-out minimum (the earlier on a tie, never
    after the minimum), its held-out loss as the returned loss; the minimum itself is found as
    without ``at``."""
    rng = np.random.default_rng(4)
    clean = rng.random((12, 12, 3))
    y = np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
    target = (clean * 2 - 1).transpose(2, 0, 1)[None]
    if scatter:
        iterates = target[None] + rng.normal(0, 0.3, (60, 1, 3, 12, 12))
    else:  # the average's minimum is at the last step
        start = rng.normal(0, 0.5, (1, 3, 12, 12))
        iterates = np.array([target + (1 - t / 59) * start for t in range(60)])
    rule, _, (_, avg_step), averages = _feed_holdout_with_average(iterates, y, 4, at=at)
    minimum = avg_step + 1
    checkpoints = [c for c in range(5, minimum + 1, 5)]
    image, step = rule.best()
    assert rule.returned == "average" and rule.describe()["at"] == at
    if not checkpoints:  # no checkpoint up to the minimum: the minimum's own average
        assert step == minimum
    else:
        assert step == min(checkpoints, key=lambda c: (abs(c - at * minimum), c))
    np.testing.assert_allclose(image.double().numpy(), averages[step - 1], atol=1e-5)
    assert rule.returned_loss() == pytest.approx(float(rule.holdout_loss(image)), rel=1e-6)
    if not scatter:
        assert minimum == 60 and step == {0.9: 55, 0.6: 35, 0.3: 20}[at]


def test_parse_stop():
    r = parse_stop("variance:12:30,discrepancy:1.2,holdout:0.1")
    assert isinstance(r, FirstToFire)
    assert [x.describe() for x in r.rules][0] == {"name": "variance", "window": 12, "patience": 30}
    assert r.rules[1].tau == 1.2 and r.rules[2].fraction == 0.1
    assert isinstance(parse_stop("plateau"), Plateau) and parse_stop("fixed:9").steps == 9
    with_average = parse_stop("holdout:0.05:40:ema0.9")
    assert with_average.average.decay == 0.9 and with_average.tracker.patience == 40
    assert parse_stop("holdout:0.05:40:none").average is None and parse_stop("holdout").average is None
    assert parse_stop("holdout:0.05:40:window40:0.9").at == 0.9 and parse_stop("holdout").at == 1.0
    for bad, msg in [("varience", "unknown stop rule"), ("variance:1:2:3", "too many"),
                     ("discrepancy:x", "bad parameter"), ("holdout:0.9", "fraction"), ("variance:1", "window"),
                     ("holdout:0.05:40:median3", "iterate average"), ("holdout:0.05:40:window1", "window"),
                     ("holdout:0.05:40:window5:1:2", "too many"), ("holdout:0.05:40:none:0.9", "needs an average"),
                     ("holdout:0.05:40:window5:0", r"\(0, 1\]"), ("holdout:0.05:40:window5:1.5", r"\(0, 1\]"),
                     # the values as --help names them, and the spec they came from (a new user's trial)
                     ("plateau:-1:3", r"^stop rule 'plateau:-1:3': REL_TOL must be at least 0 and PATIENCE at least 1 "
                                      r"step, got -1 and 3$"),
                     ("holdout:0.05:0", r"^stop rule 'holdout:0.05:0': patience must be at least 1, got 0$")]:
        with pytest.raises(ValueError, match=msg):
            parse_stop(bad)


def test_default_policy():
    y = np.zeros((8, 8, 3), np.float32)
    auto = type(parse_stop(AUTO_NOISY))
    assert isinstance(resolve_stop([linr.noisy(y)]), auto)  # default: automatic
    # a step count alone is the budget of the automatic stop (it once turned it off silently)
    assert isinstance(resolve_stop([linr.noisy(y)], steps=100), auto)
    assert resolve_stop([linr.noisy(y)], steps=100, stop="fixed") is None  # exactly 100 steps
    assert isinstance(resolve_stop([linr.noisy(y)], steps=100, stop="auto"), auto)
    assert isinstance(resolve_stop([linr.noisy(y)], stop="variance,discrepancy"), FirstToFire)
    assert resolve_stop([linr.noisy(y)], preset="paper") is None  # the paper keeps its fixed stop
    assert isinstance(resolve_stop([linr.noisy(y), linr.lowres(y[:2, :2], 4)]), HoldOut)  # joint with noise
    assert resolve_stop([linr.lowres(y[:2, :2], 4)]) is None  # noise-free: the preset's steps
    assert isinstance(resolve_stop([linr.noisy(y)], stop="holdout"), HoldOut)
    with pytest.raises(InputError, match="unknown stop rule"):
        resolve_stop([linr.noisy(y)], stop="nope")


def test_pick_looks_every_few_steps_and_returns_the_held_out_best_with_its_model():
    from linr.stopping import HeldOutPick

    rule = parse_stop("pick:0.1:5")
    assert isinstance(rule, HeldOutPick) and rule.output_every == 5 and rule.fraction == 0.1
    assert parse_stop("pick").output_every == 25
    assert parse_stop("pick:0.1:10,fixed:30").output_every == 1  # several rules: the steps any of them needs
    with pytest.raises(ValueError, match="every"):
        parse_stop("pick:0.1:0")
    clean = _smooth(32).astype(np.float32)
    mask = np.random.default_rng(0).random((32, 32)) < 0.3
    seen: list[tuple[int, bool]] = []

    class Watching(HeldOutPick):
        def observe(self, step, output, loss, state=None):
            seen.append((step, output is not None))
            return super().observe(step, output, loss, state)

    watching = Watching(fraction=0.1, every=5)
    result = linr.restore(linr.masked(clean * mask[..., None], mask), steps=20, stop=watching, refine="none",
                          model=linr.ModelConfig(width=16, depth=3), seed=0, progress=False)
    assert [s for s, has in seen if has] == [4, 9, 14, 19]  # the whole image only every 5 steps
    engine = result.settings["engine_used"]
    assert engine["rendered_pixels"] == engine["trained_pixels"] < 32 * 32  # no whole render per step
    assert result.steps_run == 20 and result.stop_step in (5, 10, 15, 20)
    assert result.stop_step == watching.tracker.best_step + 1
    np.testing.assert_allclose(result.render(), result.image, atol=1e-5)  # its model renders the pick
    # the pick is the held-out minimum among the looked-at iterates: replay them
    losses = []
    replay = HeldOutPick(fraction=0.1, every=5)

    class Recording(HeldOutPick):
        def observe(self, step, output, loss, state=None):
            if output is not None and (step + 1) % 5 == 0:
                losses.append(float(replay.holdout_loss(output)))
            return super().observe(step, output, loss, state)

    recording = Recording(fraction=0.1, every=5)
    replay.reset()
    replay.prepare([linr.masked(clean * mask[..., None], mask)])
    linr.restore(linr.masked(clean * mask[..., None], mask), steps=20, stop=recording, refine="none",
                 model=linr.ModelConfig(width=16, depth=3), seed=0, progress=False)
    assert (int(np.argmin(losses)) + 1) * 5 == result.stop_step


def test_pick_chooses_the_held_out_minimum_among_the_steps_it_looks_at_and_the_last():
    from linr.stopping import HeldOutPick

    clean = torch.rand(1, 3, 16, 16) * 2 - 1
    obs = linr.noisy(((clean[0].permute(1, 2, 0) + 1) / 2).numpy())
    rule = HeldOutPick(fraction=0.3, every=4)
    rule.reset()
    rule.prepare([obs])
    rule.budget = 14  # not a multiple of 4: the last step counts too
    errors = {3: 0.5, 7: 0.1, 11: 0.3, 13: 0.2, 5: 0.0}  # step 5 is not looked at (not a 4th step)
    for step in range(14):
        scale = errors.get(step, 1.0)
        output = clean + scale if step in (3, 5, 7, 11, 13) else None
        assert rule.observe(step, output, torch.zeros(())) is None  # never stops
    iterate, step = rule.best()
    assert step == 8 and torch.equal(iterate, clean + 0.1)
    assert rule.held_out_mask().shape == (16, 16) and rule.held_out_mask().any()
    late = HeldOutPick(fraction=0.3, every=4)
    late.reset()
    late.prepare([obs])
    late.budget = 14
    for step in range(14):
        late.observe(step, clean + (0.0 if step == 13 else 1.0), torch.zeros(()))
    assert late.best()[1] == 14  # the last step, looked at because it ends the budget
    assert HeldOutPick().held_out_mask() is None  # before prepare (no reset needed)
    HeldOutPick().prepare([obs])  # prepare without reset works (the stopping bench does this)


def test_pick_with_fixed_returns_the_pick_and_two_hold_out_rules_are_refused():
    both = parse_stop("pick:0.2:2,fixed:6")
    clean = torch.zeros(1, 3, 8, 8)
    both.reset()
    both.prepare([linr.noisy(np.full((8, 8, 3), 0.5))])
    both.budget = 10
    for step in range(10):
        if both.observe(step, clean + (0.0 if step == 1 else 0.5), torch.zeros(())) is not None:
            break
    assert step == 5 and both.fired.name == "fixed" and both.best()[1] == 2  # fixed fired; pick's iterate returned
    for spec in ("pick,holdout", "holdout:0.05:40,pick"):
        with pytest.raises(ValueError, match="at most one rule that holds pixels out"):
            parse_stop(spec)
