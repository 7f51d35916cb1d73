"""Face embeddings (dlib's ResNet, 128-D) and the identity distance between an input and a result.

The model weights ship in the ``face-recognition-models`` wheel; they are loaded by path because
importing that package runs ``pkg_resources`` (gone from new setuptools). dlib (``dlib-bin``) runs
them. Everything loads lazily, once, under a lock; dlib's network keeps scratch buffers per object,
so inference is serialised with the same lock (the backend calls it from one worker thread anyway).

Distances are Euclidean between embeddings: dlib's model puts the same person below ~0.6; we warn
the user above ``IDENTITY_WARN``. The face is located from our mediapipe landmarks when given (no
detector misses on tight crops, no false hit on a badge) and by dlib's HOG detector otherwise; dlib's
5-point shape predictor then aligns the chip the network expects.
"""

from __future__ import annotations

import importlib.util
import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from icportrait_studio.imaging.color import encode_from_linear

IDENTITY_WARN = 0.5  # above this the app and the CLI warn that the result may not look like the person
FACE_SIDE = 200  # the face is resampled to about this width before embedding (chips are 150 px)

_lock = threading.Lock()
_models: _Models | None = None
_load_error: str | None = None


@dataclass
class _Models:
    shape5: object
    net: object
    _detector: object | None = None

    @property
    def detector(self) -> object:
        """dlib's HOG face detector, built on first use: it takes ~0.5 s of CPU to build, and a face
        placed by our own landmarks (the usual case) never needs it."""
        if self._detector is None:
            import dlib

            self._detector = dlib.get_frontal_face_detector()
        return self._detector


def models_dir() -> Path | None:
    """The folder holding the dlib model files, found without importing the package."""
    try:
        spec = importlib.util.find_spec("face_recognition_models")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.origin:
        return None
    d = Path(spec.origin).parent / "models"
    return d if d.is_dir() else None


