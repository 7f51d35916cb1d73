"""Where the face mesh looks for the face: the photo as it is, and copies with the shadows lifted.

The detector was trained on well-exposed faces. A face half in black shadow (a hard side light, a light
from below: a low-key portrait) can be missed (13 of the 512 Yale B dev photos, all lit from far to the
side or behind; 103 while the padded retry repeated the crop's edges, see ``facemesh.detect_with_padding``)
or found as a part of itself (the lit cheek, a third of the face wide). A copy under the tone curve
v -> v^γ on display values lifts the shadows and keeps white white; the landmarks read on it are the
photo's own (only the tones changed). Measured on the Yale dev faces (bench/RESULTS.md, sessions 11-12):

- no face in the photo: the copies at γ 0.5, then 0.33, find all 13 (99 of the 103 before);
- a face found in a dark photo: the photo and the γ 0.5 copy are both read, each with its mirror look
  (``mirror_average``), and the look whose two readings agree better is kept. Neither look is better
  every time (the lifted one alone: worse for half the input lightings), but the one that agrees with
  its own mirror is: never worse, and much better where the plain look had locked onto part of a face.
  Except when the lifted copy's face holds the plain one as a part (``holds_as_part``: its box inside,
  two thirds as wide or less): a part read as a face can agree with its own mirror look (yaleB04 lit from
  85° to the left: the nostrils read as eyes, the mouth as the mouth), and no face holds a smaller face.

Only a photo with at least SHADOW_SHARE of its pixels in deep shadow (display value < SHADOW_LEVEL) is
looked at again: elsewhere a missed face is small or absent, and the extra looks would only cost time.
A face found is read again only when a quarter of its box is in deep shadow, when it is much narrower
than the person's outline (it may be the lit part of a face), or when its own mirror look (which the
analysis takes anyway) finds no such face or disagrees by more than ``MAX_DISAGREEMENT`` (a "face" the
size of a nose found on a half-lit face): a portrait in dark clothes (the sample:
a fifth of the frame in deep shadow, the face lit) pays nothing; a face read twice takes two more looks
(the lifted copy and its mirror), ~100 ms on the 2-core development VM.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from icportrait_studio.geometry import facemesh
from icportrait_studio.geometry.mirror_average import MAX_DISAGREEMENT, disagreement, mirrored_face

SHADOW_LIFTS = (0.5, 0.33)  # the copies' tone-curve exponents, mildest first
SHADOW_LEVEL = 51  # display value (of 255) under which a pixel is in deep shadow
SHADOW_SHARE = 0.05  # share of the photo in deep shadow from which the copies are looked at
FACE_SHADOW = 0.25  # ... and, where a face was found, share of its box (unless it may be part of a face)


@dataclass
class FaceLook:
    """The faces found, in the pixels of the detection image; ``image`` is the copy they were read in."""

    faces: list[facemesh.DetectedFace]
    padded: bool
    image: np.ndarray
    mirror: facemesh.DetectedFace | None = None  # the mirror look at ``image`` ...
    mirror_looked: bool = False  # ... when it was taken here (to choose between looks)

    def agreement_error(self) -> float:
        """Mean distance, in face widths, between this look's landmarks and its mirror look's."""
        if not self.faces or self.mirror is None:
            return math.inf
        return disagreement(self.faces[0].landmarks, self.mirror.landmarks, self.image.shape[1])


def lift_shadows(rgb8: np.ndarray, gamma: float) -> np.ndarray:
    """``rgb8`` under the tone curve v -> v^gamma (gamma < 1 brightens the shadows, keeps white white)."""
    lut = np.round(255.0 * (np.arange(256) / 255.0) ** gamma).astype(np.uint8)
    return lut[rgb8]


def dark_share(rgb8: np.ndarray) -> float:
    """The share of pixels in deep shadow (every channel under SHADOW_LEVEL)."""
    if rgb8.size == 0:
        return 0.0
    # cv2.inRange, not ``rgb8.max(axis=2)``: numpy's reduce over a 3-wide last axis took ~20 ms of every
    # analysis at a 768 px detection image, this 0.5 ms
    dark = cv2.inRange(np.ascontiguousarray(rgb8), (0, 0, 0), (SHADOW_LEVEL - 1,) * 3)
    return cv2.countNonZero(dark) / dark.size


def face_dark_share(rgb8: np.ndarray, face: facemesh.DetectedFace) -> float:
    """The share of the face's box in deep shadow."""
    h, w = rgb8.shape[:2]
    x0, y0, x1, y1 = face.bbox
    box = rgb8[max(0, int(y0)):min(h, math.ceil(y1)), max(0, int(x0)):min(w, math.ceil(x1))]
    return dark_share(box)


def find_faces(det8: np.ndarray, matte: np.ndarray) -> FaceLook:
    """The faces in ``det8`` (sRGB uint8; ``matte``: the person, any size), read in the photo or in a copy
    with its shadows lifted."""
    faces, padded = facemesh.detect_with_padding(det8, matte=matte)
    plain = FaceLook(faces, padded, det8)
    if dark_share(det8) < SHADOW_SHARE:
        return plain
    if not faces:
        for gamma in SHADOW_LIFTS:
            lifted = lift_shadows(det8, gamma)
            found, pad = facemesh.detect_with_padding(lifted, matte=matte)
            if found:
                return FaceLook(found, pad, lifted)
        return plain
    plain = _with_mirror(plain, matte)  # taken by the analysis anyway: here it also judges the reading
    # (beside other people the outline across the face's rows is theirs too: "narrow" says nothing there)
    part = len(faces) == 1 and facemesh.narrow_in_outline(faces[0], matte, det8.shape[:2])
    if face_dark_share(det8, faces[0]) < FACE_SHADOW and not part and plain.agreement_error() <= MAX_DISAGREEMENT:
        return plain
    lifted = lift_shadows(det8, SHADOW_LIFTS[0])
    found, pad = facemesh.detect_with_padding(lifted, matte=matte)
    if not found:
        return plain
    looks = [plain, _with_mirror(FaceLook(found, pad, lifted), matte)]
    if holds_as_part(found[0], faces[0]):
        best = looks[1]  # the plain look read a part of this face (nostrils for eyes) as a face
    else:
        best = min(looks, key=FaceLook.agreement_error)  # the plain look on a tie
    if best is not plain:
        # the other faces are as the photo showed them (the lifted copy may miss some, or find them again)
        best.faces = best.faces[:1] + [f for f in faces if facemesh.box_iou(f.bbox, best.faces[0].bbox) == 0.0]
    return best


PART_INSIDE = 0.8  # share of a face's box inside a larger reading's for it to be a part of that face
PART_NARROWER = 1.5  # ... which is at least this much wider


def holds_as_part(whole: facemesh.DetectedFace, part: facemesh.DetectedFace) -> bool:
    """Whether ``part``'s box lies within ``whole``'s (PART_INSIDE of it) and ``whole`` is PART_NARROWER
    times wider: no face has a smaller face inside it, so ``part`` read a piece of ``whole`` as a face."""
    ax0, _, ax1, _ = whole.bbox
    bx0, by0, bx1, by1 = part.bbox
    area = (bx1 - bx0) * (by1 - by0)
    return (area > 0 and facemesh.box_intersection(whole.bbox, part.bbox) >= PART_INSIDE * area
            and ax1 - ax0 >= PART_NARROWER * (bx1 - bx0))


def _with_mirror(look: FaceLook, matte: np.ndarray) -> FaceLook:
    look.mirror = mirrored_face(look.image, matte, look.faces[0], padded=look.padded)
    look.mirror_looked = True
    return look
