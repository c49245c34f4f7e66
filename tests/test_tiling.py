"""Tiled restoration: operators restricted to windows, the tile grid and its blending weights,
the tiled fit (seams, stacking, resume), and the options that choose it."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np

import linr
import pytest
import torch
from PIL import Image
from scipy.ndimage import convolve

from linr.errors import InputError
from linr.models import ModelConfig
from linr.operators import Blur, Compose, Downsample, Identity, Mask, Window
from linr.tasks import lowres, noisy, restore, tile_grid
from linr.tiling import TileStore, fit_tiled, parse_tile, plan_grid, tile_observations, tile_store_path

RNG = np.random.default_rng(3)
SHAPE = (48, 60)


def _operators():
    h, w = SHAPE
    return {
        "identity": Identity(),
        "mask": Mask(RNG.random((h, w)) > 0.5),
        "mask per channel": Mask(RNG.random((3, h, w)) > 0.5),
        "x2 lanczos2": Downsample(2),
        "x3 bicubic": Downsample(3, "bicubic"),
        "x4 lanczos2": Downsample(4),
        "x6 box": Downsample(6, "box"),
        "blur 5x7 reflect": Blur(RNG.random((5, 7)), boundary="reflect"),
        "blur 4x6 reflect": Blur(RNG.random((4, 6)), boundary="reflect"),
        "blur 5x5 circular": Blur(RNG.random((5, 5)), boundary="circular"),
        "blur then x2": Compose([Blur(RNG.random((3, 3))), Downsample(2)]),
        "x2 then mask": Compose([Downsample(2), Mask(RNG.random((h // 2, w // 2)) > 0.3)]),
    }


@pytest.mark.parametrize("name", list(_operators()))
def test_a_window_operator_equals_the_whole_one_on_its_valid_pixels(name):
    op = _operators()[name]
    x = torch.from_numpy(RNG.random((1, 3, *SHAPE)))  # float64: exact comparisons
    whole = op(x)
    a = op.alignment
    windows = [Window(0, 0, 24, 24), Window(12, 12, 24, 24), Window(24, 36, 24, 24),
               Window(0, 0, 48, 60), Window(24, 0, 24, 60)]
    for win in windows:
        win = Window(*(v - v % a for v in (win.top, win.left)), win.height - win.height % a,
                     win.width - win.width % a)
        part = op.tile(win, SHAPE)
        got = part.operator(x[(..., *win.slices)])
        want = whole[(..., *part.window.slices)]
        assert got.shape == want.shape
        valid = np.ones(want.shape[-2:], bool) if part.valid is None else part.valid
        assert valid.any()
        assert torch.allclose(got[..., torch.from_numpy(valid)], want[..., torch.from_numpy(valid)],
                              atol=1e-12), (name, win)
        if win.covers(SHAPE):
            assert valid.all()
        if win == Window(12, 12, 24, 24) and name.startswith(("x4", "blur 5x7")):
            assert not valid.all()  # an inner window loses the pixels that read across its edges


@pytest.mark.parametrize("name", ["x4 lanczos2", "x3 bicubic", "blur 4x6 reflect", "blur then x2"])
def test_the_valid_pixels_are_exactly_those_that_do_not_read_outside_the_window(name):
    """Not too cautious either: every pixel marked invalid changes when the image outside the
    window changes (a pixel whose taps cross an inner edge by a zero tap would be kept)."""
    op = _operators()[name]
    win = Window(12, 12, 24, 24)
    part = op.tile(win, SHAPE)
    x = torch.from_numpy(RNG.random((1, 1, *SHAPE)))
    other = torch.from_numpy(RNG.random((1, 1, *SHAPE)))
    other[(..., *win.slices)] = x[(..., *win.slices)]  # the same inside the window only
    changed = (op(x) - op(other))[(0, 0, *part.window.slices)].abs().numpy() > 1e-12
    assert np.array_equal(changed, ~part.valid)
    assert Downsample(4).tile(Window(16, 16, 32, 32), (64, 64)).valid.any(axis=1).tolist() == \
        [False, False, True, True, True, True, False, False]  # taps [4j - 6, 4j + 9] inside [0, 31]


def test_a_reflecting_blur_is_a_direct_convolution_also_for_even_kernels():
    """The kernel's centre is (kh // 2, kw // 2) whatever the boundary: an even kernel's reflecting
    blur used to be shifted by one pixel against the circular one."""
    k = RNG.random((4, 6))
    x = RNG.random((20, 22))
    got = Blur(k, boundary="reflect")(torch.from_numpy(x)[None, None])[0, 0].numpy()
    want = convolve(x, k / k.sum(), mode="mirror")
    assert np.allclose(got, want, atol=1e-12)
    circular = Blur(k, boundary="circular")(torch.from_numpy(x)[None, None])[0, 0].numpy()
    assert np.allclose(got[4:-4, 4:-4], circular[4:-4, 4:-4], atol=1e-12)


@pytest.mark.parametrize("shape,size,overlap,halo,align", [
    ((100, 130), 48, 16, 0, 1), ((96, 96), 32, 12, 2, 4), ((37, 200), 64, 20, 6, 1),
    ((512, 768), 192, 32, 10, 4), ((64, 64), 64, 16, 0, 1),
])
def test_the_grid_covers_the_image_and_its_weights_sum_to_one(shape, size, overlap, halo, align):
    grid = plan_grid(shape, size, overlap, halo=halo, align=align)
    total = np.zeros(shape)
    for window in grid.windows:
        assert window.shape == grid.size  # every tile the same size: they stack
        assert window.top % align == 0 and window.left % align == 0
        weights = grid.weights(window)
        total[window.slices] += weights
        if window.left > 0:
            assert (weights[:, :halo] == 0).all()  # nothing from the band its operators reach across
    assert np.allclose(total, 1.0)
    for starts in (grid.rows, grid.cols):
        for a, b in zip(starts, starts[1:]):
            assert a + grid.size[0 if starts is grid.rows else 1] - b >= grid.overlap


@pytest.mark.parametrize("side,size,overlap,count", [(512, 256, 32, 2), (2048, 256, 32, 8), (1100, 256, 32, 5),
                                                     (600, 256, 32, 3), (256, 256, 32, 1), (280, 256, 32, 2)])
def test_tiles_are_equal_and_few(side, size, overlap, count):
    """Equal tiles of at least the size asked for and at most 1.125 times it, as few as that
    allows: a 512 px side in tiles of 256 px takes two of 272, not three of 256 overlapping by
    128 px; a side just above the size still gets tiles of that size (overlapping more)."""
    from linr.tiling import TILE_GROWTH

    grid = plan_grid((side, side), size, overlap)
    assert len(grid.rows) == count
    assert min(size, side) <= grid.size[0] <= TILE_GROWTH * size


@pytest.mark.parametrize("align,halo", [(1, 0), (3, 7), (4, 10), (8, 12)])
def test_never_more_tiles_than_tiles_of_the_asked_size(align, halo):
    """Over many sides (SR factors align the tiles): never more tiles than the asked size needs
    (starts rounded to the alignment once added a tile: 36 instead of 25 at x3, 1146 px)."""
    import math

    from linr.tiling import TILE_GROWTH, _axis_starts

    size, overlap = 256, 32
    for side in range(257, 3000, 7):
        side = side // align * align
        grid = plan_grid((side, side), size, overlap, halo=halo, align=align)
        asked = math.ceil(size / align) * align
        plain = len(_axis_starts(side, asked, max(overlap, 2 * halo + 8), align))
        assert len(grid.rows) <= plain, side
        assert min(asked, side) <= grid.size[0] <= max(asked, TILE_GROWTH * size) + align, side


def test_tile_settings_are_parsed_and_bad_ones_refused():
    assert parse_tile("auto").mode == "auto" and parse_tile("OFF").mode == "off"
    assert (parse_tile("128:24").size, parse_tile("128:24").overlap) == (128, 24)
    assert parse_tile(96).size == 96
    for bad in ("big", "128:", "8", "64:40", "-1"):
        with pytest.raises(InputError):
            parse_tile(bad)
    with pytest.raises(InputError, match="too small"):
        plan_grid((200, 200), 40, 8, halo=10)
    # the preset's overlap on a tile the operators would fit: the overlap is what to change
    with pytest.raises(InputError, match=r"overlapping by 32 px: .* smaller overlap \(SIZE:OVERLAP, e.g. 48:12\)"):
        plan_grid((200, 200), 48, 32, halo=0)
    assert plan_grid((200, 200), 48, 12, halo=0).overlap == 12
    # ... and a size asked for with no overlap takes the preset's 32 only where it is at most half a
    # tile, else a quarter of the tile (a new user's --tile 48 was refused for an overlap never given)
    from linr.tiling import grid_for as tiles_for

    photo = [linr.noisy(np.zeros((200, 200, 3), np.float32))]
    assert tiles_for(photo, parse_tile("48"), size=256, overlap=32, whole_up_to=1024).overlap == 12
    assert tiles_for(photo, parse_tile("64"), size=256, overlap=32, whole_up_to=1024).overlap == 32
    assert tiles_for(photo, parse_tile("48:20"), size=256, overlap=32, whole_up_to=1024).overlap == 20
    with pytest.raises(InputError, match="half the tile size"):  # an overlap asked for is kept, or refused
        tiles_for(photo, parse_tile("48:32"), size=256, overlap=32, whole_up_to=1024)
    # a size asked for that a wide operator cannot use is refused; 'auto' tiles large enough
    from linr.tiling import MIN_RAMP, grid_for

    wide = [linr.blurred(np.zeros((96, 1100, 1), np.float32), "gaussian:101:10")]
    with pytest.raises(InputError, match="too small"):
        grid_for(wide, parse_tile("256"), size=256, overlap=32, whole_up_to=1024)
    grid = grid_for(wide, parse_tile("auto"), size=256, overlap=32, whole_up_to=1024)
    assert grid is not None and grid.overlap == 2 * grid.halo + MIN_RAMP and grid.size[1] >= 2 * grid.overlap


def _smooth_image(h: int, w: int) -> np.ndarray:
    y, x = np.mgrid[0:h, 0:w] / max(h, w)
    img = np.stack([0.5 + 0.3 * np.sin(4 * x + 2 * y), 0.4 + 0.3 * np.cos(3 * y), 0.5 + 0.2 * x * y], -1)
    return img.astype(np.float32)


SMALL = ModelConfig(width=32, depth=3)


def test_no_seam_where_tiles_meet():
    """Tiled fits of a clean smooth image: the PSNR over the overlaps is no worse than elsewhere
    by more than 1 dB, and the tiled result is close to the whole fit."""
    clean = _smooth_image(64, 80)
    obs = [noisy(clean)]
    tiled = restore(obs, tile="40:16", steps=120, stop="fixed", model=SMALL, lr=1e-3, device="cpu",
                    progress=False)
    grid = plan_grid((64, 80), 40, 16)
    count = np.zeros((64, 80))
    for window in grid.windows:
        count[window.slices] += 1
    seam = count > 1

    def psnr(where):
        return 10 * np.log10(1 / np.mean((tiled.image[where] - clean[where]) ** 2))

    assert tiled.settings["tiling"]["tiles"] == len(grid) > 1
    assert psnr(seam) > psnr(~seam) - 1.0
    assert psnr(np.ones_like(seam)) > 30


def test_tiled_super_resolution_uses_only_pixels_its_window_explains():
    clean = _smooth_image(96, 96)
    small = np.asarray(Image.fromarray((clean * 255).astype(np.uint8)).resize((24, 24), Image.BICUBIC),
                       np.float32) / 255
    parts = tile_observations([lowres(small, 4)], Window(0, 24, 40, 40), (96, 96))
    (part,) = parts
    assert part.image.shape[:2] == (10, 10)
    assert isinstance(part.operator, Compose)  # the window's downsampler, then the valid mask
    result = restore([lowres(small, 4)], tile="56:28", steps=30, stop="fixed", model=SMALL, lr=1e-3, refine="none",
                     device="cpu", progress=False)
    assert result.settings["tiling"]["tiles"] == 9 and result.settings["tiling"]["halo"] == 10
    assert result.image.shape == (96, 96, 3) and np.isfinite(result.image).all()


def test_stacked_tiles_match_tiles_fitted_one_by_one():
    clean = _smooth_image(48, 48)
    y = clean + np.random.default_rng(0).normal(0, 0.1, clean.shape).astype(np.float32)
    kwargs = dict(tile="32:12", steps=12, model=SMALL, device="cpu", progress=False)
    one = restore([noisy(y)], tile_stack=1, **kwargs)
    stacked = restore([noisy(y)], tile_stack=3, **kwargs)
    assert stacked.settings["tiling"]["stack"] == 3
    assert [t["stop_step"] for t in one.settings["tiles"]] == [t["stop_step"] for t in stacked.settings["tiles"]]
    assert np.abs(one.image - stacked.image).max() < 1e-4


def test_a_killed_tiled_run_resumes_without_refitting(tmp_path):
    clean = _smooth_image(40, 56)
    y = clean + np.random.default_rng(1).normal(0, 0.1, clean.shape).astype(np.float32)
    from linr.tasks import resolve

    obs, config = resolve([noisy(y)], steps=6, model=SMALL, device="cpu")
    grid = tile_grid(obs, tile="24:8")
    store = tmp_path / "tiles"

    class Killed(Exception):
        pass

    def kill_after_two(done, total, seconds):
        if done >= 2:
            raise Killed

    with pytest.raises(Killed):
        fit_tiled(obs, config, grid, make_stop=lambda o: None, store=store, progress=kill_after_two)
    assert len(list(store.glob("tile_*.npy"))) == 2
    # the cost said before a rerun counts only the tiles still to fit
    from linr.tiling import finished_tiles, plan_tiles, store_fingerprint

    fingerprint = store_fingerprint(obs, config, grid, "")
    assert finished_tiles(store, fingerprint) == 2 and finished_tiles(tmp_path / "none", fingerprint) == 0
    assert finished_tiles(store, "another") == 0  # another image's or settings' tiles are not resumed
    # the fingerprint knows the operators' arrays, not only their description (a kernel's shape)
    from linr.kinds import blurred
    from linr.operators import gaussian_kernel

    narrow, wide = ([blurred(y, gaussian_kernel(7, s))] for s in (1.0, 3.0))
    assert store_fingerprint(narrow, config, grid, "") != store_fingerprint(wide, config, grid, "")
    every, left = plan_tiles(obs, config, grid), plan_tiles(obs, config, grid, done=2)
    assert left.seconds == pytest.approx(every.seconds * (len(grid) - 2) / len(grid))
    resumed = fit_tiled(obs, config, grid, make_stop=lambda o: None, store=store)
    fresh = fit_tiled(obs, config, grid, make_stop=lambda o: None)
    assert sum(bool(t.get("resumed")) for t in resumed.settings["tiles"]) == 2
    assert np.array_equal(resumed.image, fresh.image)
    assert not store.exists()  # removed once the image is assembled
    # a folder of another image's finished tiles is refused, not mixed in; one with no finished
    # tile (a run interrupted before its first) is reused; store_replace discards finished ones
    other = TileStore(store, "another")
    other.save(0, np.zeros((4, 4, 3), np.float32), {})
    with pytest.raises(InputError, match="another image, other settings or another version.*--force"):
        fit_tiled(obs, config, grid, make_stop=lambda o: None, store=store)
    replaced = fit_tiled(obs, config, grid, make_stop=lambda o: None, store=store, store_replace=True)
    assert np.array_equal(replaced.image, fresh.image) and not store.exists()
    TileStore(store, "another")  # its fingerprint only
    empty = fit_tiled(obs, config, grid, make_stop=lambda o: None, store=store)
    assert np.array_equal(empty.image, fresh.image) and not any(t.get("resumed") for t in empty.settings["tiles"])


def test_automatic_tiling_follows_the_image_size_and_the_preset():
    from linr.tasks import DENOISE_WHOLE_UP_TO, TILE_WHOLE_UP_TO, masked

    def holes(h, w):
        return [masked(np.zeros((h, w, 3), np.float32), np.ones((h, w), bool))]

    small = holes(768, TILE_WHOLE_UP_TO)
    large = [noisy(np.zeros((600, 1100, 3), np.float32))]
    assert tile_grid(small) is None and tile_grid(holes(600, 1100)) is not None
    # the defaults' pilot fit of one noisy photo is tiled from a smaller size; the same photo
    # with a network, a stop rule, no refinement or a model to keep named is not that pilot
    from linr.tasks import pilot_fit

    rng = np.random.default_rng(0)
    for side, tiled in ((DENOISE_WHOLE_UP_TO, False), (DENOISE_WHOLE_UP_TO + 1, True)):
        photo = [noisy(rng.random((side, 300, 3)).astype(np.float32))]
        assert pilot_fit(photo, preset=None)
        assert (tile_grid(photo, pilot=pilot_fit(photo, preset=None)) is not None) == tiled
    # in tiles of its own size (128 px since the forty-sixth session), not the other fits' 256
    from linr.tasks import DENOISE_TILE_SIZE

    assert tile_grid(photo, pilot=True).size == (DENOISE_TILE_SIZE, DENOISE_TILE_SIZE) == (128, 128)
    assert tile_grid(photo, pilot=True, preset="paper") is None  # a preset: its own rule
    assert tile_grid(photo, pilot=True, tile="256").size == (256, 256)  # a size asked for is kept
    for other in (dict(model=linr.ModelConfig(width=256)), dict(stop="fixed"), dict(refine="none"),
                  dict(keep_model=True), dict(preset="paper")):
        assert not pilot_fit(photo, **{"preset": None, **other}), other
    assert tile_grid(photo) is None  # not the pilot: the other tasks' size
    assert tile_grid(large) is not None
    assert tile_grid(large, preset="paper") is None  # the paper's mathematics: one fit per image
    assert tile_grid(large, preset="paper", tile="128") is not None  # unless asked for
    assert tile_grid(large, register="translation") is None  # registration: one network of the whole image
    assert tile_grid(large, tile="off", register="translation") is None
    with pytest.raises(InputError, match=r"registration \(--register\) needs one fit of the whole image"):
        tile_grid(large, tile="256", register="translation")  # tiles of a given size cannot be registered
    assert tile_grid(small, tile="256").size == (278, 280)  # 3 x 4 equal tiles of about 256
    assert tile_grid(large, tile="off") is None


def test_a_tiled_restore_from_the_command_line(tmp_path):
    clean = _smooth_image(40, 48)
    y = np.clip(clean + np.random.default_rng(2).normal(0, 0.08, clean.shape), 0, 1)
    Image.fromarray((y * 255).round().astype(np.uint8)).save(tmp_path / "in.png")
    out, report = tmp_path / "out.png", tmp_path / "r.json"
    cmd = [sys.executable, "-m", "linr", "restore", "--noisy", str(tmp_path / "in.png"), "-o", str(out),
           "--tile", "24:8", "--steps", "4", "--width", "16", "--depth", "2", "--device", "cpu",
           "--report", str(report), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "in 6 tiles of 24x24" in done.stderr
    assert Image.open(out).size == (48, 40)
    settings = json.loads(report.read_text())["settings"]
    assert settings["tiling"]["tiles"] == len(settings["tiles"]) > 1
    assert not (tmp_path / "out.png.tiles").exists()
    bad = subprocess.run(cmd[:6] + ["--tile", "huge", "-o", str(tmp_path / "o2.png")],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "expected auto, off, SIZE" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) <= 2 and "Traceback" not in bad.stderr


def _workers_case():
    clean = _smooth_image(40, 56)
    y = clean + np.random.default_rng(3).normal(0, 0.1, clean.shape).astype(np.float32)
    from linr.tasks import resolve

    obs, config = resolve([noisy(y)], steps=8, model=SMALL, device="cpu")
    return obs, config, tile_grid(obs, tile="24:8")


def _stop_rule(part):
    from linr.tasks import resolve_stop

    return resolve_stop(part)  # the default hold-out rule: state travels with each tile


def test_tiles_on_worker_processes_give_the_same_image_to_the_bit(tmp_path):
    import torch

    from linr.batch.local import PoolBackend
    from linr.tiling import fit_tile_group

    obs, config, grid = _workers_case()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = fit_tiled(obs, config, grid, make_stop=_stop_rule, stack=2)
    finally:
        torch.set_num_threads(previous)
    pool = PoolBackend(2, task=fit_tile_group)
    store = tmp_path / "tiles"
    try:
        spread = fit_tiled(obs, config, grid, make_stop=_stop_rule, stack=2, executor=pool,
                           threads=1, store=store)
    finally:
        pool.close(abort=False)
    assert len(grid) > 2
    assert np.array_equal(here.image, spread.image)
    assert [t["stop_step"] for t in here.settings["tiles"]] == [t["stop_step"] for t in spread.settings["tiles"]]
    assert not store.exists()


def test_tiles_on_a_local_ray_cluster_give_the_same_image_to_the_bit(tmp_path):
    pytest.importorskip("ray")
    import torch

    from linr.batch.ray_backend import RayBackend
    from linr.cli import main
    from linr.tiling import fit_tile_group

    obs, config, grid = _workers_case()
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        here = fit_tiled(obs, config, grid, make_stop=_stop_rule)
    finally:
        torch.set_num_threads(previous)
    ray = RayBackend(address=None, device="cpu", cpus_per_task=1.0, gpus_per_task=0.25, num_cpus=2,
                     task=fit_tile_group)
    try:
        spread = fit_tiled(obs, config, grid, make_stop=_stop_rule, executor=ray, threads=1)
        # linr batch --backend ray on the same local cluster (one start-up for both): its tiled
        # image's tiles are Ray tasks too, and its outputs are those of a batch without Ray
        src = _batch_folder(tmp_path)
        assert main(["batch", str(src), "-o", str(tmp_path / "ray"), "--backend", "ray",
                     "--ray-cpus-per-task", "1", *BATCH_FIT]) == 0
    finally:
        ray.close(abort=False)
    assert np.array_equal(here.image, spread.image)
    assert main(["batch", str(src), "-o", str(tmp_path / "here"), *BATCH_FIT]) == 0
    for name in ("big.png", "small.png"):
        _same_bytes(tmp_path / "here" / name, tmp_path / "ray" / name)


def test_a_tile_that_fails_on_a_worker_stops_the_restoration_with_its_message():
    from linr.batch.local import InlineBackend
    from linr.errors import DivergenceError
    from linr.tiling import fit_tile_group

    obs, config, grid = _workers_case()
    bad = dataclasses.replace(config, lr=1e9)  # diverges at once
    with pytest.raises(DivergenceError, match="a tile's fit failed"):
        fit_tiled(obs, bad, grid, make_stop=lambda o: None, executor=InlineBackend(task=fit_tile_group))


def test_a_failed_tile_cancels_the_tiles_still_in_flight():
    """The image fails at its first failed tile, and the tiles still running or queued on the
    workers are stopped, not left to run beside the next image."""
    from linr.errors import DivergenceError

    class Recording:  # three tiles in flight; the first to finish reports a failure
        slots = 3

        def __init__(self):
            self.submitted, self.cancelled = [], []

        def submit(self, batch):
            self.submitted.append(len(self.submitted))
            return self.submitted[-1]

        def wait(self, handles):
            return [(handles[0], {"error": "boom", "kind": "DivergenceError"})]

        def cancel(self, handles):
            self.cancelled.extend(handles)

    obs, config, grid = _workers_case()
    assert len(grid.windows) > 3
    executor = Recording()
    with pytest.raises(DivergenceError, match="a tile's fit failed: boom"):
        fit_tiled(obs, config, grid, make_stop=lambda o: None, executor=executor)
    assert executor.submitted == [0, 1, 2] and executor.cancelled == [1, 2]


def test_tiles_finished_beside_a_failed_one_are_kept_for_the_rerun(tmp_path):
    """One wait() returns a failed tile and a finished one: the finished one is stored before
    the image fails, so a rerun does not fit it again."""
    from linr.errors import DivergenceError
    from linr.tiling import TileStore, fit_tile_group, store_fingerprint

    class FailFirst:  # two tiles in flight; the first reports a failure, the second finishes
        slots = 2

        def __init__(self):
            self.batches = {}

        def submit(self, batch):
            self.batches[len(self.batches)] = batch
            return len(self.batches) - 1

        def wait(self, handles):
            return [(handles[0], {"error": "boom", "kind": "DivergenceError"}),
                    (handles[1], fit_tile_group(self.batches[handles[1]]))]

    obs, config, grid = _workers_case()
    store = tmp_path / "tiles"
    with pytest.raises(DivergenceError, match="boom"):
        fit_tiled(obs, config, grid, make_stop=lambda o: None, executor=FailFirst(), store=str(store),
                  stop_name="fixed")
    saved = TileStore(str(store), store_fingerprint(obs, config, grid, "fixed"))
    assert saved.load(0) is None and saved.load(1) is not None


def test_a_worker_pool_cancels_running_groups_and_starts_afresh():
    import time

    from linr.batch.local import PoolBackend

    pool = PoolBackend(2, task=time.sleep)
    try:
        slow = [pool.submit(60), pool.submit(60)]
        time.sleep(0.5)
        t0 = time.perf_counter()
        pool.cancel(slow)
        assert time.perf_counter() - t0 < 30  # the running sleeps were stopped, not waited for
        handle = pool.submit(0)
        assert pool.wait([handle]) == [(handle, None)]  # a fresh pool serves the next group
    finally:
        pool.close(abort=True)


def test_workers_from_the_command_line(tmp_path, capsys):
    from linr.cli import main

    clean = _smooth_image(40, 48)
    Image.fromarray((clean * 255).round().astype(np.uint8)).save(tmp_path / "in.png")
    base = ["restore", "--noisy", str(tmp_path / "in.png"), "--steps", "4", "--width", "16", "--depth",
            "2", "--device", "cpu", "--quiet"]
    assert main([*base, "-o", str(tmp_path / "a.png"), "--tile", "24:8", "--workers", "2"]) == 0
    assert "2 worker processes" in capsys.readouterr().err
    assert Image.open(tmp_path / "a.png").size == (48, 40)
    for extra, message in [(["--workers", "2"], "restored whole"),
                           (["--ray-address", "auto", "--tile", "24:8"], "needs --backend ray"),
                           (["--backend", "ray", "--workers", "2", "--tile", "24:8"], "Ray sizes itself")]:
        assert main([*base, "-o", str(tmp_path / "b.png"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and err.count("\n") == 0, err


def _batch_folder(root):
    """A folder with one image restored in tiles (--tile 24:8) and one small enough to be whole."""
    src = root / "in"
    src.mkdir()
    for name, (h, w), seed in (("big", (40, 56), 3), ("small", (20, 20), 4)):
        clean = _smooth_image(h, w)
        y = np.clip(clean + np.random.default_rng(seed).normal(0, 0.08, clean.shape), 0, 1)
        Image.fromarray((y * 255).round().astype(np.uint8)).save(src / f"{name}.png")
    return src


BATCH_FIT = ["--task", "noisy", "--steps", "6", "--width", "16", "--depth", "2", "--device", "cpu",
             "--threads", "1", "--quiet", "--tile", "24:8"]


def test_a_batch_spreads_a_tiled_image_over_its_workers_and_writes_the_same_bytes(tmp_path):
    import json

    from linr.cli import main

    src = _batch_folder(tmp_path)
    assert main(["batch", str(src), "-o", str(tmp_path / "one"), *BATCH_FIT]) == 0
    assert main(["batch", str(src), "-o", str(tmp_path / "two"), "--workers", "2", *BATCH_FIT]) == 0
    for name in ("big.png", "small.png"):
        _same_bytes(tmp_path / "one" / name, tmp_path / "two" / name)
    records = {}
    for line in (tmp_path / "two" / "manifest.jsonl").read_text().splitlines():
        record = json.loads(line)
        records[record["image"]] = record
    assert records["big"]["run"]["tiles_on"] == "local, 2 tile batches in flight"
    assert len(records["big"]["settings"]["tiles"]) > 2
    assert "tiles_on" not in records["small"]["run"]  # whole: one fit on one worker
    assert not list((tmp_path / "two").glob("*.tiles"))  # the finished tiles go once written


def test_an_interrupted_batch_resumes_a_tiled_image_without_refitting_its_finished_tiles(tmp_path, monkeypatch):
    import linr.tiling as tiling
    from linr.cli import main

    src = _batch_folder(tmp_path)
    out = tmp_path / "out"
    fitted: list[list[int]] = []
    real = tiling.fit_tile_group

    def interrupted_after_two(batch):
        if len(fitted) == 2:
            raise KeyboardInterrupt  # as Ctrl-C during the third tile
        fitted.append(batch.indices)
        return real(batch)

    monkeypatch.setattr(tiling, "fit_tile_group", interrupted_after_two)
    assert main(["batch", str(src), "-o", str(out), *BATCH_FIT]) == 130
    assert len(list((out / "big.png.tiles").glob("tile_*.npy"))) == 2  # kept beside the output
    first = [i for indices in fitted for i in indices]
    fitted.clear()

    def counted(batch):
        fitted.append(batch.indices)
        return real(batch)

    monkeypatch.setattr(tiling, "fit_tile_group", counted)
    assert main(["batch", str(src), "-o", str(out), *BATCH_FIT]) == 0
    again = [i for indices in fitted for i in indices]
    assert not set(first) & set(again) and len(first) + len(again) > 2  # none refitted
    assert (out / "big.png").exists() and not (out / "big.png.tiles").exists()
    assert main(["batch", str(src), "-o", str(tmp_path / "straight"), *BATCH_FIT]) == 0
    assert (out / "big.png").read_bytes() == (tmp_path / "straight" / "big.png").read_bytes()



def test_a_batch_discards_tiles_its_folder_holds_from_other_settings(tmp_path):
    """A tile folder beside an output is the batch's own: tiles of other settings (a rerun with
    --force after an interrupted run) are replaced, not a reason to fail the image."""
    from linr.cli import main

    src = _batch_folder(tmp_path)
    stale = tmp_path / "out" / "big.png.tiles"
    stale.mkdir(parents=True)
    (stale / "fingerprint.txt").write_text("tiles of another run\n")
    np.save(stale / "tile_00000.npy", np.zeros((2, 2, 3), np.float32))
    (stale / "tile_00000.json").write_text("{}")
    assert main(["batch", str(src), "-o", str(tmp_path / "out"), *BATCH_FIT]) == 0
    assert not stale.exists()
    assert main(["batch", str(src), "-o", str(tmp_path / "straight"), *BATCH_FIT]) == 0
    assert (tmp_path / "out" / "big.png").read_bytes() == (tmp_path / "straight" / "big.png").read_bytes()


def _same_bytes(a, b):
    """The two files are equal to the byte; else say how far apart their pixels are."""
    if a.read_bytes() != b.read_bytes():
        from linr.images import read_image

        x, y = read_image(a)[0], read_image(b)[0]
        detail = f"pixels differ by up to {np.abs(x - y).max()} at {int((x != y).sum())} values" \
            if x.shape == y.shape else f"shapes {x.shape} and {y.shape}"
        raise AssertionError(f"{a.name}: the files differ ({detail})")


def test_a_noisy_photo_above_the_pilot_size_keeps_whole_fits_for_models_and_ensembles(tmp_path):
    """Only the defaults' pilot is tiled from DENOISE_WHOLE_UP_TO px: a model to save or an
    ensemble (which need one network of the whole image) still get one fit."""
    from PIL import Image

    from linr.cli import main
    from linr.tasks import DENOISE_WHOLE_UP_TO

    side = DENOISE_WHOLE_UP_TO + 8
    rng = np.random.default_rng(1)
    Image.fromarray((rng.random((side, side)) * 255).astype(np.uint8)).save(tmp_path / "n.png")
    fit = ["--noisy", str(tmp_path / "n.png"), "--steps", "1", "--device", "cpu", "--quiet"]
    assert main(["restore", *fit, "--save-model", str(tmp_path / "m.pt"), "-o", str(tmp_path / "a.png")]) == 0
    assert (tmp_path / "m.pt").is_file()
    assert main(["restore", *fit, "--ensemble", "2", "--uncertainty", str(tmp_path / "u.tif"),
                 "--report", str(tmp_path / "b.json"), "-o", str(tmp_path / "b.png")]) == 0
    settings = json.loads((tmp_path / "b.json").read_text())["settings"]
    assert "tiling" not in settings and settings["ensemble"]["members"] == 2
    assert main(["restore", *fit, "--report", str(tmp_path / "c.json"), "-o", str(tmp_path / "c.png")]) == 0
    assert json.loads((tmp_path / "c.json").read_text())["settings"]["tiling"]["tiles"] == 16  # the pilot: in tiles of 128


def test_the_whole_images_bytes_count_the_blend_over_the_grown_image():
    """A noisy photo: its own array and the blend (sum and weights); a blur with free edges: the
    blend over the image grown by the kernel's reach, and the frame copied out of it."""
    from linr.kinds import blurred
    from linr.tiling import image_bytes

    y = np.zeros((100, 80, 3), np.float32)
    assert image_bytes([noisy(y)], (100, 80)) == 100 * 80 * 3 * 4 + 100 * 80 * (3 + 1) * 4
    free = [blurred(y, np.ones((5, 5)) / 25, boundary="free")]
    assert image_bytes(free, (100, 80)) == 100 * 80 * 3 * 4 + 104 * 84 * (3 + 1) * 4 + 100 * 80 * 3 * 4


