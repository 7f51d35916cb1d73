"""Moving pixels from one colour profile into another's, for an image imported into a document.

A layer imported into a photo holds its own file's codes; shown and exported under the photo's
profile, an sRGB image placed into a ProPhoto RGB portrait came out garishly saturated (and a ProPhoto
one in an sRGB portrait dull). Photoshop converts what is placed into the document's profile; so do we,
for the matrix-shaper profiles photographers' files carry: the source's tone curves and primaries into
XYZ (D50), the destination's primaries and inverse curves out, relative colorimetric with the gamut
clipped. A file without a profile counts as sRGB. Values are handled as the app holds them (codes
through sRGB's curve) and go through tables of 65536 steps, as the 16-bit encode does, so 16-bit
layers keep their precision.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np

from icportrait_studio.imaging.color import linear_to_srgb, lookup_unit, srgb_to_linear
from icportrait_studio.imaging.icc_profile import color_space, colorants, read_tags, tone_curve

__all__ = ["convert_between", "readable"]

_STEPS = 65536


def readable(icc: bytes | None) -> bool:
    """Whether ``icc`` (None = sRGB) is a profile this module can convert from or to."""
    return icc is None or _space(bytes(icc)) is not None


def convert_between(rgb: np.ndarray, src_icc: bytes | None, dst_icc: bytes | None) -> np.ndarray | None:
    """``rgb`` (HxWx3 float, held as the app holds it) in ``src_icc``'s colours -> the same colours in
    ``dst_icc``'s; None when there is nothing to do (the same profile) or a profile is not one this
    module reads (a LUT-based, CMYK or Lab one: the caller keeps the pixels and says so)."""
    if (src_icc or None) == (dst_icc or None):
        return None
    src = None if src_icc is None else _space(bytes(src_icc))
    dst = None if dst_icc is None else _space(bytes(dst_icc))
    if (src_icc is not None and src is None) or (dst_icc is not None and dst is None):
        return None
    src = src or _srgb()
    dst = dst or _srgb()
    matrix = np.linalg.solve(dst[1], src[1]).astype(np.float32)  # src linear -> XYZ -> dst linear
    linear = lookup_unit(rgb, _to_linear(src[0]))
    moved = cv2.transform(np.ascontiguousarray(linear, dtype=np.float32), matrix)
    return lookup_unit(moved, _from_linear(dst[0]))


@functools.lru_cache(maxsize=8)
def _space(icc: bytes) -> tuple[bytes, np.ndarray] | None:
    """(the profile, its colorant matrix) for a matrix-shaper RGB profile whose three curves read; the
    curves are re-read through the cached tables below, keyed by the profile's bytes."""
    tags = read_tags(icc)
    if tags is None or color_space(icc) != b"RGB ":
        return None
    curves = [tone_curve(icc, tags[t], 256) if t in tags else None for t in (b"rTRC", b"gTRC", b"bTRC")]
    if any(c is None for c in curves) or max(np.abs(c - curves[0]).max() for c in curves) > 1e-4:  # type: ignore[operator, union-attr]
        return None  # per-channel curves (some camera profiles): not one table
    m = colorants(icc, tags)
    return None if m is None else (icc, m)


@functools.cache
def _srgb() -> tuple[bytes, np.ndarray]:
    from PIL import ImageCms

    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    space = _space(icc)
    assert space is not None
    return space


def _curves(icc: bytes) -> list[np.ndarray]:
    tags = read_tags(icc)
    assert tags is not None
    return [tone_curve(icc, tags[t], _STEPS) for t in (b"rTRC", b"gTRC", b"bTRC")]  # type: ignore[misc]


@functools.lru_cache(maxsize=8)
def _to_linear(icc: bytes) -> np.ndarray:
    """Table over held values -> the profile's linear light (its three curves are one: see ``_space``)."""
    codes = linear_to_srgb(np.linspace(0.0, 1.0, _STEPS))
    return np.interp(codes, np.linspace(0.0, 1.0, _STEPS), _curves(icc)[0]).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _from_linear(icc: bytes) -> np.ndarray:
    """Table over the profile's linear light -> held values (the curve inverted by interpolation)."""
    curve = np.maximum.accumulate(_curves(icc)[0])  # monotone, so it inverts
    light = np.linspace(0.0, 1.0, _STEPS)
    return srgb_to_linear(np.interp(light, curve, np.linspace(0.0, 1.0, _STEPS)))
