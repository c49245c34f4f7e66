"""The fast engine computes the plain loop's mathematics: checked against autograd + Adam."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch

import linr
from linr.engine import FastSiren, adam_for, estimate
from linr.fastfit import pixel_terms
from linr.fit import FitConfig, Observation, build_problem, fit
from linr.models import ModelConfig, Siren, coordinate_grid
from linr.operators import Identity
from linr.simulate import add_gaussian_noise, bernoulli_mask, lanczos_downscale
from linr.stopping import StopRule

from .conftest import crop, load


def _plain_and_fast(width=32, depth=3, seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    plain = Siren(width=width, depth=depth).to(dtype)
    return plain, FastSiren(plain, dtype=dtype)


def _run_both(steps, *, lr=1e-3, scaled=True):
    """Outputs of the plain autograd loop and the engine after each of ``steps`` Adam steps."""
    plain, fast = _plain_and_fast()
    coords = coordinate_grid(12, 10).double()
    target = torch.rand(coords.shape[0], 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    opt_plain = torch.optim.Adam(plain.parameters(), lr=lr)
    opt_fast = adam_for(fast, lr=lr) if scaled else torch.optim.Adam(fast.params, lr=lr)
    pairs = []
    for _ in range(steps):
        out = plain(coords.clone().requires_grad_(True))
        loss = torch.mean((out - target) ** 2)
        opt_plain.zero_grad()
        loss.backward()
        opt_plain.step()
        out_fast = fast.forward(coords, save=True)
        fast.backward(2 * (out_fast - target) / out_fast.numel())
        opt_fast.step()
        pairs.append((out.detach(), out_fast))
    with torch.no_grad():
        pairs.append((plain(coords), fast.forward(coords, save=False)))
    return plain, fast, pairs


def test_folded_omega_and_scaled_adam_follow_the_plain_trajectory_float64():
    plain, fast, pairs = _run_both(6)
    for a, b in pairs:
        assert torch.allclose(a, b, rtol=0, atol=1e-11), (a - b).abs().max()
    state = fast.state_dict()
    for name, value in plain.state_dict().items():
        assert torch.allclose(state[name], value, rtol=1e-10, atol=1e-13), name


def test_unscaled_adam_on_folded_weights_is_a_different_trajectory():
    # The control: folding omega_0 without scaling lr and eps changes the fit.
    _, _, pairs = _run_both(6, scaled=False)
    assert (pairs[-1][0] - pairs[-1][1]).abs().max() > 1e-4


def test_chunked_backward_accumulates_the_same_gradient():
    _, fast = _plain_and_fast()
    coords = coordinate_grid(9, 9).double()
    grad_out = torch.randn(81, 3, dtype=torch.float64)
    fast.forward(coords, save=True)
    fast.backward(grad_out)
    whole = [p.grad.clone() for p in fast.params]
    for i in range(0, 81, 20):
        fast.forward(coords[i : i + 20], save=True)
        fast.backward(grad_out[i : i + 20], accumulate=i > 0)
    for a, p in zip(whole, fast.params):
        assert torch.allclose(a, p.grad, atol=1e-12)


@pytest.fixture(scope="module")
def clean():
    return crop(load("set5/butterfly.png"), 24, top=110, left=110)


def _fit(obs, clean, **kw):
    cfg = FitConfig(steps=kw.pop("steps", 8), device="cpu", progress=False, lr=kw.pop("lr", 1e-4),
                    model=ModelConfig(width=kw.pop("width", 64), depth=kw.pop("depth", 4)), **kw)
    return fit(obs, cfg, reference=clean)


@pytest.mark.parametrize("task", ["noisy", "lowres", "masked"])
def test_engine_matches_plain_loop_float32(clean, task):
    if task == "noisy":
        obs = [linr.noisy(add_gaussian_noise(clean, 25, seed=0))]
    elif task == "lowres":
        obs = [linr.lowres(lanczos_downscale(clean, 4), 4)]
    else:
        mask = bernoulli_mask(clean.shape[:2], 0.1, seed=0)
        obs = [linr.masked(clean * mask[..., None], mask)]
    plain = _fit(obs, clean, engine="plain")
    fast = _fit(obs, clean)
    chunked = _fit(obs, clean, chunk_pixels=100)  # several chunks (two passes for lowres)
    assert fast.settings["engine_used"]["name"] == "fast"
    assert plain.settings["engine_used"]["name"] == "plain"
    for other in (fast, chunked):
        assert np.abs(other.image - plain.image).max() < 2e-4
        assert np.allclose(other.history["loss"], plain.history["loss"], rtol=1e-3)
        assert np.allclose(other.history["psnr"], plain.history["psnr"], atol=2e-3)
    if task == "masked":
        assert fast.settings["engine_used"]["trained_pixels"] == int(mask.sum())


def test_pixel_terms_give_the_autograd_gradient_of_the_masked_loss(clean):
    mask = bernoulli_mask(clean.shape[:2], 0.3, seed=1)
    obs = [linr.masked(clean * mask[..., None], mask, weight=0.7),
           linr.noisy(add_gaussian_noise(clean, 25, seed=0), weight=0.1)]
    problem = build_problem(obs, "cpu", None)
    image = torch.rand(1, 3, 24, 24, dtype=torch.float32, requires_grad=True)
    loss = problem.data_term(image)
    (grad,) = torch.autograd.grad(loss, image)
    terms = pixel_terms(problem)
    flat = image.detach()[0].permute(1, 2, 0).reshape(-1, 3)
    loss2, grad2 = terms.loss_and_grad(flat, None)
    assert torch.allclose(loss, loss2, rtol=1e-5)
    assert torch.allclose(grad[0].permute(1, 2, 0).reshape(-1, 3), grad2, atol=1e-7)
    # Masked alone: only observed pixels are trained, and their gradient is the same.
    alone = pixel_terms(build_problem(obs[:1], "cpu", None))
    seen = alone.seen
    assert seen.numel() == int(mask.sum())
    l_sub, g_sub = alone.loss_and_grad(flat[seen], seen)
    l_full, g_full = alone.loss_and_grad(flat, None)
    assert torch.allclose(l_sub, l_full, rtol=1e-6) and torch.allclose(g_sub, g_full[seen])
    assert g_full[~torch.isin(torch.arange(576), seen)].abs().max() == 0


def test_lowres_operator_is_not_pixel_wise(clean):
    obs = [linr.lowres(lanczos_downscale(clean, 4), 4)]
    assert pixel_terms(build_problem(obs, "cpu", None)) is None


class _Record(StopRule):
    def reset(self):
        self.seen = []

    def observe(self, step, output, loss):
        self.seen.append((step, output.shape, float(output.abs().max())))
        return None


def test_stop_rule_sees_every_whole_output_with_sparse_training(clean):
    mask = bernoulli_mask(clean.shape[:2], 0.1, seed=0)
    obs = [linr.masked(clean * mask[..., None], mask)]
    rule = _Record()
    r = fit(obs, FitConfig(steps=4, device="cpu", progress=False,
                           model=ModelConfig(width=32, depth=3)), stop=rule)
    assert [s for s, _, _ in rule.seen] == [0, 1, 2, 3]
    assert all(shape == (1, 3, 24, 24) for _, shape, _ in rule.seen)
    assert r.timings["eval_s"] > 0


def test_eval_every_thins_psnr_only_when_rendering_is_extra(clean):
    mask = bernoulli_mask(clean.shape[:2], 0.1, seed=0)
    obs = [linr.masked(clean * mask[..., None], mask)]
    r = _fit(obs, clean, steps=7, eval_every=3)
    assert r.history["psnr_step"] == [0, 3, 6] and len(r.history["psnr"]) == 3
    d = _fit([Observation(clean, Identity())], clean, steps=5, eval_every=3)
    assert len(d.history["psnr"]) == 5 and "psnr_step" not in d.history  # free: every step


def test_batch_pixels_and_cosine_schedule_run_and_reduce_the_loss(clean):
    noisy = add_gaussian_noise(clean, 25, seed=0)
    r = _fit([linr.noisy(noisy)], clean, steps=30, lr=1e-3, batch_pixels=128, schedule="cosine")
    assert r.settings["engine_used"]["batch_pixels"] == 128
    assert np.mean(r.history["loss"][-5:]) < 0.5 * np.mean(r.history["loss"][:5])


def test_estimate_is_bounded_by_the_chunk_and_linear_in_steps():
    small = estimate(2048, 2048, steps=10, chunk_pixels=2**17)
    big_chunk = estimate(2048, 2048, steps=10, chunk_pixels=2**20)
    act = lambda chunk: chunk * 256 * (2 * 7 + 1) * 4  # noqa: E731  sine + cosine per layer, scratch
    assert big_chunk.memory_bytes - small.memory_bytes == act(2**20) - act(2**17)
    assert small.memory_bytes < 4 * 2**30  # a 2048x2048 fit fits in a few GiB
    assert estimate(2048, 2048, steps=20, chunk_pixels=2**17).seconds == pytest.approx(2 * small.seconds)
    two = estimate(64, 64, steps=1, chunk_pixels=64, two_pass=True)
    one = estimate(64, 64, steps=1, chunk_pixels=64)
    assert two.flops_per_step == pytest.approx(one.flops_per_step * 4 / 3, rel=1e-9)
    # 2.4 MFLOP per pixel and step for the paper's network (forward + backward)
    assert one.flops_per_step / 4096 == pytest.approx(2.4e6, rel=0.02)
    assert "GiB" in small.describe()


def test_the_default_chunk_grows_to_a_cuda_devices_free_memory_only():
    from linr.engine import DEFAULT_CHUNK_PIXELS, chunk_pixels_for

    per_pixel = 256 * 15 * 4  # saved activations of the paper's network, float32
    free = 128 * 2**30
    grown = chunk_pixels_for(DEFAULT_CHUNK_PIXELS, "cuda", net_width=256, depth=7, pixels=16 * 272 * 272,
                             free_bytes=free)
    assert grown == 16 * 272 * 272  # a 16-tile stack's step in one chunk: a quarter of 128 GiB holds it
    capped = chunk_pixels_for(DEFAULT_CHUNK_PIXELS, "cuda", net_width=256, depth=7, pixels=10**9, free_bytes=free)
    assert capped == free // 4 // per_pixel  # a quarter of the free memory, no more
    small_card = chunk_pixels_for(DEFAULT_CHUNK_PIXELS, "cuda", net_width=256, depth=7, pixels=10**9,
                                  free_bytes=2**30)
    assert small_card == DEFAULT_CHUNK_PIXELS  # never below the default
    # the CPU and a value the user chose are kept as given (no CUDA call on either path)
    assert chunk_pixels_for(DEFAULT_CHUNK_PIXELS, "cpu", net_width=256, depth=7, pixels=10**9) == DEFAULT_CHUNK_PIXELS  # renders
    assert chunk_pixels_for(5000, "cuda", net_width=256, depth=7, pixels=10**9, free_bytes=free) == 5000


def test_a_cpu_fit_records_the_chunk_it_used(clean):
    from linr.engine import CPU_PIXEL_CHUNK, step_chunk_pixels

    obs = [Observation(add_gaussian_noise(clean, 0.1, seed=1), Identity())]
    result = fit(obs, FitConfig(steps=2, device="cpu", progress=False, model=ModelConfig(width=16)))
    # a pixel-wise step on the CPU: the smaller chunk, whose saved activations stay in the caches
    assert result.settings["engine_used"]["chunk_pixels"] == CPU_PIXEL_CHUNK < FitConfig().chunk_pixels == 2**17
    result = fit(obs, FitConfig(steps=2, device="cpu", progress=False, model=ModelConfig(width=16), chunk_pixels=100))
    assert result.settings["engine_used"]["chunk_pixels"] == 100  # asked for: kept
    low = [linr.lowres(lanczos_downscale(clean, 2), 2)]  # the image step keeps the default (no second pass)
    result = fit(low, FitConfig(steps=2, device="cpu", progress=False, model=ModelConfig(width=16)))
    assert result.settings["engine_used"]["chunk_pixels"] == 2**17
    assert step_chunk_pixels(2**17, "cuda", 2**20, pixel_wise=True) == 2**20  # a GPU's grown chunk stays


def test_the_cpu_pixel_chunk_changes_a_fit_by_rounding_only():
    # the default chunk against one chunk for the whole image: the same fit up to float sums' order
    clean = crop(load("set5/butterfly.png"), 136, top=60, left=60)  # 18496 pixels: two chunks
    obs = [Observation(add_gaussian_noise(clean, 0.1, seed=1), Identity())]
    kw = dict(steps=30, device="cpu", progress=False, model=ModelConfig(width=32, depth=3))
    small, whole = (fit(obs, FitConfig(**kw, **extra), reference=clean) for extra in ({}, {"chunk_pixels": 2**18}))
    assert small.settings["engine_used"]["chunk_pixels"] < clean.shape[0] * clean.shape[1] <= 2**18
    assert abs(small.history["psnr"][-1] - whole.history["psnr"][-1]) < 1e-3
    assert np.abs(small.image - whole.image).max() < 1e-3


# --- reduced precision (opt-in; not the paper's mathematics) -----------------------------------

def test_bf16_precision_rounds_hidden_products_only_and_restores_the_global_flag():
    # oneDNN's bf16 mode where it rounds (AMX), explicit bf16 operands elsewhere: either rounds
    torch.manual_seed(0)
    model = Siren(width=64, depth=4)
    exact, reduced = FastSiren(model), FastSiren(model, precision="bf16")
    coords = torch.rand(500, 2) * 2 - 1
    grad = torch.randn(500, 3)
    matmul = getattr(torch.backends.mkldnn, "matmul", None)
    before = getattr(matmul, "fp32_precision", None)
    outs = []
    for net in (exact, reduced):
        outs.append(net.forward(coords, save=True).clone())
        net.backward(grad)
    assert getattr(matmul, "fp32_precision", None) == before
    err = (outs[0] - outs[1]).norm() / outs[0].norm()
    assert 1e-5 < err < 0.05  # bf16 rounding shows (so the mode is really on), but is small
    for a, b in zip(exact.params, reduced.params):
        assert (a.grad - b.grad).norm() <= 0.05 * a.grad.norm() + 1e-12
    # the first layer stays float32: its products (2 inputs, omega_0 folded in) are exact
    reduced.forward(coords, save=True)
    exact.forward(coords, save=True)
    first, second = (torch.stack([net._activations(500).sines[i] for net in (exact, reduced)])
                     for i in (0, 1))
    assert torch.allclose(first[0], first[1], rtol=0, atol=1e-6)
    assert (second[0] - second[1]).abs().max() > 1e-4


def test_bf16_fit_tracks_the_float32_fit(clean):
    obs = [linr.lowres(lanczos_downscale(clean, 4), 4)]
    exact = _fit(obs, clean, steps=30, lr=3e-4)
    reduced = _fit(obs, clean, steps=30, lr=3e-4, precision="bf16")
    assert reduced.settings["engine_used"]["precision"] == "bf16"
    assert reduced.settings["precision"] == "bf16"
    assert abs(reduced.history["psnr"][-1] - exact.history["psnr"][-1]) < 0.3
    assert reduced.history["loss"][-1] < 0.5 * reduced.history["loss"][0]


def test_precision_errors_are_one_line(clean):
    obs = [linr.noisy(clean)]
    with pytest.raises(linr.InputError, match="tf32.*CUDA"):
        _fit(obs, clean, precision="tf32")
    with pytest.raises(linr.InputError, match="precision must be"):
        _fit(obs, clean, precision="fp8")
    with pytest.raises(linr.InputError, match="fast engine"):
        _fit(obs, clean, precision="bf16", engine="plain")


def test_auto_precision_and_the_pilots_are_bf16_only_where_the_cpu_has_bf16_units(monkeypatch, clean):
    import linr.engine as engine
    from linr.tasks import resolve

    monkeypatch.setattr(engine, "_cpu_has_bf16_units", lambda: False)
    assert engine.fast_precision("cpu") == "float32"
    _, cfg = resolve([linr.noisy(clean)], precision="auto", device="cpu")
    assert cfg.precision == "float32"
    monkeypatch.setattr(engine, "_cpu_has_bf16_units", lambda: True)
    _, cfg = resolve([linr.noisy(clean)], precision="auto", device="cpu")
    assert cfg.precision == "bf16"
    # the default preset: float32, the paper's, but for the pilot of a refined noisy photo
    _, cfg = resolve([linr.noisy(clean)], device="cpu", refine="none")
    assert cfg.precision == "float32"
    _, cfg = resolve([linr.noisy(clean)], device="cpu")
    assert cfg.model.width == 64 and cfg.precision == "bf16"
    _, cfg = resolve([linr.noisy(clean)], device="cpu", precision="float32")  # asked for: kept
    assert cfg.precision == "float32"
    monkeypatch.setattr(engine, "_cpu_has_bf16_units", lambda: False)
    _, cfg = resolve([linr.noisy(clean)], device="cpu")  # no bf16 units: the pilot in float32
    assert cfg.model.width == 64 and cfg.precision == "float32"


def test_tf32_flag_is_set_only_inside_the_hidden_products():
    # No GPU here: check the flag handling itself (the products are CUDA-only).
    from linr.engine import _HiddenMatmul

    mm = object.__new__(_HiddenMatmul)
    mm.precision, mm.kind, mm.operands_bf16 = "tf32", "cuda", False
    matmul = torch.backends.cuda.matmul
    name = "fp32_precision" if hasattr(matmul, "fp32_precision") else "allow_tf32"
    before = getattr(matmul, name)
    with mm._flags():
        assert getattr(matmul, name) in ("tf32", True)
    assert getattr(matmul, name) == before


# --- any scaled-layer model on the engine: the Gaussian INR ------------------------------------


def _scaled_model(name: str) -> torch.nn.Module:
    from linr.models import Finer, GaussNet

    return GaussNet(width=16, depth=3, scale=3.0) if name == "gauss" else Finer(width=16, depth=3, omega_0=30.0)


@pytest.mark.parametrize("name", ["gauss", "finer"])
def test_scaled_model_engine_gradient_matches_autograd_float64(name):
    # FINER's variable-periodic sine holds its factor |z| + 1 out of the derivative, on the engine
    # (its slope) as under autograd (detached)
    torch.manual_seed(0)
    model = _scaled_model(name).double()
    net = FastSiren(model, dtype=torch.float64)
    coords = torch.rand(40, 2, dtype=torch.float64) * 2 - 1
    grad_out = torch.randn(40, 3, dtype=torch.float64)
    out = net.forward(coords, save=True)
    net.backward(grad_out)
    ref = model(coords)
    assert torch.allclose(out, ref, rtol=0, atol=1e-12)
    grads = torch.autograd.grad(ref, list(model.parameters()), grad_outputs=grad_out)
    named = dict(zip([n for n, _ in model.named_parameters()], grads))
    s = net.omega_0
    for i, (w, b) in enumerate(zip(net.weights, net.biases)):
        # folded parameters W' = s W: dL/dW' = dL/dW / s
        assert torch.allclose(w.grad * s, named[f"body.{i}.linear.weight"], atol=1e-11)
        assert torch.allclose(b.grad * s, named[f"body.{i}.linear.bias"], atol=1e-11)
    assert torch.allclose(net.head_w.grad, named["head.weight"], atol=1e-11)
    assert torch.allclose(net.head_b.grad, named["head.bias"], atol=1e-11)
    assert net.forward(coords, save=False).allclose(ref, atol=1e-12)


@pytest.mark.parametrize("name", ["gauss", "finer"])
def test_scaled_model_runs_on_the_fast_engine_and_follows_the_plain_loop(clean, name):
    obs = [linr.noisy(add_gaussian_noise(clean, 25, seed=0))]
    model = ModelConfig(name=name, width=32, depth=3, gauss_scale=3.0)
    kw = dict(steps=10, device="cpu", progress=False, lr=1e-3, model=model)
    fast = fit(obs, FitConfig(**kw), reference=clean)
    plain = fit(obs, FitConfig(engine="plain", **kw), reference=clean)
    assert fast.settings["engine_used"]["name"] == "fast"
    assert plain.settings["engine_used"]["name"] == "plain"
    assert np.allclose(fast.history["loss"], plain.history["loss"], rtol=1e-3)
    assert np.abs(fast.image - plain.image).max() < 2e-4
    assert fast.history["loss"][-1] < fast.history["loss"][0]


def test_wire_fits_on_the_plain_loop(clean):
    # complex Gabor layers: not on the engine; Adam moves the complex weights and the loss falls
    obs = [linr.noisy(add_gaussian_noise(clean, 25, seed=0))]
    model = ModelConfig(name="wire", width=32, depth=2, gabor_omega=4.0, gabor_scale=4.0)
    result = fit(obs, FitConfig(steps=15, device="cpu", progress=False, lr=5e-3, model=model))
    assert result.settings["engine_used"]["name"] == "plain"
    assert result.image.shape == clean.shape and np.isfinite(result.image).all()
    assert result.history["loss"][-1] < 0.5 * result.history["loss"][0]


def test_the_engine_refuses_models_it_cannot_run():
    from linr.models import MLP

    with pytest.raises(ValueError, match="scaled layers"):
        FastSiren(MLP("relu", width=8, depth=2))


def test_sines_through_numpy_agree_with_torch_and_only_on_few_cpu_threads(monkeypatch):
    from linr import models

    u = torch.linspace(-40, 40, 20001, dtype=torch.float32).reshape(-1, 1).repeat(1, 3).contiguous()
    exact = u.double()
    threads = torch.get_num_threads()
    monkeypatch.setattr(models, "_avx512", True)  # as on the CPU it was measured on
    try:
        torch.set_num_threads(1)
        assert models.numpy_trig(u)
        value, slope = u.clone(), torch.empty_like(u)
        calls = []
        real_sin = np.sin
        monkeypatch.setattr(models.np, "sin", lambda *a, **k: calls.append(1) or real_sin(*a, **k))
        assert models.Sine().value_and_slope_(value, slope) is value
        assert calls  # NumPy computed it
        assert (value.double() - exact.sin()).abs().max() < 2e-7
        assert (slope.double() - exact.cos()).abs().max() < 2e-7
        rendered = models.Sine().value_(u.clone())
        assert torch.equal(rendered, value)
        # written over as torch's in-place functions write: autograd refuses a saved tensor changed so
        a, w = u[:4, 0].clone(), torch.ones(4, requires_grad=True)
        y = (a * w).sum()
        models.Sine().value_(a)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.backward()
        # not for autograd, other dtypes, views that are not contiguous, more threads, or without AVX-512
        assert not models.numpy_trig(u.clone().requires_grad_())
        assert not models.numpy_trig(u.double())
        assert not models.numpy_trig(u.mT)
        monkeypatch.setattr(models, "_avx512", False)
        assert not models.numpy_trig(u)
        monkeypatch.setattr(models, "_avx512", True)
        torch.set_num_threads(models.NUMPY_TRIG_UP_TO_THREADS + 1)
        assert not models.numpy_trig(u)
        calls.clear()
        other, other_slope = u.clone(), torch.empty_like(u)
        models.Sine().value_and_slope_(other, other_slope)
        assert not calls and torch.allclose(other, value, atol=2e-7) and torch.allclose(other_slope, slope, atol=2e-7)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("pixels", [4096, 4352])  # whole pieces of 2048; a last piece padded with zero rows
def test_bf16_products_are_the_same_on_one_thread_and_two(pixels):
    # a process on two torch threads and its one-thread tile workers fit the same tiles: a weight's
    # gradient (a long sum over pixels) is summed in fixed pieces, not split by the threads there
    torch.manual_seed(0)
    model = Siren(width=64, depth=3)
    coords, grad = torch.rand(pixels, 2) * 2 - 1, torch.randn(pixels, 3)
    before = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            net = FastSiren(model, precision="bf16")
            out = net.forward(coords, save=True).clone()
            net.backward(grad)
            results.append((out, [p.grad.clone() for p in net.params]))
            assert torch.get_num_threads() == threads
    finally:
        torch.set_num_threads(before)
    (out1, grads1), (out2, grads2) = results
    assert torch.equal(out1, out2) and all(torch.equal(a, b) for a, b in zip(grads1, grads2))


@pytest.mark.parametrize("members", [1, 2])
def test_long_sums_over_padded_activations_as_they_are_equal_those_over_padded_copies(members):
    # where oneDNN's bf16 mode rounds the products (AMX CPUs), a lone model's activations live in
    # buffers padded to whole pieces, and its weight gradients sum over views of them, not over
    # padded copies: the same product calls on the same values, so the same bits
    from linr.engine import _HiddenMatmul

    mm = _HiddenMatmul("bf16", torch.device("cpu"))
    piece = mm.SUM_PIECE
    gen = torch.Generator().manual_seed(members)
    for rows, m, n in [(piece, 64, 64), (3 * piece, 64, 64), (2 * piece, 3, 64), (2 * piece, 64, 2)]:
        left, right = torch.randn(members, rows, m, generator=gen), torch.randn(members, rows, n, generator=gen)
        left[:, rows - 100:], right[:, rows - 100:] = 0, 0  # a buffer's zero rows past the pixels
        for rounded, dtype in ((True, torch.bfloat16), (False, torch.float32)):
            copies = mm._pieces_sum(mm._padded(left[:, :rows - 100], f"l{rounded}", dtype),
                                   mm._padded(right[:, :rows - 100], f"r{rounded}", dtype))
            assert mm._in_whole_pieces(left, right)
            with mm._flags() if rounded else contextlib.nullcontext():
                views = mm._pieces_sum(left, right, rounded=rounded)
            assert torch.equal(views, copies), (rows, m, n, rounded)
    assert not mm._in_whole_pieces(left[:, :-1], right[:, :-1])  # no whole pieces
    assert not mm._in_whole_pieces(left.mT.contiguous().mT, right)  # not contiguous
    # which fits pad: a lone model's where the mode rounds; stacks and explicit bf16 operands copy
    assert mm.padded_rows(100, 2) == 100
    mm.operands_bf16 = True
    assert mm.padded_rows(100, 1) == 100
    mm.operands_bf16 = False
    assert mm.padded_rows(100, 1) == (piece if mm.long_sums_in_pieces else 100)


def test_a_fits_padded_activation_rows_stay_zero_and_its_gradients_match_a_stack_member():
    # the rows past the pixels of a padded buffer are never written, and a lone model (padded
    # where the bf16 mode rounds) gets the gradients of the same model as the first of a stack of
    # two (never padded: its long sums go through padded copies)
    torch.manual_seed(0)
    model, other = Siren(width=64, depth=3), Siren(width=64, depth=3)
    coords, grad = torch.rand(4352, 2) * 2 - 1, torch.randn(4352, 3)
    lone, stack = FastSiren(model, precision="bf16"), FastSiren([model, other], precision="bf16")
    for _ in range(2):
        lone.forward(coords, save=True)
        lone.backward(grad)
    stack.forward(coords, save=True)
    stack.backward(torch.stack([grad, grad]))
    assert not stack._activations(4352).padded
    buffers = lone._activations(4352)
    if lone.matmul.padded_rows(4352, 1) > 4352:
        assert buffers.padded and all(t[:, 4352:].abs().sum() == 0 for t in buffers.whole_sines + buffers.whole_cosines)
    assert all(torch.equal(a.grad, b.grad[0]) for a, b in zip(lone.params, stack.params))
