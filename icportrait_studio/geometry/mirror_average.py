"""A second look at the face in the mirrored photo, averaged in: steadier normals for shading.

The face mesh's normals carry the detector's own errors: a few percent of the face width in where
the nose, brows and cheekbones sit, and whatever left-right bias the model has. Running the detector
again on the mirror image and mirroring its mesh back gives a second, differently wrong estimate of the
same face (the photo is not assumed symmetric: both looks see the same face). Their average is closer
to the truth: on the Yale dev faces (`--input-encoding linear`) si-MSE 0.0126 → 0.0124 for the frontal
input and 0.0161 → 0.0155 for the side-lit one, SSIM 0.607 → 0.610 and 0.579 → 0.585; the exact
benchmark command gains less (`bench/RESULTS.md`). Only the *shading* normals are averaged: the
view change keeps the one detection whose landmarks it moves, so a turn and its carried landmarks stay
consistent. Cost: one more face-mesh pass and rasterisation (~27 ms of a 1024² portrait's analysis).
"""

from __future__ import annotations

import cv2
import numpy as np

from icportrait_studio.geometry import facemesh
from icportrait_studio.geometry.face_raster import FaceRaster, face_raster

MIN_OVERLAP = 0.6  # IoU of the two looks' face boxes below which the mirror found someone else


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def mirrored_face(det8: np.ndarray, matte: np.ndarray, face: facemesh.DetectedFace, *, padded: bool = False
                  ) -> facemesh.DetectedFace | None:
    """The same face detected in the mirrored detection image (landmarks in the *mirrored* frame), or
    None when the mirror look finds no face that overlaps ``face``. ``padded``: the direct look needed
    the padded retry (a tight crop), so the mirror look may too; otherwise one plain look suffices."""
    w = det8.shape[1]
    mirror8 = np.ascontiguousarray(det8[:, ::-1])
    if padded:
        found, _ = facemesh.detect_with_padding(mirror8, matte=np.ascontiguousarray(matte[:, ::-1]))
    else:
        found = facemesh.detect_faces(mirror8)
    target = face.bbox
    best, best_iou = None, MIN_OVERLAP
    for f in found:
        x0, y0, x1, y1 = f.bbox
        iou = _iou((w - x1, y0, w - x0, y1), target)
        if iou >= best_iou:
            best, best_iou = f, iou
    return best


def averaged_normals(direct: FaceRaster, normals: np.ndarray, lm_mirror_geo: np.ndarray) -> np.ndarray:
    """``normals`` (the completed surface's) with the face averaged with the mirror look's face.

    ``lm_mirror_geo``: the mirror look's landmarks in the mirrored working frame. The mirror's maps are
    rasterised there and flipped back (x of the normals negated); the average is taken where both looks
    cover the face, with a soft edge so no seam appears where it ends.
    """
    h, w = direct.face.shape
    # Landmarks are continuous coordinates (0 at the frame's left edge, w at its right) and the raster
    # samples them at integer pixel positions; flipping the array maps index j' to w - 1 - j', which is
    # the continuous mirror w - x' shifted by one pixel: drawn one pixel left, the mirror look flips back
    # onto the direct one (on the sample the two looks' normals then differ 0.065 instead of 0.086).
    shifted = np.array(lm_mirror_geo, np.float32, copy=True)
    shifted[:, 0] -= 1.0
    other = face_raster(shifted, (h, w))
    both = direct.face & other.face[:, ::-1]
    if not both.any():
        return normals
    ys, xs = np.nonzero(both)
    box = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
    # the mirror look's maps flipped back, in the face's box only (a small face in a large frame)
    n_m = other.normals[box[0], ::-1][:, box[1]].copy()  # reversed: column x is the mirror's column w-1-x
    n_m[..., 0] *= -1.0
    inside = both[box].astype(np.uint8)
    fw = float(np.ptp(lm_mirror_geo[:, 0]))
    r = max(1, round(0.02 * fw))
    weight = cv2.erode(inside, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)),
                       borderType=cv2.BORDER_CONSTANT, borderValue=0)
    weight = cv2.GaussianBlur(weight.astype(np.float32), (0, 0), max(0.5, r), borderType=cv2.BORDER_CONSTANT) * inside
    out = np.array(normals, dtype=np.float32, copy=True)
    sub = out[box] + (0.5 * weight)[..., None] * (n_m - direct.normals[box])
    out[box] = sub / (np.linalg.norm(sub, axis=2, keepdims=True) + 1e-8)
    return out
