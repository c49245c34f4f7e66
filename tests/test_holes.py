"""Large holes (linr.holes): depths, the blocks held out as deep as the holes, and blends chosen
by depth (linr.refine.DepthBlend)."""

from __future__ import annotations

import numpy as np
import pytest

from linr.holes import (BLOCK_SHARE, LARGE_HOLE_DEPTH, MOST_BLOCK_SHARE, depth_bands, has_large_holes, held_out_blocks, hole_depths,
                        weights_at)


def _square_hole(size: int, hole: int) -> np.ndarray:
    observed = np.ones((size, size), bool)
    start = (size - hole) // 2
    observed[start:start + hole, start:start + hole] = False
    return observed


def test_hole_depths_are_the_distance_to_the_nearest_observed_pixel_by_brute_force():
    rng = np.random.default_rng(0)
    observed = rng.random((13, 17)) < 0.2
    seen = np.argwhere(observed)
    brute = np.array([[np.sqrt(((seen - (y, x)) ** 2).sum(1)).min() for x in range(17)] for y in range(13)])
    np.testing.assert_allclose(hole_depths(observed), brute)
    per_channel = np.stack([observed, np.zeros_like(observed), np.zeros_like(observed)], -1)
    np.testing.assert_allclose(hole_depths(per_channel), brute)  # observed in some channel
    assert np.isinf(hole_depths(np.zeros((4, 4), bool))).all()


def test_large_holes_are_told_from_random_masks_and_thin_scratches():
    rng = np.random.default_rng(1)
    assert has_large_holes(_square_hole(64, 16))
    for size in (64, 256):
        assert not has_large_holes(rng.random((size, size)) < 0.1)  # Table 3's kind of mask
    scratches = np.ones((96, 96), bool)
    scratches[::12, :] = False
    scratches[:, 5:8] = False  # lines 1 and 3 px wide: no pixel 4 px from the data
    assert not has_large_holes(scratches)
    assert not has_large_holes(np.ones((8, 8), bool)) and not has_large_holes(np.zeros((8, 8), bool))


def test_blocks_are_observed_squares_as_deep_as_the_holes_within_their_share():
    observed = _square_hole(128, 20)
    blocks = held_out_blocks(observed, np.random.default_rng(3))
    assert blocks.any() and not (blocks & ~observed).any()
    assert blocks.sum() <= BLOCK_SHARE * observed.sum()
    from scipy.ndimage import label

    labels, count = label(blocks)
    assert count >= 2
    sides = set()
    for k in range(1, count + 1):
        ys, xs = np.nonzero(labels == k)
        h, w = np.ptp(ys) + 1, np.ptp(xs) + 1
        assert h * w == len(ys)  # a filled rectangle ...
        sides.add((h, w))
    (h, w), = sides  # ... all of one square size
    assert h == w
    depths = hole_depths(observed)
    # about twice as deep as the hole's 90th percentile of depths (a 20-px hole: up to 10 px deep)
    assert h == 2 * int(np.ceil(np.quantile(depths[depths > 0], 0.9))) + 1
    np.testing.assert_array_equal(held_out_blocks(observed, np.random.default_rng(3)), blocks)  # seeded
    assert not held_out_blocks(np.random.default_rng(4).random((64, 64)) < 0.1, np.random.default_rng(0)).any()


def test_blocks_shrink_to_fit_a_small_photo_and_none_below_the_least_side():
    observed = _square_hole(48, 20)
    blocks = held_out_blocks(observed, np.random.default_rng(0))
    # two blocks as deep as the hole (21 px) need more than 10%: up to 25% held out, then narrower
    assert BLOCK_SHARE * observed.sum() < blocks.sum() <= MOST_BLOCK_SHARE * observed.sum()
    assert hole_depths(~blocks).max() >= LARGE_HOLE_DEPTH  # still a block as deep as a large hole
    tiny = _square_hole(20, 12)  # too few observed pixels for two 9-px blocks in its share
    assert not held_out_blocks(tiny, np.random.default_rng(0)).any()


def test_depth_bands_merge_bands_with_too_few_pixels():
    depths = np.array([1.0] * 30 + [2.0] * 5 + [4.0] * 25 + [20.0] * 3)
    bands = depth_bands(depths, least=20)
    assert [len(b) for b in bands] == [35, 28]  # [1.5, 3) merged into the first, [12, 24) into the last
    assert sorted(np.concatenate(bands).tolist()) == list(range(len(depths)))
    assert len(depth_bands(depths[:10], least=20)) == 1


def test_weights_at_interpolate_between_bands_and_stay_on_the_simplex():
    w = weights_at(np.array([0.0, 1.0, 2.5, 4.0, 9.0]), [1.0, 4.0], np.array([[1.0, 0.0], [0.0, 1.0]]))
    np.testing.assert_allclose(w, [[1, 0], [1, 0], [0.5, 0.5], [0, 1], [0, 1]])
    np.testing.assert_allclose(w.sum(-1), 1.0)