def test_the_pixels_no_tile_trained_on_are_found_again_without_fitting():
    """tiled_held_out draws each tile's held-out pixels again from the stop rule's seed: the very
    pixels the tiles' fits left out (recorded from the rules the fits used), a pixel counted only
    where every tile holding it left it out, about the rule's fraction where one tile holds it."""
    from linr.operators import gaussian_kernel
    from linr.stopping import holdout_rule
    from linr.tasks import blurred, plan_restore, resolve_stop
    from linr.tiling import tiled_held_out

    rng = np.random.default_rng(0)
    image = rng.random((72, 72, 3)).astype(np.float32)
    plan = plan_restore([noisy(image), blurred(image, gaussian_kernel(5, 1.0))], tile="40:16")
    assert plan.grid is not None and len(plan.grid) > 1
    used = []

    def make_stop(part):
        rule = resolve_stop(part)
        used.append((len(used), rule))
        return rule

    config = dataclasses.replace(plan.config, steps=2, model=ModelConfig(width=8, depth=1), progress=False)
    fit_tiled(plan.obs, config, plan.grid, make_stop=make_stop)
    found = tiled_held_out(plan.obs, plan.grid, lambda part: resolve_stop(part))
    assert found is not None and len(found) == 2 and all(m.shape == (72, 72) for m in found)
    covers = np.zeros((72, 72), int)
    for (k, rule), window in zip(used, plan.grid.windows):
        masks = holdout_rule(rule).held_out_masks()
        for obs, mask, whole in zip(plan.obs, masks, found):
            rows, cols = obs.operator.tile(window, plan.grid.shape).window.slices
            assert not (whole[rows, cols] & ~mask).any()  # never a pixel this tile trained on
        covers[window.slices] += 1
    alone = covers == 1
    assert 0.02 < found[0][alone].mean() < 0.09 and found[0][covers > 1].mean() < 0.02


