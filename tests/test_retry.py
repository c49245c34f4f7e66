"""A failed fit is fitted again at a lower learning rate (FitConfig.retry_lr): the check against
the 4-neighbour mean of the held-out pixels, and the defaults' pilot that uses it."""

import dataclasses

import numpy as np
import pytest

from linr import tasks
from linr.config import FitConfig
from linr.errors import InputError
from linr.fit import RETRY_ABOVE_NEIGHBOURS, RETRY_FLOOR, fit, fit_many
from linr.kinds import lowres, noisy
from linr.models import ModelConfig
from linr.stopping import FirstToFire, FixedSteps, HoldOut, holdout_rule


def _scene(size: int = 32, sigma: float = 25 / 255, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    clean = np.stack([0.5 + 0.3 * np.sin(6 * xx + 3 * yy), 0.4 + 0.3 * xx, 0.6 - 0.3 * yy], -1)
    return clean, clean + rng.normal(0, sigma, clean.shape)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a.astype(np.float64) - b) ** 2)))


def test_neighbour_loss_is_the_mean_of_the_kept_four_neighbours():
    _, y = _scene(12)
    rule = HoldOut(fraction=0.2, seed=3)
    rule.prepare([noisy(y)])
    held = rule.held_out_mask(0)
    assert held.sum() > 5
    target = y * 2 - 1  # the fit's [-1, 1] scale, in float64
    errors = []
    for i, j in zip(*np.nonzero(held)):
        near = [(i + di, j + dj) for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1))
                if 0 <= i + di < 12 and 0 <= j + dj < 12 and not held[i + di, j + dj]]
        guess = np.mean([target[p] for p in near], axis=0) if near else np.zeros(3)
        errors.append((guess - target[i, j]) ** 2)
    assert rule.neighbour_loss() == pytest.approx(float(np.mean(errors)), rel=1e-5)


def test_neighbour_loss_needs_the_image_grid():
    _, y = _scene(16)
    rule = HoldOut(fraction=0.2)
    rule.prepare([lowres(y[::2, ::2], factor=2)])
    assert rule.neighbour_loss() is None  # a low-res pixel's neighbours are not the image's
    assert HoldOut().neighbour_loss() is None  # nothing prepared
    both = FirstToFire([FixedSteps(10), HoldOut()])
    assert holdout_rule(both) is both.rules[1] and holdout_rule(FixedSteps(10)) is None


def _pilot(lr: float, retry: float | None) -> FitConfig:
    """The defaults' pilot fit of one noisy photo (its network and prior), at ``lr``."""
    _, y = _scene()
    config = tasks.resolve([noisy(y)], device="cpu")[1]
    assert config.model == ModelConfig(width=64) and config.prior is not None
    return dataclasses.replace(config, steps=400, lr=lr, retry_lr=retry)


def test_a_fit_worse_than_the_neighbours_is_fitted_again():
    clean, y = _scene()
    rule = HoldOut(average="window40")
    failed = fit([noisy(y)], _pilot(0.03, None), stop=rule)  # a rate far too high: a blur
    assert "retry" not in failed.settings
    first = rule.returned_loss()
    assert first > RETRY_ABOVE_NEIGHBOURS * rule.neighbour_loss()  # the failure the retry is for (fails if 0.03 fitted well)

    result = fit([noisy(y)], _pilot(0.03, 1e-4), stop=rule)
    retry = result.settings["retry"]
    assert retry["held_out_loss"] == pytest.approx(first)  # the same first fit (same seed, same pixels)
    assert retry["returned"] == "retry" and retry["retry_lr"] == 1e-4
    assert retry["retry_held_out_loss"] < retry["held_out_loss"] and retry["neighbour_loss"] < retry["held_out_loss"]
    assert _psnr(result.image, clean) > _psnr(failed.image, clean) + 3
    assert result.timings["fit_s"] == pytest.approx(result.timings["first_fit_s"] + result.timings["retry_fit_s"])
    assert retry["first_steps_run"] == failed.steps_run and retry["retry_steps_run"] == result.steps_run
    # a sound fit is not fitted again
    sound = fit([noisy(y)], _pilot(1e-3, 1e-4), stop=HoldOut(average="window40"))
    assert "retry" not in sound.settings


