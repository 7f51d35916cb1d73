"""Finding a face that is small in its photo (a full-length portrait, a wide banner, a group).

The face mesh looks for faces in the whole image shrunk to its detector's 128² input, so a face
narrower than about a tenth of the photo's short side is never found and the photo was relit with the
rough "no face" geometry. When the ordinary detection finds nothing (and the segmenter finds a person),
square windows of the photo that the person reaches are shown to mediapipe's full-range face detector
at a few scales (largest first, stopping one scale after the first that finds a face); each face is cropped
from the full-resolution photo and meshed there, and the landmarks are mapped back. It costs tens to
hundreds of milliseconds, and only runs when the quick look failed.
"""

from __future__ import annotations

import cv2
import numpy as np

from icportrait_studio.geometry import facemesh
from icportrait_studio.imaging.color import encode_from_linear

WINDOW_PX = 256  # each window is shown to the face detector at this size
SCALES = (1.0, 0.5, 0.25)  # window sides, as fractions of the photo's short side
CROP_MARGIN = 2.2  # the mesh sees the face box grown this many times (the mesh wants the whole head)
MESH_PX = 384  # ... at this size
MAX_WINDOWS = 120  # beyond this (a panorama at the smallest scale) the search stops
MIN_WINDOW = 320  # photo pixels: a face found in a smaller window would be too small to use anyway
MIN_PERSON_PIXELS = 16  # of the person mask: windows it does not reach are not searched (a face is on a person)


def _windows(w: int, h: int, side: int) -> list[tuple[int, int, int, int]]:
    """Square windows of ``side`` pixels overlapping by half, covering a w×h image."""
    def starts(length: int) -> list[int]:
        if length <= side:
            return [0]
        n = int(np.ceil((length - side) / (side / 2))) + 1
        return [round(v) for v in np.linspace(0, length - side, n)]
    return [(x, y, min(w, x + side), min(h, y + side)) for y in starts(h) for x in starts(w)]


def _person_count(person: np.ndarray | None, shape: tuple[int, int]):
    """A function (x0, y0, x1, y1) in photo pixels -> how many pixels of the person mask (any size) fall in
    that window (through the mask's integral image); None without a mask."""
    if person is None or not person.any():
        return None
    ph, pw = person.shape
    h, w = shape
    integral = cv2.integral(person.astype(np.uint8))
    sx, sy = pw / w, ph / h

    def count(x0: int, y0: int, x1: int, y1: int) -> int:
        a0, b0 = int(x0 * sx), int(y0 * sy)
        a1, b1 = max(a0 + 1, int(np.ceil(x1 * sx))), max(b0 + 1, int(np.ceil(y1 * sy)))
        a1, b1 = min(a1, pw), min(b1, ph)
        return int(integral[b1, a1] - integral[b0, a1] - integral[b1, a0] + integral[b0, a0])
    return count


def _boxes_at(rgb_linear: np.ndarray, side: int, person: np.ndarray | None = None
              ) -> list[tuple[float, float, float, float, float]]:
    h, w = rgb_linear.shape[:2]
    found: list[tuple[float, float, float, float, float]] = []
    count = _person_count(person, (h, w))
    wins = [b for b in _windows(w, h, side) if count is None or count(*b) >= MIN_PERSON_PIXELS]
    if len(wins) > MAX_WINDOWS:
        return found
    for x0, y0, x1, y1 in wins:
        crop = rgb_linear[y0:y1, x0:x1]
        s = WINDOW_PX / max(crop.shape[:2])
        small = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))),
                           interpolation=cv2.INTER_AREA)
        for bx0, by0, bx1, by1, score in facemesh.detect_face_boxes(encode_from_linear(np.clip(small, 0, 1), 8)):
            found.append((x0 + bx0 / s, y0 + by0 / s, x0 + bx1 / s, y0 + by1 / s, score))
    kept: list[tuple[float, float, float, float, float]] = []
    for box in sorted(found, key=lambda b: -b[4]):  # a face seen by two overlapping windows counts once
        if all(facemesh.box_iou(box, k) < 0.3 for k in kept):
            kept.append(box)
    return kept


def _mesh_in_box(rgb_linear: np.ndarray, box: tuple[float, float, float, float, float]
                 ) -> facemesh.DetectedFace | None:
    h, w = rgb_linear.shape[:2]
    cx, cy = 0.5 * (box[0] + box[2]), 0.5 * (box[1] + box[3])
    half = 0.5 * CROP_MARGIN * max(box[2] - box[0], box[3] - box[1])
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(w, int(np.ceil(cx + half))), min(h, int(np.ceil(cy + half)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return None
    crop = rgb_linear[y0:y1, x0:x1]
    s = MESH_PX / max(crop.shape[:2])
    interp = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    big = cv2.resize(crop, (max(1, round(crop.shape[1] * s)), max(1, round(crop.shape[0] * s))), interpolation=interp)
    faces, _ = facemesh.detect_with_padding(encode_from_linear(np.clip(big, 0, 1), 8))
    if not faces:
        return None
    lm = faces[0].landmarks.astype(np.float32) / np.float32(s)  # x, y and z share the x scale
    lm[:, 0] += x0
    lm[:, 1] += y0
    return facemesh.DetectedFace(lm)


def search_small_faces(rgb_linear: np.ndarray, person: np.ndarray | None = None) -> list[facemesh.DetectedFace]:
    """Faces in a linear-RGB photo (full resolution) too small for the ordinary detection, largest first;
    landmarks in the photo's pixels. With the ``person`` mask (any size) only windows on the person are
    searched."""
    h, w = rgb_linear.shape[:2]
    short = min(h, w)
    faces: list[facemesh.DetectedFace] = []
    extra = 0  # after the first scale that finds a face, one finer scale more: a group's smaller faces
    for scale in SCALES:
        side = round(short * scale)
        if side < MIN_WINDOW and scale < 1.0:
            break
        for box in _boxes_at(rgb_linear, side, person):
            if any(facemesh.box_iou(box, f.bbox) > 0.3 for f in faces):
                continue  # already meshed at a coarser scale
            face = _mesh_in_box(rgb_linear, box)
            if face is not None and all(facemesh.box_iou(face.bbox, f.bbox) < 0.3 for f in faces):
                faces.append(face)
        if faces:
            extra += 1
            if extra > 1:
                break
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces
