"""Real spherical harmonics up to order 2 (9 terms) and the Lambertian irradiance convolution.

Used to describe the lighting already in a photo: smooth, low-frequency, and linear in its
coefficients, so it can be fitted with least squares on skin pixels (Ramamoorthi & Hanrahan 2001).
"""

from __future__ import annotations

import math

import numpy as np

# Lambertian convolution constants per band: pi, 2pi/3, pi/4
A_BAND = np.array([math.pi, 2 * math.pi / 3, 2 * math.pi / 3, 2 * math.pi / 3,
                   math.pi / 4, math.pi / 4, math.pi / 4, math.pi / 4, math.pi / 4], np.float64)


def sh_basis(normals: np.ndarray) -> np.ndarray:
    """Basis values for unit vectors (..., 3) in camera space -> (..., 9), float32.

    Order: Y00, Y1-1 (y), Y10 (z), Y11 (x), Y2-2 (xy), Y2-1 (yz), Y20, Y21 (xz), Y22 (x²-y²).
    """
    n = np.asarray(normals, dtype=np.float32)
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    out = np.empty((*n.shape[:-1], 9), np.float32)
    out[..., 0] = 0.282095
    out[..., 1] = 0.488603 * y
    out[..., 2] = 0.488603 * z
    out[..., 3] = 0.488603 * x
    out[..., 4] = 1.092548 * x * y
    out[..., 5] = 1.092548 * y * z
    out[..., 6] = 0.315392 * (3 * z * z - 1)
    out[..., 7] = 1.092548 * x * z
    out[..., 8] = 0.546274 * (x * x - y * y)
    return out


def directional_irradiance_coeffs(direction, intensity: float = 1.0) -> np.ndarray:
    """SH coefficients of the irradiance of a distant light, so that E(n) ≈ intensity·max(0, n·l)."""
    d = np.asarray(direction, np.float64)
    d = d / (np.linalg.norm(d) or 1.0)
    return (intensity * A_BAND * sh_basis(d).astype(np.float64)).astype(np.float32)


def evaluate(coeffs: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Shading for SH coefficients (9,) at normals (..., 3)."""
    return sh_basis(normals) @ np.asarray(coeffs, np.float32)


def dominant_direction(coeffs: np.ndarray) -> tuple[float, float, float]:
    """Direction of the first-order band (the light's centre of mass), unit vector in camera space."""
    v = np.array([coeffs[3], coeffs[1], coeffs[2]], np.float64)
    n = np.linalg.norm(v)
    if n < 1e-12:
        return (0.0, 0.0, 1.0)
    v /= n
    return (float(v[0]), float(v[1]), float(v[2]))
