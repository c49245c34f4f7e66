"""Registration (linr.registration): shots that do not line up, a transform per observation fitted
with the image. References: scipy.ndimage's spline shifts and affine maps, brute-force checks of
which observation pixels read beyond the border."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from linr.errors import DivergenceError, InputError
from linr.fit import FitConfig, Observation, fit
from linr.images import write_image
from linr.models import ModelConfig
from linr.operators import Downsample, Identity, Mask
from linr.registration import Registered, Translation, estimate_shift, register

from .conftest import run_err


def smooth_scene(size: int, seed: int = 0, sigma: float = 3.0, channels: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.stack([ndimage.gaussian_filter(rng.random((size, size)), sigma, mode="wrap")
                    for _ in range(channels)], axis=-1)
    img -= img.min()
    return img / img.max()


def shifted(img: np.ndarray, t: tuple[float, float]) -> np.ndarray:
    """``out(p) = img(p + t)`` by a quintic spline (an interpolator independent of linr's)."""
    return np.stack([ndimage.shift(img[..., c], (-t[0], -t[1]), order=5, mode="mirror")
                     for c in range(img.shape[2])], axis=-1)


def chw(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]


def test_estimate_shift_finds_a_sub_pixel_shift_with_its_sign():
    scene = smooth_scene(64, seed=1, sigma=2.0)
    for t in [(1.3, -0.7), (-2.4, 0.35)]:
        dy, dx = estimate_shift(scene, shifted(scene, t))
        assert abs(dy - t[0]) < 0.15 and abs(dx - t[1]) < 0.15, (t, dy, dx)


def wave(shape: tuple[int, int], t: tuple[float, float] = (0.0, 0.0), freq: float = 0.1) -> np.ndarray:
    """An analytic image of at most ``freq`` cycles per pixel, sampled at ``p + t``: (H, W, 1)."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    y, x = y + t[0], x + t[1]
    return (0.5 + 0.25 * np.sin(2 * np.pi * freq * x + 0.3) * np.cos(2 * np.pi * freq * 0.7 * y + 1)
            + 0.2 * np.sin(np.pi * freq * (x + y)))[..., None]


def test_warp_of_an_integer_shift_is_the_shifted_image_and_sub_pixel_the_analytic_one():
    scene = smooth_scene(40, seed=2, sigma=4.0)
    op = Registered(Identity(), Translation((2.0, -3.0)), np.array([[1.0, 3.0], [-4.0, -2.0]]))
    out = op.warp(chw(scene))[0, 0].detach().numpy()
    assert np.allclose(out[:-3, 3:], scene[2:-1, :-3, 0], atol=1e-12)
    # 1/10 cycle per pixel (below a x4 frame's 1/8): Keys' cubic is within 0.2%
    t = (0.4, -0.7)
    sub = Registered(Identity(), Translation(t), np.array([[0.0, 1.0], [-1.0, 0.0]]))
    out = sub.warp(chw(wave((40, 40))))[0, 0].detach().numpy()
    assert np.abs(out - wave((40, 40), t)[..., 0])[3:-3, 3:-3].max() < 2e-3


def test_cubic_sample_gradients_match_finite_differences():
    from linr.registration import cubic_sample

    x = torch.rand(1, 2, 7, 6, dtype=torch.float64, requires_grad=True)
    points = (torch.rand(5, 4, 2, dtype=torch.float64) * 4 + 0.6).requires_grad_(True)
    assert torch.autograd.gradcheck(cubic_sample, (x, points))


@pytest.mark.parametrize("inner", [Identity(), Downsample(2), Downsample(4)])
def test_kept_pixels_never_read_beyond_the_border(inner):
    """Embed the clean image in a larger scene: for every shift in the allowed range, the kept
    observation pixels of the crop equal those of the crop of the shifted scene (whose values
    beyond the crop are real content, not the resampler's clamped border)."""
    size, pad = 48, 8
    scene = smooth_scene(size + 2 * pad, seed=3, sigma=2.0)
    crop = scene[pad:-pad, pad:-pad]
    allowed = np.array([[-1.3, 2.2], [-2.6, 0.4]])
    for ty in allowed[0]:
        for tx in allowed[1]:
            op = Registered(inner, Translation((ty, tx)), allowed)
            got = op(chw(crop))[0, 0].detach().numpy()
            big = Registered(Identity(), Translation((ty, tx)), np.zeros((2, 2)))
            truth = inner(big.warp(chw(scene))[..., pad:-pad, pad:-pad])[0, 0].detach().numpy()
            keep = op.keep_map((size, size)).numpy().astype(bool)
            assert keep.mean() > 0.25  # a x4 frame of 12x12 loses its outer 2-3 pixels
            assert np.allclose(got[keep], truth[keep], atol=1e-12)
            assert np.all(got[~keep] == 0)


def test_a_fit_learns_the_shifts_of_misaligned_frames_from_zero_and_beats_a_naive_fit():
    scene = smooth_scene(32, seed=4, sigma=2.0)
    shifts = [(0.0, 0.0), (0.8, -1.1), (-1.2, 0.5)]
    frames = [shifted(scene, t).astype(np.float32) for t in shifts]
    obs = [Observation(f, Identity(), kind="noisy", weight=1.0) for f in frames]
    config = FitConfig(steps=100, lr=1e-3, model=ModelConfig(width=48, depth=3), device="cpu",
                       progress=False)
    reg = register(obs, shape=(32, 32), estimate=False, margin=2.0, lr=0.05)
    registered = fit(reg, config).image
    for t, o in zip(shifts[1:], reg[1:]):
        d = o.operator.transform.describe()
        assert abs(d["shift_y"] - t[0]) < 0.1 and abs(d["shift_x"] - t[1]) < 0.1, (t, d)
    naive = fit(obs, config).image  # misaligned frames fitted as if aligned: a blurred average
    err = lambda img: np.abs(img - scene)[4:-4, 4:-4].mean()  # noqa: E731
    assert err(registered) < 0.5 * err(naive)


def test_affine_registration_recovers_a_small_rotation():
    scene = smooth_scene(40, seed=5, sigma=3.0)
    angle = math.radians(2.0)
    m = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    centre = np.array([19.5, 19.5])
    t = np.array([0.4, -0.3])
    # out(p) = scene(c + M (p - c) + t): scipy's affine_transform samples input at matrix @ o + offset
    moved = ndimage.affine_transform(scene[..., 0], m, offset=centre - m @ centre + t, order=5,
                                     mode="mirror")[..., None]
    obs = [Observation(scene.astype(np.float32), Identity(), kind="noisy", weight=1.0),
           Observation(moved.astype(np.float32), Identity(), kind="noisy", weight=1.0)]
    reg = register(obs, "affine", shape=(40, 40), estimate=True, margin=2.0, lr=0.05)
    fit(reg, FitConfig(steps=120, lr=1e-3, model=ModelConfig(width=48, depth=3), device="cpu",
                       progress=False))
    found = reg[1].operator.transform.describe()
    assert np.allclose(found["matrix"], m, atol=0.01), found
    assert abs(found["shift_y"] - t[0]) < 0.1 and abs(found["shift_x"] - t[1]) < 0.1, found


def test_a_registration_that_runs_away_stops_the_fit_with_one_line():
    scene = smooth_scene(32, seed=6)
    obs = [Observation(scene.astype(np.float32), Identity(), kind="noisy", weight=1.0),
           Observation(shifted(scene, (0.5, 0.5)).astype(np.float32), Identity(), kind="noisy",
                       weight=1.0)]
    reg = register(obs, "translation", shape=(32, 32), lr=1.0, margin=0.5)  # far too fast a step
    with pytest.raises(DivergenceError, match="registration diverged") as info:
        fit(reg, FitConfig(steps=100, model=ModelConfig(width=16, depth=2), device="cpu",
                           progress=False))
    assert "\n" not in str(info.value)


def test_register_refuses_what_it_cannot_do():
    scene = smooth_scene(24).astype(np.float32)
    one = [Observation(scene, Identity(), kind="noisy")]
    with pytest.raises(InputError, match="at least two"):
        register(one, shape=(24, 24))
    two = one * 2
    with pytest.raises(InputError, match="unknown registration"):
        register(two, "projective", shape=(24, 24))
    mask = np.ones((24, 24), np.float32)
    mask[::2] = 0
    holes = [Observation(scene * mask[..., None], Mask(mask), kind="masked"), one[0]]
    with pytest.raises(InputError, match="reference"):
        register(holes, shape=(24, 24))
    tiny = [Observation(scene[:6, :6], Identity(), kind="noisy")] * 2
    with pytest.raises(InputError, match="too small"):
        register(tiny, shape=(6, 6), margin=3.0)


def test_cli_registers_a_burst_and_reports_each_frame(tmp_path, capsys):
    from linr.cli import main

    scene = smooth_scene(40, seed=8, sigma=2.0, channels=3)
    rng = np.random.default_rng(0)
    paths = []
    for k, t in enumerate([(0.0, 0.0), (0.9, -0.6), (-0.7, 1.2)]):
        frame = np.clip(shifted(scene, t) + rng.normal(0, 0.03, scene.shape), 0, 1)
        path = tmp_path / f"f{k}.png"
        write_image(path, frame.astype(np.float32), bit_depth=16)
        paths.append(path)
    out = tmp_path / "out.png"
    report = tmp_path / "r.json"
    args = ["restore", "--noisy", str(tmp_path / "f*.png"), "--register", "translation", "-o", str(out),
            "--width", "32", "--depth", "2", "--steps", "30", "--device", "cpu", "--quiet",
            "--report", str(report)]
    code = main(args)
    stdout, stderr = capsys.readouterr()
    assert code == 0, stderr
    assert "registration against" in stdout and "f1.png" in stdout and "f2.png" in stdout
    data = json.loads(report.read_text())
    assert data["settings"]["registration"][0] is None
    assert {"shift_x", "shift_y"} <= set(data["settings"]["registration"][1])


def test_cli_register_errors_are_one_line(tmp_path, capsys):
    scene = smooth_scene(24, channels=3).astype(np.float32)
    write_image(tmp_path / "a.png", scene, bit_depth=8)
    write_image(tmp_path / "b.png", scene, bit_depth=8)
    base = ["restore", "--noisy", str(tmp_path / "a.png"), "-o", str(tmp_path / "o.png")]
    assert "at least two" in run_err(capsys, [*base, "--register", "translation"])
    assert "invalid choice" in run_err(capsys, [*base, "--register", "shear"])
    both = [*base, "--noisy", str(tmp_path / "b.png"), "--register", "affine"]  # learned by the fit: not in tiles
    assert "tile" in run_err(capsys, [*both, "--tile", "16:4"])
    separate = run_err(capsys, [*base, "--noisy", str(tmp_path / "b.png"), "--register", "translation",
                                "--frames", "separate"])  # two frames given: not 'at least two' needed
    assert "registers frames against the first one, and --frames separate restores each frame on its own" in separate


def test_frames_of_different_sizes_register_against_the_reference():
    """A full-size noisy frame as the reference and x2 low-res frames moved by sub-pixel amounts:
    the first estimates (on the clean grid) and the fitted shifts land near the truth."""
    from linr.bench.registration import simulate_frames

    scene = smooth_scene(64, seed=9, sigma=3.0, channels=3)
    low, shifts = simulate_frames(scene, factor=2, frames=3, max_shift=1.5, downsampler="box",
                                  noise=0.0, seed=2)
    rng = np.random.default_rng(0)
    noisy = (scene + rng.normal(0, 0.02, scene.shape)).astype(np.float32)
    obs = [Observation(noisy, Identity(), kind="noisy", weight=1.0)] + [
        Observation(f, Downsample(2, "box"), kind="lowres", weight=1.0) for f in low]
    reg = register(obs, shape=(64, 64))
    starts = [o.operator.transform.describe() for o in reg[1:]]
    for t, d in zip(shifts, starts):
        assert abs(d["shift_y"] - t[0]) < 0.3 and abs(d["shift_x"] - t[1]) < 0.3, (t, d)
    fit(reg, FitConfig(steps=60, lr=1e-3, model=ModelConfig(width=48, depth=3), device="cpu",
                       progress=False))
    for t, o in zip(shifts, reg[1:]):
        d = o.operator.transform.describe()
        assert abs(d["shift_y"] - t[0]) < 0.15 and abs(d["shift_x"] - t[1]) < 0.15, (t, d)


def test_a_low_res_view_moved_by_whole_pixels_starts_at_its_shift():
    """A new user's x2 view cut from a crop moved by (2, 4) px of a 48-px photo: the correlation's
    peak alone started it at (-0.1, -1.8), the fit stayed 1 px off on each axis and came back below
    the noisy photo restored alone; checked by whole pixels and refined it starts within 0.15 px."""
    from skimage import data

    big = data.astronaut()[100:160, 180:240].astype(np.float64) / 255
    rng = np.random.default_rng(0)
    noisy = (big[4:52, 4:52] + rng.normal(0, 25 / 255, (48, 48, 3))).astype(np.float32)
    moved = big[6:54, 8:56]  # the scene 2 px down and 4 px right in the photo's frame
    low = moved.reshape(24, 2, 24, 2, 3).mean(axis=(1, 3)).astype(np.float32)
    reg = register([Observation(noisy, Identity(), kind="noisy"), Observation(low, Downsample(2, "box"), kind="lowres")],
                   shape=(48, 48))
    d = reg[1].operator.transform.describe()
    assert abs(d["shift_y"] - 2) < 0.15 and abs(d["shift_x"] - 4) < 0.15, d  # the peak alone: (2.0, 3.7)


def test_a_shot_of_a_joint_fit_that_looks_shifted_is_said():
    """A joint fit takes its shots as lined up: a new user's x2 view moved by (2, 4) px went unsaid
    (bursts say theirs). The same view unmoved says nothing (none of 1593 aligned noisy + low-res or
    blurred pairs of the shared images' crops did)."""
    from skimage import data

    from linr.registration import shifted_shots_said

    big = data.astronaut()[100:160, 180:240].astype(np.float64) / 255
    rng = np.random.default_rng(0)
    noisy = (big[4:52, 4:52] + rng.normal(0, 25 / 255, (48, 48, 3))).astype(np.float32)
    photo = Observation(noisy, Identity(), kind="noisy")
    for crop, said in ((big[6:54, 8:56], True), (big[4:52, 4:52], False)):
        low = crop.reshape(24, 2, 24, 2, 3).mean(axis=(1, 3)).astype(np.float32)
        notes = shifted_shots_said([photo, Observation(low, Downsample(2, "box"), kind="lowres")], ["n.png", "l.png"])
        assert bool(notes) == said, notes
        if said:
            assert notes[0].startswith("l.png (lowres) looks shifted against n.png by x +")
            x, y = float(notes[0].split("by x ")[1].split(",")[0]), float(notes[0].split(", y ")[1].split(" ")[0])
            assert abs(x - 4) < 0.5 and abs(y - 2) < 0.5, notes
