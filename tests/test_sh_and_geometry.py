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


def _annulus(tilt: float) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """A flat ring of quads around an open disc (an 'eye opening'), on the plane z = 20 + tilt·x."""
    k, c = 32, 60.0
    ang = np.linspace(0, 2 * np.pi, k, endpoint=False)
    inner = np.stack([c + 15 * np.cos(ang), c + 10 * np.sin(ang)], 1)
    outer = np.stack([c + 40 * np.cos(ang), c + 35 * np.sin(ang)], 1)
    xy = np.vstack([inner, outer])
    verts = np.column_stack([xy, 20 + tilt * (xy[:, 0] - c)]).astype(np.float32)
    tris = []
    for i in range(k):
        j = (i + 1) % k
        tris += [(i, k + i, j), (j, k + i, k + j)]
    return verts, np.array(tris, np.int32), list(range(k))


def test_closed_opening_is_drawn_on_the_rim_plane_and_leaves_normals_alone() -> None:
    from icportrait_studio.geometry.raster import close_openings

    verts, tris, ring = _annulus(tilt=0.3)
    open_ras = rasterize(verts, tris, (120, 120))
    assert not open_ras.mask[60, 60]  # the opening is a hole in the mesh
    v2, t2 = close_openings(verts, tris, [ring])
    assert len(v2) == len(verts) + 1 and len(t2) == len(tris) + len(ring)
    ras = rasterize(v2, t2, (120, 120), shade_triangles=len(tris))
    inside = ras.triangle >= len(tris)
    assert inside[60, 60] and inside.sum() > 300
    ys, xs = np.nonzero(inside)
    err = np.abs(ras.depth[ys, xs] - (20 + 0.3 * (xs - 60)))
    assert err.mean() < 0.1 and err.max() < 1.5  # the rim's plane (edge pixels clamp to their triangle)
    mesh = ras.triangle >= 0
    mesh &= ras.triangle < len(tris)
    assert np.allclose(ras.normals[mesh], open_ras.normals[mesh], atol=1e-5)  # fans shape no normal


def test_fill_openings_is_the_plane_through_the_rim() -> None:
    from icportrait_studio.geometry.completion import fill_openings

    yy, xx = np.mgrid[0:80, 0:80].astype(np.float32)
    plane = 5 + 0.2 * xx - 0.4 * yy
    hole = (xx - 40) ** 2 / 15 ** 2 + (yy - 40) ** 2 / 6 ** 2 <= 1
    filled = fill_openings(np.where(hole, 0, plane).astype(np.float32), ~hole, hole)
    assert np.abs(filled - plane).max() < 1e-3


def test_nnls_agrees_with_scipy_on_light_fits_and_random_problems() -> None:
    """The source-light fit's own NNLS (scipy.optimize costs 0.4 s to import) finds SciPy's minimiser."""
    from scipy.optimize import nnls as scipy_nnls

    from icportrait_studio.lighting.estimate import _design, lobe_directions
    from icportrait_studio.lighting.nnls import nnls

    rng = np.random.default_rng(3)
    # a light fit's shape: ~2000 normals on a front hemisphere, 66 smooth lobe columns, a ridge below
    n = rng.normal(size=(2000, 3)).astype(np.float32)
    n[:, 2] = np.abs(n[:, 2])
    n /= np.linalg.norm(n, axis=1, keepdims=True)
    dirs = lobe_directions()
    a = _design(n, dirs)
    truth = np.zeros(a.shape[1])
    truth[[0, 5, 17]] = (0.1, 0.7, 0.3)
    b = a @ truth * (1 + 0.05 * rng.normal(size=len(a)))
    ridge = np.eye(a.shape[1]) * 0.02 * np.sqrt(len(b)) * b.mean()
    ridge[0, 0] = 0
    big_a, big_b = np.vstack([a, ridge]), np.concatenate([b, np.zeros(a.shape[1])])
    ours, r_ours = nnls(big_a, big_b)
    ref, r_ref = scipy_nnls(big_a, big_b, maxiter=2000)
    assert (ours >= 0).all() and np.count_nonzero(ours) < a.shape[1]  # constraints active, not a plain lstsq
    np.testing.assert_allclose(ours, ref, atol=1e-8 * np.abs(ref).max())
    assert r_ours <= r_ref * (1 + 1e-9)
    for _ in range(50):  # unstructured problems, over- and under-determined
        m, k = int(rng.integers(3, 200)), int(rng.integers(1, 30))
        a2, b2 = rng.normal(size=(m, k)), rng.normal(size=m)
        x2, r2 = nnls(a2, b2)
        assert (x2 >= 0).all()
        assert r2 <= scipy_nnls(a2, b2, maxiter=5000)[1] * (1 + 1e-7) + 1e-9
