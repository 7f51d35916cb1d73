"""Building a re-pose's geometry from a face analysis: rigidity, depth, camera, pivot.

``warp_geometry`` turns a ``FaceAnalysis`` into the plain arrays ``view_warp`` works on: what turns
with the head (the rigidity map), the depth with a capped lever arm down the neck, and the camera and
pivot. (The person's edge around the head is snapped to the photo's colours by the analysis itself,
``matte_edge``: the relight needs that edge as much as a turn does.)
"""

from __future__ import annotations

import cv2
import numpy as np

from icportrait_studio.geometry.camera import camera_for, head_center, head_pivot
from icportrait_studio.geometry.raster import fill_polygon
from icportrait_studio.geometry.topology import CHIN, LEFT_EYE_OUTER, RIGHT_EYE_OUTER, face_topology
from icportrait_studio.geometry.view_fill import _dilate, _grid, _smoothstep, extend_nearest
from icportrait_studio.geometry.view_warp import WarpGeometry


def _face_coords(landmarks: np.ndarray, shape: tuple[int, int], scale: float
                 ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """Per pixel: ``vert`` (0 at the pivot, 1 at the chin, along the face's axis) and ``lat`` (distance
    across the face axis in face widths); plus the pivot-to-chin and eye-to-chin lengths."""
    h, w = shape
    lm = landmarks.astype(np.float64) * scale
    eyes = 0.5 * (lm[LEFT_EYE_OUTER, :2] + lm[RIGHT_EYE_OUTER, :2])
    chin = lm[CHIN, :2]
    pivot = np.array(head_pivot(lm)[:2])
    axis = chin - eyes
    eye_chin = float(np.linalg.norm(axis)) or 1.0
    down = axis / eye_chin
    fw = float(np.ptp(lm[:, 0])) or 1.0
    g = _grid(h, w)
    dx, dy = g[..., 0] - pivot[0], g[..., 1] - pivot[1]
    chin_depth = max(1.0, float((chin - pivot) @ down))
    vert = (dx * down[0] + dy * down[1]) / chin_depth
    lat = np.abs(dx * down[1] - dy * down[0]) / fw
    return vert, lat, chin_depth, eye_chin


def rigidity_map(landmarks: np.ndarray, shape: tuple[int, int], scale: float,
                 body: np.ndarray | None = None) -> np.ndarray:
    """How much each pixel turns with the head: 1 on the head, 0 on what the neck carries.

    The head is a region around the pivot, as wide as the hair at the temples and narrowing to the
    jaw (so a collar or shoulder that reaches up beside the jaw stays put); below the chin only a
    neck-wide column turns, less and less as it goes down. Measured in the face's own frame.
    ``body`` (0..1 at ``shape``, ``head_split.body_beside_head``) takes what the photo shows to be
    the body (a collar standing beside the jaw) out of the head; the neck column keeps its share.
    """
    vert, lat, chin_depth, eye_chin = _face_coords(landmarks, shape, scale)
    half_width = 0.9 - 0.4 * _smoothstep(vert, -0.1, 0.7)
    head = (1.0 - _smoothstep(lat / half_width, 1.0, 1.2)) * (1.0 - _smoothstep(vert, 1.0, 1.15))
    if body is not None:
        head = head * (1.0 - body)
    t = (vert - 1.0) * chin_depth / eye_chin  # below the chin, in eye-to-chin lengths
    neck = (1.0 - _smoothstep(t, 0.05, 0.6)) * (1.0 - _smoothstep(lat, 0.25, 0.6))
    return np.maximum(head, neck).astype(np.float32)


FEATURE_MARGIN = 0.04  # face widths around the eyes, brows and lips that a mirror fill must not copy


def feature_mask(landmarks: np.ndarray, shape: tuple[int, int], scale: float, face_width: float) -> np.ndarray:
    """Soft mask (float32, 1 on them) of the eyes, brows and lips at ``shape``, landmarks × ``scale``.

    A mirrored fill that reached one of these would paint a second eye or mouth corner; the warp
    gives such pixels a smooth fill instead (see ``view_warp.backward_warp``).
    """
    topo = face_topology()
    lm = landmarks[:, :2].astype(np.float64) * scale
    out = np.zeros(shape, bool)
    for ring in (topo.left_eye, topo.right_eye, topo.lips_outer):
        out |= fill_polygon(shape, lm[ring])
    for brow in (topo.left_brow, topo.right_brow):
        hull = cv2.convexHull(lm[brow].astype(np.float32))[:, 0]
        out |= fill_polygon(shape, hull)
    r = max(1, round(FEATURE_MARGIN * face_width))
    soft = cv2.GaussianBlur(_dilate(out, r).astype(np.float32), (0, 0), max(0.5, 0.25 * r))
    return np.clip(soft * 2.0, 0.0, 1.0).astype(np.float32)


def _outline_at_pivot_depth(depth: np.ndarray, inside: np.ndarray, face: np.ndarray, rigidity: np.ndarray,
                            z_pivot: float, face_width: float) -> np.ndarray:
    """Bring the head's outline forward to the depth of the axis it turns about.

    A round head's silhouette is its widest section, about where the neck's axis runs; the surface
    inflated from the matte starts far behind that at the outline, so a turn swung the far side's
    hair in behind the cheek (the bob cut off in a vertical line) and opened a wider gap on the near
    side. The lift is full on the outline and fades to nothing at the face mesh's border (the mesh's
    own depth is kept), only where the pixel turns with the head (shoulders keep their depth).
    """
    d_sil = cv2.distanceTransform(inside.astype(np.uint8), cv2.DIST_L2, 3)
    d_face = cv2.distanceTransform((~face).astype(np.uint8), cv2.DIST_L2, 3)
    t = d_sil / (d_sil + d_face + 1e-3)
    edge = inside & (d_sil <= 1.5)
    if not edge.any():
        return depth
    lift = np.where(edge, np.maximum(np.float32(z_pivot) - depth, 0.0), 0.0).astype(np.float32)
    sigma = max(1.0, 0.05 * face_width)
    weight = cv2.GaussianBlur(edge.astype(np.float32), (0, 0), sigma)
    near_edge = weight > 1e-3
    lift = cv2.GaussianBlur(lift, (0, 0), sigma) / np.maximum(weight, 1e-3)  # the outline's lift, smoothed
    lift = extend_nearest(np.where(near_edge, lift, 0.0).astype(np.float32), near_edge)  # and carried inward
    out = depth + np.where(inside & ~face, (1.0 - t) * lift * rigidity, 0.0)
    return out.astype(np.float32)


def warp_geometry(analysis, side: int | None = None, *, focal: float | None = None,
                  body: np.ndarray | None = None) -> WarpGeometry:
    """A ``WarpGeometry`` for a ``FaceAnalysis`` (which must have landmarks) at long side ``side``.

    The matte is the analysis' own, whose edge around the head the analysis already snapped to the
    photo (``matte_edge.refine_matte``). ``body`` (at the analysis' geometry size, from
    ``head_split.body_beside_head``) keeps a collar beside the jaw with the body.
    """
    if analysis.landmarks is None:
        raise ValueError("a view change needs face landmarks")
    gw, gh = analysis.geo_size
    s = 1.0 if side is None else min(1.0, side / max(gw, gh))
    size = (max(8, round(gw * s)), max(8, round(gh * s)))
    interp = cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR
    depth = cv2.resize(analysis.depth, size, interpolation=interp) * np.float32(size[0] / gw)
    matte = np.clip(cv2.resize(analysis.matte, size, interpolation=interp), 0, 1).astype(np.float32)
    to_work = size[0] / analysis.image_size[0]
    lm = analysis.landmarks
    if body is not None:
        body = np.clip(cv2.resize(body, size, interpolation=cv2.INTER_LINEAR), 0.0, 1.0)
    rig = rigidity_map(lm, (size[1], size[0]), to_work, body)
    face = cv2.resize(analysis.face_mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    face_w = cv2.GaussianBlur(face.astype(np.float32), (0, 0), max(1.0, 0.02 * analysis.face_width * s))
    person = cv2.resize(analysis.person.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    depth = extend_nearest(depth, person | (matte > 0.5))
    # below the chin the completed surface bulges toward the camera (chest); the neck that twists
    # there lies behind the chin, so its lever arm about the pivot is capped at the chin's depth
    vert, _, _, _ = _face_coords(lm, (size[1], size[0]), to_work)
    below = _smoothstep(vert, 0.95, 1.15)
    chin_z = float(lm[CHIN, 2]) * to_work
    depth = depth * (1.0 - below) + np.minimum(depth, chin_z) * below
    full_cam = camera_for(lm, analysis.image_size, focal)
    cam = full_cam.scaled(to_work)
    pivot = tuple(v * to_work for v in head_pivot(lm, full_cam))
    depth = _outline_at_pivot_depth(depth, person | (matte > 0.5), face, rig, float(pivot[2]),
                                    float(analysis.face_width) * size[0] / gw)
    depth = cv2.GaussianBlur(depth, (0, 0), 0.6).astype(np.float32)
    fw = float(np.ptp(lm[:, 0])) * to_work
    keep = matte * _smoothstep(rig, 0.6, 0.95)
    return WarpGeometry(depth=depth.astype(np.float32), matte=matte, rigidity=rig, camera=cam,
                        pivot=pivot, keep=keep.astype(np.float32), occlusion_bias=0.5 * fw,
                        face_width=fw, face=face_w,
                        center=tuple(v * to_work for v in head_center(lm)),  # type: ignore[arg-type]
                        features=feature_mask(lm, (size[1], size[0]), to_work, fw))
