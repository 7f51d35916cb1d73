"""Mesh rasterisation into per-pixel depth, normals and coverage (numpy + OpenCV, no GL).

Triangles are drawn far-to-near into a triangle-index buffer (painter's order is exact enough for a
face seen within ±45°), then barycentric weights interpolate depth and vertex normals per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class Raster:
    """Per-pixel mesh attributes; ``mask`` is where the mesh covers the pixel."""

    mask: np.ndarray  # bool HxW
    depth: np.ndarray  # float32 HxW, toward the camera, 0 outside
    normals: np.ndarray  # float32 HxWx3, camera space (+x right, +y up, +z to camera), 0 outside
    triangle: np.ndarray  # int32 HxW, -1 outside


def vertex_normals(vertices: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals in camera space (input vertices are image x-right, y-down, z-to-camera)."""
    v = vertices.astype(np.float64).copy()
    v[:, 1] *= -1.0  # image y-down -> camera y-up
    a, b, c = v[triangles[:, 0]], v[triangles[:, 1]], v[triangles[:, 2]]
    fn = np.cross(b - a, c - a)
    if fn[:, 2].sum() < 0:  # consistent winding, but which side is out depends on the table's order
        fn = -fn
    vn = np.zeros_like(v)
    for k in range(3):
        np.add.at(vn, triangles[:, k], fn)
    vn /= np.linalg.norm(vn, axis=1, keepdims=True) + 1e-12
    return vn.astype(np.float32)


def rasterize(vertices: np.ndarray, triangles: np.ndarray, shape: tuple[int, int], *,
              shade_triangles: int | None = None) -> Raster:
    """Rasterise a mesh given in pixel coordinates of an image of ``shape`` (h, w).

    Only the first ``shade_triangles`` triangles (all by default) shape the vertex normals: the fans
    that close openings must not tilt the normals along an eye's rim.
    """
    h, w = shape
    normals_v = vertex_normals(vertices, triangles[:shade_triangles])
    tri_buf = triangle_buffer(vertices, triangles, shape)
    mask = tri_buf >= 0
    depth = np.zeros((h, w), np.float32)
    normals = np.zeros((h, w, 3), np.float32)
    ys, xs, corners, weights = barycentric(vertices, triangles, tri_buf)
    if len(xs):
        depth[ys, xs] = (weights * vertices[corners, 2]).sum(axis=1)
        n = (weights[..., None] * normals_v[corners]).sum(axis=1)
        n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
        normals[ys, xs] = n
    return Raster(mask=mask, depth=depth, normals=normals, triangle=tri_buf)


def triangle_buffer(vertices: np.ndarray, triangles: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Which triangle covers each pixel (int32 HxW, -1 for none), drawn far to near (by mean z)."""
    tri_buf = np.full(shape, -1, np.int32)
    shift = 4
    pts = np.round(vertices[:, :2] * (1 << shift)).astype(np.int32)
    for t in np.argsort(vertices[triangles, 2].mean(axis=1)):  # far first
        cv2.fillConvexPoly(tri_buf, pts[triangles[t]], int(t), lineType=cv2.LINE_8, shift=shift)
    return tri_buf


def barycentric(vertices: np.ndarray, triangles: np.ndarray, tri_buf: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """For each covered pixel of ``tri_buf``: its (ys, xs), its triangle's three vertex indices (N×3) and
    its barycentric weights (N×3, clipped to the triangle and summing to 1), to interpolate any vertex
    attribute."""
    ys, xs = np.nonzero(tri_buf >= 0)
    corners = triangles[tri_buf[ys, xs]]
    a, b, c = (vertices[corners[:, k], :2].astype(np.float32) for k in range(3))
    px, py = xs.astype(np.float32), ys.astype(np.float32)
    v0x, v0y = b[:, 0] - a[:, 0], b[:, 1] - a[:, 1]
    v1x, v1y = c[:, 0] - a[:, 0], c[:, 1] - a[:, 1]
    v2x, v2y = px - a[:, 0], py - a[:, 1]
    den = v0x * v1y - v1x * v0y
    den = np.where(np.abs(den) < 1e-9, 1e-9, den)
    wb = np.clip((v2x * v1y - v1x * v2y) / den, 0, 1)
    wc = np.clip((v0x * v2y - v2x * v0y) / den, 0, 1)
    wa = np.clip(1.0 - wb - wc, 0, 1)
    weights = np.stack([wa, wb, wc], axis=1)
    weights /= weights.sum(axis=1, keepdims=True)
    return ys, xs, corners, weights


def close_openings(vertices: np.ndarray, triangles: np.ndarray, rings: list[list[int]]
                   ) -> tuple[np.ndarray, np.ndarray]:
    """The mesh with each opening (a ring of vertex indices, in order) closed by a fan to its 3-D centroid.

    The face mesh leaves the eyes open. Closed, an eye gets a surface that is continuous with the mesh
    along its rim and turns with the landmarks, and the far side of a turned face no longer shows
    through the far eye's opening: a turned face analysed again then finds there the depth the turn
    carried. The fans come after the mesh's triangles (see ``rasterize``'s ``shade_triangles``).
    """
    verts = [np.asarray(vertices, np.float32)]
    fans = [np.asarray(triangles, np.int32)]
    n = len(vertices)
    for ring in rings:
        verts.append(np.asarray(vertices, np.float32)[ring].mean(axis=0, keepdims=True))
        k = len(ring)
        fans.append(np.array([(n, ring[i], ring[(i + 1) % k]) for i in range(k)], np.int32))
        n += 1
    return np.vstack(verts), np.vstack(fans)


def fill_polygon(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Boolean mask of a polygon given in pixel coordinates."""
    m = np.zeros(shape, np.uint8)
    if len(points) >= 3:
        cv2.fillPoly(m, [np.round(points[:, :2] * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    return m.astype(bool)
