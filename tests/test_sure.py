"""The SURE pick of the denoising default (:mod:`linr.sure`): the estimate against the true error,
the refinement with its groups held, the checkpoints the hold-out rule keeps, and the restore that
uses them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

import linr
from linr import sure, tasks
from linr.errors import InputError
from linr.refine import GroupedWiener
from linr.simulate import add_gaussian_noise
from linr.stopping import HoldOut, SurePick, parse_stop


def _scene(size: int, seed: int = 3) -> np.ndarray:
    """A smooth grey scene with an edge, (size, size, 1) on [0.1, 0.9]."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 0.5 + 0.25 * np.sin(6 * xx) * np.cos(4 * yy) + 0.15 * (xx > 0.6)
    return np.clip(image, 0.1, 0.9)[..., None].astype(np.float32)


def test_risk_estimates_the_true_error_of_a_linear_filter() -> None:
    """Independent reference: for a Gaussian blur of a noisy photo (a linear filter), the
    Monte-Carlo SURE averaged over 20 noise draws is the true mean squared error against the clean
    image to within 0.004 sigma^2 (about three standard errors), for a light and a heavy blur, and
    one draw's estimate ranks the two as the true error does."""
    clean = _scene(256)[..., 0].astype(np.float64)
    sigma = 0.1
    scale = 0.3 * sigma
    for width in (0.7, 3.0):
        def smooth(photo: np.ndarray) -> np.ndarray:
            return ndimage.gaussian_filter(photo, width, mode="reflect")
        values, errors = [], []
        for draw in range(20):
            noisy = clean + np.random.default_rng(100 + draw).normal(0, sigma, clean.shape)
            probe = np.random.default_rng(200 + draw).standard_normal(clean.shape)
            estimate = smooth(noisy)
            values.append(sure.risk(noisy, estimate, smooth(noisy + scale * probe), probe, scale, sigma))
            errors.append(float(np.mean((estimate - clean) ** 2)))
        assert np.mean(values) == pytest.approx(np.mean(errors), abs=0.004 * sigma ** 2)
    noisy = clean + np.random.default_rng(7).normal(0, sigma, clean.shape)
    probe = np.random.default_rng(8).standard_normal(clean.shape)
    ranked = {}
    for width in (0.3, 3.0):
        estimate = ndimage.gaussian_filter(noisy, width, mode="reflect")
        moved = ndimage.gaussian_filter(noisy + scale * probe, width, mode="reflect")
        ranked[width] = (sure.risk(noisy, estimate, moved, probe, scale, sigma), float(np.mean((estimate - clean) ** 2)))
    assert (ranked[0.3][0] < ranked[3.0][0]) == (ranked[0.3][1] < ranked[3.0][1])


def test_grouped_refinement_with_held_groups_is_linear_in_the_photo() -> None:
    """With its groups held (and no prefilter, so the pilot alone sets the gains) the grouped
    filter is a linear map of the photo: the response to t times a probe is t times the response
    to the probe. Matching each photo afresh it is not (the groups follow the probe)."""
    clean = _scene(48)
    noisy = add_gaussian_noise(clean, 25, seed=1).astype(np.float64)
    pilot = np.asarray(ndimage.gaussian_filter(noisy, (1.0, 1.0, 0)), np.float32)
    probe = np.random.default_rng(5).standard_normal(noisy.shape)
    sigma = 25 / 255
    held = GroupedWiener(prefilter=False, keep_groups=True)
    base = np.asarray(held(noisy, pilot, sigma), np.float64)
    small = np.asarray(held(noisy + 0.01 * probe, pilot, sigma), np.float64) - base
    large = np.asarray(held(noisy + 0.5 * probe, pilot, sigma), np.float64) - base
    np.testing.assert_allclose(large, 50 * small, atol=2e-4)
    fresh = GroupedWiener(prefilter=False)
    moved = np.asarray(fresh(noisy + 0.5 * probe, pilot, sigma), np.float64) - np.asarray(fresh(noisy, pilot, sigma))
    assert np.abs(moved - 50 * small).max() > 1e-2  # the groups matched on the moved photo differ