def _smooth(size: int) -> np.ndarray:
    y, x = np.mgrid[0:size, 0:size] / size
    return np.stack([0.5 + 0.3 * np.sin(3 * x + 2 * y), 0.4 + 0.2 * np.cos(2 * x - y), 0.3 + 0.2 * x * y], -1)


def test_a_blend_by_depth_takes_each_candidate_where_it_is_right():
    """Candidate "near" is exact a pixel from the data and wrong deep; "deep" the other way round:
    the blend by depth beats any one set of weights, and a random mask keeps one set."""
    from linr.refine import DepthBlend, simplex_weights

    rng = np.random.default_rng(5)
    size = 96
    clean = _smooth(size)
    observed = _square_hole(size, 28)
    held = held_out_blocks(observed, rng) | (observed & (rng.random((size, size)) < 0.05))
    seen = observed & ~held
    obs3 = np.broadcast_to(observed[..., None], clean.shape)

    def candidates(mask: np.ndarray) -> list[np.ndarray]:
        d = hole_depths(mask)[..., None]
        noise = rng.normal(0, 1, clean.shape)
        return [clean + 0.01 * d ** 2 * noise, clean + 0.08 * noise * (d > 0)]

    blind = candidates(seen)
    photo = np.where(obs3, clean, 0.0)
    chosen = DepthBlend(photo, obs3, held, blind, ("near", "deep"))
    assert len(chosen.bands) >= 2
    first, last = chosen.bands[0][2], chosen.bands[-1][2]
    assert first[0] > 0.7 and last[1] > 0.7  # "near" shallow, "deep" deep
    final = candidates(observed)
    hole = ~observed
    by_depth = chosen.blend(final)
    one = simplex_weights(photo[held], [c[held] for c in blind])
    fixed = one[0] * final[0] + one[1] * final[1]
    assert np.mean((by_depth[hole] - clean[hole]) ** 2) < 0.85 * np.mean((fixed[hole] - clean[hole]) ** 2)
    # blind candidates blend by the depths they saw: a held-out block's middle as deep as a hole's
    w_seen = weights_at(hole_depths(seen), [b[0] for b in chosen.bands], np.stack([b[2] for b in chosen.bands]))
    np.testing.assert_allclose(chosen.blend(blind, seen), w_seen[..., :1] * blind[0] + w_seen[..., 1:] * blind[1])
    assert (w_seen[held & (hole_depths(seen) > 4), 1] > 0.7).all()
    report = chosen.describe()
    assert [b["depth"] for b in report["by_depth"]] == sorted(b["depth"] for b in report["by_depth"])
    assert sum(report["weights"].values()) == pytest.approx(1.0, abs=1e-3)
    # a random mask: one set of weights, as before
    scattered = rng.random((size, size)) < 0.3
    held = scattered & (rng.random((size, size)) < 0.1)
    s3 = np.broadcast_to(scattered[..., None], clean.shape)
    blind = candidates(scattered & ~held)
    plain = DepthBlend(np.where(s3, clean, 0.0), s3, held, blind, ("near", "deep"))
    assert len(plain.bands) == 1 and "by_depth" not in plain.describe()
    np.testing.assert_allclose(plain.weights(), simplex_weights(clean[held], [c[held] for c in blind]))


def test_a_photo_with_a_large_hole_is_fitted_without_blocks_and_blended_by_depth(tmp_path, capsys):
    """Through restore and the command line: the pick holds blocks out (the fit never trains on
    them), the blend goes by depth and says so; a random mask of the same photo holds none."""
    from PIL import Image

    import linr
    from linr.cli import main
    from linr.config import ModelConfig
    from linr.stopping import HeldOutPick

    clean = _smooth(56).astype(np.float32)
    observed = _square_hole(56, 18)
    rule = HeldOutPick(every=2)
    result = linr.restore(linr.masked(clean * observed[..., None], observed), refine="grouped-fill", stop=rule,
                          steps=4, model=ModelConfig(width=16, depth=2), progress=False)
    held = rule.held_out_mask()
    blocks = held_out_blocks(observed, np.random.default_rng(0))
    assert (held & blocks).sum() == blocks.sum() > 0 and result.settings["stop"]["blocks_held_out"] == blocks.sum()
    done = result.settings["refine"]
    assert done["chosen_on_held_out_pixels"] == int(held.sum())
    # by depth, or one set where the blocks said weights by depth do not carry from one to another
    assert ("by_depth" in done) != ("by_depth_left" in done)
    assert "by_depth_left" in done or done["by_depth"][-1]["depth"] > LARGE_HOLE_DEPTH
    np.testing.assert_array_equal(result.image[observed], clean[observed])
    scattered = np.random.default_rng(1).random((56, 56)) < 0.5
    rule = HeldOutPick(every=2)
    plain = linr.restore(linr.masked(clean * scattered[..., None], scattered), refine="grouped-fill", stop=rule,
                         steps=4, model=ModelConfig(width=16, depth=2), progress=False)
    assert "blocks_held_out" not in plain.settings["stop"] and "by_depth" not in plain.settings["refine"]
    Image.fromarray((clean * observed[..., None] * 255).astype(np.uint8)).save(tmp_path / "m.png")
    Image.fromarray((observed * 255).astype(np.uint8)).save(tmp_path / "mask.png")
    assert main(["restore", "--masked", str(tmp_path / "m.png"), "--mask", str(tmp_path / "mask.png"),
                 "--stop", "pick:0.05:2", "--steps", "4", "--width", "16", "--depth", "2", "--device", "cpu",
                 "-o", str(tmp_path / "o.png")]) == 0
    out = capsys.readouterr().out
    assert ("the holes are large, so each missing pixel takes the weights chosen on held-out pixels at its own "
            "distance from the observed ones, held out in blocks too, measured down to " in out) or \
        ("the holes are large, so blocks of observed pixels were held out too; one set of weights" in out)


