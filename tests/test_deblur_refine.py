"""The data step of plug-and-play deblurring (linr.deconvolution) against a dense float64 solve
built from scipy's direct convolution, and the ``grouped-deblur`` refiner."""

from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from linr.deconvolution import explain_blurred
from linr.errors import InputError
from linr.kinds import blurred, masked, noisy
from linr.metrics import psnr
from linr.operators import Blur, gaussian_kernel
from linr.refine import GroupedDeblur, refine_image, refine_input
from linr.simulate import blur_image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SCIPY_MODE = {"circular": "wrap", "reflect": "mirror"}  # torch's 'reflect' is scipy's 'mirror' (d c b | a b c d)


def dense(kernel: np.ndarray, shape: tuple[int, int], boundary: str) -> np.ndarray:
    """The blur as an (HW x HW) matrix, column j the direct convolution of the j-th unit image."""
    h, w = shape
    columns = []
    for j in range(h * w):
        unit = np.zeros(h * w)
        unit[j] = 1.0
        columns.append(ndimage.convolve(unit.reshape(h, w), kernel, mode=SCIPY_MODE[boundary]).ravel())
    return np.stack(columns, 1)


@pytest.mark.parametrize("boundary", ["circular", "reflect"])
def test_explain_blurred_is_the_regularised_least_squares_solution(boundary):
    rng = np.random.default_rng(3)
    kernel = rng.random((5, 3))  # odd sides, not symmetric: the orientation counts
    kernel /= kernel.sum()
    h, w = 9, 11
    estimate, photo = rng.random((h, w, 2)), rng.random((h, w, 2))
    sigma, level = 0.02, 0.1
    x, done = explain_blurred(estimate, photo, Blur(kernel, boundary=boundary), sigma, level)
    assert done["solver"] == ("fft" if boundary == "circular" else "cg")
    a = dense(kernel, (h, w), boundary)
    weight = (sigma / level) ** 2
    for c in range(2):
        want = np.linalg.solve(a.T @ a + weight * np.eye(h * w), a.T @ photo[..., c].ravel() + weight * estimate[..., c].ravel())
        np.testing.assert_allclose(x[..., c].ravel(), want, atol=2e-5)


@pytest.mark.parametrize("shape, kernel_shape", [((8, 10), (4, 6)), ((9, 9), (13, 15))])
def test_explain_blurred_reflecting_even_and_oversized_kernels(shape, kernel_shape):
    """Even sides and a kernel larger than the image (a reflecting blur allows up to 2 h - 1): the
    solve against a dense matrix made column by column from the operator's own forward pass."""
    import torch

    rng = np.random.default_rng(5)
    kernel = rng.random(kernel_shape)
    op = Blur(kernel, boundary="reflect")
    h, w = shape
    units = torch.eye(h * w, dtype=torch.float64).reshape(h * w, 1, h, w)
    a = op.forward(units).reshape(h * w, h * w).T.numpy()  # column j: the blur of unit image j
    estimate, photo = rng.random((h, w, 1)), rng.random((h, w, 1))
    x, done = explain_blurred(estimate, photo, op, 0.03, 0.1)
    assert done["converged"] and done["residual"] < 1e-6
    weight = (0.03 / 0.1) ** 2
    want = np.linalg.solve(a.T @ a + weight * np.eye(h * w), a.T @ photo.ravel() + weight * estimate.ravel())
    np.testing.assert_allclose(x.ravel(), want, atol=2e-5)


@pytest.mark.parametrize("shape, kernel_shape", [((9, 11), (5, 3)), ((8, 10), (4, 6)), ((6, 7), (13, 9))])
def test_explain_blurred_with_free_edges_is_the_valid_convolution_solution(shape, kernel_shape):
    """``edges="free"``: the unknown is the image extended by the kernel's reach, the photo its
    blur without padding (scipy's 'valid' convolution, column by column), the extension drawn to
    the estimate mirrored half-sample (numpy's 'symmetric'); odd, even and oversized kernels,
    whatever the operator's own boundary rule."""
    from scipy.signal import convolve2d

    rng = np.random.default_rng(7)
    kernel = rng.random(kernel_shape)
    kernel /= kernel.sum()
    (h, w), (kh, kw) = shape, kernel_shape
    top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
    eh, ew = h + kh - 1, w + kw - 1
    a = np.stack([convolve2d(np.eye(eh * ew)[j].reshape(eh, ew), kernel, mode="valid").ravel()
                  for j in range(eh * ew)], 1)  # (h w) x (eh ew)
    estimate, photo = rng.random((h, w, 2)), rng.random((h, w, 2))
    sigma, level = 0.02, 0.1
    weight = (sigma / level) ** 2
    for boundary in ("circular", "reflect"):
        if boundary == "reflect" and (kh > 2 * h - 1 or kw > 2 * w - 1):
            continue  # no reflecting operator of that kernel on this image
        x, done = explain_blurred(estimate, photo, Blur(kernel, boundary=boundary), sigma, level, edges="free")
        assert done["solver"] == "cg" and done["converged"]
        for c in range(2):
            z = np.pad(estimate[..., c], ((top, kh - 1 - top), (left, kw - 1 - left)), mode="symmetric").ravel()
            want = np.linalg.solve(a.T @ a + weight * np.eye(eh * ew), a.T @ photo[..., c].ravel() + weight * z)
            np.testing.assert_allclose(x[..., c], want.reshape(eh, ew)[top:top + h, left:left + w], atol=2e-5)
    with pytest.raises(ValueError, match="edges"):
        explain_blurred(estimate, photo, Blur(kernel), sigma, level, edges="mirror")
    # an extension given: the extended estimate is it beyond the frame, the estimate within
    extension = rng.random((eh, ew, 2))
    x, _ = explain_blurred(estimate, photo, Blur(kernel, boundary="circular"), sigma, level, edges="free",
                           extension=extension)
    for c in range(2):
        z = extension[..., c].copy()
        z[top:top + h, left:left + w] = estimate[..., c]
        want = np.linalg.solve(a.T @ a + weight * np.eye(eh * ew), a.T @ photo[..., c].ravel() + weight * z.ravel())
        np.testing.assert_allclose(x[..., c], want.reshape(eh, ew)[top:top + h, left:left + w], atol=2e-5)
    with pytest.raises(ValueError, match="extended by the kernel's reach"):
        explain_blurred(estimate, photo, Blur(kernel), sigma, level, edges="free", extension=extension[1:])
    with pytest.raises(ValueError, match="free edges"):
        explain_blurred(estimate, photo, Blur(kernel), sigma, level, edges="operator", extension=extension)


@pytest.mark.parametrize("kernel_shape", [(5, 3), (4, 6)])
def test_the_free_edged_blur_is_the_operators_own_inside_a_larger_image(kernel_shape):
    """Independent of scipy's conventions: the blur without padding of a window (the data step
    with free edges) equals the operator's own circular blur of the whole image at the pixels
    whose kernel stays inside that window."""
    import torch

    from linr.deconvolution import _fft_blur

    rng = np.random.default_rng(9)
    kernel = rng.random(kernel_shape)
    kh, kw = kernel_shape
    op = Blur(kernel, boundary="circular")
    image = torch.from_numpy(rng.random((1, 1, 40, 37)))
    whole = op.forward(image)
    r0, c0, h, w = 7, 5, 17, 23  # a window of the blurred image, and the pixels its blur reads
    top, left = kh - 1 - kh // 2, kw - 1 - kw // 2
    window = image[..., r0 - top:r0 + h + kh - 1 - top, c0 - left:c0 + w + kw - 1 - left]
    free = _fft_blur(op, mirrored=False)(window)
    assert free.shape[-2:] == (h, w)
    np.testing.assert_allclose(free.numpy(), whole[..., r0:r0 + h, c0:c0 + w].numpy(), atol=1e-12)