def test_held_groups_keep_a_photos_transforms_without_changing_the_result() -> None:
    """With its groups held the filter keeps each photo's transformed groups for later calls on
    that photo: the same bytes as a filter that transforms them again at every call, whatever the
    order of photos and pilots; with no room to keep them (KEPT_BYTES 0), the same again."""
    clean = _scene(48)
    clean = np.concatenate([clean, clean[::-1], clean[:, ::-1]], axis=-1) if clean.shape[-1] == 1 else clean  # colour
    photos = [add_gaussian_noise(clean, 25, seed=s).astype(np.float32) for s in (1, 2)]
    pilots = [np.asarray(ndimage.gaussian_filter(photos[0], (w, w, 0)), np.float32) for w in (0.8, 1.5)]
    keeping, again, none = (GroupedWiener(keep_groups=True, threads=2) for _ in range(3))
    again._kept_coefs = None  # transforms every call (the groups still held)
    none.KEPT_BYTES = 0
    for pilot in pilots:
        for photo in photos:
            out = keeping(photo, pilot, 25 / 255)
            assert out.tobytes() == again(photo, pilot, 25 / 255).tobytes() == none(photo, pilot, 25 / 255).tobytes()
    planes = photos[0].shape[-1] if photos[0].ndim == 3 else 1
    assert len(keeping._kept_coefs) == 2 * keeping.blocks(48, 48) * planes  # each photo's blocks and planes
    assert keeping._kept_bytes > 0
    assert none._kept_bytes == 0 and not none._kept_coefs


def test_sure_pick_scores_nothing_far_past_the_held_out_minimum() -> None:
    """The pick scores checkpoints at most PAST_HELD_OUT steps after the held-out minimum, and its
    second fit runs no further than that (at the constant rate of the denoising pilot)."""
    clean = _scene(40)
    noisy = add_gaussian_noise(clean, 25, seed=4)
    result = linr.restore([tasks.noisy(noisy)], seed=0, device="cpu", progress=False, steps=120)
    record = result.settings["stop"]["sure"]
    held = record["held_out_step"]
    assert result.steps_run > held + sure.PAST_HELD_OUT  # the rule's patience ran past the bound
    assert max(int(k) for k in record["ranking_estimates"]) <= held + sure.PAST_HELD_OUT
    assert record["second_fit_budget"] == held + sure.PAST_HELD_OUT
    assert record["second_fit_steps"] <= record["second_fit_budget"]


def test_the_second_fit_ends_once_its_estimates_have_risen_and_chooses_as_a_full_one(monkeypatch) -> None:
    """The second fit scores every other checkpoint as it reaches it and ends once SCORE_PATIENCE
    of them in a row have not lowered the least; its estimates are those of a fit run to its
    budget (the same steps), and the choice the same here."""
    noisy = add_gaussian_noise(_scene(40), 25, seed=4)
    default_patience = sure.SCORE_PATIENCE

    def pick(patience: int) -> dict:
        monkeypatch.setattr(sure, "SCORE_PATIENCE", patience)
        result = linr.restore([tasks.noisy(noisy)], seed=0, device="cpu", progress=False, steps=120)
        return result.settings["stop"]["sure"]

    given = []  # (step, the moved average scored, the rule) as the second fit scores them

    class Spy(sure._ScoredAsFitted):
        def __init__(self, score, *args, **kwargs) -> None:
            super().__init__(lambda step, average: given.append((step, average, self)) or score(step, average),
                             *args, **kwargs)

    monkeypatch.setattr(sure, "_ScoredAsFitted", Spy)
    early = pick(2)
    # each scored during the fit with the probe fit's own average of that step
    kept = dict(given[0][2].checkpoints())
    assert given and all(rule is given[0][2] and torch.equal(average, kept[step]) for step, average, rule in given)
    given.clear()
    full = pick(10**6)
    assert full["second_fit_steps"] == full["second_fit_budget"] == early["second_fit_budget"]
    assert early["second_fit_steps"] < early["second_fit_budget"]  # it ended early on this photo
    scored = {int(k): v for k, v in early["ranking_estimates"].items()}
    everything = {int(k): v for k, v in full["ranking_estimates"].items()}
    assert set(scored) < set(everything) and all(everything[k] == v for k, v in scored.items())
    assert early["step"] == full["step"]
    # the default runs the second fit to its budget (an early end once returned a plateau's least)
    assert pick(default_patience)["second_fit_steps"] == full["second_fit_budget"]
    # where it ended: the first checkpoint scored first (every other one up to the budget) at which
    # two in a row had not lowered the least, replayed on the full fit's estimates
    first = sure.first_candidates(list(range(5, full["second_fit_budget"] + 1, 5)))
    least, since = None, 0
    for step in first:
        least, since = (step, 0) if least is None or everything[step] < everything[least] else (least, since + 1)
        if since == 2:
            break
    assert early["second_fit_steps"] == step


