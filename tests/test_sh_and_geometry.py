"""Spherical-harmonics math against analytic values; geometry helpers against analytic shapes."""

from __future__ import annotations

import numpy as np
import pytest

from icportrait_studio.geometry.completion import inflate, normals_from_depth
from icportrait_studio.geometry.raster import rasterize, vertex_normals
from icportrait_studio.lighting import sh


def _sphere_samples(n: int = 200_000) -> np.ndarray:
    v = np.random.default_rng(0).normal(size=(n, 3))
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_sh_basis_is_orthonormal() -> None:
    d = _sphere_samples()
    y = sh.sh_basis(d).astype(np.float64)
    gram = 4 * np.pi * (y.T @ y) / len(d)  # Monte Carlo integral over the sphere
    assert np.allclose(gram, np.eye(9), atol=0.02)


def test_directional_irradiance_matches_known_values() -> None:
    light = np.array([0.3, 0.5, 0.8])
    light /= np.linalg.norm(light)
    c = sh.directional_irradiance_coeffs(light)
    # order-2 approximation of max(0, cos): 1/4 + 1/2 + 5/16 at the light, 1/4 - 1/2 + 5/16 opposite
    assert sh.evaluate(c, light[None])[0] == pytest.approx(1.0625, abs=1e-4)
    assert sh.evaluate(c, -light[None])[0] == pytest.approx(0.0625, abs=1e-4)
    # at 90 degrees from the light: pi/4 * Y20-like term only -> 1/4 - 5/32
    perp = np.cross(light, [0, 0, 1.0])
    perp /= np.linalg.norm(perp)
    assert sh.evaluate(c, perp[None])[0] == pytest.approx(0.25 - 5 / 32, abs=1e-4)
    # and it is close to the clamped cosine everywhere (the known ~10% band-limit error)
    d = _sphere_samples(20_000)
    err = sh.evaluate(c, d) - np.maximum(d @ light, 0)
    assert np.abs(err).max() < 0.13


def test_dominant_direction_recovers_the_light() -> None:
    light = np.array([-0.6, 0.2, 0.77])
    light /= np.linalg.norm(light)
    c = sh.directional_irradiance_coeffs(light, 2.0)
    assert np.allclose(sh.dominant_direction(c), light, atol=1e-5)


def test_inflated_disc_is_a_hemisphere() -> None:
    size, radius = 201, 80.0
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx = cy = size // 2
    disc = (xx - cx) ** 2 + (yy - cy) ** 2 <= radius**2
    depth = inflate(disc, radius)
    n = normals_from_depth(depth)
    r2 = ((xx - cx) ** 2 + (yy - cy) ** 2) / radius**2
    inner = r2 < 0.6**2  # away from the silhouette, where finite differences are steep
    expected = np.dstack([(xx - cx) / radius, -(yy - cy) / radius, np.sqrt(np.clip(1 - r2, 0, 1))])
    cosang = np.sum(n * expected, axis=2)[inner]
    assert np.degrees(np.arccos(np.clip(cosang, -1, 1))).mean() < 3.0  # a flat disc would be ~25°
    assert depth[cy, cx] == pytest.approx(radius, rel=0.02)  # the pole sits one radius in front


def test_rasterized_sphere_mesh_has_sphere_normals() -> None:
    # the front half of a UV sphere (an open shell facing the camera, like a face mesh), vertices in image
    # coordinates (x right, y down, z toward camera)
    rings, segs, r, c = 24, 48, 60.0, 80.0
    th, ph = np.meshgrid(np.linspace(0, np.pi, rings), np.linspace(0, np.pi, segs), indexing="ij")
    pts = np.stack([np.sin(th) * np.cos(ph), np.cos(th), np.sin(th) * np.sin(ph)], -1).reshape(-1, 3)
    verts = np.stack([c + r * pts[:, 0], c - r * pts[:, 1], r * pts[:, 2]], 1).astype(np.float32)
    tris = []
    for i in range(rings - 1):
        for j in range(segs - 1):
            a, b = i * segs + j, i * segs + j + 1
            tris += [(a, a + segs, b), (b, a + segs, b + segs)]
    tris = np.array(tris, np.int32)
    vn = vertex_normals(verts, tris)
    cam = pts.copy()  # the true outward normals in camera space (+y up)
    good = np.linalg.norm(vn, axis=1) > 0.5
    assert np.mean(np.sum(vn[good] * cam[good], axis=1)) > 0.99
    ras = rasterize(verts, tris, (160, 160))
    assert ras.mask[80, 80] and not ras.mask[5, 5]
    assert ras.depth[80, 80] == pytest.approx(r, rel=0.03)  # front pole
    assert ras.normals[80, 80, 2] > 0.98
    assert ras.normals[80, 125, 0] > 0.5  # right side of the ball faces right
    assert ras.normals[35, 80, 1] > 0.5  # top of the ball faces up
