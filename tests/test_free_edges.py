"""A blur with free edges (boundary 'free'): the operator against a direct float64 convolution and
against the simulation of a real photo, the fit's extended grid, and the defaults that use it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import linr
from linr.errors import InputError
from linr.kinds import blurred
from linr.models import coordinate_grid
from linr.operators import Blur, Compose, Mask, gaussian_kernel

from .conftest import crop, load


def _valid_reference(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """y[i, j] = sum_{a, b} k[a, b] x[i + kh - 1 - a, j + kw - 1 - b]: true convolution, no padding,
    by loops in float64."""
    kh, kw = kernel.shape
    h, w = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    out = np.zeros((h, w), np.float64)
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                for b in range(kw):
                    out[i, j] += kernel[a, b] * x[i + kh - 1 - a, j + kw - 1 - b]
    return out


@pytest.mark.parametrize("shape", [(5, 5), (4, 6), (3, 2)])
def test_free_blur_is_the_valid_convolution(shape):
    rng = np.random.default_rng(1)
    kernel = rng.random(shape)
    kernel /= kernel.sum()
    op = Blur(kernel, boundary="free")
    kh, kw = shape
    top, bottom, left, right = op.margins
    assert (top + bottom, left + right) == (kh - 1, kw - 1) and (bottom, right) == (kh // 2, kw // 2)
    x = rng.random((9 + kh - 1, 7 + kw - 1))
    got = op(torch.from_numpy(x)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, _valid_reference(x, kernel), rtol=0, atol=1e-12)
    assert op.output_shape((9, 7)) == (9, 7) and op.input_shape((9, 7)) == (9, 7)  # the frame is restored


def test_free_blur_matches_the_reflecting_blur_inside_and_its_adjoint():
    rng = np.random.default_rng(2)
    kernel = gaussian_kernel(5, 1.2)
    free, reflect = Blur(kernel, boundary="free"), Blur(kernel, boundary="reflect")
    x = torch.from_numpy(rng.random((1, 2, 20, 18)))
    top, _, left, _ = free.margins
    inner = free(x)  # the frame 16 x 14 inside x
    np.testing.assert_allclose(inner.numpy(), reflect(x)[..., top:top + 16, left:left + 14].numpy(), atol=1e-12)
    y = torch.from_numpy(rng.random((1, 2, 16, 14)))
    # <A x, y> = <x, A^T y>: the adjoint onto the frame grown by the margins
    assert float((free(x) * y).sum()) == pytest.approx(float((x * free.adjoint(y)).sum()), rel=1e-12)


def test_a_crop_of_a_blurred_scene_is_the_free_blur_of_the_scene_around_it():
    """What a real photo is: the scene blurred, then cut out; the free blur of the frame grown by
    the kernel's reach gives exactly the photo, with nothing assumed beyond that."""
    from linr.simulate import blur_image

    rng = np.random.default_rng(3)
    scene = rng.random((48, 48, 1)).astype(np.float64)
    kernel = gaussian_kernel(7, 1.6)
    photo_whole = blur_image(scene, kernel, noise_sigma=0.0)  # circular over the whole scene
    r0, c0, h, w = 15, 12, 16, 20
    op = Blur(kernel, boundary="free")
    top, bottom, left, right = op.margins
    grown = scene[r0 - top:r0 + h + bottom, c0 - left:c0 + w + right, 0]
    got = op(torch.from_numpy(grown)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, photo_whole[r0:r0 + h, c0:c0 + w, 0], atol=1e-5)


@pytest.mark.parametrize("size", [(12, 12), (10, 16)])
def test_the_grown_grid_keeps_the_frame_value_for_value(size):
    h, w = size
    margins = (2, 3, 1, 4)
    frame = coordinate_grid(h, w).reshape(h, w, 2)
    grown = coordinate_grid(h, w, margins=margins).reshape(h + 5, w + 5, 2)
    assert torch.equal(grown[2:2 + h, 1:1 + w], frame)
    rows, cols = grown[:, 0, 0].double(), grown[0, :, 1].double()
    step = 2.0 / (max(h, w) - 1)
    np.testing.assert_allclose(np.diff(rows.numpy()), step, atol=1e-6)
    np.testing.assert_allclose(np.diff(cols.numpy()), step, atol=1e-6)
    assert float(rows[0]) < -1 if h == max(h, w) else float(cols[0]) < -1  # beyond [-1, 1]