def test_a_tiled_pair_blends_by_the_pixels_no_tile_trained_on(capsys):
    """A noisy and a blurred photo restored in tiles: grouped-pair's blend with grouped-deblur is
    chosen by the noisy photo's pixels that no tile trained on (before the thirty-second session it
    had none in tiles and ran the pair alone), and the forecast counts its two runs (it chooses)."""
    from linr.operators import gaussian_kernel
    from linr.tasks import blurred, plan_restore

    rng = np.random.default_rng(1)
    image = np.kron(rng.random((9, 9, 3)), np.ones((8, 8, 1))).astype(np.float32)
    kernel = gaussian_kernel(5, 1.0)
    photos = [noisy(np.clip(image + rng.normal(0, 0.1, image.shape), 0, 1).astype(np.float32)),
              blurred(np.clip(convolve(image, kernel[..., None], mode="reflect") + rng.normal(0, 0.005, image.shape),
                              0, 1).astype(np.float32), kernel)]
    result = restore(photos, tile="40:16", steps=40, model=ModelConfig(width=8, depth=1), device="cpu", progress=False)
    done = result.settings["refine"]
    assert len(result.settings["tiles"]) > 1 and done["name"] == "grouped-pair"
    assert done["chosen_on_held_out_values"] > 100 and sum(done["weights"].values()) == pytest.approx(1.0, abs=1e-3)
    import linr.forecast
    from linr.tasks import _forecast

    told = {}
    with pytest.MonkeyPatch.context() as m:
        m.setattr(linr.forecast, "forecast", lambda *a, **k: told.update(k))
        _forecast(plan_restore(photos, tile="40:16"), steps=None, lr=None, tile_stack=None, ensemble=1)
    assert told["refine"] == "grouped-pair" and told["chooses"] is True and told["grid"] is not None


