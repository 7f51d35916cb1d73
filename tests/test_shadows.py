"""The shadow march against a plain per-step reference: a step test, a wall, and random height fields."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from icportrait_studio.lighting.shadows import _march_distances, ambient_occlusion, shadow_visibility


def _shifted(a: np.ndarray, ox: int, oy: int) -> np.ndarray:
    """out[y, x] = a[y + oy, x + ox], -inf outside the image (the reference's whole-array shift)."""
    h, w = a.shape
    out = np.full((h, w), -np.inf)
    ys, yd = (slice(oy, h), slice(0, h - oy)) if oy >= 0 else (slice(0, h + oy), slice(-oy, h))
    xs, xd = (slice(ox, w), slice(0, w - ox)) if ox >= 0 else (slice(0, w + ox), slice(-ox, w))
    if abs(ox) < w and abs(oy) < h:
        out[yd, xd] = a[ys, xs]
    return out


def _reference_visibility(depth: np.ndarray, direction, max_dist: float, softness: float, bias: float = 0.6):
    lx, ly, lz = direction
    lxy = math.hypot(lx, ly)
    d = depth.astype(np.float64)
    occ = np.full(d.shape, -np.inf)
    for s in _march_distances(max_dist):
        ox, oy = round(s * lx / lxy), round(-s * ly / lxy)
        if ox == 0 and oy == 0:
            continue
        dist = math.hypot(ox, oy)
        occ = np.maximum(occ, (_shifted(d, ox, oy) - d - (dist * lz / lxy + bias + 0.02 * dist))
                         / (dist * softness + 0.75))
    vis = np.clip(0.5 - occ, 0.0, 1.0)
    return vis * vis * (3 - 2 * vis)


def _reference_occlusion(depth: np.ndarray, max_dist: float, directions: int = 8) -> np.ndarray:
    d = depth.astype(np.float64)
    occluded = np.zeros(d.shape)
    for i in range(directions):
        ang = 2.0 * math.pi * i / directions
        tan_h = np.zeros(d.shape)
        for s in _march_distances(max_dist, first=1.0, growth=1.35):
            ox, oy = round(s * math.cos(ang)), round(s * math.sin(ang))
            if ox or oy:
                tan_h = np.maximum(tan_h, (_shifted(d, ox, oy) - d) / math.hypot(ox, oy))
        occluded += tan_h / np.sqrt(1.0 + tan_h * tan_h)
    return np.clip(1.0 - occluded / directions, 0.0, 1.0)


def _field(seed: int, shape: tuple[int, int]) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.random(shape).astype(np.float32) * 400.0, (0, 0), 5.0)


@pytest.mark.parametrize("direction", [(0.6, 0.3, 0.74), (-0.95, 0.1, 0.2), (0.05, -0.99, 0.1), (0.3, 0.9, 0.3)])
@pytest.mark.parametrize("shape", [(96, 80), (37, 131)])
def test_visibility_matches_the_reference_march(direction, shape) -> None:  # type: ignore[no-untyped-def]
    depth = _field(1, shape)
    v = np.asarray(direction) / np.linalg.norm(direction)
    got = shadow_visibility(depth, tuple(v), max_dist=60.0, softness=0.1)
    want = _reference_visibility(depth, tuple(v), 60.0, 0.1)
    assert 0.0 < float(want.mean()) < 1.0  # the field casts some shadow and leaves some light
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_a_wall_shadows_the_floor_on_its_far_side_only() -> None:
    depth = np.zeros((40, 60), np.float32)
    depth[:, 28:32] = 10.0  # a wall 10 px high across the frame
    vis = shadow_visibility(depth, (0.7, 0.0, 0.714), max_dist=60.0, softness=0.02)  # light from the right, 45° up
    assert (vis[:, :14] > 0.99).all()  # beyond the shadow's reach (10 px at 45°)
    assert (vis[:, 22:28] < 0.01).all()  # behind the wall, on its left
    assert (vis[:, 28:] > 0.99).all()  # the wall's top and the lit side


def test_ambient_occlusion_matches_the_reference() -> None:
    depth = _field(2, (70, 90))
    np.testing.assert_allclose(ambient_occlusion(depth, max_dist=25.0), _reference_occlusion(depth, 25.0), atol=1e-4)
