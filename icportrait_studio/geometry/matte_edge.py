"""The person matte's edge around the head, snapped to the photo's colours.

The selfie segmenter sees the photo at 256 px and answers with a smooth blob that often swallows
background beside the jaw, the ears and the hair. Everything that uses the matte suffers from that
overhang: a relight lit those background pixels like the skin next to them (clipped white beside the
jaw under a side light, grey blocks under a top light), a turn carried them along with the head. So
the analysis refines the edge once, over the head and neck (``head_region``), and every consumer (the
relight's blend, the view's silhouette, the layer masks) shares the same matte.
"""

from __future__ import annotations

import cv2
import numpy as np

from icportrait_studio.geometry.view_fill import _dilate, push_pull
from icportrait_studio.geometry.view_setup import rigidity_map


def head_region(landmarks: np.ndarray, shape: tuple[int, int], scale: float) -> np.ndarray:
    """Where the matte is refined: what turns with the head (head and neck column), grown by 3 px."""
    return _dilate(rigidity_map(landmarks, shape, scale) > 0.5, 3)


def _smooth_colour(rgb8: np.ndarray, sure: np.ndarray) -> np.ndarray:
    """A smooth membrane of the colours (in [0, 1]) in ``sure``, filled in elsewhere; push-pull at half
    size: it is smooth anyway, and the full-size pyramid was most of the refinement's time."""
    h, w = sure.shape
    if min(h, w) < 64:
        return push_pull(rgb8.astype(np.float32) / 255.0, sure.astype(np.float32))
    half = ((w + 1) // 2, (h + 1) // 2)
    small = push_pull(cv2.resize(rgb8, half, interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0,
                      cv2.resize(sure.astype(np.float32), half, interpolation=cv2.INTER_AREA))
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _box(mask: np.ndarray, margin: int) -> tuple[slice, slice]:
    """``mask``'s bounding box grown by ``margin`` (clipped to the frame)."""
    x, y, bw, bh = cv2.boundingRect(mask.astype(np.uint8))
    h, w = mask.shape
    return slice(max(0, y - margin), min(h, y + bh + margin)), slice(max(0, x - margin), min(w, x + bw + margin))


REFINE_MARGIN = 2.0  # face widths of context around the region a matte is refined in


def refine_matte(rgb8: np.ndarray, matte: np.ndarray, face: np.ndarray | None, face_width: float,
                 region: np.ndarray | None = None) -> np.ndarray:
    """``_refine_matte`` over ``region``'s box with a margin of context when that box is a small part of
    the frame (a full-length portrait: the head is a few percent of it; 1.0 → 0.1 s); the whole frame
    otherwise (a usual portrait: the same matte as ever)."""
    if region is not None and region.any():
        h, w = matte.shape
        box = _box(region, int(np.ceil(REFINE_MARGIN * face_width)) + 4)
        if (box[0].stop - box[0].start) * (box[1].stop - box[1].start) < 0.6 * h * w:
            out = matte.astype(np.float32, copy=True)
            out[box] = _refine_matte(np.ascontiguousarray(rgb8[box]), matte[box], None if face is None else face[box],
                                     face_width, region[box])
            return out
    return _refine_matte(rgb8, matte, face, face_width, region)


def _refine_matte(rgb8: np.ndarray, matte: np.ndarray, face: np.ndarray | None, face_width: float,
                  region: np.ndarray | None = None) -> np.ndarray:
    """Snap the segmentation's soft, blobby edge to the photo's colours.

    The selfie segmenter's matte is smooth and often swallows background next to the neck and hair;
    a relight lit that background like the skin beside it (a white rim on the lit side of the jaw,
    grey blocks on the shaded side) and a turned head carried it along. In a band around its edge each pixel is
    unmixed against smooth estimates of the nearby person colour F and background colour B (pulled
    in from the sure regions on either side): alpha = (I − B)·(F − B) / |F − B|², trusted as far as
    F and B differ, then edge-aware smoothed. The face (from the mesh) stays solid; outside ``region``
    (where nothing moves) the matte is left alone.
    """
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
    band = ~sure_fg & ~sure_bg
    work = band if region is None else band & region
    r = max(1, round(0.02 * face_width))
    # away from the band the matte is flat, where the edge-aware smoothing changes nothing: only the
    # band's box (grown by the filter's reach) is unmixed and filtered
    est = np.clip((matte.astype(np.float32) - 0.1) / 0.8, 0.0, 1.0)
    if work.any():
        box = _box(work, 2 * r + 2)
        fg, bg = _smooth_colour(rgb8, sure_fg)[box], _smooth_colour(rgb8, sure_bg)[box]
        im = rgb8[box].astype(np.float32) / 255.0
        diff = fg - bg
        den = np.maximum((diff * diff).sum(axis=2), 1e-6)
        a = np.clip(((im - bg) * diff).sum(axis=2) / den, 0.0, 1.0)
        conf = np.clip(np.sqrt(den) / 0.2, 0.0, 1.0)
        local = np.where(band[box], conf * a + (1.0 - conf) * matte[box], matte[box]).astype(np.float32)
        filtered = cv2.ximgproc.guidedFilter(np.ascontiguousarray(rgb8[box]), local, r, 2e-3 * 255 * 255)
        est[box] = np.clip((filtered - 0.1) / 0.8, 0.0, 1.0)
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