def test_free_edges_keep_the_border_of_a_crop_of_a_larger_scene():
    """A photo cropped from a larger blurred scene was blurred with what lay outside its frame:
    the reflecting data step makes the border band (the kernel's reach) worse than the estimate it
    started from, the free-edged one does not; inside they agree. The estimate: the clean crop
    smoothed (a pilot short of detail), believed to within 0.1."""
    rng = np.random.default_rng(1)
    scene = ndimage.gaussian_filter(rng.random((96, 96, 1)), (2, 2, 0))
    scene = (scene - scene.min()) / np.ptp(scene)
    kernel = gaussian_kernel(15, 2.5)
    whole = blur_image(scene, kernel, noise_sigma=2.55, seed=0)
    clean, photo = scene[24:72, 24:72], whole[24:72, 24:72]
    estimate = ndimage.gaussian_filter(clean, (1.5, 1.5, 0), mode="reflect")
    band = np.ones(clean.shape[:2], bool)
    band[7:-7, 7:-7] = False

    def error(x: np.ndarray, where: np.ndarray) -> float:
        return float(np.sqrt(np.mean((x - clean)[where] ** 2)))

    solved = {edges: explain_blurred(estimate, photo, Blur(kernel, boundary="reflect"), 0.01, 0.1, edges=edges)[0]
              for edges in ("operator", "free")}
    assert error(solved["operator"], band) > error(estimate, band)
    assert error(solved["free"], band) < min(error(estimate, band), 0.75 * error(solved["operator"], band))
    assert abs(error(solved["free"], ~band) - error(solved["operator"], ~band)) < 0.002
    assert error(solved["free"], ~band) < 0.7 * error(estimate, ~band)
    # drawn to the scene beyond the frame (what an extended fit estimates) rather than the
    # estimate mirrored: the border band closer still, the inside as good
    truth = scene[24 - 7:72 + 7, 24 - 7:72 + 7]
    known, _ = explain_blurred(estimate, photo, Blur(kernel, boundary="reflect"), 0.01, 0.1, edges="free",
                               extension=ndimage.gaussian_filter(truth, (1.5, 1.5, 0)))
    assert error(known, band) < 0.9 * error(solved["free"], band)
    assert error(known, ~band) < error(solved["free"], ~band) + 0.002


def test_grouped_deblur_chooses_its_edges_by_the_blur():
    """A circular blur is solved by its own rule (exactly); a reflecting one, what the fit assumes
    of a real photo, with free edges; either when asked."""
    rng = np.random.default_rng(4)
    photo = rng.random((24, 24, 1))
    for boundary, edges, solver in (("circular", "operator", "fft"), ("reflect", "free", "cg")):
        refiner = GroupedDeblur(passes=1)
        refiner(photo, photo, Blur(gaussian_kernel(5, 1.0), boundary=boundary), 0.01)
        assert refiner.describe()["edges"] == edges and refiner.describe()["solved"]["solver"] == solver
    import argparse

    from linr.batch import _blur_boundary
    from linr.kinds import KINDS

    def batch(preset, boundary, *kinds, noise="gaussian"):
        given = {k: ("x" if k in kinds else None) for k in KINDS}
        return argparse.Namespace(preset=preset, boundary=boundary, noise=noise, **given)

    # a batch's blur as its fits resolve it: free alone or beside a noisy photo, mirrored beside others
    for args, resolved in ((batch(None, None, "blurred"), "free"), (batch(None, None, "blurred", "noisy"), "free"),
                           (batch(None, None, "blurred", "noisy", noise="poisson"), "free"),
                           (batch(None, None, "blurred", "lowres"), "reflect"), (batch("paper", None, "blurred"), "circular"),
                           (batch("paper", "reflect", "blurred"), "reflect"), (batch(None, "circular", "blurred"), "circular")):
        assert _blur_boundary(args) == resolved
    asked = GroupedDeblur(passes=1, edges="free")
    asked(photo, photo, Blur(gaussian_kernel(5, 1.0), boundary="circular"), 0.01)
    assert asked.describe()["edges"] == "free" and asked.describe()["solved"]["solver"] == "cg"
    with pytest.raises(ValueError, match="edges"):
        GroupedDeblur(edges="mirrored")
    extension = rng.random((28, 28, 1))  # the frame extended by the 5 x 5 kernel's reach
    with pytest.raises(ValueError, match="an extension goes with free edges"):
        GroupedDeblur(passes=1)(photo, photo, Blur(gaussian_kernel(5, 1.0), boundary="circular"), 0.01, extension=extension)
    drawn = GroupedDeblur(passes=1)(photo, photo, Blur(gaussian_kernel(5, 1.0), boundary="reflect"), 0.01,
                                    extension=extension)
    assert drawn.shape == photo.shape and not np.allclose(drawn, refiner(photo, photo, Blur(gaussian_kernel(5, 1.0)), 0.01))


def test_explain_blurred_says_when_it_stops_short(monkeypatch):
    import linr.deconvolution as deconvolution

    monkeypatch.setattr(deconvolution, "MAX_ITERATIONS", 2)
    rng = np.random.default_rng(0)
    _, done = explain_blurred(rng.random((32, 32, 1)), rng.random((32, 32, 1)), Blur(gaussian_kernel(9, 2.0)),
                              0.5 / 255, 30 / 255)
    assert done["iterations"] == 2 and not done["converged"] and done["residual"] > 1e-7
    refiner = GroupedDeblur(passes=2, start=30.0, end=10.0)
    refiner(rng.random((32, 32, 1)), rng.random((32, 32, 1)), Blur(gaussian_kernel(9, 2.0)), 0.5 / 255)
    assert refiner.describe()["solved"]["converged"] is False


def test_explain_blurred_refuses_a_level_of_zero():
    with pytest.raises(ValueError, match="positive"):
        explain_blurred(np.zeros((8, 8, 1)), np.zeros((8, 8, 1)), Blur(np.ones((3, 3))), 0.01, 0.0)


@pytest.mark.skipif(not (DATA / "set9" / "house.png").exists(), reason="shared data not found")
@pytest.mark.parametrize("boundary", ["circular", "reflect"])
def test_grouped_deblur_sharpens_a_blurred_crop(boundary):
    """From the blurred photo itself (a stand-in for a fit), the refinement ends well above the
    photo and above Wiener deconvolution (48-px crop of house, the paper's kernel and noise)."""
    from linr.baselines.classical import wiener_deblur
    from linr.images import read_image

    clean = read_image(DATA / "set9" / "house.png")[0][100:148, 100:148, :3].astype(np.float32)
    kernel = gaussian_kernel(25, 1.6)
    photo = blur_image(clean, kernel, seed=0, boundary=boundary)
    refined, done = refine_image("grouped-deblur", photo, [blurred(photo, kernel, boundary=boundary)])
    assert done["name"] == "grouped-deblur" and 1.0 < done["sigma"] < 2.0  # sqrt(2) measured
    # the observation's own blur: solved exactly for a circular one, by conjugate gradients for a reflecting one
    assert done["solved"]["solver"] == ("fft" if boundary == "circular" else "cg")
    assert boundary == "circular" or done["solved"]["converged"]
    assert refined.shape == photo.shape and refined.dtype == np.float32
    interior = np.s_[12:-12, 12:-12]  # Wiener deconvolves circularly: compare away from the borders
    ours, photo_db = psnr(clean[interior], refined[interior]), psnr(clean[interior], photo[interior])
    wiener = psnr(clean[interior], wiener_deblur(photo, kernel).image[interior])
    assert ours > photo_db + 3.0 and ours > wiener + 0.5, (ours, photo_db, wiener)


