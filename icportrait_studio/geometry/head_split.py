"""What beside the jaw belongs to the body, not the head: a high collar, a helmet ring, a scarf.

``view_setup.rigidity_map``'s head is a shape around the face, as wide as the hair at the temples and
narrowing to the jaw: whatever lies in it turns with the head. A collar or a helmet ring standing up
beside the jaw lies in it too, and a turn combined with a nod dragged a piece of it up beside the
cheek (on the sample at yaw -30°, pitch -20°: a black bar beside the face). Geometry cannot tell a bob
hanging beside the jaw from a collar standing there; colour can. A two-label graph cut (OpenCV's
GrabCut: colour mixtures and an edge-aware smoothness term) is seeded with the face and the hair
above the brows as head, and with what the neck does not carry (shoulders, chest, rigidity 0) and
the backdrop as body; it splits the region between. Only pixels below the eyes, outside the face mesh
and joined to the body's own pixels may be given to the body, so a dark strand inside the hair stays
with the head, and a photo showing no body (a tight face crop) changes nothing.
"""

from __future__ import annotations

import cv2
import numpy as np

from icportrait_studio.geometry.view_fill import _dilate, _smoothstep
from icportrait_studio.geometry.view_setup import _face_coords, rigidity_map
from icportrait_studio.imaging.color import encode_from_linear

SPLIT_FACE_PX = 40.0  # the face's width where the cut runs (the same split at preview and full quality)
SPLIT_ITERATIONS = 3  # GrabCut's rounds of refitting its colour mixtures
SPLIT_PAD = 0.2  # face widths of context around the head region
MIN_BODY_SEED = 0.1  # face widths squared of the person that the neck does not carry: fewer, no split
TURNS = 0.02  # rigidity above which a pixel counts as turning with the head at all
BELOW_EYES = (0.1, 0.3)  # along the face's axis (0 pivot, 1 chin): where a pixel may start to be body
GROW = 2  # pixels at the cut's size (0.05 face widths): the softened edge lies on the head's side
SOFTEN = 0.03  # face widths: σ of the blur that softens the split (rigidity must not jump)


def body_beside_head(rgb_linear: np.ndarray, analysis) -> np.ndarray | None:
    """float32 map at ``analysis.geo_size``: 1 where a pixel in the head's region belongs to the body.

    ``rgb_linear`` is the photo (linear light) at any size. None when there is nothing to split: no
    face, or too little of the body in view to learn its colours.
    """
    if analysis.landmarks is None or analysis.face_width <= 0:
        return None
    gw, gh = analysis.geo_size
    s = gw / analysis.image_size[0]
    lm = analysis.landmarks
    rig = rigidity_map(lm, (gh, gw), s)
    vert, _, _, _ = _face_coords(lm, (gh, gw), s)
    fw = float(analysis.face_width)
    person = analysis.matte > 0.5
    ys, xs = np.nonzero(rig > TURNS)
    if not len(ys):
        return None
    pad = round(SPLIT_PAD * fw)
    y0, y1 = max(0, ys.min() - pad), min(gh, ys.max() + pad + 1)
    x0, x1 = max(0, xs.min() - pad), min(gw, xs.max() + pad + 1)
    k = min(1.0, SPLIT_FACE_PX / fw)
    size = (max(8, round((x1 - x0) * k)), max(8, round((y1 - y0) * k)))
    box = (slice(y0, y1), slice(x0, x1))

    def small(a: np.ndarray, interp: int = cv2.INTER_LINEAR) -> np.ndarray:
        return cv2.resize(np.ascontiguousarray(a), size, interpolation=interp)

    person_s = small(person[box].astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
    rig_s = small(rig[box])
    vert_s = small(vert[box])
    face_s = small(analysis.face_mask[box].astype(np.uint8), cv2.INTER_NEAREST).astype(bool)
    body_seed = person_s & (rig_s < TURNS)
    if body_seed.sum() < MIN_BODY_SEED * (fw * k) ** 2:
        return None
    # the photo's crop at the cut's size, in 8-bit sRGB (what GrabCut's colour model expects)
    ih, iw = rgb_linear.shape[:2]
    sx, sy = iw / gw, ih / gh
    crop = rgb_linear[int(y0 * sy):max(int(y0 * sy) + 1, int(np.ceil(y1 * sy))),
                      int(x0 * sx):max(int(x0 * sx) + 1, int(np.ceil(x1 * sx))), :3]
    rgb8 = encode_from_linear(cv2.resize(np.ascontiguousarray(crop, dtype=np.float32), size,
                                         interpolation=cv2.INTER_AREA), 8)
    if rgb8.ndim == 2:
        rgb8 = np.dstack([rgb8] * 3)
    labels = np.full(size[::-1], cv2.GC_BGD, np.uint8)
    labels[person_s & (rig_s > TURNS)] = cv2.GC_PR_FGD
    labels[person_s & (rig_s > 0.95) & (vert_s < -0.1)] = cv2.GC_FGD  # the hair above the brows
    labels[face_s] = cv2.GC_FGD
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(np.ascontiguousarray(rgb8), labels, None, bgd, fgd, SPLIT_ITERATIONS, cv2.GC_INIT_WITH_MASK)
    except cv2.error:  # a mixture with too few distinct colours to fit (a flat synthetic image)
        return None
    body = person_s & ((labels == cv2.GC_BGD) | (labels == cv2.GC_PR_BGD))
    # only what hangs together with the body's own pixels (a dark strand inside the hair is hair)
    _, comp = cv2.connectedComponents(body.astype(np.uint8), connectivity=8)
    joined = np.unique(comp[body_seed & body])
    body = np.isin(comp, joined[joined > 0])
    may = person_s & ~_dilate(face_s, 1)
    out = np.zeros((gh, gw), np.float32)
    out[box] = cv2.resize((_dilate(body, GROW) & may).astype(np.float32), (x1 - x0, y1 - y0),
                          interpolation=cv2.INTER_LINEAR)
    out *= _smoothstep(vert, *BELOW_EYES)
    out = cv2.GaussianBlur(out, (0, 0), max(0.5, SOFTEN * fw))
    return np.clip(out, 0.0, 1.0).astype(np.float32)