def test_sure_pick_scores_with_its_own_reference_step_and_refines_with_the_restorations(monkeypatch) -> None:
    """The checkpoints are scored by a ``grouped`` filter whose references are SCORE_STEP px apart
    (recorded); the returned image is still refined by the restoration's own filter (step 3), and
    row keys name a scoring step other than the refinement's."""
    built = []

    class Spy(GroupedWiener):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            built.append(self.step)

    monkeypatch.setattr(sure, "GroupedWiener", Spy)
    monkeypatch.setattr(sure, "SCORE_STEP", 5)
    noisy = add_gaussian_noise(_scene(40), 25, seed=4)
    result = linr.restore([tasks.noisy(noisy)], seed=0, device="cpu", progress=False, steps=60,
                          clipping="ignore")  # the refined image as the pick made it, not mapped back
    assert built == [5] and result.settings["stop"]["sure"]["score_step"] == 5
    assert result.settings["refine"]["step"] == GroupedWiener().step == 3
    refined, _ = linr.refine.refine_image("grouped", result.fitted_image, [tasks.noisy(noisy)])
    np.testing.assert_allclose(result.image, refined, atol=1e-6)
    assert sure.row_tag(40 * 40, 25.0, 1) == f"sure{sure.PROBE_SCALE:g}cr5"  # the full second fit (the default)
    monkeypatch.setattr(sure, "SCORE_PATIENCE", 2)
    assert sure.row_tag(40 * 40, 25.0, 1).endswith("cr5p2")
    monkeypatch.setattr(sure, "SCORE_STEP", 3)
    monkeypatch.setattr(sure, "SCORE_PATIENCE", 10**6)  # never ends the second fit: as before
    assert sure.row_tag(40 * 40, 25.0, 1) == f"sure{sure.PROBE_SCALE:g}c"


def test_holdout_keeps_every_checkpoint_without_changing_what_it_returns() -> None:
    clean = _scene(32)
    obs = [tasks.noisy(add_gaussian_noise(clean, 25, seed=2))]
    resolved, config = tasks.resolve(obs, seed=0, device="cpu", steps=30, progress=False)
    from linr.fit import fit

    plain = HoldOut(average="window40")
    kept = HoldOut(average="window40", keep_checkpoints=True)
    first = fit(resolved, config, stop=plain)
    second = fit(resolved, config, stop=kept)
    np.testing.assert_array_equal(first.image, second.image)
    assert plain.checkpoints() == []
    steps = [step for step, _ in kept.checkpoints()]
    assert steps == list(range(5, second.steps_run + 1, 5))
    last = kept.checkpoints()[-1][1]
    assert tuple(last.shape) == (1, 1, 32, 32)
    with pytest.raises(ValueError, match="needs an average"):
        HoldOut(keep_checkpoints=True)


