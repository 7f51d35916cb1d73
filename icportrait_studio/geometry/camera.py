"""The perspective camera a re-pose reprojects through, and the head's rotation about its pivot.

Coordinates: image pixels (u right, v down); camera space X right, Y up, Z toward the camera. The
face analysis gives depth on the x pixel scale relative to a plane near the eyes, so a point is
unprojected assuming that plane sits at distance ``focal`` (where one pixel is one depth unit):

    X = (u - cx) · (1 − d / f),  Y = −(v − cy) · (1 − d / f),  Z = d

and projected back with the inverse. One photo cannot tell the focal length and the subject's
distance apart (only their ratio shows, through perspective), but perspective on a face depends on
the distance alone: so ``estimate_focal`` measures the face's metric scale on the mesh (the 3D
distance between the iris centres is about 63 mm; the face-oval width backs it up on closed or
occluded eyes) and places the face at a typical portrait distance. That gives the right amount of
foreshortening for any crop of the photo; a caller who knows the lens (EXIF) can pass ``focal``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from icportrait_studio.geometry.topology import (
    CHIN,
    FOREHEAD,
    LEFT_EYE_CENTER_RING,
    NOSE_TIP,
    RIGHT_EYE_CENTER_RING,
)

IPD_MM = 63.0  # adult mean inter-pupillary distance
FACE_OVAL_MM = 140.0  # width across the mesh's face oval (tragion to tragion is ~145 mm)
DEFAULT_DISTANCE_MM = 1000.0  # a typical head-and-shoulders portrait distance
EQUIV_35MM_RANGE = (20.0, 400.0)  # clamp: from an ultra-wide selfie to a long telephoto
LEFT_TRAGION, RIGHT_TRAGION = 454, 234  # mesh points in front of the ears (the yaw axis runs between them)
PIVOT_FORWARD = 0.4  # where the pivot sits from the tragions' mid-point (0) to the nose tip (1)
# A rigid turn about that pivot swings the skull behind it the other way; the head's kept outline (the
# hair's silhouette) swings only as far as it would about a pivot this far forward (see
# ``view_warp._moved_outline``)
OUTLINE_PIVOT_FORWARD = 0.25


@dataclass(frozen=True)
class PerspectiveCamera:
    """A pinhole camera in pixels of one image size; the depth-0 plane is at distance ``focal``."""

    focal: float
    cx: float
    cy: float

    def scaled(self, s: float) -> PerspectiveCamera:
        """The same camera for the image resized by ``s`` (depth scales with it)."""
        return PerspectiveCamera(self.focal * s, self.cx * s, self.cy * s)

    def unproject(self, u: np.ndarray, v: np.ndarray, d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        k = 1.0 - d / np.float32(self.focal)
        return (u - np.float32(self.cx)) * k, (np.float32(self.cy) - v) * k, d

    def project(self, x: np.ndarray, y: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = np.float32(self.focal) / np.maximum(np.float32(self.focal) - z, np.float32(1e-3 * self.focal))
        return np.float32(self.cx) + x * k, np.float32(self.cy) - y * k


def rotation(yaw: float, pitch: float) -> np.ndarray:
    """Head rotation (camera space): pitch about X first, then yaw about Y.

    +yaw turns the face toward the image's right (the nose moves to +X), +pitch tilts it up.
    """
    a, b = math.radians(yaw), math.radians(pitch)
    ry = np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])
    rx = np.array([[1, 0, 0], [0, math.cos(b), math.sin(b)], [0, -math.sin(b), math.cos(b)]])
    return ry @ rx


def rotate_fields(x: np.ndarray, y: np.ndarray, z: np.ndarray, yaw: np.ndarray | float,
                  pitch: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`rotation` applied per element, with per-element angles in degrees (vectorised)."""
    a = np.radians(yaw).astype(np.float32) if isinstance(yaw, np.ndarray) else np.float32(math.radians(yaw))
    b = np.radians(pitch).astype(np.float32) if isinstance(pitch, np.ndarray) else np.float32(math.radians(pitch))
    cb, sb = np.cos(b), np.sin(b)
    y1 = y * cb + z * sb
    z1 = z * cb - y * sb
    ca, sa = np.cos(a), np.sin(a)
    return x * ca + z1 * sa, y1, z1 * ca - x * sa


def face_scale_mm(landmarks: np.ndarray) -> float:
    """Pixels per millimetre at the face, from the mesh's 3D iris-centre distance (face oval as backup)."""
    lm = landmarks.astype(np.float64)
    ipd = float(np.linalg.norm(lm[LEFT_EYE_CENTER_RING] - lm[RIGHT_EYE_CENTER_RING])) if len(lm) > 473 else 0.0
    oval = float(np.linalg.norm(lm[LEFT_TRAGION] - lm[RIGHT_TRAGION]))
    by_ipd, by_oval = ipd / IPD_MM, oval / FACE_OVAL_MM
    if by_ipd <= 0 or not (0.6 < by_ipd / max(by_oval, 1e-9) < 1.6):
        return by_oval  # iris landmarks unreliable (closed eyes, glasses): trust the face's width
    return 0.5 * (by_ipd + by_oval)