def test_tiles_are_kept_through_the_refinement_until_the_output_is_written(tmp_path, capsys, monkeypatch):
    """A refinement can take as long as the tiles' fit (42 minutes at 8192 px): interrupted there,
    every finished tile is kept beside the output, said on stderr, and a rerun fits none again;
    the store goes once the output is written."""
    from linr import tasks
    from linr.cli import main
    from linr.images import write_image
    from linr.simulate import add_gaussian_noise
    from linr.tiling import count_finished

    photo, out, report = tmp_path / "n.png", tmp_path / "o.png", tmp_path / "r.json"
    write_image(photo, add_gaussian_noise(_smooth_image(48, 48), 25, seed=0))
    command = ["restore", "--noisy", str(photo), "-o", str(out), "--tile", "32:8", "--steps", "3", "--stop", "fixed",
               "--width", "16", "--depth", "2", "--device", "cpu", "--report", str(report), "--quiet"]
    refine = tasks.apply_refine

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(tasks, "apply_refine", interrupted)
    assert main(command) == 130
    assert not out.exists() and count_finished(tile_store_path(out)) == 4
    assert "4 finished tile(s) kept in" in capsys.readouterr().err
    monkeypatch.setattr(tasks, "apply_refine", refine)
    assert main(command) == 0 and out.exists() and not tile_store_path(out).exists()
    done = json.loads(report.read_text())["settings"]
    assert [bool(t.get("resumed")) for t in done["tiles"]] == [True] * 4 and done["refine"]["name"] == "grouped"