def test_compose_keeps_the_first_operators_margins():
    op = Blur(gaussian_kernel(5, 1.0), boundary="free")
    assert Compose([op, Mask(np.ones((8, 8), np.float32))]).margins == op.margins
    y = torch.rand(1, 1, 8, 8, dtype=torch.float64)
    composed = Compose([op, Mask(np.ones((8, 8), np.float32))])
    np.testing.assert_allclose(composed.adjoint(y).numpy(), op.adjoint(y).numpy())  # onto the grown frame
    assert tuple(op.adjoint(y).shape[-2:]) == (12, 12)
    with pytest.raises(ValueError, match="first operator"):
        Compose([Mask(np.ones((8, 8), np.float32)), op])


@pytest.fixture(scope="module")
def photo():
    from linr.simulate import blur_image

    rng = np.random.default_rng(4)
    base = rng.random((8, 8, 3))
    scene = np.kron(base, np.ones((6, 6, 1)))  # blocks: edges for the blur to smooth
    whole = blur_image(scene, gaussian_kernel(5, 1.0), noise_sigma=2.55, seed=0)
    return np.ascontiguousarray(whole[6:38, 6:38]).astype(np.float32), gaussian_kernel(5, 1.0)


def test_defaults_fit_free_edges_with_cosine_steps(photo):
    image, kernel = photo
    from linr.tasks import DEFAULT_FREE_BLUR_STEPS, resolve

    obs, config = resolve([blurred(image, kernel)])
    assert obs[0].operator.boundary == "free" and config.steps == DEFAULT_FREE_BLUR_STEPS == 2000
    assert config.schedule == "cosine"
    obs, config = resolve([blurred(image, kernel)], preset="paper")  # the paper's mathematics
    assert obs[0].operator.boundary == "circular" and (config.steps, config.schedule) == (4000, "constant")
    obs, config = resolve([blurred(image, kernel, boundary="reflect")])  # a choice is kept
    assert obs[0].operator.boundary == "reflect" and (config.steps, config.schedule) == (4000, "constant")
    # beside a noisy photo of it (a short exposure): free edges too; beside others: mirrored borders
    obs, config = resolve([blurred(image, kernel), linr.noisy(image)])
    assert obs[0].operator.boundary == "free" and config.schedule == "cosine"
    obs, _ = resolve([blurred(image, kernel), linr.lowres(image[::2, ::2], 2)])
    assert obs[0].operator.boundary == "reflect"
    obs, _ = resolve([blurred(image, kernel), linr.noisy(image), linr.noisy(image)])
    assert obs[0].operator.boundary == "reflect"


def test_the_fit_renders_past_the_frame_and_returns_the_frame(photo):
    image, kernel = photo
    seen = []
    result = linr.restore([blurred(image, kernel)], steps=4, device="cpu", progress=False, reference=image,
                          on_step=lambda step, output, loss, tile: seen.append(tuple(output.shape)))
    assert result.image.shape == image.shape
    assert result.extended_image.shape == (32 + 4, 32 + 4, 3)
    assert result.settings["rendered_margins"] == [2, 2, 2, 2]
    assert result.settings["schedule"] == "cosine"
    np.testing.assert_array_equal(result.fitted_image, result.extended_image[2:34, 2:34])
    assert seen == [(1, 3, 32, 32)] * 4  # callbacks see the frame
    assert len(result.history["psnr"]) == 4 and all(np.isfinite(result.history["psnr"]))
    # the refinement's data steps were drawn to the fit's own pixels beyond the frame
    done = result.settings["refine"]
    assert done["name"] == "grouped-deblur" and done["edges"] == "free" and done["extension"] == "the fit's"
    from linr.noise import floored_noise_sigma
    from linr.refine import GroupedDeblur

    again = GroupedDeblur()(result.fitted_image, image, Blur(kernel, boundary="free"), floored_noise_sigma(image),
                            extension=result.extended_image)
    np.testing.assert_allclose(result.image, again, atol=1e-6)
    mirrored = GroupedDeblur()(result.fitted_image, image, Blur(kernel, boundary="free"), floored_noise_sigma(image))
    assert np.abs(mirrored - result.image).max() > 1e-4  # without the extension: another image