def estimate_focal(landmarks: np.ndarray, image_size: tuple[int, int], *,
                   distance_mm: float = DEFAULT_DISTANCE_MM) -> float:
    """Focal length in pixels of ``image_size`` that puts the face at ``distance_mm`` (see the module doc)."""
    w, h = image_size
    f = distance_mm * face_scale_mm(landmarks)
    diag = math.hypot(w, h)
    lo, hi = (e / math.hypot(36.0, 24.0) * diag for e in EQUIV_35MM_RANGE)
    return float(min(max(f, lo), hi))


def camera_for(landmarks: np.ndarray | None, image_size: tuple[int, int],
               focal: float | None = None) -> PerspectiveCamera:
    """The camera of a photo of ``image_size`` (w, h): principal point at the centre, focal estimated."""
    w, h = image_size
    if focal is None:
        focal = estimate_focal(landmarks, image_size) if landmarks is not None else 2.0 * math.hypot(w, h)
    return PerspectiveCamera(float(focal), (w - 1) / 2.0, (h - 1) / 2.0)


def head_pivot(landmarks: np.ndarray, camera: PerspectiveCamera | None = None) -> tuple[float, float, float]:
    """The head's rotation centre in pixels (u, v, depth) of the landmarks' image.

    The neck turns the head about an axis through the skull behind the face; the mesh's tragion
    points (in front of the ears) give its height and, with the nose tip, the head's forward axis.
    The pivot sits ``PIVOT_FORWARD`` of the way from the tragions' mid-point toward the nose tip,
    measured along the head's own forward direction (the nose offset with its component along the
    head's chin-to-forehead axis removed): in front of the anatomical axis, so the face turns more in
    place and less of what lies beyond the photo's frame is revealed. Measured on the dev faces and the
    sample (`bench/RESULTS.md`, session 8): moving it from 0.25 to 0.4 of the way brought the landmarks
    re-detected on a turned face closer to where the turn put them (2.01 → 1.91 % of the eye
    distance) and the turn-and-back round trips up (±30°: 0.92 → 0.94), the outline held as before.

    Built from the landmarks in the head's own frame, the pivot turns with the head: computed again
    on a turned head's landmarks it lands on the same point, so a turn and its inverse made from two
    separate analyses share one centre (a pivot at the tragions' image height did not, under pitch).
    With the photo's ``camera`` this is done in camera space, where a turn is a rigid motion (in
    pixels perspective bends it, and the centre drifts by a pixel or two at ±30°).
    """
    lm = landmarks.astype(np.float64)
    if camera is not None:
        x, y, z = camera.unproject(lm[:, 0], lm[:, 1], lm[:, 2])
        lm = np.stack([x, y, z], axis=1)
    mid = 0.5 * (lm[LEFT_TRAGION] + lm[RIGHT_TRAGION])
    up = lm[FOREHEAD] - lm[CHIN]
    up /= max(float(np.linalg.norm(up)), 1e-9)
    ahead = lm[NOSE_TIP] - mid
    ahead -= float(ahead @ up) * up
    p = mid + PIVOT_FORWARD * ahead
    if camera is not None:
        u, v = camera.project(p[0], p[1], p[2])
        return float(u), float(v), float(p[2])
    return float(p[0]), float(p[1]), float(p[2])


def head_center(landmarks: np.ndarray) -> tuple[float, float, float]:
    """The centre of the skull's round outline in pixels (u, v, depth): between the tragions."""
    lm = landmarks.astype(np.float64)
    mid = 0.5 * (lm[LEFT_TRAGION] + lm[RIGHT_TRAGION])
    return float(mid[0]), float(mid[1]), float(mid[2])


def rotate_rig(rig, r: np.ndarray):
    """``rig`` with every light direction turned by the rotation matrix ``r`` (camera space).

    Used to anchor lights to the head (they turn with it) or to the camera (the head turns under
    them) when a re-pose is relit in the photo's own frame.
    """
    from dataclasses import replace

    from icportrait_studio.core.lights import angles_from_direction

    lights = []
    for light in rig.lights:
        d = r @ np.asarray(light.direction, np.float64)
        az, el = angles_from_direction(float(d[0]), float(d[1]), float(d[2]))
        lights.append(replace(light, azimuth=az, elevation=max(-90.0, min(90.0, el))))
    return rig.with_lights(lights)
