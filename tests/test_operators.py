"""Operators: shapes, gradients, adjointness, and agreement with independent references."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import ndimage

from linr.operators import (Blur, Compose, Downsample, Identity, Mask, Operator, downsample_taps,
                            gaussian_kernel)

SPEC_LANCZOS2_X4 = [-0.001065, -0.009752, -0.020384, -0.014878, 0.024594, 0.098658, 0.183115,
                    0.239711, 0.239711, 0.183115, 0.098658, 0.024594, -0.014878, -0.020384,
                    -0.009752, -0.001065]


def _operators(shape=(24, 32)):
    h, w = shape
    rng = np.random.default_rng(0)
    return {
        "identity": Identity(),
        "down_lanczos2_x4": Downsample(4),
        "down_bicubic_x2": Downsample(2, "bicubic"),
        "down_box_x4": Downsample(4, "box"),
        "mask": Mask(rng.random((h, w)) < 0.3),
        "blur_circular": Blur(gaussian_kernel(7, 1.6), boundary="circular"),
        "blur_reflect": Blur(rng.random((5, 3)), boundary="reflect"),
        "blur_then_down": Compose([Blur(gaussian_kernel(5, 1.0)), Downsample(2)]),
    }


OPS = _operators()


@pytest.mark.parametrize("name", sorted(OPS))
def test_shapes_and_gradients(name):
    op = OPS[name]
    x = torch.randn(2, 3, 24, 32, dtype=torch.float64, requires_grad=True)
    y = op(x)
    assert tuple(y.shape[-2:]) == op.output_shape((24, 32))
    assert op.input_shape(tuple(y.shape[-2:])) == (24, 32)
    assert y.shape[:2] == (2, 3)
    assert torch.autograd.gradcheck(lambda t: op(t), (x[:1, :1].detach().requires_grad_(),), fast_mode=True)


@pytest.mark.parametrize("name", sorted(OPS))
def test_adjoint(name):
    op = OPS[name]
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 24, 32, dtype=torch.float64, generator=gen)
    y = torch.randn(1, 3, *op.output_shape((24, 32)), dtype=torch.float64, generator=gen)
    lhs = (op(x) * y).sum()
    rhs = (x * op.adjoint(y, (24, 32))).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-10, atol=1e-10)


def test_explicit_adjoints_match_autograd():
    gen = torch.Generator().manual_seed(2)
    y = torch.randn(1, 3, 24, 32, dtype=torch.float64, generator=gen)
    for name in ("blur_circular", "mask", "identity"):
        op = OPS[name]
        generic = Operator.adjoint(op, y, (24, 32))
        assert torch.allclose(op.adjoint(y), generic, atol=1e-12)


def test_lanczos2_taps_match_spec():
    assert np.allclose(downsample_taps(4, "lanczos2"), SPEC_LANCZOS2_X4, atol=1e-5)
    for factor in (2, 4, 8):
        taps = downsample_taps(factor)
        assert len(taps) == 4 * factor
        assert abs(taps.sum() - 1) < 1e-12
        assert np.allclose(taps, taps[::-1])
    assert Downsample(4).pad == 6


def test_downsample_equals_dip_2d_kernel():
    """The separable implementation equals DIP's 2-D kernel convolution with replicate padding."""
    taps = downsample_taps(4)
    k2 = torch.from_numpy(np.outer(taps, taps))
    x = torch.rand(1, 3, 32, 40, dtype=torch.float64)
    padded = F.pad(x.reshape(3, 1, 32, 40), (6, 6, 6, 6), mode="replicate")
    ref = F.conv2d(padded, k2[None, None], stride=4).reshape(1, 3, 8, 10)
    assert torch.allclose(Downsample(4)(x), ref, atol=1e-12)


def test_downsample_preserves_constants_and_rejects_bad_sizes():
    x = torch.full((1, 1, 16, 16), 0.7, dtype=torch.float64)
    for kernel in ("lanczos2", "bicubic", "box"):
        assert torch.allclose(Downsample(4, kernel)(x), torch.full((1, 1, 4, 4), 0.7, dtype=torch.float64))
    with pytest.raises(ValueError, match="not divisible"):
        Downsample(4).output_shape((18, 16))
    with pytest.raises(ValueError):
        Downsample(0)
    with pytest.raises(ValueError):
        Downsample(2, "mystery")