def test_cli_refuses_another_runs_tiles_before_any_note_and_force_discards_them(tmp_path, capsys):
    from linr.cli import main
    from linr.images import write_image
    from linr.simulate import add_gaussian_noise

    photo, out = tmp_path / "n.png", tmp_path / "o.png"
    write_image(photo, add_gaussian_noise(np.full((48, 48, 3), 0.5, np.float32), 25, seed=0))
    stale = TileStore(tile_store_path(out), "another run's")
    stale.save(0, np.zeros((4, 4, 3), np.float32), {})
    command = ["restore", "--noisy", str(photo), "-o", str(out), "--tile", "32:8", "--steps", "3", "--stop", "fixed",
               "--refine", "none", "--device", "cpu"]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--force" in err and "tiles are kept" not in err
    assert main([*command, "--force"]) == 0 and out.exists() and not tile_store_path(out).exists()
    # a store its caller owns (a batch's) is replaced, also when the cost is said first (progress shown)
    stale = TileStore(tmp_path / "owned", "another run's")
    stale.save(0, np.zeros((4, 4, 3), np.float32), {})
    result = linr.restore([linr.noisy(np.full((48, 48, 3), 0.5, np.float32))], tile="32:8", steps=2, stop="fixed",
                          refine="none", device="cpu", progress=True, tile_store=str(stale.folder), tile_store_owned=True)
    assert result.image.shape == (48, 48, 3)