def test_a_kept_model_renders_the_frame(photo, tmp_path):
    image, kernel = photo
    result = linr.restore([blurred(image, kernel)], steps=3, device="cpu", progress=False, keep_model=True)
    np.testing.assert_allclose(result.render(), result.image, atol=1e-6)
    result.save_model(str(tmp_path / "m.pt"))
    model, _ = linr.load_model(tmp_path / "m.pt")
    np.testing.assert_allclose(model.render(), result.image, atol=1e-6)


def test_open_edges_tile_free_beside_others_reflect_and_chosen_free_edges_are_not_registered(photo):
    image, kernel = photo
    chosen = blurred(image, kernel, boundary="free")
    with pytest.raises(InputError, match="registration"):
        linr.restore([linr.noisy(image), chosen], steps=1, device="cpu", progress=False, register="translation")
    # an open boundary in tiles: free edges (since the thirtieth session), the defaults' steps and schedule
    larger = np.tile(image, (2, 2, 1))
    tiled = linr.restore([blurred(larger, kernel)], device="cpu", progress=False, tile="32:16", refine="none",
                         model=linr.ModelConfig(width=8, depth=1), stop="fixed:1")
    assert len(tiled.settings["tiles"]) > 1
    assert tiled.settings["observations"][0]["operator"]["boundary"] == "free"
    assert tiled.image.shape == larger.shape and tiled.extended_image.shape == (68, 68, 3)
    from linr.tasks import DEFAULT_FREE_BLUR_SCHEDULE, plan_restore

    plan = plan_restore([blurred(larger, kernel)], tile="32:16")
    assert (plan.config.steps, plan.config.schedule) == (2000, DEFAULT_FREE_BLUR_SCHEDULE)
    # beside a noisy photo of it: free edges and grouped-pair; beside another photo: mirrored edges
    joint = plan_restore([linr.noisy(image), blurred(image, kernel)])
    assert joint.obs[1].operator.boundary == "free" and joint.refine == "grouped-pair"
    for noise in ("poisson", "poisson-gaussian"):  # a short exposure with photon noise too (thirty-second session)
        joint = plan_restore([linr.noisy(image, noise=noise, peak=20.0), blurred(image, kernel)])
        assert joint.obs[1].operator.boundary == "free" and joint.refine == "grouped-pair", noise
    joint = plan_restore([linr.lowres(image[::2, ::2], 2), blurred(image, kernel)])
    assert joint.obs[1].operator.boundary == "reflect"
    # registered: mirrored edges and no grouped-pair (it explains the photos as taken), as before
    registered = plan_restore([linr.noisy(image), blurred(image, kernel)], register="translation")
    assert registered.obs[1].operator.boundary == "reflect" and registered.refine is None
    with pytest.raises(InputError, match="registration"):
        plan_restore([linr.noisy(image), blurred(image, kernel)], register="translation", refine="grouped-pair")
    # a photo given no weight: not the pair
    assert plan_restore([linr.noisy(image, weight=0), blurred(image, kernel)]).refine is None


def test_an_ensemble_averages_the_extended_images(photo):
    image, kernel = photo
    result = linr.restore([blurred(image, kernel)], steps=2, device="cpu", progress=False, ensemble=2,
                          refine="none")
    assert result.extended_image.shape == (36, 36, 3)
    np.testing.assert_allclose(result.extended_image[2:34, 2:34], result.image, atol=1e-6)


def test_the_oracle_rule_scores_the_frame(photo):
    from linr.stopping import Oracle

    image, kernel = photo
    result = linr.restore([blurred(image, kernel)], steps=8, lr=1e-3, device="cpu", progress=False, reference=image,
                          stop=Oracle(image), refine="none")
    assert result.image.shape == image.shape
    assert result.stop_step - 1 == int(np.argmax(result.history["psnr"]))  # the same frame's PSNR


