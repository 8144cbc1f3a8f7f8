"""Laplacian of Gaussian at several scales in one pass over the image's spectrum.

`scipy.ndimage.gaussian_laplace(image, sigma)` (its default `reflect` border and truncation at
4 sigma) for every sigma, from one float64 FFT of the image padded by reflection and one
inverse FFT per sigma: the separable kernels (second derivative along one axis, smoothing along
the other, summed over the axes) become one transfer function per sigma. The kernels are the
ones scipy samples; the result differs from scipy's only by rounding (scipy rounds to float32
between its axis passes, this does not).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

TRUNCATE = 4.0  # scipy's default: kernels reach `int(TRUNCATE * sigma + 0.5)` pixels


def radius_of(sigma: float) -> int:
    return int(TRUNCATE * float(sigma) + 0.5)


def gaussian_kernels(sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """(smoothing, second derivative) sampled 1-D kernels of length 2r+1, as scipy makes them:
    the normalised sampled Gaussian phi and (x^2 / sigma^4 - 1 / sigma^2) * phi."""
    r = radius_of(sigma)
    x = np.arange(-r, r + 1, dtype=np.float64)
    s2 = float(sigma) ** 2
    phi = np.exp(-0.5 / s2 * x ** 2)
    phi /= phi.sum()
    return phi, (x ** 2 / s2 ** 2 - 1.0 / s2) * phi


def _kernel_spectrum(kernel: np.ndarray, n: int, real: bool) -> np.ndarray:
    """DFT of a centred odd kernel placed at index 0 of a length-n circle."""
    from scipy import fft

    r = len(kernel) // 2
    z = np.zeros(n)
    z[:r + 1], z[n - r:] = kernel[r:], kernel[:r]
    return fft.rfft(z) if real else fft.fft(z)


@lru_cache(maxsize=16)
def _transfer(shape: tuple[int, int], sigmas: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """Per sigma, the rfft2 transfer function of the 2-D Laplacian of Gaussian on `shape`."""
    rows, cols = shape
    out = []
    for s in sigmas:
        g, d2 = gaussian_kernels(s)
        gy, dy = _kernel_spectrum(g, rows, False), _kernel_spectrum(d2, rows, False)
        gx, dx = _kernel_spectrum(g, cols, True), _kernel_spectrum(d2, cols, True)
        t = dy[:, None] * gx[None, :] + gy[:, None] * dx[None, :]
        t.setflags(write=False)  # cached and shared
        out.append(t)
    return tuple(out)


def gaussian_laplace_many(image: np.ndarray, sigmas) -> list[np.ndarray]:
    """(H, W) image -> [(H, W) float32 Laplacian of Gaussian] for each sigma (module doc)."""
    from scipy import fft

    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2 or img.size == 0:
        raise ValueError(f"gaussian_laplace_many: a non-empty 2-D image is needed, got shape {img.shape}")
    sigmas = tuple(float(s) for s in sigmas)
    h, w = img.shape
    pad = max(radius_of(s) for s in sigmas)
    padded = np.pad(img, pad, mode="symmetric")  # numpy's "symmetric" is scipy's "reflect"
    shape = (fft.next_fast_len(padded.shape[0], real=True), fft.next_fast_len(padded.shape[1], real=True))
    spectrum = fft.rfft2(padded, s=shape, workers=1)
    return [fft.irfft2(spectrum * t, s=shape, workers=1)[pad:pad + h, pad:pad + w].astype(np.float32)
            for t in _transfer(shape, sigmas)]
