"""A registered burst of noisy photos moved onto its first frame's grid before it is restored as an
aligned burst (linr.registration.aligned_to_first, linr.stabilise.aligned_burst)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import linr
from linr.registration import aligned_to_first, estimate_shift, refined_shift
from linr.stabilise import ALIGNED, aligned_burst, aligns_burst, as_fitted


def _scene(rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """A band-limited scene (sines well below the grid's Nyquist frequency) at any points, RGB."""
    base = (np.sin(0.35 * rows + 0.2 * cols) + 0.6 * np.cos(0.27 * cols - 0.1 * rows)
            + 0.4 * np.sin(0.5 * rows) * np.cos(0.45 * cols) + 0.8 * np.sin(1.1 * rows + 0.4 * cols)
            + 0.7 * np.cos(0.9 * cols - 0.6 * rows))
    return np.stack([0.5 + 0.1 * base, 0.5 + 0.08 * base, 0.45 + 0.12 * np.cos(0.3 * rows)], axis=-1)


def _burst(size: int, shifts, sigma: float = 0.0, seed: int = 0) -> list[np.ndarray]:
    """Frames ``y_k(p) = scene(p + t_k)`` sampled exactly (no interpolation), with white noise."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    rng = np.random.default_rng(seed)
    return [(_scene(rows + dy, cols + dx) + rng.normal(0, sigma, (size, size, 3))).astype(np.float32)
            for dy, dx in shifts]


def test_frames_are_moved_onto_the_first_grid_to_the_scene_sampled_there() -> None:
    """Reference: the scene sampled on the first frame's grid (analytic, no resampling)."""
    shifts = [(0.0, 0.0), (1.3, -2.6), (-0.5, 0.75)]
    frames = _burst(72, shifts)
    aligned, found = aligned_to_first(frames)
    assert found[0] == (0.0, 0.0) and aligned[0] is not None
    for (dy, dx), (fy, fx) in zip(shifts[1:], found[1:]):
        assert abs(fy - dy) < 0.02 and abs(fx - dx) < 0.02, (shifts, found)
    inner = np.s_[8:-8, 8:-8]  # the borders the shifts uncover take the first frame's values
    for moved in aligned[1:]:
        assert moved.dtype == np.float32 and moved.shape == frames[0].shape
        assert np.abs(moved[inner] - frames[0][inner]).max() < 0.01


def test_the_uncovered_border_takes_the_first_frame_and_grey_frames_stay_grey() -> None:
    frames = [f[..., 0] for f in _burst(48, [(0.0, 0.0), (0.0, 3.0)], sigma=0.02)]
    aligned, found = aligned_to_first(frames)
    assert aligned[1].ndim == 2 and abs(found[1][1] - 3.0) < 0.1
    columns = int(np.ceil(found[1][1] - 0.5))  # y(q - t) with q - t more than half a pixel left of the frame
    assert np.array_equal(aligned[1][:, :columns], frames[0][:, :columns])
    assert not np.array_equal(aligned[1][:, columns], frames[0][:, columns])
    # a shift of a tenth of a pixel takes no column of the first frame (its noise alone there)
    small = [f[..., 0] for f in _burst(48, [(0.0, 0.0), (0.0, 0.1)], sigma=0.02)]
    aligned, _ = aligned_to_first(small)
    assert not np.equal(aligned[1][:, 0], small[0][:, 0]).any()


def test_a_fourier_move_keeps_white_noise_white_and_its_level() -> None:
    """Why the frames are moved in the Fourier domain: a cubic interpolation by half a pixel lowers
    the noise of the frame it moves (scipy's spline, the reference) and would leave the mean's
    noise uneven between frames; the phase ramp keeps its level and its neighbours uncorrelated."""
    from scipy.ndimage import shift

    from linr.registration import _moved

    noise = np.random.default_rng(3).normal(0, 1, (256, 256)).astype(np.float32)
    moved = _moved(noise, 0.5, 0.5)[16:-16, 16:-16]
    assert abs(moved.std() - 1) < 0.03
    assert abs(np.corrcoef(moved[:, 1:].ravel(), moved[:, :-1].ravel())[0, 1]) < 0.05
    cubic = shift(noise.astype(np.float64), (0.5, 0.5), order=3, mode="mirror")[16:-16, 16:-16]
    assert cubic.std() < 0.85


def test_the_least_squares_step_finds_the_shift_closer_than_the_correlation() -> None:
    errors = {"correlation": [], "refined": []}
    for seed in range(4):
        truth = (1.35 + 0.2 * seed, -0.85)
        first, moving = (_grey for _grey in (f.mean(axis=2) for f in _burst(96, [(0, 0), truth], 0.08, seed)))
        start = estimate_shift(first, moving)
        refined = refined_shift(first, moving, start)
        errors["correlation"].append(np.hypot(start[0] - truth[0], start[1] - truth[1]))
        errors["refined"].append(np.hypot(refined[0] - truth[0], refined[1] - truth[1]))
    assert np.mean(errors["refined"]) < 0.5 * np.mean(errors["correlation"]), errors
    assert max(errors["refined"]) < 0.1, errors
    flat = np.full((40, 40), 0.5)
    assert refined_shift(flat, flat, (0.3, -0.2)) == (0.3, -0.2)  # nothing to align by: the start


def test_a_registered_noisy_burst_is_aligned_then_averaged_and_other_registrations_are_not() -> None:
    clean = _burst(64, [(0.0, 0.0)])[0]
    frames = _burst(64, [(0.0, 0.0), (2.0, -1.5), (-1.0, 2.5)], sigma=0.05, seed=5)
    burst = [linr.noisy(f) for f in frames]
    assert aligns_burst(burst, register="translation", preset=None)
    for register, preset in (("affine", None), ("translation", "paper"), (None, None)):
        assert not aligns_burst(burst, register=register, preset=preset)
    assert not aligns_burst(burst[:1], register="translation", preset=None)
    assert not aligns_burst([linr.noisy(f, noise="poisson", peak=30) for f in frames], register="translation",
                            preset=None)
    assert not aligns_burst([linr.noisy(frames[0]), linr.lowres(frames[1][::2, ::2], 2)], register="translation",
                            preset=None)
    moved, found = aligned_burst(burst, register="translation", preset=None)
    assert found[0] is None and all(t["method"] == ALIGNED and t["name"] == "translation" for t in found[1:])
    assert abs(found[1]["shift_y"] - 2.0) < 0.1 and abs(found[2]["shift_x"] - 2.5) < 0.1
    inner = np.s_[4:-4, 4:-4]
    (mean,) = as_fitted(burst, register="translation")  # one photo: the aligned frames' mean
    unaligned = np.mean(frames, axis=0)
    error = np.sqrt(np.mean((mean.image[inner] - clean[inner]) ** 2))
    assert error < 0.05 / np.sqrt(3) * 1.15  # the noise of three frames' mean
    assert np.sqrt(np.mean((unaligned[inner] - clean[inner]) ** 2)) > 2 * error
    untouched, none = aligned_burst(burst, register="affine", preset=None)
    assert none is None and all(a is b for a, b in zip(untouched, burst))


def test_restore_records_the_shifts_and_fits_one_photo() -> None:
    frames = _burst(40, [(0.0, 0.0), (1.5, 1.0)], sigma=0.05, seed=1)
    result = linr.restore([linr.noisy(f) for f in frames], register="translation", steps=3, device="cpu",
                          progress=False)
    assert result.settings["clipping"]["frames_averaged"] == 2
    assert [o["kind"] for o in result.settings["observations"]] == ["noisy"]
    reference, moved = result.settings["registration"]
    assert reference is None and moved["method"] == ALIGNED
    assert moved["shift_y"] == pytest.approx(1.5, abs=0.15) and moved["shift_x"] == pytest.approx(1.0, abs=0.15)


def test_a_frame_still_shifted_after_alignment_is_said_to_be_so() -> None:
    from linr.cli import _clipping_line

    route = {"frames_left_out": {"3": [2.0, -1.0]}, "frames_averaged": 2, "weights": [0.5, 0.5, 0.0],
             "sigmas": [20.0, 20.0, 20.0], "clipped_at_black": False, "clipped_at_white": False}
    moved = [None, {"name": "translation", "shift_x": 1.0, "shift_y": 0.5, "method": ALIGNED}, None]
    line = _clipping_line({"clipping": route, "registration": moved})
    assert "frame 3 of the burst still shifted against the first after they were moved onto its grid" in line
    assert "do the frames show one scene?" in line and "--register translation moves" not in line
    plain = _clipping_line({"clipping": route})
    assert "frame 3 of the burst shifted against the first (by up to 2.0 px)" in plain
    assert "--register translation moves every frame onto the first's grid" in plain
    named = _clipping_line({"clipping": route}, names=["a.png", "b.png", "c.png"])
    assert "frame 3 (c.png) of the burst shifted" in named
    # the frames of one multi-image file share its name: their numbers alone
    assert "frame 3 of the burst shifted" in _clipping_line({"clipping": route}, names=["s.tif"] * 3)


def test_a_moved_frame_gives_way_to_the_first_only_where_they_disagree_beyond_their_noise() -> None:
    from linr.registration import kept_where_agreeing

    one = _burst(64, [(0.0, 0.0), (0.0, 0.0)], sigma=0.05, seed=2)  # one scene, two noise draws
    kept, share = kept_where_agreeing(one[1], one[0], 0.05, 0.05)
    assert share < 0.01 and np.abs(kept - one[1]).mean() < 0.01 * 0.05
    rng = np.random.default_rng(4)
    other = (0.5 + 0.3 * np.sign(np.sin(np.arange(64) / 3.0))[None, :, None] * np.ones((64, 64, 3))
             + rng.normal(0, 0.05, (64, 64, 3))).astype(np.float32)  # another scene: stripes
    kept, share = kept_where_agreeing(other, one[0], 0.05, 0.05)
    assert share > 0.5
    gave_way = np.abs(kept - one[0]) < 1e-6
    assert gave_way.mean() > 0.4  # wholly the first frame's there
    assert kept.dtype == np.float32 and kept.shape == other.shape


def test_texture_that_disagrees_either_way_gives_way_though_its_mean_difference_is_nothing() -> None:
    """A turned frame's misaligned texture differs from the first by as much up as down: the box
    mean of the difference is within the noise, the mean of its square is not."""
    from linr.registration import AGREE_WINDOW, kept_where_agreeing

    rng = np.random.default_rng(5)
    scene = np.full((40, 40), 0.5)
    first = scene + rng.normal(0, 0.03, scene.shape)
    texture = 0.15 * (-1.0) ** np.add.outer(np.arange(40), np.arange(40))  # a checkerboard
    moved = scene + np.where(np.arange(40)[None, :] >= 20, texture, 0.0) + rng.normal(0, 0.03, scene.shape)
    boxed = np.abs(np.mean((moved - first)[10:15, 25:30]))
    assert boxed < 4 * np.hypot(0.03, 0.03) / AGREE_WINDOW  # the mean test alone keeps it
    kept, share = kept_where_agreeing(moved.astype(np.float32), first.astype(np.float32), 0.03, 0.03)
    np.testing.assert_allclose(kept[:, 24:], first[:, 24:], atol=1e-6)  # the textured half: the first's
    assert np.abs(kept[:, :16] - moved[:, :16]).max() < 1e-6  # the half that agrees: its own
    assert 0.4 < share < 0.6


def test_a_frame_of_another_scene_in_a_registered_burst_is_mostly_replaced_and_said(tmp_path, capsys) -> None:
    from linr.cli import main
    from linr.images import write_image

    frames = _burst(48, [(0.0, 0.0), (1.0, -2.0)], sigma=0.04, seed=6)
    rng = np.random.default_rng(7)
    stripes = (0.5 + 0.3 * np.sign(np.sin(np.arange(48) / 2.5))[:, None, None] * np.ones((48, 48, 3))
               + rng.normal(0, 0.04, (48, 48, 3)))
    for k, f in enumerate([*frames, stripes]):
        write_image(tmp_path / f"f{k}.png", np.clip(f, 0, 1).astype(np.float32))
    write_image(tmp_path / "clean.png", _burst(48, [(0.0, 0.0)])[0])
    assert main(["restore", "--noisy", str(tmp_path / "f*.png"), "--register", "translation", "-o",
                 str(tmp_path / "o.png"), "--steps", "3", "--device", "cpu", "--reference",
                 str(tmp_path / "clean.png")]) == 0
    out = capsys.readouterr().out
    assert "(the same convention; the frames as given, before they were moved onto the first's grid)" in out
    assert "f2.png (noisy)" in out and "the first frame's were taken: does it show the same scene?" in out
    (line,) = [line for line in out.splitlines() if "f1.png (noisy): x " in line]
    assert "disagreed" not in line  # a frame of the scene keeps its values


def _turned_burst(size: int, angle_degrees: float, shift: tuple[float, float], sigma: float = 0.0,
                  seed: int = 0) -> list[np.ndarray]:
    """The first frame and one that shows the scene turned about the centre and shifted:
    ``y(p) = scene(R (p - c) + c + t)``, sampled exactly."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    c, a = (size - 1) / 2, np.radians(angle_degrees)
    turned_rows = np.cos(a) * (rows - c) + np.sin(a) * (cols - c) + c + shift[0]
    turned_cols = -np.sin(a) * (rows - c) + np.cos(a) * (cols - c) + c + shift[1]
    rng = np.random.default_rng(seed)
    return [(s + rng.normal(0, sigma, s.shape)).astype(np.float32)
            for s in (_scene(rows, cols), _scene(turned_rows, turned_cols))]


def test_a_turned_frame_is_turned_back_onto_the_first_grid() -> None:
    """Reference: the scene sampled on the first frame's grid (analytic); the turn found to a
    hundredth of a degree, the frame moved to within 0.02 of it inside the uncovered border."""
    from linr.registration import estimated_turn

    first, turned = _turned_burst(120, 1.5, (0.7, -1.2))
    assert abs(np.degrees(estimated_turn(first.mean(-1), turned.mean(-1))) - 1.5) < 0.01
    turns: list[float] = []
    aligned, found = aligned_to_first([first, turned], turns)
    assert turns[0] == 0.0 and abs(turns[1] - 1.5) < 0.01
    inner = np.s_[10:-10, 10:-10]
    assert np.abs(aligned[1][inner] - first[inner]).max() < 0.02
    assert np.abs(turned[inner] - first[inner]).max() > 0.2  # unmoved it was far off
    # a frame only shifted is not turned (its turn is below what moves its corners a quarter pixel)
    turns = []
    aligned_to_first(_burst(120, [(0.0, 0.0), (0.4, 1.3)], sigma=0.02), turns)
    assert turns == [0.0, 0.0]


def test_a_turn_by_three_shears_keeps_white_noise_white_and_its_level() -> None:
    from linr.registration import _turned

    noise = np.random.default_rng(3).normal(0, 0.1, (160, 160)).astype(np.float32)
    out = _turned(noise, np.radians(2.0))[20:-20, 20:-20]
    assert abs(out.std() / 0.1 - 1) < 0.03
    assert abs(np.corrcoef(out[:, :-1].ravel(), out[:, 1:].ravel())[0, 1]) < 0.03
    assert abs(np.corrcoef(out[:-1].ravel(), out[1:].ravel())[0, 1]) < 0.03


def test_a_turned_frame_s_line_says_it_was_turned_back(tmp_path, capsys) -> None:
    from linr.cli import main
    from linr.images import write_image

    for k, frame in enumerate(_turned_burst(120, 2.0, (0.5, 1.0), sigma=0.02, seed=4)):
        write_image(tmp_path / f"t{k}.png", np.clip(frame, 0, 1))
    assert main(["restore", "--noisy", str(tmp_path / "t*.png"), "--register", "translation", "-o",
                 str(tmp_path / "o.png"), "--steps", "2", "--refine", "none"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"t1\.png \(noisy\): x [-+.\d]+, y [-+.\d]+, turned back by \+(1\.9\d|2\.0\d) degrees first", out), out


def test_a_smooth_photo_s_shift_is_found_where_the_correlation_s_broad_peak_misleads() -> None:
    """A new user's 64-px crops of a baby's face (noise 25): the correlation's peak was 1.9 and 2.2
    px off and least squares from there stopped at a false minimum (registering cost 1.3 dB against
    leaving the frames out); the whole-pixel search of the mean squared difference around it
    finds the shifts."""
    from linr.registration import _grey, located_shift

    from .conftest import load

    image = load("set5/baby.png")
    top, left = image.shape[0] // 2 - 32, image.shape[1] // 2 - 32
    rng = np.random.default_rng(5)
    first = image[top:top + 64, left:left + 64]

    def noisy(x):
        return np.clip(x + rng.normal(0, 25 / 255, x.shape), 0, 1).astype(np.float32)

    reference = noisy(first)
    misled = 0
    for dy, dx in [(2, -1), (-3, 2), (1, 3), (-2, -2)]:
        moving = noisy(image[top + dy:top + dy + 64, left + dx:left + dx + 64])
        a, b = _grey(reference), _grey(moving)
        found = located_shift(a, b)
        assert abs(found[0] - dy) < 0.3 and abs(found[1] - dx) < 0.3, ((dy, dx), found)
        before = refined_shift(a, b, estimate_shift(a, b))
        misled += max(abs(before[0] - dy), abs(before[1] - dx)) > 0.5
    assert misled >= 1  # the case is one the correlation alone gets wrong


def test_what_one_shift_leaves_is_undone_tile_by_tile_and_noise_alone_moves_no_tile() -> None:
    """A frame whose scene moved by a smooth field (parallax, a slow subject) on top of one shift:
    after the whole move, its tiles' own remaining shifts are undone (locally_aligned), bringing it
    within a fraction of its error before; frames that are only shifted, noise and all, get no tile
    moved (the shift's significance counts the noise's share of the gradients)."""
    from linr.registration import locally_aligned

    size = 96
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    field = 0.8 * np.sin(2 * np.pi * (rows + 0.5 * cols) / 160)  # up to 0.8 px, smooth
    first = _scene(rows, cols).astype(np.float32)
    warped = _scene(rows + 1.0 + field, cols - 2.0 + 0.5 * field).astype(np.float32)
    (_, moved), _ = aligned_to_first([first, warped])
    local, tiles, largest = locally_aligned(moved, first)
    inner = np.s_[8:-8, 8:-8]
    before = float(np.sqrt(np.mean((moved - first)[inner] ** 2)))
    after = float(np.sqrt(np.mean((local - first)[inner] ** 2)))
    assert tiles >= 10 and 0.2 < largest < 1.2 and after < 0.35 * before, (tiles, largest, before, after)
    for seed in range(3):  # shifted only, with noise: nothing left to undo
        noisy = _burst(size, [(0.0, 0.0), (1.5, -0.5)], sigma=0.02, seed=seed)
        (_, shifted), _ = aligned_to_first(noisy)
        same, tiles, _ = locally_aligned(shifted, noisy[0])
        assert tiles == 0 and np.array_equal(same, shifted)


def test_noise_shared_by_the_channels_moves_no_tile() -> None:
    """A camera's channels share part of their noise (demosaicing): the grey frames' noise is
    measured on them, not the colour levels over the root of the channels, which understated it
    and moved up to 15 of 100 tiles of a still butterfly crop at sigma 50 (a reviewer's check)."""
    from linr.registration import locally_aligned

    from .conftest import load

    rng = np.random.default_rng(1)
    for name in ("set5/butterfly.png", "set5/head.png"):
        image = load(name)
        h, w = image.shape[:2]
        still = image[h // 2 - 48:h // 2 + 48, w // 2 - 48:w // 2 + 48]
        for sigma in (25, 50):
            a, b = (np.clip(still + rng.normal(0, sigma / 255, still.shape[:2])[..., None], 0, 1).astype(np.float32)
                    for _ in range(2))
            assert locally_aligned(b, a)[1] == 0, (name, sigma)


def test_a_smooth_photo_s_shifted_frame_is_left_out_of_an_unregistered_burst() -> None:
    """A second new user's 80-px crops of a baby's face, shifted by (3, -2) px at sigma 20 (no
    --register): the correlation's broad peak took the frame for aligned and the burst's mean came
    back 5 dB under the first frame alone; the whole-pixel least-squares search finds it."""
    from linr.registration import misaligned_by

    from .conftest import load

    image = load("set5/baby.png")
    top, left = image.shape[0] // 2 - 40, image.shape[1] // 2 - 40
    rng = np.random.default_rng(3)

    def noisy(dy, dx):
        crop = image[top + dy:top + dy + 80, left + dx:left + dx + 80]
        return np.clip(crop + rng.normal(0, 20 / 255, crop.shape), 0, 1).astype(np.float32)

    first = noisy(0, 0)
    for dy, dx in [(3, -2), (-2, 5), (5, 4), (2, 3)]:
        shift = misaligned_by(first, noisy(dy, dx))
        assert shift is not None and abs(shift[0] - dy) <= 0.6 and abs(shift[1] - dx) <= 0.6, ((dy, dx), shift)
    for seed in range(3):  # aligned frames stay aligned
        rng = np.random.default_rng(10 + seed)
        assert misaligned_by(first, noisy(0, 0)) is None


def test_a_frame_s_line_says_how_many_tiles_were_moved_further(tmp_path, capsys) -> None:
    """A second new user saw ``tiles_moved`` in the report only: the frame's line says it too."""
    from linr.cli import main
    from linr.images import write_image

    size = 96
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    field = 0.8 * np.sin(2 * np.pi * (rows + 0.5 * cols) / 160)
    rng = np.random.default_rng(0)
    frames = [_scene(rows, cols), _scene(rows + 1.0 + field, cols - 2.0 + 0.5 * field)]
    for k, frame in enumerate(frames):
        write_image(tmp_path / f"w{k}.png", np.clip(frame + rng.normal(0, 0.01, frame.shape), 0, 1))
    assert main(["restore", "--noisy", str(tmp_path / "w*.png"), "--register", "translation", "-o",
                 str(tmp_path / "o.png"), "--steps", "2", "--refine", "none", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"w1\.png \(noisy\): x [-+.\d]+, y [-+.\d]+; \d+ tile\(s\) of 32 px moved further, by up to "
                     r"0\.\d\d px", out), out