def test_grouped_deblur_takes_one_blurred_photo_of_the_restored_size():
    rng = np.random.default_rng(0)
    photo = rng.random((16, 16, 3)).astype(np.float32)
    kernel = gaussian_kernel(5, 1.0)
    assert refine_input([blurred(photo, kernel)], (16, 16), "grouped-deblur").kind == "blurred"
    for obs in ([noisy(photo)], [masked(photo, np.ones((16, 16), bool))], [blurred(photo, kernel), noisy(photo)]):
        with pytest.raises(InputError, match="a blurred photo"):
            refine_input(obs, (16, 16), "grouped-deblur")
    with pytest.raises(InputError, match="patches"):
        refine_input([blurred(photo[:6, :6], gaussian_kernel(3, 1.0))], (6, 6), "grouped-deblur")
    with pytest.raises(InputError, match="a blurred photo"):  # another size than the restored one
        refine_input([blurred(photo, kernel)], (32, 32), "grouped-deblur")


def test_grouped_deblur_of_a_greyscale_photo():
    rng = np.random.default_rng(2)
    sharp = ndimage.zoom(rng.random((6, 6)), 4, order=1)  # 24 x 24, smooth
    photo = blur_image(sharp, gaussian_kernel(7, 1.0), seed=0)[..., 0]
    refined, done = refine_image("grouped-deblur", photo[..., None], [blurred(photo, gaussian_kernel(7, 1.0))])
    assert refined.shape == (24, 24, 1) and np.isfinite(refined).all() and done["solved"]["solver"] == "cg"


def test_grouped_deblur_checks_its_schedule():
    with pytest.raises(ValueError, match="start >= end"):
        GroupedDeblur(passes=4, start=1.0, end=2.0)


def test_grouped_deblur_from_the_command_line(capsys, tmp_path):
    from linr.cli import main
    from linr.images import write_image

    from .conftest import run_err

    rng = np.random.default_rng(1)
    sharp = ndimage.zoom(rng.random((8, 8, 3)), (4, 4, 1), order=1)  # 32 x 32, smooth
    write_image(tmp_path / "b.png", blur_image(sharp, gaussian_kernel(7, 1.0), seed=0))
    tiny = ["--steps", "3", "--width", "16", "--depth", "2", "--device", "cpu", "--quiet"]
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:7:1.0", "-o",
                 str(tmp_path / "o.png"), "--refine", "grouped-deblur", *tiny]) == 0
    out = capsys.readouterr().out
    assert "refined: grouped-deblur (10 passes of grouped filtering from the fit's image" in out
    # the default free edges: the data steps draw the pixels beyond the frame to the fit's own
    assert "explains the blurred photo (nothing assumed beyond its frame, the pixels beyond it drawn to the fit's " \
        "own) best" in out
    assert "blur with free edges: the fit rendered the frame grown by the kernel's reach (3 px on every side)" in out
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:7:1.0", "-o",
                 str(tmp_path / "o.png"), "--boundary", "reflect", "--force", *tiny]) == 0
    out = capsys.readouterr().out  # a reflecting blur: free edges in the data steps, mirrored ones drawn to
    assert "explains the blurred photo (nothing assumed beyond its frame) best" in out and "free edges:" not in out
    assert "mirrored edges" not in out  # chosen: nothing to say
    # an open boundary in tiles: free edges; beside another photo: mirrored edges; both said
    write_image(tmp_path / "b64.png", blur_image(np.tile(sharp, (2, 2, 1)), gaussian_kernel(7, 1.0), seed=0))
    assert main(["restore", "--blurred", str(tmp_path / "b64.png"), "--kernel", "gaussian:7:1.0", "-o",
                 str(tmp_path / "o64.png"), "--tile", "40:20", *tiny]) == 0
    out = capsys.readouterr().out
    assert "blur with free edges: each tile's fit rendered its window grown by the kernel's reach and nothing was " \
        "assumed beyond the image; the default for a blurred photo alone or beside one noisy photo of it" in out \
        and "mirrored" not in out
    # beside a noisy photo of it (a short exposure): free edges, and refined by grouped-pair
    (tmp_path / "short.png").write_bytes((tmp_path / "b.png").read_bytes())  # one file is one kind of observation
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:7:1.0", "--noisy",
                 str(tmp_path / "short.png"), "-o", str(tmp_path / "o.png"), "--force", *tiny]) == 0
    out = capsys.readouterr().out
    assert "blur with free edges: the fit rendered the frame grown by the kernel's reach" in out and "mirrored" not in out
    assert "refined: grouped-pair (10 passes of grouped filtering from the fit's image, each followed by the image " \
        "that explains the blurred photo (nothing assumed beyond its frame, the pixels beyond it drawn to the fit's " \
        "own) best near it and near the noisy photo, noise sigma" in out and "measured on the noisy photo and" in out
    assert "then blended with grouped-deblur's passes (levels 15 to 2) of the blurred photo alone by the noisy photo's held-out pixels, " \
        "weight" in out
    assert "not in the paper); the default for a noisy and a blurred photo of one scene, --refine none" in out
    # beside a low-res view: mirrored edges, said
    write_image(tmp_path / "small.png", sharp[::2, ::2])
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:7:1.0", "--lowres",
                 str(tmp_path / "small.png"), "--factor", "2", "-o", str(tmp_path / "o.png"), "--force", *tiny]) == 0
    assert "blur with mirrored edges (reflect), the default beside photos other than one noisy photo of it: " \
        "free edges" in capsys.readouterr().out
    # a folder that does not exist yet is made, and said
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:7:1.0", "-o",
                 str(tmp_path / "new" / "sub" / "o.png"), *tiny]) == 0
    assert f"made the folder {tmp_path / 'new' / 'sub'} for it, and {tmp_path / 'new'} above it (they did not exist)" \
        in capsys.readouterr().out  # both named (a new user's trial was told of the outer one alone)
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:7:1.0", "-o",
                 str(tmp_path / "one" / "o.png"), *tiny]) == 0
    assert f"made the folder {tmp_path / 'one'} for it (it did not exist)" in capsys.readouterr().out
    assert "a blurred photo" in run_err(capsys, ["restore", "--noisy", str(tmp_path / "b.png"), "-o",
                                                 str(tmp_path / "n.png"), "--refine", "grouped-deblur", *tiny])
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", sharp)
    assert "needs blurred images alone" in run_err(capsys, ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                                                            "--task", "noisy", "--refine", "grouped-deblur", *tiny])


def test_the_cost_estimate_counts_the_data_steps_of_a_reflecting_blur():
    from linr.forecast import deblur_data_seconds

    kernel = gaussian_kernel(25, 1.6)
    assert deblur_data_seconds(GroupedDeblur(), Blur(kernel, boundary="circular"), 512, 512, 3) == 0.0
    assert deblur_data_seconds(GroupedDeblur(), Blur(kernel, boundary="reflect"), 512, 512, 3) > 0.0
    big = gaussian_kernel(81, 12.0)  # larger than the 64-px sample: timed on one of the kernel's size
    assert deblur_data_seconds(GroupedDeblur(passes=1), Blur(big, boundary="reflect"), 100, 100, 1) > 0.0


