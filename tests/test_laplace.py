"""The spectral Laplacian of Gaussian against scipy's gaussian_laplace (the oracle)."""
import numpy as np
import pytest
from scipy import ndimage as ndi

from knnclip_core.embedders.laplace import gaussian_kernels, gaussian_laplace_many

SIGMAS = (1.0, 2.0, 4.0)


@pytest.mark.parametrize("shape", [(360, 480), (37, 211), (5, 7), (1, 1), (2, 40), (33, 3)])
def test_equals_scipy_up_to_float32_rounding(shape):
    rng = np.random.default_rng(sum(shape))
    image = (rng.random(shape) * 100).astype(np.float32)
    image[: shape[0] // 2] = 42.0  # a flat part, where the response is ~0
    got = gaussian_laplace_many(image, SIGMAS)
    for sigma, g in zip(SIGMAS, got):
        ref = ndi.gaussian_laplace(image, sigma)
        assert g.dtype == np.float32 and g.shape == image.shape
        np.testing.assert_allclose(g, ref, rtol=0, atol=2e-5, err_msg=f"sigma={sigma} shape={shape}")


def test_kernels_are_scipys():
    from scipy.ndimage import _filters  # private, so only the test leans on it

    for sigma in SIGMAS + (0.7, 3.3):
        g, d2 = gaussian_kernels(sigma)
        r = len(g) // 2
        np.testing.assert_allclose(g, _filters._gaussian_kernel1d(sigma, 0, r), rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(d2, _filters._gaussian_kernel1d(sigma, 2, r), rtol=1e-12, atol=1e-15)


def test_rejects_what_is_not_an_image():
    with pytest.raises(ValueError, match="2-D"):
        gaussian_laplace_many(np.zeros((2, 3, 3)), SIGMAS)
    with pytest.raises(ValueError, match="non-empty"):
        gaussian_laplace_many(np.zeros((0, 4)), SIGMAS)