def test_sure_rule_spec_and_the_pilot() -> None:
    rule = parse_stop("sure")
    assert isinstance(rule, SurePick) and rule.keep_checkpoints and rule.average.spec == "window40"
    assert rule.describe()["name"] == "sure"
    assert tasks.pilot_stop("sure")  # the defaults' pilot network, as under the automatic stop
    assert parse_stop("sure:0.1:20").fraction == 0.1


def test_probe_stream_is_not_the_simulated_noise_stream(monkeypatch) -> None:
    """A photo's noise drawn as the benchmarks draw it (NumPy's generator of seed 0) must not be
    the probe: a probe along the noise measured a divergence three times too large. The pick
    draws its probe from :func:`linr.sure.probe_for`."""
    shape = (16, 16, 1)
    probe = sure.probe_for(shape, 0)
    assert abs(np.corrcoef(probe.ravel(), np.random.default_rng(0).standard_normal(shape).ravel())[0, 1]) < 0.3
    drawn = []
    real = sure.probe_for

    def spy(shape, seed):
        drawn.append((shape, seed))
        return real(shape, seed)

    monkeypatch.setattr(sure, "probe_for", spy)

    noisy = add_gaussian_noise(_scene(32), 25, seed=0)
    # the pick runs only where the rule returns an average (a fit's path differs by processor: on
    # one, seed 3 returned a single iterate and skipped it); the first seed whose pick ran
    for seed in (3, 4, 5, 6, 7):
        drawn.clear()
        result = linr.restore([tasks.noisy(noisy)], seed=seed, device="cpu", progress=False, steps=80)
        if "skipped" not in result.settings["stop"]["sure"]:
            break
    else:
        pytest.fail("no seed's fit ran the SURE pick")
    assert drawn == [((32, 32, 1), seed)]


def test_clipped_noise_against_monte_carlo() -> None:
    """Independent reference: the variance of clipped Gaussian noise against a million draws, and
    the level that makes it average to a measured one (unchanged where nothing is near black or white)."""
    rng = np.random.default_rng(0)
    for value in (0.0, 0.03, 0.5, 0.9, 1.0):
        draws = np.clip(value + rng.normal(0, 0.1, 1_000_000), 0, 1)
        assert float(sure.clipped_variance(np.array(value), 0.1)) == pytest.approx(draws.var(), rel=0.01)
    mixed = np.r_[np.zeros(300), np.full(700, 0.5)]
    spread = sure.clipped_noise_sigma(mixed, 0.08)
    assert np.sqrt(np.mean(spread ** 2)) == pytest.approx(0.08, rel=1e-6)
    assert spread[0] < 0.08 < spread[-1]  # less noise where black clips it, more elsewhere
    np.testing.assert_allclose(sure.clipped_noise_sigma(np.full(50, 0.5), 0.05), 0.05, rtol=1e-6)