def _load() -> _Models | None:
    global _models, _load_error
    if _models is not None or _load_error is not None:
        return _models
    with _lock:
        if _models is not None or _load_error is not None:
            return _models
        try:
            import dlib
        except ImportError as exc:
            _load_error = f"dlib is not installed ({exc})"
            return None
        d = models_dir()
        if d is None:
            _load_error = "the face-recognition-models package is not installed"
            return None
        try:
            _models = _Models(shape5=dlib.shape_predictor(str(d / "shape_predictor_5_face_landmarks.dat")),
                              net=dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat")))
        except RuntimeError as exc:
            _load_error = f"could not load the face-embedding model: {exc}"
    return _models


_preload_started = False


def preload() -> None:
    """Start loading the models on a background thread (a full render overlaps the ~1 s load)."""
    global _preload_started
    if _preload_started or _models is not None or _load_error is not None:
        return
    _preload_started = True
    threading.Thread(target=_load, name="identity-model-load", daemon=True).start()


def identity_available() -> tuple[bool, str]:
    """Whether embeddings can be computed here, and if not, why."""
    if _models is not None:
        return True, "dlib ResNet face embedding"
    if _load_error is not None:
        return False, _load_error
    try:
        import dlib  # noqa: F401
    except ImportError as exc:
        return False, f"dlib is not installed ({exc})"
    if models_dir() is None:
        return False, "the face-recognition-models package is not installed"
    return True, "dlib ResNet face embedding"


def _landmark_box(landmarks: np.ndarray) -> tuple[float, float, float, float]:
    """A box like dlib's HOG detector draws (square, brows to chin) from mediapipe landmarks."""
    x0, y0 = landmarks[:, 0].min(), landmarks[:, 1].min()
    x1, y1 = landmarks[:, 0].max(), landmarks[:, 1].max()
    side = float(x1 - x0)
    cx, cy = 0.5 * (x0 + x1), y0 + 0.45 * (y1 - y0)
    return cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2


def _crop(rgb_linear: np.ndarray, box: tuple[float, float, float, float]) -> tuple[np.ndarray, float, float, float]:
    """The face with a margin, resized so the box is about FACE_SIDE wide, as sRGB uint8.

    Returns (crop, scale, x offset, y offset): a photo pixel p is at (p − offset) · scale in the crop.
    Margin outside the photo is black, as in dlib's own chips.
    """
    h, w = rgb_linear.shape[:2]
    x0, y0, x1, y1 = box
    side = max(8.0, x1 - x0)
    m = 0.6 * side
    cx0, cy0 = int(np.floor(x0 - m)), int(np.floor(y0 - m))
    cx1, cy1 = int(np.ceil(x1 + m)), int(np.ceil(y1 + m))
    ix0, iy0, ix1, iy1 = max(0, cx0), max(0, cy0), min(w, cx1), min(h, cy1)
    s = FACE_SIDE / side
    out_w, out_h = max(8, round((cx1 - cx0) * s)), max(8, round((cy1 - cy0) * s))
    if ix1 <= ix0 or iy1 <= iy0:
        return np.zeros((out_h, out_w, 3), np.uint8), s, float(cx0), float(cy0)
    src = rgb_linear[iy0:iy1, ix0:ix1]
    size = (max(1, round((ix1 - ix0) * s)), max(1, round((iy1 - iy0) * s)))
    small = cv2.resize(src, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)
    left, top = round((ix0 - cx0) * s), round((iy0 - cy0) * s)
    right, bottom = max(0, out_w - left - size[0]), max(0, out_h - top - size[1])
    crop = cv2.copyMakeBorder(small, top, bottom, left, right, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    return encode_from_linear(np.clip(crop, 0.0, 1.0), 8), s, float(cx0), float(cy0)


def face_embedding(rgb_linear: np.ndarray, landmarks: np.ndarray | None = None) -> np.ndarray | None:
    """The 128-D embedding of the main face (None if no face or no model).

    ``landmarks`` (mediapipe's, in this image's pixels) place the face; without them dlib's detector
    looks for the largest face.
    """
    models = _load()
    if models is None:
        return None
    import dlib

    rgb = rgb_linear if rgb_linear.ndim == 3 else np.repeat(rgb_linear[..., None], 3, axis=2)
    if landmarks is not None:
        crop, s, ox, oy = _crop(rgb, _landmark_box(landmarks))
        bx0, by0, bx1, by1 = ((v - o) * s for v, o in zip(_landmark_box(landmarks), (ox, oy, ox, oy), strict=True))
        rect = dlib.rectangle(round(bx0), round(by0), round(bx1), round(by1))
        img = np.ascontiguousarray(crop)
        with _lock:
            shape = models.shape5(img, rect)
            return np.asarray(models.net.compute_face_descriptor(img, shape), np.float32)
    h, w = rgb.shape[:2]
    s = min(1.0, 800.0 / max(h, w))
    small = rgb if s >= 1.0 else cv2.resize(rgb, (round(w * s), round(h * s)), interpolation=cv2.INTER_AREA)
    img = np.ascontiguousarray(encode_from_linear(np.clip(small, 0.0, 1.0), 8))
    with _lock:
        dets = models.detector(img, 1 if max(img.shape[:2]) < 400 else 0)
        if len(dets) == 0:
            return None
        rect = max(dets, key=lambda r: r.width() * r.height())
        shape = models.shape5(img, rect)
        return np.asarray(models.net.compute_face_descriptor(img, shape), np.float32)


def embedding_distance(a: np.ndarray | None, b: np.ndarray | None) -> float | None:
    if a is None or b is None:
        return None
    return float(np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32)))


def identity_distance(reference: np.ndarray, result: np.ndarray, *, landmarks_reference: np.ndarray | None = None,
                      landmarks_result: np.ndarray | None = None) -> float | None:
    """Embedding distance between the face in ``reference`` and in ``result`` (linear RGB), or None."""
    return embedding_distance(face_embedding(reference, landmarks_reference),
                              face_embedding(result, landmarks_result))