def test_restore_many_stacks_free_blurs_of_one_kernel_size(photo):
    image, kernel = photo
    kw = dict(steps=2, device="cpu", progress=False, refine="none")
    results = linr.restore_many([[blurred(image, kernel)], [blurred(image[::-1].copy(), kernel)]], **kw)
    assert all(r.image.shape == image.shape and r.extended_image.shape == (36, 36, 3) for r in results)
    with pytest.raises(InputError, match="boundary 'reflect'"):
        linr.restore_many([[blurred(image, kernel)], [blurred(image, gaussian_kernel(3, 1.0))]], **kw)


def test_chosen_free_edges_tile_each_window_grown_by_the_kernels_reach(photo, tmp_path):
    from linr.operators import Window
    from linr.tiling import tile_observations

    image, kernel = photo
    larger = np.tile(image, (2, 2, 1))
    obs = blurred(larger, kernel, boundary="free")
    window = Window(16, 8, 32, 32)
    (part,) = tile_observations([obs], window, (64, 64))
    assert part.operator.boundary == "free" and part.operator.margins == (2, 2, 2, 2)  # every pixel explained
    np.testing.assert_array_equal(part.image, larger[16:48, 8:40])
    result = linr.restore([obs], steps=2, device="cpu", progress=False, tile="32:16", refine="none")
    assert len(result.settings["tiles"]) > 1 and result.image.shape == larger.shape
    assert result.settings["steps"] == 2 and result.settings["schedule"] == "cosine"
    # the tiles' renderings beyond the image's edges make the grown image, the frame is the image
    assert result.extended_image.shape == (68, 68, 3)
    np.testing.assert_array_equal(result.extended_image[2:66, 2:66], result.image)
    refined = linr.restore([obs], steps=2, device="cpu", progress=False, tile="32:16")
    assert refined.settings["refine"]["extension"] == "the fit's"
    # tiles kept in a store are their renderings: a resumed restoration gives the same grown image
    store = tmp_path / "tiles"
    kw = dict(steps=2, device="cpu", progress=False, tile="32:16", refine="none", tile_store=str(store),
              tile_store_owned=True)
    first = linr.restore([obs], **kw)
    again = linr.restore([obs], **kw)
    assert all(t.get("resumed") for t in again.settings["tiles"])
    np.testing.assert_array_equal(again.extended_image, first.extended_image)
    np.testing.assert_array_equal(first.extended_image, result.extended_image)


def test_tiles_grown_image_blends_the_outer_tiles_beyond_the_edges():
    """Tiles' renderings of constant value (their index) on a 2 x 2 grid: beyond a corner only that
    corner's tile, beyond an edge the two tiles along it blended by their weights along the edge,
    and what a tile renders beyond an inner edge is not used anywhere: inside, the grown blend is
    the blend of the windows alone, to the bit (random renderings)."""
    from linr.tiling import _Canvas, plan_grid

    grid = plan_grid((40, 50), 32, 16, halo=3)
    assert (len(grid.rows), len(grid.cols)) == (2, 2)
    margins = (2, 1, 3, 2)

    def blend(rendering, margins):
        canvas = _Canvas(grid.shape, 1, margins, grid.halo)
        top, bottom, left, right = margins
        for index, window in enumerate(grid.windows):
            canvas.add(rendering(index, window.height + top + bottom, window.width + left + right),
                       grid.weights(window), window)
        grown = canvas.image()
        return grown, canvas.frame(grown)

    def constant(index, h, w):
        return np.full((h, w, 1), float(index + 1), np.float32)

    image, frame = blend(constant, margins)
    _, alone = blend(constant, (0, 0, 0, 0))
    assert image.shape == (43, 55, 1) and frame.shape == (40, 50, 1) and frame.flags.c_contiguous
    np.testing.assert_array_equal(image[2:42, 3:53], alone)
    assert (image[:2, :3] == 1).all() and (image[42:, 53:] == 4).all()  # corners: one tile each
    # along the top edge the margin repeats the blend of the image's first row
    np.testing.assert_allclose(image[0, 3:53, 0], alone[0, :, 0], rtol=1e-6)
    np.testing.assert_allclose(image[:2, 53:, 0], np.broadcast_to(alone[0, -1, 0], (2, 2)), rtol=1e-6)

    rng = np.random.default_rng(0)
    size = grid.size
    renderings = [rng.random((size[0] + 3, size[1] + 5, 1), dtype=np.float32) for _ in grid.windows]
    _, frame = blend(lambda i, h, w: renderings[i], margins)
    _, alone = blend(lambda i, h, w: renderings[i][2:2 + size[0], 3:3 + size[1]], (0, 0, 0, 0))
    np.testing.assert_array_equal(frame, alone)

    canvas = _Canvas(grid.shape, 1, margins, grid.halo)
    with pytest.raises(RuntimeError, match="not its"):
        canvas.add(np.zeros((10, 10, 1), np.float32), grid.weights(grid.windows[0]), grid.windows[0])
    with pytest.raises(RuntimeError, match="halo"):
        _Canvas(grid.shape, 1, margins, 0)