def test_circular_blur_matches_direct_convolution():
    rng = np.random.default_rng(3)
    img = rng.random((20, 23))
    k = rng.random((5, 7))
    k /= k.sum()
    ours = Blur(k, boundary="circular")(torch.from_numpy(img)[None, None])[0, 0].numpy()
    ref = ndimage.convolve(img, k, mode="wrap")
    assert np.allclose(ours, ref, atol=1e-12)


def test_reflect_blur_matches_direct_convolution():
    rng = np.random.default_rng(4)
    img = rng.random((20, 23))
    k = rng.random((5, 5))
    k /= k.sum()
    ours = Blur(k, boundary="reflect")(torch.from_numpy(img)[None, None])[0, 0].numpy()
    ref = ndimage.convolve(img, k, mode="mirror")  # 'mirror' = torch's reflect (edge not repeated)
    assert np.allclose(ours, ref, atol=1e-12)


def test_gaussian_kernel_and_blur_validation():
    k = gaussian_kernel(25, 1.6)
    assert k.shape == (25, 25) and abs(k.sum() - 1) < 1e-12 and k[12, 12] == k.max()
    with pytest.raises(ValueError):
        gaussian_kernel(0, 1.0)
    with pytest.raises(ValueError):
        gaussian_kernel(5, -1.0)
    with pytest.raises(ValueError):
        Blur(np.zeros((3, 3)))
    with pytest.raises(ValueError):
        Blur(np.ones(3))
    with pytest.raises(ValueError):
        Blur(np.array([[np.nan]]))
    with pytest.raises(ValueError, match="larger"):
        Blur(np.ones((9, 9))).output_shape((4, 4))


def test_mask_checks_size():
    op = Mask(np.ones((4, 5)))
    with pytest.raises(ValueError, match="does not match"):
        op(torch.zeros(1, 1, 5, 4))
    assert op.kept_fraction == 1.0


# --- every factor, every downsampler, odd and even sizes (issue: x3 and x5 crashed) -------------

from PIL import Image as _PILImage  # noqa: E402

from linr.operators import DOWNSAMPLE_KERNELS  # noqa: E402


@pytest.mark.parametrize("factor", range(1, 9))
@pytest.mark.parametrize("kernel", sorted(DOWNSAMPLE_KERNELS))
def test_every_factor_and_kernel_keeps_shapes_constants_and_adjoint(factor, kernel):
    rng = np.random.default_rng(factor)
    op = Downsample(factor, kernel)
    taps = downsample_taps(factor, kernel)
    assert abs(taps.sum() - 1) < 1e-12 and np.allclose(taps, taps[::-1])
    assert (len(taps) - factor) % 2 == 0  # whole, symmetric padding
    for h, w in ((3 * factor, 5 * factor), (4 * factor, 7 * factor), (factor, factor)):
        x = torch.from_numpy(rng.random((2, 3, h, w)))
        y = op(x)
        assert tuple(y.shape) == (2, 3, h // factor, w // factor) == (2, 3, *op.output_shape((h, w)))
        assert torch.allclose(op(torch.full((1, 1, h, w), 0.3, dtype=torch.float64)), torch.tensor(0.3,
                              dtype=torch.float64))
        v = torch.from_numpy(rng.random(tuple(y.shape)))
        assert torch.allclose((y * v).sum(), (x * op.adjoint(v, (h, w))).sum())


@pytest.mark.parametrize("factor", range(2, 9))
@pytest.mark.parametrize("kernel,pil", [("bicubic", "BICUBIC"), ("box", "BOX")])
def test_downsample_matches_pil_resize_away_from_borders(factor, kernel, pil):
    """PIL centres each output pixel on its block of ``factor`` pixels and stretches the kernel by
    the factor, as our taps do; it renormalises at the borders where we replicate, so compare
    the interior (2 low-res pixels in)."""
    rng = np.random.default_rng(10 + factor)
    for h, w in ((6 * factor, 9 * factor), (7 * factor, 5 * factor)):
        x = rng.random((h, w)).astype(np.float32)
        ref = np.asarray(_PILImage.fromarray(x, mode="F").resize((w // factor, h // factor),
                                                                  getattr(_PILImage, pil)))
        ours = Downsample(factor, kernel)(torch.from_numpy(x.astype(np.float64))[None, None])[0, 0].numpy()
        b = 0 if kernel == "box" else 2
        assert np.abs(ours - ref)[b:h // factor - b, b:w // factor - b].max() < 1e-6