def test_tiles_said_one_line_per_batch_in_a_log_and_kept_tiles_after_an_interrupt(tmp_path, capsys):
    from linr.cli import _say_kept_tiles
    from linr.tasks import _tile_progress

    say = _tile_progress(None)  # stderr is captured here, not a terminal: plain lines
    say(1, 4, 0.0)
    say(2, 4, 30.0)
    say(4, 4, 90.0)
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["tiles: 3 of 4 to fit (1 resumed from the tile store)",
                     "tiles: 2/4 done after 30 s, about 60 s left",  # 30 s for the one tile fitted here
                     "tiles: 4/4 done after 90 s"]
    assert _tile_progress(False) is None
    store = TileStore(tmp_path / "o.png.tiles", "run")
    store.save(3, np.zeros((2, 2, 3), np.float32), {})
    _say_kept_tiles([None, store.folder])
    assert capsys.readouterr().err.strip() == f"linr: 1 finished tile(s) kept in {store.folder}: rerun the same command to resume"


def test_a_long_tiled_restore_spreads_its_tiles_over_the_cores_by_itself(tmp_path, capsys, monkeypatch):
    """--workers left out, as the linr command: a restoration in tiles whose forecast says it is
    long runs its tiles in two worker processes, the same image as in this process; a short one,
    --workers 1, OMP_NUM_THREADS, one core, a whole image, Ray or a script calling main() itself
    stay in this process."""
    import argparse

    import linr.batch
    import linr.cli
    from linr.cli import _automatic_workers, main
    from linr.tiling import grid_for, parse_tile

    clean = _smooth_image(40, 48)
    Image.fromarray((clean * 255).round().astype(np.uint8)).save(tmp_path / "in.png")
    base = ["restore", "--noisy", str(tmp_path / "in.png"), "--steps", "4", "--width", "16", "--depth",
            "2", "--device", "cpu", "--tile", "24:8"]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(linr.batch, "usable_cores", lambda: 2)
    monkeypatch.setattr(linr.cli, "_started_as_command", lambda: True)  # as the linr command
    assert main([*base, "-o", str(tmp_path / "here.png")]) == 0  # short: no forecast, this process
    assert "worker processes" not in capsys.readouterr().err
    monkeypatch.setattr(linr.cli, "_cost_line", lambda *a, **k: "this restoration: about 5 min (a forecast)")
    assert main([*base, "-o", str(tmp_path / "spread.png")]) == 0
    assert "fitting tiles in 2 worker processes, 1 thread each (chosen for a long restoration" in capsys.readouterr().err
    assert np.array_equal(np.asarray(Image.open(tmp_path / "spread.png")), np.asarray(Image.open(tmp_path / "here.png")))
    assert main([*base, "-o", str(tmp_path / "one.png"), "--workers", "1"]) == 0
    assert "worker processes" not in capsys.readouterr().err
    assert main([*base, "-o", str(tmp_path / "quiet.png"), "--quiet"]) == 0  # the forecast unsaid, still long
    assert "2 worker processes" in capsys.readouterr().err

    grid = grid_for([linr.noisy(clean)], parse_tile("24:8"), size=256, overlap=32, whole_up_to=0)
    args = argparse.Namespace(backend="local", device="cpu", workers=None)
    long, warning = "about 5 min", "warning: the refinement may need 9 GiB"
    assert len(grid) >= 4 and _automatic_workers(args, grid, long) == 2
    assert _automatic_workers(args, grid, warning) == 1  # a warning alone: a short restoration
    assert _automatic_workers(args, grid, None) == 1
    assert _automatic_workers(args, None, long) == 1  # whole
    monkeypatch.setattr(linr.batch, "usable_cores", lambda: 16)
    assert _automatic_workers(args, grid, long) == linr.cli.AUTO_WORKERS == 2  # as measured, not one per core
    monkeypatch.setattr(linr.batch, "usable_cores", lambda: 1)
    assert _automatic_workers(args, grid, long) == 1
    monkeypatch.setattr(linr.batch, "usable_cores", lambda: 2)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert _automatic_workers(args, grid, long) == 1
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert _automatic_workers(argparse.Namespace(backend="ray", device="cpu", workers=None), grid, long) == 1
    monkeypatch.undo()  # a script that calls main() itself (here: pytest) is not the linr command
    monkeypatch.setattr(linr.batch, "usable_cores", lambda: 2)
    assert not linr.cli._started_as_command() and _automatic_workers(args, grid, long) == 1


