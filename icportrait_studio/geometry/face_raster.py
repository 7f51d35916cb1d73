"""The face mesh drawn into per-pixel maps: coverage, depth and normals at the working size."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from icportrait_studio.geometry.completion import fill_openings, normalized_blur
from icportrait_studio.geometry.raster import close_openings, fill_polygon, rasterize
from icportrait_studio.geometry.topology import face_topology


@dataclass
class FaceRaster:
    face: np.ndarray  # bool HxW: the mesh and the face oval
    mesh: np.ndarray  # bool HxW: pixels on a mesh triangle (not an eye fan or an open mouth)
    depth: np.ndarray  # float32 HxW, toward the camera
    normals: np.ndarray  # float32 HxWx3, camera space


def face_raster(lm_geo: np.ndarray, shape: tuple[int, int]) -> FaceRaster:
    """Rasterise the 478 landmarks (working pixels) with the eyes closed by fans to their rims and an
    open mouth bridged by the plane through its rim (their normals are the mesh's, blurred in)."""
    gh, gw = shape
    topo = face_topology()
    verts, tris = close_openings(lm_geo, topo.triangles, [topo.left_eye, topo.right_eye])
    ras = rasterize(verts, tris, (gh, gw), shade_triangles=len(topo.triangles))
    mesh = ras.triangle >= 0
    mesh &= ras.triangle < len(topo.triangles)
    oval = fill_polygon((gh, gw), lm_geo[topo.face_oval])
    face = ras.mask | oval
    holes = face & ~mesh  # the eyes (closed by fans: their depth is drawn) and an open mouth
    depth_f = ras.depth
    normals_f = ras.normals
    if holes.any():
        # in the face's box (the openings are inside it; a small face's working frame is mostly not face)
        fw = float(np.ptp(lm_geo[:, 0]))
        sigma = 0.03 * fw + 1
        ys, xs = np.nonzero(face)
        m = int(np.ceil(4 * sigma)) + 2
        box = (slice(max(0, ys.min() - m), ys.max() + m + 1), slice(max(0, xs.min() - m), xs.max() + m + 1))
        depth_f, normals_f = ras.depth.copy(), ras.normals.copy()
        depth_f[box] = np.where(ras.mask[box], ras.depth[box],
                                fill_openings(ras.depth[box], ras.mask[box], (holes & ~ras.mask)[box]))
        fill_n = normalized_blur(ras.normals[box], mesh[box], sigma)
        nb = np.where(holes[box][..., None], fill_n, ras.normals[box])
        normals_f[box] = nb / (np.linalg.norm(nb, axis=2, keepdims=True) + 1e-8)
    return FaceRaster(face=face, mesh=mesh, depth=depth_f, normals=normals_f)


SOFTEN = 0.015  # face widths: σ of the blur that takes the mesh's triangle-scale kinks out of shading normals


def soften_normals(normals: np.ndarray, face: np.ndarray, face_width: float) -> np.ndarray:
    """The face's normals blurred by ``SOFTEN`` face widths (elsewhere unchanged), renormalised.

    The mesh's normals are interpolated per triangle from vertex normals: continuous, but with a kink
    along every edge of triangles ~4 % of the face wide, which shading turns into faint facets no face
    has. A blur finer than a triangle removes them and keeps the face's shape: on the Yale dev faces it
    lowered relighting error at 1.5 % of the face width and raised it from 3.5 % on (`bench/RESULTS.md`).
    """
    sigma = SOFTEN * face_width
    if sigma < 0.3 or not face.any():
        return normals
    ys, xs = np.nonzero(face)
    m = int(np.ceil(3 * sigma)) + 1
    h, w = face.shape
    box = (slice(max(0, ys.min() - m), min(h, ys.max() + m + 1)), slice(max(0, xs.min() - m), min(w, xs.max() + m + 1)))
    soft = cv2.GaussianBlur(np.ascontiguousarray(normals[box]), (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    soft /= np.linalg.norm(soft, axis=2, keepdims=True) + 1e-8
    out = np.array(normals, dtype=np.float32, copy=True)
    out[box] = np.where(face[box][..., None], soft, normals[box])
    return out
