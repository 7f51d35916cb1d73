"""Adapter around mediapipe's face mesh and selfie segmentation (the models ship inside the wheel).

Everything mediapipe-specific stays here, behind two small functions, so the rest of the engine
sees plain numpy arrays: landmarks in pixel coordinates of the image it was given.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from dataclasses import dataclass

import numpy as np

from icportrait_studio.geometry.mediapipe_import import import_mediapipe

log = logging.getLogger(__name__)

_lock = threading.Lock()  # mediapipe graphs are not thread-safe; one call at a time
_mesh = None
_seg = None
_boxes = None

MAX_FACES = 5
_BLANK = np.zeros((16, 16, 3), np.uint8)  # shown to the face mesh between images: no face to track
_tracking = False  # whether the face mesh's graph may still track a face from its last frame


@dataclass(frozen=True)
class DetectedFace:
    """One face: 478 landmarks as (x, y, z) pixels; z is toward the camera, on the x scale."""

    landmarks: np.ndarray  # float32 (478, 3)

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        x, y = self.landmarks[:, 0], self.landmarks[:, 1]
        return float(x.min()), float(y.min()), float(x.max()), float(y.max())

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.bbox
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)


@contextlib.contextmanager
def _native_stderr_silenced():
    """Hide the C++ log lines mediapipe/TFLite print straight to fd 2 (they mean nothing to a user).

    Only while a mediapipe call runs, and not when ICPORTRAIT_VERBOSE is set (for debugging).
    """
    if os.environ.get("ICPORTRAIT_VERBOSE"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _face_mesh():
    global _mesh
    if _mesh is None:
        import_mediapipe()
        from mediapipe.python.solutions import face_mesh

        # the tracking graph: its second look at a frame crops the face from the first look's landmarks
        _mesh = face_mesh.FaceMesh(static_image_mode=False, max_num_faces=MAX_FACES, refine_landmarks=True,
                                   min_detection_confidence=0.5, min_tracking_confidence=0.5)
    return _mesh


def _segmenter():
    global _seg
    if _seg is None:
        import_mediapipe()
        from mediapipe.python.solutions import selfie_segmentation

        _seg = selfie_segmentation.SelfieSegmentation(model_selection=0)
    return _seg


def _box_detector():
    global _boxes
    if _boxes is None:
        import_mediapipe()
        from mediapipe.python.solutions import face_detection

        # the full-range model (faces up to ~5 m away): it finds faces too small for the mesh's own look
        _boxes = face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.5)
    return _boxes


def detect_face_boxes(rgb8: np.ndarray) -> list[tuple[float, float, float, float, float]]:
    """Face boxes (x0, y0, x1, y1 in pixels, score) from the face detector alone (no mesh): a cheap
    look for faces in a window of a larger photo."""
    h, w = rgb8.shape[:2]
    with _lock, _native_stderr_silenced():
        result = _box_detector().process(np.ascontiguousarray(rgb8))
    out = []
    for d in result.detections or []:
        b = d.location_data.relative_bounding_box
        out.append((b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h, float(d.score[0])))
    return out


def detect_faces(rgb8: np.ndarray) -> list[DetectedFace]:
    """Run the face mesh on an sRGB uint8 image; largest face first.

    Two passes over the same image: the first places the mesh in a crop around the face detector's box;
    the second in a crop fitted to the first pass's landmarks (centred on the face, rotated to the eyes:
    what mediapipe's tracking does from one video frame to the next). The detector's box sits off a
    turned face, and the mesh read from it lags the turn; the refit crop reads the features 10 % closer
    to where they are (`bench/RESULTS.md`, session 8: landmark consistency after a re-pose 2.22 → 2.01 %
    of the eye distance). Nothing of the previous image may carry over (one image always gives the same
    landmarks): a tiny blank frame first leaves the graph tracking no face (3 ms; ``reset()`` rebuilds
    the graph, 30 ms). Cost: ~15 ms more per call.
    """
    global _tracking
    h, w = rgb8.shape[:2]
    image = np.ascontiguousarray(rgb8)
    with _lock, _native_stderr_silenced():
        mesh = _face_mesh()
        if _tracking and mesh.process(_BLANK).multi_face_landmarks:
            mesh.reset()
        result = last = mesh.process(image)
        if result.multi_face_landmarks:
            last = mesh.process(image)
            if len(last.multi_face_landmarks or []) >= len(result.multi_face_landmarks):
                result = last
        # the graph tracks what its last frame showed: after a frame with no face there is nothing to clear
        # (a faceless photo's windowed face search asks for many frames in a row)
        _tracking = bool(last.multi_face_landmarks)
    faces = []
    for lms in result.multi_face_landmarks or []:
        arr = np.array([(p.x, p.y, p.z) for p in lms.landmark], dtype=np.float32)
        # mediapipe: x, y normalised by width/height; z on the x scale, smaller = nearer the camera
        arr[:, 0] *= w
        arr[:, 1] *= h
        arr[:, 2] *= -w
        faces.append(DetectedFace(arr))
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


MAX_SEGMENT_ASPECT = 1.8  # wider (or taller) images are segmented in square windows
MAX_SEGMENT_WINDOWS = 48


def _segment(rgb8: np.ndarray) -> np.ndarray:
    with _lock, _native_stderr_silenced():
        result = _segmenter().process(np.ascontiguousarray(rgb8))
    mask = result.segmentation_mask
    if mask is None:
        return np.zeros(rgb8.shape[:2], np.float32)
    return np.clip(mask.astype(np.float32), 0.0, 1.0)


def segment_person(rgb8: np.ndarray) -> np.ndarray:
    """Soft person matte in [0, 1] (float32 HxW) from the selfie-segmentation model.

    The model sees its input squeezed to a square: a wide banner (3000×512) squeezed six times over
    made a person unrecognisable and the matte garbage. Beyond MAX_SEGMENT_ASPECT the image is cut into
    square windows overlapping by half along its long side, each segmented alone; a pixel takes the
    largest value any window gives it.
    """
    h, w = rgb8.shape[:2]
    if max(h, w) <= MAX_SEGMENT_ASPECT * min(h, w) or max(h, w) > MAX_SEGMENT_WINDOWS / 2 * min(h, w):
        return _segment(rgb8)  # square enough; or a strip so thin that no window would show a person
    side = min(h, w)
    length = max(h, w)
    n = int(np.ceil((length - side) / (side / 2))) + 1
    out = np.zeros((h, w), np.float32)
    for start in (round(v) for v in np.linspace(0, length - side, n)):
        box = (slice(None), slice(start, start + side)) if w > h else (slice(start, start + side), slice(None))
        np.maximum(out[box], _segment(rgb8[box]), out=out[box])
    return out


PAD_GREY = 128  # the padded retry's border (display value): a neutral backdrop, see ``detect_with_padding``


def detect_with_padding(rgb8: np.ndarray, pad_fraction: float = 0.35, *,
                        matte: np.ndarray | None = None) -> tuple[list[DetectedFace], bool]:
    """Detect faces; on a tight crop (no face, or the face touching the border) pad and retry.

    With the person ``matte`` (any size), a face much narrower than the person's outline across the
    face's rows is checked with the padded pass too: in a tight crop the detector can lock onto part of
    the face, and padding then finds the whole one. The padded result wins only if clearly larger.
    Returns the faces in the original image's pixel coordinates and whether padding was used.

    The border is a flat mid-grey (PAD_GREY), not the crop's edge pixels repeated: repeated edges draw
    long stripes from the hair, ears and jaw that the detector and the mesh read as structure. On the
    Yale dev faces (tight crops, every one padded) the grey border found a face in all 512 photos where
    the repeated edge missed 4, and every accuracy column improved (bench/RESULTS.md, session 12).
    """
    faces = detect_faces(rgb8)
    h, w = rgb8.shape[:2]
    touches = bool(faces) and _touches_border(faces[0], w, h)
    small = bool(faces) and matte is not None and narrow_in_outline(faces[0], matte, (h, w))
    if faces and not touches and not small:
        return faces, False
    ph, pw = int(h * pad_fraction), int(w * pad_fraction)
    padded = np.pad(rgb8, ((ph, ph), (pw, pw), (0, 0)), constant_values=PAD_GREY)
    padded_faces = detect_faces(padded)
    if not padded_faces or (small and not touches and _width(padded_faces[0]) < 1.5 * _width(faces[0])):
        return faces, False
    shifted = []
    for f in padded_faces:
        lm = f.landmarks.copy()
        lm[:, 0] -= pw
        lm[:, 1] -= ph
        shifted.append(DetectedFace(lm))
    return shifted, True


def box_intersection(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Area two (x0, y0, x1, y1) boxes share (0 for boxes that do not overlap)."""
    return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))