def test_the_defaults_refine_one_blurred_photo(capsys, tmp_path):
    import argparse

    import linr
    from linr.batch import _refine_of
    from linr.cli import main
    from linr.images import write_image
    from linr.models import ModelConfig
    from linr.tasks import DEFAULT_DEBLUR_REFINE, DEFAULT_PAIR_REFINE, default_refine

    rng = np.random.default_rng(4)
    sharp = ndimage.zoom(rng.random((8, 8, 3)), (4, 4, 1), order=1)
    kernel = gaussian_kernel(7, 1.0)
    photo = blur_image(sharp, kernel, seed=0)
    obs = blurred(photo, kernel, boundary="circular")
    assert default_refine([obs], preset=None) == DEFAULT_DEBLUR_REFINE == "grouped-deblur"
    # a reflecting blur (the defaults' for real photos) too, with free edges (twenty-fifth session)
    assert default_refine([blurred(photo, kernel)], preset=None) == DEFAULT_DEBLUR_REFINE
    assert default_refine([blurred(photo, kernel, boundary="reflect")], preset=None) == DEFAULT_DEBLUR_REFINE
    assert default_refine([obs], preset="paper") is None  # the paper's mathematics
    assert default_refine([obs], preset=None, keep_model=True) is None  # the model renders the fit's image
    # beside a noisy photo of it (a short exposure): grouped-pair; beside another, or more: not measured
    assert default_refine([obs, noisy(sharp)], preset=None) == DEFAULT_PAIR_REFINE == "grouped-pair"
    assert default_refine([obs, noisy(sharp[:16])], preset=None) is None  # not of one size
    assert default_refine([obs, noisy(sharp), noisy(sharp)], preset=None) is None
    assert default_refine([obs, noisy(sharp, noise="poisson", peak=30)], preset=None) == "grouped-pair"  # since the 32nd
    assert default_refine([obs, noisy(sharp)], preset="paper") is None
    assert default_refine([blurred(photo[:6, :6], gaussian_kernel(3, 1.0), boundary="circular")],
                          preset=None) is None  # under a patch
    tiny = dict(steps=3, model=ModelConfig(width=16, depth=2), progress=False, device="cpu")
    r = linr.restore(obs, **tiny)
    assert r.settings["refine"]["name"] == "grouped-deblur" and r.settings["refine"]["passes"] == 10
    assert not np.array_equal(r.image, r.fitted_image)
    assert "refine" not in linr.restore(obs, refine="none", **tiny).settings
    batch = dict(preset=None, refine=None, noisy=None, lowres=None, masked=None, blurred="b", boundary="circular")
    assert _refine_of(argparse.Namespace(**batch)) == DEFAULT_DEBLUR_REFINE
    assert _refine_of(argparse.Namespace(**{**batch, "preset": "paper"})) is None
    assert _refine_of(argparse.Namespace(**{**batch, "boundary": None})) == DEFAULT_DEBLUR_REFINE  # reflect too
    assert _refine_of(argparse.Namespace(**{**batch, "noisy": "n", "noise": "gaussian"})) == DEFAULT_PAIR_REFINE
    assert _refine_of(argparse.Namespace(**{**batch, "noisy": "n", "noise": "poisson"})) == "grouped-pair"
    write_image(tmp_path / "b.png", photo)
    args = ["--kernel", "gaussian:7:1.0", "--steps", "3", "--width", "16", "--depth", "2", "--device", "cpu", "--quiet"]
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "-o", str(tmp_path / "o.png"), "--boundary",
                 "circular", *args]) == 0
    out = capsys.readouterr().out
    assert "the default for one blurred photo, --refine none returns the fit's image" in out
    assert "nothing assumed beyond its frame" not in out  # circular: the blur's own rule, exactly
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "-o", str(tmp_path / "r.png"), *args]) == 0
    assert "nothing assumed beyond its frame, the pixels beyond it drawn to the fit's own) best near it" in \
        capsys.readouterr().out  # a real photo's blur: free edges, fitted and refined
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "-o", str(tmp_path / "n.png"), "--refine", "none",
                 *args]) == 0
    assert "refined" not in capsys.readouterr().out


def test_an_allocation_failure_keeps_the_fit(monkeypatch):
    """torch's CPU allocator raises a RuntimeError; the data step makes it a MemoryError, which the
    restore turns into the fit's image returned unrefined (the fit is not lost)."""
    import torch

    import linr
    from linr.models import ModelConfig

    def fail(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate 9 GB")

    rng = np.random.default_rng(0)
    photo = rng.random((24, 24, 3)).astype(np.float32)
    with monkeypatch.context() as m:
        m.setattr(torch.fft, "rfft2", fail)
        with pytest.raises(MemoryError, match="not enough memory"):
            explain_blurred(photo, photo, Blur(gaussian_kernel(5, 1.0)), 0.01, 0.05)
    import linr.deconvolution as deconvolution

    monkeypatch.setattr(deconvolution, "_fft_blur", lambda op, mirrored=True: fail)
    r = linr.restore(blurred(photo, gaussian_kernel(5, 1.0)), refine="grouped-deblur", steps=2,
                     model=ModelConfig(width=16, depth=2), progress=False, device="cpu")
    assert r.settings["refine"]["skipped"].startswith("out of memory") and r.image.shape == (24, 24, 3)
    fit = linr.restore(blurred(photo, gaussian_kernel(5, 1.0)), refine="none", steps=2,
                       model=ModelConfig(width=16, depth=2), progress=False, device="cpu")
    np.testing.assert_array_equal(r.image, fit.image)  # the fit's own image, returned unrefined


def test_a_batch_records_the_deblurring_schedule(tmp_path, capsys):
    import json

    from linr.cli import main
    from linr.images import write_image

    rng = np.random.default_rng(6)
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", blur_image(ndimage.zoom(rng.random((8, 8, 3)), (3, 3, 1), order=1),
                                                       gaussian_kernel(5, 1.0), seed=0))
    assert main(["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--task", "blurred", "--kernel",
                 "gaussian:5:1.0", "--boundary", "circular", "--steps", "2", "--width", "16", "--depth", "2",
                 "--device", "cpu", "--threads", "1", "--quiet"]) == 0
    records = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines() if line]
    batch = next(r["batch"] for r in records if r.get("batch"))
    assert batch["refine"] == "grouped-deblur" and batch["deblur_schedule"] == [10, 15.0, 2.0]
    assert batch["deblur_follows_noise"] == [1.25, 0.25]  # since the sixty-fifth session: a batch from before says so
    assert "deblur_edges" not in batch  # circular: the blur's own rule
    import linr.batch as batch_module

    from .conftest import run_err

    settings = batch_module._settings

    def as_before(args, model):  # the sixty-fourth session's: levels from 15 to 2 whatever the noise
        made = settings(args, model)
        assert made.pop("deblur_follows_noise") == [1.25, 0.25]
        return made

    common = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "old"), "--task", "blurred", "--kernel",
              "gaussian:5:1.0", "--boundary", "circular", "--steps", "2", "--width", "16", "--depth", "2",
              "--device", "cpu", "--threads", "1", "--quiet"]
    with pytest.MonkeyPatch.context() as m:
        m.setattr(batch_module, "_settings", as_before)
        assert main(common) == 0
    err = run_err(capsys, common)
    assert "at levels from 15 to 2 of 255 whatever their noise" in err, err


def test_an_unrefined_deblurring_batch_says_why_it_does_not_resume(tmp_path, capsys):
    from linr.cli import main
    from linr.images import write_image

    from .conftest import run_err

    rng = np.random.default_rng(7)
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", rng.random((24, 24, 3)))
    common = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--task", "blurred", "--kernel",
              "gaussian:5:1.0", "--boundary", "circular", "--steps", "2", "--width", "16", "--depth", "2",
              "--device", "cpu", "--threads", "1", "--quiet"]
    for boundary in ("circular", "reflect"):
        args = [*common[:3], str(tmp_path / f"out-{boundary}"), *common[4:]]
        args[args.index("circular")] = boundary
        assert main([*args, "--refine", "none"]) == 0  # as a batch made before the default refined it
        err = run_err(capsys, args)
        assert "the images were not refined: the defaults refine one blurred photo by grouped-deblur" in err
        assert "--refine none to resume as made" in err


