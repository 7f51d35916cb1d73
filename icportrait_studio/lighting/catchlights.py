"""Catchlights: the lights' reflections on the eyes move with the rig.

A catchlight is the mirror image of a light on the cornea, so it belongs to the light, not to the eye:
the ratio relight (``relight.py``) keeps the photo's own catchlight where the old light put it, under
every new light (the issue's error analysis names it). Here, at full resolution and only inside each
iris, the photo's catchlight is taken out (filled with the iris' own colour) and each light of the rig
that the cornea can mirror into the camera gets one where it reflects.

The cornea is treated as a sphere of CORNEA_RATIO × the iris radius whose apex sits over the iris
centre: a distant light from unit direction l reflects toward the camera (v = +z) where the cornea's
normal is the half vector h = (l + v) / |l + v|, that is at ``R · (h_x, −h_y)`` pixels from the centre
(image y runs down). A light of angular radius α leaves a disc of about R · α / 2 there, as bright as
the light's radiance (its power over α²) relative to the rig's strongest light's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from icportrait_studio.core.lights import Light, LightRig
from icportrait_studio.geometry.raster import fill_polygon
from icportrait_studio.geometry.topology import face_topology
from icportrait_studio.lighting.estimate import LUMA
from icportrait_studio.lighting.shading import light_alpha

CORNEA_RATIO = 1.3  # cornea curvature radius / visible iris radius (7.8 mm / ~6 mm)
MIN_IRIS_RADIUS = 6.0  # px: in a smaller eye a catchlight is a pixel or two, left as the photo has it
# px: a preview (a smaller copy of a photo whose irises are big enough) moves them down to this radius, so
# a drag shows the catchlights where the full render will put them
MIN_PREVIEW_RADIUS = 2.0
CATCH_CONTRAST = 2.2  # a catchlight is this many times brighter than the iris' median, at least ...
CATCH_SHARE = 0.2  # ... and covers at most this share of the iris
MIN_RELATIVE = 0.25  # lights weaker than this share of the rig's strongest leave no catchlight
PEAK = 0.92  # a catchlight's linear brightness for the rig's strongest light when the photo shows none


@dataclass(frozen=True)
class Eye:
    """One visible iris, in the photo's pixels."""

    center: tuple[float, float]
    radius: float
    opening: np.ndarray  # (N, 2) the eye's contour (lids): a catchlight is drawn only inside it


def find_eyes(landmarks: np.ndarray | None, scale: float = 1.0) -> list[Eye]:
    """The irises of the refined face mesh (478 landmarks) that are big enough to touch, or none.

    ``scale``: the landmarks are those of a copy at this share of the photo's size (a preview); an iris
    qualifies by its size in the photo, so the preview and the full render agree on which eyes change."""
    if landmarks is None or len(landmarks) < 478:
        return []
    topo = face_topology()
    eyes = []
    for iris, contour in ((topo.left_iris, topo.left_eye), (topo.right_iris, topo.right_eye)):
        pts = landmarks[iris, :2].astype(np.float64)
        c = pts.mean(axis=0)
        r = float(np.linalg.norm(pts - c, axis=1).mean())
        if r >= max(MIN_IRIS_RADIUS * min(scale, 1.0), MIN_PREVIEW_RADIUS):
            eyes.append(Eye((float(c[0]), float(c[1])), r, landmarks[contour, :2].astype(np.float32)))
    return eyes


def _box(eye: Eye, shape: tuple[int, int]) -> tuple[slice, slice, float, float] | None:
    m = math.ceil(1.6 * eye.radius) + 2
    cx, cy = eye.center
    x0, y0 = max(0, int(cx) - m), max(0, int(cy) - m)
    x1, y1 = min(shape[1], int(cx) + m + 1), min(shape[0], int(cy) + m + 1)
    if x1 - x0 < 3 or y1 - y0 < 3:
        return None
    return slice(y0, y1), slice(x0, x1), cx - x0, cy - y0


