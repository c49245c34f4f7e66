"""Several images fitted at once (stacked models) give what fitting each alone gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import linr
from linr.engine import FastSiren, adam_for, select_members
from linr.errors import InputError
from linr.fit import FitConfig, fit, fit_many
from linr.models import ModelConfig, Siren, coordinate_grid
from linr.simulate import add_gaussian_noise, bernoulli_mask, lanczos_downscale
from linr.stopping import FixedSteps, HoldOut

SMALL = ModelConfig(width=32, depth=3)


def _scenes(count=3, size=16):
    rng = np.random.default_rng(0)
    return [np.clip(rng.random((size, size, 3)).cumsum(0).cumsum(1) / (2.5 * size), 0, 1)
            for _ in range(count)]


def _sirens(count, dtype=torch.float64):
    out = []
    for k in range(count):
        torch.manual_seed(k)
        out.append(Siren(width=24, depth=3).to(dtype))
    return out


def test_stack_forward_and_gradients_equal_each_model_alone():
    models = _sirens(3)
    stack = FastSiren(models, dtype=torch.float64)
    alone = [FastSiren(m, dtype=torch.float64) for m in models]
    coords = coordinate_grid(6, 5).double()
    grad = torch.randn(3, coords.shape[0], 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = stack.forward(coords, save=True)  # shared coordinates
    stack.backward(grad)
    assert out.shape == (3, 30, 3) and stack.members == 3
    for k, net in enumerate(alone):
        torch.testing.assert_close(out[k], net.forward(coords, save=True), rtol=0, atol=1e-12)
        net.backward(grad[k])
        for p, q in zip(stack.params, net.params):
            torch.testing.assert_close(p.grad[k], q.grad, rtol=0, atol=1e-12)
    # per-model coordinates (K, n, 2), gradients accumulated over two chunks
    own = torch.stack([coords.flip(0), coords, coords * 0.5])
    for i in (0, 15):
        stack.forward(own[:, i : i + 15], save=True)
        stack.backward(grad[:, i : i + 15], accumulate=i > 0)
    for k, net in enumerate(alone):
        for i in (0, 15):
            net.forward(own[k, i : i + 15], save=True)
            net.backward(grad[k, i : i + 15], accumulate=i > 0)
        for p, q in zip(stack.params, net.params):
            torch.testing.assert_close(p.grad[k], q.grad, rtol=0, atol=1e-12)


def test_member_and_state_dict_round_trip():
    models = _sirens(2)
    stack = FastSiren(models, dtype=torch.float64)
    for k, model in enumerate(models):
        state = stack.member(k).state_dict()
        for name, value in model.state_dict().items():
            torch.testing.assert_close(state[name], value, rtol=0, atol=1e-15)
    with pytest.raises(ValueError, match="share architecture"):
        FastSiren([Siren(width=24, depth=3), Siren(width=16, depth=3)])


def test_dropping_members_keeps_the_others_adam_trajectory():
    models = _sirens(3)
    full = FastSiren(models, dtype=torch.float64)
    opt_full = adam_for(full, lr=1e-3)
    gen = torch.Generator().manual_seed(2)
    grads = [[torch.randn(p.shape, dtype=torch.float64, generator=gen) for p in full.params]
             for _ in range(4)]

    def step(net, opt, g, rows):
        for p, gp in zip(net.params, g):
            p.grad.copy_(gp[rows])
        opt.step()

    for g in grads[:2]:
        step(full, opt_full, g, slice(None))
    kept, opt_kept = select_members(full, opt_full, [2, 0])
    for g in grads[2:]:
        step(full, opt_full, g, slice(None))
        step(kept, opt_kept, g, [2, 0])
    for p, q in zip(full.params, kept.params):
        assert torch.equal(p.detach()[[2, 0]], q.detach())  # Adam is elementwise: exactly equal
    assert [g["lr"] for g in opt_kept.param_groups] == [g["lr"] for g in opt_full.param_groups]


def _cases():
    scenes = _scenes()
    noisy = [[linr.noisy(add_gaussian_noise(x, 25, seed=i))] for i, x in enumerate(scenes)]
    masks = [bernoulli_mask(x.shape[:2], 0.1 * (i + 1), seed=i) for i, x in enumerate(scenes)]
    masked = [[linr.masked(x * m[..., None], m)] for x, m in zip(scenes, masks)]
    lowres = [[linr.lowres(lanczos_downscale(x, 4), 4)] for x in scenes]
    return scenes, {"noisy": noisy, "masked (padded pixel lists)": masked, "lowres": lowres}


@pytest.mark.parametrize("kind", ["noisy", "masked (padded pixel lists)", "lowres"])
def test_fit_many_equals_separate_fits(kind):
    scenes, cases = _cases()
    config = FitConfig(steps=15, model=SMALL, progress=False, device="cpu")
    many = fit_many(cases[kind], config, references=scenes)
    for obs, x, m in zip(cases[kind], scenes, many):
        alone = fit(obs, config, reference=x)
        np.testing.assert_allclose(m.image, alone.image, rtol=0, atol=1e-5)
        np.testing.assert_allclose(m.history["loss"], alone.history["loss"], rtol=1e-5)
        np.testing.assert_allclose(m.history["psnr"], alone.history["psnr"], atol=1e-3)
        assert m.settings["engine_used"]["stacked"] == 3
        assert m.steps_run == alone.steps_run == 15


def test_fit_many_models_leave_the_stack_when_their_rule_fires():
    scenes, cases = _cases()
    config = FitConfig(steps=20, model=SMALL, progress=False, device="cpu")
    rules = [FixedSteps(5), None, FixedSteps(12)]
    many = fit_many(cases["noisy"], config, references=scenes, stops=rules)
    assert [r.steps_run for r in many] == [5, 20, 12]
    for obs, x, steps, m in zip(cases["noisy"], scenes, (5, 20, 12), many):
        alone = fit(obs, FitConfig(steps=steps, model=SMALL, progress=False, device="cpu"), reference=x)
        np.testing.assert_allclose(m.image, alone.image, rtol=0, atol=1e-5)
        assert len(m.history["psnr"]) == steps


def test_fit_many_with_hold_out_rules_matches_separate_fits():
    scenes, cases = _cases()
    config = FitConfig(steps=60, model=SMALL, lr=1e-3, progress=False, device="cpu")
    many = fit_many(cases["noisy"], config, references=scenes,
                    stops=[HoldOut(fraction=0.1, patience=5) for _ in scenes])
    assert len({m.steps_run for m in many}) > 1  # models left the stack at different steps
    for obs, x, m in zip(cases["noisy"], scenes, many):
        alone = fit(obs, config, reference=x, stop=HoldOut(fraction=0.1, patience=5))
        assert (m.steps_run, m.stop_step) == (alone.steps_run, alone.stop_step)
        np.testing.assert_allclose(m.image, alone.image, rtol=0, atol=1e-5)


def test_fit_many_rejects_what_it_cannot_stack():
    scenes, cases = _cases()
    config = FitConfig(steps=2, model=SMALL, progress=False, device="cpu")
    big = _scenes(1, size=20)[0]
    with pytest.raises(InputError, match="share the restored size"):
        fit_many([cases["noisy"][0], [linr.noisy(big)]], config)
    with pytest.raises(InputError, match="fast engine"):
        fit_many(cases["noisy"][:2], FitConfig(steps=2, model=ModelConfig(name="relu", width=16, depth=2),
                                               progress=False, device="cpu"))
    rule = FixedSteps(1)
    with pytest.raises(InputError, match="its own stop rule"):
        fit_many(cases["noisy"][:2], config, stops=[rule, rule])
    with pytest.raises(InputError, match="2 problems but 1 references"):
        fit_many(cases["noisy"][:2], config, references=[scenes[0]])
