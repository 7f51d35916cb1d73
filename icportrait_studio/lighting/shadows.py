"""Soft cast shadows from a height field (nose on cheek, brows on eyes, jaw on neck).

For each pixel a ray is marched toward the light over the depth map; the worst intrusion of the
surface above the ray, divided by a penumbra width that grows with distance (a sphere light of
angular radius alpha), gives the visibility. Whole-array shifts keep it vectorised: two OpenCV passes
over the overlapping views per march step, not a loop per pixel.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

NEG = np.float32(-1e9)


def _march_distances(max_dist: float, first: float = 1.0, growth: float = 1.22) -> list[float]:
    out, s = [], first
    while s <= max_dist:
        out.append(s)
        s = max(s + 1.0, s * growth)
    return out


def _overlap(h: int, w: int, ox: int, oy: int) -> tuple[tuple[slice, slice], tuple[slice, slice]] | None:
    """The slices (``source``, ``dest``) with dest[y, x] = source[y + oy, x + ox] inside an h x w image;
    None where the shift leaves nothing. The march works on these views: a whole shifted copy padded
    with a sentinel (one full-size fill and copy per step) cost a third of a drag preview's shadows."""
    if abs(ox) >= w or abs(oy) >= h:
        return None
    ys, yd = (slice(oy, h), slice(0, h - oy)) if oy >= 0 else (slice(0, h + oy), slice(-oy, h))
    xs, xd = (slice(ox, w), slice(0, w - ox)) if ox >= 0 else (slice(0, w + ox), slice(-ox, w))
    return (ys, xs), (yd, xd)


def _max_into(view: np.ndarray, values: np.ndarray) -> None:
    """view = max(view, values), written into ``view`` (a window of a larger array)."""
    out = cv2.max(view, values, dst=view)
    if out is not view:  # OpenCV allocated instead of writing through (it does not for these views)
        view[...] = out


def shadow_visibility(depth: np.ndarray, direction: tuple[float, float, float], *, max_dist: float,
                      softness: float, bias: float = 0.6) -> np.ndarray:
    """Visibility in [0, 1] of a distant light from camera-space ``direction`` over ``depth`` (pixels).

    ``softness`` is tan(alpha) of the light's angular radius; ``max_dist`` bounds the march in pixels.
    """
    lx, ly, lz = direction
    lxy = math.hypot(lx, ly)
    if lxy < 1e-3:
        return np.ones_like(depth)
    dx, dy = lx / lxy, -ly / lxy  # image plane step (y down)
    slope = lz / lxy  # ray height gained per pixel travelled
    occ = np.full_like(depth, NEG)
    h, w = depth.shape
    w0 = 0.75
    seen = set()
    for s in _march_distances(max_dist):
        ox, oy = round(s * dx), round(s * dy)
        if (ox, oy) in seen or (ox == 0 and oy == 0):
            continue  # the same offset again tests the same points
        seen.add((ox, oy))
        views = _overlap(h, w, ox, oy)
        if views is None:
            break  # the march has left the image: every further step is farther still
        src, dst = views
        dist = math.hypot(ox, oy)
        k = 1.0 / (dist * softness + w0)
        # (surface there - here - ray height) * k in one pass (numpy took three), maxed into the view
        above = cv2.addWeighted(depth[src], k, depth[dst], -k, -(dist * slope + bias + 0.02 * dist) * k)
        _max_into(occ[dst], above)
    vis = np.clip(0.5 - occ, 0.0, 1.0)
    return vis * vis * (3 - 2 * vis)


def ambient_occlusion(depth: np.ndarray, *, max_dist: float, directions: int = 8) -> np.ndarray:
    """Fraction of a uniform sky each pixel of the height field ``depth`` sees, in [0, 1].

    Horizon-based: along ``directions`` image-plane directions the steepest rise of the surface
    within ``max_dist`` pixels gives the horizon angle h, which hides sin(h) of that slice of sky.
    Creases (eye sockets, nostrils, the fold beside the nose, under the jaw) get less fill light than
    open cheeks, as in a real room; a flat or convex surface keeps all of it.
    """
    occluded = np.zeros_like(depth)
    h, w = depth.shape
    steps = _march_distances(max_dist, first=1.0, growth=1.35)
    for i in range(directions):
        ang = 2.0 * math.pi * i / directions
        dx, dy = math.cos(ang), math.sin(ang)
        tan_h = np.zeros_like(depth)
        seen = set()
        for s in steps:
            ox, oy = round(s * dx), round(s * dy)
            if (ox, oy) in seen or (ox == 0 and oy == 0):
                continue
            seen.add((ox, oy))
            views = _overlap(h, w, ox, oy)
            if views is None:
                break
            src, dst = views
            k = 1.0 / math.hypot(ox, oy)
            _max_into(tan_h[dst], cv2.addWeighted(depth[src], k, depth[dst], -k, 0.0))
        occluded += tan_h / np.sqrt(1.0 + tan_h * tan_h)  # sin(atan(t))
    return np.clip(1.0 - occluded / directions, 0.0, 1.0).astype(np.float32)