def test_default_restore_of_a_small_noisy_photo_chooses_by_sure() -> None:
    """The automatic stop of one small noisy photo: the rule is ``sure``, the returned step one of
    its kept checkpoints, the choice recorded; the refined image is the refinement of the chosen
    average. A larger photo, an explicit hold-out spec or a kept model keep the hold-out rule."""
    clean = _scene(40)
    noisy = add_gaussian_noise(clean, 25, seed=4)
    result = linr.restore([tasks.noisy(noisy)], seed=0, device="cpu", progress=False, steps=60,
                          clipping="ignore")  # the refined image as the pick made it, not mapped back
    stop = result.settings["stop"]
    assert stop["name"] == "sure"
    record = stop["sure"]
    assert record["step"] == result.stop_step and result.stop_step % 5 == 0
    assert 1 <= record["candidates"] <= sure.MAX_CANDIDATES and result.timings["sure_fit_s"] > 0
    assert "chosen by SURE" in result.stop_reason and result.timings["sure_s"] > 0
    scores = {int(k): v for k, v in record["ranking_estimates"].items()}  # the least estimate chosen
    assert len(scores) == record["candidates"] and min(scores, key=scores.get) == result.stop_step
    assert result.settings["refine"]["name"] == "grouped" and result.fitted_image is not None
    refined, _ = linr.refine.refine_image("grouped", result.fitted_image, [tasks.noisy(noisy)])
    np.testing.assert_allclose(result.image, refined, atol=1e-6)

    explicit = linr.restore([tasks.noisy(noisy)], seed=0, device="cpu", progress=False, steps=60,
                            stop="holdout:0.05:40:window40")
    assert explicit.settings["stop"]["name"] == "holdout" and "sure" not in explicit.settings["stop"]
    above = int(np.sqrt(sure.UP_TO_PIXELS)) + 8
    plan = tasks.plan_restore([tasks.noisy(add_gaussian_noise(_scene(above), 25))], device="cpu")
    assert type(plan.rule) is HoldOut  # above sure.UP_TO_PIXELS
    # colour: up to sure.UP_TO_PIXELS_COLOUR (above it the pick did not pay for its time)
    side = int(np.sqrt(sure.UP_TO_PIXELS_COLOUR))
    for size, channels, picks in ((side, 3, True), (side + 8, 3, False), (side + 8, 1, True)):
        scene = np.repeat(_scene(size), channels, axis=2) * np.linspace(0.8, 1.0, channels)
        plan = tasks.plan_restore([tasks.noisy(add_gaussian_noise(scene, 25))], device="cpu")
        assert isinstance(plan.rule, SurePick) is picks, (size, channels)
        assert (sure.row_tag(size * size, 25.0, channels) != "") is picks
    kept = tasks.plan_restore([tasks.noisy(noisy)], device="cpu", keep_model=True)
    assert not isinstance(kept.rule, SurePick)
    # light noise: the level the estimate weighs by is not to be trusted there (sure.MIN_SIGMA)
    light = tasks.noisy(add_gaussian_noise(_scene(40), 5, seed=4))
    assert sure.noisy_enough([tasks.noisy(noisy)]) and not sure.noisy_enough([light])
    assert type(tasks.plan_restore([light], device="cpu").rule) is HoldOut
    assert isinstance(tasks.plan_restore([light], device="cpu", stop="sure").rule, SurePick)  # asked for


def test_sure_stop_refused_where_it_cannot_serve() -> None:
    noisy = tasks.noisy(add_gaussian_noise(_scene(40), 25, seed=4))
    with pytest.raises(InputError, match="'grouped' refinement"):
        tasks.plan_restore([noisy], device="cpu", stop="sure", refine="none")
    with pytest.raises(InputError, match="tiled"):
        tasks.plan_restore([tasks.noisy(add_gaussian_noise(_scene(96), 25))], device="cpu", stop="sure", tile="64")
    with pytest.raises(InputError, match="one noisy photo"):
        tasks.plan_restore([tasks.lowres(_scene(20), 2)], device="cpu", stop="sure")
    with pytest.raises(InputError, match="stands alone"):
        tasks.plan_restore([noisy], device="cpu", stop="sure,fixed:60")
    with pytest.raises(InputError, match="averages of iterates"):
        tasks.plan_restore([noisy], device="cpu", stop="sure:0.05:40:none")