def test_the_linr_command_counts_as_started_from_its_entry_point(monkeypatch):
    """The console script and ``python -m linr`` can be imported again by a spawned worker; a
    script or another program that calls main() itself may not be."""
    import importlib.machinery
    import sys
    import types

    import linr.cli

    def main_module(file=None, spec=None):
        module = types.ModuleType("__main__")
        if file is not None:
            module.__file__ = file
        module.__spec__ = spec
        return module

    for module, expected in [(main_module("/venv/bin/linr"), True),  # the console script
                             (main_module("/venv/Scripts/linr.exe"), True),
                             (main_module("/x/linr/__main__.py", importlib.machinery.ModuleSpec("linr.__main__", None)), True),
                             (main_module("/home/me/restore_all.py"), False),
                             (main_module("/x/pytest", importlib.machinery.ModuleSpec("pytest.__main__", None)), False),
                             (main_module(), False)]:  # python -c
        monkeypatch.setitem(sys.modules, "__main__", module)
        assert linr.cli._started_as_command() is expected, module


def test_tiles_smaller_than_the_pilots_own_are_said_to_cost_quality(tmp_path, capsys):
    """--tile below the defaults' denoising tiles (measured: less quality in more time) gets a note
    before the fit; the pilot's own size, larger tiles and fits that are not the pilot do not."""
    from linr.cli import main
    from linr.tasks import DENOISE_TILE_SIZE, small_pilot_tiles_note

    assert small_pilot_tiles_note(DENOISE_TILE_SIZE, pilot=True) is None
    assert small_pilot_tiles_note(64, pilot=False) is None and small_pilot_tiles_note(None, pilot=True) is None
    assert "--tile 64: tiles smaller than the 128 px" in small_pilot_tiles_note(64, pilot=True)
    rng = np.random.default_rng(2)
    Image.fromarray((rng.random((40, 40)) * 255).astype(np.uint8)).save(tmp_path / "n.png")
    fit = ["restore", "--noisy", str(tmp_path / "n.png"), "--steps", "1", "--device", "cpu", "--tile", "24"]
    assert main([*fit, "-o", str(tmp_path / "a.png")]) == 0
    assert "--tile 24: tiles smaller than" in capsys.readouterr().err
    assert main([*fit, "--width", "16", "-o", str(tmp_path / "b.png")]) == 0  # a network named: not the pilot
    assert "smaller than" not in capsys.readouterr().err