def test_a_deblurring_batch_refined_with_mirrored_borders_says_why_it_does_not_resume(tmp_path, capsys):
    import json

    from linr.cli import main
    from linr.images import write_image

    from .conftest import run_err

    rng = np.random.default_rng(8)
    (tmp_path / "in").mkdir()
    write_image(tmp_path / "in" / "a.png", rng.random((24, 24, 3)))
    common = ["batch", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--task", "blurred", "--kernel",
              "gaussian:5:1.0", "--steps", "2", "--width", "16", "--depth", "2", "--device", "cpu", "--threads",
              "1", "--quiet"]
    import linr.batch as batch

    settings = batch._settings

    def as_before(args, model):  # the twenty-fourth session's --refine grouped-deblur of a reflecting blur
        made = settings(args, model)
        assert made.pop("deblur_edges") == "free"
        return made

    with pytest.MonkeyPatch.context() as m:
        m.setattr(batch, "_settings", as_before)
        assert main([*common, "--refine", "grouped-deblur"]) == 0
    assert "deblur_edges" not in json.dumps([json.loads(line) for line in
                                             (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()])
    err = run_err(capsys, common)
    assert "refined by grouped-deblur with mirrored borders, which no option gives now" in err


def _pair_photos(boundary: str = "circular"):
    from linr.images import read_image
    from linr.simulate import add_gaussian_noise

    clean = read_image(DATA / "set9" / "house.png")[0][100:148, 100:148, :3].astype(np.float32)
    kernel = gaussian_kernel(25, 1.6)
    return clean, kernel, blur_image(clean, kernel, seed=0, boundary=boundary), add_gaussian_noise(clean, 25, seed=1)


def test_grouped_pair_weighs_the_noisy_photo_by_its_noise():
    """With a noisy photo believed to within a huge std it is grouped-deblur; with the clean image
    believed to within a tiny one (and a blurred photo it explains exactly), the clean image."""
    from linr.refine import GroupedPair

    clean, kernel, photo, _ = _pair_photos()
    operator = Blur(kernel, boundary="circular")
    start = ndimage.gaussian_filter(photo, (1, 1, 0))
    alone = GroupedDeblur()(start, photo, operator, 1.4 / 255)
    ignored = GroupedPair()(start, photo, operator, 1.4 / 255, noisy=np.zeros_like(photo), noise_sigma=1e6)
    np.testing.assert_allclose(ignored, alone, atol=1e-5)
    exact = blur_image(clean, kernel, noise_sigma=0.0)  # circular, no noise (clipped: no value leaves [0, 1])
    trusted = GroupedPair()(start, exact, operator, 1.4 / 255, noisy=clean, noise_sigma=1e-4)
    assert np.abs(trusted - clean).max() < 2e-3
    with pytest.raises(ValueError, match="one size"):
        GroupedPair()(start, photo, operator, 1.4 / 255, noisy=clean[:40], noise_sigma=0.1)


def test_grouped_pair_restores_a_short_and_a_long_exposure_better_than_either_alone():
    """From the blurred photo as the start (a stand-in for a joint fit): above grouped-deblur of the
    blurred photo alone and above grouped of the noisy photo alone, on the interior and the whole."""
    clean, kernel, photo, short = _pair_photos("reflect")
    pair = [noisy(short), blurred(photo, kernel)]
    both, done = refine_image("grouped-pair", photo, pair)
    assert done["name"] == "grouped-pair" and 20 < done["noisy_sigma"] < 30 and 1.0 < done["sigma"] < 2.0
    assert done["edges"] == "free" and both.shape == clean.shape and both.dtype == np.float32
    deblurred, _ = refine_image("grouped-deblur", photo, pair[1:])
    denoised, _ = refine_image("grouped", photo, pair[:1])
    for part in (np.s_[:, :], np.s_[12:-12, 12:-12]):
        ours = psnr(clean[part], both[part])
        assert ours > psnr(clean[part], deblurred[part]) + 0.3 and ours > psnr(clean[part], denoised[part]) + 0.5, part


def test_grouped_pair_takes_a_noisy_and_a_blurred_photo_of_the_restored_size():
    rng = np.random.default_rng(0)
    photo = rng.random((16, 16, 3)).astype(np.float32)
    kernel = gaussian_kernel(5, 1.0)
    assert refine_input([noisy(photo), blurred(photo, kernel)], (16, 16), "grouped-pair").kind == "blurred"
    for obs in ([noisy(photo)], [blurred(photo, kernel)], [noisy(photo), blurred(photo, kernel), noisy(photo)],
                [noisy(photo), blurred(photo[:8, :8], kernel)], [masked(photo, np.ones((16, 16), bool)),
                                                                 blurred(photo, kernel)]):
        with pytest.raises(InputError, match="a noisy one .* and a blurred one"):
            refine_input(obs, (16, 16), "grouped-pair")


def test_a_noisy_and_a_blurred_photo_beside_a_low_res_view_get_the_pairs_refinement():
    """Three kinds of one scene were fitted and not refined (under either pair, a new user's 31.02 dB
    against 32.02 and 31.67): the pair's refinement takes them from the joint fit of all three, the
    low-res view informing the fit only; not where a third photo of the restored size, a preset,
    registration or a zero weight makes it another restore."""
    import argparse

    from linr.batch import _refine_of
    from linr.kinds import lowres
    from linr.tasks import DEFAULT_PAIR_REFINE, default_refine

    rng = np.random.default_rng(0)
    photo = rng.random((32, 32, 3)).astype(np.float32)
    kernel = gaussian_kernel(5, 1.0)
    three = [noisy(photo), lowres(photo[::4, ::4], 4), blurred(photo, kernel)]
    assert refine_input(three, (32, 32), "grouped-pair").kind == "blurred"
    assert default_refine(three, preset=None) == DEFAULT_PAIR_REFINE
    assert default_refine(three, preset="paper") is None and default_refine(three, preset=None, register="translation") is None
    assert default_refine([*three, noisy(photo)], preset=None) is None  # a second noisy photo: not the pair's
    assert default_refine([noisy(photo), lowres(photo[::4, ::4], 4, weight=0.0), blurred(photo, kernel)],
                          preset=None) is None
    args = argparse.Namespace(refine=None, preset=None, register=None, weight=[], noisy="n", blurred="b", lowres="l",
                              masked=None, input=None, task=None)
    assert _refine_of(args) == DEFAULT_PAIR_REFINE  # and a batch of such scenes records it


def test_the_forecast_counts_grouped_pair_as_grouped_deblur(monkeypatch):
    """The pair's cost: grouped-deblur's passes and data steps (twice when it blends by held-out
    pixels), read off the blur wherever it is among the observations; its memory grouped-deblur's."""
    from linr import forecast
    from linr.config import FitConfig

    free = Blur(gaussian_kernel(7, 1.0), boundary="free")
    assert forecast.refine_memory("grouped-pair", 300, 200, 3, operator=free) == \
        forecast.refine_memory("grouped-deblur", 300, 200, 3, operator=free)
    data = []  # the data steps' estimate: the same for both, twice for the pair's blend
    monkeypatch.setattr(forecast, "deblur_data_seconds", lambda refiner, op, *shape: data.append((op, shape)) or 1e4)
    alone = forecast.refine_cost("grouped-deblur", 64, 64, 3, operator=free)
    pair = forecast.refine_cost("grouped-pair", 64, 64, 3, operator=free, chooses=False)
    blended = forecast.refine_cost("grouped-pair", 64, 64, 3, operator=free)
    assert data == [(free, (64, 64, 3))] * 3
    assert 1e4 < alone.seconds < 1.1e4 and 1e4 < pair.seconds < 1.1e4 and 2e4 < blended.seconds < 2.2e4
    photo = np.zeros((600, 600, 3), np.float32)
    line = forecast.forecast_line([noisy(photo), blurred(photo, gaussian_kernel(7, 1.0), boundary="free")],
                                  FitConfig(steps=2000), refine="grouped-pair", stop=None)
    assert line is not None and "grouped-pair" in line


def test_grouped_pair_blends_toward_the_blurred_photo_alone_where_the_noisy_one_does_not_help():
    """With held-out pixels of the noisy photo the result blends grouped-deblur and the pair by
    those pixels: a smooth scene, whose blurred photo says nearly all, leans to grouped-deblur (and is
    at least as good as the pair); the textured crop of house leans to the pair."""
    from linr.refine import GroupedPair
    from linr.simulate import add_gaussian_noise

    rng = np.random.default_rng(3)
    held = rng.random((48, 48)) < 0.1
    kernel = gaussian_kernel(25, 1.6)
    operator = Blur(kernel, boundary="circular")
    smooth = ndimage.zoom(rng.random((4, 4, 3)), (12, 12, 1), order=3).clip(0.1, 0.9).astype(np.float32)
    clean, _, _, _ = _pair_photos()
    for scene, sigma, leans in ((smooth, 25, "grouped-deblur"), (clean, 25, "grouped-pair")):
        photo = blur_image(scene, kernel, seed=0)
        short = add_gaussian_noise(scene, sigma, seed=1)
        start = ndimage.gaussian_filter(photo, (1, 1, 0))
        refiner = GroupedPair()
        blend = refiner(start, photo, operator, 1.4 / 255, noisy=short, noise_sigma=sigma / 255, held_out=held)
        weights = refiner.describe()["weights"]
        assert weights[leans] > 0.5 and refiner.describe()["chosen_on_held_out_values"] > 100, (leans, weights)
        pair = GroupedPair()(start, photo, operator, 1.4 / 255, noisy=short, noise_sigma=sigma / 255)
        alone = GroupedDeblur()(start, photo, operator, 1.4 / 255)
        best = max(psnr(scene, pair), psnr(scene, alone))
        assert psnr(scene, blend) > best - 0.3, (leans, psnr(scene, blend), psnr(scene, pair), psnr(scene, alone))
    few = GroupedPair()
    few(start, photo, operator, 1.4 / 255, noisy=short, noise_sigma=0.1, held_out=np.zeros((48, 48), bool))
    assert few.describe()["not_blended_held_out_values"] == 0 and "weights" not in few.describe()


def _pair_batch_made_before(tmp_path, capsys, drop) -> str:
    """Make a noisy + blurred batch whose manifest settings went through ``drop`` (as a linr of an
    earlier session would have recorded them), then resume it: the one-line error."""
    from linr.cli import main
    from linr.images import write_image

    from .conftest import run_err

    rng = np.random.default_rng(9)
    for kind in ("short", "long"):
        (tmp_path / kind).mkdir()
        write_image(tmp_path / kind / "a.png", rng.random((24, 24, 3)))
    common = ["batch", "--noisy", str(tmp_path / "short"), "--blurred", str(tmp_path / "long"), "-o",
              str(tmp_path / "out"), "--kernel", "gaussian:5:1.0", "--steps", "2", "--width", "16", "--depth", "2",
              "--device", "cpu", "--threads", "1", "--quiet"]
    import linr.batch as batch

    settings = batch._settings
    with pytest.MonkeyPatch.context() as m:
        m.setattr(batch, "_settings", lambda args, model: drop(settings(args, model)))
        assert main(common) == 0
    return run_err(capsys, common)


def test_a_batch_of_short_and_long_exposures_made_before_says_why_it_does_not_resume(tmp_path, capsys):
    """A noisy + blurred batch made by the defaults before the thirty-first session (mirrored edges,
    4000 steps, no refinement): no option resumes it, and the message says so instead of a hint."""
    def as_before(made):
        assert made.pop("blur_fit")["boundary"] == "free" and made.pop("refine") == "grouped-pair"
        made.pop("deblur_schedule"), made.pop("deblur_edges"), made.pop("pair_blend")
        return made

    err = _pair_batch_made_before(tmp_path, capsys, as_before)
    assert "the blur was fitted with mirrored edges" in err and "beside a noisy one since the thirty-first" in err
    assert "--refine none to resume as made" not in err


def test_photon_noise_gives_its_variance_from_the_image():
    """The data terms of photon counts give each entry's variance (0-1 scale) from the clean image:
    x / peak, at least one count's, plus the read noise's; the squared error leaves it to be measured."""
    from linr.fidelity import Poisson, PoissonGaussian, SquaredError

    image = np.array([[0.0, 0.01, 0.5, 1.0]])
    np.testing.assert_allclose(Poisson(peak=20.0).variance(image), [[1 / 400, 1 / 400, 0.5 / 20, 1 / 20]])
    np.testing.assert_allclose(PoissonGaussian(peak=20.0, read_sigma=0.02).variance(image),
                               [[1 / 400 + 4e-4, 1 / 400 + 4e-4, 0.5 / 20 + 4e-4, 1 / 20 + 4e-4]])
    assert Poisson().variance_known and not SquaredError().variance_known and SquaredError().variance(image) is None
    # the variance of simulated counts over the peak, as the model says
    counts = np.random.default_rng(0).poisson(20.0 * np.full(200_000, 0.3)) / 20.0
    assert abs(counts.var() - float(Poisson(peak=20.0).variance(np.array([0.3]))[0])) < 3e-4


def test_grouped_pair_with_a_spread_per_entry():
    """A spread given per entry that is the same everywhere is the number itself; photon noise on
    the short exposure (its level per entry from the data term) restores the pair better than the
    blurred photo alone, by the command's path (refine_image), which says the noise it read."""
    from linr.refine import GroupedPair

    clean, kernel, photo, short = _pair_photos("reflect")
    operator = Blur(kernel, boundary="reflect")
    start = ndimage.gaussian_filter(photo, (1, 1, 0))
    scalar = GroupedPair()(start, photo, operator, 1.4 / 255, noisy=short, noise_sigma=0.1)
    for shape in (photo.shape, photo.shape[:2] + (1,)):
        each = GroupedPair()(start, photo, operator, 1.4 / 255, noisy=short, noise_sigma=np.full(shape, 0.1))
        np.testing.assert_allclose(each, scalar, atol=1e-5)
    with pytest.raises(ValueError, match="positive"):
        GroupedPair()(start, photo, operator, 1.4 / 255, noisy=short, noise_sigma=np.zeros(photo.shape))
    counts = np.random.default_rng(1).poisson(30.0 * clean) / 30.0
    pair = [noisy(np.clip(counts, 0, 1).astype(np.float32), noise="poisson", peak=30.0), blurred(photo, kernel)]
    both, done = refine_image("grouped-pair", photo, pair)
    assert done["noisy_noise"]["name"] == "poisson" and done["noisy_noise"]["peak"] == 30.0
    assert 20 < done["noisy_sigma"] < 60  # the rms level of 30 photons over this crop's brightness
    deblurred, _ = refine_image("grouped-deblur", photo, pair[1:])
    assert psnr(clean, both) > psnr(clean, deblurred) + 0.3, (psnr(clean, both), psnr(clean, deblurred))


def test_a_pair_from_the_command_line_says_each_inputs_psnr_and_what_registration_leaves_out(capsys, tmp_path):
    """--reference: the result's PSNR and each input photo's (the gain over each); --register on a
    noisy and a blurred photo: a note that the pair's free edges and refinement are off."""
    from linr.cli import main
    from linr.images import write_image
    from linr.metrics import evaluate

    clean, _, photo, short = _pair_photos("reflect")
    paths = {}
    for name, image in (("clean", clean), ("short", short), ("long", blur_image(clean, gaussian_kernel(5, 1.0), seed=0))):
        paths[name] = tmp_path / f"{name}.png"
        write_image(paths[name], image)
    common = ["restore", "--noisy", str(paths["short"]), "--blurred", str(paths["long"]), "--kernel", "gaussian:5:1.0",
              "--steps", "3", "--width", "16", "--depth", "2", "--device", "cpu", "--refine", "none", "--force"]
    assert main([*common, "-o", str(tmp_path / "out.png"), "--reference", str(paths["clean"])]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("the inputs against it: "))
    from linr.images import read_image

    reference = read_image(paths["clean"])[0]
    for name, kind in (("short", "noisy"), ("long", "blurred")):
        value = evaluate(reference, read_image(paths[name])[0])["psnr"]
        assert f"{paths[name]} ({kind}) PSNR {value:.2f} dB" in line, line
    registered = [x for x in common if x not in ("--refine", "none")]
    assert main([*registered, "-o", str(tmp_path / "reg.png"), "--register", "translation"]) == 0
    out = "".join(capsys.readouterr())
    assert "--register: the noisy and the blurred photo are fitted jointly with mirrored edges and not refined" in out
    assert "blur with mirrored edges (reflect), the default with --register" in out and "--boundary free" not in out


def test_the_forecast_of_a_pair_says_where_its_stop_usually_comes():
    """The pair's joint fit has a 2000-step budget that its hold-out stop ends far sooner: the
    forecast says where (PAIR_USUAL_STOPS), not the budget alone."""
    from linr.tasks import PAIR_USUAL_STOPS, _forecast, plan_restore

    photo = np.full((600, 600, 3), 0.5, np.float32)
    plan = plan_restore([noisy(photo), blurred(photo, gaussian_kernel(7, 1.0))], device="cpu")
    said = _forecast(plan, steps=None, lr=None, tile_stack=None, ensemble=1)
    line = said.line
    assert said.seconds is not None and said.seconds > 30
    assert line is not None and f"usually stops far sooner (after {PAIR_USUAL_STOPS[0]}-{PAIR_USUAL_STOPS[1]} steps" in line
    assert "usually" not in (_forecast(plan, steps=2000, lr=None, tile_stack=None, ensemble=1).line or "")


def test_a_pair_batch_of_the_thirty_first_session_says_its_tiles_were_not_blended(tmp_path, capsys):
    """A noisy + blurred batch made with grouped-pair before its blend in tiles (no pair_blend in
    the manifest): resuming it names what changed instead of mixing the two silently."""
    def as_before(made):
        assert made.pop("pair_blend") == "tiles" and made["refine"] == "grouped-pair"
        return made

    err = _pair_batch_made_before(tmp_path, capsys, as_before)
    assert "pair_blend" in err and "without its blend with grouped-deblur where they were restored in tiles" in err


def test_a_photon_pair_blends_on_every_held_out_value_its_noise_leaves_unbiased():
    """Photon counts are not clipped at black (no read noise) nor, unless saturated, at white: the
    blend is chosen on held-out values anywhere (a bright scene at 20 photons blends; with the
    Gaussian rule's margins at both ends it had none to choose on), and a saturated photo's counts
    at white are weighed in nowhere (censored); its choice is by the fit's margin at white."""
    from linr.refine import GroupedPair

    rng = np.random.default_rng(5)
    scene = ndimage.zoom(rng.random((4, 4, 3)), (12, 12, 1), order=3).clip(0.0, 1.0) * 0.45 + 0.55
    scene = scene.astype(np.float32)
    kernel = gaussian_kernel(25, 1.6)
    operator = Blur(kernel, boundary="circular")
    photo = blur_image(scene, kernel, seed=0)
    counts = rng.poisson(20.0 * scene) / 20.0
    start = ndimage.gaussian_filter(photo, (1, 1, 0))
    spread = np.sqrt(20.0 * np.maximum(scene, 0.05)) / 20.0
    held = rng.random((48, 48)) < 0.2
    gaussian_rule = GroupedPair()
    gaussian_rule(start, photo, operator, 1.4 / 255, noisy=counts, noise_sigma=spread, held_out=held)
    photon_rule = GroupedPair()
    photon_rule(start, photo, operator, 1.4 / 255, noisy=counts, noise_sigma=spread, held_out=held,
                clipped=(False, False))
    assert gaussian_rule.describe().get("not_blended_held_out_values", 0) < 100
    assert photon_rule.describe()["chosen_on_held_out_values"] == int(held.sum()) * 3
    # censored entries (counts at white in a saturated photo) are weighed in by no data step: all of
    # them censored, the pair is grouped-deblur of the blurred photo alone
    every = GroupedPair()(start, photo, operator, 1.4 / 255, noisy=counts, noise_sigma=spread,
                          censored=np.ones(photo.shape, bool))
    np.testing.assert_allclose(every, GroupedDeblur()(start, photo, operator, 1.4 / 255), atol=1e-6)
    # the command's path marks a saturated photo's white counts, and chooses by the fit's margin at white
    saturated = np.clip(counts, 0, 1).astype(np.float32)
    assert (saturated >= 1).sum() > 50
    pair = [noisy(saturated, noise="poisson", peak=20.0), blurred(photo, kernel, boundary="circular")]
    both, done = refine_image("grouped-pair", start, pair, held_out=[held, None])
    fit_margin = held[..., None] & (start < 1 - 2 * np.sqrt(np.maximum(20.0 * start, 1.0)) / 20.0)
    assert done["noisy_noise"]["saturated"] and done["chosen_on_held_out_values"] == int(fit_margin.sum())
    assert np.isfinite(both).all()


def test_a_tile_store_is_kept_for_one_noise_model():
    """A tile store's fingerprint names the data term (photon noise and its peak), so a rerun with
    another --noise or --peak does not resume tiles fitted under the first."""
    from linr.config import FitConfig
    from linr.tiling import plan_grid, store_fingerprint

    rng = np.random.default_rng(0)
    image = rng.random((40, 40, 3)).astype(np.float32)
    grid = plan_grid((40, 40), 24, 8)
    prints = {str(n): store_fingerprint([noisy(image, **n)], FitConfig(steps=2), grid, "auto")
              for n in ({}, {"noise": "poisson", "peak": 10.0}, {"noise": "poisson", "peak": 50.0})}
    assert len(set(prints.values())) == 3


def test_a_short_exposure_darker_than_the_long_one_is_named():
    """The pair is one brightness scale: a short exposure at 0.3x the long one's level gets a note
    naming the ratio; one of the same level (its noise clipped) none."""
    from linr.tasks import pair_level_note

    clean, kernel, photo, short = _pair_photos("reflect")
    assert pair_level_note([noisy(short), blurred(photo, kernel)]) is None
    note = pair_level_note([noisy(short * 0.3), blurred(photo, kernel)], names=["s.png", "l.png"])
    assert note is not None and note.startswith("s.png (noisy) is 0.3") and "as bright as l.png (blurred)" in note
    assert pair_level_note([noisy(short * 0.3)]) is None  # no pair


def test_a_psf_saved_on_a_larger_canvas_is_trimmed_to_its_reach(tmp_path, capsys):
    """A kernel file whose border is all zeros is the same blur read over a smaller reach: trimmed
    as much on each side (its centre kept), with a note; the fit then grows the frame by the blur's
    own reach only."""
    from linr.cli import main
    from linr.images import write_image
    from linr.kinds import trim_zero_border

    k = np.zeros((11, 9))
    k[3:8, 2:7] = gaussian_kernel(5, 1.0)
    k[4, 2] = 0  # a zero inside the reach stays
    trimmed = trim_zero_border(k)
    assert trimmed.shape == (5, 5) and trimmed[2, 2] == k[5, 4]  # the centre is the same pixel
    lopsided = np.zeros((9, 9))
    lopsided[0:5, 4] = 1.0  # reaches the top edge: nothing to take from the top, so nothing from the bottom
    assert trim_zero_border(lopsided).shape == (9, 1)
    np.save(tmp_path / "psf.npy", np.pad(gaussian_kernel(7, 1.0), 20))
    clean, _, _, _ = _pair_photos()
    write_image(tmp_path / "b.png", blur_image(clean, gaussian_kernel(7, 1.0), seed=0))
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", str(tmp_path / "psf.npy"), "-o",
                 str(tmp_path / "o.png"), "--steps", "2", "--width", "8", "--depth", "1", "--device", "cpu",
                 "--refine", "none"]) == 0
    out = "".join(capsys.readouterr())
    assert "the kernel's all-zero border trimmed (47x47 to 7x7" in out and "more than half" not in out
    assert "(3 px on every side)" in out
    # a new user's 81 x 81 Gaussian (sigma 2) on a 64-px photo, its wings down to 1e-87: refused before
    wide = gaussian_kernel(81, 2.0)
    assert wide.min() < 1e-80
    np.save(tmp_path / "wide.npy", wide)
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", str(tmp_path / "wide.npy"), "-o",
                 str(tmp_path / "o.png"), "--steps", "2", "--width", "8", "--depth", "1", "--device", "cpu",
                 "--refine", "none", "--force"]) == 0
    out = "".join(capsys.readouterr())
    assert "the kernel's border of zeros and values under a millionth of its peak trimmed (81x81 to 21x21" in out
    assert "the same blur but for those values" in out
    assert "the kernel sums to" not in out  # normalised already
    np.save(tmp_path / "counts.npy", gaussian_kernel(7, 1.0) * 25000)  # a measured PSF in counts
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", str(tmp_path / "counts.npy"), "-o",
                 str(tmp_path / "o.png"), "--steps", "2", "--width", "8", "--depth", "1", "--device", "cpu",
                 "--refine", "none", "--force"]) == 0
    assert "counts.npy: the kernel sums to 2.5e+04: divided by that sum" in "".join(capsys.readouterr())