def test_a_photo_beside_a_blur_with_free_edges_reads_the_frame_of_one_rendering(photo):
    """A noisy and a blurred photo of one scene (a short and a long exposure): one rendering of the
    frame grown by the kernel's reach; the noisy photo's operator reads its frame."""
    from linr.operators import Cropped, Identity
    from linr.problem import Observation, build_problem, frame_operators, margins_of

    image, kernel = photo
    pair = [linr.noisy(image), blurred(image, kernel, boundary="free")]
    assert margins_of(pair) == (2, 2, 2, 2)
    framed = frame_operators(pair)
    assert isinstance(framed[0].operator, Cropped) and framed[1].operator is pair[1].operator
    rendering = torch.rand(1, 3, 36, 36)
    assert torch.equal(framed[0].operator(rendering), rendering[..., 2:34, 2:34])
    uneven = [Observation(image, Identity()), blurred(image, np.ones((4, 3)), boundary="free"),
              blurred(image, np.ones((2, 6)), boundary="free")]
    assert margins_of(uneven) == (1, 2, 2, 3)  # the most on each side: (1, 2, 1, 1) and (0, 1, 2, 3)
    assert all(o.operator.margins == (1, 2, 2, 3) for o in frame_operators(uneven))
    problem = build_problem(uneven, "cpu", None)
    assert problem.rendered_shape == (35, 37)
    float(problem.data_term(torch.zeros(1, 3, 35, 37)))  # every operator reads the one rendering
    result = linr.restore(pair, steps=3, device="cpu", progress=False)  # the hold-out stop on the noisy photo
    assert result.image.shape == image.shape and result.extended_image.shape == (36, 36, 3)
    assert result.settings["schedule"] == "cosine"
    assert linr.tasks.resolve(pair)[1].steps == 2000  # a budget: the noisy photo's hold-out stop ends it
    assert result.settings["rendered_margins"] == [2, 2, 2, 2]
    open_pair = linr.tasks.resolve([linr.noisy(image), blurred(image, kernel)])[0]
    assert open_pair[1].operator.boundary == "free"  # left open beside a noisy photo: free too


def test_the_cost_of_a_fit_past_the_frame_counts_the_rendering(photo):
    """A masked photo beside a blur with free edges: the estimate takes the image step over the
    grown rendering (its mask is not applied to that larger grid)."""
    from linr.cost import plan
    from linr.tasks import resolve

    image, kernel = photo
    keep = np.random.default_rng(5).random(image.shape[:2]) < 0.5
    obs, config = resolve([linr.masked(image * keep[..., None], keep), blurred(image, kernel, boundary="free")])
    estimate = plan(obs, config)
    assert estimate.chunk_pixels == 36 * 36  # the whole rendering in one chunk
    alone = plan(*resolve([blurred(image, kernel, boundary="free")]))
    assert estimate.flops_per_step == pytest.approx(alone.flops_per_step)  # the same rendering, trained whole