def test_each_member_of_an_ensemble_picks_as_one_fit_does() -> None:
    """Members of an ensemble of a small noisy photo are stopped as one fit is: by the SURE pick,
    each with its own seed (its held-out pixels, its probe, its second fit). Member 0 is the
    single default fit (its estimates, and a step as good as the single fit's choice: the stacked
    fit rounds as a single one up to float32 noise, which the fit's steps grow to a per cent or two
    of the estimates, more between thread counts), every member's chosen
    step is the least of its own estimates, and the ensemble's image is the refinement of the
    mean of the members' picked averages."""
    noisy = add_gaussian_noise(_scene(40), 25, seed=4)
    kw = dict(device="cpu", progress=False, steps=60, clipping="ignore")
    assert isinstance(tasks.plan_restore([tasks.noisy(noisy)], device="cpu", ensemble=2).rule, SurePick)
    assert isinstance(tasks.plan_restore([tasks.noisy(noisy)], device="cpu", stop="sure", ensemble=2).rule, SurePick)
    result = linr.restore([tasks.noisy(noisy)], ensemble=2, **kw)
    described = result.settings["ensemble"]
    assert len(described["sure"]) == 2
    assert "each member's average chosen by SURE of its refined image" in result.stop_reason, result.stop_reason
    for member, picked in enumerate(described["sure"]):
        scores = {int(k): v for k, v in picked["ranking_estimates"].items()}
        assert picked["step"] == described["stop_steps"][member] == min(scores, key=scores.get)
    single = linr.restore([tasks.noisy(noisy)], **kw).settings["stop"]["sure"]
    ours, theirs = described["sure"][0]["ranking_estimates"], single["ranking_estimates"]
    assert ours.keys() == theirs.keys()
    np.testing.assert_allclose([ours[k] for k in ours], [theirs[k] for k in ours], rtol=0.05)
    # the step member 0 chose is as good as the single fit's choice by the single fit's estimates
    assert theirs[str(described["sure"][0]["step"])] <= min(theirs.values()) + 0.05 * abs(min(theirs.values()))
    assert result.timings["sure_s"] > 0 and result.settings["refine"]["name"] == "grouped"
    refined, _ = linr.refine.refine_image("grouped", result.fitted_image, [tasks.noisy(noisy)])
    np.testing.assert_allclose(result.image, refined, atol=1e-6)


def test_an_ensembles_stop_line_says_which_members_were_not_picked() -> None:
    from linr.ensemble import _picked

    fine = {"step": 10}
    single = {"skipped": "the rule returned a single iterate"}
    assert _picked([fine, fine]) == "; each member's average chosen by SURE of its refined image"
    assert _picked([single, single]) == "; no SURE pick: the rule returned a single iterate"
    assert _picked([fine, single, fine]) == ("; 2 of 3 members' averages chosen by SURE of the refined image "
                                             "(no SURE pick for the others: the rule returned a single iterate)")
    assert _picked([]) == ""