def test_a_stack_retries_each_failed_member():
    clean, y = _scene(seed=2)
    stops = [HoldOut(average="window40"), HoldOut(average="window40")]
    results = fit_many([[noisy(y)], [noisy(y)]], _pilot(0.03, 1e-4), stops=stops)
    for result in results:
        assert result.settings["retry"]["returned"] == "retry"
        assert _psnr(result.image, clean) > 20


def test_the_defaults_pilot_is_the_fit_that_retries():
    _, y = _scene(16)
    _, config = tasks.resolve([noisy(y)])
    assert config.lr == tasks.DEFAULT_PILOT_LR and config.retry_lr == tasks.PRESETS[tasks.DEFAULT_PRESET].lr
    assert tasks.resolve([noisy(y)], lr=1e-3)[1].retry_lr is None  # a rate named is kept
    assert tasks.resolve([noisy(y)], preset="paper")[1].retry_lr is None
    assert tasks.resolve([noisy(y)], refine="none")[1].retry_lr is None  # no pilot: the paper's fit
    assert tasks.resolve([lowres(y[::2, ::2], factor=2)])[1].retry_lr is None
    with pytest.raises(InputError, match="retry learning rate"):
        dataclasses.replace(config, retry_lr=-1.0)


def test_a_tile_records_its_retry_and_the_cli_says_so():
    from linr.cli import _retry_line
    from linr.tiling import TileBatch, fit_tile_group

    _, y = _scene(seed=3)
    [(index, image, record)] = fit_tile_group(TileBatch([5], [[noisy(y)]], _pilot(0.03, 1e-4),
                                                        [HoldOut(average="window40")]))
    assert index == 5 and record["retry"]["returned"] == "retry"
    line = _retry_line([{"tiles": [record, {"steps_run": 10}, None]}])
    assert line.startswith("retried: 1 of 3 fits at learning rate 0.03 ") and "clearly worse" in line and "again at 0.0001" in line
    assert "kept for 1 of 1" in line
    assert _retry_line([{"steps_run": 10}]) is None and _retry_line([{"tiles": [{"steps_run": 3}]}]) is None
    assert _retry_line([{"retry": record["retry"]}]).startswith("retried: the fit at")


def test_the_first_fit_is_kept_when_the_retry_is_worse():
    _, y = _scene()
    failed = fit([noisy(y)], _pilot(0.03, None), stop=HoldOut(average="window40"))
    # a rate so low that the retry barely leaves its start: worse on the held-out pixels
    kept = fit([noisy(y)], _pilot(0.03, 1e-8), stop=HoldOut(average="window40"))
    assert kept.settings["retry"]["returned"] == "first"
    assert kept.settings["retry"]["retry_held_out_loss"] > kept.settings["retry"]["held_out_loss"]
    np.testing.assert_array_equal(kept.image, failed.image)  # the first fit's own image, not the retry's
    assert kept.stop_step == failed.stop_step


def test_a_diverged_fit_is_fitted_again(monkeypatch):
    import importlib

    fit_module = importlib.import_module("linr.fit")  # the submodule (linr.fit is the function)
    from linr.errors import DivergenceError

    _, y = _scene(16)
    real, calls = fit_module._fit_once, []

    def diverge_first(*args, **kwargs):
        calls.append(args[1].lr)
        if len(calls) == 1:
            raise DivergenceError("non-finite loss at step 3")
        return real(*args, **kwargs)

    monkeypatch.setattr(fit_module, "_fit_once", diverge_first)
    result = fit([noisy(y)], _pilot(1e-3, 1e-4), stop=HoldOut(average="window40"))
    assert calls == [1e-3, 1e-4]
    retry = result.settings["retry"]
    assert retry["why"].startswith("the fit diverged") and retry["returned"] == "retry"
    assert retry["held_out_loss"] is None
    with pytest.raises(DivergenceError):  # no retry asked: the error as before
        calls.clear()
        fit([noisy(y)], _pilot(1e-3, None), stop=HoldOut(average="window40"))