def test_a_batch_with_references_records_each_input_photos_psnr(tmp_path):
    """linr batch --reference-dir: the manifest records each input photo's PSNR (by kind) beside the
    result's metrics, as linr restore --reference prints them."""
    import json

    from linr.cli import main
    from linr.images import read_image, write_image
    from linr.metrics import evaluate

    clean, _, photo, short = _pair_photos("reflect")
    for kind, image in (("short", short), ("long", photo), ("clean", clean)):
        (tmp_path / kind).mkdir()
        write_image(tmp_path / kind / "a.png", image)
    assert main(["batch", "--noisy", str(tmp_path / "short"), "--blurred", str(tmp_path / "long"), "-o",
                 str(tmp_path / "out"), "--kernel", "gaussian:25:1.6", "--reference-dir", str(tmp_path / "clean"),
                 "--steps", "2", "--width", "16", "--depth", "2", "--device", "cpu", "--threads", "1", "--quiet",
                 "--refine", "none"]) == 0
    record = json.loads((tmp_path / "out" / "manifest.jsonl").read_text().splitlines()[-1])
    reference = read_image(tmp_path / "clean" / "a.png")[0]
    expected = {kind: round(evaluate(reference, read_image(tmp_path / folder / "a.png")[0])["psnr"], 4)
                for kind, folder in (("noisy", "short"), ("blurred", "long"))}
    assert {d["kind"]: d["psnr"] for d in record["input_psnr"]} == expected and record["metrics"]