def test_cli_says_the_pick_and_refuses_it_with_a_model(tmp_path, capsys) -> None:
    """``linr restore`` of a small noisy photo: its line counts the SURE pick's time; ``--stop sure``
    with ``--save-model`` is refused in one line naming a rule that keeps a model."""
    from linr.cli import main
    from linr.images import write_image

    write_image(tmp_path / "n.png", add_gaussian_noise(_scene(32), 25, seed=0))
    assert main(["restore", "--noisy", str(tmp_path / "n.png"), "-o", str(tmp_path / "o.png"), "--steps", "80",
                 "--device", "cpu", "--seed", "3"]) == 0
    out = capsys.readouterr()
    assert "s choosing the stop by SURE" in out.out and "chosen by SURE" in out.out + out.err
    assert "choosing the stop by SURE of the refined image (the pilot fitted once more" in out.err  # said before it
    assert main(["restore", "--noisy", str(tmp_path / "n.png"), "-o", str(tmp_path / "p.png"), "--stop", "sure",
                 "--save-model", str(tmp_path / "m.pt"), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "'sure' returns an average" in err and "holdout:0.05:40" in err and len(err.strip().splitlines()) == 1


def test_the_forecast_adds_up_the_picks_two_fits_and_its_refinements() -> None:
    """The line said before a long ``--stop sure`` restore counts both fits and the checkpoints'
    refinements in one total; the count of checkpoints is the pick's own (every other kept one,
    thinned to MAX_CANDIDATES, then two more)."""
    assert sure.candidates_for(100) == 12  # checkpoints at 5, 10, ... 100: 10, 20, ... 100, then two
    assert sure.candidates_for(2000) == sure.MAX_CANDIDATES + 2
    assert sure.first_candidates(list(range(5, 101, 5))) == list(range(10, 101, 10))
    photo = add_gaussian_noise(_scene(320), 25, seed=0)
    line = linr.restore_cost([tasks.noisy(photo)], device="cpu", stop="sure", tile="off")
    assert line is not None and "the SURE pick fits the pilot twice" in line
    assert "with the SURE pick at most about" in line and "in all (its two fits, and two refinements" in line
    plain = linr.restore_cost([tasks.noisy(photo)], device="cpu", tile="off")
    assert plain is None or "SURE" not in plain


def test_cli_refuses_the_pick_of_a_tiled_photo_in_one_line_before_any_note(tmp_path, capsys) -> None:
    from linr.cli import main
    from linr.images import write_image

    big = int(np.sqrt(sure.UP_TO_PIXELS)) * 4  # tiled by default
    write_image(tmp_path / "n.png", add_gaussian_noise(_scene(big), 25, seed=0))
    assert main(["restore", "--noisy", str(tmp_path / "n.png"), "-o", str(tmp_path / "o.png"), "--stop", "sure",
                 "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--tile off" in err and "tiles are kept" not in err
    assert not (tmp_path / "o.png.tiles").exists()


def test_the_sure_pick_fits_in_float32_where_the_pilot_would_multiply_in_bf16(monkeypatch) -> None:
    """The pick's divergence is a difference of two pilot fits: bf16 rounding would enter it, so a
    SURE-picked pilot keeps float32 products on a CPU with bf16 units; a larger photo's pilot (the
    held-out stop) multiplies in bf16 there; a precision asked for is kept."""
    import linr.engine as engine

    monkeypatch.setattr(engine, "_cpu_has_bf16_units", lambda: True)
    small = [tasks.noisy(add_gaussian_noise(_scene(32), 25, seed=0))]
    plan = tasks.plan_restore(small, device="cpu")
    assert isinstance(plan.rule, SurePick) and plan.config.precision == "float32"
    assert tasks.plan_restore(small, device="cpu", precision="bf16").config.precision == "bf16"  # asked for
    big = [tasks.noisy(add_gaussian_noise(_scene(160), 25, seed=0))]  # above the grey pick's size
    plan = tasks.plan_restore(big, device="cpu")
    assert not isinstance(plan.rule, SurePick) and plan.config.precision == "bf16"


def test_a_black_and_white_photo_restores_without_the_pick_its_noise_level_leaves_no_room_for() -> None:
    """A dithered black-and-white photo measures noise near the whole range (a new user's trial):
    SURE's probed photo would leave the values a photo may hold, and was refused as if the user's
    input were bad, after the fit. The pick is skipped and said; the restoration finishes."""
    from linr.images import FLOAT_VALUES
    from linr.noise import floored_noise_sigma

    bayer = np.array([[0, 8, 2, 10], [12, 4, 14, 6], [3, 11, 1, 9], [15, 7, 13, 5]]) / 16 + 1 / 32
    bilevel = (_scene(64)[..., 0] > np.tile(bayer, (16, 16))).astype(np.uint8) * 255  # ordered dithering
    probed = bilevel / 255 + sure.PROBE_SCALE * floored_noise_sigma(bilevel[..., None] / 255) * sure.probe_for(
        (64, 64), 0)
    assert probed.max() > FLOAT_VALUES[1] or probed.min() < FLOAT_VALUES[0]  # the case of the trial
    result = linr.restore([tasks.noisy(bilevel)], seed=0, device="cpu", progress=False, steps=30)
    record = result.settings["stop"]["sure"]
    assert "too large for its probe" in record["skipped"] and "no SURE pick" in result.stop_reason
    assert result.image.shape == (64, 64, 1) and result.settings["refine"]["name"] == "grouped"