def box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes (0 for boxes that do not overlap)."""
    inter = box_intersection(a, b)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


NARROW = 0.45  # a face narrower than this share of the person's outline across its rows may be part of a face


def narrow_in_outline(face: DetectedFace, matte: np.ndarray, shape: tuple[int, int]) -> bool:
    """Whether ``face`` (pixels of an image of ``shape`` (h, w); ``matte`` any size) is much narrower than
    the person's outline across the face's rows: in a tight crop, or in a face half in shadow, the
    detector can lock onto part of the face."""
    h, w = shape
    return _width(face) < NARROW * _outline_width(face, matte, w, h)


def _outline_width(face: DetectedFace, matte: np.ndarray, w: int, h: int) -> float:
    """Median width (pixels of the ``w`` x ``h`` image) of the person's outline over the face's rows."""
    mh, mw = matte.shape[:2]
    _, y0, _, y1 = face.bbox
    r0 = int(np.clip(y0 * mh / h, 0, mh - 1))
    r1 = int(np.clip(y1 * mh / h, r0 + 1, mh))
    widths = (matte[r0:r1] > 0.5).sum(axis=1)
    return float(np.median(widths)) * w / mw if len(widths) else 0.0


def _width(face: DetectedFace) -> float:
    x0, _, x1, _ = face.bbox
    return x1 - x0


def _touches_border(face: DetectedFace, w: int, h: int) -> bool:
    x0, y0, x1, y1 = face.bbox
    m = 0.01 * max(w, h)
    return x0 < m or y0 < m or x1 > w - 1 - m or y1 > h - 1 - m
