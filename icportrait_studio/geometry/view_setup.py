"""Building a re-pose's geometry from a face analysis: rigidity, refined matte, depth, camera, pivot.

``warp_geometry`` turns a ``FaceAnalysis`` into the plain arrays ``view_warp`` works on: what turns
with the head (the rigidity map), where the person's edge really is (the segmenter's matte snapped
to the photo's colours), the depth with a capped lever arm down the neck, and the camera and pivot.
"""

from __future__ import annotations

import cv2
import numpy as np

from icportrait_studio.geometry.camera import camera_for, head_center, head_pivot
from icportrait_studio.geometry.raster import fill_polygon
from icportrait_studio.geometry.topology import CHIN, LEFT_EYE_OUTER, RIGHT_EYE_OUTER, face_topology
from icportrait_studio.geometry.view_fill import _dilate, _grid, _smoothstep, extend_nearest
from icportrait_studio.geometry.view_layers import push_pull
from icportrait_studio.geometry.view_warp import WarpGeometry
from icportrait_studio.imaging.color import encode_from_linear


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


def rigidity_map(landmarks: np.ndarray, shape: tuple[int, int], scale: float) -> np.ndarray:
    """How much each pixel turns with the head: 1 on the head, 0 on what the neck carries.

    The head is a region around the pivot, as wide as the hair at the temples and narrowing to the
    jaw (so a collar or shoulder that reaches up beside the jaw stays put); below the chin only a
    neck-wide column turns, less and less as it goes down. Measured in the face's own frame.
    """
    vert, lat, chin_depth, eye_chin = _face_coords(landmarks, shape, scale)
    half_width = 0.9 - 0.4 * _smoothstep(vert, -0.1, 0.7)
    head = (1.0 - _smoothstep(lat / half_width, 1.0, 1.2)) * (1.0 - _smoothstep(vert, 1.0, 1.15))
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


REFINE_MARGIN = 2.0  # face widths of context around the region a matte is refined in


def refine_matte(rgb8: np.ndarray, matte: np.ndarray, face: np.ndarray | None, face_width: float,
                 region: np.ndarray | None = None) -> np.ndarray:
    """``_refine_matte`` over ``region``'s box with a margin of context when that box is a small part of
    the frame (a full-length portrait: the head is a few percent of it; 1.0 → 0.1 s); the whole frame
    otherwise (a usual portrait: the same matte as ever)."""
    if region is not None and region.any():
        h, w = matte.shape
        ys, xs = np.nonzero(region)
        m = int(np.ceil(REFINE_MARGIN * face_width)) + 4
        y0, y1, x0, x1 = max(0, ys.min() - m), min(h, ys.max() + m + 1), max(0, xs.min() - m), min(w, xs.max() + m + 1)
        if (y1 - y0) * (x1 - x0) < 0.6 * h * w:
            box = (slice(y0, y1), slice(x0, x1))
            out = matte.astype(np.float32, copy=True)
            out[box] = _refine_matte(np.ascontiguousarray(rgb8[box]), matte[box], None if face is None else face[box],
                                     face_width, region[box])
            return out
    return _refine_matte(rgb8, matte, face, face_width, region)


def _refine_matte(rgb8: np.ndarray, matte: np.ndarray, face: np.ndarray | None, face_width: float,
                  region: np.ndarray | None = None) -> np.ndarray:
    """Snap the segmentation's soft, blobby edge to the photo's colours.

    The selfie segmenter's matte is smooth and often swallows background next to the neck and hair;
    a turned head would carry that background along. In a band around its edge each pixel is
    unmixed against smooth estimates of the nearby person colour F and background colour B (pulled
    in from the sure regions on either side): alpha = (I − B)·(F − B) / |F − B|², trusted as far as
    F and B differ, then edge-aware smoothed. The face (from the mesh) stays solid; outside ``region``
    (where nothing moves) the matte is left alone.
    """
    img = rgb8.astype(np.float32) / 255.0
    core = (matte > 0.5).astype(np.uint8)
    band_w = max(3.0, 0.15 * face_width)
    d_in = cv2.distanceTransform(core, cv2.DIST_L2, 3)
    d_out = cv2.distanceTransform(1 - core, cv2.DIST_L2, 3)
    sure_fg = d_in > band_w
    if face is not None:
        sure_fg |= face
    sure_bg = d_out > band_w
    if not sure_fg.any() or not sure_bg.any():
        return matte.astype(np.float32)
    fg = push_pull(img, sure_fg.astype(np.float32))
    bg = push_pull(img, sure_bg.astype(np.float32))
    diff = fg - bg
    den = np.maximum((diff * diff).sum(axis=2), 1e-6)
    a = np.clip(((img - bg) * diff).sum(axis=2) / den, 0.0, 1.0)
    conf = np.clip(np.sqrt(den) / 0.2, 0.0, 1.0)
    band = ~sure_fg & ~sure_bg
    est = np.where(band, conf * a + (1.0 - conf) * matte, matte).astype(np.float32)
    r = max(1, round(0.02 * face_width))
    est = np.clip((cv2.ximgproc.guidedFilter(rgb8, est, r, 2e-3 * 255 * 255) - 0.1) / 0.8, 0.0, 1.0)
    # carve away only background-coloured pixels connected to the sure background (the blobby
    # overhang); a background-like pixel inside the person (a hair highlight) is no hole
    low = (est < 0.35).astype(np.uint8)
    n, labels = cv2.connectedComponents(low, connectivity=4)
    outside = np.zeros(n, bool)
    outside[np.unique(labels[sure_bg & (low > 0)])] = True
    outside[0] = False
    carve = outside[labels]
    carve = cv2.dilate(carve.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool) & (est < 0.9)
    out = np.where(carve, est, np.maximum(est, matte))
    if region is not None:
        out = np.where(region, out, matte)
    if face is not None:
        out = np.maximum(out, face.astype(np.float32))
    return cv2.GaussianBlur(out.astype(np.float32), (0, 0), 0.6)


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


def warp_geometry(analysis, side: int | None = None, *, rgb: np.ndarray | None = None,
                  focal: float | None = None) -> WarpGeometry:
    """A ``WarpGeometry`` for a ``FaceAnalysis`` (which must have landmarks) at long side ``side``.

    With the photo (``rgb``, linear, any size) the matte's edge is refined to the photo's edges.
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
    rig = rigidity_map(lm, (size[1], size[0]), to_work)
    face = cv2.resize(analysis.face_mask.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    face_w = cv2.GaussianBlur(face.astype(np.float32), (0, 0), max(1.0, 0.02 * analysis.face_width * s))
    if rgb is not None:
        small = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
        matte = refine_matte(encode_from_linear(np.clip(small, 0, 1), 8), matte, face,
                             analysis.face_width * size[0] / gw, _dilate(rig > 0.5, 3))
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