def test_a_noisier_blurred_photo_is_refined_from_a_higher_level_to_a_higher_last_one(capsys, tmp_path):
    """The levels follow the blurred photo's measured noise (at least 1.25x and a quarter of it),
    15 to 2 below 8/255 as before; a short and a long exposure's pair keeps 15 to 2 (not measured
    there); the restore's line says the levels where they were raised."""
    from linr.cli import main
    from linr.images import write_image
    from linr.refine import GroupedPair

    refiner = GroupedDeblur()
    assert np.allclose(refiner.levels_for(3 / 255), np.geomspace(15, 2, 10))
    assert np.allclose(refiner.levels_for(25 / 255)[[0, -1]], [31.25, 6.25])
    assert np.allclose(GroupedPair().levels_for(25 / 255), np.geomspace(15, 2, 10))
    rng = np.random.default_rng(2)
    sharp = ndimage.zoom(rng.random((8, 8, 1)), (4, 4, 1), order=1)
    photo = np.clip(ndimage.convolve(sharp[..., 0], gaussian_kernel(7, 1.0), mode="reflect")
                    + rng.normal(0, 30 / 255, (32, 32)), 0, 1)[..., None].astype(np.float32)
    _, done = refine_image("grouped-deblur", photo, [blurred(photo, gaussian_kernel(7, 1.0))])
    assert done["sigmas"][0] == pytest.approx(1.25 * done["sigma"], abs=0.01)
    assert GroupedDeblur().describe()["sigmas"] == [15.0, 2.0]  # before a call: its own
    refiner(photo, photo, Blur(gaussian_kernel(7, 1.0)), 30 / 255)
    refiner.levels_for(3 / 255)  # a question: describe() still says the call's levels
    assert refiner.describe()["sigmas"] == [37.5, 7.5]
    assert done["sigmas"][1] == pytest.approx(done["sigma"] / 4, abs=0.01) and done["raised_by_noise"] is True
    write_image(tmp_path / "b.png", photo)
    assert main(["restore", "--blurred", str(tmp_path / "b.png"), "--kernel", "gaussian:7:1.0", "-o",
                 str(tmp_path / "o.png"), "--steps", "3", "--width", "16", "--depth", "2", "--device", "cpu",
                 "--quiet"]) == 0
    assert "the filter's level falling from " in capsys.readouterr().out