def test_a_likelihood_of_photon_counts_is_not_compared_with_the_neighbours():
    from linr.fidelity import Poisson

    _, y = _scene(16)
    photo = np.clip(y, 0, 1)
    measured = HoldOut(fraction=0.2)  # photon counts measured by squared error (the default): compared
    measured.prepare([noisy(photo, noise="poisson", peak=30.0)])
    assert measured.neighbour_loss() is not None
    likelihood = HoldOut(fraction=0.2)  # a likelihood known up to a constant: no ratio means anything
    likelihood.prepare([noisy(photo, noise=Poisson(peak=30.0, stop_on="likelihood"))])
    assert likelihood.neighbour_loss() is None


def test_retry_records_of_one_fit_tiles_and_an_ensemble():
    record = {"lr": 1e-3, "retry_lr": 1e-4, "returned": "retry", "held_out_loss": 0.2}
    assert tasks.retry_records({"retry": record}) == [record] and tasks.retry_records({}) == [None]
    assert tasks.retry_records({"tiles": [{"retry": record}, {}, None]}) == [record, None, None]
    assert tasks.retry_records({"ensemble": {"members": 2}}) == [None, None]
    assert tasks.retry_records({"ensemble": {"members": 2, "retries": [None, record]}}) == [None, record]


def test_a_fit_cut_short_by_its_budget_is_not_retried():
    _, y = _scene()
    rule = HoldOut(average="window40")
    short = fit([noisy(y)], dataclasses.replace(_pilot(0.03, 1e-4), steps=5), stop=rule)
    assert short.steps_run == 5 and rule.returned_loss() > RETRY_ABOVE_NEIGHBOURS * rule.neighbour_loss()
    assert "retry" not in short.settings  # five steps are too few for any rate: no second fit


def test_the_batch_summary_counts_images_with_a_retried_fit():
    from linr.batch.run import Outcome
    from linr.batch.summary import summary_table

    record = {"lr": 1e-3, "retry_lr": 1e-4, "returned": "retry", "held_out_loss": 0.2}
    done = [{"image": "a", "status": "done", "settings": {"tiles": [{}, {"retry": record}]}},
            {"image": "b", "status": "done", "settings": {"retry": None}}]
    table = summary_table(done, Outcome(restored=["a", "b"]), where="out/", engine="cpu")
    assert "retried: 1 of 2 done images" in table and "e.g. a" in table
    assert "retried" not in summary_table(done[1:], Outcome(restored=["b"]), where="out/", engine="cpu")
    # a failed image counts in the run's time per image, and the line says so
    tried = summary_table(done, Outcome(restored=["b"], failed=["a"], wall_s=10.0), where="out/", engine="cpu")
    assert "5.00 s per image tried (failed ones included" in tried
    assert "5.00 s per image\n" in summary_table(done, Outcome(restored=["a", "b"], wall_s=10.0), where="out/",
                                                 engine="cpu") + "\n"
    # interrupted: the wall time holds an unfinished image, so no time per image is made of it
    stopped = summary_table(done, Outcome(restored=["a"], wall_s=10.0, interrupted=True), where="out/", engine="cpu")
    assert "this run (interrupted)" in stopped and "per image" not in stopped.splitlines()[-1]


def test_a_constant_photo_predicted_to_a_fraction_of_a_level_is_not_fitted_again():
    flat = np.full((32, 32, 3), 0.5)  # its held-out pixels' neighbours predict them exactly: loss 0
    rule = HoldOut(average="window40")
    result = fit([noisy(flat)], _pilot(1e-3, 1e-4), stop=rule)
    assert result.steps_run < 400 and rule.neighbour_loss() == 0.0
    assert 0 < rule.returned_loss() <= RETRY_FLOOR  # 1.25x of 0 fell short of it, and the fit ran twice
    assert "retry" not in result.settings
