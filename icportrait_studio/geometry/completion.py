"""Depth and normals beyond the face mesh: forehead-to-hair, ears, neck and shoulders.

The mesh gives reliable geometry for the face only. The rest of the person is "inflated" from the
matte (a rounded profile that reaches the camera-facing plateau one face-radius in from the
silhouette), shifted so it meets the mesh depth along the face's border, and the two normal fields
are cross-faded over a narrow band so no seam shows in the shading.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass
class SurfaceMaps:
    depth: np.ndarray  # float32 HxW (pixels, toward the camera); background sits behind the person
    normals: np.ndarray  # float32 HxWx3 camera space
    person: np.ndarray  # bool HxW


LARGE_SIGMA = 6.0  # above this, blur at a reduced size: the result is smooth anyway, and 10-50x cheaper


def smooth_blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur; wide kernels run on a downscaled copy (a wide Gaussian has no fine detail to lose)."""
    if sigma <= 0.3:
        return a
    h, w = a.shape[:2]
    factor = int(sigma // (LARGE_SIGMA / 2))
    if sigma <= LARGE_SIGMA or factor < 2 or min(h, w) < 4 * factor:
        return cv2.GaussianBlur(a, (0, 0), sigmaX=sigma, sigmaY=sigma, borderType=cv2.BORDER_REPLICATE)
    small = cv2.resize(a, (max(1, w // factor), max(1, h // factor)), interpolation=cv2.INTER_AREA)
    s = sigma / factor
    small = cv2.GaussianBlur(small, (0, 0), sigmaX=s, sigmaY=s, borderType=cv2.BORDER_REPLICATE)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def normalized_blur(values: np.ndarray, weights: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian-weighted average of ``values`` where ``weights`` > 0 (fills gaps smoothly)."""
    w = weights.astype(np.float32)
    if values.ndim == 3:
        num = smooth_blur(values * w[..., None], sigma)
        den = smooth_blur(w, sigma)[..., None]
    else:
        num = smooth_blur(values * w, sigma)
        den = smooth_blur(w, sigma)
    return num / np.maximum(den, 1e-6)


def normals_from_depth(depth: np.ndarray) -> np.ndarray:
    """Camera-space normals of the height field z = depth(x, y_image_down)."""
    gy, gx = np.gradient(depth.astype(np.float32))
    inv = 1.0 / np.sqrt(gx * gx + gy * gy + 1.0)  # (−gx, gy, 1) normalised without a 3-channel norm
    n = np.empty((*gx.shape, 3), np.float32)
    n[..., 0] = -gx * inv
    n[..., 1] = gy * inv
    n[..., 2] = inv
    return n


def _normalize(n: np.ndarray) -> np.ndarray:
    """``n`` (HxWx3 float32) scaled to unit length in place (cheaper than ``np.linalg.norm``)."""
    n /= np.sqrt(np.einsum("hwc,hwc->hw", n, n))[..., None] + np.float32(1e-8)
    return n


def _plane(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray | None:
    """Least-squares plane z = a·x + b·y + c (None for fewer than three points)."""
    if len(x) < 3:
        return None
    a = np.column_stack([x, y, np.ones_like(x)]).astype(np.float64)
    coef, *_ = np.linalg.lstsq(a, np.asarray(z, np.float64), rcond=None)
    return coef


def fill_openings(depth: np.ndarray, mesh: np.ndarray, holes: np.ndarray) -> np.ndarray:
    """Depth inside openings of the mesh (an open mouth): the plane through each opening's rim.

    A plane is what a rotation maps to a plane, so a re-posed face analysed again (its landmarks
    carried) gets about the depth the turn carried into the opening; a blur of the rim weighs the rim
    differently once the opening is foreshortened.
    """
    out = depth.copy()
    n, labels, stats, _ = cv2.connectedComponentsWithStats(holes.astype(np.uint8), connectivity=8)
    h, w = holes.shape
    for i in range(1, n):
        x, y, bw, bh = (int(v) for v in stats[i, :4])
        x0, y0, x1, y1 = max(0, x - 2), max(0, y - 2), min(w, x + bw + 2), min(h, y + bh + 2)
        comp = labels[y0:y1, x0:x1] == i
        rim = cv2.dilate(comp.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & mesh[y0:y1, x0:x1]
        ry, rx = np.nonzero(rim)
        coef = _plane(rx, ry, depth[y0:y1, x0:x1][rim])
        if coef is None:
            continue
        cy, cx = np.nonzero(comp)
        out[y0 + cy, x0 + cx] = (coef[0] * cx + coef[1] * cy + coef[2]).astype(np.float32)
    return out


def inflate(person: np.ndarray, radius: float) -> np.ndarray:
    """A rounded height profile inside ``person``: a circle of ``radius`` near the silhouette, flat beyond."""
    d = cv2.distanceTransform(person.astype(np.uint8), cv2.DIST_L2, 5).astype(np.float32)
    d = np.minimum(d, radius)
    return np.sqrt(np.maximum(2.0 * radius * d - d * d, 0.0))


BOX_MARGIN = 1.5  # face widths around the person: more than every blur below reaches


def complete_surface(person: np.ndarray, face: np.ndarray, face_depth: np.ndarray, face_normals: np.ndarray,
                     face_width: float) -> SurfaceMaps:
    """Merge mesh geometry (``face``) with an inflated surface for the rest of ``person``.

    Worked out in the person's box (with a margin wider than any blur here): outside it the surface is the
    flat backdrop anyway, and a full-length portrait's person covers a few percent of a working frame that
    a small face made large (its completion 0.43 s over the whole frame).
    """
    everyone = person | face
    h, w = everyone.shape
    if not everyone.any():
        return _complete(everyone, face, face_depth, face_normals, face_width)
    ys, xs = np.nonzero(everyone)
    m = int(np.ceil(BOX_MARGIN * face_width)) + 4
    y0, y1, x0, x1 = max(0, ys.min() - m), min(h, ys.max() + m + 1), max(0, xs.min() - m), min(w, xs.max() + m + 1)
    if (y1 - y0) * (x1 - x0) > 0.6 * h * w:
        return _complete(everyone, face, face_depth, face_normals, face_width)
    box = (slice(y0, y1), slice(x0, x1))
    inner = _complete(everyone[box], face[box], face_depth[box], face_normals[box], face_width)
    floor = float(inner.depth[inner.person].min())
    depth = np.full((h, w), floor - 0.25 * face_width, np.float32)
    normals = np.zeros((h, w, 3), np.float32)
    normals[..., 2] = 1.0
    depth[box], normals[box] = inner.depth, inner.normals
    return SurfaceMaps(depth=depth, normals=normals, person=everyone)


def _copy_where(dst: np.ndarray, src: np.ndarray, mask: np.ndarray) -> None:
    """dst[mask] = src[mask] for HxWxC ``dst`` and ``src`` and an HxW bool ``mask``, in place.

    cv2.copyTo: numpy's ``copyto(..., where=mask[..., None])`` with its broadcast mask took 4-5 ms per
    call at a 512² working size (two per analysis), this well under one."""
    out = cv2.copyTo(src, mask.view(np.uint8), dst)
    if out is not dst:  # OpenCV wrote a new array (it should not for matching shapes): keep the contract
        dst[...] = out


def _complete(person: np.ndarray, face: np.ndarray, face_depth: np.ndarray, face_normals: np.ndarray,
              face_width: float) -> SurfaceMaps:
    person = person | face
    radius = max(4.0, 0.5 * face_width)
    h_inf = inflate(person, radius)
    body = person & ~face
    if face.any():
        # offset the inflated surface so it meets the mesh at the face border, then let it relax
        ring = face & ~cv2.erode(face.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
        offset = normalized_blur(face_depth - h_inf, ring, sigma=0.35 * face_width)
        fallback = float(np.median((face_depth - h_inf)[ring])) if ring.any() else 0.0
        offset = np.where(np.isfinite(offset), offset, fallback)
    else:
        offset = np.zeros_like(h_inf)
    depth = np.where(face, face_depth, h_inf + offset).astype(np.float32)
    depth = np.where(body, smooth_blur(depth, 0.04 * face_width + 1.0), depth)

    normals = normals_from_depth(smooth_blur(depth, 0.03 * face_width + 1.0))
    _copy_where(normals, face_normals, face)
    if face.any():
        # cross-fade the two normal fields over a band around the face border (worked on in the band's
        # bounding box, with room for the blur: the rest of the frame is untouched)
        band = max(2.0, 0.04 * face_width)
        inside = cv2.distanceTransform(face.astype(np.uint8), cv2.DIST_L2, 3)
        outside = cv2.distanceTransform((~face).astype(np.uint8), cv2.DIST_L2, 3)
        across = np.where(face, inside, outside)  # distance to the border, from whichever side
        near = across < band
        ys, xs = np.nonzero(near | face)
        m = int(np.ceil(4 * band * 0.5)) + 2
        h, w = face.shape
        box = (slice(max(0, ys.min() - m), min(h, ys.max() + m + 1)),
               slice(max(0, xs.min() - m), min(w, xs.max() + m + 1)))
        sub = normals[box]
        smooth = smooth_blur(sub, band * 0.5)
        t = np.clip(across[box] / band, 0.0, 1.0)[..., None]
        # the mixed band (and the mesh's own normals) made unit; elsewhere normals are unit as built
        normals[box] = _normalize(np.where(near[box][..., None], t * sub + (1 - t) * smooth, sub))
    facing = np.zeros_like(normals)
    facing[..., 2] = 1.0
    _copy_where(normals, facing, ~person)
    floor = float(depth[person].min()) if person.any() else 0.0
    depth = np.where(person, depth, floor - 0.25 * face_width).astype(np.float32)
    return SurfaceMaps(depth=depth, normals=normals, person=person)