def test_the_biharmonic_blend_goes_by_depth_where_the_holes_are_large():
    from linr.refine import BiharmonicBlend

    rng = np.random.default_rng(2)
    y, x = np.mgrid[0:64, 0:64]
    clean = _smooth(64) + 0.1 * np.sin(1.3 * x + 0.7 * y)[..., None]  # a fine texture over a smooth scene
    observed = _square_hole(64, 22)
    held = held_out_blocks(observed, rng) | (observed & (rng.random((64, 64)) < 0.05))
    d = hole_depths(observed & ~held)[..., None]
    fit = clean + 0.005 * d ** 2 * rng.normal(0, 1, clean.shape)  # right near the data, wild deep
    blend = BiharmonicBlend()
    out = blend(clean * observed[..., None], observed, fit, held)
    report = blend.describe()
    assert len(report["by_depth"]) >= 2 and report["by_depth"][0]["weights"]["fit"] > report["by_depth"][-1]["weights"]["fit"]
    assert report["chosen_on_held_out_pixels"] == int(held.sum())
    assert out.shape == clean.shape and np.isfinite(out).all()


def test_blocks_are_found_among_the_held_out_pixels():
    from linr.holes import held_out_blocks_found

    held = np.zeros((40, 40), bool)
    held[2:11, 2:11] = True  # a 9 x 9 block
    held[20:32, 25:37] = True  # a 12 x 12 block
    held[15, 5] = held[16, 5] = held[38, 1] = True  # scattered pixels, two of them side by side
    found = held_out_blocks_found(held)
    assert sorted(set(found.tolist())) == [0, 1, 2]
    grid = np.zeros((40, 40), np.int64)
    grid[held] = found
    assert (grid[2:11, 2:11] == 1).all() and (grid[20:32, 25:37] == 2).all() and grid[15, 5] == grid[38, 1] == 0


def test_weights_by_depth_that_do_not_carry_from_block_to_block_give_way_to_one_set():
    """Deep in one block candidate "a" is right, deep in the other "b": weights by depth learnt
    without a block mislead on it, so one set of weights (on every held-out pixel) is kept."""
    from linr.refine import DepthBlend, simplex_weights

    rng = np.random.default_rng(8)
    size = 96
    clean = _smooth(size)
    observed = _square_hole(size, 28)
    held = np.zeros((size, size), bool)
    held[4:25, 4:25] = held[70:91, 70:91] = True  # two blocks 21 px wide
    held |= observed & (rng.random((size, size)) < 0.05)
    seen = observed & ~held
    depth = hole_depths(seen)[..., None]
    noise = rng.normal(0, 1, clean.shape)
    first = np.zeros((size, size, 1), bool)
    first[:48] = True  # the top half: the first block's
    a = clean + np.where(first, 0.0, 0.05 * depth) * noise  # right deep in the first block, wrong in the other
    b = clean + np.where(first, 0.05 * depth, 0.0) * noise[::-1]
    obs3 = np.broadcast_to(observed[..., None], clean.shape)
    chosen = DepthBlend(np.where(obs3, clean, 0.0), obs3, held, [a, b], ("a", "b"))
    assert chosen.transfers is False and len(chosen.bands) == 1
    np.testing.assert_allclose(chosen.weights(), simplex_weights(clean[held], [a[held], b[held]]))
    assert "by_depth" not in chosen.describe() and "by_depth_left" in chosen.describe()
    from linr.cli import _by_depth_clause
    from linr.refine import BiharmonicBlend

    blend = BiharmonicBlend()  # the biharmonic refiner says so too (its blind candidate: biharmonic's)
    blend(np.where(obs3, clean, 0.0), obs3, a, held)
    report = blend.describe()
    assert ("by_depth" in report) != ("by_depth_left" in report)
    if "by_depth_left" in report:
        assert "one set of weights, since weights by each pixel's depth" in _by_depth_clause([report])