def test_a_tiled_fit_says_which_steps_its_tiles_rules_returned():
    """Where the tiles' rules return earlier iterates than the steps run (a pick whose fit diverged
    at a learning rate of 2), the stop line gives their span and median from the tiles' own records;
    tiles of fixed steps say nothing of it."""
    from linr.config import ModelConfig

    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:48, 0:48] / 48
    clean = np.stack([0.5 + 0.3 * np.sin(6 * xx), 0.5 + 0.3 * np.cos(5 * yy), xx * yy], -1)
    keep = rng.random((48, 48)) < 0.5
    photo = linr.masked(clean * keep[..., None], keep)
    tiny = dict(tile="24:8", steps=12, model=ModelConfig(width=16, depth=2), refine="none", progress=False,
                device="cpu")
    picked = linr.restore(photo, stop="pick:0.2:2", lr=2.0, **tiny)
    returned = [t["stop_step"] for t in picked.settings["tiles"]]
    assert min(returned) < 12 and all(t["steps_run"] == 12 for t in picked.settings["tiles"])
    assert picked.stop_reason.endswith(f"; the iterates returned from steps {min(returned)}-{max(returned)} "
                                       f"(median {int(np.median(returned))})")
    fixed = linr.restore(photo, stop="fixed", **tiny)
    assert fixed.stop_reason.endswith("steps per tile 12-12 (median 12)")