def test_a_kernel_with_negative_lobes_is_noted_and_one_too_large_for_free_edges_refused(photo, tmp_path, capsys):
    """A sharpening kernel (negative lobes) is no blur: said in a note, taken as given; a measured
    PSF's slightly negative background says nothing. With free edges a kernel too large for the
    image is refused in one line as it is with reflected borders."""
    from linr.cli import main
    from linr.images import write_image
    from linr.kinds import negative_kernel_note

    image, _ = photo
    sharpen = np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], float)
    assert "negative values down to -20% of its peak" in negative_kernel_note(sharpen)
    rng = np.random.default_rng(0)
    measured = np.pad(gaussian_kernel(9, 1.5), 60) + rng.normal(0, 0.01 * gaussian_kernel(9, 1.5).max(), (129, 129))
    assert (measured < 0).sum() > 1000 and negative_kernel_note(measured) is None  # background noise
    write_image(tmp_path / "b.png", image)
    np.save(tmp_path / "sharpen.npy", sharpen)
    tiny = ["--steps", "1", "--width", "8", "--depth", "1", "--device", "cpu", "--quiet", "--refine", "none"]
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", str(tmp_path / "sharpen.npy"),
                 "-o", str(tmp_path / "o.png"), *tiny]) == 0
    assert f"{tmp_path / 'sharpen.npy'}: the kernel has negative values down to -20% of its peak" in capsys.readouterr().err
    tall = np.ones((65, 31))  # taller than 2 h - 1; narrower than the photo, which blurred() alone would refuse
    for boundary in ("free", "reflect"):
        with pytest.raises(InputError, match=r"blur kernel 31x65 is larger than the image 32x32 allows"):
            linr.restore([blurred(image, tall, boundary=boundary)], steps=1, device="cpu", progress=False)
        with pytest.raises(InputError, match=r"the kernel \(65x65\) is as large as the blurred photo \(32x32\)"):
            blurred(image, np.ones((65, 65)), boundary=boundary)


def test_a_kernel_too_large_names_the_edges_only_when_they_were_chosen():
    """A blur whose boundary is left open gets free edges by default (not the mirrored borders it is
    built with): its size error names neither; a chosen boundary is named."""
    for boundary, named in ((None, None), ("reflect", "with reflected borders"), ("free", "with free edges")):
        with pytest.raises(ValueError) as raised:
            Blur(gaussian_kernel(5, 1.0), boundary=boundary)._check((1, 64))
        message = str(raised.value)
        assert "allows" in message and ("with" not in message if named is None else named in message), message


def test_a_noisy_blurred_photo_stops_by_its_held_out_pixels(tmp_path, capsys):
    """A blurred photo with noise of 10/255 came back at 12.9 dB from 28.1 (the fixed 2000 steps, tuned
    on Table 4's sqrt(2)/255, fit the noise through the inverse blur): from 3/255 measured its fit
    stops by held-out pixels, said; a photo with Table 4's noise keeps the fixed budget."""
    from scipy.ndimage import convolve

    from linr.cli import main
    from linr.images import write_image
    from linr.kinds import parse_kernel
    from linr.tasks import noisy_blur, resolve_stop

    clean = crop(load("set9/house.png"), 40)[..., :1].astype(np.float64)
    kernel = parse_kernel("gaussian:9:1.6")
    blur = convolve(clean[..., 0], kernel, mode="reflect")[..., None]
    rng = np.random.default_rng(0)
    for sigma, noisy in ((10.0, True), (np.sqrt(2), False)):
        photo = np.clip(blur + rng.normal(0, sigma / 255, blur.shape), 0, 1).astype(np.float32)
        obs = [blurred(photo, kernel)]
        assert noisy_blur(obs) == noisy
        rule = resolve_stop(obs)
        assert (rule is not None and rule.name == "holdout") == noisy
        # decided for the whole photo (a tiled restoration's tiles all take its decision)
        decided = resolve_stop(obs, blur_noisy=not noisy)
        assert (decided is None) if noisy else (decided.name == "holdout")
        if noisy:
            write_image(tmp_path / "b.png", photo)
            assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:9:1.6", "-o",
                         str(tmp_path / "o.png"), "--steps", "3", "--refine", "none", "--quiet"]) == 0
            assert "the blurred photo's noise measures 3/255 or more: its fit stops where its held-out pixels say" \
                in capsys.readouterr().err
