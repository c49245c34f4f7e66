from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from linr.operators import gaussian_kernel
from linr.simulate import (add_gaussian_noise, bernoulli_mask, blur_image, crop_to_multiple,
                           lanczos_downscale)


def test_noise_is_seeded_and_has_the_right_sigma():
    img = np.full((64, 64, 3), 0.5)
    a = add_gaussian_noise(img, 25, seed=1)
    assert np.array_equal(a, add_gaussian_noise(img, 25, seed=1))
    assert not np.array_equal(a, add_gaussian_noise(img, 25, seed=2))
    assert abs((a - 0.5).std() - 25 / 255) < 0.003
    assert add_gaussian_noise(np.zeros((8, 8)), 50).min() == 0.0  # clipped


def test_bernoulli_mask():
    m = bernoulli_mask((200, 100), 0.1, seed=0)
    assert m.shape == (200, 100) and m.dtype == bool
    assert abs(m.mean() - 0.1) < 0.01
    assert np.array_equal(m, bernoulli_mask((200, 100), 0.1, seed=0))
    with pytest.raises(ValueError):
        bernoulli_mask((4, 4), 0.0)


def test_lanczos_downscale_is_pil(rng):
    u8 = (rng.random((32, 24, 3)) * 255).astype(np.uint8)
    ours = lanczos_downscale(u8 / 255.0, 4)
    ref = np.asarray(Image.fromarray(u8).resize((6, 8), Image.LANCZOS)) / 255.0
    assert ours.shape == (8, 6, 3) and np.allclose(ours, ref, atol=1e-6)
    assert lanczos_downscale(rng.random((16, 16, 1)), 2).shape == (8, 8, 1)  # float path


def test_crop_to_multiple():
    assert crop_to_multiple(np.zeros((228, 344, 3)), 8).shape == (224, 344, 3)


def test_blur_image_is_circular_convolution(rng):
    img = rng.random((30, 30, 1))
    k = gaussian_kernel(9, 1.6)
    ours = blur_image(img, k, noise_sigma=0.0)
    ref = ndimage.convolve(img[..., 0], k, mode="wrap")
    assert np.allclose(ours[..., 0], ref, atol=1e-6)
