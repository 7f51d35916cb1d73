"""A second look at the face in the mirrored photo, averaged into the direct look's landmarks.

The face mesh's landmarks carry the detector's own errors: a few percent of the face width in where
the nose, brows, jaw and cheekbones sit, and whatever left-right bias the model has. Running the
detector again on the mirror image and mirroring its landmarks back (re-indexed by ``MIRROR_INDEX`` so
each is paired with its own point) gives a second, differently wrong estimate of the same face (the
photo is not assumed symmetric: both looks see the same face). Their mean is steadier, and everything
built on the landmarks gains (`bench/RESULTS.md`, session 7): relighting accuracy on the Yale dev
faces, and the view change's landmark consistency (2.61 % → 2.22 % of the eye distance: the input and
the turned result are both read with two looks). The analysis of a photo and of its mirror image now
take the same two looks and agree exactly. Landmarks carried by an earlier edit take no second look
(they are exact for the image they came with). Cost: one more face-mesh pass (~15 ms at 768 px).
"""

from __future__ import annotations

import cv2
import numpy as np

from icportrait_studio.geometry import facemesh
from icportrait_studio.geometry.mirror_index import MIRROR_INDEX

MIN_OVERLAP = 0.6  # IoU of the two looks' face boxes below which the mirror found someone else


def mirrored_face(det8: np.ndarray, matte: np.ndarray, face: facemesh.DetectedFace, *, padded: bool = False
                  ) -> facemesh.DetectedFace | None:
    """The same face detected in the mirrored detection image (landmarks in the *mirrored* frame), or
    None when the mirror look finds no face that overlaps ``face``. ``padded``: the direct look needed
    the padded retry (a tight crop), so the mirror look may too; otherwise one plain look suffices."""
    w = det8.shape[1]
    mirror8 = cv2.flip(np.ascontiguousarray(det8), 1)  # numpy's reversed copy of a 768 px frame: ~7 ms, this 0.1
    if padded:
        found, _ = facemesh.detect_with_padding(mirror8, matte=np.ascontiguousarray(matte[:, ::-1]))
    else:
        found = facemesh.detect_faces(mirror8)
    target = face.bbox
    best, best_iou = None, MIN_OVERLAP
    for f in found:
        x0, y0, x1, y1 = f.bbox
        iou = facemesh.box_iou((w - x1, y0, w - x0, y1), target)
        if iou >= best_iou:
            best, best_iou = f, iou
    return best


MAX_DISAGREEMENT = 0.08  # face widths (mean landmark distance) beyond which one of the looks went wrong


def averaged_landmarks(direct: np.ndarray, mirror: np.ndarray, width: float) -> np.ndarray:
    """The mean of the direct look's landmarks and the mirror look's, mirrored back (x -> width - x in
    the continuous coordinates landmarks use) and re-indexed so each is paired with its own point.

    Two looks at one face agree to ~0.3 % of its width on a portrait and ~2 % on a tight crop; when they
    disagree by more than ``MAX_DISAGREEMENT`` one of them failed (a steep profile, say) and the direct
    look is kept alone rather than averaged with a wrong one.
    """
    back = _mirrored_back(mirror, width)
    direct = np.asarray(direct, np.float32)
    if _disagreement(direct, back) > MAX_DISAGREEMENT:
        return direct.copy()
    return (0.5 * (direct + back)).astype(np.float32)


def disagreement(direct: np.ndarray, mirror: np.ndarray, width: float) -> float:
    """How far the mirror look's landmarks (mirrored back) lie from the direct look's: mean distance in
    face widths. Two looks at a face the detector reads well agree closely; it is the measure by which a
    look at a photo and a look at a copy of it with other tones are compared (``face_looks``)."""
    return _disagreement(np.asarray(direct, np.float32), _mirrored_back(mirror, width))


def _mirrored_back(mirror: np.ndarray, width: float) -> np.ndarray:
    back = np.array(mirror, dtype=np.float32, copy=True)
    back[:, 0] = np.float32(width) - back[:, 0]
    return back[np.asarray(MIRROR_INDEX)]


def _disagreement(direct: np.ndarray, back: np.ndarray) -> float:
    face_width = max(1.0, float(np.ptp(direct[:, 0])))
    return float(np.linalg.norm(direct[:, :2] - back[:, :2], axis=1).mean()) / face_width