def test_a_registered_restore_says_which_default_refinement_it_leaves_out(tmp_path, capsys):
    """A new user's three kinds with --register translation came back unrefined without a word (29.62
    dB, under the same photos unregistered and refined): a note names the refinement left out."""
    from PIL import Image

    from linr.cli import main

    rng = np.random.default_rng(0)
    clean = rng.random((32, 32, 3))
    Image.fromarray((np.clip(clean + rng.normal(0, 0.1, clean.shape), 0, 1) * 255).astype(np.uint8)).save(tmp_path / "n.png")
    Image.fromarray((clean[::4, ::4] * 255).astype(np.uint8)).save(tmp_path / "l.png")
    Image.fromarray((clean * 255).astype(np.uint8)).save(tmp_path / "b.png")
    assert main(["restore", "--noisy", str(tmp_path / "n.png"), "--lowres", str(tmp_path / "l.png"), "--blurred",
                 str(tmp_path / "b.png"), "--kernel", "gaussian:5:1.0", "--register", "translation", "-o",
                 str(tmp_path / "o.png"), "--steps", "2", "--width", "16", "--depth", "2", "--device", "cpu"]) == 0
    assert "--register: the fit's image is not refined: grouped-pair, the default for these photos when they line up" \
        in capsys.readouterr().err