def _old_catchlight(photo: np.ndarray, iris: np.ndarray, inner: np.ndarray, radius: float) -> np.ndarray:
    """Soft mask of the photo's catchlight: small spots inside ``inner`` (the iris' middle, away from the
    lids and the white of the eye, which the iris circle can reach) brighter than their surroundings."""
    lum = photo @ LUMA
    vals = lum[iris]
    if vals.size < 8:
        return np.zeros(lum.shape, np.float32)
    k = max(3, round(0.6 * radius) | 1)
    spots = lum - cv2.morphologyEx(lum, cv2.MORPH_OPEN, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    median, top = float(np.median(vals)), float(lum[inner].max(initial=0.0))
    level = max(CATCH_CONTRAST * median, 0.5 * top, 0.05)
    bright = inner & (lum > level) & (spots > 0.5 * (level - median))
    if not bright.any() or bright.sum() > CATCH_SHARE * iris.sum():
        return np.zeros(lum.shape, np.float32)
    # grown over the spot's own soft rim (a blurred or resampled catchlight fades over a few pixels)
    grow = 2 * max(1, round(0.15 * radius)) + 1
    soft = cv2.dilate(bright.astype(np.uint8), np.ones((grow, grow), np.uint8)).astype(np.float32)
    return cv2.GaussianBlur(soft, (0, 0), 0.6) * iris


@dataclass
class _EyeBox:
    """What one eye's catchlight work needs that no rig changes (cached across the rigs of a drag)."""

    eye: Eye
    ys: slice
    xs: slice
    cx: float
    cy: float
    xx: np.ndarray  # float32 box grids
    yy: np.ndarray
    iris: np.ndarray  # bool: the iris inside the lids
    old: np.ndarray  # float32: the photo's own catchlight (soft mask), all zero where none
    peak: float  # a new catchlight's brightness for the strongest light (the photo's own, or PEAK)
    keep: np.ndarray | None  # float32: where the fill may be read from (None: no old catchlight)
    den: np.ndarray | None  # ... its blurred weight
    rest: np.ndarray | None  # bool: the iris without its catchlight


def _eye_boxes(photo: np.ndarray, landmarks: np.ndarray | None, scale: float) -> list[_EyeBox]:
    boxes = []
    for eye in find_eyes(landmarks, scale):
        box = _box(eye, photo.shape[:2])
        if box is None:
            continue
        ys, xs, cx, cy = box
        bh, bw = ys.stop - ys.start, xs.stop - xs.start
        yy, xx = np.mgrid[0:bh, 0:bw].astype(np.float32)
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        opening = fill_polygon((bh, bw), eye.opening - np.array([xs.start, ys.start], np.float32))
        iris = (d2 < eye.radius ** 2) & opening
        if iris.sum() < 8:
            continue
        old = _old_catchlight(photo[ys, xs], iris, iris & (d2 < (0.8 * eye.radius) ** 2), eye.radius)
        peak, keep, den, rest = PEAK, None, None, None
        if old.max() > 0:
            keep = ((1.0 - old) * (old < 0.05)).astype(np.float32)
            den = cv2.GaussianBlur(keep, (0, 0), max(1.0, 0.15 * eye.radius))[..., None]
            rest = iris & (old < 0.05)
            seen = (photo[ys, xs] @ LUMA)[old > 0.5]
            peak = float(np.clip(seen.max(), 0.3, 1.0)) if seen.size else PEAK
        boxes.append(_EyeBox(eye, ys, xs, cx, cy, xx, yy, iris, old, peak, keep, den, rest))
    return boxes


def _power(light: Light) -> float:
    """A light's strength as its brightest colour channel carries it."""
    return light.intensity * max(light.color)


def _radiance(light: Light) -> float:
    """Its power over its solid angle (∝ α²): how bright its mirror image in the cornea is."""
    return _power(light) / light_alpha(light.size) ** 2


def move_catchlights(relit: np.ndarray, photo: np.ndarray, landmarks: np.ndarray | None, rig: LightRig,
                     scale: float = 1.0, cache: dict | None = None) -> np.ndarray:
    """``relit`` (linear HxWx3, the ratio relight of ``photo``) with each eye's catchlight moved to where
    the rig's lights reflect, scaled by 1 − keep_original (``scale``: see ``find_eyes``). Written into
    ``relit`` itself (only the irises' boxes; a copy of a 16 MP result would cost more than the rest of
    this) and returned. ``photo`` may be ``relit`` itself (a turned head's result, where the photo's
    catchlights are carried along): each iris' box is read before it is written. ``cache`` (a relight
    context's, for one photo) keeps the rig-independent work per photo size: a drag preview's
    catchlights cost 1.6 → 0.7 ms."""
    lights = [li for li in rig.lights if li.enabled and li.intensity > 0]
    if landmarks is None or rig.keep_original >= 1.0:
        return relit
    key = ("catchlights", photo.shape, round(scale, 6))
    boxes = None if cache is None else cache.get(key)
    if boxes is None:
        boxes = _eye_boxes(photo, landmarks, scale)
        if cache is not None:
            cache[key] = boxes
    strongest = max(lights, key=_power, default=None)
    power = 0.0 if strongest is None else _power(strongest)
    # a catchlight is the light's mirror image: as bright as the light's radiance (its power over its
    # solid angle), so a big soft fill leaves a faint reflection, not a grey disc over the pupil
    radiance = 0.0 if strongest is None else _radiance(strongest)
    for b in boxes:
        eye, ys, xs, cx, cy, xx, yy, iris, old = b.eye, b.ys, b.xs, b.cx, b.cy, b.xx, b.yy, b.iris, b.old
        crop = relit[ys, xs].copy()
        peak, new = b.peak, crop
        if b.keep is not None:
            # the photo's own catchlight taken out: filled from the relit pixels right around it (pupil
            # or iris), a weighted blur wide enough to reach over the spot
            num = cv2.GaussianBlur(crop * b.keep[..., None], (0, 0), max(1.0, 0.15 * eye.radius))
            median = np.median(crop[b.rest if b.rest.sum() >= 4 else iris], axis=0)
            # never brighter than the iris' median: a catchlight usually sits on the pupil, and a spot
            # filled grey over a pupil reads as a cloudy eye
            fill = np.minimum(np.where(b.den > 1e-3, num / np.maximum(b.den, 1e-3), median), median)
            new = crop + old[..., None] * (fill - crop)
        r_cornea = CORNEA_RATIO * eye.radius
        for light in lights:
            rel = _power(light) / max(power, 1e-6)
            if rel < MIN_RELATIVE:
                continue
            hx, hy, hz = np.asarray(light.direction, np.float64) + np.array([0.0, 0.0, 1.0])
            norm = math.sqrt(hx * hx + hy * hy + hz * hz)
            if norm < 1e-6:
                continue  # a light straight behind the head
            px, py = cx + r_cornea * hx / norm, cy - r_cornea * hy / norm
            if (px - cx) ** 2 + (py - cy) ** 2 > (0.95 * eye.radius) ** 2:
                continue  # reflects off the sclera or not at all: no visible catchlight
            # the light's mirror image: a crisp disc as wide as the light looks from the eye
            size = max(0.8, r_cornea * light_alpha(light.size) / 2)
            edge = np.clip(size + 0.5 - np.sqrt((xx - px) ** 2 + (yy - py) ** 2), 0.0, 1.0)
            disc = (edge * edge * (3 - 2 * edge)).astype(np.float32) * iris
            color = np.asarray(light.color, np.float32) / max(max(light.color), 1e-6)
            bright = _radiance(light) / max(radiance, 1e-9)
            spot = np.float32(peak * min(1.0, bright)) * color
            new = new + disc[..., None] * spot  # a reflection adds to the iris under it
        k = np.float32(1.0 - rig.keep_original)
        relit[ys, xs] = crop + k * (new - crop)
    return relit
