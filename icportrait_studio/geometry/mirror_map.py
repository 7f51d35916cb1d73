"""Where each point of the face lies on its other side: a map for borrowing from the better-lit half.

A face half in black shadow holds nothing of its skin there, and a relight from that side had to light a
smooth albedo borrowed from the neighbours: a flat, plastic half-face with a blank eye. Faces are close to
symmetric in what they are made of (skin, brows, lips, eyes), so the other half, where the photo's light
reached it, lends its albedo instead (``lighting/relight.prepare``).

On the face mesh each pixel maps through its barycentric coordinates to the mirror triangle (the 468
mesh points paired left-right by ``MIRROR_INDEX``). The eye openings are holes in the tessellation: there
the map reflects about the irises' centres, scaled by the eyes' widths, so a borrowed eye keeps its own
gaze (mirroring an eye through the mesh would turn an eye looking left into one looking right).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from icportrait_studio.geometry.mirror_index import MIRROR_INDEX
from icportrait_studio.geometry.raster import barycentric, fill_polygon, triangle_buffer
from icportrait_studio.geometry.topology import face_topology


@dataclass
class MirrorMap:
    """For each pixel, where its mirror point is (``x``, ``y``: pixels of the same image), and whether it
    has one (``valid``: on the face mesh or in an eye opening); ``eyes`` marks the eye openings."""

    x: np.ndarray  # float32 HxW
    y: np.ndarray  # float32 HxW
    valid: np.ndarray  # bool HxW
    eyes: np.ndarray  # bool HxW


def mirror_map(landmarks: np.ndarray, shape: tuple[int, int]) -> MirrorMap:
    """The mirror map of a face whose 478 ``landmarks`` (x, y, z) are in the pixels of an image of ``shape``
    (h, w)."""
    h, w = shape
    topo = face_topology()
    tris = topo.triangles
    pts = landmarks[:, :2].astype(np.float64)
    mirror = pts[np.asarray(MIRROR_INDEX)]
    mx = np.full((h, w), -1.0, np.float32)
    my = np.full((h, w), -1.0, np.float32)
    ys, xs, corners, weights = barycentric(landmarks, tris, triangle_buffer(landmarks, tris, (h, w)))
    if len(xs):
        m = (weights[..., None] * mirror[corners]).sum(axis=1)
        mx[ys, xs], my[ys, xs] = m[:, 0], m[:, 1]
    eyes = np.zeros((h, w), bool)
    sides = ((topo.left_eye, topo.left_iris), (topo.right_eye, topo.right_iris))
    for (eye, iris), (other_eye, other_iris) in zip(sides, sides[::-1], strict=True):
        opening = fill_polygon((h, w), pts[eye])
        other = fill_polygon((h, w), pts[other_eye])
        c, oc = pts[iris].mean(axis=0), pts[other_iris].mean(axis=0)
        scale = float(np.ptp(pts[other_eye, 0])) / max(float(np.ptp(pts[eye, 0])), 1e-6)
        ys, xs = np.nonzero(opening)
        ex, ey = oc[0] - (xs - c[0]) * scale, oc[1] + (ys - c[1]) * scale
        inside = (ex >= 0) & (ex <= w - 1) & (ey >= 0) & (ey <= h - 1)
        inside[inside] = other[np.rint(ey[inside]).astype(int), np.rint(ex[inside]).astype(int)]
        mx[ys, xs] = np.where(inside, ex, -1.0)
        my[ys, xs] = np.where(inside, ey, -1.0)
        eyes |= opening
    valid = mx >= 0
    return MirrorMap(x=mx, y=my, valid=valid, eyes=eyes & valid)
